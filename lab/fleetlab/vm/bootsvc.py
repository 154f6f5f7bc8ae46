"""The lab's boot service: what iPXE, the installer and the installed OS talk to.

HTTP, bound inside the lab's network namespace on the bridge address (the VMs' only server):

``GET /boot.ipxe``             DHCP bootfile: chains to ``/ipxe?mac=${net0/mac}``
``GET /ipxe?mac=M``            the script for M, chosen by ``decide(mac)``:
                               ``loop``    plunder's reboot script (banner, short wait, reboot)
                               ``install`` the installer kernel + initramfs (``fleetlab.mode=install``)
                               ``disk``    ``exit``: the firmware goes on to the next boot device
``GET /files/NAME``            installer and OS image artifacts (``vmlinuz``, ``initrd.gz``,
                               ``os.map``, ``os.data``)
``GET /machine/M.tar``         this machine's files, written onto the installed OS by the installer
``GET /report?mac=M&event=E``  progress from the installer (``installing``, ``written``, ``failed``)
                               and from the installed OS (``phoned-home``)

Every request is appended to ``hits.jsonl`` in the state dir (time, client, path, MAC, answer).
"""
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from . import netns as _netns

PLUNDER_HEADER = (
    "#!ipxe\n"
    "echo .\necho .\necho .\necho .\n"
    "echo +-------------------- Plunder -------------------------------\n"
    "echo | \n"
    "echo |    address.: ${net0/ip}\n"
    "echo |    mac.....: ${net0/mac}  \n"
    "echo |    gateway.: ${net0/gateway} \n"
    "echo +------------------------------------------------------------\n"
    "echo .\necho .\necho .\necho .\n"
)

FILES = ("vmlinuz", "initrd.gz", "os.map", "os.data")


def loop_script(wait):
    return (PLUNDER_HEADER
            + "echo MAC ADDRESS is set to reboot, plunder will reboot the server in %d seconds\n" % wait
            + ("sleep %d\n" % wait if wait else "")
            + "reboot\n")


def install_script(base, image="os"):
    return ("#!ipxe\n"
            "echo fleetlab: installing ${net0/mac}\n"
            "kernel %s/files/vmlinuz console=ttyS0,115200 quiet loglevel=3 fleetlab.mode=install "
            "fleetlab.base=%s fleetlab.image=%s\n"
            "initrd %s/files/initrd.gz\n"
            "boot\n" % (base, base, image, base))


DISK_SCRIPT = "#!ipxe\necho fleetlab: booting from local disk\nexit\n"


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sock, handler, service):
        self.service = service
        # the socket was made (inside the namespace) by the caller; do not bind again
        super().__init__(sock.getsockname()[:2], handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.server_address = sock.getsockname()[:2]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    server_version = "fleetlab-boot/1"

    def log_message(self, *args):
        pass

    def _reply(self, code, body, ctype="text/plain"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server naming)
        svc = self.server.service
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        mac = (q.get("mac") or "").lower()
        answer = ""
        try:
            if url.path == "/boot.ipxe":
                answer = "chain"
                return self._reply(200, "#!ipxe\nchain %s/ipxe?mac=${net0/mac}\n" % svc.base)
            if url.path == "/ipxe":
                answer = svc.decide(mac)
                if answer == "install":
                    return self._reply(200, install_script(svc.base))
                if answer == "disk":
                    return self._reply(200, DISK_SCRIPT)
                return self._reply(200, loop_script(svc.loop_wait))
            if url.path.startswith("/files/"):
                name = url.path[len("/files/"):]
                answer = name
                return self._send_file(name)
            if url.path.startswith("/machine/") and url.path.endswith(".tar"):
                mac = url.path[len("/machine/"):-len(".tar")].lower()
                data = svc.machine_files(mac)
                answer = "tar" if data else "none"
                if not data:
                    return self._reply(404, "no files for %s\n" % mac)
                return self._reply(200, data, "application/x-tar")
            if url.path == "/report":
                answer = q.get("event", "") + (" " + q["detail"] if q.get("detail") else "")
                svc.report(mac, q.get("event", ""), q.get("detail", ""), q.get("uptime"))
                return self._reply(200, "ok\n")
            answer = "404"
            return self._reply(404, "not found\n")
        except Exception as exc:  # a driver error must not kill the service
            answer = "error: %s" % exc
            try:
                self._reply(500, "error\n")
            except OSError:
                pass
        finally:
            svc.log_hit(self.client_address[0], url.path, mac, answer)

    def _send_file(self, name):
        svc = self.server.service
        if name not in FILES:
            return self._reply(404, "not found\n")
        path = os.path.join(svc.files_dir, name)
        size = os.path.getsize(path)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.flush()
        with open(path, "rb") as f:
            self.connection.sendfile(f)


class BootService:
    """``decide(mac) -> 'loop'|'install'|'disk'``, ``machine_files(mac) -> bytes|None``,
    ``report(mac, event, detail, uptime)`` are the lab's callbacks."""

    def __init__(self, ns, address, port, files_dir, log_path, decide, machine_files, report, loop_wait=2):
        self.ns = ns
        self.address = address
        self.port = port
        self.base = "http://%s:%d" % (address, port)
        self.files_dir = files_dir
        self.log_path = log_path
        self.decide = decide
        self.machine_files = machine_files
        self.report = report
        self.loop_wait = loop_wait
        self._log_lock = threading.Lock()
        self._server = None
        self._thread = None

    def start(self):
        sock = _netns.listen(self.ns, self.address, self.port)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._server = _Server(sock, _Handler, self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="boot-service", daemon=True)
        self._thread.start()

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def log_hit(self, client, path, mac, answer):
        rec = {"t": round(time.time(), 3), "client": client, "path": path, "mac": mac, "answer": answer}
        with self._log_lock:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
