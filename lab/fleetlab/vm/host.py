"""The host side of the VM lab: libvirtd and virtlogd started by the lab when none runs (there is
no systemd here), inside a lab-owned network namespace; a real KVM probe; and a record file in the
state directory of everything the lab created, so that ``fleetlab down`` can remove it all even
after the lab process died.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time

from . import netns as _netns
from ..util import pid_alive, stop_pid

PRIVATE_BASE = "/run/fleetlab"
RECORD = "vmlab.json"


class HostError(RuntimeError):
    pass


def cannot_run_vms():
    """A reason (str) when this machine cannot run lab VMs at all, else None."""
    for tool in ("qemu-system-x86_64", "libvirtd", "virtlogd", "ip", "dnsmasq", "unshare"):
        if not shutil.which(tool):
            return "%s is not installed (see lab/apt-packages.txt)" % tool
    try:
        import libvirt  # noqa: F401  (only whether it imports)
    except ImportError:
        return ("the Python binding of libvirt is not installed in %s: install the project's "
                "'libvirt' extra (pip install -e '.[libvirt]'; scripts/setup.sh does it once "
                "libvirt-dev is installed)" % sys.prefix)
    if os.geteuid() != 0:
        return "the libvirt lab needs root (network namespaces, libvirtd)"
    return None


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _socket_answers(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def _read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def kill_pid(pid, name, timeout=10.0):
    """Stop process ``pid`` only if it still is the ``name`` we started."""
    if not pid or not pid_alive(pid) or name not in _cmdline(pid):
        return
    stop_pid(pid, timeout)


class Record:
    """JSON file in the state dir listing what the lab created (read back by ``down``)."""

    def __init__(self, state_dir):
        self.path = os.path.join(state_dir, RECORD)
        self.data = {}
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.data = json.load(f)

    def set(self, key, value):
        self.data[key] = value
        self.save()

    def add(self, key, value):
        items = self.data.setdefault(key, [])
        if value not in items:
            items.append(value)
        self.save()

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
        os.replace(tmp, self.path)

    def remove(self):
        if os.path.exists(self.path):
            os.remove(self.path)


def private_root(lab_id):
    """Where a lab's own libvirt keeps its runtime, state, cache and configuration (short: the
    unix socket path must stay under 108 bytes)."""
    return os.path.join(PRIVATE_BASE, lab_id)


def uri(root):
    return "qemu:///system?socket=%s" % os.path.join(root, "run", "libvirt-sock")


#: where the lab's private libvirt is mounted, inside its own mount namespace. None of them need
#: exist beforehand: /run starts empty after every boot, and libvirtd may never have run here.
MOUNT_TARGETS = ("/run/libvirt", "/var/lib/libvirt", "/var/cache/libvirt", "/etc/libvirt")

_START = r"""
set -e
R="$1"; shift
mount --bind "$R/run" /run/libvirt
mount --bind "$R/lib" /var/lib/libvirt
mount --bind "$CACHE" /var/cache/libvirt
mount --bind "$R/etc" /etc/libvirt
if [ "$HIDE_KVM" = 1 ] && [ -e /dev/kvm ]; then
  # a /dev without kvm: everything else bound from the real one
  D="$R/dev"; mkdir -p "$D"; mount -t tmpfs -o mode=755 fleetlab-dev "$D"
  for e in /dev/* /dev/.[!.]*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    n="${e#/dev/}"; [ "$n" = kvm ] && continue
    if [ "$n" = ptmx ]; then ln -s pts/ptmx "$D/ptmx"   # ptys from the devpts bound below
    elif [ -L "$e" ]; then cp -a "$e" "$D/$n"
    elif [ -d "$e" ]; then mkdir "$D/$n" && mount --rbind "$e" "$D/$n"
    else : > "$D/$n" && mount --bind "$e" "$D/$n"; fi
  done
  mount --move "$D" /dev
fi
virtlogd -d -p "$R/virtlogd.pid"
exec libvirtd -d $LISTEN -p "$R/libvirtd.pid"
"""


#: what a hypervisor of a multi-host lab adds to libvirtd.conf: the remote protocol over plain TCP on
#: one address, without authentication (see docs/lab-libvirt.md: a private link, or qemu+ssh)
_TCP_CONF = """
# fleetlab hypervisor: libvirt's remote protocol on one address
listen_tls = 0
listen_tcp = 1
listen_addr = "%s"
tcp_port = "%d"
auth_tcp = "none"
"""


def start_daemons(record, ns, lab_id, hide_kvm=False, cache_dir="/var/cache/fleetlab", listen=None):
    """Start the lab's own virtlogd and libvirtd inside namespace ``ns``, each lab with a private
    libvirt: they run in a mount namespace in which /run/libvirt, /var/lib/libvirt and
    /etc/libvirt are the lab's directories under ``/run/fleetlab/<id>`` (the host's daemon
    configuration, no domains or networks: never the "default" NAT network) and
    /var/cache/libvirt is a capabilities cache shared by the labs in ``cache_dir``. Labs therefore never
    share daemons, networks or domains, and leave the host's libvirt (if any) alone.

    ``hide_kvm``: /dev/kvm is /dev/null in there. Where KVM exists but cannot run guests, libvirt
    would otherwise probe QEMU's KVM capabilities (about a minute under load) at every start.
    ``listen``: (address, port) on which libvirtd also speaks libvirt's remote protocol over TCP.
    Returns the libvirt URI."""
    root = private_root(lab_id)
    record.set("libvirt_root", root)
    sock = os.path.join(root, "run", "libvirt-sock")
    pid = record.data.get("libvirtd_pid")
    if pid and pid_alive(pid) and "libvirtd" in _cmdline(pid) and _socket_answers(sock):
        return uri(root)  # started by this lab before (a restarted lab process)
    for sub in ("run", "lib"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
    # QEMU's capabilities, probed once (~30 s) and kept for every later lab (keyed by hide_kvm)
    cache = os.path.join(cache_dir, "libvirt-cache-%s" % ("nokvm" if hide_kvm else "kvm"))
    os.makedirs(cache, exist_ok=True)
    etc = os.path.join(root, "etc")
    if not os.path.isdir(etc):
        # the daemons' configuration and the nwfilters; no domains, networks or pools of the host's
        os.makedirs(os.path.join(etc, "qemu", "networks", "autostart"))
        for name in os.listdir("/etc/libvirt"):
            src = os.path.join("/etc/libvirt", name)
            if name.endswith(".conf") and os.path.isfile(src):
                shutil.copy2(src, os.path.join(etc, name))
        if os.path.isdir("/etc/libvirt/nwfilter"):
            shutil.copytree("/etc/libvirt/nwfilter", os.path.join(etc, "nwfilter"))
    conf = os.path.join(etc, "libvirtd.conf")
    if listen:
        with open(conf) as fh:
            text = fh.read().split(_TCP_CONF.splitlines()[1])[0].rstrip("\n") + "\n"
        with open(conf, "w") as fh:
            fh.write(text + _TCP_CONF % (listen[0], int(listen[1])))
    for sub in ("qemu", "dnsmasq", "network", "images", "boot"):
        os.makedirs(os.path.join(root, "lib", sub), exist_ok=True)
    for target in MOUNT_TARGETS:
        os.makedirs(target, exist_ok=True)
    cmd = ["unshare", "--mount", "--propagation", "slave", "sh", "-c", _START, "fleetlab-libvirt", root]
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    env = dict(os.environ, HIDE_KVM="1" if hide_kvm else "0", CACHE=cache, LISTEN="--listen" if listen else "")
    # the daemons detach; what they and the mounts say before that goes to a file (a pipe would
    # stay open for as long as the daemons run)
    start_log = os.path.join(root, "start.log")
    with open(start_log, "wb") as out:
        code = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out).returncode
    if code != 0:
        # whichever daemon did start is recorded, so that the tear-down stops it
        for name in ("virtlogd", "libvirtd"):
            try:
                record.set(name + "_pid", _wait_pidfile(os.path.join(root, name + ".pid"), name, wait=1.0))
            except HostError:
                pass
        raise HostError("starting the lab's libvirtd failed (exit %d): %s"
                        % (code, _last_lines(start_log) or "no output"))
    record.set("virtlogd_pid", _wait_pidfile(os.path.join(root, "virtlogd.pid"), "virtlogd", start_log))
    record.set("libvirtd_pid", _wait_pidfile(os.path.join(root, "libvirtd.pid"), "libvirtd", start_log))
    deadline = time.monotonic() + 30
    while not _socket_answers(sock):
        if time.monotonic() > deadline:
            raise HostError("libvirtd did not answer on %s within 30 s" % sock)
        time.sleep(0.1)
    return uri(root)


def _last_lines(path, lines=5):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return " | ".join(line.strip() for line in fh.readlines()[-lines:] if line.strip())
    except OSError:
        return ""


def _wait_pidfile(path, name, start_log=None, wait=15.0):
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        pid = _read_pid(path)
        if pid and pid_alive(pid):
            return pid
        time.sleep(0.05)
    said = _last_lines(start_log) if start_log else ""
    raise HostError("%s did not start (no pid in %s)%s" % (name, path, ": " + said if said else ""))


def stop_daemons(record):
    kill_pid(record.data.get("libvirtd_pid"), "libvirtd")
    kill_pid(record.data.get("virtlogd_pid"), "virtlogd")


# --- KVM probe -----------------------------------------------------------------------------

def kvm_usable(kernel, initrd, cache_dir, timeout=20.0):
    """True when QEMU with KVM really runs a Linux guest here. ``/dev/kvm`` existing is not enough:
    on nested PVM hosts guests start and then never make progress. The probe boots the lab's own
    installer kernel in ``hello`` mode with KVM and waits for its greeting on the serial port; the
    answer is cached per host boot and QEMU version."""
    if not os.path.exists("/dev/kvm"):
        return False
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
    except OSError:
        return False
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot_id = f.read().strip()
    qemu_version = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                                  text=True).stdout.split("\n")[0]
    os.makedirs(cache_dir, exist_ok=True)
    cache = os.path.join(cache_dir, "kvm-probe.json")
    key = {"boot_id": boot_id, "qemu": qemu_version, "kernel": os.path.basename(kernel)}
    try:
        with open(cache) as f:
            cached = json.load(f)
        if cached.get("key") == key:
            return cached["usable"]
    except (OSError, ValueError):
        pass
    cmd = ["qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "256", "-nodefaults",
           "-display", "none", "-no-reboot", "-serial", "stdio", "-kernel", kernel, "-initrd", initrd,
           "-append", "console=ttyS0 quiet fleetlab.mode=hello"]
    started = time.monotonic()
    usable = False
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        out = b""
        os.set_blocking(proc.stdout.fileno(), False)
        while time.monotonic() - started < timeout and proc.poll() is None:
            chunk = proc.stdout.read() or b""
            out += chunk
            if b"FLEETLAB hello ok" in out:
                usable = True
                break
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    with open(cache, "w") as f:
        json.dump({"key": key, "usable": usable, "seconds": round(time.monotonic() - started, 1)}, f)
    return usable


def ensure_netns(record, name):
    if _netns.create(name):
        record.set("netns", name)
    elif record.data.get("netns") != name:
        raise HostError("network namespace %s exists and is not this lab's" % name)
