"""The metal-api catalogue of the lab: partitions, sizes, images, projects, networks.

Defaults follow mini-lab (partition ``mini-lab``, size ``v1-small-x86``, project
``00000000-0000-0000-0000-000000000001`` in tenant ``metal-stack``) plus the images the
lab installs (``debian-12`` first). Partitions and sizes used by the pool are added.
Entries live in the pool's key/value table so created ones survive restarts.
"""

import time

from .store import DEFAULT_PARTITION, SIZE_HARDWARE

DEFAULT_PROJECT = "00000000-0000-0000-0000-000000000001"
DEFAULT_TENANT = "metal-stack"
PRIVATE_NETWORK = "user-private-network"
SUPER_NETWORK = "tenant-super-network-mini-lab"
INTERNET_NETWORK = "internet-mini-lab"
INTERNET_PREFIX = "203.0.113.128/25"
ASN_BASE = 4210000000

_T0 = 1735689600.0  # 2025-01-01T00:00:00Z: creation time of the built-in entries


def _size(sid, created=_T0):
    cores, mem, disk = SIZE_HARDWARE.get(sid, (4, 4 * 1024 ** 3, 100 * 1000 ** 3))
    return {"id": sid, "name": sid, "description": "%s (%d cores)" % (sid, cores),
            "constraints": [
                {"type": "cores", "min": max(1, cores // 4), "max": cores},
                {"type": "memory", "min": max(1, mem // 8), "max": mem},
                {"type": "storage", "min": max(1, disk // 100), "max": disk},
            ], "labels": {}, "created": created, "changed": created}


def _partition(pid, created=_T0):
    return {"id": pid, "name": pid, "description": "The %s partition" % pid,
            "bootconfig": {"imageurl": "http://images.metal-stack.io/metal-os/stable/metal-hammer/img.tar.lz4",
                           "kernelurl": "http://images.metal-stack.io/metal-os/stable/metal-hammer/vmlinuz",
                           "commandline": "console=ttyS0,115200n8 ip=dhcp carrier_timeout=10"},
            "mgmtserviceaddress": "", "dns_servers": [], "ntp_servers": [], "labels": {},
            "created": created, "changed": created}


def _image(iid, features=("machine",), classification="supported", expires=_T0 + 5 * 365 * 86400):
    name, _, version = iid.rpartition("-")
    return {"id": iid, "name": name or iid, "description": "%s %s" % (name or iid, version),
            "url": "http://images.metal-stack.io/metal-os/%s/img.tar.lz4" % iid,
            "features": list(features), "expirationDate": expires, "classification": classification,
            "created": _T0, "changed": _T0}


def default_catalog(partitions=(), sizes=(), lease_network="10.77.0.0/16"):
    parts = [DEFAULT_PARTITION] + [p for p in partitions if p != DEFAULT_PARTITION]
    all_sizes = ["v1-small-x86"] + [s for s in sizes if s != "v1-small-x86"]
    networks = [
        {"id": SUPER_NETWORK, "name": SUPER_NETWORK, "description": "private super network",
         "partitionid": parts[0], "projectid": "", "parentnetworkid": "", "prefixes": [lease_network],
         "destinationprefixes": [], "nat": False, "privatesuper": True, "underlay": False, "shared": False,
         "vrf": 0, "labels": {}},
        {"id": PRIVATE_NETWORK, "name": PRIVATE_NETWORK, "description": "the lab network of the sample project",
         "partitionid": parts[0], "projectid": DEFAULT_PROJECT, "parentnetworkid": SUPER_NETWORK,
         "prefixes": [lease_network], "destinationprefixes": [], "nat": False, "privatesuper": False,
         "underlay": False, "shared": False, "vrf": 30, "labels": {}},
        {"id": INTERNET_NETWORK, "name": INTERNET_NETWORK, "description": "internet (lab stand-in)",
         "partitionid": "", "projectid": "", "parentnetworkid": "", "prefixes": [INTERNET_PREFIX],
         "destinationprefixes": ["0.0.0.0/0"], "nat": True, "privatesuper": False, "underlay": False,
         "shared": False, "vrf": 104009, "labels": {"network.metal-stack.io/default": ""}},
    ]
    return {
        "partitions": {p: _partition(p) for p in parts},
        "sizes": {s: _size(s) for s in all_sizes},
        "images": {i["id"]: i for i in [
            _image("debian-12"), _image("debian-13.0"), _image("ubuntu-24.04"),
            _image("firewall-ubuntu-3.0", features=("firewall",)),
        ]},
        "projects": {DEFAULT_PROJECT: {"id": DEFAULT_PROJECT, "name": "sample-project",
                                       "description": "sample project of the lab", "tenant_id": DEFAULT_TENANT,
                                       "created": _T0, "updated": _T0, "labels": []}},
        "networks": {n["id"]: n for n in networks},
    }


def now():
    return time.time()
