#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: wipe
short_description: Wipe leased machines and return them to the reboot loop
version_added: 0.1.0
description:
  - Wipes the disks of leased machines and gives them back to the pool.
  - plunder runs cluster-api-plunder's de-provisioning through parlay (enable sysrq, zero the first
    1000 MiB of C(/dev/sda), reboot) and then removes the deployment; the machine re-enters the loop
    at its next network boot.
  - metal-api frees the machine; the machine reclaims, wipes and returns to C(Waiting).
  - Only machines that carry the collection's ownership mark are touched unless O(force=true)
    (metal-api ownership tag; plunder keeps no tags, there a machine belongs to the lease whose member
    names its deployment hostname has, so name the lease with O(name)).
  - Machines already back in the pool are left alone (C(changed=false)).
  - When the provisioner's wipe cannot run (on plunder, a machine that does not answer SSH) and O(bmc)
    names the machine's BMC, the machine is released and booted into the provisioner's network boot
    through its BMC instead (boot once from PXE, then a power cycle, or power on when it is off);
    RV(machines[].path) says which way each machine took.
author:
  - baremetal.fleet maintainers (@baremetal-fleet)
extends_documentation_fragment:
  - baremetal.fleet.connection
  - baremetal.fleet.lease_target
  - baremetal.fleet.wait
  - baremetal.fleet.attributes
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
options:
  force:
    description: Also wipe machines without the ownership mark, and on plunder remove the deployment even when the disk wipe failed.
    type: bool
    default: false
  bmc:
    description:
      - Redfish BMCs, keyed by machine MAC (or member name), as in M(baremetal.fleet.power) (C(address),
        C(username), C(password), optionally C(system_id) and C(validate_certs)); used only for machines
        the provisioner cannot wipe. Every value is kept out of the logs.
    type: dict
  bmc_timeout:
    description: Seconds a BMC may take to answer one request.
    type: int
    default: 30
  wait:
    description: Wait until each machine is seen back in the reboot loop.
    type: bool
    default: false
seealso:
  - module: baremetal.fleet.lease
"""

EXAMPLES = r"""
- name: Wipe every machine of the demo cluster and wait until they loop again
  baremetal.fleet.wipe:
    name: demo-cp
    wait: true
    wait_timeout: 900

- name: Wipe plunder machines; those that no longer answer SSH go back through their BMC
  baremetal.fleet.wipe:
    name: demo-worker
    bmc: "{{ fleet_bmcs }}"   # {"52:54:00:aa:00:07": {address: ..., username: ..., password: ...}}

- name: Wipe one machine that someone else leased
  baremetal.fleet.wipe:
    machines: ["52:54:00:aa:00:07"]
    force: true
"""

RETURN = r"""
machines:
  description: Every selected machine, with the error where wiping it failed.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Member name.
      type: str
    mac:
      description: MAC address.
      type: str
    state:
      description: Last state seen (V(wiping), or V(unleased) once back in the loop).
      type: str
    changed:
      description: Whether this machine was wiped by this task.
      type: bool
    path:
      description:
        - How the machine went back, for the machines this task touched. V(provisioner) (its own wipe),
          V(bmc) (released, then booted into the network boot through its BMC) or V(none) (released
          without wiping, O(force=true)).
      type: str
      returned: for the machines this task touched
    error:
      description: Why wiping this machine failed.
      type: str
      returned: on failure of this machine
failed_machines:
  description: Names of the machines that could not be wiped.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.baremetal.fleet.plugins.module_utils import provisioning
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
            force=dict(type="bool", default=False),
            bmc=dict(type="dict", no_log=True),
            bmc_timeout=dict(type="int", default=30),
            wait=dict(type="bool", default=False),
        )
    )
    module = fleet_module(spec, required_one_of=[("name", "machines")])
    result = run(module, lambda provider: provisioning.wipe(provider, module.params, check_mode=module.check_mode))
    if result.get("failed_machines"):
        errors = "; ".join("%s: %s" % (m.get("name") or m.get("mac"), m["error"])
                           for m in result["machines"] if m.get("error"))
        module.fail_json(msg="%d machine(s) not wiped: %s" % (len(result["failed_machines"]), errors), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
