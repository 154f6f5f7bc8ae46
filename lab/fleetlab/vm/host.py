"""The host side of the VM lab: libvirtd and virtlogd started by the lab when none runs (there is
no systemd here), inside a lab-owned network namespace; a real KVM probe; and a record file in the
state directory of everything the lab created, so that ``fleetlab down`` can remove it all even
after the lab process died.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import time

from . import netns as _netns

LIBVIRT_SOCK = "/run/libvirt/libvirt-sock"
URI = "qemu:///system"
RECORD = "vmlab.json"


class HostError(RuntimeError):
    pass


def cannot_run_vms():
    """A reason (str) when this machine cannot run lab VMs at all, else None."""
    for tool in ("qemu-system-x86_64", "libvirtd", "virtlogd", "ip", "dnsmasq"):
        if not shutil.which(tool):
            return "%s is not installed (see lab/apt-packages.txt)" % tool
    try:
        import libvirt  # noqa: F401  (only whether it imports)
    except ImportError:
        return "libvirt-python is not installed (pip install -e '.[libvirt]')"
    if os.geteuid() != 0:
        return "the libvirt lab needs root (network namespaces, libvirtd)"
    return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            if f.read().split(")")[-1].split()[0] == "Z":
                return False
    except OSError:
        return False
    return True


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
    if not pid or not _alive(pid) or name not in _cmdline(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


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


def start_daemons(record, ns, run_dir, hide_kvm=False):
    """Start virtlogd and libvirtd (the latter inside namespace ``ns``) unless libvirtd already
    answers. Returns True when the lab started them (and so must stop them).

    ``hide_kvm``: libvirtd runs in its own mount namespace where /dev/kvm is /dev/null. Where KVM
    exists but cannot run guests, libvirt would otherwise re-probe QEMU's KVM capabilities (about a
    minute under load) at every start instead of using its cache."""
    pid = record.data.get("libvirtd_pid")
    if pid and _alive(pid) and "libvirtd" in _cmdline(pid) and _socket_answers(LIBVIRT_SOCK):
        return True  # started by this lab before (a restarted lab process)
    if _socket_answers(LIBVIRT_SOCK):
        record.set("libvirtd_foreign", True)
        return False
    # libvirt's package ships a NAT network called "default"; it must never come up here.
    autostart = "/etc/libvirt/qemu/networks/autostart/default.xml"
    if os.path.lexists(autostart):
        os.remove(autostart)
    os.makedirs(run_dir, exist_ok=True)
    vl_pidfile = os.path.join(run_dir, "virtlogd.pid")
    lv_pidfile = os.path.join(run_dir, "libvirtd.pid")
    if not _socket_answers("/run/libvirt/virtlogd-sock"):
        subprocess.run(["virtlogd", "-d", "-p", vl_pidfile], check=True)
        record.set("virtlogd_pid", _wait_pidfile(vl_pidfile, "virtlogd"))
    cmd = ["libvirtd", "-d", "-p", lv_pidfile]
    if hide_kvm and os.path.exists("/dev/kvm"):
        cmd = ["unshare", "--mount", "--propagation", "slave", "sh", "-c",
               'mount --bind /dev/null /dev/kvm && exec "$@"', "libvirtd"] + cmd
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    subprocess.run(cmd, check=True)
    record.set("libvirtd_pid", _wait_pidfile(lv_pidfile, "libvirtd"))
    deadline = time.monotonic() + 30
    while not _socket_answers(LIBVIRT_SOCK):
        if time.monotonic() > deadline:
            raise HostError("libvirtd did not answer on %s within 30 s" % LIBVIRT_SOCK)
        time.sleep(0.1)
    return True


def _wait_pidfile(path, name):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pid = _read_pid(path)
        if pid and _alive(pid):
            return pid
        time.sleep(0.05)
    raise HostError("%s did not start (no pid in %s)" % (name, path))


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
