"""CPU the kubeadm test double's kubelet uses on an idle control plane, and what a pass over the
static pod manifests costs parsed and cached.

Initialises a control plane of the double on 127.0.0.1 (etcd, the API server stand-in, the
kubelet), waits until it is idle, reads the kubelet process's CPU time from /proc over a window,
then times the manifest pass (the kubelet's loop runs it five times a second) with every file
parsed and with the cache, side by side. On lab VMs under TCG the CPU figures are about 15 times
these.

    .venv/bin/python bench/bench_kubelet_double.py [--window 20]
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "lab"))

from fleetlab.kubeadm_double import kubelet  # noqa: E402
from fleetlab.kubeadm_double.testing import INIT_CONFIG, NodeRoot, cluster_lock, free_port  # noqa: E402


def _cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pass_cost(manifest_dir, passes, cached):
    node = kubelet.Kubelet("/", None, {})
    names = sorted(n for n in os.listdir(manifest_dir) if n.endswith(".yaml"))
    started = time.process_time()
    for _ in range(passes):
        if not cached:
            node.manifests.clear()
        for name in names:
            node._manifest(os.path.join(manifest_dir, name))
    return (time.process_time() - started) / passes, len(names)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--window", type=float, default=20.0, help="seconds of idle to measure")
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="bench-kubelet-", dir="/tmp")
    with cluster_lock():
        cp = NodeRoot(os.path.join(base, "cp1"), "cp1")
        try:
            port = free_port()
            cp.start_kubelet()
            cp.kubeadm("init", "--config", cp.file("/root/kubeadm.yaml", INIT_CONFIG.format(port=port, name="cp1")),
                       check=True)
            time.sleep(5)  # the static pods settle
            pid = cp.kubelet.pid
            before, t0 = _cpu_seconds(pid), time.monotonic()
            time.sleep(args.window)
            used, wall = _cpu_seconds(pid) - before, time.monotonic() - t0
            manifests = os.path.join(cp.path, "etc/kubernetes/manifests")
            parsed, count = _pass_cost(manifests, 200, cached=False)
            cached, _ = _pass_cost(manifests, 200, cached=True)
        finally:
            cp.close()
            shutil.rmtree(base, ignore_errors=True)
    print("kubelet double, idle control plane: %.2f CPU s in %.1f s = %.1f%% of a core" % (used, wall, 100 * used / wall))
    print("manifest pass (%d files): parsed %.2f ms, cached %.3f ms: %.0fx less; at 5 passes/s "
          "parsed would be %.1f%% of a core" % (count, parsed * 1e3, cached * 1e3, parsed / cached, 5 * parsed * 100))


if __name__ == "__main__":
    main()
