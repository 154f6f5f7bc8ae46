"""The plunder face as a WSGI app: discovery, server configuration, DHCP, deployments."""

import json
import logging
import threading
import time

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from ... import store as P
from ...util import BodyTooLarge, dumps, load_bounded_yaml, read_body, rfc3339nano
from .wire import (
    BOOT_CONFIG_KEYS,
    ENDPOINTS,
    HOST_CONFIG_KEYS,
    INHERITED,
    W_DEPLOY,
    W_SERVER,
    default_global_config,
    default_server_config,
    ordered,
    Refusal,
    valid_ip,
)
from .parlay import ParlayMixin


def _json_object(request, warning, error=None):
    """The request body as a JSON object, else Refusal(warning, error or the decoder's words)."""
    try:
        body = json.loads(read_body(request))
        if not isinstance(body, dict):
            raise ValueError("not an object")
    except RecursionError:
        raise Refusal(warning, error or "json: exceeded max depth")
    except ValueError as exc:
        raise Refusal(warning, error or str(exc))
    return body


class PlunderFace(ParlayMixin):
    """plunder's API server: configuration, DHCP, deployments; parlay from :class:`ParlayMixin`."""

    def __init__(self, lab):
        self.lab = lab
        self.pool = lab.pool
        self.driver = lab.driver
        self.logs = {}  # ip -> {"state", "entries"}
        self.logs_enabled = False
        self.keys = {}  # commandSaveAsKey store
        self._log_lock = threading.Lock()
        if self.pool.kv_get("plunder.config") is None:
            self.pool.kv_set("plunder.config", default_server_config(str(next(self.pool.lease_network.hosts()))))
        if self.pool.kv_get("plunder.global") is None:
            self.pool.kv_set("plunder.global", default_global_config(self.pool.lease_network))
        rules = []
        for name, method, route, _path, _desc in ENDPOINTS:
            if name == "apiFunctions":
                rule = "/api/<function>/<method>"
            else:
                rule = route.replace("{id}", "<path:id>")
            rules.append(Rule(rule, methods=[method], endpoint=(name, method)))
        self.url_map = Map(rules, strict_slashes=False, merge_slashes=False)

    # -- WSGI ------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            (name, method), args = adapter.match()
        except MethodNotAllowed:
            return Response("", status=405)(environ, start_response)
        except (NotFound, HTTPException):
            return Response("404 page not found\n", status=404, content_type="text/plain; charset=utf-8")(
                environ, start_response)
        handler = getattr(self, "h_%s_%s" % (name, method.lower()))
        try:
            result = handler(request, **args)
        except Refusal as f:
            result = {"warning": f.warning, "error": f.error}
        except BodyTooLarge:
            result = {"warning": "Error reading the request", "error": "http: request body too large"}
        except Exception as e:  # a bug of the lab: report it in the envelope, keep serving
            logging.getLogger("fleetlab").exception("plunder face: %s %s", request.method, request.path)
            result = {"warning": "Internal error of the lab", "error": str(e)}
        body = {}
        for key in ("warning", "error", "success"):
            if result.get(key):
                body[key] = result[key]
        if "payload" in result:
            body["payload"] = result["payload"]
        return Response(dumps(body) + "\n", status=200, content_type="application/json")(environ, start_response)

    # -- discovery ------------------------------------------------------------------------
    @staticmethod
    def _endpoint(entry):
        name, method, route, path, desc = entry
        return {"name": name, "path": path, "functionEndpoint": route, "description": desc, "method": method}

    def h_apis_get(self, request):
        return {"payload": [self._endpoint(e) for e in ENDPOINTS]}

    def h_apiFunctions_get(self, request, function, method):
        for e in ENDPOINTS:
            if e[0] == function and e[1] == method:
                return {"payload": self._endpoint(e)}
        return {"warning": "Unable to find HTTP method [%s] for function [%s]" % (method, function),
                "error": "Error looking up in API Server"}

    # -- server configuration ----------------------------------------------------------------
    def h_config_get(self, request):
        return {"payload": self.pool.kv_get("plunder.config")}

    def h_config_post(self, request):
        data = self._parse_yaml_or_json(read_body(request), W_SERVER)
        if not isinstance(data, dict):
            raise Refusal(W_SERVER, "Unable to parse configuration as either yaml or json")
        with self.pool.tx() as conn:
            cfg = self.pool.kv_get("plunder.config")
            for key, value in data.items():
                if key == "bootConfigs":
                    if not isinstance(value, list) or not all(isinstance(b, dict) for b in value):
                        raise Refusal(W_SERVER, "Unable to parse configuration as either yaml or json")
                    value = [ordered(b, BOOT_CONFIG_KEYS) for b in value]
                cfg[key] = value
            self.pool.kv_set("plunder.config", cfg, conn)
        return {}

    def h_configBoot_post(self, request, id):
        boot = _json_object(request, W_SERVER)
        if any(not isinstance(v, str) for k, v in boot.items() if k in BOOT_CONFIG_KEYS):
            raise Refusal(W_SERVER, "json: cannot unmarshal into Go struct field BootConfig of type string")
        boot = ordered({k: v for k, v in boot.items() if k in BOOT_CONFIG_KEYS}, BOOT_CONFIG_KEYS)
        for k in ("configName", "configType", "kernelPath", "initrdPath", "cmdline"):
            boot.setdefault(k, "")
        if not boot["configName"].strip():
            # stricter than plunder: a nameless boot config could never be referenced by a deployment
            raise Refusal(W_SERVER, "Boot Configuration has no configName")
        with self.pool.tx() as conn:
            cfg = self.pool.kv_get("plunder.config")
            if any(b.get("configName") == boot["configName"] for b in cfg["bootConfigs"]):
                raise Refusal("Error duplicate Server Configuration",
                            "Boot Configuration [%s] already exists" % boot["configName"])
            cfg["bootConfigs"].append(boot)
            self.pool.kv_set("plunder.config", cfg, conn)
        return {}

    def h_configBoot_delete(self, request, id):
        with self.pool.tx() as conn:
            cfg = self.pool.kv_get("plunder.config")
            keep = [b for b in cfg["bootConfigs"] if b.get("configName") != id]
            if len(keep) == len(cfg["bootConfigs"]):
                raise Refusal("Error updating Deployment Configuration", "Unable to find boot configuration %s" % id)
            cfg["bootConfigs"] = keep
            self.pool.kv_set("plunder.config", cfg, conn)
        return {}

    # -- DHCP ------------------------------------------------------------------------------
    def h_dhcp_get(self, request, id):
        if id == "unleased":
            items = [{"mac": mac, "time": rfc3339nano(t)} for mac, t in self.pool.unleased()]
            return {"payload": items or None}
        if id == "leases":
            now = time.time()
            rows = [(m["mac"],) for m in self._plunder_leases() if m["address"]]
            items = [{"mac": r[0], "time": rfc3339nano(now + 7200)} for r in rows]
            return {"payload": items or None}
        return {}

    # -- deployments --------------------------------------------------------------------------
    def _boot_configs(self):
        return {b.get("configName"): b for b in self.pool.kv_get("plunder.config")["bootConfigs"]}

    def _render(self, m, global_cfg, boots):
        pl = (m["lease"] or {}).get("plunder") or {}
        host = dict(pl.get("config") or {})
        for key in INHERITED:
            if host.get(key) in (None, "") and global_cfg.get(key) not in (None, ""):
                host[key] = global_cfg[key]
        # plunder's rebuild leaves these false unless only the global sets them
        for key in ("lvmEnabled", "swapDisabled"):
            host[key] = bool(host.get(key)) if host.get(key) is not None else bool(global_cfg.get(key, False))
        if not host.get("sshkey") and global_cfg.get("sshkey"):
            host["sshkey"] = global_cfg["sshkey"]
        config = {k: host[k] for k in HOST_CONFIG_KEYS
                  if k in host and (host[k] not in (None, "") or k in ("lvmEnabled", "swapDisabled"))}
        name = pl.get("bootConfigName", "")
        # deleting a boot config later leaves deployments built from it with their copy
        boot = dict(boots.get(name) or pl.get("bootConfig") or {
            "configName": "", "configType": "", "kernelPath": "", "initrdPath": "", "cmdline": ""})
        out = {"mac": m["mac"]}
        if name:
            out["bootConfigName"] = name
        out["bootConfig"] = boot
        out["config"] = config
        return out

    def _plunder_leases(self):
        return self.pool.machines(lease_face="plunder", order="leased_at")

    def h_deployments_get(self, request):
        global_cfg = self.pool.kv_get("plunder.global")
        boots = self._boot_configs()
        deps = [self._render(m, global_cfg, boots) for m in self._plunder_leases()]
        return {"payload": {"globalConfig": global_cfg, "deployments": deps or None}}

    def _parse_yaml_or_json(self, raw, warning):
        # plunder tries YAML (a superset) then JSON; aliases are bounded (an alias bomb of a few
        # hundred bytes would otherwise be stored as megabytes)
        try:
            return load_bounded_yaml(raw.decode("utf-8")) if raw.strip() else None
        except (ValueError, UnicodeDecodeError) as exc:
            raise Refusal(warning, "Unable to parse configuration as either yaml or json\n %s" % exc)

    def _check_deployment(self, dep, boots, conn, allow_leased_by=None):
        """Validate one DeploymentConfig dict; return (machine, lease dict)."""
        if not isinstance(dep, dict) or not isinstance(dep.get("mac", ""), str):
            raise Refusal(W_DEPLOY, "Unable to parse deployment configuration")
        config = dep.get("config") or {}
        if not isinstance(config, dict):
            raise Refusal(W_DEPLOY, "Unable to parse deployment configuration")
        raw_mac = dep.get("mac", "")
        try:
            mac = P.normalize_mac(raw_mac)
        except P.PoolError:
            raise Refusal(W_DEPLOY, "Unknown MAC address [%s]: not a machine of this lab" % raw_mac)
        m = self.pool.get(mac, conn)
        if m is None:
            raise Refusal(W_DEPLOY, "Unknown MAC address [%s]: not a machine of this lab" % raw_mac)
        name = dep.get("bootConfigName", "") or ""
        if not isinstance(name, str):
            raise Refusal(W_DEPLOY, "Unable to parse deployment configuration")  # Go: cannot unmarshal into string
        if name not in boots:
            raise Refusal(W_DEPLOY, "Host [%s] uses unknown config [%s], stopping config update" % (raw_mac, name))
        address = config.get("address", "")
        if address and (not isinstance(address, str) or not valid_ip(address)):
            raise Refusal(W_DEPLOY, "Invalid address [%s] for MAC address [%s]" % (address, raw_mac))
        clean = {k: config[k] for k in HOST_CONFIG_KEYS if k in config}
        lease = {"name": clean.get("hostname") or mac, "hostname": clean.get("hostname", ""),
                 "address": address or None, "image": name, "owner": "plunder",
                 # base64 of the authorized key line: the host's own, else globalConfig's (for real drivers)
                 "sshkey": clean.get("sshkey") or (self.pool.kv_get("plunder.global") or {}).get("sshkey", ""),
                 "plunder": {"bootConfigName": name, "config": clean, "bootConfig": dict(boots[name])}}
        return m, lease

    def h_deployment_post(self, request):
        try:
            dep = json.loads(read_body(request))
        except (ValueError, RecursionError):
            raise Refusal(W_DEPLOY, "Unable to parse deployment configuration")
        boots = self._boot_configs()
        with self.pool.tx() as conn:
            m, lease = self._check_deployment(dep, boots, conn)
            if m["lease_name"] is not None:
                raise Refusal(W_DEPLOY, "Duplicate entry for MAC address [%s]" % dep.get("mac"))
            leased = self.pool.lease(m["id"], lease, "plunder", conn=conn)
        self.driver.provision(leased)
        return {}

    def h_deployments_post(self, request):
        data = self._parse_yaml_or_json(read_body(request), W_DEPLOY)
        if not isinstance(data, dict):
            raise Refusal(W_DEPLOY, "Unable to parse configuration as either yaml or json\n bad document")
        deps = data.get("deployments") or []
        if not deps:
            return {}
        if not isinstance(deps, list):
            raise Refusal(W_DEPLOY, "Unable to parse configuration as either yaml or json\n bad deployments")
        boots = self._boot_configs()
        provisioned = []
        with self.pool.tx() as conn:
            wanted = {}
            for dep in deps:
                m, lease = self._check_deployment(dep, boots, conn)
                if m["lease_name"] is not None and m["lease_face"] != "plunder":
                    raise Refusal(W_DEPLOY, "Duplicate entry for MAC address [%s]" % dep.get("mac"))
                if m["mac"] in wanted:
                    raise Refusal(W_DEPLOY, "Duplicate entry for MAC address [%s]" % dep.get("mac"))
                wanted[m["mac"]] = (m, lease)
            for old in self.pool.machines(lease_face="plunder"):
                if old["mac"] not in wanted:
                    self.pool.release(old["id"], conn=conn)
            for mac, (m, lease) in wanted.items():
                if m["lease_name"] is not None:
                    self.pool.update_lease(m["id"], lease, conn=conn)
                else:
                    provisioned.append(self.pool.lease(m["id"], lease, "plunder", conn=conn))
            gc = data.get("globalConfig")
            if isinstance(gc, dict):
                self.pool.kv_set("plunder.global", {k: gc[k] for k in HOST_CONFIG_KEYS if k in gc}, conn)
        for m in provisioned:
            self.driver.provision(m)
        return {}

    def _patch(self, request, mac_hint):
        dep = _json_object(request, W_DEPLOY, "Unable to parse deployment configuration")
        if mac_hint is not None:
            dep["mac"] = mac_hint
        boots = self._boot_configs()
        with self.pool.tx() as conn:
            try:
                m, lease = self._check_deployment(dep, boots, conn)
            except Refusal as f:
                if "Unknown MAC" in f.error:
                    raise Refusal(W_DEPLOY, "Unable to find existing deployment for MAC address [%s]" % dep.get("mac"))
                raise
            if m["lease_face"] != "plunder":
                raise Refusal(W_DEPLOY, "Unable to find existing deployment for MAC address [%s]" % dep.get("mac"))
            self.pool.update_lease(m["id"], lease, conn=conn)
        return {}

    def h_deployment_patch(self, request):
        return self._patch(request, None)

    def h_deploymentID_patch(self, request, id):
        if id == "global":
            gc = _json_object(request, "Error updating Global Configuration", "Unable to parse deployment configuration")
            self.pool.kv_set("plunder.global", {k: gc[k] for k in HOST_CONFIG_KEYS if k in gc})
            return {}
        return self._patch(request, id.replace("-", ":"))

    def h_deploymentID_get(self, request, id):
        mac = id.replace("-", ":").lower()
        m = self.pool.get(mac) if len(mac) == 17 else None
        if m is None or m["lease_face"] != "plunder":
            return {"error": "Unable to find MAC"}
        return {"payload": self._render(m, self.pool.kv_get("plunder.global"), self._boot_configs())}

    def _delete(self, id, by_mac=True, by_address=True):
        with self.pool.tx() as conn:
            target = None
            if by_mac:
                mac = id.replace("-", ":").lower()
                m = self.pool.get(mac, conn) if len(mac) == 17 else None
                if m is not None and m["lease_face"] == "plunder":
                    target = m
            if target is None and by_address:
                address = id.replace("-", ".")
                for m in self.pool.by_address(address, conn):
                    if m["lease_face"] == "plunder":
                        target = m
                        break
            if target is None:
                raise Refusal(W_DEPLOY, "Unable to find existing deployment for Address [%s]" % id)
            self.pool.release(target["id"], conn=conn)
        return {}

    def h_deploymentID_delete(self, request, id):
        return self._delete(id)

    def h_deploymentMac_delete(self, request, id):
        return self._delete(id, by_address=False)

    def h_deploymentAddress_delete(self, request, id):
        return self._delete(id, by_mac=False)

