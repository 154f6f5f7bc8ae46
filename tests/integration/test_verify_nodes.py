"""playbooks/tasks/verify-nodes.yml (create-cluster's verification) with kubernetes.core.k8s_info
against a cluster of kubeadm TEST DOUBLE nodes on 127.0.0.1."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import yaml

from fleetlab.kubeadm_double.testing import INIT_CONFIG, NodeRoot, cluster_lock, free_port

from playbook_runner import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.lab]


@pytest.fixture
def double_cluster():
    # etcd's ports on 127.0.0.1: one cluster of the double at a time on this host
    with cluster_lock():
        yield from _double_cluster()


def _double_cluster():
    base = tempfile.mkdtemp(prefix="kv-", dir="/tmp")
    nodes = []
    try:
        cp = NodeRoot(os.path.join(base, "cp1"), "cp1")
        nodes.append(cp)
        port = free_port()
        cp.start_kubelet()
        cfg = cp.file("/root/kubeadm.yaml", INIT_CONFIG.format(port=port, name="cp1"))
        init = cp.kubeadm("init", "--config", cfg, check=True)
        token = re.search(r"--token (\S+)", init.stdout).group(1)
        ca_hash = re.search(r"--discovery-token-ca-cert-hash (\S+)", init.stdout).group(1)
        worker = NodeRoot(os.path.join(base, "w1"), "w1")
        nodes.append(worker)
        worker.start_kubelet()
        worker.kubeadm("join", "127.0.0.1:%d" % port, "--token", token, "--discovery-token-ca-cert-hash", ca_hash,
                       check=True)
        yield cp
    finally:
        for node in nodes:
            node.close()
        shutil.rmtree(base, ignore_errors=True)


def _verify(tmp_path, kubeconfig, expected, timeout, attempt_timeout=60):
    play = [{"name": "verify", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "tasks": [{"name": "verify", "ansible.builtin.include_tasks":
                        os.path.join(ROOT, "playbooks", "tasks", "verify-nodes.yml"),
                        "vars": {"_fleet_kubeconfig": kubeconfig, "_fleet_expected_nodes": expected,
                                 "cluster_verify_timeout": timeout, "cluster_verify_delay": 1,
                                 "cluster_verify_attempt_timeout": attempt_timeout}},
                       {"name": "show", "ansible.builtin.debug": {"var": "cluster_nodes"}}]}]
    book = tmp_path / "verify.yml"
    book.write_text(yaml.safe_dump(play))
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0",
               ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([os.path.join(ROOT, "build", "collections")] + site))
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(book),
                           "-e", "ansible_python_interpreter=%s" % sys.executable],
                          capture_output=True, text=True, env=env, timeout=300)
    data = json.loads(proc.stdout[proc.stdout.index("{"):])
    return proc, data


def _failure(data):
    """The message of the task that failed the play (the last one that failed: a rescued one comes before)."""
    failed = [task["hosts"]["localhost"].get("msg", "") for task in data["plays"][0]["tasks"]
              if task["hosts"].get("localhost", {}).get("failed")]
    return failed[-1] if failed else None


def test_verify_waits_for_ready_nodes_through_the_api(double_cluster, tmp_path):
    cp = double_cluster
    admin = os.path.join(cp.path, "etc/kubernetes/admin.conf")
    # no pod network yet: the nodes are registered but NotReady, so verification must fail, naming them
    proc, data = _verify(tmp_path, admin, 2, timeout=3)
    assert proc.returncode != 0
    message = _failure(data)
    assert message.startswith("Waited 3 s: 2 of 2 nodes are registered (") and "not Ready: " in message, message
    assert sorted(message.split("not Ready: ")[1].rstrip(".").split(", ")) == ["cp1", "w1"]
    manifest = cp.file("/root/flannel.yaml", yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-flannel"}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet",
         "metadata": {"name": "kube-flannel-ds", "namespace": "kube-flannel"}, "spec": {}}]))
    cp.run("kubectl", "--kubeconfig", admin, "apply", "-f", manifest, check=True)
    proc, data = _verify(tmp_path, admin, 2, timeout=30)
    assert proc.returncode == 0, proc.stdout[-3000:]
    shown = [t for t in data["plays"][0]["tasks"] if t["task"]["name"] == "show"][0]["hosts"]["localhost"]
    assert sorted(shown["cluster_nodes"]) == ["cp1 v1.37.1", "w1 v1.37.1"]
    # expecting a third node that never joins fails within the timeout
    proc, data = _verify(tmp_path, admin, 3, timeout=3)
    assert proc.returncode != 0
    assert "2 of 3 nodes are registered" in _failure(data) and "not Ready" not in _failure(data)


def test_verify_ends_when_the_api_server_hangs(tmp_path):
    """An endpoint that accepts connections and never answers (the client has no request timeout):
    the wait ends after cluster_verify_timeout + cluster_verify_attempt_timeout, naming the cause."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    kubeconfig = tmp_path / "hung.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "hung",
        "clusters": [{"name": "hung", "cluster": {"server": "https://127.0.0.1:%d" % listener.getsockname()[1],
                                                  "insecure-skip-tls-verify": True}}],
        "users": [{"name": "hung", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "hung", "context": {"cluster": "hung", "user": "hung"}}]}))
    try:
        started = time.monotonic()
        proc, data = _verify(tmp_path, str(kubeconfig), 1, timeout=2, attempt_timeout=4)
        took = time.monotonic() - started
    finally:
        listener.close()
    assert proc.returncode != 0
    message = _failure(data)
    assert message.startswith("Waited 2 s: 0 of 1 nodes are registered.") and "Last error from the API:" in message
    assert "no answer from the API server (Task failed: Timed out after 6 second" in message, message
    # 6 s of waiting, plus ansible-playbook's own start: far from an endless hang
    assert took < 60, took
