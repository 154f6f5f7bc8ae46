"""The plunder face over real HTTPS sockets: discovery, envelope, unleased, deployments, parlay."""
import datetime
import json
import sqlite3
import ssl
import time
import urllib.error
import urllib.request

import pytest

from labclients import Plunder, pool_snapshot

pytestmark = pytest.mark.lab

ENDPOINT_NAMES = [
    ("apis", "GET", "/api"), ("apiFunctions", "GET", "/api"), ("config", "GET", "/config"),
    ("config", "POST", "/config"), ("configBoot", "POST", "/config/boot"), ("configBoot", "DELETE", "/config/boot"),
    ("dhcp", "GET", "/dhcp"), ("deployments", "GET", "/deployments"), ("deployments", "POST", "/deployments"),
    ("deployment", "POST", "/deployment"), ("deployment", "PATCH", "/deployment"),
    ("deploymentID", "GET", "/deployment"), ("deploymentID", "PATCH", "/deployment"),
    ("deploymentID", "DELETE", "/deployment"), ("deploymentMac", "DELETE", "/deployment/mac"),
    ("deploymentAddress", "DELETE", "/deployment/address"), ("parlay", "POST", "/parlay"),
    ("parlayLog", "GET", "/parlay/logs"), ("parlayLog", "DELETE", "/parlay/logs"),
]


def _wait(predicate, timeout=15.0, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not reached within %ss" % timeout)


def _lease_of(lab, mac):
    conn = sqlite3.connect("file:%s?mode=ro" % lab.pool_path, uri=True, timeout=30)
    try:
        (raw,) = conn.execute("SELECT lease FROM machines WHERE mac = ?", (mac,)).fetchone()
    finally:
        conn.close()
    return json.loads(raw)


def _parlay(name, ip, actions):
    return {"deployments": [{"name": name, "hosts": [ip], "parallel": False, "parallelSessions": 0,
                             "actions": actions}]}


UPTIME = [{"name": "Cluster-API provisioning uptime command", "type": "command", "timeout": 0, "command": "uptime"}]
WIPE = [
    {"name": "Cluster-API machine [enable sysrq]", "type": "command", "timeout": 0,
     "command": "tee /proc/sys/kernel/sysrq", "commandSudo": "root", "commandPipeCmd": "echo \"1\""},
    {"name": "Cluster-API machine [disk wipe]", "type": "command", "timeout": 0,
     "command": "dd if=/dev/zero of=/dev/sda bs=1024k count=1000", "commandSudo": "root"},
    {"name": "Cluster-API machine [reset]", "type": "command", "timeout": 2, "command": "tee /proc/sysrq-trigger",
     "commandSudo": "root", "commandPipeCmd": "echo \"b\""},
]


def test_tls_trusts_only_the_config_cert(fresh_lab):
    client = Plunder(fresh_lab.plunder_config)
    assert client.base.startswith("https://127.0.0.1:")
    # a client with the system CAs must refuse the lab's self-signed certificate
    with pytest.raises(urllib.error.URLError) as err:
        urllib.request.urlopen(client.base + "/api", context=ssl.create_default_context(), timeout=10)
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)
    assert client.call("GET", "/api")["payload"]
    # also under the strict X.509 checks newer Pythons enable by default
    client.ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    assert client.call("GET", "/api")["payload"]


@pytest.mark.parametrize("name,method,path", ENDPOINT_NAMES)
def test_discovery(plunder, name, method, path):
    payload = plunder.call("GET", "/api/%s/%s" % (name, method))["payload"]
    assert list(payload) == ["name", "path", "functionEndpoint", "description", "method"]
    assert (payload["name"], payload["method"], payload["path"]) == (name, method, path)


def test_discovery_unknown_and_envelope_errors(plunder):
    body = plunder.call("GET", "/api/nosuch/GET")
    assert body == {"warning": "Unable to find HTTP method [GET] for function [nosuch]",
                    "error": "Error looking up in API Server"}
    status, ctype, data = plunder.raw("GET", "/nope")
    assert (status, data) == (404, b"404 page not found\n")
    assert ctype.startswith("text/plain")
    status, _, _ = plunder.raw("PUT", "/deployment")
    assert status == 405
    assert len(plunder.call("GET", "/api")["payload"]) == len(ENDPOINT_NAMES)


def test_unleased_lists_every_looping_machine_with_fresh_time(fresh_lab, plunder):
    items = plunder.unleased()
    assert len(items) == 24
    assert all(set(i) == {"mac", "time"} for i in items)
    now = datetime.datetime.now(datetime.timezone.utc)
    for i in items:
        seen = datetime.datetime.fromisoformat(i["time"].replace("Z", "+00:00"))
        assert (now - seen).total_seconds() < 2 * 2.0 + 1  # loop period of the fast preset
        assert i["mac"] == i["mac"].lower()
    first = {i["mac"]: i["time"] for i in items}
    time.sleep(2.2)
    again = {i["mac"]: i["time"] for i in plunder.unleased()}
    assert all(again[m] > first[m] for m in first), "machines must be seen again every loop period"


def test_deployment_lifecycle_and_errors(fresh_lab, plunder):
    mac = plunder.unleased()[0]["mac"]
    path = plunder.discover("deployment", "POST")
    dep = {"mac": mac, "bootConfigName": "preseed",
           "bootConfig": {"configName": "", "configType": "", "kernelPath": "", "initrdPath": "", "cmdline": ""},
           "config": {"address": "10.77.1.10", "hostname": "cp-0"}}
    assert plunder.call("POST", path, dep) == {}
    assert mac not in [i["mac"] for i in plunder.unleased()]
    again = plunder.call("POST", path, dep)
    assert again == {"warning": "Error updating Deployment Configuration",
                     "error": "Duplicate entry for MAC address [%s]" % mac}
    got = plunder.call("GET", "/deployment/" + mac.replace(":", "-"))["payload"]
    assert got["bootConfig"]["configName"] == "preseed" and got["bootConfig"]["configType"] == "preseed"
    cfg = got["config"]
    assert cfg["address"] == "10.77.1.10" and cfg["hostname"] == "cp-0"
    assert cfg["gateway"] == "10.77.0.1" and cfg["username"] == "fleet"  # inherited from globalConfig
    assert cfg["lvmEnabled"] is False and cfg["swapDisabled"] is False
    listing = plunder.call("GET", "/deployments")["payload"]
    assert [d["mac"] for d in listing["deployments"]] == [mac]
    assert listing["globalConfig"]["gateway"] == "10.77.0.1"
    assert plunder.call("GET", "/deployment/00-00-00-00-00-99") == {"error": "Unable to find MAC"}
    # patch the address, delete by the new address
    patched = dict(dep, config={"address": "10.77.1.11", "hostname": "cp-0"})
    assert plunder.call("PATCH", "/deployment/" + mac.replace(":", "-"), patched) == {}
    assert plunder.call("GET", "/deployment/" + mac.replace(":", "-"))["payload"]["config"]["address"] == "10.77.1.11"
    missing = plunder.call("DELETE", "/deployment/address/10-77-1-10")
    assert missing == {"warning": "Error updating Deployment Configuration",
                       "error": "Unable to find existing deployment for Address [10-77-1-10]"}
    assert plunder.call("DELETE", "/deployment/address/10-77-1-11") == {}
    assert plunder.call("GET", "/deployments")["payload"]["deployments"] is None


def test_deployment_by_mac_delete_and_bad_input(fresh_lab, plunder):
    macs = [i["mac"] for i in plunder.unleased()]
    before = pool_snapshot(fresh_lab)
    bad = [
        (b"{not json", "Unable to parse deployment configuration"),
        ({"mac": macs[0], "bootConfigName": "nosuch", "config": {"address": "10.77.1.20"}},
         "Host [%s] uses unknown config [nosuch], stopping config update" % macs[0]),
        ({"mac": "de:ad:be:ef:00:01", "bootConfigName": "preseed", "config": {"address": "10.77.1.20"}},
         "Unknown MAC address [de:ad:be:ef:00:01]: not a machine of this lab"),
        ({"mac": macs[0], "bootConfigName": "preseed", "config": {"address": "10.77.1.300"}},
         "Invalid address [10.77.1.300] for MAC address [%s]" % macs[0]),
        (b"x" * (1024 * 1024 + 10), "http: request body too large"),
    ]
    for body, error in bad:
        out = plunder.call("POST", "/deployment", body)
        assert out["error"] == error and out["warning"], out
    assert plunder.call("POST", "/parlay", b"[1,")["warning"] == "Error parsing the parlay actions"
    assert pool_snapshot(fresh_lab) == before
    assert plunder.call("POST", "/deployment", {"mac": macs[1].upper(), "bootConfigName": "preseed",
                                                "config": {"address": "10.77.1.21", "hostname": "w"}}) == {}
    assert plunder.call("DELETE", "/deployment/mac/" + macs[1].replace(":", "-")) == {}
    assert plunder.call("DELETE", "/deployment/mac/" + macs[1].replace(":", "-"))["error"].startswith(
        "Unable to find existing deployment")


def test_parlay_uptime_then_wipe_back_to_loop(fresh_lab, plunder):
    mac = plunder.unleased()[0]["mac"]
    ip = "10.77.2.5"
    assert plunder.call("GET", "/parlay/logs/10-77-2-5") == {"warning": "Error reading Parlay Logs",
                                                              "error": "JSON Logging hasn't been enabled"}
    no_host = plunder.call("POST", "/parlay", _parlay("probe", ip, UPTIME))
    assert no_host == {"warning": "Error importing the hosts from deployment",
                       "error": "No deployment configurations found"}
    assert plunder.call("POST", "/deployment", {"mac": mac, "bootConfigName": "preseed",
                                                "config": {"address": ip, "hostname": "node-a"}}) == {}
    other = plunder.call("POST", "/parlay", _parlay("probe", "10.77.2.6", UPTIME))
    assert other["error"] == "Host [10.77.2.6] has no SSH credentials"
    # right after the lease the OS is not up: the probe fails like an SSH dial timeout, within a second
    started = time.time()
    assert plunder.call("POST", "/parlay", _parlay("probe", ip, UPTIME)) == {}
    log = _wait(lambda: plunder.call("GET", "/parlay/logs/10-77-2-5").get("payload"), timeout=5, step=0.05)
    created = datetime.datetime.fromisoformat(log["entries"][0]["created"].replace("Z", "+00:00")).timestamp()
    assert created - started < 1.0, "the first log entry must exist within a second of the POST"
    log = _wait(lambda: (lambda p: p if p["state"] != "Running" else None)(
        plunder.call("GET", "/parlay/logs/10-77-2-5")["payload"]))
    assert log["state"] == "Failed"
    assert log["entries"][0]["error"] == "dial tcp %s:22: i/o timeout" % ip
    assert log["entries"][0]["entry"] == "[No Output]"
    # the C-style wait loop until Completed
    deadline = time.time() + 20
    while True:
        plunder.call("POST", "/parlay", _parlay("probe", ip, UPTIME))
        time.sleep(0.5)
        log = plunder.call("GET", "/parlay/logs/10-77-2-5")["payload"]
        if log["state"] == "Completed":
            break
        assert time.time() < deadline
    assert " up " in log["entries"][-1]["entry"] and log["entries"][-1]["error"] == ""
    # deprovision as cluster-api-plunder does: wipe map, then delete without waiting
    assert plunder.call("POST", "/parlay", _parlay("Cluster-API de-provisioning", ip, WIPE)) == {}
    time.sleep(0.3)
    assert plunder.call("DELETE", "/deployment/address/10-77-2-5") == {}
    log = _wait(lambda: (lambda p: p if p["state"] == "Failed" and len(p["entries"]) >= 3 else None)(
        plunder.call("GET", "/parlay/logs/10-77-2-5")["payload"]))
    tasks = [(e["task"], e["error"]) for e in log["entries"][-3:]]
    assert tasks == [("Cluster-API machine [enable sysrq]", ""), ("Cluster-API machine [disk wipe]", ""),
                     ("Cluster-API machine [reset]", "Command Timed out")]
    _wait(lambda: mac in [i["mac"] for i in plunder.unleased()], timeout=10)
    assert plunder.call("DELETE", "/parlay/logs/10-77-2-5") == {}
    assert plunder.call("DELETE", "/parlay/logs/10-77-2-5")["error"] == (
        "In-Memory logging for [10.77.2.5] either doesn't exist or has already been deleted")


def test_boot_configs_and_global(fresh_lab, plunder):
    boot = {"configName": "ubuntu-lab", "configType": "preseed", "kernelPath": "/k", "initrdPath": "/i",
            "cmdline": "console=ttyS0"}
    assert plunder.call("POST", "/config/boot/ubuntu-lab", boot) == {}
    assert plunder.call("POST", "/config/boot/ubuntu-lab", boot) == {
        "warning": "Error duplicate Server Configuration", "error": "Boot Configuration [ubuntu-lab] already exists"}
    names = [b["configName"] for b in plunder.call("GET", "/config")["payload"]["bootConfigs"]]
    assert "ubuntu-lab" in names and "preseed" in names
    key = "c3NoLWVkMjU1MTkgQUFBQQ=="
    assert plunder.call("PATCH", "/deployment/global", {"gateway": "10.77.0.1", "subnet": "255.255.0.0",
                                                        "username": "ops", "sshkey": key}) == {}
    mac = plunder.unleased()[0]["mac"]
    assert plunder.call("POST", "/deployment", {"mac": mac, "bootConfigName": "ubuntu-lab",
                                                "config": {"address": "10.77.3.1", "hostname": "h"}}) == {}
    cfg = plunder.call("GET", "/deployment/" + mac.replace(":", "-"))["payload"]
    assert cfg["config"]["username"] == "ops" and cfg["config"]["sshkey"] == key
    # the lease handed to the lab's driver carries the effective key too (VMs install it)
    assert _lease_of(fresh_lab, mac)["sshkey"] == key
    assert cfg["bootConfig"]["cmdline"] == "console=ttyS0"
    assert plunder.call("DELETE", "/config/boot/nosuch")["error"] == "Unable to find boot configuration nosuch"
    assert plunder.call("DELETE", "/config/boot/ubuntu-lab") == {}


def test_bulk_deployments_replace_plunder_leases(fresh_lab, plunder):
    macs = [i["mac"] for i in plunder.unleased()][:3]
    doc = {"globalConfig": {"gateway": "10.77.0.1", "username": "bulk"},
           "deployments": [{"mac": m, "bootConfigName": "preseed",
                            "config": {"address": "10.77.4.%d" % n, "hostname": "b%d" % n}}
                           for n, m in enumerate(macs[:2])]}
    assert plunder.call("POST", "/deployments", doc) == {}
    listing = plunder.call("GET", "/deployments")["payload"]
    assert sorted(d["mac"] for d in listing["deployments"]) == sorted(macs[:2])
    assert listing["globalConfig"]["username"] == "bulk"
    doc["deployments"] = doc["deployments"][1:] + [{"mac": macs[2], "bootConfigName": "preseed",
                                                    "config": {"address": "10.77.4.9", "hostname": "b9"}}]
    assert plunder.call("POST", "/deployments", json.dumps(doc).encode()) == {}
    listing = plunder.call("GET", "/deployments")["payload"]
    assert sorted(d["mac"] for d in listing["deployments"]) == sorted(macs[1:3])
    assert macs[0] in [i["mac"] for i in plunder.unleased()]


def test_unleased_is_null_when_the_loop_is_empty(tmp_path):
    from fleetlab.testing import LabServer
    lab = LabServer(state_dir=str(tmp_path), machines=2)
    lab.start()
    try:
        client = Plunder(lab.plunder_config)
        for n, item in enumerate(client.unleased()):
            assert client.call("POST", "/deployment", {"mac": item["mac"], "bootConfigName": "preseed",
                                                       "config": {"address": "10.77.9.%d" % (n + 1)}}) == {}
        status, _, data = client.raw("GET", "/dhcp/unleased")
        assert (status, data) == (200, b'{"payload":null}\n')
        assert client.call("GET", "/dhcp/other") == {}
    finally:
        lab.stop()


def test_a_silent_tcp_client_does_not_stall_the_https_face(fresh_lab, plunder):
    import socket
    host, port = plunder.base[len("https://"):].rsplit(":", 1)
    silent = [socket.create_connection((host, int(port)), timeout=5) for _ in range(3)]
    try:
        started = time.time()
        assert plunder.call("GET", "/api/dhcp/GET")["payload"]["path"] == "/dhcp"
        assert time.time() - started < 5
    finally:
        for s in silent:
            s.close()
