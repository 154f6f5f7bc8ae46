# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Provider-neutral power control: through the provisioner's power API where it has one, else
through the machine's BMC (a map given by the caller). Idempotent for on/off; reset and cycle
always act; bounded waits that name the machine that did not get there."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.baremetal.fleet.plugins.module_utils.pool import PoolError, PoolNotFound
from ansible_collections.baremetal.fleet.plugins.module_utils.provisioning import select_machines
from ansible_collections.baremetal.fleet.plugins.module_utils.redfish import bmc_for

STATES = ("on", "off", "reset", "cycle")
BOOT_DEVICES = ("pxe", "disk")


class _Provisioner:
    via = "provisioner"

    def __init__(self, provider, machine):
        self.provider, self.machine = provider, machine

    def power_state(self):
        return self.provider.power_state(self.machine)

    def power(self, action):
        self.provider.power(self.machine, action)


def controls(provider, params):
    """[(label, mac, control)] for the machines of ``name`` and/or ``machines``. A machine named
    in ``bmc`` goes through its BMC; a reference the provisioner does not know is still reached
    when ``bmc`` names it (a machine the provisioner lost is where power control matters)."""
    bmc_map = params.get("bmc") or {}
    machines, missing = select_machines(provider, params)
    out = []
    for machine in machines:
        label = machine.lease_name or machine.hostname or machine.mac or machine.id
        bmc = bmc_for(bmc_map, label, (machine.mac, machine.lease_name, machine.hostname, machine.id),
                      params.get("bmc_timeout") or 30)
        if bmc is not None:
            out.append((label, machine.mac, bmc))
        elif provider.has_power_api:
            out.append((label, machine.mac, _Provisioner(provider, machine)))
        else:
            raise PoolError("%s has no power API and bmc names no BMC for %s (%s)"
                            % (provider.name, label, machine.mac or machine.id), machine=label)
    for ref in missing:
        bmc = bmc_for(bmc_map, ref, (ref,), params.get("bmc_timeout") or 30)
        if bmc is None:
            raise PoolNotFound("no machine %s: neither the provisioner nor bmc knows it" % ref, machine=ref)
        out.append((ref, ref, bmc))
    if not out:
        raise PoolNotFound("no machine to switch: %s names none" % (params.get("name") or "machines"))
    return out


def _wait(label, control, wanted, timeout, poll, sleep, clock):
    deadline = clock() + timeout
    seen = control.power_state()
    while seen != wanted:
        if clock() >= deadline:
            raise PoolError("%s is still %s %d s after the power request (wanted %s)" % (label, seen, timeout, wanted),
                            machine=label)
        sleep(poll)
        seen = control.power_state()
    return seen


def ensure(targets, state=None, boot_once=None, check_mode=False, wait=True, timeout=300, poll=5,
           sleep=time.sleep, clock=time.time):
    """Switch every target; returns the module result (machines, changed, diff)."""
    if state is None and boot_once is None:
        raise PoolError("nothing to do: give state, boot_once or both")
    results, before, after = [], {}, {}
    for label, mac, control in targets:
        power = control.power_state()
        actions = []
        if boot_once:
            actions.append(boot_once)
        if state in ("reset", "cycle"):
            if power != "on":
                raise PoolError("%s is off: a %s needs it on (use state=on)" % (label, state), machine=label)
            actions.append(state)
        elif state and power != state:
            actions.append(state)
        results.append({"name": label, "mac": mac, "via": control.via, "power_before": power, "power": power,
                        "actions": actions, "changed": bool(actions)})
        before[label] = power
    if not check_mode:
        for result, (label, _mac, control) in zip(results, targets):
            for action in result["actions"]:
                control.power(action)
        for result, (label, _mac, control) in zip(results, targets):
            if state and result["actions"] and wait:
                wanted = "off" if state == "off" else "on"
                if state in ("reset", "cycle"):
                    sleep(poll)  # the BMC may report "on" before it has acted
                result["power"] = _wait(label, control, wanted, timeout, poll, sleep, clock)
            elif state in ("on", "off") and result["actions"]:
                result["power"] = state
    for result in results:
        after[result["name"]] = result["power"] if not check_mode else (
            state if state in ("on", "off") else result["power_before"])
    return {"changed": any(r["changed"] for r in results), "machines": results,
            "diff": {"before": {"power": before}, "after": {"power": after}}}
