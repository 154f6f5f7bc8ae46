"""A minimal HTTPS client for the API stand-in, authenticating like kubeadm and the kubelet (TEST DOUBLE)."""
import http.client
import json
import os
import ssl
import tempfile
import urllib.parse

from . import pki


class APIError(Exception):
    def __init__(self, status, message):
        self.status = status
        super().__init__(message)


class Client:
    def __init__(self, server, ca_pem=None, cert_pem=None, key_pem=None, token=None, timeout=10.0):
        self.server = server
        self.ca_pem, self.cert_pem, self.key_pem, self.token = ca_pem, cert_pem, key_pem, token
        self.timeout = timeout

    @classmethod
    def from_kubeconfig(cls, path, **kwargs):
        server, ca_pem, cert_pem, key_pem, token = pki.read_kubeconfig(path)
        return cls(server, ca_pem, cert_pem, key_pem, token, **kwargs)

    def _context(self):
        if self.ca_pem is None:
            # only for kubeadm's first, unauthenticated fetch of cluster-info (pinned by hash after)
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context(cadata=self.ca_pem.decode())
        if self.cert_pem is not None:
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
                with open(cert, "wb") as handle:
                    handle.write(self.cert_pem)
                with open(key, "wb") as handle:
                    handle.write(self.key_pem)
                ctx.load_cert_chain(cert, key)
        return ctx

    def request(self, method, path, body=None):
        url = urllib.parse.urlsplit(self.server)
        conn = http.client.HTTPSConnection(url.hostname, url.port or 443, timeout=self.timeout,
                                           context=self._context())
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        finally:
            conn.close()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        if resp.status >= 400:
            message = payload.get("message") if isinstance(payload, dict) else payload
            raise APIError(resp.status, "%s %s: %s (HTTP %d)" % (method, path, message, resp.status))
        return payload
