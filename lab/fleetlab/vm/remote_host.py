"""``fleetlab hypervisor up|down``: make this host one more hypervisor of a lab that runs elsewhere.

What it sets up here, and records in its state directory so that ``down`` removes exactly that:

* a plain bridge (``fleetlab0``) without addresses, the lab network's side on this host, and a VXLAN
  device on it whose unicast peers are the other hosts' tunnel endpoints (``--peer``);
* a private libvirtd (the lab's own machinery: its own runtime, state and configuration, never the
  host's daemon or its "default" network) that speaks libvirt's remote protocol on ``--listen``.

The lab then defines and runs its VMs here through ``qemu+tcp://ADDRESS:PORT/system``; their disks
are volumes of a pool the lab defines here, and they network-boot from the lab's boot service
over the VXLAN.
"""
import os
import shutil

from . import host, lab, overlay
from .hypervisors import DEFAULT_BRIDGE

DEFAULT_PORT = 16509


def up(state_dir, listen, vtep, peers, port=DEFAULT_PORT, vni=overlay.DEFAULT_VNI, bridge=DEFAULT_BRIDGE,
       hide_kvm=False, cache_dir="/var/cache/fleetlab", log=print):
    """Returns the URI the lab connects to."""
    if not peers:
        raise ValueError("at least one --peer: the tunnel endpoint of the lab's own host")
    state_dir = os.path.abspath(state_dir)
    os.makedirs(state_dir, exist_ok=True)
    record = host.Record(state_dir)
    record.set("id", lab.lab_id(state_dir))
    mtu = overlay.overlay_mtu(None, vtep)
    overlay.ensure_bridge(bridge, mtu=mtu)
    record.set("bridge", bridge)
    dev = bridge + "vx"
    overlay.create(dev, vni, vtep, peers, bridge=bridge, mtu=mtu)
    record.set("vxlan", dev)
    uri = host.start_daemons(record, None, lab.lab_id(state_dir), hide_kvm=hide_kvm, cache_dir=cache_dir,
                             listen=(listen, port))
    record.set("uri", "qemu+tcp://%s:%d/system" % (listen, port))
    log("hypervisor: libvirtd %s (pid %s) on %s:%d; bridge %s with VXLAN %d to %s (MTU %d)"
        % (uri, record.data.get("libvirtd_pid"), listen, port, bridge, vni, ", ".join(peers), mtu))
    return record.data["uri"]


def down(state_dir, log=print):
    """Stop the daemons and remove the bridge and the VXLAN ``up`` made (the VMs go with libvirtd's
    state); False when there was nothing."""
    record = host.Record(os.path.abspath(state_dir))
    data = record.data
    if not data:
        return False
    root = data.get("libvirt_root")
    if root and host._socket_answers(os.path.join(root, "run", "libvirt-sock")):
        # domains a lab left behind (it could not reach this host to remove them): their QEMUs
        # would outlive libvirtd
        libvirt = lab._libvirt()
        conn = libvirt.open(host.uri(root))
        for dom in conn.listAllDomains():
            if dom.isActive():
                dom.destroy()
            log("hypervisor: removed the VM %s" % dom.name())
            dom.undefine()
        conn.close()
    host.stop_daemons(record)
    if data.get("vxlan"):
        overlay.delete(data["vxlan"])
    if data.get("bridge"):
        overlay.delete(data["bridge"])
    if root and os.path.isdir(root):
        shutil.rmtree(root, ignore_errors=True)
    record.remove()
    log("hypervisor: stopped libvirtd, removed %s" % ", ".join(x for x in (data.get("vxlan"), data.get("bridge")) if x))
    return True
