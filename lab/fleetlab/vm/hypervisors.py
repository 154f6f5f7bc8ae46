"""The hypervisors a lab's VMs run on.

The lab always has its own private libvirtd (``local``); ``--hypervisor`` adds others by their
libvirt URI, each written ``URI[,vtep=ADDRESS][,rack=NAME][,name=NAME][,bridge=NAME]``:

* ``vtep``: the hypervisor's tunnel endpoint on the hosts' network (default: the URI's host), the
  unicast destination of the boot network's VXLAN (:mod:`fleetlab.vm.overlay`);
* ``rack``: with ``placement=rack``, the rack whose machines it runs;
* ``bridge``: the bridge its VMs attach to (default ``fleetlab0``, what ``fleetlab hypervisor up``
  creates there, with the VXLAN back to this lab).

A remote hypervisor is reached through libvirt's remote protocol (``qemu+tcp://``, ``qemu+ssh://``)
from the lab's underlay namespace; its VMs' disks are volumes of a storage pool the lab defines
there. Nothing else is needed on that host: the VMs network-boot from the lab's boot service.
"""
import threading
import time
import urllib.parse

from . import netns

LOCAL = "local"
DEFAULT_BRIDGE = "fleetlab0"
PLACEMENTS = ("round-robin", "rack")
DISK_FORMAT = "qcow2"


class HypervisorError(RuntimeError):
    def __init__(self, message, cause=None):
        super().__init__(message)
        self.cause = cause or message


class Spec:
    def __init__(self, uri, name, vtep=None, rack=None, bridge=None):
        self.uri, self.name, self.vtep, self.rack, self.bridge = uri, name, vtep, rack, bridge

    @property
    def local(self):
        return self.uri == LOCAL

    def as_dict(self):
        return {"name": self.name, "uri": self.uri, "vtep": self.vtep, "rack": self.rack, "bridge": self.bridge}


def parse(specs):
    """``[Spec]`` from ``--hypervisor`` values (``local`` first when not given). Raises ValueError
    with the offending value."""
    out = []
    for index, text in enumerate(specs or ()):
        uri, *pairs = [part.strip() for part in str(text).split(",")]
        opts = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or key not in ("vtep", "rack", "name", "bridge") or not value:
                raise ValueError("hypervisor %r: %r is not one of vtep=, rack=, name=, bridge=" % (text, pair))
            opts[key] = value
        if uri != LOCAL:
            parsed = urllib.parse.urlparse(uri)
            if not parsed.scheme.startswith("qemu") or not parsed.hostname:
                raise ValueError("hypervisor %r: a remote libvirt URI such as qemu+tcp://HOST/system or "
                                 "qemu+ssh://root@HOST/system (or 'local')" % text)
            opts.setdefault("vtep", parsed.hostname)
            opts.setdefault("bridge", DEFAULT_BRIDGE)
        name = opts.pop("name", None) or ("local" if uri == LOCAL else "hv%d" % (index + 1))
        out.append(Spec(uri, name, **opts))
    if not any(s.local for s in out):
        out.insert(0, Spec(LOCAL, "local"))
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ValueError("hypervisor names must differ: %s" % ", ".join(names))
    return out


def place(machines, specs, placement="round-robin"):
    """{mac: hypervisor name} for pool rows ``machines`` (in their order). ``round-robin`` deals
    them out in turn; ``rack`` puts every machine of a rack on one hypervisor: the one naming that
    rack, else the racks nobody names, dealt out in sorted order."""
    if placement not in PLACEMENTS:
        raise ValueError("placement must be one of %s, not %r" % (", ".join(PLACEMENTS), placement))
    if placement == "round-robin":
        return {m["mac"]: specs[i % len(specs)].name for i, m in enumerate(machines)}
    named = {s.rack: s.name for s in specs if s.rack}
    rest = sorted({m["rack"] for m in machines} - set(named))
    by_rack = dict(named)
    for i, rack in enumerate(rest):
        by_rack[rack] = specs[i % len(specs)].name
    return {m["mac"]: by_rack[m["rack"]] for m in machines}


def _libvirt():
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)
    return libvirt


_EVENTS = {"started": False}
_EVENTS_LOCK = threading.Lock()


def _event_loop():
    """libvirt's event loop (keepalive needs one): a dead remote hypervisor is seen within seconds."""
    with _EVENTS_LOCK:
        if _EVENTS["started"]:
            return
        libvirt = _libvirt()
        libvirt.virEventRegisterDefaultImpl()

        def run():
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _EVENTS["started"] = True


class Remote:
    """A connection to one remote hypervisor, opened from the lab's underlay namespace."""

    def __init__(self, spec, underlay_ns=None, pool_name="fleetlab"):
        self.spec = spec
        self.name = spec.name
        self.uri = spec.uri
        self.underlay_ns = underlay_ns
        self.pool_name = pool_name
        self.conn = None
        self.error = None        # why it does not answer, while it does not
        self.since = time.time()

    # -- connection ----------------------------------------------------------------------------
    def _reachable(self, timeout=3.0):
        """A TCP connection to the URI's port (a bounded check before libvirt's own, unbounded one)."""
        parsed = urllib.parse.urlparse(self.uri)
        default = {"ssh": 22, "tcp": 16509, "tls": 16514}.get(parsed.scheme.partition("+")[2], 16509)
        try:
            netns.connect(self.underlay_ns, parsed.hostname, parsed.port or default, timeout=timeout).close()
        except OSError as exc:
            raise HypervisorError("hypervisor %s (%s) does not answer: %s" % (self.name, self.uri, exc),
                                  "does not answer: %s" % exc)

    def open(self):
        libvirt = _libvirt()
        _event_loop()
        self._reachable()
        try:
            conn = netns.run_in(self.underlay_ns, libvirt.open, self.uri)
        except libvirt.libvirtError as exc:
            raise HypervisorError("hypervisor %s (%s): %s" % (self.name, self.uri, exc), str(exc))
        try:
            conn.setKeepAlive(2, 3)
        except libvirt.libvirtError:
            pass
        self.conn, self.error, self.since = conn, None, time.time()
        return conn

    def alive(self):
        """Whether it answers now (reconnecting when it came back); the cause stays in ``error``."""
        libvirt = _libvirt()
        if self.conn is not None:
            try:
                if self.conn.isAlive():
                    self.conn.getLibVersion()
                    return True
            except libvirt.libvirtError as exc:
                self._down(str(exc))
            else:
                self._down("the connection closed")
            try:
                self.conn.close()
            except libvirt.libvirtError:
                pass
            self.conn = None
        try:
            self.open()
            return True
        except HypervisorError as exc:
            self._down(exc.cause)
            return False

    def _down(self, cause):
        if self.error is None:
            self.since = time.time()
        self.error = cause

    def connection(self):
        if self.conn is None:
            raise HypervisorError("hypervisor %s (%s) is unreachable: %s" % (self.name, self.uri, self.error or "not connected"))
        return self.conn

    def state(self):
        return {"name": self.name, "uri": self.uri, "state": "up" if self.error is None and self.conn else "down",
                "error": self.error, "since": self.since}

    # -- disks ---------------------------------------------------------------------------------
    def _pool(self):
        libvirt = _libvirt()
        conn = self.connection()
        try:
            pool = conn.storagePoolLookupByName(self.pool_name)
        except libvirt.libvirtError:
            xml = ("<pool type='dir'><name>%s</name><target><path>/var/lib/libvirt/images/%s</path></target></pool>"
                   % (self.pool_name, self.pool_name))
            pool = conn.storagePoolDefineXML(xml)
            pool.build(0)
        if not pool.isActive():
            pool.create()
        return pool

    def new_disk(self, name, gib):
        """A blank qcow2 volume ``name`` (replacing one of that name); returns its path there."""
        libvirt = _libvirt()
        pool = self._pool()
        try:
            pool.storageVolLookupByName(name).delete()
        except libvirt.libvirtError:
            pass
        xml = ("<volume><name>%s</name><capacity unit='GiB'>%d</capacity><target><format type='%s'/></target>"
               "</volume>" % (name, gib, DISK_FORMAT))
        return pool.createXML(xml).path()

    def console_path(self, name):
        return "/var/lib/libvirt/images/%s/%s.console.log" % (self.pool_name, name)

    def remove_pool(self):
        libvirt = _libvirt()
        try:
            pool = self.connection().storagePoolLookupByName(self.pool_name)
        except libvirt.libvirtError:
            return False
        if pool.isActive():
            for vol in pool.listAllVolumes():
                vol.delete()
            pool.destroy()
        try:
            pool.delete(0)
        except libvirt.libvirtError:
            pass
        pool.undefine()
        return True

