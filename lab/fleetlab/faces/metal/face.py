"""The metal-api face as a WSGI app: routing, HMAC/token authentication, request decoding."""

import hashlib
import hmac
import json
import logging
import time

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from ... import catalog as C
from ... import store as P
from ...util import BodyTooLarge, dumps, parse_rfc3339, read_body
from .wire import (
    ACCESS,
    AUTH_TYPES,
    DEFAULT_KEYS,
    LIFETIMES,
    REQUEST_FIELDS,
    ROLE_RANK,
    UNAUTHENTICATED_SUFFIXES,
    ApiError,
    check_types,
    go_json_error,
    json_type,
)
from .catalogue import CatalogueMixin
from .machines import MachinesMixin
from .render import RenderMixin


class MetalFace(RenderMixin, MachinesMixin, CatalogueMixin):
    """The metal-api face: routing, authentication and request decoding; the handlers and the
    rendering come from the mixins (``machines``, ``catalogue``, ``render``)."""

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
            ("GET", "/machine/<id>/ipmi", "machine_ipmi", "view"),
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
            raise ApiError(400, go_json_error(raw.decode("utf-8", "replace"), exc))
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise ApiError(400, "json: cannot unmarshal %s into Go value of type v1.%s" % (json_type(body), struct))
        fields = REQUEST_FIELDS.get(struct)
        if fields:
            check_types(body, fields, struct)
        return body

