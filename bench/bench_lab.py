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


def measure(machines, rounds):
    """Start a lab with ``machines`` machines and time the hot requests; returns rows."""
    with tempfile.TemporaryDirectory() as state:
        t0 = time.perf_counter()
        lab = LabServer(state_dir=state, machines=machines, start_timeout=300, no_access_log=True)
        lab.start()
        up = time.perf_counter() - t0
        try:
            plunder = Plunder(lab.plunder_config)
            metal = Metal(lab.metal_url, lab.hmac_keys["edit"])
            allocs = [metal.ok("POST", "/v1/machine/allocate", allocate_body("bench-%d" % i)) for i in range(20)]
            rows = [("start (pool created, both faces up)", {"median": up * 1000, "p95": up * 1000,
                                                             "max": up * 1000}, "")]
            stats, out = timed(lambda: plunder.call("GET", "/dhcp/unleased")["payload"], rounds)
            rows.append(("GET /dhcp/unleased", stats, "%d entries" % len(out)))
            stats, out = timed(lambda: metal.ok("POST", "/v1/machine/find", {"allocation_name": "bench-7"}), rounds)
            rows.append(("POST /v1/machine/find (allocation_name)", stats, "%d machine" % len(out)))
            mac = allocs[3]["hardware"]["nics"][0]["mac"]
            stats, out = timed(lambda: metal.ok("POST", "/v1/machine/find", {"nics_mac_addresses": [mac]}), rounds)
            rows.append(("POST /v1/machine/find (mac)", stats, "%d machine" % len(out)))
            stats, out = timed(lambda: metal.ok("POST", "/v1/machine/find", {"sizeid": "v1-large-x86"}),
                               max(3, rounds // 4))
            rows.append(("POST /v1/machine/find (size v1-large-x86)", stats, "%d machines" % len(out)))
            stats, out = timed(lambda: metal.ok("POST", "/v1/machine/find", {}), max(3, rounds // 5))
            rows.append(("POST /v1/machine/find (all)", stats, "%d machines, %.1f MB" % (
                len(out), len(json.dumps(out)) / 1e6)))
            n = [0]

            def allocate():
                n[0] += 1
                return metal.ok("POST", "/v1/machine/allocate", allocate_body("bench-x%d" % n[0]))
            stats, _ = timed(allocate, rounds)
            rows.append(("POST /v1/machine/allocate", stats, ""))
            return rows
        finally:
            lab.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--machines", type=int, default=10000)
    ap.add_argument("--compare", type=int, default=1000, help="smaller pool for the scaling ratio (0 = skip)")
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    big = measure(args.machines, args.rounds)
    small = measure(args.compare, args.rounds) if args.compare else None
    print("%-44s %9s %9s %9s  %s" % ("request (%d machines)" % args.machines, "median", "p95", "max", ""))
    for name, s, note in big:
        print("%-44s %7.1fms %7.1fms %7.1fms  %s" % (name, s["median"], s["p95"], s["max"], note))
    if small:
        print()
        print("%-44s %12s %12s %7s" % ("median latency", "%d mach." % args.compare, "%d mach." % args.machines,
                                        "ratio"))
        for (name, sb, _), (_, ss, _) in zip(big, small):
            print("%-44s %10.1fms %10.1fms %6.1fx" % (name, ss["median"], sb["median"],
                                                      sb["median"] / ss["median"] if ss["median"] else 0))

if __name__ == "__main__":
    main()
