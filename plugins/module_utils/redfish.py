# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A machine's power through its BMC's Redfish service, spoken with the ``sushy`` client library
(OpenStack's, maintained with Ironic): for provisioners without a power API (plunder)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible_collections.baremetal.fleet.plugins.module_utils.pool import PoolConnectionError, PoolError, normalize_mac

try:
    import sushy
    from sushy import exceptions as sushy_errors

    HAS_SUSHY = True
    SUSHY_IMPORT_ERROR = None
except ImportError:
    HAS_SUSHY = False
    SUSHY_IMPORT_ERROR = traceback.format_exc()


class RedfishBMC:
    """One machine's system on a Redfish BMC: power state, reset actions, one-time boot device."""

    via = "bmc"

    def __init__(self, label, address, username=None, password=None, system_id=None, validate_certs=True,
                 timeout=30):
        if not HAS_SUSHY:
            raise PoolError("the Redfish BMC of %s needs the Python library sushy on the controller "
                            "(pip install sushy): %s" % (label, SUSHY_IMPORT_ERROR), machine=label)
        self.label, self.address, self.system_id = label, address.rstrip("/"), system_id
        self._args = dict(username=username, password=password, verify=validate_certs)
        self._timeout = timeout
        self._system = None

    def _call(self, what, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except sushy_errors.ConnectionError as err:
            raise PoolConnectionError("the BMC of %s at %s does not answer (%s): %s"
                                      % (self.label, self.address, what, err), machine=self.label, url=self.address)
        except sushy_errors.AccessError as err:
            raise PoolError("the BMC of %s at %s refuses the credentials (%s): %s"
                            % (self.label, self.address, what, err), machine=self.label, url=self.address)
        except sushy_errors.SushyError as err:
            raise PoolError("the BMC of %s at %s refused to %s: %s" % (self.label, self.address, what, err),
                            machine=self.label, url=self.address)

    def system(self):
        if self._system is None:
            def connect():
                root = self.address if self.address.startswith(("http://", "https://")) else "https://" + self.address
                conn = sushy.Sushy(root + "/redfish/v1/", **self._args)
                if self.system_id:
                    return conn.get_system("/redfish/v1/Systems/%s" % self.system_id)
                members = conn.get_system_collection().get_members()
                if len(members) != 1:
                    raise PoolError("the BMC of %s at %s has %d systems: name one with system_id"
                                    % (self.label, self.address, len(members)), machine=self.label)
                return members[0]
            self._system = self._call("read its system", connect)
        return self._system

    def power_state(self):
        system = self.system()
        self._call("read the power state", system.refresh)
        state = system.power_state
        if state is None:
            raise PoolError("the BMC of %s reports no power state" % self.label, machine=self.label)
        # PoweringOn counts as on, PoweringOff as off: a wait goes on until it settles
        return "on" if state.value in ("On", "PoweringOff") else "off"

    def power(self, action):
        system = self.system()
        if action in ("pxe", "disk"):
            target = sushy.BootSource.PXE if action == "pxe" else sushy.BootSource.HDD
            return self._call("set the next boot device", system.set_system_boot_options, target=target,
                              enabled=sushy.BootSourceOverrideEnabled.ONCE)
        allowed = self._call("read the reset types", system.get_allowed_reset_system_values)
        wanted = {"on": [sushy.ResetType.ON], "off": [sushy.ResetType.FORCE_OFF],
                  "reset": [sushy.ResetType.FORCE_RESTART],
                  "cycle": [sushy.ResetType.POWER_CYCLE, sushy.ResetType.FORCE_RESTART]}[action]
        for reset in wanted:
            if not allowed or reset in allowed:
                return self._call("power %s" % action, system.reset_system, reset)
        raise PoolError("the BMC of %s offers none of %s (only %s)" % (
            self.label, ", ".join(r.value for r in wanted), ", ".join(sorted(r.value for r in allowed))),
            machine=self.label)


BMC_KEYS = ("address", "username", "password", "system_id", "validate_certs")


def _entry(bmc_map, keys):
    for key in keys:
        if not key:
            continue
        if key in bmc_map:
            return bmc_map[key]
        try:
            mac = normalize_mac(key)
        except PoolError:
            continue
        for name, entry in bmc_map.items():
            try:
                if normalize_mac(name) == mac:
                    return entry
            except PoolError:
                continue
    return None


def bmc_for(bmc_map, label, keys, timeout=30):
    """The RedfishBMC of the ``bmc`` map (keyed by MAC or member name) that names one of ``keys``;
    None when it names none."""
    entry = _entry(bmc_map or {}, keys)
    if entry is None:
        return None
    if not isinstance(entry, dict) or not entry.get("address"):
        raise PoolError("bmc entry for %s needs at least an address" % label, machine=label)
    unknown = set(entry) - set(BMC_KEYS)
    if unknown:
        raise PoolError("bmc entry for %s has unknown keys: %s" % (label, ", ".join(sorted(unknown))), machine=label)
    return RedfishBMC(label, entry["address"], entry.get("username"), entry.get("password"), entry.get("system_id"),
                      entry.get("validate_certs", True), timeout)
