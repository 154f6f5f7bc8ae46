"""The libvirt lab over several hypervisors.

Two "hosts" are two network namespaces joined by a veth pair (the physical link; its addresses
exist only inside those namespaces). Host B runs ``fleetlab hypervisor up``: a private libvirtd on
TCP and a bridge with a VXLAN back to host A. The lab runs on host A and reaches B's libvirtd
through libvirt's remote protocol from A's namespace, never through a local socket.

The fast tests run in the test command. The VM test boots one VM per hypervisor (about 5 min under
TCG), which the test command's budget does not leave room for: ``scripts/test-multihost.sh`` runs
it (``FLEETLAB_MULTIHOST=1``). Figures: run with ``-s``.
"""
import base64
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from labclients import PRIVATE_NET, Metal, Plunder, allocate_body, vm_ssh, wait_until

pytestmark = [pytest.mark.lab]

LINK_A, LINK_B = "10.79.0.1", "10.79.0.2"


def _run(*argv, check=True):
    out = subprocess.run([str(a) for a in argv], capture_output=True, text=True)
    if check:
        assert out.returncode == 0, (argv, out.stdout, out.stderr)
    return out


def _reason():
    from fleetlab.vm import host

    return host.cannot_run_vms()


class Hosts:
    """Two hosts A and B: network namespaces joined by a veth link (A 10.79.0.1, B 10.79.0.2)."""

    def __init__(self):
        tag = uuid.uuid4().hex[:5]
        self.a, self.b = "fl%sa" % tag, "fl%sb" % tag
        self.link_a, self.link_b = "fl%sla" % tag, "fl%slb" % tag
        for ns in (self.a, self.b):
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "link", "add", self.link_a, "netns", self.a, "type", "veth", "peer", "name", self.link_b,
             "netns", self.b)
        for ns, dev, addr in ((self.a, self.link_a, LINK_A), (self.b, self.link_b, LINK_B)):
            _run("ip", "-n", ns, "addr", "add", addr + "/30", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")

    def remove(self):
        for ns in (self.a, self.b):
            _run("ip", "netns", "del", ns, check=False)


@pytest.fixture
def hosts():
    h = Hosts()
    yield h
    h.remove()


def test_hypervisor_specs_and_placement():
    from fleetlab.vm.hypervisors import parse, place

    specs = parse(["qemu+tcp://10.79.0.2/system,rack=rack-02", "qemu+ssh://root@hv3.example/system,vtep=192.0.2.3,name=b3"])
    assert [(s.name, s.uri, s.vtep, s.rack, s.bridge) for s in specs] == [
        ("local", "local", None, None, None),
        ("hv1", "qemu+tcp://10.79.0.2/system", "10.79.0.2", "rack-02", "fleetlab0"),
        ("b3", "qemu+ssh://root@hv3.example/system", "192.0.2.3", None, "fleetlab0")]
    for bad, says in (("qemu+tcp://h/system,color=red", "color=red"), ("/var/run/sock", "remote libvirt URI"),
                      ("qemu+tcp:///system", "remote libvirt URI")):
        with pytest.raises(ValueError, match=says):
            parse([bad])
    with pytest.raises(ValueError, match="must differ"):
        parse(["qemu+tcp://a/system,name=x", "qemu+tcp://b/system,name=x"])

    machines = [{"mac": "m%d" % i, "rack": "rack-%02d" % (i % 3 + 1)} for i in range(6)]
    rr = place(machines, specs)
    assert [rr["m%d" % i] for i in range(6)] == ["local", "hv1", "b3"] * 2
    by_rack = place(machines, specs, "rack")
    # rack-02 is hv1's; the racks nobody names are dealt out in order: rack-01 local, rack-03 hv1
    assert {m["rack"]: by_rack[m["mac"]] for m in machines} == {"rack-01": "local", "rack-02": "hv1", "rack-03": "hv1"}
    with pytest.raises(ValueError, match="placement"):
        place(machines, specs, "random")


def test_vxlan_stretches_a_bridge_over_the_link_with_its_mtu(hosts):
    """The lab's side: a VXLAN made in host A's namespace, moved to the lab's namespace onto its
    bridge; host B's side: a bridge and a VXLAN as ``fleetlab hypervisor up`` makes them. A "VM" on
    B's bridge answers the lab's address across the link, with frames up to the overlay's MTU."""
    from fleetlab.vm import overlay

    lab_ns = hosts.a + "l"
    vm_ns = hosts.b + "v"
    try:
        for ns in (lab_ns, vm_ns):
            _run("ip", "netns", "add", ns)
        # the lab's bridge and address (libvirt's network does this in the lab)
        _run("ip", "-n", lab_ns, "link", "add", "labbr", "type", "bridge")
        _run("ip", "-n", lab_ns, "addr", "add", "10.77.0.1/24", "dev", "labbr")
        _run("ip", "-n", lab_ns, "link", "set", "labbr", "up")
        mtu = overlay.overlay_mtu(hosts.a, LINK_A)
        assert mtu == 1450  # the veth's 1500 less VXLAN's 50
        assert overlay.create("labvx", 7700, LINK_A, [LINK_B], underlay_ns=hosts.a, bridge="labbr",
                              bridge_ns=lab_ns) == 1450
        # the device lives next to the lab's bridge, but sends from host A's address
        details = _run("ip", "-n", lab_ns, "-d", "link", "show", "labvx").stdout
        assert "master labbr" in details and "local %s" % LINK_A in details
        assert _run("ip", "-n", hosts.a, "link", "show", "labvx", check=False).returncode != 0
        # host B
        overlay.ensure_bridge("fleetlab0", ns=hosts.b, mtu=1450)
        overlay.create("fleetlab0vx", 7700, LINK_B, [LINK_A], underlay_ns=hosts.b, bridge="fleetlab0", bridge_ns=hosts.b)
        _run("ip", "link", "add", "vmnic", "netns", vm_ns, "type", "veth", "peer", "name", "vmtap", "netns", hosts.b)
        _run("ip", "-n", hosts.b, "link", "set", "vmtap", "master", "fleetlab0", "mtu", "1450", "up")
        _run("ip", "-n", vm_ns, "addr", "add", "10.77.0.50/24", "dev", "vmnic")
        _run("ip", "-n", vm_ns, "link", "set", "vmnic", "mtu", "1450", "up")
        ping = ["ip", "netns", "exec", lab_ns, "ping", "-c", "1", "-W", "2", "-M", "do"]
        wait_until(lambda: _run(*ping, "10.77.0.50", check=False).returncode == 0, 15, what="the VM across the link")
        assert _run(*ping, "-s", "1422", "10.77.0.50", check=False).returncode == 0   # 1450 bytes: fits
        assert _run(*ping, "-s", "1423", "10.77.0.50", check=False).returncode != 0   # 1451: does not
        # the underlay never saw the lab's addresses: only the tunnel endpoints
        assert "10.77." not in _run("ip", "-n", hosts.a, "neigh", "show").stdout
        with pytest.raises(overlay.OverlayError, match="no interface holds the tunnel endpoint 10.79.0.9"):
            overlay.create("badvx", 7700, "10.79.0.9", [LINK_B], underlay_ns=hosts.a)
    finally:
        for ns in (lab_ns, vm_ns):
            _run("ip", "netns", "del", ns, check=False)


def _fleetlab(*args, ns=None):
    argv = (["ip", "netns", "exec", ns] if ns else []) + [sys.executable, "-m", "fleetlab"] + list(args)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)


def _libvirtd_pids(state):
    from fleetlab.vm import host

    record = host.Record(state).data
    return [p for p in (record.get("libvirtd_pid"), record.get("virtlogd_pid")) if p]


def test_hypervisor_command_serves_libvirt_over_tcp_and_removes_what_it_made(hosts, tmp_path):
    reason = _reason()
    if reason:
        pytest.skip(reason)
    from fleetlab.util import pid_alive
    from fleetlab.vm import hypervisors

    state = str(tmp_path / "hv")
    out = _fleetlab("hypervisor", "up", "--state", state, "--listen", LINK_B, "--peer", LINK_A, "--no-kvm", ns=hosts.b)
    try:
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "qemu+tcp://%s:16509/system" % LINK_B
        pids = _libvirtd_pids(state)
        assert len(pids) == 2 and all(pid_alive(p) for p in pids)
        # libvirtd listens in host B's namespace only
        assert os.stat("/proc/%d/ns/net" % pids[0]).st_ino == os.stat("/run/netns/" + hosts.b).st_ino
        # from host A, through the remote protocol: a disk pool and a volume there
        remote = hypervisors.Remote(hypervisors.parse([out.stdout.strip()])[1], hosts.a, pool_name="fltest")
        conn = remote.open()
        assert conn.getURI() == out.stdout.strip()
        assert remote.new_disk("x.qcow2", 1).endswith("/fltest/x.qcow2")
        assert remote.alive() and remote.state()["state"] == "up"
        assert remote.remove_pool()
        conn.close()
    finally:
        down = _fleetlab("hypervisor", "down", "--state", state, ns=hosts.b)
    assert down.returncode == 0, down.stderr
    assert not any(pid_alive(p) and "libvirtd" in open("/proc/%d/cmdline" % p).read() for p in pids)
    links = _run("ip", "-n", hosts.b, "link", "show").stdout
    assert "fleetlab0" not in links
    assert not os.path.exists(os.path.join(state, "vmlab.json"))
    # a missing peer is refused before anything starts
    refused = _fleetlab("hypervisor", "up", "--state", state, "--listen", LINK_B, ns=hosts.b)
    assert refused.returncode == 2 and "--peer" in refused.stderr


# -- two hypervisors x one VM -------------------------------------------------------------------

def _status(state):
    out = _fleetlab("status", "--json", "--state", state)
    return json.loads(out.stdout)


def _plunder_wipe(plunder, address, mac):
    from ansible_collections.baremetal.fleet.plugins.module_utils.plunder import guarded_wipe_command

    host = address.replace(".", "-")
    wipe = {"deployments": [{"name": "de-provisioning", "hosts": [address], "parallel": False,
                             "parallelSessions": 0, "actions": [
        {"name": "sysrq", "type": "command", "timeout": 0, "command": "tee /proc/sys/kernel/sysrq",
         "commandSudo": "root", "commandPipeCmd": "echo \"1\""},
        {"name": "wipe", "type": "command", "timeout": 0, "command": guarded_wipe_command(mac, mib=100),
         "commandSudo": "root"},
        {"name": "reset", "type": "command", "timeout": 2, "command": "tee /proc/sysrq-trigger",
         "commandSudo": "root", "commandPipeCmd": "echo \"b\""}]}]}
    assert plunder.call("POST", "/parlay", wipe) == {}
    wait_until(lambda: (lambda p: p if p and p["state"] != "Running" and len(p["entries"]) >= 3 else None)(
        plunder.call("GET", "/parlay/logs/%s" % host).get("payload")), 120, step=0.5, what="wipe parlay")
    assert plunder.call("DELETE", "/deployment/mac/%s" % mac.replace(":", "-")) == {}


@pytest.mark.vm
@pytest.mark.skipif(os.environ.get("FLEETLAB_MULTIHOST") != "1",
                    reason="5 min of VMs, outside the test command's budget: scripts/test-multihost.sh runs it")
def test_two_hypervisors_one_vm_each(vm_host, hosts, tmp_path):
    reason = _reason()
    if reason:
        pytest.skip(reason)
    from fleetlab.testing import LabServer
    from fleetlab.vm import hypervisors

    hv_state = str(tmp_path / "hv")
    out = _fleetlab("hypervisor", "up", "--state", hv_state, "--listen", LINK_B, "--peer", LINK_A, "--no-kvm",
                    ns=hosts.b)
    assert out.returncode == 0, out.stderr
    uri = out.stdout.strip()
    state = str(tmp_path / "lab")
    key = str(tmp_path / "id_test")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    pub = open(key + ".pub").read().strip()
    lab = LabServer(state_dir=state, machines=2, driver="libvirt", start_timeout=120, hypervisor=[uri],
                    driver_opt=["loop_wait=1", "vtep=" + LINK_A, "underlay_netns=" + hosts.a])
    figures = {}
    try:
        lab.start()
        lab.wait_ready(1800)
        t0 = time.time()
        plunder = Plunder(lab.plunder_config)
        metal = Metal(lab.metal_url, lab.hmac_keys["edit"])
        rows = {m["mac"]: m for m in _status(state)["machines"]}
        where = {mac: row["hypervisor"] for mac, row in rows.items()}
        assert sorted(where.values()) == ["hv1", "local"], where
        local, remote = sorted(where, key=lambda mac: where[mac] != "local")
        by_mac = {m["hardware"]["nics"][0]["mac"]: m for m in metal.ok("GET", "/v1/machine")}
        # the hypervisor is a label of the machine, as the inventory plugin lists it
        assert "fleetlab.io/hypervisor=hv1" in by_mac[remote]["tags"]
        health = _status(state)["driver"]
        assert [(h["name"], h["state"], h["machines"]) for h in health["hypervisors"]] == [
            ("local", "up", 1), ("hv1", "up", 1)]
        # the remote VM really runs on host B's libvirtd
        hv = hypervisors.Remote(hypervisors.parse([uri])[1], hosts.a)
        conn = hv.open()
        assert [d.name() for d in conn.listAllDomains()] == [json.load(open(os.path.join(state, "vm", "ssh.json")))
                                                              ["machines"][remote]["name"]]

        # 1. both network-boot into the loop (the remote one over the VXLAN)
        wait_until(lambda: set(i["mac"] for i in plunder.unleased()) >= {local, remote}, 240, what="both VMs in the loop")
        figures["both in the loop"] = round(time.time() - t0, 1)

        # 2. both leased through each face in turn, installed, SSH, wiped back into the loop
        for round_no, (via_plunder, via_metal) in enumerate(((local, remote), (remote, local)), start=1):
            address = "10.77.1.%d" % (10 + round_no)
            t_lease = time.time()
            assert plunder.call("POST", "/deployment", {
                "mac": via_plunder, "bootConfigName": "preseed",
                "config": {"address": address, "hostname": "p%d" % round_no,
                           "sshkey": base64.b64encode(pub.encode()).decode()}}) == {}
            metal.ok("POST", "/v1/machine/allocate", allocate_body(
                "m%d" % round_no, uuid=by_mac[via_metal]["id"], ssh_pub_keys=[pub],
                networks=[{"networkid": PRIVATE_NET, "autoacquire": True}]))

            def phoned_home():
                return all(m["events"]["log"][0]["event"] == "Phoned Home" for m in metal.ok("GET", "/v1/machine"))

            wait_until(phoned_home, 600, step=2, what="both machines Phoned Home (round %d)" % round_no)
            figures["round %d: both answer SSH" % round_no] = round(time.time() - t_lease, 1)
            timings = json.load(open(os.path.join(state, "vm", "timings.json")))
            for mac in (local, remote):
                figures["round %d: lease to SSH on %s" % (round_no, where[mac])] = timings[mac]["lease_to_ssh"]
            for mac, hostname in ((via_plunder, "p%d" % round_no), (via_metal, "m%d" % round_no)):
                ssh = vm_ssh(state, mac, key, "cat /etc/hostname; cat /sys/class/net/eth0/mtu")
                assert ssh.returncode == 0, ssh.stderr
                assert ssh.stdout.split() == [hostname, "1450"]  # the overlay's MTU, on both hypervisors
            t_wipe = time.time()
            metal.ok("DELETE", "/v1/machine/%s/free" % by_mac[via_metal]["id"])
            _plunder_wipe(plunder, address, via_plunder)
            wait_until(lambda: set(i["mac"] for i in plunder.unleased()) >= {local, remote}, 240, step=1,
                       what="both wiped VMs back in the loop (round %d)" % round_no)
            figures["round %d: wipe to loop" % round_no] = round(time.time() - t_wipe, 1)

        # 3. the remote VM powered off on its hypervisor: the lab reports it; on again through its BMC
        dom = conn.lookupByName(json.load(open(os.path.join(state, "vm", "ssh.json")))["machines"][remote]["name"])
        dom.destroy()
        wait_until(lambda: {m["mac"]: m["power"] for m in _status(state)["machines"]}[remote] == "off", 40,
                   what="the lab reporting the remote VM off")
        bmc = json.load(open(os.path.join(state, "bmc.json")))["machines"]
        assert bmc[remote]["address"] != bmc[local]["address"]  # one emulator per hypervisor
        metal.ok("POST", "/v1/machine/%s/power/on" % by_mac[remote]["id"], {})
        wait_until(lambda: dom.isActive(), 60, step=0.5, what="the remote VM on through its BMC")
        wait_until(lambda: {m["mac"]: m["power"] for m in _status(state)["machines"]}[remote] == "on", 40,
                   what="the lab reporting the remote VM on")
        conn.close()

        # 4. host B goes away (its link down): the lab says so, the local machine keeps working
        t_gone = time.time()
        _run("ip", "-n", hosts.b, "link", "set", hosts.link_b, "down")

        def hv1():
            return [h for h in _status(state)["driver"]["hypervisors"] if h["name"] == "hv1"][0]

        wait_until(lambda: hv1()["state"] == "down", 60, step=1, what="the lab reporting hv1 down")
        figures["hypervisor gone -> reported"] = round(time.time() - t_gone, 1)
        assert "does not answer" in hv1()["error"] or "closed" in hv1()["error"], hv1()
        text = _fleetlab("status", "--state", state).stdout
        assert "hv1 DOWN" in text, text
        assert {m["mac"]: m["power"] for m in _status(state)["machines"]}[remote] == "unknown"
        refused = metal.ok("POST", "/v1/machine/%s/power/reset" % by_mac[remote]["id"], {}, status=503)
        assert "hv1" in json.dumps(refused), refused
        t_reset = time.time()
        metal.ok("POST", "/v1/machine/%s/power/reset" % by_mac[local]["id"], {})
        wait_until(lambda: any(h["mac"] == local and h["t"] > t_reset and h["answer"] == "loop"
                               for h in map(json.loads, open(os.path.join(state, "vm", "hits.jsonl")))),
                   180, step=1, what="the local VM back in the loop while hv1 is away")
        _run("ip", "-n", hosts.b, "link", "set", hosts.link_b, "up")
        wait_until(lambda: hv1()["state"] == "up", 60, step=1, what="hv1 back")
    finally:
        print("\ntwo hypervisors: %s" % json.dumps(figures, indent=1))
        lab.stop()
        # the lab removed its VM and disk pool on host B
        try:
            conn = hypervisors.Remote(hypervisors.parse([uri])[1], hosts.a).open()
            left = [d.name() for d in conn.listAllDomains()]
            pools = [p.name() for p in conn.listAllStoragePools()]
            conn.close()
        finally:
            down = _fleetlab("hypervisor", "down", "--state", hv_state, ns=hosts.b)
        assert down.returncode == 0, down.stderr
    assert left == [] and pools == [], (left, pools)
