"""The driver interface: what the pool and the API faces ask of the machines, and what
a driver reports back to the pool.

A driver module ``fleetlab/drivers/<name>.py`` defines a subclass of :class:`Driver` and
exports it as ``DRIVER``. ``fleetlab serve --driver <name>`` loads it lazily.

Calls **into** the driver (from the faces, after the pool change is committed; they must
return quickly, do slow work in the driver's own threads):

* :meth:`Driver.start` / :meth:`Driver.stop`
* :meth:`Driver.provision` -- a machine was leased (plunder deployment created, metal
  allocation made): boot it into the installer and write the OS (``machine["image"]``,
  ``machine["hostname"]``, ``machine["address"]`` and ``machine["lease"]`` with
  ``ssh_pub_keys`` / ``sshkey`` / ``user_data``).
* :meth:`Driver.reinstall` -- metal reinstall: the same with a new image.
* :meth:`Driver.wipe` -- metal free: reclaim the machine, wipe its disk, back to the loop.
* :meth:`Driver.power` -- metal power on/off/reset/cycle/bios/disk/pxe.
* :meth:`Driver.run_command` -- plunder parlay: run one command on the machine (SSH on
  real machines) and return ``(ok, output, error)``; an unreachable machine returns
  ``(False, "", "dial tcp <ip>:22: i/o timeout")`` like an SSH dial failure.
* :meth:`Driver.reachable` -- whether the machine's OS answers (the parlay ``uptime``
  probe and metal's ``Phoned Home`` rely on the driver's truth).

Calls **from** the driver into the pool (``self.pool``), to report what happened:

* ``pool.record_seen(mac)`` -- a PXE loop hit. A leased machine starts installing; a
  machine without a lease (wiped, rebooted blank) is back in the reboot loop.
* ``pool.record_event(mac_or_id, phase, message=None)`` with ``phase`` one of
  ``installing``, ``booting`` (OS written, kexec/reboot into it), ``provisioned`` (OS up
  and reachable), ``rebooting``, ``wiping``, ``unleased``, ``crashed``, ``alive``.
* ``pool.schedule(mac_or_id, step, at)`` / ``pool.take_due()`` -- a persisted per-machine
  timer (survives restarts) a driver may use for its own steps.

Drivers that do not see loop sightings for machines (the sim) set ``virtual_loop`` and
``loop_period``: the pool then derives "seen again every loop period" itself.

**Health.** A driver is ``starting``, ``ready`` or ``failed`` (with the cause). It says so with
:meth:`Driver.set_health`, which also writes ``<state>/driver.json`` so that ``fleetlab up`` and
``fleetlab status`` see it from another process (:func:`read_health`). A driver that needs no
bring-up is ready once :meth:`Driver.start` returns. While the driver has failed, the faces
answer every request with HTTP 503 and the cause: nothing can be leased from machines that
cannot run.

**Faults.** :meth:`Driver.inject_fault` / :meth:`Driver.clear_fault` (``fleetlab fault``, through the
lab's control socket), each until it is cleared:

* ``power-off`` powers the machine off as a power loss would (no event: nothing planned it) and
  holds it off: neither the lab nor a metal ``power on`` switches it on again;
* ``hang`` freezes it with its power on (:meth:`Driver.freeze`): no SSH, no progress. A power
  reset, cycle or off ends it, as a BMC reset cures a hung server (the libvirt driver crashes the
  kernel of a VM that runs its OS, so its BMC's reset cures it too; other VMs are paused);
* ``kill-kubelet`` stops the kubelet on the machine and masks it until the next boot (over SSH:
  the machine must answer). A power reset, cycle or off ends it: the kubelet starts at boot.
* ``no-pxe`` and ``boot-disk`` change the machine's firmware boot order (:meth:`Driver.set_boot_order`),
  as a BIOS reset or a NIC with its boot ROM switched off would: ``no-pxe`` boots only the disk (a
  blank disk: nothing boots, the machine leaves the loop), ``boot-disk`` boots the disk first and
  the network only when the disk is blank (a machine with an OS boots that OS, never the provisioner's
  network boot). Setting the boot device to the network through the machine's BMC (metal ``pxe``,
  Redfish ``BootSourceOverrideTarget: Pxe``) ends them, as clearing does.

Active faults are kept in ``<state>/faults.json`` (:func:`read_faults`), so they outlast a restart
of the lab.
"""
import json
import logging
import os
import re
import threading
import time

_SUDO_RE = re.compile(r"^sudo\s+(-n\s+)?(-u\s+\S+\s+)?")
#: a disk wipe, as plunder's de-provisioning map runs it
DD_WIPE_RE = re.compile(r"(^|\s)dd\s.*\bof=/dev/(sd[a-z]|vd[a-z]|nvme\d+n\d+|xvd[a-z])\b")
SYSRQ_RE = re.compile(r"(^|\s)tee\s+/proc/sysrq-trigger\b")
#: ``sh -c 'grep -qix MAC /sys/class/net/*/address && exec CMD'``: CMD runs only on a host with MAC
_HOST_GUARD_RE = re.compile(r"^sh -c '\s*grep -qix (?P<mac>[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}) "
                            r"/sys/class/net/\*/address && exec (?P<rest>[^']+)'$")


def strip_sudo(command):
    """``command`` without the ``sudo -n -u USER`` prefixes parlay puts in front."""
    cmd = (command or "").strip()
    while True:
        stripped = _SUDO_RE.sub("", cmd, count=1)
        if stripped == cmd:
            return cmd
        cmd = stripped


def host_guard(command):
    """(mac, inner command) of a command guarded by the host's MAC, else (None, command). A
    simulated machine answers the guard as the real shell would: only the host with MAC runs it."""
    match = _HOST_GUARD_RE.match(command)
    if not match:
        return None, command
    return match.group("mac").lower(), match.group("rest").strip()

HEALTH_FILE = "driver.json"
STARTING, READY, FAILED = "starting", "ready", "failed"
FAULTS_FILE = "faults.json"
#: the faults ``fleetlab fault`` injects
FAULT_KINDS = ("power-off", "hang", "kill-kubelet", "no-pxe", "boot-disk")
#: the firmware boot order each boot-order fault sets, and the lab's own (network first)
BOOT_ORDER_FAULTS = {"no-pxe": ("disk",), "boot-disk": ("disk", "network")}
NETWORK_FIRST = ("network", "disk")
#: faults a boot ends, and the power actions that end them (the machine starts afresh, or stops)
ENDED_BY_BOOT = ("hang", "kill-kubelet")
ENDING_ACTIONS = ("reset", "cycle", "off")
#: the kubelet stopped and kept stopped until the next boot (a runtime mask lives in /run)
KILL_KUBELET = "systemctl mask --runtime kubelet && systemctl kill --signal=KILL kubelet && systemctl stop kubelet"
REVIVE_KUBELET = "systemctl unmask --runtime kubelet && systemctl start kubelet"
POWER_ON_ACTIONS = ("on", "reset", "cycle")

log = logging.getLogger("fleetlab")


def read_faults(state_dir):
    """The active faults of the lab in ``state_dir``: ``{machine id: {"kind", "mac", "since"}}``."""
    try:
        with open(os.path.join(state_dir, FAULTS_FILE), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_health(state_dir):
    """The driver health a lab wrote into ``state_dir`` (``{"phase": ..., "error": ...}``), or None."""
    try:
        with open(os.path.join(state_dir, HEALTH_FILE), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("phase") else None


class Driver:
    """Base class of the lab drivers. Subclasses override what they support."""

    name = "base"
    #: True when the pool should derive loop sightings from ``loop_period``
    virtual_loop = False

    def __init__(self, options):
        self.options = dict(options)
        self.loop_period = float(self.options.get("loop_period") or 6.0)
        self.pool = None
        self.state_dir = os.path.abspath(self.options.get("state_dir") or ".lab")
        self._health = {"phase": STARTING, "error": None}
        self._faults = read_faults(self.state_dir)
        self._faults_lock = threading.Lock()

    # health of the driver itself
    def set_health(self, phase, error=None, **extra):
        """Record the driver's health (``starting``/``ready``/``failed``) here and in the state dir."""
        data = {"driver": self.name, "phase": phase, "error": error, "time": time.time()}
        data.update(extra)
        self._health = data
        os.makedirs(self.state_dir, exist_ok=True)
        path = os.path.join(self.state_dir, HEALTH_FILE)
        tmp = path + ".tmp%d" % os.getpid()
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)

    def health(self):
        return dict(self._health)

    @property
    def failed(self):
        """The cause (str) when the driver failed, else None."""
        return self._health.get("error") if self._health.get("phase") == FAILED else None

    # lifecycle of the driver itself
    def start(self, pool):
        """Called once the pool is open, before the faces accept requests. Drivers with a
        bring-up of their own set ``starting`` here and ``ready``/``failed`` when it ends."""
        self.pool = pool
        self.set_health(READY)

    def stop(self):
        """Called on shutdown; stop threads, leave machines as they are."""

    #: address range for metal allocations (None: the CLI's ``--lease-network``)
    lease_network = None

    # calls from the faces
    def provision(self, machine):
        """A lease was committed for ``machine`` (a pool row dict)."""
        raise NotImplementedError

    def reinstall(self, machine):
        """Re-install an allocated machine with ``machine["image"]``."""
        raise NotImplementedError

    def wipe(self, machine):
        """Reclaim a freed machine: wipe and return it to the reboot loop."""
        raise NotImplementedError

    def power(self, machine, action):
        """``action`` in on, off, reset, cycle, bios, disk, pxe."""

    # power as the machine's BMC switches it, and faults
    def switch_power(self, ident, action):
        """Switch a machine's power (metal ``power`` and faults): the pool's ``power`` column, then
        :meth:`power`. A machine held off by a fault stays off. Returns the machine."""
        m = self.pool.get(ident)
        if action in POWER_ON_ACTIONS and self.held_off(m):
            log.info("power %s of %s refused: held off by a power-off fault", action, m["mac"])
            return m
        fault = self.end_boot_fault(m, "power " + action) if action in ENDING_ACTIONS else None
        if fault and fault["kind"] == "hang":
            self.thaw(m, resetting=True)
        if action == "pxe":
            self.end_boot_order_fault(m, "the boot device set to the network")
        if action == "off":
            self.pool.set_columns(m["id"], power="off", last_seen=time.time())
        elif action in POWER_ON_ACTIONS:
            self.pool.set_columns(m["id"], power="on")
        m = self.pool.get(m["id"])
        self.power(m, action)
        return m

    def fault_of(self, machine):
        """The active fault of ``machine`` (a pool row) or None."""
        with self._faults_lock:
            fault = self._faults.get(machine["id"]) if machine else None
            return dict(fault) if fault else None

    def faulted_as(self, name):
        """Ids of the machines whose fault was injected while they had the lease name or hostname ``name``."""
        with self._faults_lock:
            return sorted(mid for mid, fault in self._faults.items() if name in fault.get("names", ()))

    def held_off(self, machine):
        """True while a power-off fault holds ``machine`` off."""
        return (self.fault_of(machine) or {}).get("kind") == "power-off"

    def hung(self, machine):
        """True while a hang fault freezes ``machine``."""
        return (self.fault_of(machine) or {}).get("kind") == "hang"

    def freeze(self, machine):
        """Stop the machine where it is, power on (a ``hang`` fault). Drivers that can, override."""
        raise ValueError("the %s driver cannot freeze a machine" % self.name)

    def thaw(self, machine, resetting=False):
        """Let a frozen machine run again (``resetting``: a power reset, cycle or off follows)."""

    def kill_kubelet(self, machine):
        """Stop the machine's kubelet until its next boot (a ``kill-kubelet`` fault), over SSH."""
        ok, out, err = self.run_command(machine, KILL_KUBELET, timeout=60)
        if not ok:
            raise ValueError("kill-kubelet on %s: the machine did not run it (%s)"
                             % (machine["mac"], (err or out or "no answer").strip()))

    def set_boot_order(self, machine, order):
        """Set the machine's firmware boot order (a tuple of ``network`` / ``disk``; a boot-order fault
        or its end). Drivers that model firmware override."""
        raise ValueError("the %s driver has no firmware boot order" % self.name)

    def end_boot_order_fault(self, machine, cause):
        """Drop ``machine``'s boot-order fault (``cause``: what put the network first again, for the
        log) and make the order the lab's own. Returns the dropped fault, or None."""
        fault = self._end_fault(machine, BOOT_ORDER_FAULTS, cause)
        if fault:
            self.set_boot_order(machine, NETWORK_FIRST)
        return fault

    def end_boot_fault(self, machine, cause):
        """Drop ``machine``'s fault when it is one a boot ends (``cause``: what ended it, for the
        log). Returns the dropped fault, or None."""
        return self._end_fault(machine, ENDED_BY_BOOT, cause)

    def _end_fault(self, machine, kinds, cause):
        """Drop ``machine``'s fault when its kind is one of ``kinds``; returns it, or None."""
        fault = self.fault_of(machine)
        if not fault or fault["kind"] not in kinds:
            return None
        self._drop_fault(machine["id"])
        log.info("fault %s on %s ended by %s", fault["kind"], machine["mac"], cause)
        return fault

    def _drop_fault(self, mid):
        with self._faults_lock:
            fault = self._faults.pop(mid, None)
            if fault is not None:
                self._save_faults()
        return fault

    def _save_faults(self):
        path = os.path.join(self.state_dir, FAULTS_FILE)
        tmp = path + ".tmp%d" % os.getpid()
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self._faults, fh, indent=1, sort_keys=True)
        os.replace(tmp, path)

    def inject_fault(self, ident, kind):
        """Record fault ``kind`` on a machine and make it so. Returns (machine, fault)."""
        if kind not in FAULT_KINDS:
            raise ValueError("unknown fault %r (known: %s)" % (kind, ", ".join(FAULT_KINDS)))
        m = self.pool.get(ident)
        current = self.fault_of(m)
        if current and current["kind"] != kind:
            raise ValueError("%s already has the fault %s: clear it first" % (m["mac"], current["kind"]))
        if kind == "kill-kubelet" and not current:
            self.kill_kubelet(m)
        elif kind == "hang" and not current:
            self.freeze(m)
        elif kind in BOOT_ORDER_FAULTS and not current:
            self.set_boot_order(m, BOOT_ORDER_FAULTS[kind])
        with self._faults_lock:
            fault = self._faults.get(m["id"])
            if fault is None or fault.get("kind") != kind:
                # the names it had: a released machine can still be cleared by them
                fault = {"kind": kind, "mac": m["mac"], "since": time.time(),
                         "names": [n for n in (m.get("lease_name"), m.get("hostname")) if n]}
                self._faults[m["id"]] = fault
                self._save_faults()
        log.info("fault %s injected on %s (%s)", kind, m["mac"], m["id"])
        if kind == "power-off":
            # recorded first: from now on nothing powers it on
            m = self.switch_power(m["id"], "off")
        return self.pool.get(m["id"]), dict(fault)

    def clear_fault(self, ident):
        """Remove a machine's fault and undo it (power on). Returns (machine, the cleared fault or None)."""
        m = self.pool.get(ident)
        fault = self._drop_fault(m["id"])
        if fault is None:
            return m, None
        log.info("fault %s cleared on %s (%s)", fault.get("kind"), m["mac"], m["id"])
        if fault.get("kind") == "power-off":
            m = self.switch_power(m["id"], "on")
        elif fault.get("kind") == "hang":
            self.thaw(m)
        elif fault.get("kind") in BOOT_ORDER_FAULTS:
            self.set_boot_order(m, NETWORK_FIRST)
        elif fault.get("kind") == "kill-kubelet":
            ok, out, err = self.run_command(m, REVIVE_KUBELET, timeout=60)
            if not ok:
                log.warning("kill-kubelet cleared on %s, but starting the kubelet failed: %s",
                            m["mac"], (err or out).strip())
        return self.pool.get(m["id"]), fault

    def reachable(self, machine):
        """True when the machine's installed OS answers (SSH)."""
        raise NotImplementedError

    def run_command(self, machine, command, timeout=None, stdin=None):
        """Run ``command`` (a shell string, possibly ``sudo -n -u U ...``) on the machine,
        ``stdin`` piped in when given. Return ``(ok, output, error)``: ``output`` is the
        combined output with trailing newlines trimmed, ``error`` the SSH/exit error text
        (``"Process exited with status 1"``, ``"Command Timed out"``, dial errors)."""
        raise NotImplementedError
