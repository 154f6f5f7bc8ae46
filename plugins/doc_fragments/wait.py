# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """Bounded waiting, shared by the modules that wait for machines."""

    DOCUMENTATION = r"""
options:
  wait_timeout:
    description:
      - Seconds to wait at most for all selected machines together.
      - Machines not there in time are reported one by one with their last state.
    type: int
    default: 1800
  poll_interval:
    description:
      - Seconds between two looks at the machines.
    type: float
    default: 10
"""
