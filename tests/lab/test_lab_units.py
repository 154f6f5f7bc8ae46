"""In-process checks of the lab's parts: pool transitions, sources, HMAC vector, sim shell."""
import threading

import pytest
from werkzeug.test import Client

from fleetlab import store as P
from fleetlab.drivers import load_driver
from fleetlab.drivers.base import Driver
from fleetlab.faces.metal import MetalFace
from fleetlab.util import rfc3339nano
from fleetlab.vendors import vendor_for


class _Lab:
    def __init__(self, path, driver):
        self.pool = P.Pool(path, loop_period=2.0)
        self.driver = driver


@pytest.fixture
def pool(tmp_path):
    p = P.Pool(str(tmp_path / "pool.sqlite"), loop_period=2.0)
    p.populate(P.generate_machines(6))
    return p


def test_generate_spreads_racks_sizes_vendors():
    ms = P.generate_machines(200)
    assert len({m["id"] for m in ms}) == len({m["mac"] for m in ms}) == 200
    assert len({m["rack"] for m in ms}) == 10
    assert {m["size"] for m in ms} == {"v1-small-x86", "v1-medium-x86", "v1-large-x86"}
    assert len({vendor_for(m["mac"]) for m in ms}) == 5
    assert P.generate_machines(5) == P.generate_machines(5)  # stable across restarts


def test_rfc3339nano_like_go():
    assert rfc3339nano(0) == "1970-01-01T00:00:00Z"
    assert rfc3339nano(1.25) == "1970-01-01T00:00:01.25Z"


def test_lease_is_exclusive_under_threads(pool):
    mid = pool.machines()[0]["id"]
    wins, errors = [], []

    def take(i):
        try:
            pool.lease(mid, {"name": "t%d" % i}, "metal")
            wins.append(i)
        except P.PoolError as e:
            errors.append(e.kind)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and errors == ["conflict"] * 15


def test_record_paths_follow_the_lifecycle(pool):
    m = pool.machines()[0]
    assert m["state"] == P.UNLEASED and m["mac"] in dict(pool.unleased())
    pool.lease(m["id"], {"name": "n", "address": "10.0.0.9"}, "plunder")
    assert m["mac"] not in dict(pool.unleased())
    assert pool.record_seen(m["mac"]) == P.INSTALLING
    assert pool.record_event(m["mac"], "booting") == P.INSTALLING
    assert pool.record_event(m["id"], "provisioned") == P.PROVISIONED
    with pytest.raises(P.PoolError):
        pool.record_event(m["id"], "unleased")  # still leased
    pool.release(m["id"])
    assert pool.record_event(m["id"], "wiping") == P.WIPING
    assert pool.record_seen(m["mac"]) == P.UNLEASED
    events = [e[1] for e in pool.events([m["id"]])[m["id"]]]
    assert events[:4] == [P.EV_WAITING, P.EV_REGISTERING, P.EV_PREPARING, P.EV_PXE]
    assert P.EV_PHONED_HOME in events and P.EV_INSTALLING in events
    with pytest.raises(P.PoolError) as err:
        pool.record_event("nope", "alive")
    assert err.value.kind == "notfound"


def test_allocate_spreads_a_project_over_racks(tmp_path):
    p = P.Pool(str(tmp_path / "p.sqlite"), loop_period=2.0)
    p.populate(P.generate_machines(40, racks=4, sizes=("v1-small-x86",)))
    racks = []
    for i in range(4):
        mid = p.allocate("mini-lab", "v1-small-x86", {"name": "a%d" % i, "project": "proj"}, "metal",
                         rack_spread_project="proj")
        racks.append(p.get(mid)["rack"])
    assert len(set(racks)) == 4


def test_pool_file_errors(tmp_path):
    f = tmp_path / "p.yml"
    f.write_text("machines:\n  - mac: 52:54:00:00:00:01\n  - mac: 52-54-00-00-00-01\n")
    with pytest.raises(ValueError, match="duplicate mac"):
        P.load_pool_file(str(f))
    f.write_text("machines:\n  - size: x\n")
    with pytest.raises(ValueError, match="has no mac"):
        P.load_pool_file(str(f))


def test_hmac_vector_from_the_security_library(tmp_path):
    """key metal-admin, date 2024-01-01T00:00:00Z, GET, salt abc..x -> 6e53f6... (metal-stack/security)."""
    driver = load_driver("sim")
    lab = _Lab(str(tmp_path / "p.sqlite"), driver)
    face = MetalFace(lab, hmac_keys={"view": "v", "edit": "e", "admin": "metal-admin"}, lifetimes={"admin": 0})
    client = Client(face)
    headers = {"X-Date": "2024-01-01T00:00:00Z", "X-Data-Salt": "abcdefghijklmnopqrstuvwx",
               "Authorization": "Metal-Admin 6e53f61787e125661d1d4fbae56ea4b8aaa0874a299f84b4cfc1a0eaa27e571f"}
    assert client.get("/metal/v1/machine", headers=headers).status_code == 200
    headers["X-Data-Salt"] = "abcdefghijklmnopqrstuvwy"
    assert client.get("/metal/v1/machine", headers=headers).status_code == 403


def test_sim_shell_and_driver_interface(pool):
    assert issubclass(type(load_driver("sim")), Driver)
    with pytest.raises(ValueError):
        load_driver("nope")
    d = load_driver("sim", {"ssh_timeout": 0})
    d.pool = pool
    m = pool.machines()[1]
    ok, out, err = d.run_command(dict(m, address="10.0.0.2"), "uptime")
    assert (ok, out, err) == (False, "", "dial tcp 10.0.0.2:22: i/o timeout")
    pool.lease(m["id"], {"name": "x", "hostname": "x1", "address": "10.0.0.2"}, "plunder")
    pool.record_seen(m["mac"])
    pool.record_event(m["id"], "provisioned")
    m = pool.get(m["id"])
    assert d.run_command(m, "sudo -n -u root hostname") == (True, "x1", "")
    assert d.run_command(m, "false") == (False, "", "Process exited with status 1")
    assert d.run_command(m, "exit 3")[2] == "Process exited with status 3"
    ok, out, _ = d.run_command(m, "dd if=/dev/zero of=/dev/sda bs=1024k count=1000")
    assert ok and "records out" in out and pool.get(m["id"])["disk_state"] == "blank"


def test_without_virtual_loop_only_recently_seen_machines_are_allocatable(tmp_path):
    p = P.Pool(str(tmp_path / "p.sqlite"))  # no loop_period: a real driver reports sightings
    p.populate(P.generate_machines(3, sizes=("v1-small-x86",)))
    conn = p._conn()
    conn.execute("UPDATE machines SET last_seen=?", (1.0,))
    with pytest.raises(P.PoolError) as err:
        p.allocate("mini-lab", "v1-small-x86", {"name": "x"}, "metal")
    assert err.value.kind == "unavailable"
    mac = p.machines()[1]["mac"]
    p.record_seen(mac)
    mid = p.allocate("mini-lab", "v1-small-x86", {"name": "x"}, "metal")
    assert p.get(mid)["mac"] == mac
    assert [m for m, _ in p.unleased()] != []  # stale sightings stay listed, as in plunder


def test_repeated_phoned_home_is_swallowed_and_old_pools_migrate(tmp_path):
    import sqlite3
    path = str(tmp_path / "old.sqlite")
    p = P.Pool(path, loop_period=2.0)
    p.populate(P.generate_machines(2))
    m = p.machines()[0]
    p.lease(m["id"], {"name": "n"}, "metal")
    p.record_seen(m["mac"])
    p.record_event(m["id"], "provisioned")
    first = p.get(m["id"])["event_time"]
    p.record_event(m["id"], "provisioned")
    events = [e[1] for e in p.events([m["id"]])[m["id"]]]
    assert events.count(P.EV_PHONED_HOME) == 1
    assert p.get(m["id"])["event_time"] >= first
    p.close()
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE machines DROP COLUMN event_time")
    conn.close()
    again = P.Pool(path, loop_period=2.0)
    assert "event_time" in again.get(m["id"])


def test_example_pool_file_loads():
    import os
    path = os.path.join(os.path.dirname(__file__), "..", "..", "lab", "pool.example.yml")
    machines = P.load_pool_file(path)
    assert len(machines) == 6 and machines[0]["vendor"] == "Super Micro Computer, Inc."
    assert machines[-1]["id"] == "00000000-0000-0000-0000-0000000000a1"
    assert {m["labels"]["role"] for m in machines} == {"control-plane", "worker", "storage"}


def test_image_cache_prune_keeps_the_current_recipe_and_recent_entries(tmp_path):
    import os
    import time

    from fleetlab.cli import main as cli_main
    from fleetlab.vm import images

    current = [tmp_path / ("rootfs-" + images.rootfs_key()), tmp_path / ("os-" + images.os_key())]
    old = [tmp_path / "rootfs-0000000000000000", tmp_path / "os-1111111111111111"]
    recent = tmp_path / "os-2222222222222222"
    other = tmp_path / "libvirt-cache-nokvm"
    for path in current + old + [recent, other]:
        path.mkdir()
        (path / images.USED_STAMP).touch()
    day_ago = time.time() - images.PRUNE_AFTER - 60
    for path in current + old:
        os.utime(path / images.USED_STAMP, (day_ago, day_ago))

    assert images.prune(str(tmp_path), log=None) == sorted(p.name for p in old)
    assert all(p.is_dir() for p in current + [recent, other]) and not any(p.exists() for p in old)
    # the command line prunes every old recipe unless told an age
    assert cli_main(["prune-images", "--cache", str(tmp_path), "--older-than", "1"]) == 0
    assert recent.is_dir()
    assert cli_main(["prune-images", "--cache", str(tmp_path)]) == 0
    assert not recent.exists() and all(p.is_dir() for p in current + [other])


def test_boot_order_in_domain_xml_as_the_lab_and_a_redfish_bmc_write_it():
    from fleetlab.vm import xmldefs

    xml = xmldefs.domain_xml("fl1-0", "52:54:00:00:00:01", "fl1", "/lab/d.qcow2", "/lab/c.log")
    assert xmldefs.boot_order(xml) == ("network", "disk")
    no_pxe = xmldefs.with_boot_order(xml, ("disk",))
    assert xmldefs.boot_order(no_pxe) == ("disk",)
    assert "52:54:00:00:00:01" in no_pxe and "/lab/d.qcow2" in no_pxe  # nothing else changed
    assert xmldefs.boot_order(xmldefs.with_boot_order(no_pxe, ("disk", "network"))) == ("disk", "network")
    # the older form a BMC emulator may leave: <os><boot dev=.../>
    legacy = xml.replace("<bios ", "<boot dev='hd'/><boot dev='network'/><bios ")
    assert xmldefs.boot_order(legacy) == ("disk", "network")
    assert xmldefs.boot_order(xmldefs.with_boot_order(legacy, ("network", "disk"))) == ("network", "disk")


def test_the_lab_bmc_knows_which_systems_have_no_power(tmp_path):
    import json

    from fleetlab.vm.bmc_emulator import held_off_systems

    assert held_off_systems(str(tmp_path)) == set()  # no faults, no map: nothing held off
    (tmp_path / "bmc.json").write_text(json.dumps({"bmc": {}, "machines": {
        "52:54:00:00:00:01": {"system_id": "uuid-1"}, "52:54:00:00:00:02": {"system_id": "uuid-2"}}}))
    (tmp_path / "faults.json").write_text(json.dumps({
        "m1": {"kind": "power-off", "mac": "52:54:00:00:00:01"}, "m2": {"kind": "hang", "mac": "52:54:00:00:00:02"}}))
    assert held_off_systems(str(tmp_path)) == {"uuid-1"}


class _VMStandIn:
    """What the libvirt driver's run_command asks of its VMLab: SSH that answers or not, power."""

    def __init__(self, answers):
        self.answers = answers
        self.powered = []
        self.commands = []

    def machine(self, mac):
        return type("M", (), {"ip": "10.77.9.10", "hypervisor": "local"})()

    def ssh_answers(self, mac, timeout=2.0):
        return self.answers

    def ssh(self, mac, command, timeout=None, stdin=None):
        self.commands.append(command)
        return 127, "", "tee: error while loading shared libraries"  # the zeroed disk

    def power(self, mac, action):
        self.powered.append((mac, action))


@pytest.mark.parametrize("ssh_answers", [True, False])
def test_libvirt_plunder_wipe_reboots_a_blank_machine_whether_or_not_ssh_answers(pool, ssh_answers):
    """plunder's wipe map ends with a sysrq reboot over SSH. Once dd zeroed the disk the command
    cannot run, and SSH itself may no longer answer (sshd cannot re-exec itself): either way the
    lab reboots the machine out of band, as its kernel would, and it falls back into the loop."""
    d = load_driver("libvirt")
    d.pool = pool
    d.vm = _VMStandIn(ssh_answers)
    m = pool.machines()[0]
    pool.set_columns(m["id"], disk_state="os")
    reboot = ("tee /proc/sysrq-trigger", "b")
    ok, _, err = d.run_command(m, reboot[0], timeout=2, stdin=reboot[1])
    assert not ok and d.vm.powered == []  # the disk still holds its OS: nothing out of band
    pool.set_columns(m["id"], disk_state="blank")
    ok, _, err = d.run_command(m, reboot[0], timeout=2, stdin=reboot[1])
    assert not ok and d.vm.powered == [(m["mac"], "reset")]
    assert err == ("Process exited with status 127" if ssh_answers else "dial tcp 10.77.9.10:22: i/o timeout")
    d.vm.powered.clear()
    ok, _, _ = d.run_command(m, "uptime", stdin="b")  # any other command: no reboot
    assert d.vm.powered == []
