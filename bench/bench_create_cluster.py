"""The main job, measured: ``scripts/lab-cluster.sh`` (libvirt lab + create-cluster.yml, 1 control
plane + 1 worker) from a new lab state, with a per-task profile, then ``lab-cluster.sh delete``.
Prints the phases create-cluster reports, the slowest tasks and the targets (roles phase <= 150 s,
main job <= 5 min from a warm image cache), with ratios.

    .venv/bin/python bench/bench_create_cluster.py [--provider metal|plunder] [--workers 1] [--keep]
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_ROLES = 150.0
TARGET_JOB = 300.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--provider", default="metal", choices=("metal", "plunder"))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="leave the cluster up (no delete)")
    args = ap.parse_args()
    state = tempfile.mkdtemp(prefix="bench-cluster-", dir=os.path.join(ROOT, ".lab") if os.path.isdir(
        os.path.join(ROOT, ".lab")) else None)
    env = dict(os.environ, FLEET_PROVIDER=args.provider, FLEET_WORKERS=str(args.workers), FLEET_LAB_STATE=state,
               ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="15",
               PROFILE_TASKS_SORT_ORDER="descending")
    t0 = time.time()
    job = subprocess.run(["bash", os.path.join(ROOT, "scripts", "lab-cluster.sh")], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    total = time.time() - t0
    out = job.stdout + job.stderr
    with open(os.path.join(state, "bench.log"), "w") as fh:
        fh.write(out)
    if job.returncode != 0:
        print(out[-4000:])
        print("main job FAILED (exit %d) after %.0f s; log %s/bench.log" % (job.returncode, total, state))
        return 1
    phases = dict((k.strip(), float(v)) for k, v in re.findall(r'"([A-Za-z +()]+): ([0-9.]+) s"', out))
    slow = re.findall(r"^(.{0,110}?) -+ ([0-9.]+)s$", out, re.M)
    deleted = None
    if not args.keep:
        t1 = time.time()
        gone = subprocess.run(["bash", os.path.join(ROOT, "scripts", "lab-cluster.sh"), "delete"], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        deleted = time.time() - t1 if gone.returncode == 0 else None
    roles = phases.get("kubernetes (roles)", float("nan"))
    print("\nmain job (%s, 1 control plane + %d worker(s), TCG): %.1f s in all" % (args.provider, args.workers, total))
    for key in ("lease + provision", "wait for SSH", "kubernetes (roles)", "verify", "total"):
        if key in phases:
            print("  %-22s %7.1f s" % (key, phases[key]))
    print("  targets: roles %.1f s / %.0f s = %.2fx; main job %.1f s / %.0f s = %.2fx"
          % (roles, TARGET_ROLES, roles / TARGET_ROLES, total, TARGET_JOB, total / TARGET_JOB))
    if deleted is not None:
        print("  lab-cluster.sh delete: %.1f s" % deleted)
    if slow:
        print("\nslowest tasks (profile_tasks):")
        for name, secs in slow[:15]:
            print("  %7.1f s  %s" % (float(secs), name.strip()))
    if not args.keep:
        shutil.rmtree(state, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
