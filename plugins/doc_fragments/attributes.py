# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    """The attribute values every module of the collection shares (members of the action group
    ``baremetal.fleet.pool``, run on the controller). Used together with
    ``ansible.builtin.action_common_attributes`` and its ``actiongroups`` part, which describe the
    attributes; a module adds only what differs (for example ``check_mode.details``). List this
    fragment before those: the first fragment's values win."""

    # Modules that change the pool: check mode predicts, diff shows the lease before and after.
    DOCUMENTATION = r"""
attributes:
  action_group:
    support: full
    membership: [baremetal.fleet.pool]
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
"""

    # Modules that only read the pool: nothing changes, in check mode or not.
    READ_ONLY = r"""
attributes:
  action_group:
    support: full
    membership: [baremetal.fleet.pool]
  check_mode:
    support: full
    details: Read-only; reports the same in check mode.
  diff_mode:
    support: N/A
    details: Read-only; changes nothing.
  platform:
    platforms: posix
"""
