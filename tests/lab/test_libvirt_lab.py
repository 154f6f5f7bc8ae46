"""The libvirt driver end to end: real VMs network-boot into plunder's reboot loop, are leased
through each API face, install the lab's OS image, answer SSH with the lease's key, are wiped
and come back into the loop. Skipped (with the reason printed) only where VMs cannot run at all.

Timings per machine are printed (run pytest with -s to see them) and kept in
``<state>/vm/timings.json``.
"""
import base64
import json
import os
import subprocess
import time

import pytest

from labclients import PRIVATE_NET, Metal, Plunder, allocate_body, vm_ssh, wait_until

pytestmark = [pytest.mark.lab, pytest.mark.vm]


def _reason():
    from fleetlab.vm import host

    return host.cannot_run_vms()


@pytest.fixture(scope="module")
def os_image():
    reason = _reason()
    if reason:
        print("SKIP libvirt lab: %s" % reason)
        pytest.skip(reason)
    from fleetlab.vm import images

    started = time.time()
    path = images.cached_os()
    print("\nOS image %s ready in %.0f s" % (os.path.basename(path), time.time() - started))
    return path


def _vm_leftovers(state_dir):
    """Domains, namespaces and daemons of this lab still present (by the names the lab gives them)."""
    from fleetlab.vm.lab import lab_id

    name = "fl" + lab_id(state_dir)
    left = []
    if os.path.exists("/run/netns/" + name):
        left.append("netns " + name)
    out = subprocess.run(["pgrep", "-f", "qemu-system-x86_64.*guest=%s-" % name], capture_output=True, text=True)
    left += ["qemu %s" % p for p in out.stdout.split()]
    for pattern in ("/run/fleetlab/%s/" % lab_id(state_dir), "dnsmasq.*/%s.conf" % name):
        out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
        left += ["%s: pid %s" % (pattern, p) for p in out.stdout.split()]
    if os.path.exists(os.path.join(state_dir, "vmlab.json")):
        left.append("vmlab.json")
    return left


def _domain_active(lab, state_dir, name, paused=False):
    """Whether the lab's own libvirtd runs domain ``name`` (its socket seen through the lab
    process's mount namespace: the lab may run in a private one); with ``paused``, whether it is
    paused instead."""
    import libvirt

    with open(os.path.join(state_dir, "vmlab.json")) as f:
        root = json.load(f)["libvirt_root"]
    sock = "/proc/%d/root%s" % (lab.info["pid"], os.path.join(root, "run", "libvirt-sock"))
    conn = libvirt.open("qemu:///system?socket=" + sock)
    try:
        dom = conn.lookupByName(name)
        if paused:
            return dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
        return bool(dom.isActive())
    finally:
        conn.close()


def _wait_running(lab, timeout=1800):
    """Until the lab's VMs exist (another VM lab on this host may hold it back: they run one at a
    time); fails at once with the driver's error when its set-up failed."""
    lab.wait_ready(timeout)


#: The lab run as on a fresh or rebooted machine: a private mount namespace in which /run (so
#: /run/libvirt, /run/netns, /run/fleetlab) and libvirt's state and cache directories start empty.
FRESH_HOST = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-ec",
              'for d in /run /var/lib/libvirt /var/cache/libvirt; do mkdir -p "$d"; '
              'mount -t tmpfs -o mode=755 fleetlab-fresh "$d"; done; '
              'test ! -e /run/libvirt && test ! -e /run/netns; exec "$@"', "fresh-host"]


def test_two_vms_loop_lease_install_ssh_wipe(os_image, vm_host, tmp_path):
    """The smoke test of the libvirt lab, run where nothing of libvirt's exists yet (FRESH_HOST)."""
    from fleetlab.testing import LabServer

    state = str(tmp_path / "lab")
    key = str(tmp_path / "id_test")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    with open(key + ".pub") as f:
        pub = f.read().strip()
    lab = LabServer(state_dir=state, machines=2, driver="libvirt", start_timeout=120,
                    driver_opt=["loop_wait=1"], wrapper=FRESH_HOST)
    lab.start()
    try:
        _wait_running(lab)
        t0 = time.time()
        plunder = Plunder(lab.plunder_config)
        metal = Metal(lab.metal_url, lab.hmac_keys["edit"])
        machines = metal.ok("GET", "/v1/machine")
        assert len(machines) == 2
        by_mac = {m["hardware"]["nics"][0]["mac"]: m for m in machines}
        macs = sorted(by_mac)

        # 1. both VMs network-boot into the loop and are seen on both faces
        wait_until(lambda: set(i["mac"] for i in plunder.unleased()) >= set(macs), 180, what="both VMs in the loop")
        t_loop = time.time() - t0
        for m in metal.ok("GET", "/v1/machine"):
            assert m["allocation"] is None
            assert m["events"]["log"][0]["event"] == "Waiting"
        hits = [json.loads(line) for line in open(os.path.join(state, "vm", "hits.jsonl"))]
        assert {h["mac"] for h in hits if h["path"] == "/ipxe" and h["answer"] == "loop"} >= set(macs)

        # 2. lease one through each face (at the same time: two installs in parallel)
        mac_p, mac_m = macs
        t_lease = time.time()
        assert plunder.call("POST", "/deployment", {
            "mac": mac_p, "bootConfigName": "preseed",
            "config": {"address": "10.77.1.10", "hostname": "vm-plunder",
                       "sshkey": base64.b64encode(pub.encode()).decode()}}) == {}
        alloc = metal.ok("POST", "/v1/machine/allocate", allocate_body(
            "vm-metal", uuid=by_mac[mac_m]["id"], ssh_pub_keys=[pub],
            networks=[{"networkid": PRIVATE_NET, "autoacquire": True}]))
        assert alloc["id"] == by_mac[mac_m]["id"]
        assert not set(macs) & set(i["mac"] for i in plunder.unleased())

        # 3. both install for real: Installing -> Booting New Kernel -> Phoned Home (SSH answered)
        def phoned_home():
            ms = metal.ok("GET", "/v1/machine")
            return all(m["events"]["log"][0]["event"] == "Phoned Home" for m in ms)

        wait_until(phoned_home, 420, step=2, what="both machines Phoned Home")
        t_ready = time.time() - t_lease
        for m in metal.ok("GET", "/v1/machine"):
            events = [e["event"] for e in reversed(m["events"]["log"])]
            assert events.index("Installing") < events.index("Booting New Kernel") < events.index("Phoned Home")

        # 4. SSH with the lease's key runs real commands on each VM
        for mac, hostname in ((mac_p, "vm-plunder"), (mac_m, "vm-metal")):
            out = vm_ssh(state, mac, key, "cat /etc/hostname; ip -4 -o addr show eth0; systemctl is-active ssh;"
                                        " containerd --version; runc --version | head -1; python3 -V")
            assert out.returncode == 0, out.stderr
            assert out.stdout.splitlines()[0] == hostname
            assert "containerd" in out.stdout and "runc version" in out.stdout and "Python 3" in out.stdout
        assert "10.77.1.10/" in vm_ssh(state, mac_p, key, "ip -4 -o addr show eth0").stdout
        # plunder's own provisioning probe (parlay uptime over SSH) succeeds
        parlay = {"deployments": [{"name": "probe", "hosts": ["10.77.1.10"], "parallel": False,
                                   "parallelSessions": 0, "actions": [
                                       {"name": "uptime", "type": "command", "timeout": 0, "command": "uptime"}]}]}
        assert plunder.call("POST", "/parlay", parlay) == {}
        log = wait_until(lambda: (lambda p: p if p and p["state"] != "Running" else None)(
            plunder.call("GET", "/parlay/logs/10-77-1-10").get("payload")), 60, step=0.5, what="parlay log")
        assert log["state"] == "Completed" and " up " in log["entries"][-1]["entry"]

        # 5. the collection's disk wipe runs only on the host with the MAC it names: aimed at this
        #    VM with the other VM's MAC, the real shell refuses it and the disk stays as it was
        from ansible_collections.baremetal.fleet.plugins.module_utils.plunder import guarded_wipe_command

        wrong = {"deployments": [{"name": "wrong host", "hosts": ["10.77.1.10"], "parallel": False,
                                  "parallelSessions": 0, "actions": [
            {"name": "wipe", "type": "command", "timeout": 0, "command": guarded_wipe_command(mac_m, mib=100),
             "commandSudo": "root"}]}]}
        assert plunder.call("POST", "/parlay", wrong) == {}
        refused = wait_until(lambda: (lambda p: p if p and p["state"] != "Running" else None)(
            plunder.call("GET", "/parlay/logs/10-77-1-10").get("payload")), 60, step=0.5, what="refused wipe")
        assert refused["state"] == "Failed" and "status 1" in refused["entries"][-1]["error"], refused
        still = vm_ssh(state, mac_p, key, "cat /etc/hostname && head -c 1048576 /dev/sda | tr -d '\\0' | wc -c")
        assert still.returncode == 0 and still.stdout.split()[0] == "vm-plunder", still.stderr
        assert int(still.stdout.split()[1]) > 0  # the disk's first MiB is not zeroed

        # 6. wipe through each face; both VMs fall back into the loop, unleased
        t_wipe = time.time()
        metal.ok("DELETE", "/v1/machine/%s/free" % by_mac[mac_m]["id"])
        wipe = {"deployments": [{"name": "Cluster-API de-provisioning", "hosts": ["10.77.1.10"], "parallel": False,
                                 "parallelSessions": 0, "actions": [
            {"name": "sysrq", "type": "command", "timeout": 0, "command": "tee /proc/sys/kernel/sysrq",
             "commandSudo": "root", "commandPipeCmd": "echo \"1\""},
            {"name": "wipe", "type": "command", "timeout": 0,
             "command": guarded_wipe_command(mac_p, mib=100), "commandSudo": "root"},
            {"name": "reset", "type": "command", "timeout": 2, "command": "tee /proc/sysrq-trigger",
             "commandSudo": "root", "commandPipeCmd": "echo \"b\""}]}]}
        assert plunder.call("POST", "/parlay", wipe) == {}
        wait_until(lambda: (lambda p: p if p and p["state"] != "Running" and len(p["entries"]) >= 3 else None)(
            plunder.call("GET", "/parlay/logs/10-77-1-10").get("payload")), 120, step=0.5, what="wipe parlay")
        assert plunder.call("DELETE", "/deployment/mac/%s" % mac_p.replace(":", "-")) == {}
        wait_until(lambda: set(i["mac"] for i in plunder.unleased()) >= set(macs), 180, step=1,
              what="both wiped VMs back in the loop")
        t_back = time.time() - t_wipe
        for m in metal.ok("GET", "/v1/machine"):
            assert m["allocation"] is None and m["events"]["log"][0]["event"] == "Waiting"
        # the disks really are blank: the VMs get the loop script again, not the disk
        since = [json.loads(line) for line in open(os.path.join(state, "vm", "hits.jsonl"))]
        assert {h["mac"] for h in since if h["t"] > t_wipe and h["answer"] == "loop"} >= set(macs)

        # 7. `fleetlab fault` powers a VM off (its domain destroyed in the lab's libvirtd) and keeps it
        #    off; clearing the fault starts it again and it network-boots into the loop
        def fleetlab(*args):
            out = subprocess.run([os.sys.executable, "-m", "fleetlab"] + list(args) + ["--state", state],
                                 capture_output=True, text=True, timeout=120)
            assert out.returncode == 0, (out.stdout, out.stderr)
            return out.stdout

        with open(os.path.join(state, "vm", "ssh.json")) as f:
            domain = json.load(f)["machines"][mac_m]["name"]
        assert _domain_active(lab, state, domain)
        fleetlab("fault", mac_m, "power-off")
        assert not _domain_active(lab, state, domain)
        time.sleep(5)
        assert not _domain_active(lab, state, domain)
        row = [m for m in json.loads(fleetlab("status", "--json"))["machines"] if m["mac"] == mac_m][0]
        assert row["power"] == "off" and row["fault"]["kind"] == "power-off"
        assert metal.ok("GET", "/v1/machine/%s/ipmi" % by_mac[mac_m]["id"])["ipmi"]["powerstate"] == "OFF"
        t_clear = time.time()
        assert "cleared" in fleetlab("fault", mac_m, "clear")
        assert _domain_active(lab, state, domain)
        wait_until(lambda: any(h["mac"] == mac_m and h["t"] > t_clear and h["answer"] == "loop"
                          for h in map(json.loads, open(os.path.join(state, "vm", "hits.jsonl")))),
              180, step=1, what="the VM back in the loop after the fault")

        # 8. a hang pauses the VM, power on; a reset through metal's power API (the BMC) ends it
        fleetlab("fault", mac_m, "hang")
        assert _domain_active(lab, state, domain, paused=True)
        assert metal.ok("GET", "/v1/machine/%s/ipmi" % by_mac[mac_m]["id"])["ipmi"]["powerstate"] == "ON"
        t_reset = time.time()
        metal.ok("POST", "/v1/machine/%s/power/reset" % by_mac[mac_m]["id"], {})
        assert _domain_active(lab, state, domain) and not _domain_active(lab, state, domain, paused=True)
        row = [m for m in json.loads(fleetlab("status", "--json"))["machines"] if m["mac"] == mac_m][0]
        assert row["fault"] is None
        wait_until(lambda: any(h["mac"] == mac_m and h["t"] > t_reset and h["answer"] == "loop"
                          for h in map(json.loads, open(os.path.join(state, "vm", "hits.jsonl")))),
              180, step=1, what="the reset VM back in the loop")

        # 9. every VM has a Redfish BMC (sushy-tools' emulator over the lab's libvirtd, on loopback,
        #    with this lab's credentials): `fleetlab bmc` prints the map; off and on through it
        import sushy
        import yaml
        entry = yaml.safe_load(fleetlab("bmc"))["cluster_bmc"][mac_m]
        assert entry["address"].startswith("http://127.0.0.1:") and entry["username"] and entry["password"]
        # the emulator runs inside the lab's namespace, next to its libvirtd; the host reaches it
        # on its own loopback through the lab's forwarder
        from fleetlab.vm import host as vmhost
        record = vmhost.Record(state).data
        lab_netns = "/proc/%d/root/run/netns/%s" % (lab.info["pid"], record["netns"])  # the lab's /run may be private
        assert os.stat("/proc/%d/ns/net" % record["bmc_pid"]).st_ino == os.stat(lab_netns).st_ino
        assert os.stat("/proc/%d/ns/net" % record["bmc_pid"]).st_ino != os.stat("/proc/self/ns/net").st_ino
        assert os.stat(os.path.join(state, "bmc.json")).st_mode & 0o077 == 0
        with pytest.raises(sushy.exceptions.AccessError):
            sushy.Sushy(entry["address"] + "/redfish/v1/", username=entry["username"], password="wrong").get_system(
                "/redfish/v1/Systems/" + entry["system_id"])
        system = sushy.Sushy(entry["address"] + "/redfish/v1/", username=entry["username"],
                             password=entry["password"]).get_system("/redfish/v1/Systems/" + entry["system_id"])
        assert system.power_state == sushy.PowerState.ON
        system.reset_system(sushy.ResetType.FORCE_OFF)
        wait_until(lambda: not _domain_active(lab, state, domain), 60, step=0.5, what="the VM off through its BMC")
        system.refresh()
        assert system.power_state == sushy.PowerState.OFF
        system.reset_system(sushy.ResetType.ON)
        wait_until(lambda: _domain_active(lab, state, domain), 60, step=0.5, what="the VM on through its BMC")
        # a machine whose power is gone (power-off fault) cannot be switched on through its BMC either
        fleetlab("fault", mac_m, "power-off")
        with pytest.raises(sushy.exceptions.HTTPError, match="no power"):
            system.reset_system(sushy.ResetType.ON)
        assert not _domain_active(lab, state, domain)
        fleetlab("fault", mac_m, "clear")
        assert _domain_active(lab, state, domain)

        # 10. no-pxe: the VM's firmware boots only its blank disk, so it leaves the loop; leased through
        #     plunder it never installs nor answers SSH. The collection's wipe finds no SSH, releases it and
        #     through its BMC sets the network boot and power-cycles it: back in the loop, fault over
        from ansible_collections.baremetal.fleet.plugins.module_utils import connection, provisioning

        def loop_hits(mac, since):
            return [h for h in map(json.loads, open(os.path.join(state, "vm", "hits.jsonl")))
                    if h["mac"] == mac and h["t"] > since and h["answer"] == "loop"]

        assert "until its boot device is set to the network" in fleetlab("fault", mac_p, "no-pxe")
        t_stuck = time.time()
        time.sleep(20)  # with loop_wait=1 a looping VM is seen every few seconds
        assert loop_hits(mac_p, t_stuck) == []
        row = [m for m in json.loads(fleetlab("status", "--json"))["machines"] if m["mac"] == mac_p][0]
        assert row["fault"]["kind"] == "no-pxe" and row["power"] == "on"
        assert plunder.call("POST", "/deployment", {"mac": mac_p, "bootConfigName": "preseed",
                                                    "config": {"address": "10.77.1.11", "hostname": "vm-stuck"}}) == {}
        prov = connection.provider_from_params({"provider": "plunder", "plunder_config": lab.plunder_config},
                                               environ={})
        prov.wipe_timeout = 15
        bmc_map = yaml.safe_load(fleetlab("bmc"))["cluster_bmc"]
        t_wipe = time.time()
        out = provisioning.wipe(prov, {"machines": [mac_p], "force": True, "bmc": {mac_p: bmc_map[mac_p]},
                                       "poll_interval": 2})
        assert out["failed_machines"] == [] and out["machines"][0]["path"] == "bmc", out
        assert "released, PXE boot forced" in out["machines"][0]["detail"]
        wait_until(lambda: loop_hits(mac_p, t_wipe), 120, step=1, what="the stuck VM in the loop through its BMC")
        t_bmc_loop = time.time() - t_wipe
        wait_until(lambda: [m for m in json.loads(fleetlab("status", "--json"))["machines"]
                            if m["mac"] == mac_p][0]["fault"] is None, 30, step=1, what="no-pxe ended by the BMC")
        assert mac_p in [m["mac"] for m in plunder.unleased()]

        with open(os.path.join(state, "vm", "timings.json")) as f:
            timings = json.load(f)
        print("\nlibvirt lab timings (2 VMs, %s):" % json.load(open(os.path.join(state, "driver.json")))["accel"])
        print("  lab start -> both VMs unleased on the faces: %5.1f s" % t_loop)
        for mac in macs:
            t = timings.get(mac, {})
            print("  %s first loop %5.1f s  lease->OS written %5.1f s  lease->SSH ready %5.1f s"
                  % (mac, t.get("first_loop", -1), t.get("lease_to_written", -1), t.get("lease_to_ssh", -1)))
        print("  both leased -> both Phoned Home: %5.1f s; wipe -> both back in the loop: %5.1f s"
              % (t_ready, t_back))
        print("  no-pxe, no SSH: wipe through the BMC -> seen in the loop: %5.1f s" % t_bmc_loop)
    finally:
        lab.stop(timeout=60)
    assert _vm_leftovers(state) == []


def test_crashed_lab_is_cleaned_up(os_image, vm_host, tmp_path):
    """kill -9 of the lab leaves VMs, libvirtd and the namespace: the tear-down command removes them
    from the record in the state dir."""
    from fleetlab.testing import LabServer

    state = str(tmp_path / "lab")
    lab = LabServer(state_dir=state, machines=1, driver="libvirt", start_timeout=120)
    lab.start()
    try:
        _wait_running(lab)
        plunder = Plunder(lab.plunder_config)
        wait_until(lambda: plunder.unleased(), 120, what="the VM in the loop")
        record = json.load(open(os.path.join(state, "vmlab.json")))
        assert record["domains"] and record["netns"]
    finally:
        lab.kill()
    assert _vm_leftovers(state) != []
    out = subprocess.run([os.sys.executable, "-m", "fleetlab.drivers.libvirt", "down", "--state", state],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert _vm_leftovers(state) == []
    pid = record.get("libvirtd_pid")
    if pid:
        stat = open("/proc/%d/stat" % pid).read().split(")")[-1].split()[0] if os.path.exists(
            "/proc/%d" % pid) else "gone"
        assert stat in ("gone", "Z")
