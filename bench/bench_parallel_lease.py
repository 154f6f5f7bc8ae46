"""50 lease runs at once against one lab: zero double leases (docs/architecture.md, "Targets").

Each run is its own process (as 50 ``ansible-playbook`` runs would be) calling the
collection's leasing code for a distinct lease name; afterwards every MAC must belong to
exactly one lease, on both faces.

    .venv/bin/python bench/bench_parallel_lease.py [--runs 50] [--count 2]
"""
import argparse
import multiprocessing
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "build", "collections"))
sys.path.insert(0, os.path.join(ROOT, "lab"))


def _one(args):
    backend, defaults, index, count = args
    from ansible_collections.baremetal.fleet.plugins.module_utils import connection, leasing
    from playbook_runner import lease_defaults

    name = "par%s%02d" % (backend[0], index)
    params = dict(lease_defaults(backend, name), name=name, count=count, hostname_template="{name}-{index}")
    if backend == "plunder":
        params["address_range"] = "10.77.%d.0/24" % (100 + index)
    prov = connection.provider_from_params(defaults, environ={})
    t0 = time.time()
    try:
        out = leasing.ensure_present(prov, params)
        return name, [m["mac"] for m in out["machines"]], time.time() - t0, None
    except Exception as err:  # reported, not hidden
        return name, [], time.time() - t0, str(err)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--count", type=int, default=2)
    args = ap.parse_args()
    from fleetlab.testing import LabServer
    from playbook_runner import connection_vars

    need = args.runs * args.count
    lab = LabServer(state_dir=tempfile.mkdtemp(prefix="bench-par-"), machines=need * 2 + 20).start()
    failed = False
    try:
        for backend in ("plunder", "metal"):
            defaults = connection_vars(lab, backend)
            jobs = [(backend, defaults, i, args.count) for i in range(args.runs)]
            t0 = time.time()
            with multiprocessing.Pool(min(args.runs, 50)) as workers:
                results = workers.map(_one, jobs)
            wall = time.time() - t0
            macs = [mac for _n, ms, _t, _e in results for mac in ms]
            errors = [(n, e) for n, _ms, _t, e in results if e]
            doubles = len(macs) - len(set(macs))
            slowest = max(t for _n, _ms, t, _e in results)
            print("%-8s runs=%d machines=%d double-leased=%d failed-runs=%d wall=%.2fs slowest-run=%.2fs"
                  % (backend, args.runs, len(macs), doubles, len(errors), wall, slowest))
            for name, err in errors[:5]:
                print("   %s: %s" % (name, err))
            failed = failed or doubles > 0 or len(macs) != need
    finally:
        lab.stop()
    print("result: %s" % ("zero double leases, every run complete" if not failed else "FAILED"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
