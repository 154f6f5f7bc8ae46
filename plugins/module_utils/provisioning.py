# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Provision and wipe: bring leased machines to a running OS, or back to the loop,
with bounded waits and per-machine phase times and errors."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading
import time

from ansible_collections.baremetal.fleet.plugins.module_utils import pool
from ansible_collections.baremetal.fleet.plugins.module_utils._results import (
    lease_state,
    machine_result,
    run_parallel,
)
from ansible_collections.baremetal.fleet.plugins.module_utils.leasing import DEFAULT_TEMPLATE
from ansible_collections.baremetal.fleet.plugins.module_utils.pool import PoolError, PoolNotFound
from ansible_collections.baremetal.fleet.plugins.module_utils.redfish import bmc_for

FAILED = "failed"  # a probe's verdict: this machine will not get there by waiting


def select_machines(provider, params):
    """Machines named by ``name`` (every member of the lease) and/or ``machines`` (refs:
    member name, MAC or id). Returns (machines, unknown refs)."""
    lease = params.get("name")
    template = params.get("hostname_template") or DEFAULT_TEMPLATE
    out = []
    seen = set()
    members = []
    if lease:
        members = provider.lease_members(lease, template=template, project=params.get("project"))
        for machine in members:
            seen.add(machine.id)
            out.append(machine)
    missing = []
    for ref in params.get("machines") or []:
        ref = ref if isinstance(ref, str) else (ref.get("mac") or ref.get("id") or ref.get("name"))
        match = [m for m in members if ref in (m.lease_name, m.mac, m.id, m.hostname)]
        if match:
            continue
        try:
            machine = provider.get_machine(ref)
        except PoolNotFound:
            found = provider.list_machines(status="leased", filters={"lease_name": ref})
            if not found:
                missing.append(ref)
                continue
            machine = found[0]
        if machine.id not in seen:
            seen.add(machine.id)
            out.append(machine)
    if params.get("machines") and lease:
        refs = set(r if isinstance(r, str) else (r.get("mac") or r.get("id") or r.get("name"))
                   for r in params["machines"])
        out = [m for m in out if refs & set([m.lease_name, m.mac, m.id, m.hostname])]
    return out, missing


class Tracker:
    """Per-machine phase times (seconds since the task started) and last detail."""

    def __init__(self, machines, now=None):
        self.start = now or time.time()
        self.phases = dict((m.id, {}) for m in machines)
        self.detail = dict((m.id, "") for m in machines)
        self.state = dict((m.id, m.state) for m in machines)
        self.errors = {}
        self.lock = threading.Lock()

    def restart(self, machine):
        """Forget the phases seen so far (the machine starts over, e.g. reinstall)."""
        with self.lock:
            self.phases[machine.id] = {}

    def see(self, machine, state, detail=""):
        with self.lock:
            phases = self.phases.setdefault(machine.id, {})
            if state not in phases:
                phases[state] = round(time.time() - self.start, 2)
            self.state[machine.id] = state
            self.detail[machine.id] = detail


def _wait(provider, machines, tracker, done_state, check, wait_timeout, poll_interval, workers):
    deadline = tracker.start + wait_timeout
    pending = [m for m in machines if tracker.state.get(m.id) != done_state and m.id not in tracker.errors]
    while pending:
        def one(machine):
            try:
                state, detail = check(machine)
            except PoolError as err:
                state, detail = tracker.state.get(machine.id), str(err)
            tracker.see(machine, state, detail)
            return state

        states, _failure = run_parallel(one, pending, workers)
        for machine, state in zip(pending, states):
            if state == FAILED:
                tracker.errors[machine.id] = tracker.detail.get(machine.id) or "failed"
        pending = [m for m, s in zip(pending, states) if s not in (done_state, FAILED)]
        if not pending or time.time() + poll_interval > deadline:
            break
        time.sleep(poll_interval)
    return pending


def _report(machines, tracker, extra=None):
    out = []
    for machine in machines:
        item = machine_result(machine)
        item["state"] = tracker.state.get(machine.id, machine.state)
        item["phases"] = tracker.phases.get(machine.id, {})
        item["detail"] = tracker.detail.get(machine.id, "")
        if machine.id in tracker.errors:
            item["error"] = tracker.errors[machine.id]
        if extra:
            item.update(extra.get(machine.id, {}))
        out.append(item)
    return out


def provision(provider, params, check_mode=False, workers=8):
    """Ensure the OS is (re)installed and wait until each machine is reachable."""
    machines, missing = select_machines(provider, params)
    if missing:
        raise PoolNotFound("no leased machine %s" % ", ".join(missing), machine=missing[0])
    if not machines:
        raise PoolNotFound("lease %s has no machines (lease them first)" % params.get("name"),
                           machine=params.get("name"))
    image = params.get("image")
    tracker = Tracker(machines)
    changed_ids = set()
    # What is there now.
    for machine in machines:
        tracker.see(machine, machine.state)
    to_reinstall = []
    for machine in machines:
        if params.get("reinstall") or (image and machine.image and image != machine.image):
            to_reinstall.append(machine)
    if check_mode:
        return {"changed": bool(to_reinstall), "machines": _report(machines, tracker, dict(
            (m.id, {"changed": True, "planned": "reinstall"}) for m in to_reinstall)), "failed_machines": []}
    for machine in to_reinstall:
        try:
            provider.reinstall_machine(machine, image=image)
            changed_ids.add(machine.id)
            tracker.restart(machine)
            tracker.see(machine, pool.INSTALLING, "reinstall requested")
        except PoolError as err:
            tracker.errors[machine.id] = "reinstall failed: %s" % err
    result = {"changed": bool(changed_ids)}
    if params.get("wait", True):
        pending = _wait(provider, machines, tracker, pool.PROVISIONED, provider.probe_machine,
                        params.get("wait_timeout") or 1800, params.get("poll_interval") or 10, workers)
        for machine in pending:
            if machine.id not in tracker.errors:
                tracker.errors[machine.id] = "not reachable after %ss (last state %s: %s)" % (
                    params.get("wait_timeout") or 1800, tracker.state.get(machine.id), tracker.detail.get(machine.id))
    result["machines"] = _report(machines, tracker, dict((i, {"changed": True}) for i in changed_ids))
    result["failed_machines"] = [m["name"] or m["mac"] for m in result["machines"] if m.get("error")]
    result["elapsed"] = round(time.time() - tracker.start, 2)
    return result


def _boot_into_loop(bmc):
    """A machine the provisioner could not wipe, back into its network boot: boot once from PXE,
    then power-cycle it (or power it on). Returns the power action."""
    bmc.power("pxe")
    action = "cycle" if bmc.power_state() == "on" else "on"
    bmc.power(action)
    return action


def wipe(provider, params, check_mode=False, workers=8):
    """Wipe and return to the loop every owned machine selected; foreign ones only with force."""
    lease = params.get("name")
    template = params.get("hostname_template") or DEFAULT_TEMPLATE
    force = bool(params.get("force"))
    machines, missing = select_machines(provider, params)
    if missing:
        raise PoolNotFound("no machine %s" % ", ".join(missing), machine=missing[0])
    foreign = [m for m in machines if m.state != pool.UNLEASED
               and not provider.is_owned(m, lease=lease, template=template)]
    if foreign and not force:
        names = ", ".join("%s (%s%s)" % (m.mac or m.id, "hostname " if m.hostname else "",
                                         m.hostname or m.lease_name or "no lease name") for m in foreign)
        hint = provider.ownership_hint(lease)
        raise PoolError("refusing to wipe %s: not leased by this collection (no ownership mark%s); "
                        "use force: true to wipe anyway" % (names, "; " + hint if hint else ""),
                        machine=foreign[0].mac or foreign[0].id)
    targets = [m for m in machines if m.state != pool.UNLEASED]
    tracker = Tracker(machines)
    before = lease_state(targets)
    diff = {"before": {"lease": lease, "machines": before}, "after": {"lease": lease, "machines": {}}}
    result = {"changed": bool(targets), "diff": diff}
    if not machines:
        # nothing is not an error (a second run after a wipe), but it must not look like a wipe
        where = " (in project %s)" % params["project"] if params.get("project") else ""
        result["msg"] = ("lease %s has no machines%s: nothing to wipe" % (lease, where) if lease
                         else "no machines selected: nothing to wipe")
        if lease and not params.get("machines"):
            result["warnings"] = [result["msg"]]
    if check_mode or not targets:
        result["machines"] = _report(machines, tracker, dict((m.id, {"changed": True}) for m in targets))
        result["failed_machines"] = []
        return result

    touched = set()
    unwiped = set()
    paths = {}
    bmc_map = params.get("bmc") or {}

    def wipe_one(machine):
        label = machine.lease_name or machine.hostname or machine.mac
        try:
            bmc = bmc_for(bmc_map, label, (machine.mac, machine.lease_name, machine.hostname, machine.id),
                          params.get("bmc_timeout") or 30)
            try:
                wiped, why = provider.wipe_machine(machine, force=force), None
            except PoolError as err:
                if bmc is None:
                    raise
                wiped, why = False, str(err)
                provider.release_machine(machine)
            touched.add(machine.id)
            booted = None
            if wiped is False and bmc is not None:
                try:
                    booted = _boot_into_loop(bmc)
                except PoolError as err:
                    if not force:
                        raise
                    why = "; ".join(w for w in (why, "its BMC could not boot it either: %s" % err) if w)
            if booted:
                paths[machine.id] = "bmc"
                tracker.see(machine, pool.WIPING, "through its BMC: the wipe could not run (%s); released, PXE "
                                                  "boot forced (boot once from the network, power %s)" % (why or "forced", booted))
            elif wiped is False:
                unwiped.add(machine.id)
                paths[machine.id] = "none"
                tracker.see(machine, machine.state, "released WITHOUT wiping (forced; the wipe could not run%s)"
                            % (": " + why if why else ""))
            else:
                paths[machine.id] = "provisioner"
                tracker.see(machine, pool.WIPING, "wipe started")
        except PoolError as err:
            tracker.errors[machine.id] = str(err)
        return True

    run_parallel(wipe_one, targets, workers)
    if unwiped:
        result["warnings"] = ["released without wiping (the wipe could not run; force: true): %s"
                              % ", ".join(m.lease_name or m.mac for m in targets if m.id in unwiped)]
    if params.get("wait"):
        def check(machine):
            back = provider.back_in_loop(machine)
            return (pool.UNLEASED if back else pool.WIPING), ("back in the reboot loop" if back else "")

        ok = [m for m in targets if m.id not in tracker.errors and m.id not in unwiped]
        pending = _wait(provider, ok, tracker, pool.UNLEASED, check,
                        params.get("wait_timeout") or 1800, params.get("poll_interval") or 10, workers)
        for machine in pending:
            tracker.errors[machine.id] = "not back in the reboot loop after %ss" % (params.get("wait_timeout") or 1800)
    result["machines"] = _report(machines, tracker, dict((i, {"changed": True, "path": paths.get(i, "")})
                                                         for i in touched))
    result["failed_machines"] = [m["name"] or m["mac"] for m in result["machines"] if m.get("error")]
    result["changed"] = bool(touched)
    return result
