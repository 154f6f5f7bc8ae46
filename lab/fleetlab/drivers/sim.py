"""The sim driver: machines are state machines on timers.

One scheduler thread serves the whole pool through the pool's persisted per-machine
timers (an indexed ``due_at`` column), so 10,000 machines cost nothing while they
loop, and a restarted server picks up exactly where it stopped.

Timeline of one machine (durations from the options, see :data:`PRESETS`):

* in the loop: seen again every ``loop_period`` (derived by the pool, no timer);
* leased: after ``pxe_delay`` (its next PXE boot) -> ``installing``;
* ``install_seconds`` later -> ``booting`` (OS written) and then ``provisioned``;
* metal free / plunder ``dd`` + sysrq reboot: ``wiping`` for ``wipe_seconds`` -> loop.

A ``hang`` fault freezes a machine: no step runs and nothing answers until a power reset, cycle
or off ends it (which reboots it as usual). The boot-order faults act at a machine's network boot
(its ``pxe`` step): ``no-pxe`` boots an OS on disk or nothing (a blank machine leaves the loop),
``boot-disk`` boots an OS on disk instead of the network; neither installs nor loops a machine
with an OS on disk.

Commands (plunder parlay) are simulated by :meth:`SimDriver.run_command`: an
unreachable machine answers like an SSH dial timeout; ``dd ... of=/dev/sda`` blanks the
disk; ``echo b | tee /proc/sysrq-trigger`` reboots it (a blank disk then PXE-boots).
"""

import shlex
import threading
import time

from .. import store as P
from .base import BOOT_ORDER_FAULTS, DD_WIPE_RE, NETWORK_FIRST, Driver, host_guard, strip_sudo

PRESETS = {
    # seconds; "fast" suits tests, "realistic" resembles real hardware / TCG VMs
    "fast": {"loop_period": 2.0, "install_seconds": 1.5, "wipe_seconds": 1.0, "pxe_delay": 0.2,
             "ssh_timeout": 0.2},
    "demo": {"loop_period": 6.0, "install_seconds": 20.0, "wipe_seconds": 8.0, "pxe_delay": 3.0,
             "ssh_timeout": 0.8},
    "realistic": {"loop_period": 6.0, "install_seconds": 420.0, "wipe_seconds": 90.0, "pxe_delay": 6.0,
                  "ssh_timeout": 0.8},
}



class SimDriver(Driver):
    name = "sim"
    virtual_loop = True

    def __init__(self, options):
        preset = PRESETS[options.get("preset") or "fast"]
        merged = dict(preset)
        merged.update({k: v for k, v in options.items() if v is not None})
        super().__init__(merged)
        self.install_seconds = float(merged["install_seconds"])
        self.wipe_seconds = float(merged["wipe_seconds"])
        self.pxe_delay = float(merged["pxe_delay"])
        self.ssh_timeout = float(merged["ssh_timeout"])
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = None
        self._rebooting = {}  # machine id -> until (OS reboot without a wipe)
        self._lock = threading.Lock()

    # -- scheduler ----------------------------------------------------------------------
    def start(self, pool):
        super().start(pool)
        pool.loop_period = self.loop_period
        self._recover()
        self._thread = threading.Thread(target=self._run, name="sim-driver", daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(5)

    def _recover(self):
        """After a crash between a committed change and its timer: give every machine in
        motion the timer it needs (timers themselves are persisted with the pool)."""
        rows = self.pool.machines(due=False, power="on", states=(P.LEASED, P.INSTALLING, P.WIPING, P.PROVISIONED))
        for m in rows:
            if m["state"] == P.LEASED or m["state"] == P.WIPING:
                self.pool.schedule(m["id"], "pxe", time.time() + self.pxe_delay)
            elif m["state"] == P.INSTALLING and m["disk_state"] == "installing":
                self.pool.schedule(m["id"], "booting", time.time() + self.install_seconds * 0.75)
            elif m["state"] == P.INSTALLING:
                self.pool.schedule(m["id"], "provisioned", time.time() + self.install_seconds * 0.25)
            elif m["state"] == P.PROVISIONED and (m["lease"] or {}).get("reinstall"):
                self.pool.schedule(m["id"], "pxe", time.time() + self.pxe_delay)

    def _schedule(self, machine_id, step, delay):
        self.pool.schedule(machine_id, step, time.time() + delay)
        self._wake.set()

    def _run(self):
        while not self._stop.is_set():
            try:
                due = self.pool.take_due()
                for mid, step in due:
                    self._step(mid, step)
                nxt = self.pool.next_due()
            except Exception as exc:  # keep the scheduler alive; log and retry
                print("sim driver: %s" % exc, flush=True)
                nxt = None
            wait = 0.5 if nxt is None else max(0.0, min(0.5, nxt - time.time()))
            self._wake.wait(wait)
            self._wake.clear()

    def _step(self, mid, step):
        m = self.pool.get(mid)
        if m is None or m["power"] != "on":
            return  # a machine without power does nothing; power on starts it again
        if self.hung(m):
            return  # frozen: its steps are lost; the reset that ends the hang starts it again
        if step == "pxe":
            with self._lock:
                self._rebooting.pop(mid, None)
            boots = self._boots_from(m)
            if boots == "disk":
                return  # its OS on disk comes up again: no install, no loop
            if boots is None:
                if m["state"] == P.UNLEASED:
                    self.pool.set_columns(mid, loop_since=None)  # nothing boots: gone from the loop
                return
            state = self.pool.record_seen(m["mac"])
            if state == P.INSTALLING:
                self._after_install_start(m)
        elif step == "booting":
            if m["state"] == P.INSTALLING:
                if m["labels"].get("fleetlab.io/fail-install") == "true":
                    self.pool.record_event(mid, "crashed", "simulated install failure (fleetlab.io/fail-install)")
                    return
                self.pool.record_event(mid, "booting")
                self._schedule(mid, "provisioned", self.install_seconds * 0.25)
        elif step == "provisioned":
            if m["state"] == P.INSTALLING:
                self.pool.record_event(mid, "provisioned")
        elif step == "os-up":
            with self._lock:
                self._rebooting.pop(mid, None)
            if m["state"] == P.PROVISIONED:
                self.pool.record_event(mid, "provisioned")

    def _after_install_start(self, m):
        self._schedule(m["id"], "booting", self.install_seconds * 0.75)

    # -- hooks from the faces --------------------------------------------------------------
    def provision(self, machine):
        if machine["state"] in (P.LEASED, P.UNLEASED):
            self._schedule(machine["id"], "pxe", self.pxe_delay)
        # wiping machines PXE-boot at the end of their wipe and then install

    def reinstall(self, machine):
        # the BMC sets PXE boot and resets: the installed OS goes away, the machine
        # PXE-boots and, still allocated, installs again
        with self._lock:
            self._rebooting[machine["id"]] = time.time() + 10 ** 9
        self._schedule(machine["id"], "pxe", self.pxe_delay)

    def wipe(self, machine):
        if machine["state"] != P.WIPING:
            self.pool.record_event(machine["id"], "wiping")
        self._schedule(machine["id"], "pxe", self.wipe_seconds)

    def power(self, machine, action):
        mid = machine["id"]
        if action in ("reset", "cycle", "on"):
            reinstall = (machine["lease"] or {}).get("reinstall")
            if machine["disk_state"] == "os" and machine["state"] == P.PROVISIONED and not reinstall:
                with self._lock:
                    self._rebooting[mid] = time.time() + self.pxe_delay * 2
                self._schedule(mid, "os-up", self.pxe_delay * 2)
            elif machine["state"] in (P.UNLEASED, P.WIPING):
                self._schedule(mid, "pxe", self.pxe_delay)
            elif machine["due_at"] is None and (machine["state"] in (P.LEASED, P.INSTALLING) or reinstall):
                # it stopped while off (its steps were dropped): it PXE-boots again
                self._schedule(mid, "pxe", self.pxe_delay)

    def freeze(self, machine):
        pass  # hung() is the truth: no step runs, nothing answers

    def _boots_from(self, m):
        """What the firmware boots at a network boot: ``network``, ``disk`` or None (nothing)."""
        order = BOOT_ORDER_FAULTS.get((self.fault_of(m) or {}).get("kind"), NETWORK_FIRST)
        for device in order:
            if device == "network" or m["disk_state"] == "os":
                return device
        return None

    def set_boot_order(self, machine, order):
        # the fault record is the boot order at the next network boot; a blank machine in the loop
        # reboots within a loop period, so it takes effect now
        m = self.pool.get(machine["id"])
        if m["power"] != "on" or m["disk_state"] == "os":
            return
        if "network" not in order and m["state"] == P.UNLEASED:
            self.pool.set_columns(m["id"], loop_since=None)
        elif order == NETWORK_FIRST and m["due_at"] is None and (
                m["state"] in (P.LEASED, P.WIPING) or (m["state"] == P.UNLEASED and m["loop_since"] is None)):
            self._schedule(m["id"], "pxe", self.pxe_delay)  # the firmware retries its boot

    def kill_kubelet(self, machine):
        raise ValueError("simulated machines run no kubelet: kill-kubelet needs the libvirt driver")

    def reachable(self, machine):
        if machine is None or machine["state"] != P.PROVISIONED or machine["power"] != "on":
            return False
        if self.hung(machine):
            return False
        with self._lock:
            until = self._rebooting.get(machine["id"])
        return until is None or until <= time.time()

    # -- simulated shell ------------------------------------------------------------------
    def run_command(self, machine, command, timeout=None, stdin=None):
        address = machine.get("address") or "0.0.0.0"
        if not self.reachable(machine):
            time.sleep(self.ssh_timeout)
            return False, "", "dial tcp %s:22: i/o timeout" % address
        cmd = strip_sudo(command)
        guard_mac, cmd = host_guard(cmd)
        if guard_mac is not None and guard_mac != (machine.get("mac") or "").lower():
            return False, "", "Process exited with status 1"  # grep found no such interface
        if DD_WIPE_RE.search(cmd):
            self.pool.set_columns(machine["id"], disk_state="blank")
            return True, ("1000+0 records in\n1000+0 records out\n"
                          "1048576000 bytes (1.0 GB, 1000 MiB) copied, 1.9 s, 552 MB/s"), ""
        if cmd.startswith("tee /proc/sysrq-trigger"):
            if stdin is not None and stdin.strip() == "b":
                self._sysrq_reboot(machine)
                time.sleep(min(self.ssh_timeout, float(timeout or 2)))
                return False, "", "Command Timed out"
            return True, (stdin or "").rstrip("\r\n"), ""
        if cmd.startswith("tee "):
            return True, (stdin or "").rstrip("\r\n"), ""
        return self._shell(machine, cmd)

    def _sysrq_reboot(self, machine):
        m = self.pool.get(machine["id"])
        if m["disk_state"] == "blank":
            # the OS is gone: the machine falls through to PXE after the reboot
            self.pool.record_event(m["id"], "wiping", "sysrq reboot")
            self._schedule(m["id"], "pxe", self.wipe_seconds)
        else:
            self.pool.record_event(m["id"], "rebooting", "sysrq reboot")
            with self._lock:
                self._rebooting[m["id"]] = time.time() + self.pxe_delay * 2
            self._schedule(m["id"], "os-up", self.pxe_delay * 2)

    def _shell(self, machine, cmd):
        try:
            argv = shlex.split(cmd)
        except ValueError:
            return False, "sh: syntax error", "Process exited with status 2"
        if not argv:
            return True, "", ""
        prog = argv[0]
        if prog == "uptime":
            up = max(1, int((time.time() - (machine.get("state_since") or time.time())) // 60))
            return True, time.strftime(" %H:%M:%S", time.gmtime()) + (
                " up %d min,  0 users,  load average: 0.08, 0.03, 0.01" % up), ""
        if prog in ("true", ":"):
            return True, "", ""
        if prog == "false":
            return False, "", "Process exited with status 1"
        if prog == "exit":
            code = int(argv[1]) if len(argv) > 1 and argv[1].isdigit() else 0
            return (code == 0), "", ("" if code == 0 else "Process exited with status %d" % code)
        if prog == "hostname":
            return True, machine.get("hostname") or "", ""
        if prog == "whoami":
            return True, "root", ""
        if prog == "echo":
            return True, " ".join(argv[1:]), ""
        if prog == "cat" and argv[1:] == ["/etc/hostname"]:
            return True, machine.get("hostname") or "", ""
        if prog == "cat" and argv[1:] == ["/etc/os-release"]:
            image = machine.get("image") or "debian-12"
            return True, 'PRETTY_NAME="%s (fleetlab sim)"\nID=%s' % (image, image.split("-")[0]), ""
        # any other command "succeeds" without output (the sim has no real shell)
        return True, "", ""


DRIVER = SimDriver
