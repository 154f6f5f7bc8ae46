#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: power
short_description: Switch machines on or off, reset or power-cycle them, choose their next boot device
version_added: 0.2.0
description:
  - Switches the power of machines of the pool, by lease or one by one, through the provisioner's
    power API (metal-api) or, where the provisioner has none (plunder), through each machine's BMC
    over Redfish (the map O(bmc)), spoken with the C(sushy) client library.
  - O(state=on) and O(state=off) are idempotent (a machine already there is left alone, C(changed=false));
    O(state=reset) and O(state=cycle) always act, and refuse a machine that is off.
  - O(boot_once) sets the device of the next boot only (before the power action), for example V(pxe)
    so that a machine that no longer answers SSH boots into the provisioner's loop.
  - Waits, bounded by O(wait_timeout), until each machine reports the power state asked for, and
    names the machines that did not get there.
author:
  - baremetal.fleet maintainers (@baremetal-fleet)
extends_documentation_fragment:
  - baremetal.fleet.connection
  - baremetal.fleet.lease_target
  - baremetal.fleet.wait
  - baremetal.fleet.attributes
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    details: Reads each machine's power state and reports what would be switched; switches nothing.
  diff_mode:
    support: full
    details: The power state of each machine before and after.
options:
  state:
    description:
      - V(on), V(off) (hard, as a BMC's power-off), V(reset) (hard restart), V(cycle) (off, then on).
    type: str
    choices: ["on", "off", reset, cycle]
  boot_once:
    description: Device of the next boot only. At least one of O(state) and O(boot_once) is required.
    type: str
    choices: [pxe, disk]
  bmc:
    description:
      - Redfish BMCs, keyed by machine MAC (or member name). Each value has C(address) (V(https://10.0.0.5)
        or V(10.0.0.5)), C(username), C(password), optionally C(system_id) (when the BMC manages several
        systems) and C(validate_certs) (default V(true)).
      - A machine named here is switched through its BMC even where the provisioner has a power API;
        a MAC the provisioner does not know is still switched when it is named here.
      - Every value is kept out of the logs.
    type: dict
  bmc_timeout:
    description: Seconds a BMC may take to answer one request.
    type: int
    default: 30
  wait:
    description: Wait until each machine reports the power state asked for (V(on) after a reset or cycle).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait at most for each machine to report the power state asked for.
    type: int
    default: 300
  poll_interval:
    description:
      - Seconds between two looks at a machine's power state.
    type: float
    default: 5
notes:
  - The Redfish path needs the Python library C(sushy) on the controller.
seealso:
  - module: baremetal.fleet.wipe
  - name: sushy, the Redfish client library
    description: OpenStack's Redfish client, maintained with Ironic.
    link: https://docs.openstack.org/sushy/latest/
"""

EXAMPLES = r"""
- name: Power off one worker of the demo cluster (metal-api)
  baremetal.fleet.power:
    name: demo-worker
    machines: [demo-worker-2]
    state: "off"

- name: Boot a plunder machine that no longer answers SSH into the loop, through its BMC
  baremetal.fleet.power:
    provider: plunder
    machines: ["52:54:00:aa:00:07"]
    boot_once: pxe
    state: cycle
    bmc:
      "52:54:00:aa:00:07":
        address: https://10.0.0.7
        username: admin
        password: "{{ vault_bmc_password }}"
"""

RETURN = r"""
machines:
  description: Every selected machine.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Member name (or the reference given, for a machine only its BMC knows).
      type: str
    mac:
      description: MAC address.
      type: str
    via:
      description: V(provisioner) (its power API) or V(bmc) (Redfish).
      type: str
    power_before:
      description: Power state before the task, V(on) or V(off).
      type: str
    power:
      description: Power state at the end (in check mode, as before).
      type: str
    actions:
      description: What was (in check mode, would be) sent, in order, for example V([pxe, cycle]).
      type: list
      elements: str
    changed:
      description: Whether anything was sent to this machine.
      type: bool
"""

from ansible_collections.baremetal.fleet.plugins.module_utils import power
from ansible_collections.baremetal.fleet.plugins.module_utils.module_runner import (
    fleet_module,
    lease_target_argument_spec,
    run,
    wait_argument_spec,
)


def main():
    spec = wait_argument_spec()
    spec.update(lease_target_argument_spec())
    spec.update(
        dict(
            state=dict(type="str", choices=list(power.STATES)),
            boot_once=dict(type="str", choices=list(power.BOOT_DEVICES)),
            bmc=dict(type="dict", no_log=True),
            bmc_timeout=dict(type="int", default=30),
            wait=dict(type="bool", default=True),
        )
    )
    spec["wait_timeout"]["default"] = 300
    spec["poll_interval"]["default"] = 5
    module = fleet_module(spec, required_one_of=[("name", "machines"), ("state", "boot_once")])
    params = module.params

    def action(provider):
        return power.ensure(power.controls(provider, params), state=params["state"], boot_once=params["boot_once"],
                            check_mode=module.check_mode, wait=params["wait"], timeout=params["wait_timeout"],
                            poll=params["poll_interval"])

    module.exit_json(**run(module, action))


if __name__ == "__main__":
    main()
