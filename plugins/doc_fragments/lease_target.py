# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Which leased machines a module works on: a whole lease and/or single machines.
    The argument spec piece is ``module_runner.lease_target_argument_spec()``."""

    DOCUMENTATION = r"""
options:
  name:
    description:
      - Lease whose machines the module works on (every member).
      - With O(machines), only those machines of the lease.
    type: str
  machines:
    description: Machines to work on, by member name, MAC or id.
    type: list
    elements: str
  hostname_template:
    description: The template the lease was made with (plunder finds the lease members by it).
    type: str
    default: "{name}-{index}"
  project:
    description: metal-api project of the lease.
    type: str
"""
