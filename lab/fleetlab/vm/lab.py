"""VMLab: the VM side of the lab put together (no knowledge of the pool or the API faces).

    lab = VMLab(state_dir, network="10.77.0.0/16")
    lab.setup()                       # image, namespace, daemons, network, boot service
    lab.add_machine(mac)              # a blank server: empty disk, network boot first
    ...                               # callbacks: decide / machine_files / report (see bootsvc)
    lab.close()                       # stop the lab's own threads (VMs keep running)
    teardown(state_dir)               # remove everything the record lists (``fleetlab down``)

Objects are named ``fl<id>`` (network, bridge, namespace) and ``fl<id>-<n>`` (domains), ``<id>``
being derived from the state directory, so two labs with different state dirs do not collide.
"""
import hashlib
import ipaddress
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
import time
import uuid

from . import bootsvc, host, hypervisors, images, netns, overlay, xmldefs

BOOT_PORT = 80
DISK_GIB = 4


def lab_id(state_dir):
    return hashlib.sha256(os.path.abspath(state_dir).encode()).hexdigest()[:6]


def _libvirt():
    import libvirt

    libvirt.registerErrorHandler(lambda *_: None, None)  # errors come as exceptions
    return libvirt


class Machine:
    def __init__(self, index, mac, name, ip, disk, console, hypervisor=hypervisors.LOCAL):
        self.index = index
        self.hypervisor = hypervisor  # the name of the hypervisor its VM runs on
        self.mac = mac
        self.name = name
        self.ip = ip            # the address the machine gets from DHCP (static per MAC)
        self.disk = disk
        self.console = console
        self.forwarder = None   # 127.0.0.1:<port> -> ip:22
        self.files = None       # tar bytes written onto the installed OS
        self.started = None     # domain start (monotonic clock of time.time())
        self.marks = {}         # event -> time.time()


class VMLab:
    def __init__(self, state_dir, network="10.77.0.0/16", cache_dir=images.DEFAULT_CACHE,
                 memory_mib=512, vcpus=1, accel="auto", loop_wait=2, log=print, hypervisor_specs=None,
                 underlay_ns=None, vtep=None, vni=overlay.DEFAULT_VNI):
        self.state_dir = os.path.abspath(state_dir)
        self.dir = os.path.join(self.state_dir, "vm")
        self.id = lab_id(self.state_dir)
        self.ns = "fl" + self.id
        self.net_name = "fl" + self.id
        self.bridge = "fl" + self.id + "br"
        self.network = ipaddress.ip_network(network, strict=False)
        hosts = list(self.network.hosts()) if self.network.num_addresses <= 65536 else None
        if hosts is None or len(hosts) < 254:
            raise ValueError("the lab network must be between /16 and /24: %s" % network)
        self.gateway = str(hosts[0])
        self.dhcp_range = (str(hosts[-100]), str(hosts[-1]))
        self._static_pool = hosts[-200:-100]  # per-MAC addresses (installed OS, SSH)
        self.cache_dir = cache_dir
        self.memory_mib = memory_mib
        self.vcpus = vcpus
        self.accel = accel
        self.loop_wait = loop_wait
        self.log = log or (lambda msg: None)
        self.machines = {}      # mac -> Machine
        self.by_ip = {}
        self.domain_type = None
        self.artifacts = None
        self.boot = None
        self.conn = None
        self.record = None
        self.key = os.path.join(self.dir, "id_ed25519")
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        self._lock = threading.RLock()
        self.uri = None
        # other hypervisors (fleetlab.vm.hypervisors), joined by a VXLAN over the underlay
        self.specs = hypervisors.parse(hypervisor_specs or [])
        self.remotes = {}       # name -> hypervisors.Remote
        self.underlay_ns = underlay_ns
        self.vtep = vtep
        self.vni = int(vni)
        self.mtu = None         # the overlay's MTU, when the lab spans hypervisors
        # callbacks, set by the driver
        self.decide = lambda mac: "loop"
        self.on_report = lambda mac, event, detail, uptime: None

    # -- set-up ------------------------------------------------------------------------------
    def setup(self):
        os.makedirs(self.dir, exist_ok=True)
        self.record = host.Record(self.state_dir)
        self.record.set("id", self.id)
        self.record.set("cache_dir", self.cache_dir)
        t0 = time.time()
        self.artifacts = images.cached_os(self.cache_dir)
        self.log("vm: image ready in %.1f s: %s" % (time.time() - t0, self.artifacts))
        self.domain_type = self._choose_accel()
        self.log("vm: domains run with %s" % ("KVM" if self.domain_type == "kvm" else "TCG (no usable KVM)"))
        host.ensure_netns(self.record, self.ns)
        self.uri = host.start_daemons(self.record, self.ns, self.id, hide_kvm=self.domain_type != "kvm",
                                      cache_dir=self.cache_dir)
        self.log("vm: libvirtd started in namespace %s (%s)" % (self.ns, self.uri))
        self.conn = _libvirt().open(self.uri)
        # the network (and so the boot service) lives where libvirtd runs
        boot_ns = self.ns
        self._ensure_keys()
        remote = [s for s in self.specs if not s.local]
        if remote:
            if not self.vtep:
                raise host.HostError("a lab on several hypervisors needs its own tunnel endpoint: the driver "
                                     "option vtep=ADDRESS (an address of this host that the others reach)")
            self.mtu = overlay.overlay_mtu(self.underlay_ns, self.vtep)
        self._define_network()
        if remote:
            self._join_hypervisors(remote)
        self.boot = bootsvc.BootService(
            boot_ns, self.gateway, BOOT_PORT, self.artifacts, os.path.join(self.dir, "hits.jsonl"),
            decide=self._decide, machine_files=self._machine_files, report=self._report,
            loop_wait=self.loop_wait)
        self.boot.start()
        self.boot_ns = boot_ns
        self.log("vm: boot service on %s (namespace %s)" % (self.boot.base, boot_ns or "host"))

    def _choose_accel(self):
        if self.accel in ("kvm", "qemu"):
            return self.accel
        kernel = os.path.join(self.artifacts, "vmlinuz")
        initrd = os.path.join(self.artifacts, "initrd.gz")
        return "kvm" if host.kvm_usable(kernel, initrd, self.cache_dir) else "qemu"

    def _ensure_keys(self):
        if not os.path.exists(self.key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleetlab", "-f", self.key],
                           check=True)

    def _define_network(self):
        libvirt = _libvirt()
        try:
            old = self.conn.networkLookupByName(self.net_name)
            if old.isActive():
                old.destroy()
            old.undefine()
        except libvirt.libvirtError:
            pass
        xml = xmldefs.network_xml(self.net_name, self.bridge, self.gateway, self.network.prefixlen,
                                  self.dhcp_range[0], self.dhcp_range[1], "http://%s:%d/boot.ipxe"
                                  % (self.gateway, BOOT_PORT), mtu=self.mtu)
        net = self.conn.networkDefineXML(xml)
        self.record.set("network", self.net_name)
        net.create()
        self._net = net

    def _join_hypervisors(self, specs):
        """The boot network over the other hypervisors (a VXLAN from this lab's bridge to each of
        their VTEPs) and a connection to each, from the underlay namespace."""
        t0 = time.time()
        overlay.create(self.ns + "vx", self.vni, self.vtep, [s.vtep for s in specs], underlay_ns=self.underlay_ns,
                       bridge=self.bridge, bridge_ns=self.ns, mtu=self.mtu)
        self.record.set("underlay_netns", self.underlay_ns)
        remotes = self.record.data.get("remotes") or {}
        for spec in specs:
            remotes[spec.name] = dict(spec.as_dict(), domains=remotes.get(spec.name, {}).get("domains", []))
            self.record.set("remotes", remotes)
            r = hypervisors.Remote(spec, self.underlay_ns, pool_name=self.ns)
            r.open()
            self.remotes[spec.name] = r
            self.log("vm: hypervisor %s (%s) joined, VTEP %s" % (spec.name, spec.uri, spec.vtep))
        self.log("vm: boot network over %d hypervisors (VXLAN %d, MTU %d) in %.1f s"
                 % (len(specs) + 1, self.vni, self.mtu, time.time() - t0))

    def hypervisor_states(self):
        """[{name, uri, state, error, since, machines}] of every hypervisor, the local one first."""
        count = {}
        for m in self.machines.values():
            count[m.hypervisor] = count.get(m.hypervisor, 0) + 1
        out = [{"name": hypervisors.LOCAL, "uri": self.uri, "state": "up", "error": None,
                "machines": count.get(hypervisors.LOCAL, 0)}]
        for name, r in self.remotes.items():
            out.append(dict(r.state(), machines=count.get(name, 0)))
        return out

    def _conn_of(self, m):
        if m.hypervisor == hypervisors.LOCAL:
            return self.conn
        return self.remotes[m.hypervisor].connection()

    # -- machines ------------------------------------------------------------------------------
    def add_machine(self, mac, start=True, hypervisor=hypervisors.LOCAL):
        """A blank server with ``mac`` (its index is its position) on ``hypervisor`` (a name);
        returns the Machine."""
        libvirt = _libvirt()
        remote = self.remotes.get(hypervisor) if hypervisor != hypervisors.LOCAL else None
        if hypervisor != hypervisors.LOCAL and remote is None:
            raise host.HostError("no hypervisor named %s in this lab" % hypervisor)
        with self._lock:
            if mac in self.machines:
                return self.machines[mac]
            index = len(self.machines) + 1
            name = "%s-%d" % (self.ns, index)
            ip = str(self._static_pool[index - 1])
            disk = os.path.join(self.dir, name + ".qcow2")
            console = os.path.join(self.dir, name + ".console.log")
            if remote is not None:
                console = remote.console_path(name)
            m = Machine(index, mac, name, ip, disk, console, hypervisor)
            self.machines[mac] = m
            self.by_ip[ip] = m
        t0 = time.time()
        self._set_dhcp_host(mac, ip)
        conn = self._conn_of(m)
        if remote is not None:
            m.disk = remote.new_disk(name + ".qcow2", DISK_GIB)
        else:
            if os.path.exists(disk):
                os.remove(disk)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "%dG" % DISK_GIB], check=True)
        try:
            dom = conn.lookupByName(name)
            if dom.isActive():
                dom.destroy()
            dom.undefine()
        except libvirt.libvirtError:
            pass
        xml = xmldefs.domain_xml(name, mac, self.net_name, m.disk, console, self.memory_mib, self.vcpus,
                                 self.domain_type, uuid=str(uuid.uuid5(uuid.NAMESPACE_OID, "fleetlab:" + mac)),
                                 bridge=remote.spec.bridge if remote else None, mtu=self.mtu)
        conn.defineXML(xml)
        if remote is not None:
            remotes = self.record.data["remotes"]
            if name not in remotes[hypervisor]["domains"]:
                remotes[hypervisor]["domains"].append(name)
            self.record.set("remotes", remotes)
        else:
            self.record.add("domains", name)
        m.forwarder = netns.Forwarder(self.boot_ns, ip, 22)
        self._write_access()
        if start:
            self.power(mac, "on")
        self.log("vm: %s (%s, %s) defined%s on %s in %.1f s" % (name, mac, ip, " and started" if start else "",
                                                                hypervisor, time.time() - t0))
        return m

    def _set_dhcp_host(self, mac, ip, old_ip=None):
        libvirt = _libvirt()
        entry = xmldefs.dhcp_host_xml(mac, ip)
        flags = libvirt.VIR_NETWORK_UPDATE_AFFECT_LIVE | libvirt.VIR_NETWORK_UPDATE_AFFECT_CONFIG
        if old_ip:
            self._net.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_DELETE, libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST,
                             -1, xmldefs.dhcp_host_xml(mac, old_ip), flags)
        self._net.update(libvirt.VIR_NETWORK_UPDATE_COMMAND_ADD_LAST,
                         libvirt.VIR_NETWORK_SECTION_IP_DHCP_HOST, -1, entry, flags)

    def _write_access(self):
        """``STATE/vm/ssh.json`` and ``ssh_config``: how to reach each machine from the host."""
        rows = {}
        lines = []
        for m in self.machines.values():
            rows[m.mac] = {"name": m.name, "address": m.ip, "ssh_host": "127.0.0.1", "hypervisor": m.hypervisor,
                           "ssh_port": m.forwarder.port if m.forwarder else None}
            lines.append("Host %s %s\n  HostName 127.0.0.1\n  Port %d\n  User root\n  IdentityFile %s\n"
                         "  UserKnownHostsFile %s\n  HostKeyAlias %s\n"
                         % (m.name, m.mac.replace(":", "-"), m.forwarder.port, self.key, self.known_hosts,
                            m.name))
        tmp = os.path.join(self.dir, "ssh.json.tmp")
        with open(tmp, "w") as f:
            json.dump({"key": self.key, "known_hosts": self.known_hosts, "machines": rows}, f, indent=1)
        os.replace(tmp, os.path.join(self.dir, "ssh.json"))
        with open(os.path.join(self.dir, "ssh_config"), "w") as f:
            f.write("".join(lines))

    def machine(self, mac):
        return self.machines.get(mac.lower())

    def domain(self, mac):
        m = self.machines[mac.lower()]
        return self._conn_of(m).lookupByName(m.name)

    def power(self, mac, action):
        libvirt = _libvirt()
        m = self.machines[mac.lower()]
        dom = self.domain(mac)
        active = dom.isActive()
        if action == "on" and not active:
            dom.create()
            m.started = time.time()
        elif action == "off" and active:
            dom.destroy()
        elif action == "reset":
            if active:
                try:
                    dom.reset()
                except libvirt.libvirtError:
                    dom.destroy()
                    dom.create()
            else:
                dom.create()
            m.started = m.started or time.time()
        elif action == "cycle":
            if active:
                dom.destroy()
            dom.create()
        return dom.isActive()

    def freeze(self, mac):
        """Pause a running VM where it is (a hung machine: power on, nothing runs). False when off."""
        dom = self.domain(mac)
        if not dom.isActive():
            return False
        libvirt = _libvirt()
        if dom.state()[0] != libvirt.VIR_DOMAIN_PAUSED:
            dom.suspend()
        return True

    def thaw(self, mac):
        """Let a paused VM run again (before a reset: QEMU resets a paused VM into a paused one).
        True when it was paused."""
        dom = self.domain(mac)
        libvirt = _libvirt()
        if dom.isActive() and dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
            dom.resume()
            return True
        return False

    def boot_order(self, mac):
        """The VM's firmware boot order as its definition holds it (``("network", "disk")`` for the lab's)."""
        return xmldefs.boot_order(self.domain(mac).XMLDesc(_libvirt().VIR_DOMAIN_XML_INACTIVE))

    def set_boot_order(self, mac, order, restart=False):
        """Write the boot order into the VM's definition: like a firmware setting it counts from the
        VM's next power-on (``restart``: power it off and on now, when it is on)."""
        libvirt = _libvirt()
        dom = self.domain(mac)
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
        self._conn_of(self.machines[mac.lower()]).defineXML(xmldefs.with_boot_order(xml, order))
        if restart and dom.isActive():
            dom.destroy()
            dom.create()

    def is_on(self, mac):
        return bool(self.domain(mac).isActive())

    def blank_disk(self, mac, start=True):
        """Out-of-band wipe (like a BMC + disk eraser): power off, fresh empty disk, power on
        (unless ``start`` is false)."""
        m = self.machines[mac.lower()]
        dom = self.domain(mac)
        if dom.isActive():
            dom.destroy()
        if m.hypervisor != hypervisors.LOCAL:
            self.remotes[m.hypervisor].new_disk(m.name + ".qcow2", DISK_GIB)
        else:
            disk = _disk_of(dom) or m.disk
            os.remove(disk)
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "%dG" % DISK_GIB], check=True)
        if start:
            dom.create()

    def prepare_install(self, mac, hostname, keys, address=None, users=()):
        """The files the installer writes onto this machine's OS: hostname, machine-id, the lease's
        SSH keys (and the lab's), a fresh SSH host key, the boot service's address."""
        m = self.machines[mac.lower()]
        if address and address != m.ip:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                ip = None
            if ip is not None and ip in self.network and str(ip) not in (self.gateway,) \
                    and str(ip) not in self.by_ip:
                self._set_dhcp_host(m.mac, str(ip), old_ip=m.ip)
                with self._lock:
                    self.by_ip.pop(m.ip, None)
                    m.ip = str(ip)
                    self.by_ip[m.ip] = m
                if m.forwarder:
                    m.forwarder.target = m.ip
                self._write_access()
        hostkey = os.path.join(self.dir, m.name + ".hostkey")
        for p in (hostkey, hostkey + ".pub"):
            if os.path.exists(p):
                os.remove(p)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@" + (hostname or m.name),
                        "-f", hostkey], check=True)
        with open(hostkey, "rb") as f:
            priv = f.read()
        with open(hostkey + ".pub", "rb") as f:
            pub = f.read()
        with open(self.key + ".pub") as f:
            lab_key = f.read().strip()
        auth = "\n".join([k.strip() for k in keys if k and k.strip()] + [lab_key]) + "\n"
        hostname = hostname or m.name
        files = [
            ("etc/hostname", hostname + "\n", 0o644),
            ("etc/hosts", "127.0.0.1 localhost\n127.0.1.1 %s\n" % hostname, 0o644),
            ("etc/machine-id", uuid.uuid4().hex + "\n", 0o444),
            ("root/.ssh/authorized_keys", auth, 0o600),
            ("etc/ssh/ssh_host_ed25519_key", priv, 0o600),
            ("etc/ssh/ssh_host_ed25519_key.pub", pub, 0o644),
            ("etc/fleetlab/boot-service", "%s %d\n" % (self.gateway, BOOT_PORT), 0o644),
        ]
        users = [u for u in users if u and re.match(r"^[a-z_][a-z0-9_-]{0,30}$", u) and u != "root"]
        if users:
            files.append(("etc/fleetlab/users", "".join(u + "\n" for u in users), 0o644))
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for d in ("root/.ssh",):
                info = tarfile.TarInfo(d)
                info.type = tarfile.DIRTYPE
                info.mode = 0o700
                tar.addfile(info)
            for path, content, mode in files:
                data = content.encode() if isinstance(content, str) else content
                info = tarfile.TarInfo(path)
                info.size = len(data)
                info.mode = mode
                info.mtime = int(time.time())
                tar.addfile(info, io.BytesIO(data))
        m.files = buf.getvalue()
        self._add_known_host(m, pub.decode().split()[:2])

    def _add_known_host(self, m, keytype_key):
        line = "%s %s\n" % (m.name, " ".join(keytype_key))
        lines = []
        if os.path.exists(self.known_hosts):
            with open(self.known_hosts) as f:
                lines = [ln for ln in f if not ln.startswith(m.name + " ")]
        lines.append(line)
        with open(self.known_hosts, "w") as f:
            f.writelines(lines)

    # -- boot service callbacks ---------------------------------------------------------------
    def _decide(self, mac):
        m = self.machines.get(mac)
        if m is not None and "first_loop" not in m.marks:
            m.marks["first_pxe"] = time.time()
        answer = self.decide(mac)
        if m is not None and answer == "loop" and "first_loop" not in m.marks:
            m.marks["first_loop"] = time.time()
        return answer

    def _machine_files(self, mac):
        m = self.machines.get(mac)
        return m.files if m else None

    def _report(self, mac, event, detail, uptime):
        m = self.machines.get(mac)
        if m is not None:
            m.marks[event] = time.time()
        self.on_report(mac, event, detail, uptime)

    # -- SSH -----------------------------------------------------------------------------------
    def ssh_answers(self, mac, timeout=2.0):
        """True when the machine's sshd sends its banner."""
        m = self.machines.get(mac.lower())
        if m is None:
            return False
        try:
            s = netns.connect(self.boot_ns, m.ip, 22, timeout=timeout)
        except OSError:
            return False
        try:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-")
        except OSError:
            return False
        finally:
            s.close()

    def ssh_argv(self, mac, command=None, connect_timeout=5):
        m = self.machines[mac.lower()]
        argv = ["ssh", "-F", "/dev/null", "-i", self.key, "-p", str(m.forwarder.port),
                "-o", "BatchMode=yes", "-o", "ConnectTimeout=%d" % connect_timeout,
                "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + self.known_hosts,
                "-o", "HostKeyAlias=" + m.name, "-o", "LogLevel=ERROR",
                "-o", "ServerAliveInterval=2", "-o", "ServerAliveCountMax=3",
                # one SSH connection per machine, reused: a handshake costs seconds under TCG
                "-o", "ControlPath=" + self._control_path(), "root@127.0.0.1"]
        if command is not None:
            argv.append(command)
        return argv

    def _control_path(self):
        # unix socket paths are limited to 108 bytes: not under the (possibly deep) state dir
        d = os.path.join("/run/fleetlab-ssh", self.id)
        os.makedirs(d, mode=0o700, exist_ok=True)
        return os.path.join(d, "%C")

    def _ensure_master(self, mac):
        argv = self.ssh_argv(mac)
        check = subprocess.run(argv[:1] + ["-O", "check"] + argv[1:], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if check.returncode == 0:
            return
        try:
            subprocess.run(argv[:1] + ["-M", "-N", "-f", "-o", "ControlPersist=300"] + argv[1:],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=30)
        except subprocess.TimeoutExpired:
            pass

    def ssh(self, mac, command, timeout=60, stdin=None):
        """(exit code or None on timeout, stdout, stderr)."""
        self._ensure_master(mac)
        try:
            p = subprocess.run(self.ssh_argv(mac, command), input=(stdin or "").encode(),
                               capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            return None, (exc.stdout or b"").decode(errors="replace"), "Command Timed out"
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def close(self):
        if self.boot:
            self.boot.stop()
        for m in self.machines.values():
            if m.forwarder:
                m.forwarder.close()
        for conn in [self.conn] + [r.conn for r in self.remotes.values()]:
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # pylint: disable=broad-except  (closing, whatever state it is in)
                    pass
        self.conn = None
        for r in self.remotes.values():
            r.conn = None


def _disk_of(dom):
    """Path of the domain's first file-backed disk."""
    import xml.etree.ElementTree as ET

    for disk in ET.fromstring(dom.XMLDesc()).findall("./devices/disk"):
        src = disk.find("source")
        if disk.get("device") == "disk" and src is not None and src.get("file"):
            return src.get("file")
    return None


def teardown(state_dir, log=print):
    """Remove everything the lab's record lists: domains, their disks, the network, the daemons the
    lab started and the namespace. Safe to call twice and after the lab process died."""
    record = host.Record(os.path.abspath(state_dir))
    data = record.data
    if not data:
        return False
    removed = []
    root = data.get("libvirt_root")
    sock = os.path.join(root, "run", "libvirt-sock") if root else None
    alive = bool(sock) and host._socket_answers(sock)
    if data.get("vagrant") and alive:
        from . import vagrantenv

        vagrantenv.destroy(data["vagrant"], host.uri(root), log=log)
    conn = None
    if alive:
        try:
            libvirt = _libvirt()
        except ImportError:
            # without the binding the lab never got as far as defining domains or networks
            libvirt = None
            if log:
                log("vm: no libvirt binding: stopping the daemons only")
    if alive and libvirt is not None:
        try:
            conn = libvirt.open(host.uri(root))
        except libvirt.libvirtError:
            conn = None
        if conn is not None:
            def _remove(name):
                try:
                    dom = conn.lookupByName(name)
                    if dom.isActive():
                        dom.destroy()
                    dom.undefine()
                    removed.append(name)
                except libvirt.libvirtError:
                    pass

            # in parallel: libvirt gives each QEMU a few seconds to exit on SIGTERM
            workers = [threading.Thread(target=_remove, args=(n,)) for n in data.get("domains", [])]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            for name in data.get("pools", []):
                try:
                    pool = conn.storagePoolLookupByName(name)
                    for vol in pool.listAllVolumes():
                        vol.delete()
                    if pool.isActive():
                        pool.destroy()
                    pool.undefine()
                    removed.append("pool " + name)
                except libvirt.libvirtError:
                    pass
            if data.get("network"):
                try:
                    net = conn.networkLookupByName(data["network"])
                    if net.isActive():
                        net.destroy()
                    net.undefine()
                    removed.append(data["network"])
                except libvirt.libvirtError:
                    pass
            conn.close()
    removed += _teardown_remotes(data, log)
    from . import bmc
    bmc.stop(record)  # the BMC emulator talks to the daemons: before them
    host.stop_daemons(record)
    try:
        os.remove(os.path.join(os.path.abspath(state_dir), bmc.BMC_FILE))
    except FileNotFoundError:
        pass
    if root and os.path.isdir(root):
        # the private libvirt's mounts lived only in its own mount namespace: plain files now
        shutil.rmtree(root, ignore_errors=True)
    if data.get("netns"):
        netns.delete(data["netns"])
        removed.append("netns " + data["netns"])
    shutil.rmtree(os.path.join("/run/fleetlab-ssh", data.get("id") or lab_id(state_dir)), ignore_errors=True)
    vmdir = os.path.join(os.path.abspath(state_dir), "vm")
    for name in data.get("domains", []):
        p = os.path.join(vmdir, name + ".qcow2")
        if os.path.exists(p):
            os.remove(p)
    for path in data.get("consoles", []):
        # console logs outside the state dir (vagrant): moved into it, in place of their links
        if os.path.exists(path):
            dest = os.path.join(os.path.abspath(state_dir), "vm", os.path.basename(path))
            if os.path.lexists(dest):
                os.remove(dest)
            shutil.move(path, dest)
    for path in data.get("files", []):
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)
    record.remove()
    if log:
        log("vm: removed %s" % (", ".join(removed) or "nothing"))
    return True



def _teardown_remotes(data, log):
    """The lab's domains and disk pool on the other hypervisors (their daemons, bridges and
    VXLANs belong to ``fleetlab hypervisor``); a hypervisor that does not answer is named."""
    removed = []
    for name, entry in sorted((data.get("remotes") or {}).items()):
        spec = hypervisors.Spec(entry["uri"], name, entry.get("vtep"), entry.get("rack"), entry.get("bridge"))
        r = hypervisors.Remote(spec, data.get("underlay_netns"), pool_name="fl" + data.get("id", ""))
        try:
            conn = r.open()
        except hypervisors.HypervisorError as exc:
            if log:
                log("vm: cannot remove the VMs %s: %s" % (", ".join(entry.get("domains", [])) or "(none)", exc))
            continue
        libvirt = _libvirt()
        for dom_name in entry.get("domains", []):
            try:
                dom = conn.lookupByName(dom_name)
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
                removed.append("%s on %s" % (dom_name, name))
            except libvirt.libvirtError:
                pass
        try:
            if r.remove_pool():
                removed.append("pool on %s" % name)
        except libvirt.libvirtError as exc:
            if log:
                log("vm: the disk pool on %s: %s" % (name, exc))
        conn.close()
    return removed
