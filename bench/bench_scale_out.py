"""Scale-out, measured: the time to add one worker to a running 1+1 and to a running 1+3 cluster on
the libvirt lab, by raising cluster_worker_count and re-running create-cluster.yml (only the new
member is leased, provisioned and joined; the existing nodes are only checked through the API).
Prints, side by side, the re-run's phases and their ratio between the two cluster sizes; the target
is equal within noise, and no more than lease -> SSH plus one join.

    .venv/bin/python bench/bench_scale_out.py [--provider metal|plunder] [--sizes 1,3]
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
JOB = os.path.join(ROOT, "scripts", "lab-cluster.sh")


def _phases(out):
    return dict((k.strip(), float(v)) for k, v in re.findall(r'"([A-Za-z +()]+): ([0-9.]+) s"', out))


def _run(env, *args):
    t0 = time.time()
    proc = subprocess.run(["bash", JOB] + list(args), cwd=ROOT, env=env, capture_output=True, text=True)
    return proc, time.time() - t0


def measure(provider, workers):
    state = tempfile.mkdtemp(prefix="bench-scale-", dir=os.path.join(ROOT, ".lab") if os.path.isdir(
        os.path.join(ROOT, ".lab")) else None)
    env = dict(os.environ, FLEET_PROVIDER=provider, FLEET_WORKERS=str(workers), FLEET_SPARE="1",
               FLEET_LAB_STATE=state)
    try:
        proc, created = _run(env)
        if proc.returncode != 0:
            sys.stdout.write(proc.stdout[-3000:] + proc.stderr[-2000:])
            raise SystemExit("creating the 1+%d cluster failed (log above)" % workers)
        # the spare is the new worker now: the lab-cluster job waits for 1 + workers + spare VMs
        proc, scaled = _run(dict(env, FLEET_WORKERS=str(workers + 1), FLEET_SPARE="0"))
        if proc.returncode != 0:
            sys.stdout.write(proc.stdout[-3000:] + proc.stderr[-2000:])
            raise SystemExit("scaling the 1+%d cluster out failed (log above)" % workers)
        phases = _phases(proc.stdout)
        recap = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", proc.stdout, re.M)
        return {"created": created, "scaled": scaled, "phases": phases, "recap": dict(recap)}
    finally:
        _run(env, "delete")
        shutil.rmtree(state, ignore_errors=True)  # the lab is down: its state is of no further use


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--provider", default="metal", choices=("metal", "plunder"))
    ap.add_argument("--sizes", default="1,3", help="worker counts of the running clusters (default 1,3)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {n: measure(args.provider, n) for n in sizes}
    keys = ("lease + provision", "wait for SSH", "kubernetes (roles)", "verify", "total")
    print("\nscale-out by one worker (%s face, TCG VMs): create-cluster.yml re-run with a higher count" % args.provider)
    print("  %-22s " % "phase" + " ".join("%12s" % ("1+%d -> 1+%d" % (n, n + 1)) for n in sizes)
          + ("   ratio" if len(sizes) == 2 else ""))
    for key in keys:
        vals = [results[n]["phases"].get(key, float("nan")) for n in sizes]
        ratio = "   %.2fx" % (vals[1] / vals[0]) if len(sizes) == 2 and vals[0] else ""
        print("  %-22s " % key + " ".join("%10.1f s" % v for v in vals) + ratio)
    for n in sizes:
        changed = {h: int(c) for h, c in results[n]["recap"].items() if h != "localhost"}
        print("  1+%d: changed per host %s (creating the cluster first took %.0f s)" % (n, changed, results[n]["created"]))
        one_join = results[n]["phases"].get("lease + provision", 0) + results[n]["phases"].get("wait for SSH", 0)
        print("        lease -> SSH %.1f s + roles on the new member %.1f s" % (
            one_join, results[n]["phases"].get("kubernetes (roles)", float("nan"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
