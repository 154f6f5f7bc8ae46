"""A kube-apiserver stand-in: the few endpoints kubeadm, the kubelet and verification use (TEST DOUBLE).

Authentication is real TLS: client certificates signed by the cluster CA (admin: group
``kubeadm:cluster-admins`` or ``system:masters``; kubelets: ``system:node:<name>`` in
``system:nodes``) or a bootstrap token (``Authorization: Bearer <id>.<secret>``) that
``init`` / ``token create`` issued and that has not expired. Anonymous clients may read
only ``/healthz``, ``/version`` and the ``cluster-info`` ConfigMap, as in a kubeadm cluster.
"""
import argparse
import datetime
import http.server
import json
import os
import re
import signal
import ssl
import sys
import time
import urllib.parse

import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from . import objects, own_version, pki, store

ADMIN_GROUPS = ("kubeadm:cluster-admins", "system:masters")
NODE_GRACE_SECONDS = float(os.environ.get("FLEET_DOUBLE_NODE_GRACE", "40"))
CNI_KINDS = ("DaemonSet",)


def now_iso():
    return datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


def token_valid(state, token):
    match = re.match(r"^([a-z0-9]{6})\.([a-z0-9]{16})$", token or "")
    if not match:
        return None
    entry = state.get("tokens", {}).get(match.group(1))
    if not entry or entry["secret"] != match.group(2):
        return None
    if entry.get("expires") and _parse_iso(entry["expires"]) < datetime.datetime.utcnow():
        return None
    return entry


def version_info():
    version = own_version()
    major, minor = version.lstrip("v").split(".")[:2]
    return {"major": major, "minor": minor, "gitVersion": version,
            "gitCommit": "fleetlab-kubeadm-double", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "none (test double)",
            "compiler": "python", "platform": "linux/amd64"}


def node_object(state, name):
    node = state["nodes"][name]
    heartbeat = node.get("heartbeat")
    fresh = heartbeat is not None and time.time() - heartbeat <= NODE_GRACE_SECONDS
    cni = any(obj["kind"] in CNI_KINDS for obj in state.get("objects", {}).values())
    if not fresh:
        ready, reason, message = "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."
    elif not node.get("runtime_ok"):
        ready, reason, message = "False", "KubeletNotReady", "container runtime is down"
    elif not cni:
        ready, reason, message = ("False", "KubeletNotReady",
                                  "container runtime network not ready: NetworkReady=false "
                                  "reason:NetworkPluginNotReady message:Network plugin returns error: "
                                  "cni plugin not initialized")
    else:
        ready, reason, message = "True", "KubeletReady", "kubelet is posting ready status"
    beat = (datetime.datetime.utcfromtimestamp(heartbeat).strftime("%Y-%m-%dT%H:%M:%SZ")
            if heartbeat else node["created"])
    # the node controller flips Ready to Unknown once the grace period after the last heartbeat ends
    since = (datetime.datetime.utcfromtimestamp(heartbeat + NODE_GRACE_SECONDS).strftime("%Y-%m-%dT%H:%M:%SZ")
             if heartbeat and not fresh else node["created"])
    labels = dict(node.get("labels", {}))
    taints = []
    mark = state.get("control_planes", {}).get(name)
    if mark is not None:
        labels["node-role.kubernetes.io/control-plane"] = ""
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
        taints = mark
    spec = {"podCIDR": node.get("pod_cidr")} if node.get("pod_cidr") else {}
    if node.get("unschedulable"):
        spec["unschedulable"] = True
        taints = list(taints) + [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    if taints:
        spec["taints"] = taints
    info = node.get("node_info", {})
    return {
        "kind": "Node", "apiVersion": "v1",
        "metadata": {"name": name, "uid": node["uid"], "resourceVersion": str(node.get("rv", 1)),
                     "creationTimestamp": node["created"], "labels": labels,
                     "annotations": {"fleetlab.test-double/kubelet": "kubelet stand-in"}},
        "spec": spec,
        "status": {
            "conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": message,
                            "lastHeartbeatTime": beat, "lastTransitionTime": since}],
            "addresses": [{"type": "InternalIP", "address": node.get("address", "")},
                          {"type": "Hostname", "address": name}],
            "nodeInfo": {
                "machineID": info.get("machineID", ""), "systemUUID": info.get("systemUUID", ""),
                "bootID": info.get("bootID", ""), "kernelVersion": info.get("kernelVersion", ""),
                "osImage": info.get("osImage", ""),
                "containerRuntimeVersion": info.get("containerRuntimeVersion", ""),
                "kubeletVersion": info.get("kubeletVersion", ""), "kubeProxyVersion": info.get("kubeletVersion", ""),
                "operatingSystem": "linux", "architecture": "amd64"},
        },
    }


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "fleetlab-apiserver-double"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet; the kubelet keeps our stderr in a log
        if os.environ.get("FLEET_DOUBLE_DEBUG"):
            sys.stderr.write("apiserver-double: " + fmt % args + "\n")

    # --- helpers --------------------------------------------------------------------------
    # replies are kept until the state is written: a write conflict re-runs the request
    def _send(self, status, body, warnings=()):
        if status == 200 and self.command == "GET" and body.get("kind", "").endswith(("List", "Node")) \
                and objects.wants_table(self.headers.get("Accept")) and body.get("kind") != "APIResourceList" \
                and "metadata" in body:
            body = objects.table(body)
        self._reply = (status, "application/json", json.dumps(body).encode(), warnings)

    def _text(self, status, text):
        self._reply = (status, "text/plain", text.encode(), ())

    def _write_reply(self):
        status, content_type, data, warnings = self._reply
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for warning in warnings:
            self.send_header("Warning", '299 - "%s"' % warning.replace('"', '\\"'))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code, reason, message):
        self._send(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "message": message, "reason": reason, "code": code})

    def _raw(self):
        if self._request_raw is None:
            length = int(self.headers.get("Content-Length") or 0)
            self._request_raw = self.rfile.read(length) if length else b""
        return self._request_raw

    def _body(self):
        raw = self._raw()
        content_type = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip()
        if raw and content_type not in ("application/json", objects.MERGE, objects.STRATEGIC):
            raise objects.APIError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                                   "accepted media types include: application/json (this double speaks no protobuf)")
        try:
            return json.loads(raw) if raw else {}
        except ValueError as exc:
            raise objects.APIError(400, "BadRequest", "the body of the request is not JSON: %s" % exc)

    def _identity(self, state):
        cert = self.connection.getpeercert(binary_form=True)
        if cert:
            parsed = x509.load_der_x509_certificate(cert)
            cn = parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
            orgs = [a.value for a in parsed.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
            if any(o in ADMIN_GROUPS for o in orgs):
                return ("admin", cn)
            if "system:nodes" in orgs and cn.startswith("system:node:"):
                return ("node", cn[len("system:node:"):])
            return ("user", cn)
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            if token_valid(state, auth[7:].strip()):
                return ("bootstrap", auth[7:].strip()[:6])
            return ("invalid", None)
        return ("anonymous", None)

    def _dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        self._query = urllib.parse.parse_qs(url.query)
        self._request_raw = None
        self._raw()  # always read the body (kubectl sends DeleteOptions with a DELETE): the connection is reused
        store_ = self.server.store
        if method == "GET" and path in ("/healthz", "/livez", "/readyz"):
            # like the real one: healthy only while etcd answers with quorum
            if path == "/livez" or store_.etcd.healthy():
                self._text(200, "ok")
            else:
                self._text(500, "[-]etcd failed: reason withheld\nhealthz check failed")
            return self._write_reply()
        if method == "GET" and path == "/version":
            self._send(200, version_info())
            return self._write_reply()

        def handle(state):
            self._reply = None
            who, name = self._identity(state)
            if who == "invalid":
                return self._status(401, "Unauthorized", "Unauthorized")
            if method == "GET" and path == "/api/v1/namespaces/kube-public/configmaps/cluster-info":
                if "cluster_info" not in state:
                    return self._status(404, "NotFound", 'configmaps "cluster-info" not found')
                return self._send(200, {"kind": "ConfigMap", "apiVersion": "v1",
                                        "metadata": {"name": "cluster-info", "namespace": "kube-public"},
                                        "data": state["cluster_info"]})
            if who == "anonymous":
                return self._status(403, "Forbidden", 'User "system:anonymous" cannot %s path "%s"'
                                    % (method.lower(), path))
            try:
                return self._route(method, path, state, who, name)
            except objects.APIError as exc:
                return self._send(exc.code, exc.status())

        try:
            if method == "GET":
                handle(store_.read())
            else:
                store_.update(handle)
        except store.EtcdError as exc:
            self._status(500, "InternalError", "etcdserver: %s" % exc)
        return self._write_reply()

    def _route(self, method, path, state, who, name):
        admin = who == "admin"
        if method == "GET" and path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": self.server.advertise}]})
        if method == "GET" and objects.discovery(path) is not None:
            return self._send(200, objects.discovery(path))
        if method == "GET" and path.startswith("/openapi/v3") and objects.openapi(path) is not None:
            return self._send(200, objects.openapi(path))
        if path == "/api/v1/nodes":
            if method == "GET" and who in ("admin", "node"):
                fields, labels = (self._query.get(s, [""])[0] for s in ("fieldSelector", "labelSelector"))
                items = [node_object(state, n) for n in sorted(state.get("nodes", {}))]
                items = [n for n in items if objects.field_match(n, fields, "Node")
                         and objects.label_match(n["metadata"]["labels"], labels)]
                return self._send(200, {"kind": "NodeList", "apiVersion": "v1",
                                        "metadata": {"resourceVersion": str(state.get("rv", 1))},
                                        "items": items})
            if method == "POST" and who == "node":
                return self._register(state, name, self._body())
        match = re.match(r"^/api/v1/nodes/([^/]+)(/status)?$", path)
        if match:
            node = match.group(1)
            if node not in state.get("nodes", {}):
                return self._status(404, "NotFound", 'nodes "%s" not found' % node)
            if method == "GET" and (admin or (who == "node") or who == "bootstrap"):
                return self._send(200, node_object(state, node))
            if method in ("PUT", "PATCH") and match.group(2) and (admin or (who == "node" and name == node)):
                return self._heartbeat(state, node, self._body())
            if method == "PATCH" and not match.group(2) and admin:
                return self._patch_node(state, node, self._body())
            if method == "DELETE" and admin:
                uid = state["nodes"].pop(node)["uid"]
                state.get("control_planes", {}).pop(node, None)
                return self._send(200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                        "details": {"name": node, "kind": "nodes", "uid": uid}})
            return self._forbidden(who, name, method, path)
        if path == "/api/v1/namespaces/kube-system/configmaps/kubeadm-config":
            if method == "GET" and who in ("admin", "bootstrap", "node"):
                return self._send(200, self._kubeadm_config(state))
            if method == "PATCH" and admin:
                return self._patch_kubeadm_config(state)
        if path == "/api/v1/namespaces/kube-system/configmaps/kubelet-config" and method == "GET" \
                and who in ("admin", "bootstrap", "node"):
            return self._send(200, {"kind": "ConfigMap", "apiVersion": "v1",
                                    "metadata": {"name": "kubelet-config", "namespace": "kube-system"},
                                    "data": {"kubelet": state["kubelet_config"]}})
        if path == "/api/v1/namespaces/kube-system/secrets" and admin:
            if method == "GET":
                return self._send(200, {"kind": "SecretList", "apiVersion": "v1",
                                        "items": [self._token_secret(t, e) for t, e in
                                                  sorted(state.get("tokens", {}).items())]})
            if method == "POST":
                return self._create_secret(state, self._body())
        if path == "/api/v1/namespaces/kube-system/secrets/kubeadm-certs":
            if method == "PUT" and admin:
                body = self._body()
                state["kubeadm_certs"] = {"data": body.get("data", {}),
                                          "expires": time.time() + 2 * 3600}
                return self._send(200, body)
            if method == "GET" and who in ("admin", "bootstrap"):
                certs = state.get("kubeadm_certs")
                if not certs or certs["expires"] < time.time():
                    return self._status(404, "NotFound", 'secrets "kubeadm-certs" not found')
                return self._send(200, {"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
                                        "metadata": {"name": "kubeadm-certs", "namespace": "kube-system"},
                                        "data": certs["data"]})
        if path == "/apis/certificates.k8s.io/v1/certificatesigningrequests" and method == "POST" \
                and who in ("bootstrap", "admin"):
            return self._sign_csr(self._body())
        target = objects.resolve(path)
        if target is not None and admin:
            return self._objects(state, method, *target)
        return self._forbidden(who, name, method, path)

    def _objects(self, state, method, kind, ns, name, sub):
        """The generic kinds (objects.py): what kubectl get/apply/diff/delete/drain send."""
        work = objects.Objects(state, self._query)
        if sub is not None:
            if kind.kind == "Pod" and sub == "eviction" and method == "POST":
                code, body = work.evict(ns, name, self._body())
            else:
                raise objects.APIError(404, "NotFound", "the server could not find the requested resource")
        elif name is None and method == "GET":
            code, body = work.list(kind, ns)
        elif name is None and method == "POST" and (ns is not None or not kind.namespaced):
            code, body = work.create(kind, ns, self._body())
        elif name is not None and method == "GET":
            code, body = work.get(kind, ns, name)
        elif name is not None and method == "PATCH":
            code, body = work.patch(kind, ns, name, self.headers.get("Content-Type"), self._raw())
        elif name is not None and method == "DELETE":
            code, body = work.delete(kind, ns, name)
        else:
            raise objects.APIError(405, "MethodNotAllowed", "the server does not allow this method on the "
                                                            "requested resource")
        return self._send(code, body, work.warnings)

    def _forbidden(self, who, name, method, path):
        if who == "admin" or method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            return self._status(404, "NotFound", "the server could not find the requested resource")
        return self._status(403, "Forbidden", 'User "%s" cannot %s path "%s"'
                            % (name or who, method.lower(), path))

    @staticmethod
    def _token_secret(token_id, entry):
        return {"kind": "Secret", "type": "bootstrap.kubernetes.io/token",
                "metadata": {"name": "bootstrap-token-" + token_id, "namespace": "kube-system"},
                "stringData": {"token-id": token_id, "expiration": entry.get("expires") or "",
                               "description": entry.get("description", ""),
                               "usage-bootstrap-authentication": "true",
                               "usage-bootstrap-signing": "true"}}

    @staticmethod
    def _kubeadm_config(state):
        return {"kind": "ConfigMap", "apiVersion": "v1",
                "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
                "data": {"ClusterConfiguration": state["cluster_configuration"]}}

    def _patch_kubeadm_config(self, state):
        """A merge patch of the kubeadm-config ConfigMap (what Cluster API does before it joins control
        planes of a new version): its ClusterConfiguration must stay one, with a Kubernetes version."""
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type not in (objects.MERGE, objects.STRATEGIC):
            raise objects.APIError(415, "UnsupportedMediaType", "this API server double patches the kubeadm-config "
                                   "ConfigMap with merge patches only (%s, %s)" % (objects.MERGE, objects.STRATEGIC))
        try:
            patch = json.loads(self._raw() or b"{}")
        except ValueError as exc:
            raise objects.APIError(400, "BadRequest", "error decoding patch: %s" % exc)
        if set(patch) - {"data", "metadata"} or set(patch.get("data") or {}) - {"ClusterConfiguration"}:
            raise objects.APIError(422, "Invalid", "this API server double changes only data.ClusterConfiguration "
                                   "of the kubeadm-config ConfigMap")
        text = (patch.get("data") or {}).get("ClusterConfiguration")
        if text is not None:
            try:
                doc = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise objects.APIError(422, "Invalid", "data.ClusterConfiguration is not YAML: %s" % exc)
            if not isinstance(doc, dict) or doc.get("kind") != "ClusterConfiguration" \
                    or not re.match(r"^v\d+\.\d+\.\d+$", str(doc.get("kubernetesVersion", ""))):
                raise objects.APIError(422, "Invalid", "data.ClusterConfiguration must be a ClusterConfiguration "
                                       "with a kubernetesVersion vMAJOR.MINOR.PATCH")
            state["cluster_configuration"] = text
            state["rv"] = state.get("rv", 1) + 1
        return self._send(200, self._kubeadm_config(state))

    def _create_secret(self, state, body):
        if body.get("type") != "bootstrap.kubernetes.io/token":
            return self._status(422, "Invalid", "only bootstrap token secrets are accepted by this double")
        data = body.get("stringData", {})
        token_id, secret = data.get("token-id", ""), data.get("token-secret", "")
        if not re.match(r"^[a-z0-9]{6}$", token_id) or not re.match(r"^[a-z0-9]{16}$", secret):
            return self._status(422, "Invalid", "invalid bootstrap token")
        if token_id in state.setdefault("tokens", {}):
            return self._status(409, "AlreadyExists", 'secrets "bootstrap-token-%s" already exists' % token_id)
        state["tokens"][token_id] = {"secret": secret, "expires": data.get("expiration") or None,
                                     "description": data.get("description", "")}
        add_token_signature(state, token_id, secret)
        return self._send(201, body)

    def _register(self, state, node_name, body):
        meta = body.get("metadata", {})
        if meta.get("name") != node_name:
            return self._status(403, "Forbidden", "nodes may only register themselves")
        nodes = state.setdefault("nodes", {})
        if node_name in nodes:
            return self._status(409, "AlreadyExists", 'nodes "%s" already exists' % node_name)
        nodes[node_name] = {"uid": os.urandom(16).hex(), "created": now_iso(),
                            "labels": meta.get("labels", {}), "address": body.get("address", ""),
                            "node_info": body.get("nodeInfo", {}), "runtime_ok": False, "heartbeat": None}
        state["rv"] = state.get("rv", 1) + 1
        return self._send(201, node_object(state, node_name))

    def _heartbeat(self, state, node_name, body):
        node = state["nodes"][node_name]
        if body.get("markOnly"):
            if self._identity(state)[0] != "admin":
                return self._status(403, "Forbidden", "only admins may mark control-plane nodes")
            state.setdefault("control_planes", {})[node_name] = body.get("controlPlaneTaints") or []
            return self._send(200, node_object(state, node_name))
        node["heartbeat"] = time.time()
        node["runtime_ok"] = bool(body.get("runtimeReady"))
        node["address"] = body.get("address", node.get("address", ""))
        node["node_info"] = body.get("nodeInfo", node.get("node_info", {}))
        node["rv"] = node.get("rv", 1) + 1
        return self._send(200, node_object(state, node_name))

    def _patch_node(self, state, node_name, body):
        """cordon / uncordon: a merge patch of spec.unschedulable, the only field this double patches."""
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else None
        if set(body) != {"spec"} or spec is None or set(spec) != {"unschedulable"} \
                or not isinstance(spec["unschedulable"], (bool, type(None))):
            return self._status(422, "Invalid", "this double patches nodes only with {\"spec\": {\"unschedulable\": bool}}")
        node = state["nodes"][node_name]
        node["unschedulable"] = bool(spec["unschedulable"])
        node["rv"] = node.get("rv", 1) + 1
        return self._send(200, node_object(state, node_name))

    def _sign_csr(self, body):
        spec = body.get("spec", {})
        try:
            csr = x509.load_pem_x509_csr(spec.get("request", "").encode())
        except ValueError:
            return self._status(422, "Invalid", "invalid certificate request")
        cn = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        orgs = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        if not cn.startswith("system:node:") or orgs != ["system:nodes"]:
            return self._status(403, "Forbidden", "bootstrap tokens may only request kubelet client certificates")
        ca_cert, ca_key = self.server.ca
        cert = pki.sign(ca_cert, ca_key, csr.public_key(), cn, orgs, client=True)
        body.setdefault("status", {})["certificate"] = pki.cert_pem(cert).decode()
        body["status"]["conditions"] = [{"type": "Approved", "status": "True",
                                         "reason": "AutoApproved", "message": "approved by the double"}]
        return self._send(201, body)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")


def add_token_signature(state, token_id, secret):
    info = state["cluster_info"]
    info["jws-kubeconfig-" + token_id] = pki.jws_sign(info["kubeconfig"], token_id, secret)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    ssl_context = None

    def finish_request(self, request, client_address):
        # the TLS handshake in the connection's own thread: a slow client (or a health check)
        # must not hold the accept loop, as it would with a wrapped listening socket
        request.settimeout(30)
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.close()
            except OSError:
                pass


def serve(root, bind, port, cert_file, key_file, ca_file, advertise, etcd_store):
    with open(ca_file, "rb") as handle:
        ca_cert = pki.load_cert(handle.read())
    with open(os.path.join(os.path.dirname(ca_file), "ca.key"), "rb") as handle:
        ca_key = pki.load_key(handle.read())
    httpd = Server((bind, port), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_file, key_file)
    ctx.load_verify_locations(ca_file)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    httpd.ssl_context = ctx
    httpd.root, httpd.ca, httpd.advertise = root, (ca_cert, ca_key), "%s:%d" % (advertise, port)
    httpd.store = etcd_store
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()


def main(argv, root):
    """Run as kube-apiserver from its static pod manifest's command line (flags kubeadm writes)."""
    parser = argparse.ArgumentParser(prog="kube-apiserver (test double)")
    parser.add_argument("--advertise-address", required=True)
    parser.add_argument("--bind-address", default="0.0.0.0")
    parser.add_argument("--secure-port", type=int, default=6443)
    parser.add_argument("--tls-cert-file", required=True)
    parser.add_argument("--tls-private-key-file", required=True)
    parser.add_argument("--client-ca-file", required=True)
    parser.add_argument("--etcd-servers", required=True)
    parser.add_argument("--etcd-cafile", required=True)
    parser.add_argument("--etcd-certfile", required=True)
    parser.add_argument("--etcd-keyfile", required=True)
    args, _rest = parser.parse_known_args(argv)

    def rooted(path):
        return os.path.join(root, path.lstrip("/"))

    etcd_store = store.Store.connect(args.etcd_servers.split(","), rooted(args.etcd_cafile),
                                     rooted(args.etcd_certfile), rooted(args.etcd_keyfile))
    serve(root, args.bind_address, args.secure_port, rooted(args.tls_cert_file),
          rooted(args.tls_private_key_file), rooted(args.client_ca_file), args.advertise_address, etcd_store)
    return 0
