"""fleetlab: the baremetal.fleet lab (plunder- and metal-api-compatible servers over one pool)."""

__version__ = "0.1.0"
