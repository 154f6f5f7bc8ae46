"""Retry behaviour of the JSON HTTP transport against a scripted loopback server.

ScriptedServer is a test double: it answers each request with the next scripted
reply and fails the test on any request beyond its script.
"""
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible_collections.baremetal.fleet.plugins.module_utils import transport
from ansible_collections.baremetal.fleet.plugins.module_utils.pool import PoolConnectionError


class ScriptedServer:
    """Test double: replies in order from ``script`` ((status, body) or 'hang' or 'close')."""

    def __init__(self, script):
        self.script = list(script)
        self.seen = []
        self.extra = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.seen.append((self.command, self.path, body))
                if not outer.script:
                    outer.extra.append(self.path)
                    self.send_response(599)
                    self.end_headers()
                    return
                step = outer.script.pop(0)
                if step == "close":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, payload = step
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        assert not self.extra, "requests beyond the script: %s" % self.extra


def _client(url, **kw):
    sleeps = []
    client = transport.JsonHttp(url, timeout=5, retries=3, backoff=0.1, sleep=sleeps.append, **kw)
    return client, sleeps


def test_read_retried_on_5xx_with_backoff():
    with ScriptedServer([(503, {"message": "busy"}), (502, {}), (200, {"ok": 1})]) as srv:
        client, sleeps = _client(srv.url)
        resp = client.request("GET", "/x")
        assert resp.status == 200 and resp.body == {"ok": 1}
        assert sleeps == [0.1, 0.2]
        assert len(srv.seen) == 3


def test_read_gives_up_with_server_text():
    with ScriptedServer([(500, {"message": "db down"})] * 4) as srv:
        client, _ = _client(srv.url)
        with pytest.raises(PoolConnectionError) as err:
            client.request("GET", "/x")
        assert "db down" in str(err.value) and "500" in str(err.value)


def test_4xx_is_returned_not_retried():
    with ScriptedServer([(422, {"statuscode": 422, "message": "no machine available"})]) as srv:
        client, sleeps = _client(srv.url)
        resp = client.request("POST", "/allocate", body={}, safe=False)
        assert resp.status == 422 and transport.server_text(resp) == "no machine available"
        assert sleeps == []


def test_unsafe_write_is_reread_before_repeating():
    with ScriptedServer(["close", (200, {"second": True})]) as srv:
        client, _ = _client(srv.url)
        checks = []

        def verify():
            checks.append(1)
            return None  # not applied: send again

        resp = client.request("POST", "/deployment", body={"mac": "x"}, safe=False, verify=verify)
        assert resp.body == {"second": True} and checks == [1]


def test_unsafe_write_found_applied_is_not_repeated():
    with ScriptedServer([(503, {})]) as srv:
        client, _ = _client(srv.url)
        marker = object()
        assert client.request("POST", "/deployment", body={}, safe=False, verify=lambda: marker) is marker
        assert len(srv.seen) == 1


def test_unsafe_write_without_verify_is_not_repeated():
    with ScriptedServer([(503, {})]) as srv:
        client, _ = _client(srv.url)
        with pytest.raises(PoolConnectionError) as err:
            client.request("POST", "/deployment", body={}, safe=False)
        assert "may or may not have been applied" in str(err.value)


def test_connection_refused_is_retried_then_reported():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here now
    client, sleeps = _client("http://127.0.0.1:%d" % port)
    with pytest.raises(PoolConnectionError) as err:
        client.request("POST", "/deployment", body={}, safe=False)  # refused: certainly not sent
    assert "cannot reach" in str(err.value)
    assert len(sleeps) == 3
