"""The lab's BMC emulator: sushy-tools' Redfish emulator (``sushy-emulator``) as it is, with one
change to its libvirt systems that a real BMC has and a VM does not: a machine whose power is gone
(a ``power-off`` fault, which the lab keeps in ``<state>/faults.json``) cannot be switched on
through its BMC. The request is refused (409, "no power") instead of starting a VM the lab would
switch off again moments later, so a client such as the ``power`` module fails at once, with the cause.

    python -m fleetlab.vm.bmc_emulator --lab-state DIR [sushy-emulator options]
"""
import sys

from sushy_tools import error
from sushy_tools.emulator import main as emulator
from sushy_tools.emulator.resources.systems import libvirtdriver

#: the power requests that need power at the machine
POWERING = ("On", "ForceOn", "ForceRestart", "GracefulRestart", "PushPowerButton")


def held_off_systems(state_dir):
    """The system ids (domain UUIDs) of the machines a power-off fault holds off."""
    from ..drivers.base import read_faults
    from .bmc import read_map

    macs = {(f.get("mac") or "").lower() for f in read_faults(state_dir).values() if f.get("kind") == "power-off"}
    machines = (read_map(state_dir) or {}).get("machines", {})
    return {entry.get("system_id") for mac, entry in machines.items() if mac.lower() in macs}


class LabLibvirtDriver(libvirtdriver.LibvirtDriver):
    """sushy-tools' libvirt systems, refusing power to a machine the lab holds off."""

    lab_state = None

    def set_power_state(self, identity, state):
        if state in POWERING and self.lab_state and self.uuid(identity) in held_off_systems(self.lab_state):
            raise error.Conflict("system %s has no power (a power-off fault in the lab): %s refused" % (identity, state))
        return super().set_power_state(identity, state)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    at = argv.index("--lab-state")
    LabLibvirtDriver.lab_state = argv[at + 1]
    del argv[at:at + 2]
    libvirtdriver.LibvirtDriver = LabLibvirtDriver  # the emulator looks the class up when it starts
    sys.argv = ["sushy-emulator"] + argv
    return emulator.main()


if __name__ == "__main__":
    sys.exit(main())
