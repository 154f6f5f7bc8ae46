"""Time to lease 100 machines in one task, against the sim lab (target: within 5 s).

Runs a real ``ansible-playbook`` with one ``baremetal.fleet.lease`` task (count: 100)
for each provider, reads the task's own start/end from the JSON callback, then
releases the lease again. Also times the same lease through module_utils directly
(no Ansible process start-up) and a second, idempotent run of the task.

    .venv/bin/python bench/bench_lease.py [--machines 300] [--count 100]
"""
import argparse
import datetime
import os
import sys
import tempfile
import time
import pathlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "build", "collections"))
sys.path.insert(0, os.path.join(ROOT, "lab"))

TARGET = 5.0


def _ensure_collection_link():
    link = os.path.join(ROOT, "build", "collections", "ansible_collections", "baremetal", "fleet")
    if not os.path.islink(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)


def _task_seconds(task_result_block):
    dur = task_result_block["task"]["duration"]
    parse = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    return (parse(dur["end"]) - parse(dur["start"])).total_seconds()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--machines", type=int, default=600)
    ap.add_argument("--count", type=int, default=100)
    args = ap.parse_args()
    _ensure_collection_link()
    from fleetlab.testing import LabServer
    from playbook_runner import connection_vars, lease_defaults, run_playbook
    from ansible_collections.baremetal.fleet.plugins.module_utils import connection, leasing

    state = tempfile.mkdtemp(prefix="bench-lease-")
    lab = LabServer(state_dir=state, machines=args.machines).start()
    rows = []
    try:
        tmp = pathlib.Path(tempfile.mkdtemp(prefix="bench-play-"))
        for backend in ("plunder", "metal"):
            name = "bench-%s" % backend
            opts = dict(lease_defaults(backend, name))
            if backend == "plunder":
                opts["address_range"] = "10.77.200.0/24"
            task = {"name": "lease", "baremetal.fleet.lease": dict(opts, name=name, count=args.count)}
            defaults = connection_vars(lab, backend)
            wall = time.time()
            res = run_playbook(tmp, [task], module_defaults=defaults)
            wall = time.time() - wall
            if res.rc != 0:
                raise SystemExit("lease failed on %s: %s" % (backend, res.failed_msg() or res.stdout[-2000:]))
            block = res.data["plays"][0]["tasks"][0]
            leased = len(block["hosts"]["localhost"]["machines"])
            task_s = _task_seconds(block)
            again = run_playbook(tmp, [task], module_defaults=defaults)
            again_s = _task_seconds(again.data["plays"][0]["tasks"][0])
            assert again.stats["changed"] == 0
            release = run_playbook(tmp, [{"name": "release", "baremetal.fleet.lease": dict(opts, name=name,
                                                                                           state="absent")}],
                                   module_defaults=defaults)
            assert release.rc == 0, release.stdout[-2000:]
            # module_utils directly, a fresh lease name
            prov = connection.provider_from_params(defaults, environ={})
            params = dict(opts, name=name + "-direct", count=args.count, hostname_template="{name}-{index}",
                          project=opts.get("project"))
            if backend == "plunder":
                params["address_range"] = "10.77.201.0/24"
            t0 = time.time()
            out = leasing.ensure_present(prov, params)
            direct_s = time.time() - t0
            assert len(out["machines"]) == args.count
            leasing.ensure_absent(prov, params)
            rows.append((backend, leased, task_s, wall, again_s, direct_s))
    finally:
        lab.stop()
    print("lease %d machines in one task (sim lab, %d machines in the pool; target %.1f s)"
          % (args.count, args.machines, TARGET))
    print("%-8s %7s %10s %14s %16s %14s %8s" % ("provider", "leased", "task [s]", "playbook [s]", "re-run task [s]",
                                                "direct [s]", "target"))
    ok = True
    for backend, leased, task_s, wall, again_s, direct_s in rows:
        ratio = task_s / TARGET
        ok = ok and task_s <= TARGET
        print("%-8s %7d %10.2f %14.2f %16.2f %14.2f %7.2fx" % (backend, leased, task_s, wall, again_s, direct_s,
                                                                ratio))
    print("result: %s" % ("within target" if ok else "OVER target"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
