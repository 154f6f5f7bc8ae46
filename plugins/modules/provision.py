#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: provision
short_description: Bring leased machines to a running OS and wait until they are reachable
version_added: 0.1.0
description:
  - Waits, bounded by O(wait_timeout), until every selected machine runs its OS and is reachable,
    and reports per machine when it was seen in each phase (leased, installing, provisioned).
  - plunder installs what the deployment's boot config says; readiness is probed as cluster-api-plunder
    does, by running C(uptime) through parlay and reading the parlay log.
  - metal-api installs the image of the allocation; a machine is ready when its newest provisioning
    event is C(Phoned Home).
  - O(reinstall=true), or an O(image) different from the one installed, writes the OS again
    (plunder wipes the disk start and reboots into the deployment; metal-api reinstall).
  - Failures are reported per machine; the task fails when any machine is not ready in time.
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
    details: Reports what would be reinstalled; does not wait.
  diff_mode:
    support: none
options:
  image:
    description: OS to run (plunder boot config, metal-api image id); a different one than installed means reinstall.
    type: str
  reinstall:
    description: Write the OS again even on machines that run it already.
    type: bool
    default: false
  wait:
    description: Wait until the machines are reachable.
    type: bool
    default: true
seealso:
  - module: baremetal.fleet.lease
"""

EXAMPLES = r"""
- name: Wait up to 20 minutes for the control planes
  baremetal.fleet.provision:
    name: demo-cp
    wait_timeout: 1200
    poll_interval: 15
  register: cp

- name: Reinstall one machine
  baremetal.fleet.provision:
    machines: [demo-worker-1]
    reinstall: true
"""

RETURN = r"""
machines:
  description: Every selected machine with its state, phase times and, on failure, the error.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Member name.
      type: str
    address:
      description: Address to reach the machine at.
      type: str
    state:
      description: Last state seen (provisioned when ready).
      type: str
    phases:
      description: Seconds since the task started when each state was first seen.
      type: dict
      sample: {"installing": 0.1, "provisioned": 42.5}
    detail:
      description: Last probe output or provisioning event.
      type: str
    error:
      description: Why this machine is not ready.
      type: str
      returned: on failure of this machine
    provider_id:
      description: C(plunder://<mac>) or C(metal://<id>).
      type: str
failed_machines:
  description: Names of the machines that are not ready.
  returned: always
  type: list
  elements: str
elapsed:
  description: Seconds the task waited.
  returned: when waited
  type: float
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
            image=dict(type="str"),
            reinstall=dict(type="bool", default=False),
            wait=dict(type="bool", default=True),
        )
    )
    module = fleet_module(spec, required_one_of=[("name", "machines")])
    result = run(module, lambda provider: provisioning.provision(provider, module.params,
                                                                 check_mode=module.check_mode))
    if result.get("failed_machines"):
        errors = "; ".join("%s: %s" % (m.get("name") or m.get("mac"), m["error"])
                           for m in result["machines"] if m.get("error"))
        module.fail_json(msg="%d machine(s) not ready: %s" % (len(result["failed_machines"]), errors), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
