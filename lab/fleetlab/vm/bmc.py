"""The lab's BMCs: sushy-tools' Redfish emulator over the lab's private libvirtd (run by
:mod:`fleetlab.vm.bmc_emulator`: a machine without power cannot be switched on), one emulator with a
Redfish system per VM, with HTTP basic auth (a bcrypt htpasswd file with a password made for this
lab). It runs inside the lab's network namespace, next to its libvirtd, on that namespace's
loopback; the host reaches it on 127.0.0.1 through a forwarder of the lab process
(:class:`fleetlab.vm.netns.Forwarder`), as it reaches the VMs' SSH. What a ``bmc`` map (the
``power`` and ``wipe`` modules, ``cluster_bmc``) needs to reach each machine is written to
``<state>/bmc.json`` (mode 0600): the emulator's address, the credentials and each machine's system
id (its domain's UUID).

The emulator is a child of the lab process, so it sees the lab's private libvirt; it is recorded
in the lab's record (``bmc_pid``) and stopped, by PID, with the lab."""
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from . import host, netns

BMC_FILE = "bmc.json"
USER = "fleetlab"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_private(path, text):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def start(state_dir, libvirt_uri, record, ns=None, timeout=60.0, name=None):
    """Start the emulator inside namespace ``ns`` (None: the host's); ``name``: one more emulator,
    for the VMs of another hypervisor (its own directory and record entry). Returns ``(bmc, forwarder)``:
    ``bmc`` is ``{"address", "username", "password"}`` (the address on the host's 127.0.0.1),
    ``forwarder`` the :class:`netns.Forwarder` to close when the lab stops (None without ``ns``).
    Raises ``RuntimeError`` with the cause (no emulator installed, it did not answer) after
    stopping what it started."""
    try:
        import bcrypt
        import sushy_tools  # noqa: F401  pylint: disable=unused-import
    except ImportError as exc:
        raise RuntimeError("the BMC emulator needs sushy-tools and bcrypt in %s (pip install sushy-tools): %s"
                           % (sys.executable, exc))

    workdir = os.path.join(state_dir, "vm", "bmc" + ("-" + name if name else ""))
    os.makedirs(workdir, mode=0o700, exist_ok=True)
    password = secrets.token_urlsafe(16)
    htpasswd = os.path.join(workdir, "htpasswd")
    _write_private(htpasswd, "%s:%s\n" % (USER, bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()))
    config = os.path.join(workdir, "emulator.conf")
    _write_private(config, "SUSHY_EMULATOR_AUTH_FILE = %r\nSUSHY_EMULATOR_STATE_DIR = %r\n"
                   % (htpasswd, os.path.join(workdir, "state")))
    port = netns.run_in(ns, _free_port)
    cmd = [sys.executable, "-m", "fleetlab.vm.bmc_emulator", "--lab-state", state_dir, "--config", config,
           "--interface", "127.0.0.1", "--port", str(port), "--libvirt-uri", libvirt_uri]
    with open(os.path.join(workdir, "emulator.log"), "ab") as log:
        # ip netns exec execs the emulator: the recorded PID is the emulator's own
        proc = subprocess.Popen((["ip", "netns", "exec", ns] if ns else []) + cmd, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    record.set("bmc_pid" + ("_" + name if name else ""), proc.pid)
    forwarder = netns.Forwarder(ns, "127.0.0.1", port) if ns else None
    address = "http://127.0.0.1:%d" % (forwarder.port if forwarder else port)
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(address + "/redfish/v1/", timeout=2).read()
            break
        except (OSError, urllib.error.URLError) as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                host.kill_pid(proc.pid, "fleetlab.vm.bmc_emulator")
                if forwarder:
                    forwarder.close()
                raise RuntimeError("the BMC emulator did not answer on %s within %.0f s (%s); see %s"
                                   % (address, timeout, exc, os.path.join(workdir, "emulator.log")))
            time.sleep(0.3)
    return {"address": address, "username": USER, "password": password}, forwarder


def write_map(state_dir, bmc, systems):
    """``<state>/bmc.json``: the emulator and, per machine MAC, the entry of a ``bmc`` map.
    ``systems``: {mac: system id} or {mac: (emulator, system id)} (several emulators)."""
    machines = {}
    for mac, entry in sorted(systems.items()):
        emulator, uuid = entry if isinstance(entry, tuple) else (bmc, entry)
        machines[mac] = dict(emulator, system_id=uuid)
    _write_private(os.path.join(state_dir, BMC_FILE), json.dumps({"bmc": bmc, "machines": machines}, indent=1) + "\n")


def read_map(state_dir):
    """The map ``write_map`` wrote, or None when the lab has no BMC."""
    try:
        with open(os.path.join(state_dir, BMC_FILE), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def stop(record):
    """Every emulator the lab started (one per hypervisor)."""
    for key, pid in record.data.items():
        if key == "bmc_pid" or key.startswith("bmc_pid_"):
            host.kill_pid(pid, "fleetlab.vm.bmc_emulator")


class Client:
    """The lab's own Redfish client for the VMs' BMC (the ``sushy`` library, as the collection's
    ``power`` module speaks it): the metal face's power actions go through it."""

    RESETS = {"on": "On", "off": "ForceOff", "reset": "ForceRestart", "cycle": "ForceRestart"}
    BOOT = {"pxe": "Pxe", "disk": "Hdd"}

    def __init__(self, bmc, systems):
        self.bmc, self.systems = bmc, {mac.lower(): uuid for mac, uuid in systems.items()}
        self._conn = None
        self._lock = threading.Lock()

    def _system(self, mac):
        import sushy

        if self._conn is None:
            self._conn = sushy.Sushy(self.bmc["address"] + "/redfish/v1/", username=self.bmc["username"],
                                     password=self.bmc["password"])
        return self._conn.get_system("/redfish/v1/Systems/%s" % self.systems[mac.lower()])

    def act(self, mac, action):
        """``action``: on, off, reset, cycle (a cold restart: the emulator offers no power cycle), pxe
        or disk (the boot device, which the emulator keeps in the VM's definition); bios is ignored."""
        import sushy

        with self._lock:
            system = self._system(mac)
            if action in self.RESETS:
                system.reset_system(sushy.ResetType(self.RESETS[action]))
            elif action in self.BOOT:
                system.set_system_boot_options(target=sushy.BootSource(self.BOOT[action]),
                                               enabled=sushy.BootSourceOverrideEnabled.ONCE)
