"""The API server double's objects: discovery, OpenAPI v3 stubs, and get / list / create / patch /
delete / eviction of the kinds below, as the real kubectl sends them (TEST DOUBLE side).

What it does as the real API server does: the REST paths (namespaced and cluster-scoped, group or
core), 404/409/422 Status replies with ``details``, ``dryRun=All``, ``fieldValidation`` (Strict
refuses unknown top-level and metadata fields, Warn answers with a ``Warning`` header), the four
patch types but JSON patch (server-side apply with per-manager field ownership and conflicts,
JSON merge patch, strategic merge patch of maps), field and label selectors, namespaces that must
exist (and take their objects with them when deleted), pods evicted through ``pods/eviction``
under PodDisruptionBudgets.

What it does not (and refuses, rather than pretending): watches, JSON patch, strategic-merge
directives (``$patch``, ``$setElementOrder``...; lists are replaced whole), schemas below the top
level, controllers (a DaemonSet makes no pods; pods are objects that nothing runs).
"""
import copy
import datetime
import hashlib
import json
import os
import re

import yaml

# (group, version, plural, kind, namespaced, short names, top-level fields besides apiVersion/kind/metadata)
KINDS = [
    ("", "v1", "namespaces", "Namespace", False, ["ns"], ("spec", "status")),
    ("", "v1", "configmaps", "ConfigMap", True, ["cm"], ("data", "binaryData", "immutable")),
    ("", "v1", "serviceaccounts", "ServiceAccount", True, ["sa"],
     ("secrets", "imagePullSecrets", "automountServiceAccountToken")),
    ("", "v1", "services", "Service", True, ["svc"], ("spec", "status")),
    ("", "v1", "pods", "Pod", True, ["po"], ("spec", "status")),
    ("apps", "v1", "daemonsets", "DaemonSet", True, ["ds"], ("spec", "status")),
    ("apps", "v1", "deployments", "Deployment", True, ["deploy"], ("spec", "status")),
    ("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False, [], ("rules", "aggregationRule")),
    ("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False, [],
     ("subjects", "roleRef")),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role", True, [], ("rules",)),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True, [], ("subjects", "roleRef")),
    ("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", True, ["pdb"], ("spec", "status")),
]
# resources the API server serves by hand (apiserver.py), listed in discovery with their verbs
SPECIAL = [
    ("", "v1", {"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node",
                "verbs": ["delete", "get", "list", "patch"], "shortNames": ["no"]}),
    ("", "v1", {"name": "nodes/status", "singularName": "", "namespaced": False, "kind": "Node",
                "verbs": ["get", "patch", "update"]}),
    ("", "v1", {"name": "secrets", "singularName": "secret", "namespaced": True, "kind": "Secret",
                "verbs": ["create", "get", "list", "update"]}),
    ("", "v1", {"name": "pods/eviction", "singularName": "", "namespaced": True, "kind": "Eviction",
                "group": "policy", "version": "v1", "verbs": ["create"]}),
    ("certificates.k8s.io", "v1", {"name": "certificatesigningrequests", "singularName": "certificatesigningrequest",
                                   "namespaced": False, "kind": "CertificateSigningRequest",
                                   "verbs": ["create"], "shortNames": ["csr"]}),
]
VERBS = ["create", "delete", "get", "list", "patch"]
BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
METADATA_FIELDS = {"name", "generateName", "namespace", "labels", "annotations", "uid", "resourceVersion",
                   "generation", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                   "ownerReferences", "finalizers", "managedFields", "selfLink"}
SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
APPLY, MERGE, STRATEGIC = ("application/apply-patch+yaml", "application/merge-patch+json",
                           "application/strategic-merge-patch+json")


class APIError(Exception):
    """A Status reply: code, reason, message (and the object's name and kind in its details)."""

    def __init__(self, code, reason, message, name=None, kind=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.name, self.kind = code, reason, message, name, kind

    def status(self):
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.name is not None or self.kind is not None:
            body["details"] = {"name": self.name or "", "kind": self.kind or ""}
        return body


class Kind:
    def __init__(self, group, version, plural, kind, namespaced, short, fields):
        self.group, self.version, self.plural, self.kind = group, version, plural, kind
        self.namespaced, self.short, self.fields = namespaced, short, set(fields)
        self.api_version = "%s/%s" % (group, version) if group else version

    def resource(self):
        return {"name": self.plural, "singularName": self.kind.lower(), "namespaced": self.namespaced,
                "kind": self.kind, "verbs": VERBS, "shortNames": self.short}


BY_PLURAL = {(k[0], k[1], k[2]): Kind(*k) for k in KINDS}
BY_KIND = {(k.api_version, k.kind): k for k in BY_PLURAL.values()}


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _group_versions():
    gvs = {}
    for group, version, plural in BY_PLURAL:
        gvs.setdefault((group, version), []).append(BY_PLURAL[(group, version, plural)].resource())
    for group, version, resource in SPECIAL:
        gvs.setdefault((group, version), []).append(resource)
    return gvs


# --- discovery and OpenAPI -----------------------------------------------------------------------
def discovery(path):
    """The legacy discovery documents (kubectl falls back to them from aggregated discovery)."""
    gvs = _group_versions()
    if path == "/apis":
        groups = sorted({g for g, _v in gvs if g})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": g, "versions": [{"groupVersion": "%s/%s" % (g, v), "version": v}
                                     for gg, v in sorted(gvs) if gg == g],
             "preferredVersion": {"groupVersion": "%s/v1" % g, "version": "v1"}} for g in groups]}
    match = re.match(r"^/(?:api/(v1)|apis/([^/]+)/([^/]+))$", path)
    if not match:
        return None
    group, version = (match.group(2) or "", match.group(3) or match.group(1))
    if (group, version) not in gvs:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": "%s/%s" % (group, version) if group else version,
            "resources": sorted(gvs[(group, version)], key=lambda r: r["name"])}


def _openapi_doc(group, version):
    paths = {}
    for kind in BY_PLURAL.values():
        if (kind.group, kind.version) != (group, version):
            continue
        base = "/api/v1" if not group else "/apis/%s/%s" % (group, version)
        item = base + ("/namespaces/{namespace}/" if kind.namespaced else "/") + kind.plural + "/{name}"
        gvk = {"group": group, "version": version, "kind": kind.kind}
        query = [{"name": n, "in": "query", "schema": {"type": "string"}}
                 for n in ("dryRun", "fieldManager", "fieldValidation", "force")]
        # kubectl reads the query parameters of the PATCH operation itself
        paths[item] = {"get": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "get"},
                       "patch": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "patch",
                                 "parameters": query},
                       "delete": {"x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "delete",
                                  "parameters": query[:1]}}
        paths[item.rsplit("/", 1)[0]] = {"post": {"x-kubernetes-group-version-kind": gvk,
                                                  "x-kubernetes-action": "post", "parameters": query[:3]}}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes (fleetlab API server double)", "version": "v1"},
            "paths": paths, "components": {"schemas": {}}}


def openapi(path):
    """``/openapi/v3`` and its group-version documents: paths and the query parameters each accepts
    (what kubectl reads to know that the server validates fields itself), no schemas."""
    gvs = sorted({(k.group, k.version) for k in BY_PLURAL.values()})
    if path == "/openapi/v3":
        listing = {}
        for group, version in gvs:
            rel = "api/v1" if not group else "apis/%s/%s" % (group, version)
            digest = hashlib.sha256(json.dumps(_openapi_doc(group, version), sort_keys=True).encode()).hexdigest()
            listing[rel] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s" % (rel, digest[:32].upper())}
        return {"paths": listing}
    for group, version in gvs:
        rel = "/openapi/v3/" + ("api/v1" if not group else "apis/%s/%s" % (group, version))
        if path == rel:
            return _openapi_doc(group, version)
    return None


# --- paths ----------------------------------------------------------------------------------------
PATH_RE = re.compile(r"^/(?:api/(?P<core>v1)|apis/(?P<group>[^/]+)/(?P<version>[^/]+))"
                     r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<plural>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$")


def resolve(path):
    """(Kind, namespace, name, subresource) for an object path; None when it names none of the KINDS."""
    match = PATH_RE.match(path)
    if not match:
        return None
    group, version = (match.group("group") or "", match.group("version") or match.group("core"))
    ns, plural, name, sub = match.group("ns"), match.group("plural"), match.group("name"), match.group("sub")
    kind = BY_PLURAL.get((group, version, plural))
    if kind is None:
        return None
    if ns is not None and not kind.namespaced:
        return None
    return kind, ns, name, sub


def key_of(kind, ns, name):
    return "%s/%s/%s/%s" % (kind.api_version, kind.kind, ns or "", name)


# --- helpers --------------------------------------------------------------------------------------
def _next_rv(state):
    state["rv"] = state.get("rv", 1) + 1
    return str(state["rv"])


def _leaves(value, prefix=()):
    """Field paths of an object's content (maps are descended into, an empty one owns nothing; a
    list is one field)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_leaves(v, prefix + (k,)))
        return out
    return {prefix: value}


def _owners(managers):
    return {name: (m["operation"], m["paths"]) for name, m in managers.items()}


def _count(value, total):
    """An int, or a percentage of total (rounded up, as the disruption controller does)."""
    if isinstance(value, str) and value.endswith("%"):
        return -(-int(value[:-1]) * total // 100)
    return int(value)


def _content(obj):
    """What a manager can own: everything but apiVersion, kind, status and the server's metadata."""
    body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items()
            if k not in SERVER_METADATA + ("name", "namespace")}
    body["metadata"] = meta
    return body


def _set_path(obj, path, value):
    for part in path[:-1]:
        obj = obj.setdefault(part, {})
    obj[path[-1]] = copy.deepcopy(value)


def _del_path(obj, path):
    chain = [obj]
    for part in path[:-1]:
        if not isinstance(chain[-1].get(part), dict):
            return
        chain.append(chain[-1][part])
    chain[-1].pop(path[-1], None)
    for depth in range(len(chain) - 1, 0, -1):  # drop maps the removal emptied
        if not chain[depth]:
            chain[depth - 1].pop(path[depth - 1], None)


def _fields_v1(paths):
    tree = {}
    for path in paths:
        node = tree
        for part in path:
            node = node.setdefault("f:" + part, {})
    return tree


def _managed_fields(entry):
    return [{"manager": name, "operation": m["operation"], "apiVersion": entry["object"]["apiVersion"],
             "time": m["time"], "fieldsType": "FieldsV1", "fieldsV1": _fields_v1(tuple(p) for p in m["paths"])}
            for name, m in sorted(entry["managers"].items())]


def _merge_patch(target, patch, strategic):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if strategic and key.startswith("$"):
            raise APIError(422, "Invalid", "this API server double applies strategic merge patches of maps only: "
                                           "directive %r is not supported (use server-side apply)" % key)
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value, strategic)
    return result


def label_match(labels, selector):
    for term in [t.strip() for t in (selector or "").split(",") if t.strip()]:
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k.strip()) == v.strip():
                return False
        elif "==" in term or "=" in term:
            k, v = re.split("==?", term, maxsplit=1)
            if labels.get(k.strip()) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif not re.match(r"^[A-Za-z0-9./_-]+$", term):
            raise APIError(400, "BadRequest", "unable to parse requirement: %r (this double takes =, ==, != "
                                              "and existence terms)" % term)
        elif term not in labels:
            return False
    return True


FIELD_LABELS = {"metadata.name": lambda o: o["metadata"]["name"],
                "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
                "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName", ""),
                "status.phase": lambda o: (o.get("status") or {}).get("phase", "")}


def field_match(obj, selector, kind_name):
    for term in [t.strip() for t in (selector or "").split(",") if t.strip()]:
        negate = "!=" in term
        field, _sep, value = term.partition("!=" if negate else "=")
        field, value = field.strip(), value.lstrip("=").strip()
        allowed = ("metadata.name", "metadata.namespace") + (("spec.nodeName", "status.phase")
                                                             if kind_name == "Pod" else ())
        if field not in allowed:
            raise APIError(400, "BadRequest", 'field label not supported: %s' % field)
        if (FIELD_LABELS[field](obj) == value) == negate:
            return False
    return True


def _check_fields(kind, obj, mode):
    """Unknown top-level or metadata fields: refused (Strict), reported (Warn) or ignored."""
    unknown = ['unknown field "%s"' % k for k in obj if k not in kind.fields | {"apiVersion", "kind", "metadata"}]
    unknown += ['unknown field "metadata.%s"' % k for k in (obj.get("metadata") or {}) if k not in METADATA_FIELDS]
    if unknown and mode == "Strict":
        raise APIError(400, "BadRequest", "strict decoding error: " + ", ".join(unknown))
    return unknown if mode in ("Warn", None) else []


def _check_identity(kind, obj, ns, name):
    if not isinstance(obj, dict):
        raise APIError(400, "BadRequest", "the body of the request is not an object")
    if obj.get("apiVersion") != kind.api_version or obj.get("kind") != kind.kind:
        raise APIError(400, "BadRequest", "the API version in the data (%s) and the kind (%s) do not match the "
                                          "path (%s, %s)" % (obj.get("apiVersion"), obj.get("kind"),
                                                             kind.api_version, kind.kind))
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        raise APIError(422, "Invalid", "%s is invalid: metadata.name: Required value: name is required"
                       % kind.kind, kind=kind.kind)
    if name is not None and meta["name"] != name:
        raise APIError(400, "BadRequest", "the name of the object (%s) does not match the name on the URL (%s)"
                       % (meta["name"], name))
    if not NAME_RE.match(meta["name"]):
        raise APIError(422, "Invalid", '%s "%s" is invalid: metadata.name: Invalid value: "%s": a lowercase RFC '
                       "1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'"
                       % (kind.kind, meta["name"], meta["name"]), name=meta["name"], kind=kind.plural)
    if kind.namespaced:
        if meta.get("namespace") not in (None, ns):
            raise APIError(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                                              "sent on the request")
    elif meta.get("namespace"):
        raise APIError(400, "BadRequest", "%s is not namespaced" % kind.kind)


def _check_namespace(state, kind, ns):
    if kind.namespaced and ns not in BUILTIN_NAMESPACES \
            and key_of(BY_KIND[("v1", "Namespace")], None, ns) not in state.get("objects", {}):
        raise APIError(404, "NotFound", 'namespaces "%s" not found' % ns, name=ns, kind="namespaces")


def _dry_run(query):
    values = query.get("dryRun", [])
    if any(v != "All" for v in values):
        raise APIError(400, "BadRequest", "Invalid dry run value; accepted values are: [All]")
    return bool(values)


def _validation(query):
    mode = (query.get("fieldValidation") or [None])[0]
    if mode not in (None, "Strict", "Warn", "Ignore"):
        raise APIError(400, "BadRequest", 'fieldValidation must be one of "Ignore", "Warn" or "Strict", not %r'
                       % mode)
    return mode


# --- verbs ----------------------------------------------------------------------------------------
class Objects:
    """One request's work on the state's ``objects`` section; the reply is (code, body, warnings)."""

    def __init__(self, state, query):
        self.state, self.query = state, query
        self.objects = state.setdefault("objects", {})
        self.warnings = []

    def _entry(self, kind, ns, name):
        entry = self.objects.get(key_of(kind, ns, name))
        if entry is None:
            raise APIError(404, "NotFound", '%s "%s" not found' % (kind.plural, name), name=name, kind=kind.plural)
        return entry

    def _shown(self, entry):
        obj = copy.deepcopy(entry["object"])
        obj["metadata"]["managedFields"] = _managed_fields(entry)
        return obj

    def get(self, kind, ns, name):
        return 200, self._shown(self._entry(kind, ns, name))

    def list(self, kind, ns):
        if self.query.get("watch", ["false"])[0] in ("1", "true"):
            raise APIError(405, "MethodNotAllowed", "this API server double does not serve watches")
        fields, labels = (self.query.get("fieldSelector") or [""])[0], (self.query.get("labelSelector") or [""])[0]
        items = []
        for key in sorted(self.objects):
            entry = self.objects[key]
            obj = entry["object"]
            if entry["kind"] != kind.kind or obj["apiVersion"] != kind.api_version:
                continue
            if ns is not None and obj["metadata"].get("namespace") != ns:
                continue
            if field_match(obj, fields, kind.kind) and label_match(obj["metadata"].get("labels") or {}, labels):
                items.append(self._shown(entry))
        return 200, {"kind": kind.kind + "List", "apiVersion": kind.api_version,
                     "metadata": {"resourceVersion": str(self.state.get("rv", 1))}, "items": items}

    def _store(self, kind, ns, obj, managers, old=None):
        """Write obj (already merged) with server metadata; the resourceVersion moves only on a change."""
        meta = obj["metadata"]
        meta.pop("managedFields", None)
        if kind.namespaced:
            meta["namespace"] = ns
        if old is None:
            meta.update({"uid": os.urandom(16).hex(), "creationTimestamp": now_iso(), "generation": 1})
        else:
            for field in ("uid", "creationTimestamp", "generation", "resourceVersion"):
                meta[field] = old["object"]["metadata"][field]
            if "status" in old["object"] and "status" not in obj:
                obj["status"] = old["object"]["status"]
            if _content(obj) == _content(old["object"]) and _owners(managers) == _owners(old["managers"]):
                return old  # a no-op: nothing written, the resourceVersion stays
            if {k: v for k, v in obj.items() if k not in ("metadata", "status")} != \
                    {k: v for k, v in old["object"].items() if k not in ("metadata", "status")}:
                meta["generation"] = meta["generation"] + 1
        entry = {"kind": kind.kind, "object": obj, "managers": managers}
        if not _dry_run(self.query):
            meta["resourceVersion"] = _next_rv(self.state)
            self.objects[key_of(kind, ns, meta["name"])] = entry
        return entry

    def create(self, kind, ns, body):
        _dry_run(self.query)
        _check_identity(kind, body, ns, None)
        self.warnings += _check_fields(kind, body, _validation(self.query))
        _check_namespace(self.state, kind, ns)
        name = body["metadata"]["name"]
        if key_of(kind, ns, name) in self.objects:
            raise APIError(409, "AlreadyExists", '%s "%s" already exists' % (kind.plural, name), name=name,
                           kind=kind.plural)
        manager = (self.query.get("fieldManager") or ["unknown"])[0]
        obj = copy.deepcopy(body)
        obj.pop("status", None)
        paths = sorted(list(p) for p in _leaves(_content(obj)))
        entry = self._store(kind, ns, obj, {manager: {"operation": "Update", "time": now_iso(), "paths": paths}})
        return 201, self._shown(entry)

    def patch(self, kind, ns, name, content_type, raw):
        _dry_run(self.query)
        mode = _validation(self.query)
        content_type = (content_type or "").split(";")[0].strip()
        if content_type == APPLY:
            return self._apply(kind, ns, name, raw, mode)
        if content_type not in (MERGE, STRATEGIC):
            raise APIError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                                                        "accepted media types include: %s, %s, %s (this double "
                                                        "does not implement JSON patch)" % (MERGE, STRATEGIC, APPLY))
        try:
            patch = json.loads(raw or b"{}")
        except ValueError as exc:
            raise APIError(400, "BadRequest", "error decoding patch: %s" % exc)
        entry = self._entry(kind, ns, name)
        merged = _merge_patch(copy.deepcopy(entry["object"]), patch, strategic=content_type == STRATEGIC)
        _check_identity(kind, merged, ns, name)
        self.warnings += _check_fields(kind, merged, mode)
        manager = (self.query.get("fieldManager") or ["unknown"])[0]
        before, after = _leaves(_content(entry["object"])), _leaves(_content(merged))
        touched = {p for p in after if before.get(p) != after[p]}
        managers = self._take(entry["managers"], touched, manager, "Update")
        return 200, self._shown(self._store(kind, ns, merged, managers, entry))

    @staticmethod
    def _take(managers, paths, manager, operation):
        """Give paths to manager (taking them from the others); returns the new ownership."""
        out = {}
        for name, m in managers.items():
            kept = [p for p in m["paths"] if tuple(p) not in paths]
            if name != manager and kept:
                out[name] = dict(m, paths=kept)
        mine = {tuple(p) for p in managers.get(manager, {}).get("paths", [])} if operation == "Update" else set()
        out[manager] = {"operation": operation, "time": now_iso(), "paths": sorted(list(p) for p in mine | paths)}
        return out

    def _apply(self, kind, ns, name, raw, mode):
        manager = (self.query.get("fieldManager") or [""])[0]
        if not manager:
            raise APIError(400, "BadRequest", "PATCH, application/apply-patch+yaml requests must have a fieldManager")
        force = (self.query.get("force") or ["false"])[0] == "true"
        try:
            applied = yaml.safe_load(raw or b"")
        except yaml.YAMLError as exc:
            raise APIError(400, "BadRequest", "error decoding YAML: %s" % exc)
        _check_identity(kind, applied, ns, name)
        self.warnings += _check_fields(kind, applied, mode)
        applied = copy.deepcopy(applied)
        applied.pop("status", None)
        wanted = _leaves(_content(applied))
        key = key_of(kind, ns, name)
        entry = self.objects.get(key)
        if entry is None:
            _check_namespace(self.state, kind, ns)
            managers = {manager: {"operation": "Apply", "time": now_iso(), "paths": sorted(list(p) for p in wanted)}}
            stored = self._store(kind, ns, applied, managers)
            return 201, self._shown(stored)
        current = copy.deepcopy(entry["object"])
        have = _leaves(_content(current))
        conflicts = [(other, p) for other, m in entry["managers"].items() if other != manager
                     for p in map(tuple, m["paths"]) if p in wanted and have.get(p) != wanted[p]]
        if conflicts and not force:
            raise APIError(409, "Conflict", "Apply failed with %d conflict%s: %s" % (
                len(conflicts), "" if len(conflicts) == 1 else "s",
                "; ".join('conflict with "%s": .%s' % (o, ".".join(p)) for o, p in conflicts)),
                name=name, kind=kind.plural)
        owned_before = {tuple(p) for p in entry["managers"].get(manager, {}).get("paths", [])}
        others = {tuple(p) for o, m in entry["managers"].items() if o != manager for p in m["paths"]}
        for path in owned_before - set(wanted) - others:
            _del_path(current, path)
        for path, value in wanted.items():
            _set_path(current, path, value)
        managers = self._take(entry["managers"], set(wanted), manager, "Apply")
        managers[manager]["paths"] = sorted(list(p) for p in wanted)
        return 200, self._shown(self._store(kind, ns, current, managers, entry))

    def delete(self, kind, ns, name):
        dry = _dry_run(self.query)
        entry = self._entry(kind, ns, name)
        if not dry:
            del self.objects[key_of(kind, ns, name)]
            if kind.kind == "Namespace":  # the namespace controller's work, at once
                for key in [k for k, e in self.objects.items() if e["object"]["metadata"].get("namespace") == name]:
                    del self.objects[key]
            _next_rv(self.state)
        return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                     "details": {"name": name, "kind": kind.plural, "uid": entry["object"]["metadata"]["uid"]}}

    def evict(self, ns, name, body):
        """POST pods/NAME/eviction: delete the pod unless a PodDisruptionBudget forbids it (429)."""
        pods = BY_KIND[("v1", "Pod")]
        if not isinstance(body, dict) or body.get("kind") != "Eviction" \
                or body.get("apiVersion") not in ("policy/v1", "policy/v1beta1") \
                or (body.get("metadata") or {}).get("name") != name:
            raise APIError(400, "BadRequest", "the body must be an Eviction (policy/v1) of pod %s" % name)
        pod = self._entry(pods, ns, name)["object"]
        labels = pod["metadata"].get("labels") or {}
        matching = [e["object"] for e in self.objects.values() if e["kind"] == "Pod"
                    and e["object"]["metadata"].get("namespace") == ns]
        for entry in self.objects.values():
            pdb = entry["object"]
            if entry["kind"] != "PodDisruptionBudget" or pdb["metadata"].get("namespace") != ns:
                continue
            selector = ((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
            if not all(labels.get(k) == v for k, v in selector.items()):
                continue
            covered = [p for p in matching if all((p["metadata"].get("labels") or {}).get(k) == v
                                                  for k, v in selector.items())]
            spec = pdb.get("spec") or {}
            allowed = (len(covered) - _count(spec["minAvailable"], len(covered)) if "minAvailable" in spec
                       else _count(spec.get("maxUnavailable", 1), len(covered)))
            if allowed < 1:
                raise APIError(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption "
                                                       "budget.", name=name, kind="pods")
        self.delete(pods, ns, name)
        return 201, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


# --- tables (what kubectl get prints when it asks for as=Table) ------------------------------------
def _age(created):
    """kubectl's short human duration of the time since created."""
    try:
        then = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return "<unknown>"
    s = max(0, int((datetime.datetime.now(datetime.timezone.utc) - then).total_seconds()))
    if s < 120:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm%ds" % (m, s % 60) if s % 60 else "%dm" % m
    if m < 180:
        return "%dm" % m
    h = m // 60
    if h < 8:
        return "%dh%dm" % (h, m % 60) if m % 60 else "%dh" % h
    if h < 48:
        return "%dh" % h
    return "%dd" % (h // 24)


def _node_cells(node):
    ready = [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"]
    status = {"True": "Ready", "False": "NotReady"}.get(ready[0] if ready else "", "Unknown")
    if (node.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = sorted(k.split("/", 1)[1] for k in node["metadata"].get("labels", {})
                   if k.startswith("node-role.kubernetes.io/"))
    info = node["status"].get("nodeInfo", {})
    internal = [a["address"] for a in node["status"].get("addresses", []) if a["type"] == "InternalIP"]
    return [node["metadata"]["name"], status, ",".join(roles) or "<none>", _age(node["metadata"]["creationTimestamp"]),
            info.get("kubeletVersion", ""), internal[0] if internal else "<none>", "<none>", info.get("osImage", ""),
            info.get("kernelVersion", ""), info.get("containerRuntimeVersion", "")]


_NODE_COLUMNS = [("Name", 0), ("Status", 0), ("Roles", 0), ("Age", 0), ("Version", 0), ("Internal-IP", 1),
                 ("External-IP", 1), ("OS-Image", 1), ("Kernel-Version", 1), ("Container-Runtime", 1)]


def wants_table(accept):
    return "as=Table" in (accept or "") and "g=meta.k8s.io" in (accept or "")


def table(body):
    """A Table of an object or a list, with the columns kubectl shows for nodes and NAME, AGE otherwise."""
    items = body["items"] if "items" in body else [body]
    nodes = body.get("kind") in ("Node", "NodeList")
    columns = _NODE_COLUMNS if nodes else [("Name", 0), ("Age", 0)]
    rows = []
    for obj in items:
        meta = obj["metadata"]
        cells = _node_cells(obj) if nodes else [meta["name"], _age(meta.get("creationTimestamp"))]
        rows.append({"cells": cells, "object": {
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": (body.get("metadata") or {}).get("resourceVersion", "")},
            "columnDefinitions": [{"name": name, "type": "string", "format": "name" if name == "Name" else "",
                                   "description": name, "priority": priority} for name, priority in columns],
            "rows": rows}
