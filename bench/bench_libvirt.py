"""Lease -> SSH ready with real VMs (libvirt driver): one VM alone, then N at once.

    .venv/bin/python bench/bench_libvirt.py [--parallel 3] [--memory 512]

Starts a libvirt lab with ``--parallel`` machines (the OS image is built first when it is not in
the cache), waits until every VM is in the reboot loop, leases one through the metal-api face and
waits for ``Phoned Home`` (the lab confirms SSH before it reports it), frees it (wipe, back into
the loop), then leases all of them at once. Prints per machine: time to the first loop, lease ->
OS written, lease -> SSH ready, and the ratios to the targets (120 s alone, 240 s for three).
"""
import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lab"))

from labclients import Metal, Plunder, allocate_body  # noqa: E402
from fleetlab.testing import LabServer  # noqa: E402

TARGET_ONE = 120.0
TARGET_THREE = 240.0


def wait(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise SystemExit("%s not reached within %ss" % (what, timeout))


def timings(state):
    path = os.path.join(state, "vm", "timings.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--parallel", type=int, default=3)
    ap.add_argument("--memory", type=int, default=512)
    args = ap.parse_args()
    from fleetlab.vm import host, images

    reason = host.cannot_run_vms()
    if reason:
        print("skipped: %s" % reason)
        return 0
    t0 = time.time()
    images.build_os()
    print("OS image ready in %.0f s" % (time.time() - t0))
    with tempfile.TemporaryDirectory() as tmp:
        state = os.path.join(tmp, "lab")
        lab = LabServer(state_dir=state, machines=args.parallel, driver="libvirt", start_timeout=120,
                        driver_opt=["loop_wait=1", "memory=%d" % args.memory])
        lab.start()
        try:
            plunder = Plunder(lab.plunder_config)
            metal = Metal(lab.metal_url, lab.hmac_keys["edit"])
            ids = {m["hardware"]["nics"][0]["mac"]: m["id"] for m in metal.ok("GET", "/v1/machine")}
            t_up = time.time()
            wait(lambda: len(plunder.unleased()) == args.parallel, 300, "all VMs in the loop")
            print("lab start -> %d VMs unleased: %.1f s" % (args.parallel, time.time() - t_up))

            def phoned(mids):
                evs = {m["id"]: m["events"]["log"][0]["event"] for m in metal.ok("GET", "/v1/machine")}
                return all(evs[i] == "Phoned Home" for i in mids)

            first = sorted(ids)[0]
            t = time.time()
            metal.ok("POST", "/v1/machine/allocate", allocate_body("bench-1", uuid=ids[first]))
            wait(lambda: phoned([ids[first]]), 600, "one VM phoned home")
            alone = time.time() - t
            one = timings(state).get(first, {})
            metal.ok("DELETE", "/v1/machine/%s/free" % ids[first])
            wait(lambda: len(plunder.unleased()) == args.parallel, 300, "the wiped VM back in the loop")

            t = time.time()
            for i, mac in enumerate(sorted(ids)):
                metal.ok("POST", "/v1/machine/allocate", allocate_body("bench-p%d" % i, uuid=ids[mac]))
            wait(lambda: phoned(list(ids.values())), 900, "all VMs phoned home")
            together = time.time() - t
            tim = timings(state)
            with open(os.path.join(state, "driver.json")) as f:
                accel = json.load(f).get("accel")
        finally:
            lab.stop(timeout=120)
    print("\naccelerator: %s" % accel)
    print("one VM alone:  first loop %.1f s, lease -> OS written %.1f s, lease -> SSH ready %.1f s"
          "  (target %.0f s, ratio %.2f)" % (one.get("first_loop", -1), one.get("lease_to_written", -1),
                                            one.get("lease_to_ssh", alone), TARGET_ONE,
                                            one.get("lease_to_ssh", alone) / TARGET_ONE))
    print("%d VMs at once (all Phoned Home after %.1f s):" % (args.parallel, together))
    worst = 0.0
    for mac in sorted(ids):
        t = tim.get(mac, {})
        worst = max(worst, t.get("lease_to_ssh", 0))
        print("  %s first loop %5.1f s  lease -> OS written %5.1f s  lease -> SSH ready %5.1f s"
              % (mac, t.get("first_loop", -1), t.get("lease_to_written", -1), t.get("lease_to_ssh", -1)))
    print("  slowest %.1f s (target %.0f s for three, ratio %.2f)" % (worst, TARGET_THREE, worst / TARGET_THREE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
