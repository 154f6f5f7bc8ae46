"""Pool guarantees: no double leases under concurrency, nothing acknowledged lost on kill -9,
the same lifecycle seen through both faces."""
import sqlite3
import threading
import time

import pytest

from labclients import PROJECT, Metal, Plunder, allocate_body, validate

pytestmark = pytest.mark.lab


def _parallel(n, fn):
    results = [None] * n
    start = threading.Barrier(n)

    def run(i):
        start.wait()
        results[i] = fn(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def _db_leases(lab):
    conn = sqlite3.connect("file:%s?mode=ro" % lab.pool_path, uri=True, timeout=30)
    try:
        return conn.execute("SELECT id, mac, lease_face, lease_name FROM machines WHERE lease_name IS NOT NULL"
                            ).fetchall()
    finally:
        conn.close()


def test_parallel_metal_allocations_never_double_lease(fresh_lab, metal):
    small = len(metal.ok("POST", "/v1/machine/find", {"sizeid": "v1-small-x86"}))
    results = _parallel(50, lambda i: metal.raw("POST", "/v1/machine/allocate", allocate_body("par-%d" % i)))
    ok = [body for code, body in results if code == 200]
    refused = [body for code, body in results if code != 200]
    assert len(ok) == small
    assert len({m["id"] for m in ok}) == small, "a machine was handed out twice"
    assert all(b == {"statuscode": 422, "message": "no machine available"} for b in refused)
    ips = [m["allocation"]["networks"][0]["ips"][0] for m in ok]
    assert len(set(ips)) == len(ips)
    leases = _db_leases(fresh_lab)
    assert sorted(r[0] for r in leases) == sorted(m["id"] for m in ok)


def test_parallel_plunder_deployments_for_one_mac(fresh_lab, plunder):
    mac = plunder.unleased()[0]["mac"]
    clients = [Plunder(fresh_lab.plunder_config) for _ in range(20)]
    results = _parallel(20, lambda i: clients[i].call("POST", "/deployment", {
        "mac": mac, "bootConfigName": "preseed", "config": {"address": "10.77.5.%d" % (i + 1), "hostname": "r%d" % i}}))
    assert results.count({}) == 1
    assert all(r.get("error") == "Duplicate entry for MAC address [%s]" % mac for r in results if r != {})
    assert [r[1] for r in _db_leases(fresh_lab)] == [mac]


def test_both_faces_compete_for_the_same_pool(fresh_lab, plunder, metal):
    macs = [i["mac"] for i in plunder.unleased()]
    clients = [Plunder(fresh_lab.plunder_config) for _ in range(len(macs))]

    def work(i):
        if i % 2:
            return ("plunder", macs[i], clients[i].call("POST", "/deployment", {
                "mac": macs[i], "bootConfigName": "preseed",
                "config": {"address": "10.77.6.%d" % (i + 1), "hostname": "p%d" % i}}))
        return ("metal", None, metal.raw("POST", "/v1/machine/allocate", allocate_body("m%d" % i)))

    results = _parallel(len(macs), work)
    leases = _db_leases(fresh_lab)
    assert len({r[0] for r in leases}) == len(leases)
    by_mac = {r[1]: r[2] for r in leases}
    for face, mac, out in results:
        if face == "plunder" and out == {}:
            assert by_mac[mac] == "plunder"
        elif face == "plunder":
            assert out["error"].startswith("Duplicate entry"), out  # metal took it first
    metal_ok = [body["id"] for face, _, (code, body) in
                [(f, m, o) for f, m, o in results if f == "metal"] if code == 200]
    assert len(set(metal_ok)) == len(metal_ok)


def test_kill_minus_9_loses_nothing_acknowledged(tmp_path):
    from fleetlab.testing import LabServer
    lab = LabServer(state_dir=str(tmp_path), machines=30)
    lab.start()
    try:
        metal = Metal(lab.metal_url, lab.hmac_keys["edit"])
        plunder = Plunder(lab.plunder_config)
        acked = []
        stop = threading.Event()

        def allocate_until_killed(i):
            n = 0
            while not stop.is_set():
                try:
                    code, body = metal.raw("POST", "/v1/machine/allocate", allocate_body("k%d-%d" % (i, n)))
                except Exception:
                    return
                if code == 200:
                    acked.append((body["id"], body["allocation"]["name"], body["allocation"]["networks"][0]["ips"][0]))
                n += 1

        macs = [i["mac"] for i in plunder.unleased()][:4]
        for n, mac in enumerate(macs):
            assert plunder.call("POST", "/deployment", {"mac": mac, "bootConfigName": "preseed",
                                                        "config": {"address": "10.77.7.%d" % n, "hostname": "h"}}) == {}
        workers = [threading.Thread(target=allocate_until_killed, args=(i,)) for i in range(4)]
        for w in workers:
            w.start()
        time.sleep(0.4)
        lab.kill()
        stop.set()
        for w in workers:
            w.join(30)
        assert acked, "no allocation was acknowledged before the kill"
        lab.start()
        metal = Metal(lab.metal_url, lab.hmac_keys["edit"])
        for mid, name, ip in acked:
            m = metal.ok("GET", "/v1/machine/" + mid)
            assert m["allocation"]["name"] == name and m["allocation"]["networks"][0]["ips"] == [ip]
        plunder = Plunder(lab.plunder_config)
        deployed = [d["mac"] for d in plunder.call("GET", "/deployments")["payload"]["deployments"]]
        assert sorted(deployed) == sorted(macs)
        conn = sqlite3.connect(lab.pool_path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        # timers survive the restart: every leased machine still reaches provisioned
        deadline = time.time() + 20
        while True:
            states = metal.ok("POST", "/v1/machine/find", {"allocation_project": PROJECT})
            if all(s["events"]["log"][0]["event"] == "Phoned Home" for s in states):
                break
            assert time.time() < deadline, [s["events"]["log"][0]["event"] for s in states]
            time.sleep(0.2)
    finally:
        lab.stop()


def test_lifecycle_is_one_pool_for_both_faces(fresh_lab, plunder, metal):
    # metal allocation: the machine leaves plunder's unleased list and comes back after free
    m = metal.ok("POST", "/v1/machine/allocate", allocate_body("cross"))
    assert m["hardware"]["nics"][0]["mac"] not in [i["mac"] for i in plunder.unleased()]
    mac = m["hardware"]["nics"][0]["mac"]
    deadline = time.time() + 15
    while metal.ok("GET", "/v1/machine/" + m["id"])["events"]["log"][0]["event"] != "Phoned Home":
        assert time.time() < deadline
        time.sleep(0.1)
    metal.ok("DELETE", "/v1/machine/%s/free" % m["id"])
    deadline = time.time() + 15
    while mac not in [i["mac"] for i in plunder.unleased()]:
        assert time.time() < deadline
        time.sleep(0.1)
    # plunder lease: metal shows the machine allocated (creator plunder) and installing
    assert plunder.call("POST", "/deployment", {"mac": mac, "bootConfigName": "preseed",
                                                "config": {"address": "10.77.8.1", "hostname": "px"}}) == {}
    mr = metal.ok("POST", "/v1/machine/find", {"nics_mac_addresses": [mac]})[0]
    assert mr["allocation"]["hostname"] == "px" and mr["allocation"]["creator"] == "plunder"
    validate(mr, "v1.MachineResponse")
    from metal_python.api import MachineApi
    from metal_python.driver import Driver
    api = MachineApi(api_client=Driver(fresh_lab.metal_url, None, fresh_lab.hmac_keys["view"],
                                       hmac_user="Metal-View").client)
    assert api.find_machine(mr["id"]).allocation.hostname == "px"
    code, body = metal.raw("POST", "/v1/machine/allocate", allocate_body("steal", uuid=mr["id"]))
    assert (code, body["message"]) == (422, "machine is already allocated")
    deadline = time.time() + 15
    while metal.ok("GET", "/v1/machine/" + mr["id"])["events"]["log"][0]["event"] != "Phoned Home":
        assert time.time() < deadline
        time.sleep(0.1)


def test_machines_in_motion_without_a_timer_resume_after_restart(tmp_path):
    """A crash between a committed lease and its driver timer must not strand the machine."""
    from fleetlab.testing import LabServer
    lab = LabServer(state_dir=str(tmp_path), machines=6)
    lab.start()
    try:
        metal = Metal(lab.metal_url, lab.hmac_keys["edit"])
        a = metal.ok("POST", "/v1/machine/allocate", allocate_body("stranded-a"))
        b = metal.ok("POST", "/v1/machine/allocate", allocate_body("stranded-b"))
        lab.kill()
        conn = sqlite3.connect(lab.pool_path)
        with conn:
            conn.execute("UPDATE machines SET due_at=NULL, due_step=NULL, state='leased' WHERE id=?", (a["id"],))
            conn.execute("UPDATE machines SET due_at=NULL, due_step=NULL, state='wiping', lease_name=NULL,"
                         " lease_face=NULL, lease=NULL WHERE id=?", (b["id"],))
        conn.close()
        lab.start()
        metal = Metal(lab.metal_url, lab.hmac_keys["edit"])
        plunder = Plunder(lab.plunder_config)
        deadline = time.time() + 20
        while True:
            ev = metal.ok("GET", "/v1/machine/" + a["id"])["events"]["log"][0]["event"]
            back = b["hardware"]["nics"][0]["mac"] in [i["mac"] for i in plunder.unleased()]
            if ev == "Phoned Home" and back:
                break
            assert time.time() < deadline, (ev, back)
            time.sleep(0.2)
    finally:
        lab.stop()
