"""Hardware vendor from a MAC address's OUI (first three octets).

A small table of the vendors a lab pool uses; pldrctl shows the same column
("Hardware Vendor") from the IEEE registry. Unknown OUIs give ``""`` as there.
"""

OUI_VENDORS = {
    "00:50:56": "VMware, Inc.",
    "00:0c:29": "VMware, Inc.",
    "52:54:00": "QEMU virtual NIC",
    "00:25:90": "Super Micro Computer, Inc.",
    "ac:1f:6b": "Super Micro Computer, Inc.",
    "3c:ec:ef": "Super Micro Computer, Inc.",
    "00:1e:67": "Intel Corporate",
    "a4:bf:01": "Intel Corporate",
    "b8:59:9f": "Mellanox Technologies, Inc.",
    "24:6e:96": "Dell Inc.",
    "d0:94:66": "Dell Inc.",
    "14:18:77": "Dell Inc.",
    "94:40:c9": "Hewlett Packard Enterprise",
    "48:df:37": "Hewlett Packard Enterprise",
    "08:f1:ea": "Hewlett Packard Enterprise",
    "70:10:6f": "Hewlett Packard Enterprise",
    "6c:b3:11": "Lenovo",
    "08:94:ef": "Lenovo",
}

# OUIs the generator spreads a generated pool over (vendor mix of a typical rack row).
GENERATED_OUIS = ["ac:1f:6b", "24:6e:96", "94:40:c9", "6c:b3:11", "52:54:00"]


def vendor_for(mac):
    """Return the vendor name for ``mac`` (lower-case colon form) or ``""``."""
    return OUI_VENDORS.get(mac[:8].lower(), "")
