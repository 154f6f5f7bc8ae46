"""The vagrant driver: the same lab with machines made by Vagrant from lab/Vagrantfile (PXE-only, no
box). One machine loops, is leased through metal-api, installs, answers SSH, is freed and loops
again; everything Vagrant and the lab created is gone after the lab stops."""
import json
import os
import subprocess
import time

import pytest

from labclients import Metal, Plunder, allocate_body, wait_until

pytestmark = [pytest.mark.lab, pytest.mark.vm]


def test_vagrant_machine_loops_installs_and_wipes(vm_host, tmp_path):
    from fleetlab.vm import host, images, vagrantenv

    reason = host.cannot_run_vms() or vagrantenv.missing()
    if reason:
        print("SKIP vagrant lab: %s" % reason)
        pytest.skip(reason)
    images.cached_os()
    from fleetlab.testing import LabServer
    from fleetlab.vm.lab import lab_id

    state = str(tmp_path / "lab")
    key = str(tmp_path / "id_test")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    pub = open(key + ".pub").read().strip()
    lab = LabServer(state_dir=state, machines=1, driver="vagrant", start_timeout=120, driver_opt=["loop_wait=1"])
    lab.start()
    name = "fl" + lab_id(state)
    try:
        def running():
            try:
                data = json.load(open(os.path.join(state, "driver.json")))
            except (OSError, ValueError):
                return False
            assert data["phase"] != "failed", data
            return data["phase"] == "ready"

        wait_until(running, 1800, "the vagrant lab running")
        plunder = Plunder(lab.plunder_config)
        metal = Metal(lab.metal_url, lab.hmac_keys["edit"])
        (m,) = metal.ok("GET", "/v1/machine")
        mac = m["hardware"]["nics"][0]["mac"]
        # Vagrant made the domain, in the lab's storage pool, from lab/Vagrantfile
        out = subprocess.run(["vagrant", "status", "--machine-readable"], capture_output=True, text=True,
                             env=vagrantenv._env({"spec": os.path.join(state, "vm", "vagrant-spec.json"),
                                                  "dotfile": os.path.join(state, "vm", "vagrant")}))
        assert "%s,state,running" % (name + "-1") in out.stdout, out.stdout + out.stderr
        wait_until(lambda: [i for i in plunder.unleased() if i["mac"] == mac], 180, "the machine in the loop")
        t = time.time()
        metal.ok("POST", "/v1/machine/allocate", allocate_body("vg-1", uuid=m["id"], ssh_pub_keys=[pub]))
        wait_until(lambda: metal.ok("GET", "/v1/machine/" + m["id"])["events"]["log"][0]["event"] == "Phoned Home",
              420, "Phoned Home")
        print("\nvagrant machine: lease -> SSH ready %.1f s" % (time.time() - t))
        access = json.load(open(os.path.join(state, "vm", "ssh.json")))
        entry = access["machines"][mac]
        res = subprocess.run(["ssh", "-F", "/dev/null", "-i", key, "-p", str(entry["ssh_port"]), "-o", "BatchMode=yes",
                              "-o", "UserKnownHostsFile=" + access["known_hosts"], "-o", "HostKeyAlias=" + entry["name"],
                              "root@127.0.0.1", "cat /etc/hostname"], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0 and res.stdout.strip() == "vg-1", res.stderr
        metal.ok("DELETE", "/v1/machine/%s/free" % m["id"])
        wait_until(lambda: [i for i in plunder.unleased() if i["mac"] == mac], 180, "the freed machine back in the loop")
    finally:
        lab.stop(timeout=120)
    assert not os.path.exists("/run/netns/" + name)
    assert not os.path.exists("/run/fleetlab/" + lab_id(state))
    assert not os.path.exists(os.path.join(state, "vmlab.json"))
