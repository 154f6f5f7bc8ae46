"""Clients for the lab tests: a plunder client that trusts the cert from plunderclient.yaml,
a raw metal-api client with HMAC signing, metal-python, and the spec validator."""
import base64
import datetime
import hashlib
import hmac
import json
import os
import random
import sqlite3
import ssl
import string
import time
import urllib.error
import urllib.request

import jsonschema
import yaml

SPEC_PATH = os.path.join(os.path.dirname(__file__), "data", "metal-api.json")
PROJECT = "00000000-0000-0000-0000-000000000001"
PRIVATE_NET = "user-private-network"


class Plunder:
    """What pldrctl does: trust only the cert from plunderclient.yaml, discover paths, read envelopes."""

    def __init__(self, config_path):
        with open(config_path, encoding="utf-8") as fh:
            cfg = yaml.safe_load(fh)
        self.ctx = ssl.create_default_context(cadata=base64.b64decode(cfg["cert"]).decode())
        self.base = "https://%s:%d" % (cfg["address"], cfg["port"])

    def raw(self, method, path, body=None, content_type="application/json"):
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if content_type and data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
                return r.status, r.headers.get("Content-Type"), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type"), e.read()

    def call(self, method, path, body=None):
        status, ctype, data = self.raw(method, path, body)
        assert status == 200, (status, data)
        assert ctype == "application/json"
        assert data.endswith(b"\n")
        return json.loads(data)

    def discover(self, name, method):
        return self.call("GET", "/api/%s/%s" % (name, method))["payload"]["path"]

    def unleased(self):
        return self.call("GET", "/dhcp/unleased")["payload"] or []


def sign(key, auth_type, method, date=None, salt=None):
    date = date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    salt = salt or "".join(random.choice(string.ascii_letters) for _ in range(24))
    mac = hmac.new(key.encode(), (date + method + salt).encode(), hashlib.sha256).hexdigest()
    return {"X-Date": date, "X-Data-Salt": salt, "Authorization": "%s %s" % (auth_type, mac)}


class Metal:
    """Raw metal-api client (status codes and bodies exactly as sent)."""

    def __init__(self, url, key, auth_type="Metal-Edit"):
        self.url = url
        self.key = key
        self.auth_type = auth_type

    def raw(self, method, path, body=None, headers=None, auth=True, content_type="application/json"):
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if auth:
            for k, v in sign(self.key, self.auth_type, method).items():
                req.add_header(k, v)
        if content_type and data is not None:
            req.add_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def ok(self, method, path, body=None, status=200):
        code, out = self.raw(method, path, body)
        assert code == status, (code, out)
        return out


def allocate_body(name, **extra):
    body = {"name": name, "hostname": name, "projectid": PROJECT, "partitionid": "mini-lab",
            "sizeid": "v1-small-x86", "imageid": "debian-12", "ssh_pub_keys": [],
            "networks": [{"networkid": PRIVATE_NET, "autoacquire": True}],
            "tags": ["fleet.baremetal.io/owner=ansible"]}
    body.update(extra)
    return body


_SPEC = None


def spec():
    global _SPEC
    if _SPEC is None:
        with open(SPEC_PATH, encoding="utf-8") as fh:
            _SPEC = json.load(fh)
    return _SPEC


def validate(instance, definition):
    """Validate against a definition of the real metal-api spec (Swagger 2.0 = JSON schema draft 4)."""
    schema = {"$ref": "#/definitions/" + definition, "definitions": spec()["definitions"]}
    jsonschema.Draft4Validator(schema).validate(instance)


def pool_snapshot(lab):
    """Every row of the pool (machines, events, ips, kv) as read by sqlite directly."""
    conn = sqlite3.connect("file:%s?mode=ro" % lab.pool_path, uri=True, timeout=30)
    try:
        out = {}
        for table in ("machines", "ips", "kv"):
            out[table] = conn.execute("SELECT * FROM %s ORDER BY 1" % table).fetchall()
        out["events"] = conn.execute("SELECT count(*), max(seq) FROM events").fetchall()
        return out
    finally:
        conn.close()


def wait_until(predicate, timeout, what="condition", step=1.0):
    """The first truthy value of ``predicate()``, polled every ``step`` seconds; an AssertionError
    naming ``what`` once ``timeout`` seconds have passed."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("%s not reached within %ss" % (what, timeout))
        time.sleep(step)


def vm_ssh(state_dir, mac, key, command):
    """Run ``command`` on a libvirt lab VM over its 127.0.0.1 forward (``STATE/vm/ssh.json``) with ``key``."""
    import subprocess

    with open(os.path.join(state_dir, "vm", "ssh.json")) as f:
        access = json.load(f)
    entry = access["machines"][mac]
    argv = ["ssh", "-F", "/dev/null", "-i", key, "-p", str(entry["ssh_port"]), "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=20", "-o", "StrictHostKeyChecking=yes",
            "-o", "UserKnownHostsFile=" + access["known_hosts"], "-o", "HostKeyAlias=" + entry["name"],
            "root@127.0.0.1", command]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)
