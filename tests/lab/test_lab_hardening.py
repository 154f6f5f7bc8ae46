"""Hostile input to the lab's faces: clear 4xx / envelope errors, the pool unchanged, and the
lab's own resources (memory, threads, file modes, process arguments) bounded and private."""
import json
import os
import socket
import stat
import subprocess
import sys
import time

import pytest

from labclients import Metal, Plunder
from labclients import pool_snapshot as _snapshot

pytestmark = pytest.mark.lab

BOMB = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] +
                 ["%s: &%s [%s]" % (k, k, ", ".join(["*" + p] * 9)) for p, k in zip("abcdef", "bcdefg")]) + "\n"


def pool_snapshot(lab):
    """Leases, addresses and stored configuration (not the loop's last-seen times)."""
    snap = _snapshot(lab)
    return snap["ips"], snap["kv"]


def _config_size(plunder):
    return len(json.dumps(plunder.call("GET", "/config")["payload"]))


def test_yaml_alias_bomb_is_refused_and_nothing_stored(fresh_lab):
    plunder = Plunder(fresh_lab.plunder_config)
    assert len(BOMB) < 400
    before = _config_size(plunder)
    t0 = time.monotonic()
    env = plunder.call("POST", "/config", BOMB.encode())
    assert "Unable to parse configuration" in env["error"] and "expands past" in env["error"]
    assert time.monotonic() - t0 < 5
    assert _config_size(plunder) == before
    many = "x: &x 1\n" + "".join("k%d: *x\n" % i for i in range(100))
    env = plunder.call("POST", "/config", many.encode())
    assert "more than 64 YAML aliases" in env["error"]
    # a few aliases are still fine (real configs use them)
    assert plunder.call("POST", "/config", b"base: &b {adapter: eth0}\nother: *b\n") == {}


def test_plunder_face_refuses_malformed_boot_configs_and_deployments(fresh_lab):
    plunder = Plunder(fresh_lab.plunder_config)
    snap = pool_snapshot(fresh_lab)
    mac = plunder.unleased()[0]["mac"] if plunder.unleased() else "52:54:00:00:00:01"
    env = plunder.call("POST", "/deployment", {"mac": mac, "bootConfigName": [1],
                                              "config": {"address": "10.77.30.1", "hostname": "x"}})
    assert env["error"] == "Unable to parse deployment configuration"
    assert "Internal" not in env.get("warning", "")
    env = plunder.call("POST", "/config/boot/x", {"configName": "", "kernelPath": "/k"})
    assert env["error"] == "Boot Configuration has no configName"
    env = plunder.call("POST", "/config/boot/x", {"configName": ["a"]})
    assert "cannot unmarshal" in env["error"]
    assert pool_snapshot(fresh_lab) == snap


@pytest.mark.parametrize("body,status,text", [
    (b"[" * 100000 + b"]" * 100000, 400, "exceeded max depth"),
    ({"tags": [{}]}, 400, "cannot unmarshal object into Go struct field MachineSearchQuery.tags of type string"),
    ({"hardware_memory": 10 ** 30}, 400, "of type int64"),
    ({"hardware_memory": 1e30}, 400, "of type int64"),
])
def test_metal_face_answers_hostile_find_bodies_with_400(fresh_lab, body, status, text):
    metal = Metal(fresh_lab.metal_url, fresh_lab.hmac_keys["view"], "Metal-View")
    snap = pool_snapshot(fresh_lab)
    got, reply = metal.raw("POST", "/v1/machine/find", body)
    assert got == status, reply
    assert text in reply["message"]
    assert pool_snapshot(fresh_lab) == snap


def test_pool_files_are_owner_only(fresh_lab):
    for name in ("pool.sqlite", "pool.sqlite-wal", "pool.sqlite-shm"):
        path = os.path.join(fresh_lab.state_dir, name)
        if os.path.exists(path):
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, name


def test_up_keeps_keys_and_tokens_out_of_process_arguments(tmp_path):
    state = str(tmp_path / "lab")
    key, token = "edit-key-never-in-ps", "token-never-in-ps"
    out = subprocess.run([sys.executable, "-m", "fleetlab", "up", "--state", state, "--machines", "2",
                          "--plunder-port", "0", "--metal-port", "0", "--hmac-edit-key", key,
                          "--metal-token", "view=" + token], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    try:
        with open(os.path.join(state, "lab.json")) as fh:
            info = json.load(fh)
        with open("/proc/%d/cmdline" % info["pid"], "rb") as fh:
            argv = fh.read().decode()
        assert key not in argv and token not in argv
        assert info["hmac_keys"]["edit"] == key  # and the server did get them
        got, _reply = Metal(info["metal_url"], None).raw("GET", "/v1/machine", auth=False,
                                                         headers={"Authorization": "Bearer " + token})
        assert got == 200
    finally:
        subprocess.run([sys.executable, "-m", "fleetlab", "down", "--state", state], capture_output=True, timeout=60)


def test_idle_connections_are_bounded_and_time_out(tmp_path):
    from fleetlab.testing import LabServer

    lab = LabServer(state_dir=str(tmp_path / "lab"), machines=2, max_connections=20, idle_timeout=2).start()
    socks = []
    try:
        proc = "/proc/%d/status" % lab.pid

        def threads():
            with open(proc) as fh:
                return int([line for line in fh if line.startswith("Threads:")][0].split()[1])

        base = threads()
        port = lab.info["metal_port"]
        for _ in range(60):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.5)
        assert threads() <= base + 20 + 2, (base, threads())
        # served as usual meanwhile? once the idle ones are gone, yes
        time.sleep(3)
        assert threads() <= base + 2
        metal = Metal(lab.metal_url, lab.hmac_keys["view"], "Metal-View")
        assert metal.raw("GET", "/v1/machine")[0] == 200
        closed = 0
        for s in socks:
            try:
                closed += s.recv(1) == b""
            except OSError:
                closed += 1
        assert closed == len(socks)
    finally:
        for s in socks:
            s.close()
        lab.stop()


@pytest.mark.parametrize("path", ["/deployment", "/config/boot/x", "/parlay", "/deployment/global"])
def test_plunder_face_refuses_json_nested_too_deep(fresh_lab, path):
    plunder = Plunder(fresh_lab.plunder_config)
    snap = pool_snapshot(fresh_lab)
    method = "PATCH" if path == "/deployment/global" else "POST"
    status, _ctype, data = plunder.raw(method, path, b"[" * 100000 + b"]" * 100000)
    env = json.loads(data)
    assert status == 200 and env.get("error") and "Internal" not in env.get("warning", "")
    assert pool_snapshot(fresh_lab) == snap
