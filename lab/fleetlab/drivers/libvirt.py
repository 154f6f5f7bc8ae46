"""The libvirt driver: every pool machine is a VM that really network-boots.

``fleetlab serve --driver libvirt --machines N`` (options with ``--driver-opt KEY=VALUE``:
``memory`` MiB per VM (512), ``vcpus`` (1), ``accel`` ``auto|kvm|qemu`` (auto: a real KVM probe),
``loop_wait`` seconds the loop script waits before rebooting (2), ``cache_dir`` for the OS image
(``/var/cache/fleetlab``), ``vms`` the most VMs to create (6: a looping VM costs a third of a core
under TCG)).

Several hypervisors (``--hypervisor URI`` as often as needed, see :mod:`fleetlab.vm.hypervisors`):
``placement`` ``round-robin`` (default) or ``rack`` (one hypervisor per rack), ``vtep`` this host's
tunnel endpoint, ``underlay_netns`` the namespace that holds it (default: the host's own), ``vni``
the VXLAN id (7700). Each machine carries the label ``fleetlab.io/hypervisor``; the driver's health
lists the hypervisors and says when one stops answering (its machines' power reads ``unknown``).

What happens (see ``fleetlab.vm`` and docs/lab-libvirt.md):

* ``start``: a background thread builds (or finds in the cache) the OS image and the installer,
  starts libvirtd inside the lab's own network namespace, defines an isolated network with iPXE
  boot, and boots one blank VM per pool machine (its MAC). Machines show up unleased on both faces
  when their VM is first seen in the loop, not before.
* a PXE hit of a MAC asks :meth:`_decide`: a lease with an OS on disk -> boot it; a lease -> the
  installer; otherwise plunder's reboot script (the MAC is recorded as seen; an unknown MAC joins the pool).
* the installer reports ``installing`` / ``written`` (-> ``Installing`` / ``Booting New Kernel``), the
  installed OS phones home, the driver checks that SSH answers, then ``Phoned Home``.
* metal ``free`` zeroes the start of the disk over SSH (out of band when SSH does not answer) and
  reboots; plunder's parlay wipe runs the real ``dd`` and sysrq reboot on the VM. A blank disk
  falls back into the loop.
* ``stop`` removes everything (domains, disks, network, libvirtd/virtlogd when the lab started
  them, the namespace); after a crash, the next start or ``python -m fleetlab.drivers.libvirt
  down --state DIR`` does it from the record in the state dir.

SSH from the host: ``STATE/vm/ssh.json`` and ``STATE/vm/ssh_config`` give each machine's
127.0.0.1 port (a forward into the namespace), key and known_hosts; each machine also carries the
labels ``fleetlab.io/ssh-host`` and ``fleetlab.io/ssh-port``.
"""
import base64
import binascii
import json
import logging
import os
import threading
import time
import uuid

from .. import store as P
from .base import (BOOT_ORDER_FAULTS, DD_WIPE_RE, FAILED, POWER_ON_ACTIONS, READY, STARTING, SYSRQ_RE, Driver,
                   strip_sudo)

log = logging.getLogger("fleetlab.libvirt")

WIPE_COMMAND = ("dd if=/dev/zero of=/dev/sda bs=1M count=64 conv=fsync 2>/dev/null; sync; "
                "echo 1 > /proc/sys/kernel/sysrq; (sleep 1; echo b > /proc/sysrq-trigger) >/dev/null 2>&1 &")


def _keys_of(lease):
    """The SSH public keys a lease asks for (metal ``ssh_pub_keys``, plunder ``sshkey``)."""
    keys = list((lease or {}).get("ssh_pub_keys") or [])
    raw = (lease or {}).get("sshkey") or ""
    if raw:
        text = raw.strip()
        if not text.startswith(("ssh-", "ecdsa-", "sk-")):
            try:
                text = base64.b64decode(text, validate=True).decode().strip()
            except (binascii.Error, ValueError, UnicodeDecodeError):
                text = ""
        if text:
            keys.append(text)
    return keys


class LibvirtDriver(Driver):
    name = "libvirt"
    virtual_loop = False

    def __init__(self, options):
        super().__init__(options)
        o = self.options
        self.memory = int(o.get("memory") or 512)
        self.vcpus = int(o.get("vcpus") or 1)
        self.accel = o.get("accel") or "auto"
        self.loop_wait = int(float(o.get("loop_wait") or 2))
        self.max_vms = int(o.get("vms") or 6)
        self.lease_network = o.get("network") or "10.77.0.0/16"
        from ..vm import images
        self.cache_dir = o.get("cache_dir") or images.DEFAULT_CACHE
        self.vm = None
        self.ready = threading.Event()
        self.error = None
        self._stop = threading.Event()
        self._threads = []
        self._lock = threading.Lock()
        self._reinstall = set()
        self._lease_t = {}           # mac -> time of the lease (provision call)
        self._timings = {}           # mac -> {phase: seconds}
        self._reach_cache = {}       # mac -> (time, bool)
        self._bmc = {}               # mac -> the Redfish BMC of its VM (fleetlab.vm.bmc.Client) once it runs
        self._bmc_forwarders = []    # host 127.0.0.1 -> each BMC inside a namespace
        hv = o.get("hypervisors") or []
        self.hypervisor_specs = hv.split(";") if isinstance(hv, str) else list(hv)
        self.placement = o.get("placement") or "round-robin"
        self.underlay_ns = o.get("underlay_netns") or None
        self.vtep = o.get("vtep") or None
        from ..vm import overlay
        self.vni = int(o.get("vni") or overlay.DEFAULT_VNI)
        self._hv_down = {}           # hypervisor name -> the cause, while it does not answer

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, pool):
        self.pool = pool
        self.set_health(STARTING)
        from ..vm import lab as vmlab
        # a lab that crashed left its VMs, network, daemons and namespace: remove them first
        vmlab.teardown(self.state_dir, log=log.info)
        now = time.time()
        for m in pool.machines():
            cols = {}
            if m["state"] == P.UNLEASED and m["lease_name"] is None:
                cols.update(loop_since=None, last_seen=None)  # listed once its VM is seen looping
            if m["disk_state"] != "blank":
                cols["disk_state"] = "blank"  # every VM starts with an empty disk
            if cols:
                pool.set_columns(m["id"], changed=now, **cols)
        t = threading.Thread(target=self._bring_up, name="libvirt-up", daemon=True)
        t.start()
        self._threads.append(t)

    def _bring_up(self):
        try:
            from ..vm import host

            reason = host.cannot_run_vms()
            if reason:
                raise host.HostError("this machine cannot run the lab's VMs: " + reason)
            self.vm = self._make_lab()
            self.vm.decide = self._decide
            self.vm.on_report = self._on_report
            self.vm.setup()
            machines = self.pool.machines()[:self.max_vms]
            from ..vm import hypervisors
            placed = hypervisors.place(machines, self.vm.specs, self.placement)
            created = self._create_vms(machines, placed)
            for m in machines:
                if self.held_off(m):
                    self.vm.power(m["mac"], "off")  # a power-off fault outlasts a restart
            for m, vmm in zip(machines, created):
                labels = dict(m["labels"])
                labels.update({"fleetlab.io/ssh-host": "127.0.0.1",
                               "fleetlab.io/ssh-port": str(vmm.forwarder.port),
                               "fleetlab.io/vm": vmm.name, "fleetlab.io/hypervisor": vmm.hypervisor})
                self.pool.set_columns(m["id"], labels=json.dumps(labels, sort_keys=True))
                if m["lease_name"] is not None:
                    self._prepare(m)
            bmc = self._start_bmc(machines)
            self.set_health(READY, accel=self.vm.domain_type, machines=len(machines),
                            boot_service=self.vm.boot.base, namespace=self.vm.ns, bmc=bmc,
                            hypervisors=self.vm.hypervisor_states())
            self.ready.set()
            log.info("libvirt: %d VMs booting (%s)", len(machines), self.vm.domain_type)
        except Exception as exc:  # reported as the driver's health and in the log
            self.error = exc
            log.exception("libvirt: lab set-up failed")
            self._undo_bring_up()
            self.set_health(FAILED, error=str(exc) or exc.__class__.__name__)
            self.ready.set()
            return
        self._monitor()

    def _start_bmc(self, machines):
        """A Redfish BMC for every VM (sushy-tools' emulator, see :mod:`fleetlab.vm.bmc`); the lab runs
        without one, and says so, when the emulator cannot start. Returns its address or the cause."""
        from ..vm import bmc as vmbmc, hypervisors
        try:
            systems = {}
            bmc = None
            # one emulator per hypervisor, next to the libvirtd it drives or on the way to it
            for hv in self.vm.hypervisor_states():
                ours = [m for m in machines if self.vm.machine(m["mac"]).hypervisor == hv["name"]]
                local = hv["name"] == hypervisors.LOCAL
                if not ours and not local:
                    continue
                emulator, forwarder = vmbmc.start(
                    self.state_dir, self.vm.uri if local else hv["uri"], self.vm.record,
                    ns=self.vm.ns if local else self.underlay_ns, name=None if local else hv["name"])
                if forwarder is not None:
                    self._bmc_forwarders.append(forwarder)
                bmc = bmc or emulator
                hv_systems = {m["mac"]: self.vm.domain(m["mac"]).UUIDString() for m in ours}
                client = vmbmc.Client(emulator, hv_systems)
                for mac, system_id in hv_systems.items():
                    systems[mac] = (emulator, system_id)
                    self._bmc[mac] = client
            vmbmc.write_map(self.state_dir, bmc, systems)
        except Exception as exc:  # the faces and the VMs work without it
            log.warning("libvirt: no BMC for the VMs: %s", exc)
            self._bmc = {}
            return "none: %s" % exc
        log.info("libvirt: Redfish BMC for %d VMs on %s (credentials in %s)", len(machines), bmc["address"],
                 os.path.join(self.state_dir, vmbmc.BMC_FILE))
        return bmc["address"]

    def _undo_bring_up(self):
        """A failed set-up removes whatever it had started (daemons, VMs, network, namespace)."""
        from ..vm import lab as vmlab

        for forwarder in self._bmc_forwarders:
            forwarder.close()
        if self.vm is not None:
            try:
                self.vm.close()
            except Exception:  # pylint: disable=broad-except  (the original error is the one to report)
                log.exception("libvirt: closing the half-built lab")
        try:
            vmlab.teardown(self.state_dir, log=log.info)
        except Exception:  # pylint: disable=broad-except
            log.exception("libvirt: tearing down the half-built lab")

    def _make_lab(self):
        from ..vm.lab import VMLab

        return VMLab(self.state_dir, network=self.lease_network, cache_dir=self.cache_dir,
                     memory_mib=self.memory, vcpus=self.vcpus, accel=self.accel, loop_wait=self.loop_wait,
                     log=log.info, hypervisor_specs=self.hypervisor_specs, underlay_ns=self.underlay_ns,
                     vtep=self.vtep, vni=self.vni)

    def _create_vms(self, machines, placed):
        """One blank VM per pool machine (its MAC) on the hypervisor ``placed`` names; returns the
        VMLab machines in the same order."""
        out = []
        for m in machines:
            if self._stop.is_set():
                raise RuntimeError("stopped while creating VMs")
            out.append(self.vm.add_machine(m["mac"], start=not self.held_off(m), hypervisor=placed[m["mac"]]))
        return out

    def _monitor(self):
        """Heartbeat: provisioned machines whose SSH answers are 'alive'. A machine held off by a
        power-off fault that runs anyway (switched on through its BMC, which bypasses the lab) is
        switched off again: its power is gone, whoever presses the button."""
        while not self._stop.wait(10.0):
            if self.vm.remotes:
                self._watch_hypervisors()
            for mid in list(self._faults):
                m = self.pool.get(mid)
                if m is not None and self.held_off(m) and self.vm.machine(m["mac"]) is not None \
                        and self._hv_up(m) and self.vm.is_on(m["mac"]):
                    log.info("libvirt: %s is held off by a power-off fault: off again", m["mac"])
                    self.vm.power(m["mac"], "off")
            try:
                self._watch_boot_orders()
            except Exception:  # pylint: disable=broad-except  (the heartbeat goes on)
                log.exception("libvirt: reading boot orders")
            for m in self.pool.machines(state=P.PROVISIONED):
                if self.vm.machine(m["mac"]) is not None and self.reachable(m):
                    try:
                        self.pool.record_event(m["id"], "alive")
                    except P.PoolError:
                        pass

    def _hv_up(self, machine):
        vmm = self.vm.machine(machine["mac"])
        return vmm is not None and vmm.hypervisor not in self._hv_down

    def _watch_hypervisors(self):
        """Whether each remote hypervisor answers; when one stops (or comes back) the log and the
        driver's health say so, and the power of its machines reads ``unknown`` (or what it is)."""
        from ..vm import hypervisors
        changed = False
        for name, remote in self.vm.remotes.items():
            up = remote.alive()
            if not up and name not in self._hv_down:
                self._hv_down[name] = remote.error
                log.error("libvirt: hypervisor %s (%s) went away (%s): its machines are unreachable, the other "
                          "hypervisors' keep working", name, remote.uri, remote.error)
                changed = True
            elif up and name in self._hv_down:
                del self._hv_down[name]
                log.info("libvirt: hypervisor %s (%s) answers again", name, remote.uri)
                changed = True
        for m in self.pool.machines():
            vmm = self.vm.machine(m["mac"])
            if vmm is None or vmm.hypervisor == hypervisors.LOCAL:
                continue
            if vmm.hypervisor in self._hv_down:
                power = "unknown"
            else:
                try:
                    power = "on" if self.vm.is_on(m["mac"]) else "off"
                except Exception:  # pylint: disable=broad-except  (it went away between the two calls)
                    power = "unknown"
            if m["power"] != power:
                self.pool.set_columns(m["id"], power=power, last_seen=time.time() if power != "on" else m["last_seen"])
        if changed:
            extra = {k: v for k, v in self.health().items() if k not in ("driver", "phase", "error", "time")}
            extra["hypervisors"] = self.vm.hypervisor_states()
            self.set_health(READY, **extra)

    def stop(self):
        """The VMs only make sense with the lab's boot service: stopping the lab removes them."""
        self._stop.set()
        for t in self._threads:
            t.join(5)
        if self.vm is not None:
            self.vm.close()
        for forwarder in self._bmc_forwarders:
            forwarder.close()
        from ..vm import lab as vmlab
        vmlab.teardown(self.state_dir, log=log.info)
        if not self.failed:
            self.set_health("stopped")

    # -- boot service callbacks ---------------------------------------------------------------
    def _decide(self, mac):
        m = self.pool.get(mac)
        if m is None:
            self._join_pool(mac)
            m = self.pool.get(mac)
        if m["disk_state"] == "os" and m["lease_name"] is not None and mac not in self._reinstall:
            return "disk"  # a released machine's old OS is not booted: the network boot loops it
        state = self.pool.record_seen(mac)
        if state == P.INSTALLING:
            m = self.pool.get(mac)
            vmm = self.vm.machine(mac)
            if vmm is not None and vmm.files is None:
                self._prepare(m)
            with self._lock:
                self._reinstall.discard(mac)
            if vmm is None:
                return "loop"  # not one of ours: nothing would write its disk
            return "install"
        return "loop"

    def _join_pool(self, mac):
        """A MAC the pool does not know PXE-booted: it joins the pool, like plunder lists any MAC."""
        mid = str(uuid.uuid5(uuid.NAMESPACE_OID, "fleetlab:" + mac))
        self.pool.populate([{"id": mid, "mac": mac, "size": P.DEFAULT_SIZES[0], "partition": P.DEFAULT_PARTITION,
                             "rack": "rack-01", "labels": {}}])
        log.info("libvirt: unknown MAC %s joined the pool", mac)

    def _on_report(self, mac, event, detail, uptime):
        m = self.pool.get(mac)
        if m is None:
            return
        t_lease = self._lease_t.get(mac)
        if event == "installing":
            self.pool.record_event(m["id"], "installing")
        elif event == "written":
            self._mark(mac, "lease_to_written", t_lease)
            self.pool.record_event(m["id"], "booting", "booting into distro kernel")
        elif event == "failed":
            self.pool.record_event(m["id"], "crashed", "installer failed: %s" % detail)
        elif event == "phoned-home":
            # it booted again (a reset through its BMC, say): what a boot ends is over
            self.end_boot_fault(m, "a boot")
            t = threading.Thread(target=self._confirm_ssh, args=(mac,), daemon=True)
            t.start()

    def _confirm_ssh(self, mac):
        deadline = time.time() + 60
        while time.time() < deadline and not self._stop.is_set():
            if self.vm.ssh_answers(mac):
                m = self.pool.get(mac)
                if m["state"] == P.INSTALLING:
                    self._mark(mac, "lease_to_ssh", self._lease_t.get(mac))
                    self.pool.record_event(m["id"], "provisioned")
                    self._log_timings(mac)
                return
            time.sleep(0.5)
        m = self.pool.get(mac)
        self.pool.record_event(m["id"], "crashed", "installed OS phoned home but SSH does not answer")

    def _mark(self, mac, key, since):
        if since is None:
            return
        with self._lock:
            self._timings.setdefault(mac, {})[key] = round(time.time() - since, 1)

    def _log_timings(self, mac):
        vmm = self.vm.machine(mac)
        with self._lock:
            t = self._timings.setdefault(mac, {})
            if vmm is not None and vmm.started and "first_loop" in vmm.marks:
                t["first_loop"] = round(vmm.marks["first_loop"] - vmm.started, 1)
            data = dict(self._timings)
        log.info("libvirt: %s timings: %s", mac, json.dumps(data.get(mac, {}), sort_keys=True))
        path = os.path.join(self.state_dir, "vm", "timings.json")
        with open(path + ".tmp", "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(path + ".tmp", path)

    def timings(self):
        with self._lock:
            return json.loads(json.dumps(self._timings))

    # -- calls from the faces ----------------------------------------------------------------
    def _prepare(self, m):
        lease = m["lease"] or {}
        users = []
        username = ((lease.get("plunder") or {}).get("config") or {}).get("username")
        if username:
            users.append(username)
        self.vm.prepare_install(m["mac"], m["hostname"] or lease.get("hostname") or None, _keys_of(lease),
                                address=m["address"], users=users)

    def provision(self, machine):
        self._lease_t[machine["mac"]] = time.time()
        if self.vm is not None and self.vm.machine(machine["mac"]) is not None:
            self._prepare(machine)
        # the VM picks its lease up at its next PXE boot (within one loop period)

    def reinstall(self, machine):
        self._lease_t[machine["mac"]] = time.time()
        with self._lock:
            self._reinstall.add(machine["mac"])
        if self.vm is not None and self.vm.machine(machine["mac"]) is not None:
            self._prepare(machine)
            if not self.held_off(machine):
                self.vm.power(machine["mac"], "reset")

    def wipe(self, machine):
        self.pool.record_event(machine["id"], "wiping")
        if self.vm is None or self.vm.machine(machine["mac"]) is None:
            return
        t = threading.Thread(target=self._wipe, args=(machine["mac"],), daemon=True)
        t.start()

    def _wipe(self, mac):
        """Zero the start of the disk from the running OS and reboot (metal-hammer's job on a real
        machine); without SSH, out of band: power off, blank disk, power on."""
        if self.vm.ssh_answers(mac):
            code, out, err = self.vm.ssh(mac, WIPE_COMMAND, timeout=60)
            if code == 0:
                log.info("libvirt: %s wiped over SSH, rebooting", mac)
                return
            log.warning("libvirt: wipe over SSH failed (%s %s), wiping out of band", code, err.strip())
        self.vm.blank_disk(mac, start=not self.held_off(self.pool.get(mac)))

    def power(self, machine, action):
        """The metal face's power actions, through the VM's Redfish BMC as an operator's would go
        (straight to libvirt when the lab has no BMC)."""
        if self.vm is None or self.vm.machine(machine["mac"]) is None:
            return
        if action in POWER_ON_ACTIONS and self.held_off(machine):
            return
        vmm = self.vm.machine(machine["mac"])
        if vmm.hypervisor in self._hv_down:
            raise ValueError("%s runs on hypervisor %s, which does not answer: %s"
                             % (machine["mac"], vmm.hypervisor, self._hv_down[vmm.hypervisor]))
        if machine["mac"] in self._bmc:
            try:
                self._bmc[machine["mac"]].act(machine["mac"], action)
                return
            except Exception as exc:  # pylint: disable=broad-except  (the action still happens)
                log.warning("libvirt: power %s of %s through the BMC failed (%s): through libvirt",
                            action, machine["mac"], exc)
        if action in ("on", "off", "reset", "cycle"):
            self.vm.power(machine["mac"], action)
        elif action in ("pxe", "disk"):
            self.vm.set_boot_order(machine["mac"], ("network", "disk") if action == "pxe" else ("disk", "network"))

    def set_boot_order(self, machine, order):
        """A boot-order fault (or its end) in the VM's definition. A VM that runs no OS (looping, stuck
        with nothing to boot) is restarted at once, as its firmware retrying would pick the order up;
        one that runs its OS gets it at its next power-on."""
        if self.vm is None or self.vm.machine(machine["mac"]) is None:
            raise ValueError("%s has no VM" % machine["mac"])
        order = tuple(order)
        if self.vm.boot_order(machine["mac"]) == order:
            return
        idle = machine["state"] in (P.UNLEASED, P.LEASED, P.WIPING) and not self.reachable(machine)
        try:
            self.vm.set_boot_order(machine["mac"], order, restart=idle and not self.held_off(machine))
        except Exception as exc:  # libvirt's error, as the fault's refusal
            raise ValueError("%s: the boot order could not be set: %s" % (machine["mac"], exc)) from exc

    def _watch_boot_orders(self):
        """A boot-order fault ends when the VM's boot order puts the network first again: its BMC
        set the boot device (sushy-tools writes it into the definition, bypassing the lab)."""
        for mid, fault in list(self._faults.items()):
            if fault.get("kind") not in BOOT_ORDER_FAULTS:
                continue
            m = self.pool.get(mid)
            if m is not None and self.vm.machine(m["mac"]) is not None \
                    and self.vm.boot_order(m["mac"])[:1] == ("network",):
                self.end_boot_order_fault(m, "its boot device set to the network (its BMC)")

    def freeze(self, machine):
        """A VM whose OS answers crashes its kernel (sysrq ``c``; Debian does not reboot on a panic):
        it hangs as a real server does, and any power reset cures it, the BMC's too. A VM without a
        running OS (in the loop, installing) is paused instead."""
        if self.vm is None or self.vm.machine(machine["mac"]) is None:
            raise ValueError("%s has no VM" % machine["mac"])
        if not self.vm.is_on(machine["mac"]):
            raise ValueError("%s is not running: a machine without power cannot hang" % machine["mac"])
        if self.reachable(machine):
            # the crash cuts the SSH session: no answer is the expected answer
            self.vm.ssh(machine["mac"], "echo 1 > /proc/sys/kernel/sysrq; echo c > /proc/sysrq-trigger", timeout=10)
        else:
            self.vm.freeze(machine["mac"])
        self._reach_cache.pop(machine["mac"], None)

    def thaw(self, machine, resetting=False):
        """End a hang: a paused VM runs on; a crashed one is reset unless a reset follows anyway."""
        if self.vm is not None and self.vm.machine(machine["mac"]) is not None:
            if not self.vm.thaw(machine["mac"]) and not resetting and self.vm.is_on(machine["mac"]):
                self.vm.power(machine["mac"], "reset")
        self._reach_cache.pop(machine["mac"], None)

    def reachable(self, machine):
        if machine is None or self.vm is None or self.vm.machine(machine["mac"]) is None:
            return False
        mac = machine["mac"]
        now = time.monotonic()
        cached = self._reach_cache.get(mac)
        if cached and now - cached[0] < 1.0:
            return cached[1]
        ok = self.vm.ssh_answers(mac, timeout=1.5)
        self._reach_cache[mac] = (now, ok)
        return ok

    def run_command(self, machine, command, timeout=None, stdin=None):
        try:
            return self._run_command(machine, command, timeout, stdin)
        except Exception as exc:  # the face expects an answer, never an exception
            log.exception("libvirt: command on %s failed", machine.get("mac"))
            return False, "", "lab error: %s" % exc

    def _run_command(self, machine, command, timeout=None, stdin=None):
        address = machine.get("address") or (self.vm.machine(machine["mac"]).ip if self.vm and
                                             self.vm.machine(machine["mac"]) else "0.0.0.0")
        cmd = strip_sudo(command)
        # plunder's wipe map: once dd has zeroed the disk, userland may no longer start (ld.so and
        # tee are gone; sshd cannot re-exec itself for a new connection, so SSH may not even
        # answer), so the sysrq reboot cannot run over SSH; the kernel would still reboot on it,
        # which the lab does out of band.
        blank_reboot = bool(SYSRQ_RE.search(cmd)) and str(stdin or "").strip() == "b" \
            and self.pool.get(machine["id"])["disk_state"] == "blank"
        if not self.reachable(machine):
            if blank_reboot:
                log.info("libvirt: %s has a blank disk, no SSH, and asked for a sysrq reboot: resetting",
                         machine["mac"])
                self.vm.power(machine["mac"], "reset")
            return False, "", "dial tcp %s:22: i/o timeout" % address
        # parlay's "no timeout" arrives as a year: wait as long as the command runs
        limit = float(timeout) if timeout and float(timeout) < 86400 else None
        code, out, err = self.vm.ssh(machine["mac"], command, timeout=limit, stdin=stdin)
        output = (out + err).rstrip("\r\n")
        if code != 0 and blank_reboot:
            log.info("libvirt: %s has a blank disk and asked for a sysrq reboot: resetting", machine["mac"])
            self.vm.power(machine["mac"], "reset")
        if code is None:
            return False, output, "Command Timed out"
        if code == 255 and not out:
            return False, output, "ssh: %s" % err.strip()
        if code != 0:
            return False, output, "Process exited with status %d" % code
        if DD_WIPE_RE.search(cmd):
            # the OS on disk is gone: the next boot falls through to the network (the loop)
            self.pool.set_columns(machine["id"], disk_state="blank")
        return True, output, ""


DRIVER = LibvirtDriver


def main(argv=None):
    """``python -m fleetlab.drivers.libvirt down --state DIR``: remove a (crashed) lab's VMs."""
    import argparse

    from ..vm import lab as vmlab

    p = argparse.ArgumentParser(prog="python -m fleetlab.drivers.libvirt")
    p.add_argument("command", choices=["down"])
    p.add_argument("--state", default=os.environ.get("FLEETLAB_STATE", ".lab"))
    args = p.parse_args(argv)
    if not vmlab.teardown(args.state):
        print("nothing to remove in %s" % os.path.abspath(args.state))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
