"""Network namespaces from inside one Python process.

A Linux thread can enter a network namespace on its own (setns with CLONE_NEWNET affects only the
calling thread), and a socket stays in the namespace it was created in. So the lab creates the boot
service's listening socket and every connection to a VM in a short-lived thread that entered the
lab's namespace, and serves them from ordinary threads. ``Forwarder`` uses that to expose a VM's
port (SSH) on 127.0.0.1 of the host: ``ssh -p <port> root@127.0.0.1`` reaches the VM inside the
namespace, and nothing in the host namespace gets a non-loopback address.
"""
import ctypes
import ctypes.util
import os
import socket
import subprocess
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def netns_path(name):
    return os.path.join("/run/netns", name)


def exists(name):
    return os.path.exists(netns_path(name))


def create(name):
    """``ip netns add NAME`` with its loopback up; returns False when it already existed."""
    if exists(name):
        return False
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    return True


def delete(name):
    if exists(name):
        subprocess.run(["ip", "netns", "del", name], check=False)


def run_in(name, fn, *args, **kwargs):
    """Call ``fn`` in a new thread that entered namespace ``name`` and return its result.
    With ``name`` None, ``fn`` runs in the current namespace."""
    if not name:
        return fn(*args, **kwargs)
    box = {}

    def target():
        try:
            fd = os.open(netns_path(name), os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, "setns(%s): %s" % (name, os.strerror(err)))
            finally:
                os.close(fd)
            box["result"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller
            box["error"] = exc

    t = threading.Thread(target=target, name="netns-%s" % name, daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("result")


def connect(name, address, port, timeout=5.0):
    """A TCP connection to ``address:port`` made from inside namespace ``name``."""

    def _connect():
        return socket.create_connection((address, port), timeout=timeout)

    return run_in(name, _connect)


def listen(name, address, port=0, backlog=64):
    """A listening TCP socket bound to ``address:port`` inside namespace ``name``."""

    def _listen():
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address, port))
        s.listen(backlog)
        return s

    return run_in(name, _listen)


def _pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:
                s.shutdown(how)
            except OSError:
                pass


class Forwarder:
    """127.0.0.1:<port> in the host namespace -> ``target:target_port`` inside namespace ``ns``."""

    def __init__(self, ns, target, target_port, bind="127.0.0.1", port=0):
        self.ns = ns
        self.target = target
        self.target_port = target_port
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((bind, port))
        self._sock.listen(16)
        self.address, self.port = self._sock.getsockname()[:2]
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="fwd-%s" % self.port, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client):
        try:
            upstream = connect(self.ns, self.target, self.target_port, timeout=5.0)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        t = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        t.start()
        _pump(client, upstream)
        t.join()
        client.close()
        upstream.close()

    def close(self):
        self._closed = True
        try:
            self._sock.close()
        except OSError:
            pass
