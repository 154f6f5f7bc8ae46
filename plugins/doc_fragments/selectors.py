# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Which machines of the pool a module considers, by their attributes, and what the backend
    does not know about them. The argument spec piece is ``module_runner.selector_argument_spec()``."""

    DOCUMENTATION = r"""
options:
  size:
    description: Only machines of this size (metal-api size id).
    type: str
  partition:
    description: Only machines of this partition.
    type: str
  vendor:
    description: Only machines of this hardware vendor (substring, any case; plunder derives it from the MAC).
    type: str
  rack:
    description: Only machines in this rack.
    type: str
  labels:
    description: Only machines carrying all of these labels.
    type: dict
  hardware:
    description:
      - What the backend does not know about its machines, keyed by MAC (or id), each with any of
        C(rack), C(size), C(partition), C(vendor), C(labels); for example an export of a CMDB.
      - plunder only knows MAC and last-seen time, so selectors on plunder need this.
      - Values given here override the backend's; they are applied before selecting.
    type: dict
"""
