"""A client of etcd's v3 JSON gateway (``/v3/kv/*``, ``/v3/cluster/member/*``), over TLS with client certificates.

etcd itself is real (Debian's ``etcd-server``, run by the kubelet double from the static pod
manifest kubeadm writes); this module is how the double's API server and kubeadm talk to it,
as kube-apiserver and kubeadm do over gRPC. Only the calls the double needs.
"""
import base64
import http.client
import json
import ssl
import threading
import urllib.parse

CLIENT_PORT = 2379
PEER_PORT = 2380


class EtcdError(Exception):
    """etcd did not answer, or answered with an error."""


def b64(text):
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def unb64(text):
    return base64.b64decode(text or "")


def prefix_end(prefix):
    """The range end that selects every key starting with ``prefix`` (etcd's ``--prefix``)."""
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return bytes(raw)


def url(host, port):
    return "https://%s:%d" % ("[%s]" % host if ":" in host else host, port)


class Etcd:
    def __init__(self, endpoints, ca_file, cert_file, key_file, timeout=5.0):
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.ctx = ssl.create_default_context(cafile=ca_file)
        self.ctx.load_cert_chain(cert_file, key_file)
        self._local = threading.local()  # one kept-alive connection per endpoint and thread

    def _connection(self, endpoint, fresh=False):
        conns = self._local.__dict__.setdefault("conns", {})
        if fresh or endpoint not in conns:
            if endpoint in conns:
                conns[endpoint].close()
            parts = urllib.parse.urlsplit(endpoint)
            conns[endpoint] = http.client.HTTPSConnection(parts.hostname, parts.port or CLIENT_PORT,
                                                          timeout=self.timeout, context=self.ctx)
        return conns[endpoint]

    def _post(self, endpoint, path, body):
        data = json.dumps(body).encode() if body is not None else None
        for attempt in (0, 1):
            conn = self._connection(endpoint, fresh=attempt > 0)
            try:
                conn.request("POST" if data is not None else "GET", path, data,
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                raw = resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if attempt:  # a kept-alive connection the server had closed: once more on a new one
                    raise
            except Exception:
                conn.close()
                raise
        answer = json.loads(raw or b"{}")
        if resp.status != 200:
            raise EtcdError("%s%s: %s %s" % (endpoint, path, resp.status, answer.get("error") or
                                             answer.get("message") or raw[:200]))
        return answer

    def call(self, path, body=None):
        """POST ``body`` to the first endpoint that answers (GET when ``body`` is None)."""
        errors = []
        for endpoint in self.endpoints:
            try:
                return self._post(endpoint, path, body)
            except EtcdError:  # etcd answered: no point asking another member
                raise
            except (OSError, ValueError, http.client.HTTPException) as exc:
                errors.append("%s: %s" % (endpoint, exc))
        raise EtcdError("no etcd endpoint answered: " + "; ".join(errors))

    # --- key/value ----------------------------------------------------------------------------
    def range_prefix(self, prefix):
        """``(revision, {key: (value bytes, mod_revision)})`` for every key under ``prefix``."""
        answer = self.call("/v3/kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix))})
        kvs = {unb64(kv["key"]).decode(): (unb64(kv.get("value")), int(kv["mod_revision"]))
               for kv in answer.get("kvs", [])}
        return int(answer["header"]["revision"]), kvs

    def txn(self, compare, success):
        answer = self.call("/v3/kv/txn", {"compare": compare, "success": success})
        return bool(answer.get("succeeded"))

    @staticmethod
    def put_op(key, value):
        return {"request_put": {"key": b64(key), "value": b64(value)}}

    @staticmethod
    def delete_op(key):
        return {"request_delete_range": {"key": b64(key)}}

    @staticmethod
    def mod_revision_is(key, revision):
        return {"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}

    # --- membership and health ----------------------------------------------------------------
    def members(self):
        return self._members_of(self.call("/v3/cluster/member/list", {}))

    def add_member(self, peer_urls):
        answer = self.call("/v3/cluster/member/add", {"peerURLs": list(peer_urls)})
        return answer["member"]["ID"], self._members_of(answer)

    def remove_member(self, member_id):
        self.call("/v3/cluster/member/remove", {"ID": member_id})

    def _members_of(self, answer):
        return [{"id": m["ID"], "name": m.get("name", ""), "peer_urls": m.get("peerURLs", []),
                 "client_urls": m.get("clientURLs", [])} for m in answer.get("members", [])]

    def healthy(self):
        """True when the first endpoint answers ``/health`` with a cluster that has quorum and its
        JSON gateway serves requests. etcd's gateway reaches the member over gRPC: dialled before
        the member listened, it answers 503 "connection refused" for a while after ``/health``
        already says true, so both are asked."""
        endpoint = self.endpoints[0]
        try:
            return (self._post(endpoint, "/health", None).get("health") == "true"
                    and "header" in self._post(endpoint, "/v3/maintenance/status", {}))
        except (OSError, ValueError, EtcdError, http.client.HTTPException):
            return False
