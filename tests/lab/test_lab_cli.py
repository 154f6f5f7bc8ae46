"""The fleetlab command: up / status / env / down as a user runs them, and pool sources."""
import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from labclients import Metal, Plunder

pytestmark = pytest.mark.lab

FLEETLAB = [sys.executable, "-m", "fleetlab"]


def run(*args, check=True):
    proc = subprocess.run(FLEETLAB + list(args), capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
    return proc


def test_up_status_env_down(tmp_path):
    state = str(tmp_path / "state")
    down = run("status", "--state", state, check=False)
    assert down.returncode == 1 and "DOWN" in down.stdout
    assert run("env", "--state", state, check=False).returncode == 1
    out = run("up", "--state", state, "--machines", "12", "--plunder-port", "0", "--metal-port", "0")
    try:
        assert "fleetlab up" in out.stdout
        info = json.load(open(os.path.join(state, "lab.json")))
        assert info["bind"] == "127.0.0.1" and info["plunder_url"].startswith("https://127.0.0.1:")
        env = run("env", "--state", state).stdout.splitlines()
        names = [line.split("=", 1)[0] for line in env]
        assert names == ["export PLUNDER_CLIENT_CONFIG", "export METALCTL_API_URL", "export METALCTL_HMAC",
                         "export METALCTL_HMAC_AUTH_TYPE"]
        values = dict(line[len("export "):].split("=", 1) for line in env)
        metal = Metal(values["METALCTL_API_URL"], values["METALCTL_HMAC"], values["METALCTL_HMAC_AUTH_TYPE"])
        body = {"name": "cli", "hostname": "cli", "projectid": "00000000-0000-0000-0000-000000000001",
                "partitionid": "mini-lab", "sizeid": "v1-small-x86", "imageid": "debian-12", "ssh_pub_keys": [],
                "networks": [{"networkid": "user-private-network", "autoacquire": True}]}
        leased = metal.ok("POST", "/v1/machine/allocate", body)
        assert len(Plunder(values["PLUNDER_CLIENT_CONFIG"]).unleased()) == 11
        st = run("status", "--state", state)
        assert "fleetlab is up" in st.stdout and "12 machines" in st.stdout
        lines = st.stdout.splitlines()
        header = [line for line in lines if line.startswith("MAC")][0]
        assert header.split() == ["MAC", "ID", "VENDOR", "SIZE", "RACK", "STATE", "SINCE", "LEASE", "HOSTNAME",
                                  "ADDRESS", "POWER"]
        row = [line for line in lines if leased["hardware"]["nics"][0]["mac"] in line][0]
        assert "cli" in row and leased["allocation"]["networks"][0]["ips"][0] in row and row.split()[-1] == "on"
        machine_json = json.loads(run("status", "--state", state, "--json").stdout)
        assert machine_json["up"] is True and len(machine_json["machines"]) == 12
        assert "hmac_keys" not in machine_json["info"]
        assert os.path.getsize(os.path.join(state, "fleetlab.log")) > 0
        again = run("up", "--state", state)
        assert "already running" in again.stdout
    finally:
        stopped = run("down", "--state", state)
    assert "stopped" in stopped.stdout
    assert run("status", "--state", state, check=False).returncode == 1
    assert not os.path.exists(os.path.join(state, "metal.env"))


def test_pool_file_and_restart_keeps_keys(tmp_path):
    from fleetlab.testing import LabServer
    pool = tmp_path / "pool.yml"
    pool.write_text(yaml.safe_dump({"machines": [
        {"mac": "52:54:00:00:02:01", "size": "v1-small-x86", "rack": "r1", "labels": {"role": "storage"}},
        {"mac": "AC-1F-6B-00-00-02", "size": "v1-medium-x86", "partition": "lab-b", "rack": "r2"},
        {"mac": "24:6e:96:00:00:03", "id": "00000000-0000-0000-0000-000000000003"},
    ]}))
    lab = LabServer(state_dir=str(tmp_path / "s"), machines=None, pool=str(pool))
    lab.start()
    try:
        metal = Metal(lab.metal_url, lab.hmac_keys["view"], "Metal-View")
        ms = {m["hardware"]["nics"][0]["mac"]: m for m in metal.ok("GET", "/v1/machine")}
        assert sorted(ms) == ["24:6e:96:00:00:03", "52:54:00:00:02:01", "ac:1f:6b:00:00:02"]
        assert ms["52:54:00:00:02:01"]["tags"] == ["role=storage"]
        assert ms["52:54:00:00:02:01"]["bios"]["vendor"] == "QEMU virtual NIC"
        assert ms["ac:1f:6b:00:00:02"]["partition"]["id"] == "lab-b"
        assert ms["ac:1f:6b:00:00:02"]["size"]["id"] == "v1-medium-x86"
        assert ms["24:6e:96:00:00:03"]["id"] == "00000000-0000-0000-0000-000000000003"
        keys = lab.hmac_keys
        lab.stop()
        lab.start()
        assert lab.hmac_keys == keys
        assert len(Metal(lab.metal_url, keys["edit"]).ok("GET", "/v1/machine")) == 3
    finally:
        lab.stop()


def test_bad_pool_file_is_refused(tmp_path):
    from fleetlab.testing import LabServer
    pool = tmp_path / "pool.yml"
    pool.write_text(yaml.safe_dump({"machines": [{"mac": "zz:00:00:00:00:01"}]}))
    lab = LabServer(state_dir=str(tmp_path / "s"), machines=None, pool=str(pool), start_timeout=20)
    with pytest.raises(RuntimeError) as err:
        lab.start()
    assert "invalid MAC address" in str(err.value)


def test_one_server_per_state_dir(fresh_lab):
    proc = subprocess.run(FLEETLAB + ["serve", "--state", fresh_lab.state_dir, "--plunder-port", "0",
                                      "--metal-port", "0", "--quiet"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "another server is running" in proc.stderr
    assert os.path.exists(os.path.join(fresh_lab.state_dir, "metal.env"))  # the running lab is untouched


def test_status_ids_tell_machines_apart():
    from fleetlab.cli import _short_ids

    ids = ["000001ab-0000-0000-0000-%012d" % i for i in range(1, 12)] + ["ffff"]
    short = _short_ids(ids)
    assert len(set(short.values())) == len(ids)
    assert short[ids[0]] == "…00000001" and short["ffff"] == "ffff"
    assert _short_ids(["x-10", "y-10"]) == {"x-10": "x-10", "y-10": "y-10"}


def test_report_draws_every_machine_and_its_events(tmp_path):
    import json
    import re
    import shutil
    import subprocess
    import sys

    from fleetlab.testing import LabServer

    lab = LabServer(state_dir=str(tmp_path / "lab"), machines=5).start()
    try:
        time.sleep(1.5)  # the sim's machines loop
        out = subprocess.run([sys.executable, "-m", "fleetlab", "report", "--state", lab.state_dir, "--minutes", "5"],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
    finally:
        lab.stop()
    page = out.stdout.split("report: ", 1)[1].strip()
    with open(page[:-5] + ".json") as fh:
        data = json.load(fh)
    assert len(data["rows"]) == 5 and all(r["bars"] for r in data["rows"])
    text = open(page).read()
    assert len(re.findall(r'<rect [^>]*class="bar"', text)) == sum(len(r["bars"]) for r in data["rows"])
    chromium = shutil.which("chromium")
    if chromium:
        dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                              "--disable-background-networking", "--disable-component-update", "--disable-sync",
                              "--user-data-dir=%s" % (tmp_path / "profile"), "--dump-dom", "file://" + page],
                             capture_output=True, text=True, timeout=120)
        assert dom.returncode == 0 and dom.stdout.count('class="bar"') == text.count('class="bar"')
