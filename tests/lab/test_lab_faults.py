"""fleetlab fault on the sim lab: a machine powered off and held off until the fault is cleared."""
import json
import os
import subprocess
import sys
import time

import pytest

from labclients import Metal, allocate_body, validate, wait_until

pytestmark = pytest.mark.lab

FLEETLAB = [sys.executable, "-m", "fleetlab"]


def run(*args):
    return subprocess.run(FLEETLAB + list(args), capture_output=True, text=True, timeout=120)


def _machine(state, mid):
    out = run("status", "--state", state, "--json", "--limit", "0")
    return [m for m in json.loads(out.stdout)["machines"] if m["id"] == mid][0]


def _powerstate(metal, mid):
    ipmi = metal.ok("GET", "/v1/machine/%s/ipmi" % mid)
    validate(ipmi, "v1.MachineIPMIResponse")
    return ipmi["ipmi"]["powerstate"]


def _faults(state):
    with open(os.path.join(state, "faults.json")) as fh:
        return json.load(fh)


def test_power_off_holds_the_machine_off_until_cleared(fresh_lab, metal):
    state = fresh_lab.state_dir
    alloc = metal.ok("POST", "/v1/machine/allocate", allocate_body("faulty"))
    mid, mac = alloc["id"], alloc["hardware"]["nics"][0]["mac"]
    wait_until(lambda: metal.ok("GET", "/v1/machine/%s" % mid)["events"]["log"][0]["event"] == "Phoned Home", 30,
               "the machine provisioned", step=0.2)
    assert _powerstate(metal, mid) == "ON"

    out = run("fault", "faulty", "power-off", "--state", state)  # by hostname
    assert out.returncode == 0, out.stderr
    assert mac in out.stdout and "power off" in out.stdout
    assert _powerstate(metal, mid) == "OFF"
    # a power loss, not a planned power-off: no event
    assert metal.ok("GET", "/v1/machine/%s" % mid)["events"]["log"][0]["event"] == "Phoned Home"
    row = _machine(state, mid)
    assert row["power"] == "off" and row["fault"]["kind"] == "power-off"
    assert _faults(state)[mid]["kind"] == "power-off"
    lines = run("status", "--state", state, "--limit", "0").stdout.splitlines()
    assert [line for line in lines if line.startswith("MAC")][0].split()[-2:] == ["POWER", "FAULT"]
    assert [line for line in lines if line.startswith(mac)][0].split()[-2:] == ["off", "power-off"]
    assert "1 with a fault" in "\n".join(lines)

    # held off: neither a metal power on nor the lab's own steps (free: wipe, back to the loop) start it
    metal.ok("POST", "/v1/machine/%s/power/on" % mid, {})
    metal.ok("DELETE", "/v1/machine/%s/free" % mid)
    time.sleep(3)  # the fast preset wipes in 1 s
    assert _powerstate(metal, mid) == "OFF"
    assert _machine(state, mid)["state"] == "wiping"

    assert _machine(state, mid)["hostname"] != "faulty"  # freed: the member's name is gone
    out = run("fault", "faulty", "clear", "--state", state)  # by the hostname it had when it failed
    assert out.returncode == 0, out.stderr
    assert "cleared" in out.stdout
    assert _powerstate(metal, mid) == "ON"
    assert mid not in _faults(state)
    assert _machine(state, mid)["fault"] is None
    wait_until(lambda: _machine(state, mid)["state"] == "unleased", 30, "the wiped machine back in the loop",
               step=0.2)
    lines = run("status", "--state", state, "--limit", "0").stdout.splitlines()
    assert [line for line in lines if line.startswith("MAC")][0].split()[-1] == "POWER"
    again = run("fault", mac, "clear", "--state", state)
    assert again.returncode == 0 and "has no fault" in again.stdout


def test_fault_errors(fresh_lab, metal, tmp_path):
    state = fresh_lab.state_dir
    out = run("fault", "no-such-machine", "power-off", "--state", state)
    assert out.returncode == 1 and "no machine 'no-such-machine'" in out.stderr
    out = run("fault", "no-such-machine", "reboot", "--state", state)
    assert out.returncode == 2 and "invalid choice" in out.stderr
    for name in ("twin-a", "twin-b"):
        metal.ok("POST", "/v1/machine/allocate", allocate_body(name, hostname="twin"))
    out = run("fault", "twin", "power-off", "--state", state)
    assert out.returncode == 1 and "names 2 machines" in out.stderr
    assert not os.path.exists(os.path.join(state, "faults.json"))
    out = run("fault", "twin-a", "power-off", "--state", str(tmp_path / "no-lab"))
    assert out.returncode == 1 and "not running" in out.stderr


def test_fault_outlasts_a_restart(tmp_path):
    from fleetlab.testing import LabServer

    lab = LabServer(state_dir=str(tmp_path / "lab"), machines=3).start()
    try:
        mid = "000001ab-0000-0000-0000-000000000002"
        out = run("fault", "…00000002", "power-off", "--state", lab.state_dir)  # the id as status shows it
        assert out.returncode == 0, out.stderr
        lab.stop()
        # a fault recorded by a lab that stopped before the machine was off: the next start makes it so
        other = "000001ab-0000-0000-0000-000000000003"
        faults = _faults(lab.state_dir)
        faults[other] = dict(faults[mid], mac="")
        with open(os.path.join(lab.state_dir, "faults.json"), "w") as fh:
            json.dump(faults, fh)
        lab.start()
        metal = Metal(lab.metal_url, lab.hmac_keys["edit"])
        assert _powerstate(metal, mid) == "OFF" and _powerstate(metal, other) == "OFF"
        metal.ok("POST", "/v1/machine/%s/power/reset" % mid, {})
        assert _powerstate(metal, mid) == "OFF"
        assert _machine(lab.state_dir, mid)["fault"]["kind"] == "power-off"
        assert run("fault", mid, "clear", "--state", lab.state_dir).returncode == 0
        assert _powerstate(metal, mid) == "ON"
    finally:
        lab.stop()


def _answers(plunder, ip):
    """One parlay uptime over SSH, as cluster-api-plunder probes a machine: True when it answered."""
    logs = "/parlay/logs/" + ip.replace(".", "-")
    plunder.call("DELETE", logs)
    assert plunder.call("POST", "/parlay", {"deployments": [{
        "name": "probe", "hosts": [ip], "parallel": False, "parallelSessions": 0,
        "actions": [{"name": "uptime", "type": "command", "timeout": 0, "command": "uptime"}]}]}) == {}
    deadline = time.time() + 15
    while True:
        payload = plunder.call("GET", logs).get("payload")
        if payload and payload["state"] != "Running":
            return payload["state"] == "Completed"
        assert time.time() < deadline, payload
        time.sleep(0.1)


def test_hang_freezes_until_a_power_reset(fresh_lab, plunder, metal):
    """hang: power stays on, the OS stops answering; a power reset through the BMC (metal's power
    API) ends it and the machine answers again; a second fault is refused meanwhile; clear ends it too."""
    state = fresh_lab.state_dir
    mac, ip = plunder.unleased()[0]["mac"], "10.77.3.5"
    assert plunder.call("POST", "/deployment", {"mac": mac, "bootConfigName": "preseed",
                                                "config": {"address": ip, "hostname": "frozen"}}) == {}
    wait_until(lambda: _answers(plunder, ip), 30, "the machine answering over SSH", step=0.2)
    mid = [m for m in json.loads(run("status", "--state", state, "--json", "--limit", "0").stdout)["machines"]
           if m["mac"] == mac][0]["id"]

    out = run("fault", "frozen", "hang", "--state", state)
    assert out.returncode == 0, out.stderr
    assert "fault hang, power on until a power reset" in out.stdout
    assert _powerstate(metal, mid) == "ON"
    assert not _answers(plunder, ip)
    assert _machine(state, mid)["fault"]["kind"] == "hang"
    refused = run("fault", "frozen", "power-off", "--state", state)
    assert refused.returncode == 1 and "already has the fault hang" in refused.stderr

    metal.ok("POST", "/v1/machine/%s/power/reset" % mid, {})
    assert _machine(state, mid)["fault"] is None and mid not in _faults(state)
    wait_until(lambda: _answers(plunder, ip), 30, "the reset machine answering again", step=0.2)

    assert run("fault", "frozen", "hang", "--state", state).returncode == 0
    assert not _answers(plunder, ip)
    cleared = run("fault", "frozen", "clear", "--state", state)
    assert cleared.returncode == 0 and "fault hang cleared" in cleared.stdout
    assert _answers(plunder, ip)


def test_kill_kubelet_needs_a_machine_that_runs_one(fresh_lab, metal):
    state = fresh_lab.state_dir
    metal.ok("POST", "/v1/machine/allocate", allocate_body("nokubelet"))
    out = run("fault", "nokubelet", "kill-kubelet", "--state", state)
    assert out.returncode == 1 and "simulated machines run no kubelet" in out.stderr
    assert not os.path.exists(os.path.join(state, "faults.json"))


def test_boot_order_faults_until_the_boot_device_is_the_network(fresh_lab, metal, plunder):
    """boot-disk: an installed machine boots its old OS instead of the reinstall it was sent, and
    after a free it never reaches the wipe (which runs from the network boot): it stays wiping until
    its boot device is set to the network and it is reset. no-pxe: a blank machine boots nothing and
    leaves the loop, until its boot device is set to the network."""
    state = fresh_lab.state_dir
    alloc = metal.ok("POST", "/v1/machine/allocate", allocate_body("old-os"))
    old = alloc["id"]
    wait_until(lambda: metal.ok("GET", "/v1/machine/%s" % old)["events"]["log"][0]["event"] == "Phoned Home", 30,
               "the machine provisioned", step=0.2)
    out = run("fault", "old-os", "boot-disk", "--state", state)
    assert out.returncode == 0, out.stderr
    assert "until its boot device is set to the network (BMC)" in out.stdout

    def installs():
        return [e["event"] for e in metal.ok("GET", "/v1/machine/%s" % old)["events"]["log"]].count("Installing")

    before = installs()
    metal.ok("POST", "/v1/machine/%s/reinstall" % old, {"imageid": "debian-12"})
    time.sleep(2)  # the fast preset installs in 1.5 s
    row = _machine(state, old)
    assert row["state"] == "provisioned" and row["fault"]["kind"] == "boot-disk" and installs() == before
    metal.ok("DELETE", "/v1/machine/%s/free" % old)
    time.sleep(3)  # the fast preset wipes in 1 s
    assert _machine(state, old)["state"] == "wiping"
    lines = run("status", "--state", state, "--limit", "0").stdout.splitlines()
    mac = alloc["hardware"]["nics"][0]["mac"]
    assert [line for line in lines if line.startswith(mac)][0].split()[-1] == "boot-disk"
    metal.ok("POST", "/v1/machine/%s/power/pxe" % old, {})
    assert _machine(state, old)["fault"] is None and _machine(state, old)["state"] == "wiping"
    metal.ok("POST", "/v1/machine/%s/power/reset" % old, {})
    wait_until(lambda: _machine(state, old)["state"] == "unleased", 30, "the reset machine back in the loop",
               step=0.2)

    blank = plunder.unleased()[0]["mac"]
    out = run("fault", blank, "no-pxe", "--state", state)
    assert out.returncode == 0, out.stderr
    assert blank not in [m["mac"] for m in plunder.unleased()]
    metal.ok("POST", "/v1/machine/%s/power/pxe" % _machine_by_mac(state, blank)["id"], {})
    wait_until(lambda: blank in [m["mac"] for m in plunder.unleased()], 30, "the machine back in the loop",
               step=0.2)
    assert _machine_by_mac(state, blank)["fault"] is None
    assert run("fault", blank, "boot-disk", "--state", state).returncode == 0
    cleared = run("fault", blank, "clear", "--state", state)
    assert cleared.returncode == 0 and "fault boot-disk cleared" in cleared.stdout


def _machine_by_mac(state, mac):
    out = run("status", "--state", state, "--json", "--limit", "0")
    return [m for m in json.loads(out.stdout)["machines"] if m["mac"] == mac][0]
