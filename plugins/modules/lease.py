#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lease
short_description: Lease machines from the reboot-loop pool of plunder or metal-api
version_added: 0.1.0
description:
  - Leases machines that wait unleased in the PXE reboot loop of a plunder server or a metal-api,
    under a caller-given lease O(name). Each machine of the lease gets a member name
    (O(hostname_template), by default V({name}-{index})) that is written on the machine
    (plunder deployment hostname; metal-api allocation name plus an ownership tag).
  - Re-running with the same name finds what is already leased and leases only what is missing,
    so a second run reports C(changed=false).
  - When a lease of several machines fails half-way, the machines leased in that run are released
    again and the error says which.
  - On plunder, leasing creates the deployment (MAC, boot config, address, hostname), so the machine
    installs its OS at its next network boot; on metal-api the allocation carries the image.
    Use M(baremetal.fleet.provision) to wait until the machines are reachable.
  - O(state=absent) releases every machine of the lease. plunder releases without wiping (the deployment
    is removed); metal-api cannot release without wiping (free reclaims the machine).
    Use M(baremetal.fleet.wipe) to wipe on plunder.
author:
  - baremetal.fleet maintainers (@baremetal-fleet)
extends_documentation_fragment:
  - baremetal.fleet.connection
  - baremetal.fleet.selectors
  - baremetal.fleet.attributes
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.actiongroups
attributes:
  check_mode:
    details: Reads the pool and predicts which machines would be leased or released; writes nothing.
options:
  name:
    description: Name of the lease (for example the cluster and role, V(demo-cp)).
    type: str
    required: true
  state:
    description: V(present) leases what is missing; V(absent) releases every machine of the lease.
    type: str
    choices: [present, absent]
    default: present
  count:
    description:
      - Number of machines the lease holds. Members are named from O(hostname_template).
      - The members the lease already holds count first, new members take the lowest free indexes;
        a lease whose member V(demo-0) was removed keeps V(demo-1) when O(count) drops to 1.
      - Defaults to 1 when O(machines) is not given.
    type: int
  drop_first:
    description:
      - When the lease holds more members than O(count), the members named here are the first
        reported as surplus (RV(machines[].surplus)), before the highest indexes.
      - Names the lease does not hold are ignored. Nothing is released here; see O(state=absent)
        and M(baremetal.fleet.wipe).
    type: list
    elements: str
    default: []
  fill_first:
    description:
      - New members take the names listed here first, in this order, before the lowest free
        indexes. A repair that removed V(demo-1) passes it, so the new machine takes its place
        and its name.
      - Names the lease holds, and names O(hostname_template) cannot produce, are ignored.
    type: list
    elements: str
    default: []
  machines:
    description: Explicit members, each with its own name and optional selectors or a fixed machine.
    type: list
    elements: dict
    suboptions:
      name:
        description: Member name (also the hostname). Defaults to the rendered O(hostname_template).
        type: str
      mac:
        description: Lease exactly this machine (by MAC).
        type: str
      id:
        description: Lease exactly this machine (by id; on plunder the id is the MAC).
        type: str
      address:
        description: Address for this machine (plunder).
        type: str
      hostname:
        description: Hostname if it differs from O(machines[].name) (metal-api only).
        type: str
      size:
        description: Size this member must have.
        type: str
      partition:
        description: Partition this member must be in.
        type: str
      vendor:
        description: Hardware vendor this member must have (substring, any case).
        type: str
      rack:
        description: Rack this member must be in.
        type: str
      labels:
        description: Labels this member must carry.
        type: dict
  spread_by:
    description:
      - Put every member of the lease on a distinct value of this machine attribute, for example
        V(rack) so that control-plane machines land in distinct racks.
      - The task fails before leasing anything when the unleased pool cannot satisfy it.
    type: str
    choices: [rack, vendor, size, partition]
  addresses:
    description:
      - Addresses for the members, in member order. plunder has no IPAM, so it needs these or
        O(address_range). On metal-api they are passed as the allocation's C(ips) (existing project IPs).
    type: list
    elements: str
  address_range:
    description: Take plunder addresses from this range, a CIDR (V(10.0.0.0/24)) or V(first-last), skipping used ones.
    type: str
  hostname_template:
    description: Member name and hostname, with C({name}) (the lease name) and C({index}) (0, 1, ...).
    type: str
    default: "{name}-{index}"
  image:
    description:
      - OS to install. plunder boot config name (default V(preseed), as cluster-api-plunder);
        metal-api image id (required there).
    type: str
  project:
    description: metal-api project the machines are allocated to (required for metal-api).
    type: str
  networks:
    description: metal-api network ids; default is the project's private network in the machine's partition.
    type: list
    elements: str
  ssh_public_keys:
    description: metal-api authorized keys for the installed OS.
    type: list
    elements: str
  user_data:
    description: metal-api user data (base64) for the installed OS.
    type: str
  tags:
    description: Extra metal-api tags on the allocation (the ownership and lease tags are always set).
    type: list
    elements: str
notes:
  - On plunder, the deployment hostname is the only place a lease can be recorded, so the member name
    is the hostname there.
seealso:
  - module: baremetal.fleet.provision
  - module: baremetal.fleet.wipe
  - module: baremetal.fleet.machine_info
"""

EXAMPLES = r"""
- name: Lease three machines for the demo cluster, control planes in distinct racks (metal-api)
  baremetal.fleet.lease:
    provider: metal
    name: demo-cp
    count: 3
    spread_by: rack
    partition: mini-lab
    size: v1-small-x86
    project: 00000000-0000-0000-0000-000000000001
    image: debian-12

- name: Lease two workers on plunder, addresses from a range
  baremetal.fleet.lease:
    provider: plunder
    plunder_config: /etc/plunder/plunderclient.yaml
    name: demo-worker
    count: 2
    address_range: 192.168.1.100-192.168.1.150
    image: preseed

- name: Control planes on plunder in distinct racks, racks known from a CMDB export
  baremetal.fleet.lease:
    provider: plunder
    name: demo-cp
    count: 3
    spread_by: rack
    hardware: "{{ lookup('ansible.builtin.file', 'racks.json') | from_json }}"
    address_range: 192.168.1.10-192.168.1.19

- name: Lease explicit machines with their own names
  baremetal.fleet.lease:
    name: db
    machines:
      - name: db-primary
        mac: "52:54:00:aa:00:01"
        address: 192.168.1.20
      - name: db-replica
        vendor: dell
        address: 192.168.1.21

- name: Give the machines back
  baremetal.fleet.lease:
    name: demo-worker
    state: absent
"""

RETURN = r"""
machines:
  description: Every machine of the lease (for O(state=absent), the released ones).
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Member name of the machine in the lease.
      type: str
      sample: demo-cp-0
    id:
      description: Machine id (plunder uses the MAC).
      type: str
    mac:
      description: MAC address of the boot interface.
      type: str
      sample: "52:54:00:aa:00:01"
    hostname:
      description: Hostname the machine gets.
      type: str
    address:
      description: Address of the machine.
      type: str
    provider_id:
      description: C(plunder://<mac>) or C(metal://<id>), as the cluster-api providers spell it.
      type: str
    state:
      description: unleased, leased, installing, provisioned, wiping or unknown (V(released) after O(state=absent)).
      type: str
    rack:
      description: Rack of the machine, where the backend knows it.
      type: str
    changed:
      description: Whether this task leased or released this machine.
      type: bool
    planned:
      description: Present in check mode for a machine that would be leased.
      type: bool
      returned: check mode
    surplus:
      description: Present for a member the lease holds beyond what the task asks for (a lower O(count)); it is kept.
      type: bool
      returned: when the lease holds more members than asked for
"""

from ansible_collections.baremetal.fleet.plugins.module_utils import leasing
from ansible_collections.baremetal.fleet.plugins.module_utils.module_runner import (
    fleet_module,
    run,
    selector_argument_spec,
)


def main():
    machine_spec = dict(
        name=dict(type="str"), mac=dict(type="str"), id=dict(type="str"), address=dict(type="str"),
        hostname=dict(type="str"), size=dict(type="str"), partition=dict(type="str"), vendor=dict(type="str"),
        rack=dict(type="str"), labels=dict(type="dict"),
    )
    spec = selector_argument_spec()
    spec.update(
        dict(
            name=dict(type="str", required=True),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            count=dict(type="int"),
            drop_first=dict(type="list", elements="str", default=[]),
            fill_first=dict(type="list", elements="str", default=[]),
            machines=dict(type="list", elements="dict", options=machine_spec),
            spread_by=dict(type="str", choices=["rack", "vendor", "size", "partition"]),
            addresses=dict(type="list", elements="str"),
            address_range=dict(type="str"),
            hostname_template=dict(type="str", default="{name}-{index}"),
            image=dict(type="str"),
            project=dict(type="str"),
            networks=dict(type="list", elements="str"),
            ssh_public_keys=dict(type="list", elements="str", no_log=False),
            user_data=dict(type="str"),
            tags=dict(type="list", elements="str"),
        )
    )
    module = fleet_module(spec, mutually_exclusive=[("count", "machines")])

    def action(provider):
        if module.params["state"] == "absent":
            return leasing.ensure_absent(provider, module.params, check_mode=module.check_mode)
        return leasing.ensure_present(provider, module.params, check_mode=module.check_mode)

    module.exit_json(**run(module, action))


if __name__ == "__main__":
    main()
