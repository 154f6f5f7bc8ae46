"""Drivers make the pool's machines live: ``sim`` (timers), ``libvirt`` and ``vagrant``
(real VMs; loaded lazily from ``libvirt.py`` / ``vagrant.py`` when present)."""

import importlib

DRIVERS = ("sim", "libvirt", "vagrant")


def load_driver(name, options=None):
    """Instantiate the driver ``name`` with ``options`` (dict of the CLI's timing and
    driver settings). Imports the module only when asked for."""
    if name not in DRIVERS:
        raise ValueError("unknown driver %r (choose from %s)" % (name, ", ".join(DRIVERS)))
    try:
        module = importlib.import_module("fleetlab.drivers." + name)
    except ImportError as exc:
        raise RuntimeError("driver %r is not available: %s" % (name, exc)) from exc
    cls = getattr(module, "DRIVER", None)
    if cls is None:
        raise RuntimeError("fleetlab.drivers.%s defines no DRIVER class" % name)
    return cls(dict(options or {}))
