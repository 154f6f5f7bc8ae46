#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: machine_info
short_description: Show the machine pool and its leases
version_added: 0.1.0
description:
  - Lists the machines of a plunder server or a metal-api, unleased and leased, with the same
    filters as M(baremetal.fleet.lease). Read-only.
author:
  - baremetal.fleet maintainers (@baremetal-fleet)
extends_documentation_fragment:
  - baremetal.fleet.connection
  - baremetal.fleet.selectors
  - baremetal.fleet.attributes.READ_ONLY
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
options:
  status:
    description: V(unleased) (free in the reboot loop), V(leased) or V(all).
    type: str
    choices: [all, unleased, leased]
    default: all
  name:
    description: Only machines of this lease.
    type: str
  mac:
    description: Only the machine with this MAC.
    type: str
  hostname_template:
    description: The template leases were made with (plunder finds lease members by it).
    type: str
    default: "{name}-{index}"
  project:
    description: metal-api project of the lease named by O(name).
    type: str
seealso:
  - module: baremetal.fleet.lease
"""

EXAMPLES = r"""
- name: How many small machines are free?
  baremetal.fleet.machine_info:
    status: unleased
    size: v1-small-x86
  register: pool

- name: Show them
  ansible.builtin.debug:
    msg: "{{ pool.summary }}"
"""

RETURN = r"""
machines:
  description: The machines that match.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Machine id (plunder uses the MAC).
      type: str
    mac:
      description: MAC address.
      type: str
    state:
      description: unleased, leased, installing, provisioned, wiping or unknown.
      type: str
    lease_name:
      description: Member name of a leased machine.
      type: str
    lease:
      description: Lease the machine belongs to, where known.
      type: str
    provider_id:
      description: C(plunder://<mac>) or C(metal://<id>).
      type: str
summary:
  description: Number of matching machines per state, and in total.
  returned: always
  type: dict
  sample: {"total": 24, "unleased": 20, "leased": 4}
"""

from ansible_collections.baremetal.fleet.plugins.module_utils.leasing import apply_hardware
from ansible_collections.baremetal.fleet.plugins.module_utils.module_runner import (
    fleet_module,
    run,
    selector_argument_spec,
)
from ansible_collections.baremetal.fleet.plugins.module_utils.pool import filter_machines


def _info(provider, params):
    filters = dict((k, params.get(k)) for k in ("size", "partition", "vendor", "rack", "labels", "mac"))
    if params.get("name"):
        machines = provider.lease_members(params["name"], template=params.get("hostname_template"),
                                          project=params.get("project"))
        if params["status"] == "unleased":
            machines = []
    elif params.get("hardware"):
        machines = provider.list_machines(status=params["status"])
    else:
        machines = provider.list_machines(status=params["status"], filters=filters)
    machines = filter_machines(apply_hardware(machines, params.get("hardware")), filters)
    summary = {"total": len(machines)}
    for machine in machines:
        summary[machine.state] = summary.get(machine.state, 0) + 1
    out = []
    for machine in machines:
        item = machine.to_dict()
        item["name"] = machine.lease_name
        out.append(item)
    return {"changed": False, "machines": out, "summary": summary}


def main():
    spec = selector_argument_spec()
    spec.update(
        status=dict(type="str", default="all", choices=["all", "unleased", "leased"]),
        name=dict(type="str"),
        mac=dict(type="str"),
        hostname_template=dict(type="str", default="{name}-{index}"),
        project=dict(type="str"),
    )
    module = fleet_module(spec)
    module.exit_json(**run(module, lambda provider: _info(provider, module.params)))


if __name__ == "__main__":
    main()
