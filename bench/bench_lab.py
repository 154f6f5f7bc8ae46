"""Latency of the lab's hot read paths with a large pool (default 10,000 machines).

    .venv/bin/python bench/bench_lab.py [--machines 10000] [--rounds 20]

Starts a sim lab (ports chosen by the OS, 127.0.0.1 only), then times over real sockets:
``GET /dhcp/unleased`` (plunder, HTTPS), ``POST /v1/machine/find`` for one allocation name,
for a whole size and with no filter (metal, HMAC), and ``POST /v1/machine/allocate``.
Prints median / p95 / max in milliseconds and the payload sizes.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lab"))

from labclients import Metal, Plunder, allocate_body  # noqa: E402
from fleetlab.testing import LabServer  # noqa: E402


def timed(fn, rounds):
    times, out = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000.0)
    times.sort()
    return {"median": statistics.median(times), "p95": times[min(len(times) - 1, int(len(times) * 0.95))],
            "max": times[-1]}, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--machines", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as state:
        t0 = time.perf_counter()
        lab = LabServer(state_dir=state, machines=args.machines, start_timeout=300, no_access_log=True)
        lab.start()
        print("lab with %d machines up in %.1f s" % (args.machines, time.perf_counter() - t0))
        try:
            plunder = Plunder(lab.plunder_config)
            metal = Metal(lab.metal_url, lab.hmac_keys["edit"])
            allocs = []
            for i in range(20):
                allocs.append(metal.ok("POST", "/v1/machine/allocate", allocate_body("bench-%d" % i)))
            rows = []
            stats, out = timed(lambda: plunder.call("GET", "/dhcp/unleased")["payload"], args.rounds)
            rows.append(("GET /dhcp/unleased", stats, "%d entries" % len(out)))
            stats, out = timed(lambda: metal.ok("POST", "/v1/machine/find", {"allocation_name": "bench-7"}),
                               args.rounds)
            rows.append(("POST /v1/machine/find (allocation_name)", stats, "%d machine" % len(out)))
            stats, out = timed(lambda: metal.ok("POST", "/v1/machine/find", {"nics_mac_addresses": [
                allocs[3]["hardware"]["nics"][0]["mac"]]}), args.rounds)
            rows.append(("POST /v1/machine/find (mac)", stats, "%d machine" % len(out)))
            stats, out = timed(lambda: metal.ok("POST", "/v1/machine/find", {"sizeid": "v1-large-x86"}),
                               max(3, args.rounds // 4))
            rows.append(("POST /v1/machine/find (size v1-large-x86)", stats, "%d machines" % len(out)))
            stats, out = timed(lambda: metal.ok("POST", "/v1/machine/find", {}), max(3, args.rounds // 5))
            rows.append(("POST /v1/machine/find (all)", stats, "%d machines, %.1f MB" % (
                len(out), len(json.dumps(out)) / 1e6)))
            n = [0]

            def allocate():
                n[0] += 1
                return metal.ok("POST", "/v1/machine/allocate", allocate_body("bench-x%d" % n[0]))
            stats, _ = timed(allocate, args.rounds)
            rows.append(("POST /v1/machine/allocate", stats, ""))
            print("%-44s %9s %9s %9s  %s" % ("request (%d machines)" % args.machines, "median", "p95", "max", ""))
            for name, s, note in rows:
                print("%-44s %7.1fms %7.1fms %7.1fms  %s" % (name, s["median"], s["p95"], s["max"], note))
        finally:
            lab.stop()


if __name__ == "__main__":
    main()
