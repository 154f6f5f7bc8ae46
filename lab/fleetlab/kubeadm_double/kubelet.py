"""A kubelet stand-in (TEST DOUBLE).

Started by systemd from the unit and drop-in that the lab's packages ship (the same
flags kubeadm's drop-in passes). Like the real kubelet it exits when its configuration
file is missing (systemd restarts it until kubeadm has written it), runs the static
pods it knows from ``staticPodPath`` (``kube-apiserver``, run as the API stand-in, and ``etcd``, run
with the real etcd binary as the container runtime would run its image),
registers its node with the client certificate in ``--kubeconfig`` and posts node status
with the container runtime's health every ``nodeStatusUpdateFrequency``.
"""
import argparse
import os
import platform
import signal
import subprocess
import sys
import time

import yaml

from . import own_version, pki, preflight, schema
from .client import APIError, Client


POD_PID_DIR = "/run/fleet-kubelet-double/pods"
RUNNABLE = ("kube-apiserver", "etcd")
LOG_FILES = {"kube-apiserver": "/var/log/fleet-kube-apiserver-double.log", "etcd": "/var/log/fleet-etcd.log"}
# where the lab's package puts Debian's etcd binary (the double's stand-in for the etcd image)
PACKAGED_ETCD = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "images", "etcd", "usr", "bin", "etcd")


def etcd_binary():
    """The real etcd this kubelet runs: FLEET_DOUBLE_ETCD, the packaged image, or etcd on PATH."""
    import shutil
    for candidate in (os.environ.get("FLEET_DOUBLE_ETCD"), PACKAGED_ETCD, shutil.which("etcd")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("no etcd binary: the lab's kubelet package ships one; elsewhere set FLEET_DOUBLE_ETCD")


def _rooted_flag(root, arg):
    """``--flag=/abs/path`` below ``root`` (URLs and plain values unchanged)."""
    if root in ("", "/") or not arg.startswith("--") or "=" not in arg:
        return arg
    flag, value = arg.split("=", 1)
    return "%s=%s" % (flag, _rooted(root, value)) if value.startswith("/") else arg


def _rooted(root, path):
    return os.path.join(root, path.lstrip("/"))


def _node_info(root, runtime_endpoint):
    def read(path, default=""):
        try:
            with open(_rooted(root, path)) as handle:
                return handle.read().strip()
        except OSError:
            return default

    os_image = "Linux"
    for line in read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            os_image = line.split("=", 1)[1].strip('"')
    return {"machineID": read("/etc/machine-id"), "systemUUID": read("/sys/class/dmi/id/product_uuid"),
            "bootID": read("/proc/sys/kernel/random/boot_id"), "kernelVersion": platform.release(),
            "osImage": os_image, "containerRuntimeVersion": "containerd://(via %s)" % runtime_endpoint,
            "kubeletVersion": own_version()}


class Kubelet:
    def __init__(self, root, args, config):
        self.root, self.args, self.config = root, args, config
        self.children = {}
        self.specs = {}
        self.manifests = {}  # path -> ((inode, mtime, size), spec)
        self.backoff = {}
        self.registered = False
        self.stop = False

    def static_pods(self):
        pod_dir = _rooted(self.root, self.config.get("staticPodPath", "/etc/kubernetes/manifests"))
        wanted = {}
        if os.path.isdir(pod_dir):
            for name in sorted(os.listdir(pod_dir)):
                if name.endswith(".yaml"):
                    spec = self._manifest(os.path.join(pod_dir, name))
                    if spec:
                        wanted[name] = spec
        for name, proc in list(self.children.items()):
            # a rewritten manifest (an upgrade, a renewal) replaces the pod, as the kubelet does
            changed = name in wanted and wanted[name] != self.specs.get(name)
            if name not in wanted or changed or proc.poll() is not None:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(30)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(5)
                elif not changed:  # it died: restart it with a growing back-off, as the kubelet does
                    delay = min(2 * self.backoff.get(name, (0, 5))[1], 60)
                    self.backoff[name] = (time.time() + delay, delay)
                    sys.stderr.write("kubelet-double: static pod %s exited (%s), back-off %ds\n"
                                     % (name, proc.returncode, delay))
                del self.children[name]
                self._forget_pid(name)
        for name, (command, image) in wanted.items():
            if name in self.children or time.time() < self.backoff.get(name, (0, 0))[0]:
                continue
            # the image's tag is the version of the program in it
            tag = image.rpartition(":")[2]
            env = dict(os.environ, FLEET_DOUBLE_VERSION=tag) if command[0] == "kube-apiserver" and tag else None
            log_path = _rooted(self.root, LOG_FILES[command[0]])
            os.makedirs(os.path.dirname(log_path), exist_ok=True)
            with open(log_path, "ab") as log:
                try:
                    self.children[name] = subprocess.Popen(self._argv(command), stdout=log, stderr=log, env=env)
                    self.specs[name] = (command, image)
                except OSError as exc:
                    sys.stderr.write("kubelet-double: cannot start static pod %s: %s\n" % (name, exc))
                    self.backoff[name] = (time.time() + 10, 10)
                    continue
            # what the container runtime would list: kubeadm reset stops these
            pid_file = self._pid_file(name)
            os.makedirs(os.path.dirname(pid_file), exist_ok=True)
            with open(pid_file, "w") as handle:
                handle.write("%d\n" % self.children[name].pid)

    def _manifest(self, path):
        """(command, image) of the manifest's runnable container, or None; parsed again only when
        the file changes (this loop runs five times a second)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        cached = self.manifests.get(path)
        if cached and cached[0] == key:
            return cached[1]
        with open(path) as handle:
            pod = yaml.safe_load(handle) or {}
        spec = None
        for container in (pod.get("spec") or {}).get("containers") or []:
            command = container.get("command") or []
            if command and command[0] in RUNNABLE:
                spec = (command, container.get("image") or "")
        self.manifests[path] = (key, spec)
        return spec

    def _argv(self, command):
        if command[0] == "kube-apiserver":
            return [sys.executable, "-m", "fleetlab.kubeadm_double", "kube-apiserver", "--root", self.root] + command[1:]
        # etcd is real: the image's binary is Debian's etcd, its paths below this root
        return [etcd_binary()] + [_rooted_flag(self.root, arg) for arg in command[1:]]

    def _pid_file(self, name):
        return os.path.join(_rooted(self.root, POD_PID_DIR), name + ".pid")

    def _forget_pid(self, name):
        try:
            os.remove(self._pid_file(name))
        except OSError:
            pass

    def runtime_ready(self):
        endpoint = self.args.container_runtime_endpoint or preflight.DEFAULT_CRI_SOCKET
        return preflight.runtime_answers(_rooted(self.root, endpoint[len("unix://"):]), timeout=2.0)

    def sync_node(self):
        kubeconfig = _rooted(self.root, self.args.kubeconfig)
        if not os.path.exists(kubeconfig):
            return
        client = Client.from_kubeconfig(kubeconfig, timeout=5.0)
        name = self.args.hostname_override or os.uname().nodename.lower()
        status = {"runtimeReady": self.runtime_ready(), "address": self.args.node_ip or "",
                  "nodeInfo": _node_info(self.root, self.args.container_runtime_endpoint or "")}
        try:
            if not self.registered:
                try:
                    client.request("POST", "/api/v1/nodes", {
                        "kind": "Node", "apiVersion": "v1", "address": status["address"],
                        "nodeInfo": status["nodeInfo"],
                        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                              "kubernetes.io/os": "linux",
                                                              "kubernetes.io/arch": "amd64"}}})
                except APIError as exc:
                    if exc.status != 409:
                        raise
                self.registered = True
            client.request("PUT", "/api/v1/nodes/%s/status" % name, status)
        except APIError as exc:
            if exc.status == 404:
                self.registered = False
            sys.stderr.write("kubelet-double: node status update failed: %s\n" % exc)
        except OSError as exc:
            sys.stderr.write("kubelet-double: API server not reachable: %s\n" % exc)

    def run(self):
        period = schema.parse_duration(self.config.get("nodeStatusUpdateFrequency", "10s"))
        period = float(os.environ.get("FLEET_DOUBLE_STATUS_PERIOD", period))
        next_sync = 0.0
        while not self.stop:
            self.static_pods()
            if time.time() >= next_sync:
                self.sync_node()
                # like the kubelet: until its node is registered, it tries again within a second
                next_sync = time.time() + (period if self.registered else 1.0)
            time.sleep(0.2)
        for proc in self.children.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.children.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def main(argv, root):
    parser = argparse.ArgumentParser(prog="kubelet (test double)")
    parser.add_argument("--config")
    parser.add_argument("--kubeconfig", default="/etc/kubernetes/kubelet.conf")
    parser.add_argument("--bootstrap-kubeconfig")
    parser.add_argument("--container-runtime-endpoint")
    parser.add_argument("--hostname-override")
    parser.add_argument("--node-ip")
    parser.add_argument("--pod-infra-container-image")
    parser.add_argument("--version", action="store_true")
    args = parser.parse_args(argv)  # unknown flags are fatal, as for the real kubelet
    if args.version:
        from . import own_version
        print("Kubernetes %s (fleetlab kubelet TEST DOUBLE)" % own_version())
        return 0
    if not args.config or not os.path.exists(_rooted(root, args.config)):
        sys.stderr.write('kubelet-double: failed to load kubelet config file, path: %s: no such file\n'
                         % args.config)
        return 1
    with open(_rooted(root, args.config)) as handle:
        config = yaml.safe_load(handle) or {}
    kubelet = Kubelet(root, args, config)

    def _stop(*_args):
        kubelet.stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    kubelet.run()
    return 0


__all__ = ["main", "pki"]
