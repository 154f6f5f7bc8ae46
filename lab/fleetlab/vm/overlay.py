"""The lab's boot network stretched over several hypervisors: a kernel VXLAN device on each host's
lab bridge, with the other hosts' tunnel endpoints (VTEPs) as unicast destinations (head-end
replication: broadcasts such as DHCP go to every peer). DHCP and iPXE from the lab's boot service,
the lab's addresses and SSH then reach every VM wherever it runs.

A VXLAN device keeps sending from the namespace it was created in, even after it moved to another
one. On the lab's own host it is created in the *underlay* namespace (the host's own, or the one
that holds the "physical" link) and moved into the lab's namespace, next to the lab's bridge: the
only packets that leave the lab's namespaces are the overlay's UDP packets between the VTEPs.

VXLAN adds 50 bytes to every frame: the overlay's MTU is the underlay's minus 50, and the lab's
network, its taps and its VMs (virtio's ``host_mtu``, DHCP option 26) use that MTU.
"""
import json
import subprocess

PORT = 4789          # IANA's VXLAN port
OVERHEAD = 50        # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
DEFAULT_VNI = 7700


class OverlayError(RuntimeError):
    pass


def _ip(ns, *args, check=True):
    argv = ["ip"] + (["-n", ns] if ns else []) + [str(a) for a in args]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise OverlayError("%s: %s" % (" ".join(argv), proc.stderr.strip() or "exit %d" % proc.returncode))
    return proc


def _bridge(ns, *args):
    argv = ["bridge"] + (["-n", ns] if ns else []) + [str(a) for a in args]
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise OverlayError("%s: %s" % (" ".join(argv), proc.stderr.strip()))


def underlay_device(ns, address):
    """(interface name, MTU) of the interface holding ``address`` in namespace ``ns`` (None: this
    one). Raises OverlayError naming the addresses there when none holds it."""
    found = []
    for link in json.loads(_ip(ns, "-j", "addr", "show").stdout or "[]"):
        for a in link.get("addr_info", []):
            found.append(a.get("local"))
            if a.get("local") == address:
                return link["ifname"], int(link["mtu"])
    raise OverlayError("no interface holds the tunnel endpoint %s in %s (its addresses: %s)"
                       % (address, "namespace " + ns if ns else "this namespace",
                          ", ".join(x for x in found if x) or "none"))


def overlay_mtu(ns, vtep):
    """The MTU left for the lab's frames once VXLAN wraps them."""
    return underlay_device(ns, vtep)[1] - OVERHEAD


def create(dev, vni, local, peers, underlay_ns=None, bridge=None, bridge_ns=None, mtu=None):
    """VXLAN device ``dev`` sending from ``local`` in ``underlay_ns``, flooding to each of ``peers``,
    then moved into ``bridge_ns`` (when it differs) and attached to ``bridge`` there. Replaces a
    device of the same name. Returns its MTU."""
    link, link_mtu = underlay_device(underlay_ns, local)
    mtu = mtu or link_mtu - OVERHEAD
    delete(dev, underlay_ns)
    if bridge_ns != underlay_ns:
        delete(dev, bridge_ns)
    _ip(underlay_ns, "link", "add", dev, "type", "vxlan", "id", vni, "local", local, "dev", link,
        "dstport", PORT, "nolearning" if not peers else "learning")
    try:
        for peer in peers:
            _bridge(underlay_ns, "fdb", "append", "00:00:00:00:00:00", "dev", dev, "dst", peer)
        _ip(underlay_ns, "link", "set", dev, "mtu", mtu)
        if bridge_ns != underlay_ns:
            _ip(underlay_ns, "link", "set", dev, "netns", bridge_ns)
        if bridge:
            _ip(bridge_ns, "link", "set", dev, "master", bridge)
        _ip(bridge_ns, "link", "set", dev, "up")
    except OverlayError:
        delete(dev, underlay_ns)
        delete(dev, bridge_ns)
        raise
    return mtu


def ensure_bridge(name, ns=None, mtu=None):
    """A plain Linux bridge without addresses (a hypervisor's side of the lab network)."""
    if _ip(ns, "link", "show", name, check=False).returncode != 0:
        _ip(ns, "link", "add", name, "type", "bridge", "stp_state", "0", "forward_delay", "0")
    if mtu:
        _ip(ns, "link", "set", name, "mtu", mtu)
    _ip(ns, "link", "set", name, "up")


def delete(dev, ns=None):
    if _ip(ns, "link", "show", dev, check=False).returncode == 0:
        _ip(ns, "link", "del", dev, check=False)
