"""Run the lab: open the pool, start the driver, serve both faces, write the client files.

Files in the state directory:

* ``pool.sqlite`` (+ WAL) -- the machine pool;
* ``plunderclient.yaml`` -- a real plunder client config (address, base64 cert, port);
* ``metal.env`` -- ``METALCTL_API_URL``, ``METALCTL_HMAC``, ``METALCTL_HMAC_AUTH_TYPE``;
* ``lab.json`` -- pid, URLs, ports and the three HMAC keys (mode 0600);
* ``secrets.json`` -- the HMAC keys kept across restarts (mode 0600);
* ``driver.json`` -- the driver's health: ``starting``, ``ready`` or ``failed`` with the cause;
* ``control.sock`` -- the control socket of ``fleetlab fault`` (mode 0600, see :class:`_Control`);
* ``faults.json`` -- the active faults (written by the driver);
* ``fleetlab.log`` -- the server log; ``fleetlab.pid``.

The client files are written only after both faces accept connections, and removed
first on start, so their presence means "the lab is up".
"""

import base64
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import socketserver
import ssl
import threading
import time

import yaml
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from . import store as P
from .certs import ensure_cert
from .drivers import load_driver
from .drivers.base import FAULT_KINDS, read_faults
from .faces.metal import AUTH_TYPES, MetalFace
from .faces.plunder import PlunderFace

CLIENT_FILES = ("plunderclient.yaml", "metal.env", "lab.json")
CONTROL_SOCKET = "control.sock"
TOKENS_ENV = "FLEETLAB_METAL_TOKENS"  # ROLE=TOKEN[,ROLE=TOKEN...]


def secret_env(role):
    """The environment variable that carries the HMAC key of ``role`` (view, edit, admin)."""
    return "FLEETLAB_HMAC_%s_KEY" % role.upper()
log = logging.getLogger("fleetlab")


class _Handler(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):
        logging.getLogger("fleetlab.access").info('%s "%s" %s', self.address_string(), self.requestline, code)

    def log_error(self, format, *args):
        logging.getLogger("fleetlab.access").warning(format, *args)


class _Server(ThreadedWSGIServer):
    """Werkzeug's threaded server. TLS handshakes run in the connection's own thread (a client
    that connects and stays silent cannot stall the accept loop), and each connection thread
    closes its pool connection at the end. Connections are bounded: at most ``max_connections``
    open at once (more are closed at once), and one that stays silent for ``idle_timeout`` s
    is closed, so idle clients cannot pile up threads."""

    daemon_threads = True
    pool = None
    tls = None  # ssl.SSLContext of an HTTPS face
    handshake_timeout = 30.0
    idle_timeout = 60.0
    max_connections = 256

    def server_activate(self):
        super().server_activate()
        self._slots = threading.BoundedSemaphore(self.max_connections)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            log.warning("%d connections open: closing the one from %s", self.max_connections, client_address)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            request.settimeout(self.handshake_timeout if self.tls is not None else self.idle_timeout)
            if self.tls is not None:
                try:
                    request = self.tls.wrap_socket(request, server_side=True)
                    request.settimeout(self.idle_timeout)
                except (OSError, ssl.SSLError) as exc:
                    log.debug("TLS handshake with %s failed: %s", client_address, exc)
                    self.shutdown_request(request)
                    return
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()
            if self.pool is not None:
                self.pool.close()


class _ControlHandler(socketserver.StreamRequestHandler):
    timeout = 30  # seconds a client may take to send its request

    def handle(self):
        try:
            request = json.loads(self.rfile.readline(65536) or b"null")
            answer = self.server.lab.control(request)
        except (ValueError, P.PoolError) as exc:
            answer = {"error": getattr(exc, "message", None) or str(exc)}
        except Exception as exc:  # a bug of the lab: answer it, keep serving
            log.exception("control socket")
            answer = {"error": "lab error: %s" % exc}
        self.wfile.write((json.dumps(answer) + "\n").encode())

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.lab.pool.close()


class _Control(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """The lab's control channel: ``STATE/control.sock``, a Unix socket only the lab's owner may
    connect to (mode 0600: the file system is the authentication, no key travels). One JSON request
    per connection, one JSON answer (:meth:`Lab.control`). It reaches the process that owns the
    driver, so ``fleetlab fault`` changes machines exactly as the driver's own calls do, and it is
    not part of either API face."""

    daemon_threads = True

    def __init__(self, path, lab):
        self.lab = lab
        if len(path.encode()) >= 108:
            raise OSError("the state directory's path is too long for a Unix socket: %s" % path)
        try:
            os.remove(path)  # left by a lab that was killed (the state dir lock says none runs)
        except FileNotFoundError:
            pass
        super().__init__(path, _ControlHandler)
        os.chmod(path, 0o600)


def _guarded(app, driver, refuse):
    """``app`` answering every request with ``refuse(cause)`` -> (status, body) once ``driver``
    has failed: a lease or provision against machines that cannot run fails at once, with the cause."""

    def guarded(environ, start_response):
        cause = driver.failed
        if cause is None:
            return app(environ, start_response)
        status, body = refuse("fleetlab: the lab's %s driver failed: %s" % (driver.name, cause))
        data = (json.dumps(body) + "\n").encode()
        start_response("%d %s" % (status, "Service Unavailable" if status == 503 else "OK"),
                       [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return guarded


class Lab:
    """The pool, the driver and both faces of one running lab."""

    def __init__(self, opts):
        self.opts = opts
        self.state_dir = os.path.abspath(opts.state)
        os.makedirs(self.state_dir, exist_ok=True)
        # one server per state directory (the kernel drops the lock when the process dies)
        self._lock = open(os.path.join(self.state_dir, "fleetlab.lock"), "a+")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise SystemExit("fleetlab: another server is running on %s" % self.state_dir)
        driver_opts = {"preset": opts.preset, "loop_period": opts.loop_period,
                       "install_seconds": opts.install_seconds, "wipe_seconds": opts.wipe_seconds,
                       "state_dir": self.state_dir, "bind": opts.bind}
        if getattr(opts, "hypervisor", None):
            driver_opts["hypervisors"] = list(opts.hypervisor)
        for item in opts.driver_opt or []:
            key, _, value = item.partition("=")
            driver_opts[key.replace("-", "_")] = value
        self.driver = load_driver(opts.driver, driver_opts)
        network = self.driver.lease_network or opts.lease_network
        self.pool = P.open_pool(self.state_dir, lease_network=network)
        if self.driver.virtual_loop:
            self.pool.loop_period = self.driver.loop_period
        machines = []
        if opts.pool:
            machines = P.load_pool_file(opts.pool)
        elif opts.machines or self.pool.count() == 0:
            machines = P.generate_machines(opts.machines if opts.machines is not None else 24)
        if machines:
            added = self.pool.populate(machines)
            log.info("pool: %d machines (%d new)", self.pool.count(), added)
        self.keys = self._hmac_keys()
        tokens = {}
        from_env = [t for t in os.environ.get(TOKENS_ENV, "").split(",") if t.strip()]
        for item in list(opts.metal_token or []) + from_env:
            role, _, token = item.partition("=")
            if role not in AUTH_TYPES or not token:
                raise SystemExit("--metal-token expects ROLE=TOKEN with ROLE view, edit or admin")
            tokens[token] = role
        self.plunder = PlunderFace(self)
        self.metal = MetalFace(self, base_path=opts.metal_base_path, hmac_keys=self.keys, tokens=tokens)
        self.servers = []
        self.control_server = None

    def control(self, request):
        """A control request: ``{"machine": NAME, "fault": KIND or "clear"}`` (NAME as
        :meth:`fleetlab.store.Pool.lookup` takes it). Answers ``{"machine": {...}, "fault": the
        active fault or None, "cleared": the cleared fault or None}`` or ``{"error": ...}``."""
        if not isinstance(request, dict):
            return {"error": "bad request"}
        name = str(request.get("machine") or "")
        kind = request.get("fault")
        if kind != "clear" and kind not in FAULT_KINDS:
            return {"error": "unknown fault %r (known: %s)" % (kind, ", ".join(FAULT_KINDS))}
        found = self.pool.lookup(name)
        if not found and kind == "clear":  # released since: the names it had when the fault began
            found = [self.pool.get(mid) for mid in self.driver.faulted_as(name)]
        if not found:
            return {"error": "no machine %r in the pool (give its id, MAC, lease name or hostname)" % name}
        if len(found) > 1:
            return {"error": "%r names %d machines (%s): give its id or MAC"
                             % (name, len(found), ", ".join(m["mac"] for m in found[:6]))}
        cleared = None
        if kind == "clear":
            m, cleared = self.driver.clear_fault(found[0]["id"])
        else:
            try:
                m, _ = self.driver.inject_fault(found[0]["id"], kind)
            except ValueError as exc:  # the machine cannot have it now: nothing was recorded
                return {"error": str(exc)}
        return {"machine": {k: m[k] for k in ("id", "mac", "state", "power", "lease_name", "hostname")},
                "fault": self.driver.fault_of(m), "cleared": cleared}

    def _hmac_keys(self):
        path = os.path.join(self.state_dir, "secrets.json")
        keys = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                keys = json.load(fh)
        for role in ("view", "edit", "admin"):
            # the environment keeps them out of `ps`; the flags are for throw-away labs
            given = getattr(self.opts, "hmac_%s_key" % role, None) or os.environ.get(secret_env(role))
            if given:
                keys[role] = given
            keys.setdefault(role, "fleetlab-%s-%s" % (role, secrets.token_hex(12)))
        _write(path, json.dumps(keys, indent=2) + "\n", 0o600)
        return keys

    def start(self):
        for name in CLIENT_FILES:
            try:
                os.remove(os.path.join(self.state_dir, name))
            except FileNotFoundError:
                pass
        self.driver.start(self.pool)
        for mid in read_faults(self.state_dir):
            m = self.pool.get(mid)
            if m is not None and m["power"] != "off" and self.driver.held_off(m):
                self.driver.switch_power(mid, "off")  # recorded, but the lab stopped before it was off
        bind = self.opts.bind
        ssl_ctx = None
        cert_pem = b""
        if not self.opts.plunder_insecure:
            cert_path, key_path, cert_pem = ensure_cert(self.state_dir, [bind])
            ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_ctx.load_cert_chain(cert_path, key_path)
        # plunder answers errors in its envelope (HTTP 200), metal-api with a status and a message
        plunder_app = _guarded(self.plunder, self.driver, lambda msg: (200, {"error": msg}))
        metal_app = _guarded(self.metal, self.driver, lambda msg: (503, {"statuscode": 503, "message": msg}))
        _Server.idle_timeout = float(getattr(self.opts, "idle_timeout", None) or _Server.idle_timeout)
        _Server.max_connections = int(getattr(self.opts, "max_connections", None) or _Server.max_connections)
        plunder_srv = _Server(bind, self.opts.plunder_port, plunder_app, handler=_Handler)
        if ssl_ctx is not None:
            plunder_srv.tls = ssl_ctx
            plunder_srv.ssl_context = ssl_ctx  # werkzeug reports wsgi.url_scheme https
        metal_srv = _Server(bind, self.opts.metal_port, metal_app, handler=_Handler)
        plunder_srv.pool = metal_srv.pool = self.pool
        self.servers = [plunder_srv, metal_srv]
        for srv, name in ((plunder_srv, "plunder"), (metal_srv, "metal")):
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, name=name, daemon=True)
            t.start()
        self.plunder_port = plunder_srv.server_port
        self.metal_port = metal_srv.server_port
        host = "[%s]" % bind if ":" in bind else bind
        scheme = "http" if self.opts.plunder_insecure else "https"
        self.plunder_url = "%s://%s:%d" % (scheme, host, self.plunder_port)
        base = "/" + self.opts.metal_base_path.strip("/") if self.opts.metal_base_path.strip("/") else ""
        self.metal_url = "http://%s:%d%s" % (host, self.metal_port, base)
        try:
            self.control_server = _Control(os.path.join(self.state_dir, CONTROL_SOCKET), self)
        except OSError as exc:
            log.warning("no control socket, `fleetlab fault` cannot reach this lab: %s", exc)
        else:
            threading.Thread(target=self.control_server.serve_forever, kwargs={"poll_interval": 0.2},
                             name="control", daemon=True).start()
        # both faces listen: now the client files
        auth_role = self.opts.metal_env_role
        # the address clients dial (and verify against the certificate's SANs)
        address = bind
        if bind in ("0.0.0.0", "::"):
            address = socket.gethostname()
        elif ":" in bind:
            address = "localhost" if bind == "::1" else "[%s]" % bind
        _write(os.path.join(self.state_dir, "plunderclient.yaml"), yaml.safe_dump(
            {"address": address, "cert": base64.b64encode(cert_pem).decode(), "port": self.plunder_port},
            default_flow_style=False), 0o644)
        _write(os.path.join(self.state_dir, "lab.json"), json.dumps({
            "pid": os.getpid(), "driver": self.opts.driver, "state_dir": self.state_dir,
            "plunder_url": self.plunder_url, "plunder_port": self.plunder_port, "metal_url": self.metal_url,
            "metal_port": self.metal_port, "bind": bind, "hmac_keys": self.keys,
            "machines": self.pool.count(), "started": time.time()}, indent=2) + "\n", 0o600)
        _write(os.path.join(self.state_dir, "metal.env"),
               "METALCTL_API_URL=%s\nMETALCTL_HMAC=%s\nMETALCTL_HMAC_AUTH_TYPE=%s\n"
               % (self.metal_url, self.keys[auth_role], AUTH_TYPES[auth_role]), 0o600)
        _write(os.path.join(self.state_dir, "fleetlab.pid"), "%d\n" % os.getpid(), 0o644)
        log.info("plunder face %s, metal face %s, state %s", self.plunder_url, self.metal_url, self.state_dir)

    def stop(self):
        for srv in self.servers + ([self.control_server] if self.control_server else []):
            srv.shutdown()
            srv.server_close()
        if self.control_server is not None:
            try:
                os.remove(os.path.join(self.state_dir, CONTROL_SOCKET))
            except FileNotFoundError:
                pass
        self.driver.stop()
        try:
            os.remove(os.path.join(self.state_dir, "fleetlab.pid"))
        except FileNotFoundError:
            pass


def _write(path, text, mode):
    tmp = path + ".tmp%d" % os.getpid()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def serve(opts):
    """Run in the foreground until SIGTERM/SIGINT."""
    os.makedirs(opts.state, exist_ok=True)
    handlers = [logging.FileHandler(os.path.join(opts.state, "fleetlab.log"))]
    if not opts.quiet:
        handlers.append(logging.StreamHandler())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        handlers=handlers, force=True)
    if opts.no_access_log:
        logging.getLogger("fleetlab.access").setLevel(logging.WARNING)
    lab = Lab(opts)
    stop = threading.Event()

    def _sig(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, _sig)
    signal.signal(signal.SIGINT, _sig)
    lab.start()
    try:
        while not stop.is_set():
            stop.wait(1.0)
    finally:
        log.info("shutting down")
        lab.stop()
    return 0
