"""metal-api on the wire: roles and keys, request structs and their Go-style decoding errors,
the request helpers of the machine handlers."""

import base64




VIEW_GROUPS = ["k8s_kaas-view", "maas-all-all-view"]
EDIT_GROUPS = ["k8s_kaas-edit", "maas-all-all-edit"]
ADMIN_GROUPS = ["k8s_kaas-admin", "maas-all-all-admin"]
ACCESS = {
    "view": VIEW_GROUPS + EDIT_GROUPS + ADMIN_GROUPS,
    "edit": EDIT_GROUPS + ADMIN_GROUPS,
    "admin": ADMIN_GROUPS,
}
ROLE_RANK = {"view": 0, "edit": 1, "admin": 2}
AUTH_TYPES = {"view": "Metal-View", "edit": "Metal-Edit", "admin": "Metal-Admin"}
LIFETIMES = {"view": 30.0, "edit": 30.0, "admin": 90.0}
DEFAULT_KEYS = {"view": "metal-view", "edit": "metal-edit", "admin": "metal-admin"}
UNAUTHENTICATED_SUFFIXES = ("liveliness", "health", "version", "apidocs.json")
POWER_ACTIONS = ("on", "off", "reset", "cycle", "bios", "disk", "pxe",
                 "chassis-identify-led-on", "chassis-identify-led-off")

# JSON types of the request fields the lab reads (metal-api v1 request structs)
_STR, _BOOL, _INT, _LIST, _OBJ = "string", "bool", "int", "list", "object"
REQUEST_FIELDS = {
    "MachineAllocateRequest": {
        "uuid": _STR, "name": _STR, "description": _STR, "hostname": _STR, "projectid": _STR,
        "partitionid": _STR, "sizeid": _STR, "imageid": _STR, "filesystemlayoutid": _STR,
        "ssh_pub_keys": _LIST, "user_data": _STR, "tags": _LIST, "networks": _LIST, "ips": _LIST,
        "placement_tags": _LIST, "dns_servers": _LIST, "ntp_servers": _LIST},
    "MachineFindRequest": None,  # checked field by field in _find
    "MachineReinstallRequest": {"id": _STR, "imageid": _STR, "description": _STR},
    "MachineState": {"value": _STR, "description": _STR, "metal_hammer_version": _STR},
    "MachineUpdateRequest": {"id": _STR, "description": _STR, "tags": _LIST, "ssh_pub_keys": _LIST},
    "PartitionCapacityRequest": {"id": _STR, "sizeid": _STR, "projectid": _STR},
    "ImageCreateRequest": {"id": _STR, "name": _STR, "description": _STR, "url": _STR, "features": _LIST,
                           "expirationDate": _STR, "classification": _STR},
    "SizeCreateRequest": {"id": _STR, "name": _STR, "description": _STR, "constraints": _LIST, "labels": _OBJ},
    "ProjectCreateRequest": {"name": _STR, "description": _STR, "tenant_id": _STR, "meta": _OBJ,
                             "quotas": _OBJ},
    "EmptyBody": {},
    "NetworkAllocateRequest": {"projectid": _STR, "partitionid": _STR, "name": _STR, "description": _STR,
                               "labels": _OBJ, "shared": _BOOL, "nat": _BOOL, "destinationprefixes": _LIST,
                               "length": _OBJ, "addressfamily": _STR},
    "FindByIdRequest": {"id": _STR, "name": _STR, "description": _STR, "tenant_id": _STR, "partitionid": _STR,
                        "projectid": _STR, "os": _STR, "version": _STR, "features": _LIST,
                        "classification": _STR, "privatesuper": _BOOL, "nat": _BOOL, "underlay": _BOOL,
                        "prefixes": _LIST, "destinationprefixes": _LIST, "vrf": _INT,
                        "parentnetworkid": _STR, "labels": _OBJ, "addressfamily": _STR},
}
FIND_STR = ["id", "name", "partition_id", "sizeid", "rackid", "state_value", "allocation_name",
            "allocation_project", "allocation_image_id", "allocation_hostname", "allocation_role", "ipmi_address",
            "ipmi_mac_address", "ipmi_user", "ipmi_interface", "fru_chassis_part_number",
            "fru_chassis_part_serial", "fru_board_mfg", "fru_board_mfg_serial", "fru_board_part_number",
            "fru_product_manufacturer", "fru_product_part_number", "fru_product_serial", "roomid"]
FIND_LIST = ["tags", "network_ids", "network_prefixes", "network_ips", "network_destination_prefixes",
             "network_vrfs", "network_asns", "nics_mac_addresses", "nics_names", "nics_vrfs",
             "nics_neighbor_mac_addresses", "nics_neighbor_names", "nics_neighbor_vrfs", "disk_names", "disk_sizes"]
_GO_TYPES = {_STR: "string", _BOOL: "bool", _INT: "int64", _LIST: "[]string", _OBJ: "map[string]string"}


class ApiError(Exception):
    def __init__(self, status, message, bare=False):
        super().__init__(message)
        self.status = status
        self.message = message
        self.bare = bare  # body is a bare JSON string (tenant filter)


INT64 = (-(1 << 63), (1 << 63) - 1)


def json_type(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def check_types(body, fields, struct):
    for key, kind in fields.items():
        if key not in body or body[key] is None:
            continue
        v = body[key]
        ok = {
            _STR: isinstance(v, str),
            _BOOL: isinstance(v, bool),
            _INT: isinstance(v, int) and not isinstance(v, bool) and INT64[0] <= v <= INT64[1],
            _LIST: isinstance(v, list),
            _OBJ: isinstance(v, dict),
        }[kind]
        if not ok:
            raise ApiError(400, "json: cannot unmarshal %s into Go struct field %s.%s of type %s"
                           % (json_type(v), struct, key, _GO_TYPES[kind]))


def go_json_error(raw, exc):
    if not raw.strip():
        return "EOF"
    doc = exc.doc if hasattr(exc, "doc") else ""
    pos = getattr(exc, "pos", 0)
    if pos >= len(doc.rstrip()):
        return "unexpected EOF"
    ch = doc[pos] if pos < len(doc) else ""
    return "invalid character '%s' looking for beginning of value" % ch



def dedupe_tags(tags):
    """``k=v`` tags de-duplicated by key (the last wins), others kept once, order stable."""
    out, keys = [], {}
    for t in tags:
        t = str(t)
        if "=" in t:
            k = t.split("=", 1)[0]
            if k in keys:
                out[keys[k]] = t
                continue
            keys[k] = len(out)
        elif t in out:
            continue
        out.append(t)
    return out


def valid_ssh_key(line):
    if not isinstance(line, str):
        return False
    parts = line.strip().split()
    if len(parts) < 2 or not (parts[0].startswith("ssh-") or parts[0].startswith("ecdsa-")
                              or parts[0].startswith("sk-")):
        return False
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (ValueError, TypeError):
        return False
    return len(blob) > 4 and blob[4:4 + int.from_bytes(blob[:4], "big")].decode("ascii", "replace") == parts[0]


def matches_find(mr, filters):
    alloc = mr.get("allocation") or {}
    nets = alloc.get("networks") or []
    for key, value in filters.items():
        if key == "tags":
            if not set(value) <= set(mr["tags"]):
                return False
        elif key == "network_ids":
            if not set(value) <= {n["networkid"] for n in nets}:
                return False
        elif key == "network_prefixes":
            if not set(value) <= {p for n in nets for p in n["prefixes"]}:
                return False
        elif key == "network_destination_prefixes":
            if not set(value) <= {p for n in nets for p in n["destinationprefixes"]}:
                return False
        elif key == "network_vrfs":
            if not set(value) <= {n["vrf"] for n in nets}:
                return False
        elif key == "network_asns":
            if not set(value) <= {n["asn"] for n in nets}:
                return False
        elif key == "nics_names":
            if not set(value) <= {n["name"] for n in mr["hardware"]["nics"]}:
                return False
        elif key == "nics_neighbor_mac_addresses":
            if not set(value) <= {nb["mac"] for n in mr["hardware"]["nics"] for nb in n["neighbors"]}:
                return False
        elif key == "nics_neighbor_names":
            if not set(value) <= {nb["name"] for n in mr["hardware"]["nics"] for nb in n["neighbors"]}:
                return False
        elif key == "disk_names":
            if not set(value) <= {d["name"] for d in mr["hardware"]["disks"]}:
                return False
        elif key == "disk_sizes":
            if not set(value) <= {d["size"] for d in mr["hardware"]["disks"]}:
                return False
        elif key in ("nics_vrfs", "nics_neighbor_vrfs"):
            if value:
                return False
        elif isinstance(value, str):
            # ipmi/fru/roomid: the lab's machines report none of these
            if value != "":
                return False
    return True

