"""Race probes, repeated: concurrent leases over one address range, same-name pairs, and the lab
killed with SIGKILL in the middle of lease runs. Prints the counts that must all be zero:
lost (an acknowledged lease missing afterwards), double (one member name on two machines, or
one machine in two leases) and collided (one address on two deployments). After the lab is
killed, the runs that failed are run again, as a user would; the counts are taken after that.

Each lease run is its own process, as separate ``ansible-playbook`` runs would be.

    .venv/bin/python bench/bench_races.py [--rounds 3] [--callers 30] [--pairs 16]
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


def _lease(args):
    backend, defaults, name, extra = args
    from ansible_collections.baremetal.fleet.plugins.module_utils import connection, leasing
    from playbook_runner import lease_defaults

    params = dict(lease_defaults(backend, name), name=name, count=1, hostname_template="{name}-{index}")
    params.update(extra)
    try:
        out = leasing.ensure_present(connection.provider_from_params(defaults, environ={}), params)
        return name, [m["mac"] for m in out["machines"]], None
    except Exception as err:  # counted, not hidden
        return name, [], str(err)


def _audit(lab, backend, acknowledged):
    """(lost, double, collided) over the whole pool, read through the collection."""
    from ansible_collections.baremetal.fleet.plugins.module_utils import connection
    from playbook_runner import connection_vars

    prov = connection.provider_from_params(connection_vars(lab, backend), environ={})
    leased = prov.list_machines(status="leased")
    by_member, by_mac, by_address = {}, {}, {}
    for m in leased:
        by_member.setdefault(m.lease_name, set()).add(m.mac)
        by_mac.setdefault(m.mac, set()).add(m.lease_name)
        if m.address and backend == "plunder":
            by_address.setdefault(m.address, set()).add(m.mac)
    lost = sum(1 for name, macs in acknowledged.items() for mac in macs
               if name + "-0" not in by_member or mac not in by_member[name + "-0"])
    double = sum(1 for macs in by_member.values() if len(macs) > 1) + sum(1 for n in by_mac.values() if len(n) > 1)
    collided = sum(1 for macs in by_address.values() if len(macs) > 1)
    return lost, double, collided


def _run(pool_, backend, defaults, jobs):
    return pool_.map(_lease, [(backend, defaults, name, extra) for name, extra in jobs])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--callers", type=int, default=30)
    ap.add_argument("--pairs", type=int, default=16)
    args = ap.parse_args()
    from fleetlab.testing import LabServer
    from playbook_runner import connection_vars

    rows = []
    workers = multiprocessing.Pool(min(args.callers, 32))
    state = tempfile.mkdtemp(prefix="bench-races-")
    machines = args.rounds * (args.callers + 2 * args.pairs + 20) * 2 + 50
    lab = LabServer(state_dir=state, machines=machines, plunder_port=0, metal_port=0).start()
    try:
        for backend in ("plunder", "metal"):
            defaults = connection_vars(lab, backend)
            acknowledged = {}
            t0 = time.time()
            # 1. callers at once over one range of 10 addresses (plunder: the address reservation)
            for r in range(args.rounds):
                rng = "10.77.%d.1-10.77.%d.10" % (70 + r, 70 + r)
                jobs = [("rng%s%d-%02d" % (backend[0], r, i), {"address_range": rng} if backend == "plunder" else {})
                        for i in range(args.callers)]
                for name, macs, err in _run(workers, backend, defaults, jobs):
                    if not err:
                        acknowledged[name] = macs
            lost, double, collided = _audit(lab, backend, acknowledged)
            rows.append((backend, "%d x %d callers, one range" % (args.rounds, args.callers), len(acknowledged),
                         lost, double, collided, time.time() - t0))
            # 2. same-name pairs
            t0 = time.time()
            acked = {}
            for p in range(args.pairs):
                name = "pair%s%02d" % (backend[0], p)
                extra = {"address_range": "10.77.%d.0/24" % (80 + p)} if backend == "plunder" else {}
                for got, macs, err in _run(workers, backend, defaults, [(name, extra), (name, extra)]):
                    if not err:
                        acked[got] = macs
            lost, double, collided = _audit(lab, backend, acked)
            rows.append((backend, "%d same-name pairs" % args.pairs, len(acked), lost, double, collided,
                         time.time() - t0))
        # 3. the lab killed with SIGKILL while lease runs are under way, then restarted
        for backend in ("plunder", "metal"):
            t0 = time.time()
            acked = {}
            for r in range(args.rounds):
                defaults = connection_vars(lab, backend)
                jobs = [("kill%s%d-%02d" % (backend[0], r, i),
                         {"address_range": "10.77.%d.0/24" % (100 + r)} if backend == "plunder" else {})
                        for i in range(20)]
                pending = workers.map_async(_lease, [(backend, defaults, n, e) for n, e in jobs])
                time.sleep(0.4)
                lab.kill()
                results = pending.get(timeout=600)
                lab = LabServer(state_dir=state, machines=None, plunder_port=0, metal_port=0).start()
                # what a user does after a failed run: run it again (it heals what the crash left)
                defaults = connection_vars(lab, backend)
                failed = [(n, e) for (n, e), (_n, _m, err) in zip(jobs, results) if err]
                results = [r for r in results if not r[2]] + _run(workers, backend, defaults, failed)
                for name, macs, err in results:
                    if not err:
                        acked[name] = macs
            lost, double, collided = _audit(lab, backend, acked)
            rows.append((backend, "%d x 20 runs, lab killed" % args.rounds, len(acked), lost, double, collided,
                         time.time() - t0))
    finally:
        workers.close()
        lab.stop()
    print("\n%-8s %-28s %8s %5s %7s %9s %8s" % ("provider", "probe", "acked", "lost", "double", "collided", "time"))
    for backend, probe, acked, lost, double, collided, took in rows:
        print("%-8s %-28s %8d %5d %7d %9d %7.1fs" % (backend, probe, acked, lost, double, collided, took))
    bad = sum(r[3] + r[4] + r[5] for r in rows)
    print("\nall zero: %s" % ("yes" if bad == 0 else "NO (%d)" % bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
