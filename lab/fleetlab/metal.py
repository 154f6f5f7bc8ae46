"""The metal-api face: metal-stack's v1 REST API (the part an allocation needs) over the pool.

Behaviour follows metal-api (go-restful, ``cmd/metal-api``), metal-lib and metal-stack/security:

* HMAC: ``Authorization: Metal-View|Metal-Edit|Metal-Admin <hex>`` with
  ``hex = HMAC-SHA256(key, X-Date + METHOD + X-Data-Salt)``; the date must be RFC3339 and
  not older than the lifetime (30 s view/edit, 90 s admin; future dates pass). A wrong
  HMAC or date gives 403 ``{"statuscode":403,"message":...}``; no (or an unknown)
  Authorization makes the caller a guest, refused with 403 and a bare JSON string
  (``"tenant  not allowed"``) except on ``/health``, ``/version``, ``/liveliness``.
  Optional bearer tokens (``--metal-token ROLE=TOKEN``) stand in for OIDC.
* Roles: view < edit < admin; a missing role gives 403 ``you are not member in one of [...]``.
* Errors: ``{"statuscode": N, "message": "..."}``; request decoding -> 400, not found -> 404
  (``NotFound no machine with id "x" found``), creating an existing entity -> 409, other
  failures -> 422; unknown route 404, wrong method 405, POST/PUT without
  ``Content-Type: application/json`` 415 (go-restful's texts).
* Machine responses carry every field metal-python 0.45.0 requires; the event log is newest
  first (at most 20), timestamps are the server's.
"""

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import time
import uuid

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import catalog as C
from . import store as P
from .util import BodyTooLarge, dumps, parse_rfc3339, read_body, rfc3339nano

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


_INT64 = (-(1 << 63), (1 << 63) - 1)


def _json_type(value):
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


def _check_types(body, fields, struct):
    for key, kind in fields.items():
        if key not in body or body[key] is None:
            continue
        v = body[key]
        ok = {
            _STR: isinstance(v, str),
            _BOOL: isinstance(v, bool),
            _INT: isinstance(v, int) and not isinstance(v, bool) and _INT64[0] <= v <= _INT64[1],
            _LIST: isinstance(v, list),
            _OBJ: isinstance(v, dict),
        }[kind]
        if not ok:
            raise ApiError(400, "json: cannot unmarshal %s into Go struct field %s.%s of type %s"
                           % (_json_type(v), struct, key, _GO_TYPES[kind]))


def _go_json_error(raw, exc):
    if not raw.strip():
        return "EOF"
    doc = exc.doc if hasattr(exc, "doc") else ""
    pos = getattr(exc, "pos", 0)
    if pos >= len(doc.rstrip()):
        return "unexpected EOF"
    ch = doc[pos] if pos < len(doc) else ""
    return "invalid character '%s' looking for beginning of value" % ch


class MetalFace:
    def __init__(self, lab, base_path="/metal", hmac_keys=None, tokens=None, lifetimes=None):
        self.lab = lab
        self.pool = lab.pool
        self.driver = lab.driver
        self.base = "/" + base_path.strip("/") if base_path.strip("/") else ""
        self.keys = dict(hmac_keys or DEFAULT_KEYS)
        self.tokens = dict(tokens or {})  # token -> role
        self.lifetimes = dict(LIFETIMES)
        self.lifetimes.update(lifetimes or {})
        parts = self.pool.distinct("partition")
        sizes = self.pool.distinct("size")
        cat = self.pool.kv_get("metal.catalog")
        if cat is None:
            cat = C.default_catalog(parts, sizes, str(self.pool.lease_network))
        # partitions and sizes the pool uses are always known (a pool file may add some)
        for p in parts:
            cat["partitions"].setdefault(p, C._partition(p))
        for sz in sizes:
            cat["sizes"].setdefault(sz, C._size(sz))
        self.pool.kv_set("metal.catalog", cat)
        r = self._rules()
        self.url_map = Map(r, strict_slashes=False, merge_slashes=False)

    def _rules(self):
        b = self.base + "/v1"
        routes = [
            ("GET", "/health", "health", None), ("GET", "/version", "version", None),
            ("GET", "/machine", "machine_list", "view"),
            ("POST", "/machine", "machine_update", "admin"),
            ("POST", "/machine/find", "machine_find", "view"),
            ("POST", "/machine/allocate", "machine_allocate", "edit"),
            ("GET", "/machine/<id>", "machine_get", "view"),
            ("DELETE", "/machine/<id>/free", "machine_free", "edit"),
            ("POST", "/machine/<id>/reinstall", "machine_reinstall", "edit"),
            ("POST", "/machine/<id>/power/<action>", "machine_power", "edit"),
            ("POST", "/machine/<id>/state", "machine_state", "edit"),
            ("GET", "/size", "size_list", "view"), ("GET", "/size/<id>", "size_get", "view"),
            ("PUT", "/size", "size_create", "admin"),
            ("GET", "/image", "image_list", "view"), ("GET", "/image/<id>", "image_get", "view"),
            ("GET", "/image/<id>/latest", "image_get", "view"),
            ("POST", "/image/find", "image_find", "view"), ("PUT", "/image", "image_create", "admin"),
            ("GET", "/partition", "partition_list", "view"), ("GET", "/partition/<id>", "partition_get", "view"),
            ("POST", "/partition/capacity", "partition_capacity", "view"),
            ("GET", "/project", "project_list", "view"), ("GET", "/project/<id>", "project_get", "view"),
            ("POST", "/project/find", "project_find", "view"), ("PUT", "/project", "project_create", "admin"),
            ("GET", "/network", "network_list", "view"), ("GET", "/network/<id>", "network_get", "view"),
            ("POST", "/network/find", "network_find", "view"),
            ("POST", "/network/allocate", "network_allocate", "edit"),
            ("DELETE", "/network/free/<id>", "network_free", "edit"),
            ("GET", "/filesystemlayout", "fsl_list", "view"),
        ]
        self.roles = {}
        rules = []
        for method, path, endpoint, role in routes:
            key = "%s:%s" % (endpoint, method)
            rules.append(Rule(b + path, methods=[method], endpoint=key))
            self.roles[key] = (endpoint, role)
        return rules

    # -- WSGI ------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            status, body = self._dispatch(request)
            text = dumps(body)
        except ApiError as e:
            status = e.status
            text = dumps(e.message) if e.bare else dumps({"statuscode": e.status, "message": e.message})
        except Exception as e:  # a bug of the lab: answer like metal-api's Internal error, keep serving
            logging.getLogger("fleetlab").exception("metal face: %s %s", request.method, request.path)
            status = 500
            text = dumps({"statuscode": 500, "message": "Internal %s" % e})
        return Response(text + "\n", status=status, content_type="application/json")(environ, start_response)

    def _dispatch(self, request):
        role = self._authenticate(request)
        path = request.path
        if role is None and not path.rstrip("/").endswith(UNAUTHENTICATED_SUFFIXES):
            raise ApiError(403, "tenant  not allowed", bare=True)
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            key, args = adapter.match()
        except MethodNotAllowed:
            raise ApiError(405, "405: Method Not Allowed")
        except NotFound:
            raise ApiError(404, "404: Page Not Found")
        endpoint, need = self.roles[key]
        if request.method in ("POST", "PUT"):
            ctype = (request.mimetype or "").lower()
            if ctype != "application/json":
                raise ApiError(415, "415: Unsupported Media Type")
        if need is not None and (role is None or ROLE_RANK[role] < ROLE_RANK[need]):
            raise ApiError(403, "you are not member in one of [%s]" % " ".join(ACCESS[need]))
        request.environ["fleetlab.role"] = role
        try:
            return getattr(self, "h_" + endpoint)(request, **args)
        except BodyTooLarge:
            raise ApiError(400, "http: request body too large")
        except P.PoolError as e:
            raise ApiError({"notfound": 404, "conflict": 422, "unavailable": 422}.get(e.kind, 422), e.message)

    def _authenticate(self, request):
        """Role of the caller (view/edit/admin) or None for a guest; ApiError(403) on a bad HMAC."""
        auth = request.headers.get("Authorization", "")
        if not auth:
            return None
        parts = auth.split(" ")
        if len(parts) != 2:
            return None
        scheme, value = parts[0].strip(), parts[1].strip()
        if scheme == "Bearer":
            return self.tokens.get(value)
        for role, auth_type in AUTH_TYPES.items():
            if scheme != auth_type:
                continue
            ts_text = request.headers.get("X-Date", "")
            try:
                ts = parse_rfc3339(ts_text)
            except ValueError:
                raise ApiError(403, 'unknown timestamp "%s" in "X-Date" header, use RFC3339: parsing time "%s"'
                               ' as "2006-01-02T15:04:05Z07:00": cannot parse "%s" as "2006"'
                               % (ts_text, ts_text, ts_text))
            lifetime = self.lifetimes[role]
            if lifetime > 0 and time.time() - ts > lifetime:
                raise ApiError(403, 'the timestamp in your header is too old: "%s", please check if you have time'
                               ' synchronization activated' % ts_text)
            salt = request.headers.get("X-Data-Salt", "")
            # Go formats the parsed time back as RFC3339 in UTC before signing
            signed = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ts // 1)))
            want = hmac.new(self.keys[role].encode(), (signed + request.method + salt).encode(),
                            hashlib.sha256).hexdigest()
            if not hmac.compare_digest(want, value):
                raise ApiError(403, "Wrong HMAC found")
            return role
        return None

    def _body(self, request, struct, allow_empty=False):
        raw = read_body(request)
        if not raw.strip() and allow_empty:
            return {}
        try:
            body = json.loads(raw)
        except RecursionError:
            raise ApiError(400, "json: exceeded max depth")  # Go's decoder stops at 10000 levels
        except ValueError as exc:
            raise ApiError(400, _go_json_error(raw.decode("utf-8", "replace"), exc))
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ApiError(400, "json: cannot unmarshal %s into Go value of type v1.%s" % (_json_type(body), struct))
        fields = REQUEST_FIELDS.get(struct)
        if fields:
            _check_types(body, fields, struct)
        return body

    # -- catalogue ------------------------------------------------------------------------
    def catalog(self):
        return self.pool.kv_get("metal.catalog")

    @staticmethod
    def _stamp(entry):
        out = dict(entry)
        for k in ("created", "changed"):
            if k in out:
                out[k] = rfc3339nano(out[k])
        if "expirationDate" in out:
            out["expirationDate"] = rfc3339nano(out["expirationDate"])
        return out

    def _image_resp(self, image):
        if image is None:
            return None
        out = self._stamp(image)
        out.setdefault("usedby", [])
        return out

    def _resolve_image(self, cat, iid):
        if not iid:
            return None
        images = cat["images"]
        if iid in images:
            return images[iid]
        # semver "most recent" resolution: debian-13 -> newest debian-13.x
        cands = sorted((k for k in images if k.startswith(iid + ".")),
                       key=lambda k: [int(x) if x.isdigit() else x for x in k[len(iid) + 1:].split(".")])
        return images[cands[-1]] if cands else None

    def _network_resp(self, n):
        out = {
            "id": n["id"], "name": n.get("name", ""), "description": n.get("description", ""),
            "partitionid": n.get("partitionid", ""), "projectid": n.get("projectid", ""),
            "parentnetworkid": n.get("parentnetworkid", ""), "prefixes": n["prefixes"],
            "destinationprefixes": n.get("destinationprefixes", []), "nat": n.get("nat", False),
            "privatesuper": n.get("privatesuper", False), "underlay": n.get("underlay", False),
            "shared": n.get("shared", False), "vrf": n.get("vrf", 0), "vrfshared": False,
            "labels": n.get("labels", {}), "additionalAnnouncableCIDRs": [],
            "networktype": ("privatesuper" if n.get("privatesuper") else
                            "external" if n.get("nat") else "privateprimaryunshared"),
            "nattype": "ipv4-masquerade" if n.get("nat") else "none",
            "defaultchildprefixlength": {"IPv4": 22} if n.get("privatesuper") else {},
            "usage": {"available_ips": 0, "used_ips": 0, "available_prefixes": 0, "used_prefixes": 0},
            "consumption": {"ipv4": {"available_ips": 0, "used_ips": 0, "available_prefixes": 0,
                                     "used_prefixes": 0}},
            "created": rfc3339nano(C._T0), "changed": rfc3339nano(C._T0),
        }
        return out

    def _project_resp(self, p):
        return {"meta": {"id": p["id"], "kind": "Project", "apiversion": "v1", "version": 0,
                         "created_time": rfc3339nano(p["created"]), "updated_time": rfc3339nano(p["updated"]),
                         "annotations": {}, "labels": p.get("labels", [])},
                "name": p["name"], "description": p.get("description", ""), "tenant_id": p["tenant_id"],
                "quotas": {}}

    # -- machine rendering -----------------------------------------------------------------
    def _liveliness(self, m, events, now):
        if self.driver.virtual_loop and m["power"] == "on":
            return "Alive"
        last = max([m["last_seen"] or 0] + [e[0] for e in events[:1]])
        if now - last <= 300:
            return "Alive"
        return "Unknown" if m["lease_name"] is not None else "Dead"

    def render(self, m, events, ips, cat, now=None):
        now = time.time() if now is None else now
        lease = m["lease"] or {}
        tags = ["%s=%s" % (k, v) if v != "" else k for k, v in sorted(m["labels"].items())]
        allocation = None
        if m["lease_name"] is not None:
            allocation = self._allocation(m, lease, ips, cat)
            for t in lease.get("tags") or []:
                if t not in tags:
                    tags.append(t)
            for t in self._system_tags(m, lease):
                if t not in tags:
                    tags.append(t)
        log = [{"time": rfc3339nano(t), "event": ev, "message": msg} for t, ev, msg in events]
        last_time = events[0][0] if events else None
        if last_time is not None and m.get("event_time"):
            last_time = max(last_time, m["event_time"])
        if last_time is not None and self.driver.virtual_loop and m["power"] == "on" and \
                m["state"] in (P.UNLEASED, P.PROVISIONED):
            # the hammer's "Alive" (in the loop) and metal-core's repeated "Phoned Home" refresh the time
            # every minute without adding log entries
            last_time += ((now - last_time) // 60) * 60
        ev = {"log": log, "last_event_time": rfc3339nano(last_time),
              "crash_loop": bool(m["crash_loop"]), "failed_machine_reclaim": bool(m["failed_reclaim"])}
        if m["last_error"]:
            le = m["last_error"]
            ev["last_error_event"] = {"time": rfc3339nano(le["time"]), "event": le["event"],
                                      "message": le["message"]}
        state = {"value": m["mstate"], "description": m["mstate_description"],
                 "metal_hammer_version": P.HAMMER_VERSION}
        if m["mstate_issuer"]:
            state["issuer"] = m["mstate_issuer"]
        stamped = cat.setdefault("_stamped", {})
        key = ("p", m["partition"])
        if key not in stamped:
            part = cat["partitions"].get(m["partition"])
            stamped[key] = self._stamp(part) if part else None
        part = stamped[key]
        key = ("s", m["size"])
        if key not in stamped:
            size = cat["sizes"].get(m["size"])
            stamped[key] = self._stamp(size) if size else None
        size = stamped[key]
        return {
            "id": m["id"], "name": "", "description": "",
            "partition": part,
            "rackid": m["rack"],
            "size": size,
            "hardware": {
                "memory": m["memory"], "cpu_cores": 0,
                "cpus": [{"vendor": "GenuineIntel", "model": "Intel(R) Xeon(R) CPU (fleetlab)",
                          "cores": m["cpus"], "threads": m["cpus"] * 2}],
                "disks": [{"name": "/dev/sda", "size": m["disk"]}],
                "nics": [{"mac": m["mac"], "name": "eth0", "identifier": m["mac"],
                          "neighbors": [{"mac": "aa:bb:cc:00:%s" % m["rack"][-2:].rjust(2, "0")[:2] + ":01",
                                         "name": "Ethernet0", "identifier": "Ethernet0", "neighbors": []}]}],
            },
            "bios": {"version": "2.1.0", "vendor": m["vendor"] or "American Megatrends Inc.", "date": "01/15/2025"},
            "allocation": allocation,
            "state": state,
            "ledstate": {"value": m["led"], "description": m["led_description"]},
            "liveliness": self._liveliness(m, events, now),
            "events": ev,
            "tags": tags,
            "created": rfc3339nano(m["created"]),
            "changed": rfc3339nano(m["changed"]),
        }

    def _system_tags(self, m, lease):
        out = ["machine.metal-stack.io/rack=%s" % m["rack"]]
        if lease.get("asn"):
            out.insert(0, "machine.metal-stack.io/network.primary.asn=%d" % lease["asn"])
        out.append("machine.metal-stack.io/chassis=%s" % m["id"][-12:])
        return out

    def _allocation(self, m, lease, ips, cat):
        image = self._resolve_image(cat, m["image"]) if m["lease_face"] == "metal" else None
        networks = []
        by_net = {}
        for net_id, addr in ips:
            by_net.setdefault(net_id, []).append(addr)
        for spec in lease.get("networks") or []:
            n = cat["networks"].get(spec["networkid"])
            if n is None:
                continue
            private = bool(n.get("projectid"))
            networks.append({
                "networkid": n["id"], "prefixes": n["prefixes"], "ips": by_net.get(n["id"], []),
                "destinationprefixes": n.get("destinationprefixes", []),
                "networktype": "privateprimaryunshared" if private else "external",
                "vrf": n.get("vrf", 0), "asn": lease.get("asn", C.ASN_BASE), "nat": n.get("nat", False),
                "private": private, "underlay": False, "projectid": n.get("projectid", ""),
                "networktypev2": "child" if private else "external",
                "nattypev2": "ipv4-masq" if n.get("nat") else "none",
            })
        out = {
            "created": rfc3339nano(m["leased_at"]),
            "creator": lease.get("creator") or ("plunder" if m["lease_face"] == "plunder" else ""),
            "name": m["lease_name"] or "",
            "project": m["project"] or "",
            "image": self._image_resp(image),
            "filesystemlayout": None,
            "hostname": m["hostname"] or "",
            "ssh_pub_keys": list(lease.get("ssh_pub_keys") or []),
            "succeeded": False,
            "reinstall": bool(lease.get("reinstall")),
            "boot_info": None,
            "role": "machine",
            "vpn": None,
            "allocationuuid": lease.get("allocationuuid") or str(uuid.uuid5(uuid.NAMESPACE_OID, m["id"])),
            "networks": networks,
        }
        if lease.get("description"):
            out["description"] = lease["description"]
        if lease.get("user_data"):
            out["user_data"] = lease["user_data"]
        if lease.get("dns_servers"):
            out["dns_servers"] = lease["dns_servers"]
        if lease.get("ntp_servers"):
            out["ntp_servers"] = lease["ntp_servers"]
        if m["disk_state"] == "os" and image is not None:
            out["boot_info"] = {"image_id": image["id"], "primary_disk": "/dev/sda", "os_partition": "/dev/sda2",
                                "initrd": "boot/initrd.img", "cmdline": "console=ttyS0,115200n8",
                                "kernel": "boot/vmlinuz", "bootloaderid": image["name"]}
        return out

    def _render_many(self, machines):
        cat = self.catalog()
        ids = [m["id"] for m in machines]
        events = self.pool.events(ids)
        ips = {}
        leased = [m["id"] for m in machines if m["lease_name"] is not None]
        if leased:
            for mid, net, addr in self.pool.ips(leased):
                ips.setdefault(mid, []).append((net, addr))
        now = time.time()
        return [self.render(m, events[m["id"]], ips.get(m["id"], []), cat, now) for m in machines]

    def _one(self, mid):
        m = self.pool.get(mid)
        if m is None or m["id"] != mid:
            raise ApiError(404, 'NotFound no machine with id "%s" found' % mid)
        return m

    def _render_one(self, mid):
        return self._render_many([self._one(mid)])[0]

    # -- endpoints: health, version ----------------------------------------------------------
    def h_health(self, request):
        return 200, {"status": "healthy", "message": "", "services": {}}

    def h_version(self, request):
        from . import __version__
        return 200, {"name": "metal-api", "version": "v0.44.1 (fleetlab %s)" % __version__, "builddate": "",
                     "revision": "fleetlab", "gitsha1": "", "min_client_version": "v0.0.0",
                     "release_version": "v0.44.1"}

    # -- machines --------------------------------------------------------------------------
    def h_machine_list(self, request):
        return 200, self._render_many(self.pool.machines())

    def h_machine_get(self, request, id):
        return 200, self._render_one(id)

    def h_machine_find(self, request):
        body = self._body(request, "MachineFindRequest")
        where, params, rest = [], [], {}
        for key, value in body.items():
            if value is None:
                continue
            if key in FIND_STR:
                if not isinstance(value, str):
                    raise ApiError(400, "json: cannot unmarshal %s into Go struct field MachineSearchQuery.%s of"
                                   " type string" % (_json_type(value), key))
            elif key in FIND_LIST:
                if not isinstance(value, list):
                    raise ApiError(400, "json: cannot unmarshal %s into Go struct field MachineSearchQuery.%s of"
                                   " type []string" % (_json_type(value), key))
                for item in value:
                    if not isinstance(item, str):
                        raise ApiError(400, "json: cannot unmarshal %s into Go struct field MachineSearchQuery.%s of"
                                       " type string" % (_json_type(item), key))
            elif key == "hardware_memory":
                if not isinstance(value, int) or isinstance(value, bool) or not _INT64[0] <= value <= _INT64[1]:
                    raise ApiError(400, "json: cannot unmarshal %s into Go struct field MachineSearchQuery.%s of"
                                   " type int64" % (_json_type(value), key))
            elif key == "allocation_succeeded":
                if not isinstance(value, bool):
                    raise ApiError(400, "json: cannot unmarshal %s into Go struct field MachineSearchQuery.%s of"
                                   " type bool" % (_json_type(value), key))
            else:
                continue  # unknown keys are ignored, as Go's decoder does
            column = {"id": "id", "partition_id": "partition", "sizeid": "size", "rackid": "rack",
                      "state_value": "mstate", "allocation_name": "lease_name", "allocation_project": "project",
                      "allocation_hostname": "hostname", "hardware_memory": "memory"}.get(key)
            if column:
                where.append("%s=?" % column)
                params.append(value)
                if key.startswith("allocation_"):
                    where.append("lease_name IS NOT NULL")
            elif key == "allocation_image_id":
                where.append("image=? AND lease_face='metal'")
                params.append(value)
            elif key == "nics_mac_addresses":
                if len(value) > 1:
                    where.append("0")
                elif value:
                    where.append("mac=?")
                    params.append(str(value[0]).lower())
            elif key == "network_ips":
                for ip in value:
                    where.append("id IN (SELECT machine_id FROM ips WHERE address=?)")
                    params.append(str(ip))
            elif key == "allocation_role":
                where.append("lease_name IS NOT NULL" if value == "machine" else "0")
            elif key == "allocation_succeeded":
                where.append("0" if value else "lease_name IS NOT NULL")
            elif key == "name":
                where.append("'' = ?")
                params.append(value)
            else:
                rest[key] = value
        machines = self.pool.machines(" AND ".join(where), params)
        out = self._render_many(machines)
        if rest:
            out = [r for r in out if _matches(r, rest)]
        return 200, out

    def h_machine_allocate(self, request):
        body = self._body(request, "MachineAllocateRequest")
        cat = self.catalog()
        networks = body.get("networks")
        if networks is None:
            raise ApiError(400, "network ids cannot be nil")
        if not networks:
            raise ApiError(400, "network ids cannot be empty")
        for n in networks:
            if not isinstance(n, dict) or not isinstance(n.get("networkid", ""), str):
                raise ApiError(400, "json: cannot unmarshal %s into Go struct field MachineAllocateRequest.networks"
                               " of type v1.MachineAllocationNetwork" % _json_type(n))
        image = self._resolve_image(cat, body.get("imageid") or "")
        if image is None:
            raise ApiError(400, "NotFound no image for id:%s found" % (body.get("imageid") or ""))
        if "machine" not in image.get("features", []):
            raise ApiError(400, "given image is not usable for a machine, features: %s"
                           % ", ".join(image.get("features", [])))
        mid = body.get("uuid") or ""
        partition = body.get("partitionid") or ""
        size = body.get("sizeid") or ""
        if not mid and not partition:
            raise ApiError(400, "when no machine id is given, a partition id must be specified")
        if not mid and not size:
            raise ApiError(400, "when no machine id is given, a size id must be specified")
        target = None
        if mid:
            target = self.pool.get(mid)
            if target is None or target["id"] != mid:
                raise ApiError(400, 'uuid given but no machine found with uuid:%s err:NotFound no machine with id'
                               ' "%s" found' % (mid, mid))
            size, partition = target["size"], target["partition"]
        if size not in cat["sizes"]:
            raise ApiError(400, 'size:%s not found err:NotFound no size with id "%s" found' % (size, size))
        if partition not in cat["partitions"]:
            raise ApiError(400, 'partition:%s not found err:NotFound no partition with id "%s" found'
                           % (partition, partition))
        project = body.get("projectid") or ""
        if not project:
            raise ApiError(422, "project id must be specified")
        if project not in cat["projects"]:
            raise ApiError(404, "NotFound project with id %s not found" % project)
        for ip in body.get("ips") or []:
            try:
                ipaddress.ip_address(ip)
            except (ValueError, TypeError):
                raise ApiError(422, '"%s" is not a valid IP address' % (ip,))
        keys = body.get("ssh_pub_keys") or []
        for key in keys:
            if not _valid_ssh_key(key):
                raise ApiError(422, "invalid public SSH key: %s error:ssh: no key found" % (key,))
        ids = [n.get("networkid") for n in networks]
        if len(set(ids)) != len(ids):
            raise ApiError(422, "given network ids are not unique")
        nets = []
        for n in networks:
            net = cat["networks"].get(n.get("networkid"))
            if net is None:
                raise ApiError(422, 'unable to gather networks:NotFound no network with id "%s" found'
                               % n.get("networkid"))
            if net.get("privatesuper"):
                raise ApiError(422, "unable to gather networks:private super networks are not allowed to be set"
                               " explicitly: %s" % net["id"])
            nets.append((net, n.get("autoacquire", True)))
        private = [net for net, _ in nets if net.get("projectid")]
        if not private:
            raise ApiError(422, "unable to gather networks:no private network given")
        if len(private) > 1:
            raise ApiError(422, "unable to gather networks:machines are not allowed to be placed into multiple"
                           " private networks")
        if private[0]["projectid"] != project:
            raise ApiError(422, "unable to gather networks:the given private network does not belong to the"
                           " project, which is not allowed")
        if any(not auto for _, auto in nets) and not body.get("ips"):
            raise ApiError(422, "missing ip(s) for network(s) without automatic ip allocation")
        user = {"view": "metal-view", "edit": "metal-edit", "admin": "metal-admin"}.get(request.environ.get("fleetlab.role"), "")
        lease = {
            "name": body.get("name") or "", "owner": project, "project": project,
            "hostname": body.get("hostname") if body.get("hostname") is not None else "metal",
            "image": image["id"], "description": body.get("description") or "",
            "ssh_pub_keys": keys, "user_data": body.get("user_data") or "",
            "tags": _dedupe_tags(body.get("tags") or []),
            "networks": [{"networkid": net["id"], "autoacquire": bool(auto)} for net, auto in nets],
            "dns_servers": body.get("dns_servers") or [], "ntp_servers": body.get("ntp_servers") or [],
            "placement_tags": body.get("placement_tags") or [],
            "creator": "%s@metal-stack.io" % user if user else "bearer",
            "allocationuuid": str(uuid.uuid4()), "reinstall": False,
        }
        with self.pool.tx() as conn:
            if target is not None:
                cur = self.pool.get(target["id"], conn)
                if cur["lease_name"] is not None:
                    raise ApiError(422, "machine is already allocated")
                self.pool.lease(cur["id"], lease, "metal", conn=conn)
                machine_id = cur["id"]
            else:
                try:
                    machine_id = self.pool.allocate(partition, size, lease, "metal",
                                                    rack_spread_project=project, conn=conn)
                except P.PoolError as e:
                    raise ApiError(422, e.message)
            primary = None
            requested = list(body.get("ips") or [])
            for net, auto in nets:
                if requested:
                    for ip in list(requested):
                        if any(ipaddress.ip_address(ip) in ipaddress.ip_network(p) for p in net["prefixes"]):
                            if not self.pool.take_ip(conn, ip, net["id"], machine_id):
                                raise ApiError(422, 'given ip "%s" is not available for direct attachment to'
                                               ' machine because it is already in use' % ip)
                            requested.remove(ip)
                            if net.get("projectid") and primary is None:
                                primary = ip
                            break
                    else:
                        if not auto:
                            continue
                if auto and not self.pool.has_ip(conn, machine_id=machine_id, network_id=net["id"]):
                    try:
                        addr = self.pool.assign_ip(conn, machine_id, net["id"], net["prefixes"][0])
                    except P.PoolError as e:
                        raise ApiError(422, "unable to allocate an ip in network: %s %s" % (net["id"], e.message))
                    if net.get("projectid") and primary is None:
                        primary = addr
            if requested:
                raise ApiError(422, 'given ip "%s" is not in any of the given networks, which is required'
                               % requested[0])
            asn = C.ASN_BASE + int(self.pool.leased_count("metal", conn))
            self.pool.update_lease(machine_id, {"address": primary, "asn": asn}, conn=conn)
        m = self.pool.get(machine_id)
        self.driver.provision(m)
        return 200, self._render_many([m])[0]

    def h_machine_free(self, request, id):
        m = self._one(id)
        if m["mstate"] == "LOCKED":
            raise ApiError(422, "machine is locked")
        with self.pool.tx() as conn:
            m = self.pool.get(id, conn)
            if m["lease_name"] is not None:
                self.pool.release(id, conn=conn)
            # metal-api answers before the reclaim event is stored
            resp = self._render_many([self.pool.get(id, conn)])[0]
            self.pool.reclaim(id, conn=conn)
        self.driver.wipe(self.pool.get(id))
        return 200, resp

    def h_machine_reinstall(self, request, id):
        body = self._body(request, "MachineReinstallRequest")
        m = self._one(id)
        image = self._resolve_image(self.catalog(), body.get("imageid") or "")
        if m["lease_name"] is None or m["mstate"] == "LOCKED" or image is None or \
                "machine" not in image.get("features", []):
            raise ApiError(400, "machine either locked, not allocated yet or invalid image ID specified")
        m = self.pool.update_lease(id, {"image": image["id"], "reinstall": True})
        self.driver.reinstall(m)
        return 200, self._render_one(id)

    def h_machine_power(self, request, id, action):
        if action not in POWER_ACTIONS:
            raise ApiError(404, "404: Page Not Found")
        self._body(request, "EmptyBody", allow_empty=True)
        m = self._one(id)
        if action.startswith("chassis-identify-led-"):
            value = "LED-ON" if action.endswith("-on") else "LED-OFF"
            self.pool.set_columns(id, led=value, led_description=request.args.get("description", ""))
            return 200, self._render_one(id)
        if action in ("off", "reset", "cycle"):
            self.pool.add_event(id, P.EV_PLANNED_REBOOT, action.upper())
        if action == "off":
            self.pool.set_columns(id, power="off", last_seen=time.time())
        elif action in ("on", "reset", "cycle"):
            self.pool.set_columns(id, power="on")
        self.driver.power(self.pool.get(id), action)
        return 200, self._render_one(m["id"])

    def h_machine_state(self, request, id):
        body = self._body(request, "MachineState")
        self._one(id)
        value = body.get("value") or ""
        if value == "TAINTED":
            value = "RESERVED"
        if value not in ("", "RESERVED", "LOCKED"):
            raise ApiError(400, 'unknown MachineState: "%s"' % value)
        if value and not body.get("description"):
            raise ApiError(400, "you must supply a description")
        user = {"view": "metal-view", "edit": "metal-edit", "admin": "metal-admin"}.get(request.environ.get("fleetlab.role"), "")
        self.pool.set_columns(id, mstate=value, mstate_description=body.get("description") or "",
                              mstate_issuer=("%s@metal-stack.io" % user) if value else "")
        return 200, self._render_one(id)

    def h_machine_update(self, request):
        body = self._body(request, "MachineUpdateRequest")
        mid = body.get("id") or ""
        m = self._one(mid)
        if m["lease_name"] is None:
            raise ApiError(400, "only allocated machines can be updated")
        changes = {}
        if body.get("description") is not None:
            changes["description"] = body["description"]
        if body.get("tags") is not None:
            changes["tags"] = _dedupe_tags(body["tags"])
        if body.get("ssh_pub_keys") is not None:
            changes["ssh_pub_keys"] = body["ssh_pub_keys"]
        self.pool.update_lease(mid, changes)
        return 200, self._render_one(mid)

    # -- catalogue endpoints -------------------------------------------------------------------
    def _get(self, kind, id, render):
        entry = self.catalog()[kind].get(id)
        if entry is None:
            raise ApiError(404, 'NotFound no %s with id "%s" found' % (kind[:-1], id))
        return 200, render(entry)

    def h_size_list(self, request):
        return 200, [self._stamp(s) for s in self.catalog()["sizes"].values()]

    def h_size_get(self, request, id):
        return self._get("sizes", id, self._stamp)

    def h_image_list(self, request):
        return 200, [self._image_resp(i) for i in self.catalog()["images"].values()]

    def h_image_get(self, request, id):
        image = self._resolve_image(self.catalog(), id)
        if image is None:
            raise ApiError(404, "NotFound no image for id:%s found" % id)
        return 200, self._image_resp(image)

    def h_image_find(self, request):
        body = self._body(request, "FindByIdRequest")
        out = []
        for i in self.catalog()["images"].values():
            if body.get("id") is not None and i["id"] != body["id"]:
                continue
            if body.get("name") is not None and i["name"] != body["name"]:
                continue
            if body.get("classification") is not None and i["classification"] != body["classification"]:
                continue
            if body.get("features") and not set(body["features"]) <= set(i["features"]):
                continue
            out.append(self._image_resp(i))
        return 200, out

    def h_image_create(self, request):
        body = self._body(request, "ImageCreateRequest")
        iid = body.get("id") or ""
        if not iid or not body.get("url"):
            raise ApiError(400, "image id and url must be given")
        features = body.get("features") or ["machine"]
        if not set(features) <= {"machine", "firewall"}:
            raise ApiError(400, "image feature %s is not supported" % ",".join(features))
        expires = time.time() + 90 * 86400
        if body.get("expirationDate"):
            try:
                expires = parse_rfc3339(body["expirationDate"])
            except ValueError:
                raise ApiError(400, "parsing time %r: invalid expirationDate" % body["expirationDate"])
        with self.pool.tx() as conn:
            cat = self.catalog()
            if iid in cat["images"]:
                raise ApiError(409, "Conflict cannot create image in database, entity already exists: %s" % iid)
            entry = C._image(iid, features=features, classification=body.get("classification") or "preview",
                             expires=expires)
            entry.update({"name": body.get("name") or entry["name"], "url": body["url"],
                          "description": body.get("description") or "", "created": time.time(),
                          "changed": time.time()})
            cat["images"][iid] = entry
            self.pool.kv_set("metal.catalog", cat, conn)
        return 201, self._image_resp(entry)

    def h_size_create(self, request):
        body = self._body(request, "SizeCreateRequest")
        sid = body.get("id") or ""
        if not sid:
            raise ApiError(400, "size id must be given")
        with self.pool.tx() as conn:
            cat = self.catalog()
            if sid in cat["sizes"]:
                raise ApiError(409, "Conflict cannot create size in database, entity already exists: %s" % sid)
            entry = C._size(sid, created=time.time())
            entry.update({"name": body.get("name") or sid, "description": body.get("description") or "",
                          "labels": body.get("labels") or {}})
            if body.get("constraints"):
                entry["constraints"] = body["constraints"]
            cat["sizes"][sid] = entry
            self.pool.kv_set("metal.catalog", cat, conn)
        return 201, self._stamp(entry)

    def h_partition_list(self, request):
        return 200, [self._stamp(p) for p in self.catalog()["partitions"].values()]

    def h_partition_get(self, request, id):
        return self._get("partitions", id, self._stamp)

    def h_partition_capacity(self, request):
        body = self._body(request, "PartitionCapacityRequest")
        cat = self.catalog()
        rows = self.pool.capacity()
        parts = {}
        for part, size, state, leased, mstate, power, n in rows:
            if body.get("id") and part != body["id"]:
                continue
            if body.get("sizeid") and size != body["sizeid"]:
                continue
            s = parts.setdefault(part, {}).setdefault(size, {
                "size": size, "total": 0, "allocated": 0, "allocatable": 0, "free": 0, "faulty": 0,
                "faultymachines": [], "unavailable": 0, "waiting": 0, "phoned_home": 0, "other": 0,
                "othermachines": [], "reservations": 0, "usedreservations": 0, "remainingreservations": 0})
            s["total"] += n
            if leased:
                s["allocated"] += n
            if state == P.UNLEASED:
                s["waiting"] += n
            elif state == P.PROVISIONED:
                s["phoned_home"] += n
            else:
                s["other"] += n
            if state == P.UNLEASED and not leased and mstate == "" and power == "on":
                s["allocatable"] += n
                s["free"] += n
            elif not leased:
                s["unavailable"] += n
        out = []
        for part, sizes in sorted(parts.items()):
            p = cat["partitions"].get(part, {"id": part, "name": part, "description": ""})
            out.append({"id": part, "name": p.get("name", part), "description": p.get("description", ""),
                        "servers": [sizes[k] for k in sorted(sizes)]})
        return 200, out

    def h_project_list(self, request):
        return 200, [self._project_resp(p) for p in self.catalog()["projects"].values()]

    def h_project_get(self, request, id):
        p = self.catalog()["projects"].get(id)
        if p is None:
            raise ApiError(404, "NotFound project with id %s not found" % id)
        return 200, self._project_resp(p)

    def h_project_find(self, request):
        body = self._body(request, "FindByIdRequest")
        out = []
        for p in self.catalog()["projects"].values():
            if body.get("id") is not None and p["id"] != body["id"]:
                continue
            if body.get("name") is not None and p["name"] != body["name"]:
                continue
            if body.get("tenant_id") is not None and p["tenant_id"] != body["tenant_id"]:
                continue
            out.append(self._project_resp(p))
        return 200, out

    def h_project_create(self, request):
        body = self._body(request, "ProjectCreateRequest")
        if not body.get("tenant_id"):
            raise ApiError(400, "no tenant given")
        pid = ((body.get("meta") or {}).get("id")) or str(uuid.uuid4())
        with self.pool.tx() as conn:
            cat = self.catalog()
            if pid in cat["projects"]:
                raise ApiError(409, "Conflict project with id %s already exists" % pid)
            now = time.time()
            entry = {"id": pid, "name": body.get("name") or "", "description": body.get("description") or "",
                     "tenant_id": body["tenant_id"], "created": now, "updated": now, "labels": []}
            cat["projects"][pid] = entry
            self.pool.kv_set("metal.catalog", cat, conn)
        return 201, self._project_resp(entry)

    def h_network_list(self, request):
        return 200, [self._network_resp(n) for n in self.catalog()["networks"].values()]

    def h_network_get(self, request, id):
        return self._get("networks", id, self._network_resp)

    def h_network_find(self, request):
        body = self._body(request, "FindByIdRequest")
        out = []
        for n in self.catalog()["networks"].values():
            ok = True
            for key in ("id", "name", "partitionid", "projectid", "parentnetworkid", "nat", "privatesuper",
                        "underlay", "vrf"):
                if body.get(key) is not None and n.get(key, "" if key not in ("nat", "privatesuper", "underlay")
                                                         else False) != body[key]:
                    ok = False
            if body.get("prefixes") and not set(body["prefixes"]) <= set(n["prefixes"]):
                ok = False
            if ok:
                out.append(self._network_resp(n))
        return 200, out

    def h_network_allocate(self, request):
        """A private child network of the partition's private super network for a project (/22 by
        default, carved from the lab network)."""
        body = self._body(request, "NetworkAllocateRequest")
        project = body.get("projectid") or ""
        partition = body.get("partitionid") or ""
        if not project:
            raise ApiError(400, "projectid should not be empty")
        if not partition:
            raise ApiError(400, "partitionid should not be empty")
        cat = self.catalog()
        if project not in cat["projects"]:
            raise ApiError(404, "NotFound project with id %s not found" % project)
        if partition not in cat["partitions"]:
            raise ApiError(404, 'NotFound no partition with id "%s" found' % partition)
        length = (body.get("length") or {}).get("IPv4", 22)
        if not isinstance(length, int) or isinstance(length, bool):
            raise ApiError(400, "json: cannot unmarshal into Go struct field NetworkAllocateRequest.length")
        with self.pool.tx() as conn:
            cat = self.catalog()
            supers = [n for n in cat["networks"].values() if n.get("privatesuper")]
            if not supers:
                raise ApiError(400, "no supernetwork found")
            sup = supers[0]
            parent = ipaddress.ip_network(sup["prefixes"][0])
            if length <= parent.prefixlen or length > 30:
                raise ApiError(422, "given length %d is not valid for super network %s" % (length, parent))
            taken = [ipaddress.ip_network(p) for n in cat["networks"].values()
                     if n.get("parentnetworkid") == sup["id"] and n["id"] != C.PRIVATE_NETWORK
                     for p in n["prefixes"]]
            # skip the first child: the built-in user-private-network hands out its low addresses
            candidates = list(parent.subnets(new_prefix=length))[1:]
            free = next((c for c in candidates if not any(c.overlaps(t) for t in taken)), None)
            if free is None:
                raise ApiError(422, "no free prefix of length %d in %s" % (length, parent))
            nid = str(uuid.uuid4())
            vrf = 30 + len([n for n in cat["networks"].values() if n.get("parentnetworkid")])
            entry = {"id": nid, "name": body.get("name") or "", "description": body.get("description") or "",
                     "partitionid": partition, "projectid": project, "parentnetworkid": sup["id"],
                     "prefixes": [str(free)], "destinationprefixes": body.get("destinationprefixes") or [],
                     "nat": bool(body.get("nat")), "privatesuper": False, "underlay": False,
                     "shared": bool(body.get("shared")), "vrf": vrf, "labels": body.get("labels") or {}}
            cat["networks"][nid] = entry
            self.pool.kv_set("metal.catalog", cat, conn)
        return 201, self._network_resp(entry)

    def h_network_free(self, request, id):
        with self.pool.tx() as conn:
            cat = self.catalog()
            n = cat["networks"].get(id)
            if n is None:
                raise ApiError(404, 'NotFound no network with id "%s" found' % id)
            if not n.get("parentnetworkid") or id == C.PRIVATE_NETWORK:
                raise ApiError(422, "only allocated child networks can be freed")
            if self.pool.has_ip(conn, network_id=id):
                raise ApiError(422, "cannot release child prefix %s because IPs in the prefix are still in use"
                               % n["prefixes"][0])
            del cat["networks"][id]
            self.pool.kv_set("metal.catalog", cat, conn)
        return 200, self._network_resp(n)

    def h_fsl_list(self, request):
        return 200, []


def _dedupe_tags(tags):
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


def _valid_ssh_key(line):
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


def _matches(mr, filters):
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
