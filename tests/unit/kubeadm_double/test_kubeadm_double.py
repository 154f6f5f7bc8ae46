"""The kubeadm test double must accept what kubeadm accepts and reject what kubeadm rejects."""
import json
import os
import re
import subprocess
import time

import pytest
import yaml

from cryptography import x509

from fleetlab.kubeadm_double.client import APIError
from fleetlab.kubeadm_double.testing import INIT_CONFIG, etcd_tools, free_port

from fleetlab.kubeadm_double import pki, schema

pytestmark = pytest.mark.lab


def _init(node, port, extra=(), config=None):
    cfg = node.file("/root/kubeadm.yaml", config or INIT_CONFIG.format(port=port, name=node.name))
    return node.kubeadm("init", "--config", cfg, *extra)


def _join_values(init_stdout):
    token = re.search(r"--token (\S+)", init_stdout).group(1)
    ca_hash = re.search(r"--discovery-token-ca-cert-hash (\S+)", init_stdout).group(1)
    key = re.search(r"--certificate-key (\S+)", init_stdout)
    return token, ca_hash, key.group(1) if key else None


def _wait_nodes(kubeconfig, names, ready=None, timeout=20):
    from kubernetes import client, config
    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    deadline = time.time() + timeout
    while True:
        nodes = {n.metadata.name: n for n in api.list_node().items}
        states = {name: [c.status for c in nodes[name].status.conditions if c.type == "Ready"][0]
                  for name in names if name in nodes}
        if len(states) == len(names) and (ready is None or all(s == ready for s in states.values())):
            return nodes
        if time.time() > deadline:
            raise AssertionError("nodes not as expected: %s" % states)
        time.sleep(0.3)


@pytest.fixture
def cluster(make_node):
    cp = make_node("cp1")
    port = free_port()
    cp.start_kubelet()
    result = _init(cp, port, ["--upload-certs"])
    assert result.returncode == 0, result.stderr
    return cp, port, result.stdout


# --- configuration ---------------------------------------------------------------------------------

def test_valid_v1beta4_documents_are_accepted():
    docs = schema.load_documents(INIT_CONFIG.format(port=6443, name="n1"))
    assert set(docs) == {"InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"}


@pytest.mark.parametrize("mutation, message", [
    (lambda t: t.replace("clusterName: lab", "clusterName: lab\nclusterNmae: typo"), 'unknown field "clusterNmae"'),
    (lambda t: t.replace("kubeadm.k8s.io/v1beta4", "kubeadm.k8s.io/v1beta3", 1), "old API spec"),
    (lambda t: t.replace("kubeadm.k8s.io/v1beta4", "kubeadm.k8s.io/v1beta9", 1), "no kind"),
    (lambda t: t.replace("kind: InitConfiguration", "kind: InitConfig"), 'no kind "InitConfig"'),
    (lambda t: t.replace("    - name: bind-address\n      value: 127.0.0.1", "    bind-address: 127.0.0.1"),
     "into a list"),
    (lambda t: t.replace("abcdef.0123456789abcdef", "ABCDEF.0123456789abcdef"), "bootstrap token is invalid"),
    (lambda t: t.replace("podSubnet: 10.244.0.0/16", "podSubnet: 10.244.0.0/99"), "couldn't parse subnet"),
    (lambda t: t.replace("encryptionAlgorithm: ECDSA-P256", "encryptionAlgorithm: DSA"), "Unsupported value"),
    (lambda t: t.replace("bindPort: {port}", "bindPort: \"6443\""), "into an int"),
    (lambda t: t.replace("cgroupDriver: systemd", "cgroupDriverr: systemd"), 'unknown field "cgroupDriverr"'),
    (lambda t: t.replace("ttl: 1h0m0s", "ttl: one hour"), "invalid duration"),
    (lambda t: t.replace("advertiseAddress: 127.0.0.1", "advertiseAddress: 127.0.0.300"), "valid IP address"),
])
def test_invalid_configuration_is_rejected(mutation, message):
    text = mutation(INIT_CONFIG).format(port=6443, name="n1")
    with pytest.raises(schema.ConfigError, match=re.escape(message)):
        schema.load_documents(text)


def test_join_configuration_requires_ca_pinning():
    text = """apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    token: abcdef.0123456789abcdef
    apiServerEndpoint: 10.0.0.1:6443
"""
    with pytest.raises(schema.ConfigError, match="unsafeSkipCAVerification"):
        schema.load_documents(text)
    ok = text + "    caCertHashes:\n      - sha256:" + "a" * 64 + "\n"
    assert "JoinConfiguration" in schema.load_documents(ok)
    with pytest.raises(schema.ConfigError, match="invalid hash"):
        schema.load_documents(text + "    caCertHashes:\n      - md5:abc\n")


def test_ignore_all_cannot_be_mixed():
    with pytest.raises(schema.ConfigError, match="'all'"):
        schema.ignored_checks("all,Swap", [])
    assert schema.ignored_checks("NumCPU", ["Mem"]) == {"numcpu", "mem"}


def test_config_validate_command(make_node):
    node = make_node("v1")
    good = node.file("/root/good.yaml", INIT_CONFIG.format(port=6443, name="v1"))
    assert node.kubeadm("config", "validate", "--config", good).returncode == 0
    bad = node.file("/root/bad.yaml", INIT_CONFIG.format(port=6443, name="v1").replace("dnsDomain", "x")
                    + "foo: bar\n")
    proc = node.kubeadm("config", "validate", "--config", bad)
    assert proc.returncode == 1 and 'unknown field "foo"' in proc.stderr


def test_version_range_is_enforced(make_node):
    node = make_node("ver")
    for version, message in (("v1.38.0", "minor release higher"), ("v1.35.0", ">= 1.36.0")):
        cfg = INIT_CONFIG.replace("v1.37.1", version)
        proc = _init(node, free_port(), config=cfg.format(port=1, name="ver"))
        assert proc.returncode == 1 and message in proc.stderr


# --- preflight -------------------------------------------------------------------------------------

@pytest.mark.parametrize("setup, check", [
    (lambda n: n.set_proc(swap=True), "[ERROR Swap]"),
    (lambda n: n.set_proc(modules=("overlay",), bridge=False),
     "[ERROR FileContent--proc-sys-net-bridge-bridge-nf-call-iptables]: /proc/sys/net/bridge/bridge-nf-call-iptables "
     "does not exist"),
    (lambda n: n.set_proc(modules=("br_netfilter",)), "[ERROR SystemVerification]: kernel module(s) not loaded"),
    (lambda n: n.set_proc(ip_forward="0"), "[ERROR FileContent--proc-sys-net-ipv4-ip_forward]"),
    (lambda n: n.set_proc(bridge="0"), "contents are not set to 1"),
    (lambda n: n.stop_cri(), "[ERROR CRI]: container runtime is not running"),
    (lambda n: n.set_proc(cpus=1), "[ERROR NumCPU]"),
    (lambda n: n.set_proc(mem_kb=1024 * 1024), "[ERROR Mem]"),
])
def test_preflight_failures_stop_init(make_node, setup, check):
    node = make_node("pf")
    setup(node)
    proc = _init(node, free_port())
    assert proc.returncode == 1
    assert check in proc.stderr
    assert not os.path.exists(os.path.join(node.path, "etc/kubernetes/pki/ca.crt"))


def test_runtime_socket_that_does_not_answer_is_an_error(make_node):
    import socket
    node = make_node("deaf")
    node.stop_cri()
    path = os.path.join(node.path, "var/run/containerd/containerd.sock")
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    deaf.bind(path)  # bound but never listening: connect is refused
    try:
        proc = _init(node, free_port())
        assert proc.returncode == 1 and "[ERROR CRI]" in proc.stderr and "Unavailable" in proc.stderr
    finally:
        deaf.close()


def test_named_checks_can_be_ignored_but_only_those(make_node):
    node = make_node("ign")
    node.set_proc(cpus=1, mem_kb=1024 * 1024, swap=True)
    proc = _init(node, free_port(), ["--ignore-preflight-errors=NumCPU,Mem"])
    assert proc.returncode == 1
    assert "[WARNING NumCPU]" in proc.stdout and "[WARNING Mem]" in proc.stdout
    assert "[ERROR Swap]" in proc.stderr


def test_init_refuses_to_run_twice(cluster):
    cp, port, _out = cluster
    proc = _init(cp, port)
    assert proc.returncode == 1
    assert "[ERROR FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml]" in proc.stderr
    assert "[ERROR Port-%d]" % port in proc.stderr


# --- init, API, join -------------------------------------------------------------------------------

def test_init_writes_kubeadm_files_and_serves_the_api(cluster):
    cp, port, out = cluster
    for rel in ("etc/kubernetes/admin.conf", "etc/kubernetes/kubelet.conf", "etc/kubernetes/super-admin.conf",
                "etc/kubernetes/pki/ca.crt", "etc/kubernetes/pki/ca.key", "etc/kubernetes/pki/apiserver.crt",
                "etc/kubernetes/pki/sa.pub", "etc/kubernetes/pki/etcd/ca.crt",
                "etc/kubernetes/manifests/kube-apiserver.yaml", "etc/kubernetes/manifests/etcd.yaml",
                "var/lib/kubelet/config.yaml", "var/lib/kubelet/kubeadm-flags.env"):
        assert os.path.exists(os.path.join(cp.path, rel)), rel
    with open(os.path.join(cp.path, "etc/kubernetes/pki/ca.crt"), "rb") as handle:
        ca_hash = pki.spki_hash(pki.load_cert(handle.read()))
    assert ca_hash in out
    kubeconfig = os.path.join(cp.path, "etc/kubernetes/admin.conf")
    nodes = _wait_nodes(kubeconfig, ["cp1"], ready="False")
    node = nodes["cp1"]
    assert "node-role.kubernetes.io/control-plane" in node.metadata.labels
    assert node.spec.taints[0].key == "node-role.kubernetes.io/control-plane"
    reason = [c for c in node.status.conditions if c.type == "Ready"][0].message
    assert "cni plugin not initialized" in reason

    from kubernetes import client, config
    api_client = config.new_client_from_config(config_file=kubeconfig)
    assert client.VersionApi(api_client).get_code().git_version == "v1.37.1"


def test_cni_manifest_makes_nodes_ready_and_diff_is_idempotent(cluster):
    """What roles/cni runs, with the real kubectl: server-side diff (1: changes), apply, diff (0)."""
    cp, _port, _out = cluster
    kubeconfig = "/etc/kubernetes/admin.conf"
    manifest = cp.file("/root/cni.yaml", yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-flannel"}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet",
         "metadata": {"name": "kube-flannel-ds", "namespace": "kube-flannel"},
         "spec": {"template": {"spec": {"containers": [{"name": "flannel", "image": "flannel:v1"}]}}}},
    ]))
    admin = os.path.join(cp.path, kubeconfig.lstrip("/"))
    ssa = ["--server-side", "--field-manager", "baremetal.fleet.cni", "--force-conflicts", "-f", manifest]
    # as with the real API server, a dry run into a namespace that does not exist yet fails
    diff = cp.run("kubectl", "--kubeconfig", admin, "diff", *ssa)
    assert diff.returncode > 1 and 'namespaces "kube-flannel" not found' in diff.stderr, diff.stderr
    applied = cp.run("kubectl", "--kubeconfig", admin, "apply", *ssa, check=True)
    assert "daemonset.apps/kube-flannel-ds serverside-applied" in applied.stdout
    assert cp.run("kubectl", "--kubeconfig", admin, "diff", *ssa).returncode == 0
    _wait_nodes(admin, ["cp1"], ready="True")
    # a changed manifest is a difference again, and applying it moves the generation
    cp.file("/root/cni.yaml", open(manifest).read().replace("flannel:v1", "flannel:v2"))
    diff = cp.run("kubectl", "--kubeconfig", admin, "diff", *ssa)
    assert diff.returncode == 1 and "+      - image: flannel:v2" in diff.stdout
    cp.run("kubectl", "--kubeconfig", admin, "apply", *ssa, check=True)
    shown = json.loads(cp.run("kubectl", "--kubeconfig", admin, "get", "-f", manifest, "-o", "json",
                              check=True).stdout)["items"][1]
    assert shown["metadata"]["generation"] == 2
    assert shown["spec"]["template"]["spec"]["containers"][0]["image"] == "flannel:v2"


def test_worker_join_with_token_and_hash(cluster, make_node):
    cp, port, out = cluster
    token, ca_hash, _key = _join_values(out)
    worker = make_node("w1")
    worker.start_kubelet()
    proc = worker.kubeadm("join", "127.0.0.1:%d" % port, "--token", token,
                          "--discovery-token-ca-cert-hash", ca_hash)
    assert proc.returncode == 0, proc.stderr
    assert "This node has joined the cluster" in proc.stdout
    assert os.path.exists(os.path.join(worker.path, "etc/kubernetes/kubelet.conf"))
    assert not os.path.exists(os.path.join(worker.path, "etc/kubernetes/admin.conf"))
    admin = os.path.join(cp.path, "etc/kubernetes/admin.conf")
    nodes = _wait_nodes(admin, ["cp1", "w1"])
    assert "node-role.kubernetes.io/control-plane" not in nodes["w1"].metadata.labels
    # a joined node cannot join again
    again = worker.kubeadm("join", "127.0.0.1:%d" % port, "--token", token, "--discovery-token-ca-cert-hash",
                           ca_hash)
    assert again.returncode == 1 and "FileAvailable--etc-kubernetes-kubelet.conf" in again.stderr


def test_join_rejects_wrong_ca_hash_and_unknown_or_wrong_tokens(cluster, make_node):
    cp, port, out = cluster
    token, ca_hash, _key = _join_values(out)
    worker = make_node("w2")
    wrong_hash = "sha256:" + "0" * 64
    proc = worker.kubeadm("join", "127.0.0.1:%d" % port, "--token", token, "--discovery-token-ca-cert-hash",
                          wrong_hash)
    assert proc.returncode == 1 and "none of the public keys" in proc.stderr
    proc = worker.kubeadm("join", "127.0.0.1:%d" % port, "--token", "zzzzzz.0123456789abcdef",
                          "--discovery-token-ca-cert-hash", ca_hash)
    assert proc.returncode == 1 and 'token id "zzzzzz" is invalid' in proc.stderr
    proc = worker.kubeadm("join", "127.0.0.1:%d" % port, "--token", token[:7] + "x" * 16,
                          "--discovery-token-ca-cert-hash", ca_hash)
    assert proc.returncode == 1 and "failed to verify JWS signature" in proc.stderr
    proc = worker.kubeadm("join", "127.0.0.1:%d" % port, "--token", token)
    assert proc.returncode == 1 and "caCertHashes" in proc.stderr
    assert not os.path.exists(os.path.join(worker.path, "etc/kubernetes/kubelet.conf"))


def test_token_create_print_join_command_and_join_by_config(cluster, make_node):
    cp, port, _out = cluster
    created = cp.kubeadm("token", "create", "--print-join-command", "--ttl", "10m", check=True)
    match = re.match(r"^kubeadm join (\S+) --token (\S+) --discovery-token-ca-cert-hash (\S+) $",
                     created.stdout.strip("\n"))
    assert match, created.stdout
    endpoint, token, ca_hash = match.groups()
    worker = make_node("w3")
    worker.start_kubelet()
    cfg = worker.file("/root/join.yaml", yaml.safe_dump({
        "apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "JoinConfiguration",
        "nodeRegistration": {"name": "w3"},
        "discovery": {"bootstrapToken": {"token": token, "apiServerEndpoint": endpoint,
                                         "caCertHashes": [ca_hash]}}}))
    mixed = worker.kubeadm("join", "--config", cfg, "--token", token)
    assert mixed.returncode == 1 and "can not mix '--config'" in mixed.stderr
    proc = worker.kubeadm("join", "--config", cfg)
    assert proc.returncode == 0, proc.stderr
    listing = cp.kubeadm("token", "list", check=True)
    assert token.split(".")[0] in listing.stdout


def test_control_plane_join_needs_the_right_certificate_key(cluster, make_node):
    cp, port, out = cluster
    token, ca_hash, key = _join_values(out)
    assert key
    cp2 = make_node("cp2", address="127.0.0.2")  # its own etcd member needs its own address
    port2 = free_port()
    base = ["join", "127.0.0.1:%d" % port, "--token", token, "--discovery-token-ca-cert-hash", ca_hash,
            "--control-plane", "--apiserver-bind-port", str(port2), "--apiserver-advertise-address", "127.0.0.2"]
    wrong = cp2.kubeadm(*(base + ["--certificate-key", "1" * 64]))
    assert wrong.returncode == 1 and "message authentication failed" in wrong.stderr
    cp2.start_kubelet()
    proc = cp2.kubeadm(*(base + ["--certificate-key", key]))
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(cp.path, "etc/kubernetes/pki/ca.key"), "rb") as a, \
            open(os.path.join(cp2.path, "etc/kubernetes/pki/ca.key"), "rb") as b:
        assert a.read() == b.read()
    nodes = _wait_nodes(os.path.join(cp2.path, "etc/kubernetes/admin.conf"), ["cp1", "cp2"])
    assert "node-role.kubernetes.io/control-plane" in nodes["cp2"].metadata.labels


def test_upload_certs_phase_issues_a_new_key(cluster):
    cp, _port, _out = cluster
    proc = cp.kubeadm("init", "phase", "upload-certs", "--upload-certs", check=True)
    assert re.search(r"^[0-9a-f]{64}$", proc.stdout, re.M)
    missing = cp.kubeadm("init", "phase", "upload-certs")
    assert missing.returncode == 1


def test_reset_removes_state_and_stops_the_node(cluster):
    cp, _port, _out = cluster
    assert cp.kubeadm("reset").returncode == 1  # asks for confirmation; stdin is empty
    proc = cp.kubeadm("reset", "-f", check=True)
    assert "does not clean CNI configuration" in proc.stdout
    for rel in ("etc/kubernetes/admin.conf", "etc/kubernetes/kubelet.conf", "etc/kubernetes/pki/ca.crt",
                "etc/kubernetes/manifests/kube-apiserver.yaml", "var/lib/kubelet/config.yaml"):
        assert not os.path.exists(os.path.join(cp.path, rel)), rel
    assert os.listdir(os.path.join(cp.path, "var/lib/etcd")) == []
    # the API server static pod was stopped, as kubeadm removes the control-plane containers
    assert os.listdir(os.path.join(cp.path, "run/fleet-kubelet-double/pods")) == []


def test_version_outputs(make_node):
    node = make_node("vv")
    assert node.kubeadm("version", "-o", "short", check=True).stdout.strip() == "v1.37.1"
    assert "TEST DOUBLE" in node.kubeadm("version", check=True).stdout


# --- stacked etcd (real etcd), HA and certificates ------------------------------------------------

def _etcdctl(node, address, *args):
    pki_dir = os.path.join(node.path, "etc/kubernetes/pki")
    return subprocess.run(
        [os.path.join(etcd_tools(), "etcdctl"), "--endpoints", "https://%s:2379" % address,
         "--cacert", pki_dir + "/etcd/ca.crt", "--cert", pki_dir + "/etcd/healthcheck-client.crt",
         "--key", pki_dir + "/etcd/healthcheck-client.key", "-w", "json"] + list(args),
        capture_output=True, text=True, timeout=30, env=dict(os.environ, ETCDCTL_API="3"))


HA_CONFIG = INIT_CONFIG.replace("advertiseAddress: 127.0.0.1", "advertiseAddress: 127.0.0.11") \
    .replace("controlPlaneEndpoint: 127.0.0.1:{port}", "controlPlaneEndpoint: 127.0.0.11:{port}") \
    .replace("      value: 127.0.0.1", "      value: 0.0.0.0").replace("    - 127.0.0.1", "    - 127.0.0.11")


def test_three_control_planes_share_one_real_etcd_cluster(make_node):
    """init writes a stacked etcd member; joins add members through etcd's API; reset removes them."""
    port = free_port()
    cps = [make_node("cp%d" % i, address="127.0.0.1%d" % i) for i in (1, 2, 3)]
    for cp in cps:
        cp.start_kubelet()
    init = _init(cps[0], port, ["--upload-certs"], config=HA_CONFIG.format(port=port, name="cp1"))
    assert init.returncode == 0, init.stderr
    with open(os.path.join(cps[0].path, "etc/kubernetes/manifests/etcd.yaml")) as handle:
        command = yaml.safe_load(handle)["spec"]["containers"][0]["command"]
    assert command[0] == "etcd" and "--initial-cluster=cp1=https://127.0.0.11:2380" in command
    assert "--client-cert-auth=true" in command and "--peer-client-cert-auth=true" in command
    token, ca_hash, key = _join_values(init.stdout)
    for cp in cps[1:]:
        proc = cp.kubeadm("join", "127.0.0.11:%d" % port, "--token", token, "--discovery-token-ca-cert-hash",
                          ca_hash, "--control-plane", "--certificate-key", key, "--apiserver-bind-port",
                          str(free_port()), "--apiserver-advertise-address", cp.address)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Announced new etcd member" in proc.stdout
    with open(os.path.join(cps[2].path, "etc/kubernetes/manifests/etcd.yaml")) as handle:
        command = yaml.safe_load(handle)["spec"]["containers"][0]["command"]
    assert "--initial-cluster-state=existing" in command
    members = json.loads(_etcdctl(cps[1], "127.0.0.12", "member", "list").stdout)["members"]
    assert sorted(m["name"] for m in members) == ["cp1", "cp2", "cp3"]
    health = _etcdctl(cps[2], "127.0.0.13", "endpoint", "health", "--cluster")
    assert health.returncode == 0 and health.stdout.count('"health":true') == 3, health.stdout + health.stderr
    # one cluster: each API server sees every node; the objects are keys in etcd
    for cp in cps:
        _wait_nodes(os.path.join(cp.path, "etc/kubernetes/admin.conf"), ["cp1", "cp2", "cp3"])
    keys = _etcdctl(cps[0], "127.0.0.11", "get", "--prefix", "--keys-only", "/registry/")
    assert "/registry/fleetlab-double/nodes/cp3" in keys.stdout or "L3JlZ2lzdHJ5" in keys.stdout
    # reset removes the member; the cluster goes on with the other two
    reset = cps[2].kubeadm("reset", "-f")
    assert reset.returncode == 0 and "Removed the etcd member cp3" in reset.stdout, reset.stdout
    members = json.loads(_etcdctl(cps[0], "127.0.0.11", "member", "list").stdout)["members"]
    assert sorted(m["name"] for m in members) == ["cp1", "cp2"]
    _wait_nodes(os.path.join(cps[1].path, "etc/kubernetes/admin.conf"), ["cp1", "cp2"])


def test_api_server_without_etcd_quorum_is_unhealthy(make_node):
    cp = make_node("cp1")
    port = free_port()
    cp.start_kubelet()
    assert _init(cp, port).returncode == 0
    from fleetlab.kubeadm_double.client import Client
    ca = open(os.path.join(cp.path, "etc/kubernetes/pki/ca.crt"), "rb").read()
    assert Client("https://127.0.0.1:%d" % port, ca).request("GET", "/healthz") == "ok"
    # etcd's manifest gone: the kubelet stops the member and the API server reports it
    os.rename(os.path.join(cp.path, "etc/kubernetes/manifests/etcd.yaml"), os.path.join(cp.path, "etcd.yaml"))
    deadline = time.time() + 20
    while True:
        try:
            Client("https://127.0.0.1:%d" % port, ca, timeout=8).request("GET", "/healthz")
        except APIError as exc:
            assert exc.status == 500 and "etcd failed" in str(exc)
            break
        assert time.time() < deadline, "the API server stayed healthy without etcd"
        time.sleep(0.5)


def test_certs_check_expiration_and_renew(cluster):
    cp, port, _out = cluster
    proc = cp.kubeadm("certs", "check-expiration", "-o", "json", check=True)
    before = {c["name"]: c for c in json.loads(proc.stdout)["certificates"]}
    assert set(before) >= {"admin.conf", "apiserver", "etcd-server", "etcd-peer", "front-proxy-client"}
    assert all(not c["missing"] and 364 * 86400e9 < c["residualTime"] <= 365 * 86400e9 for c in before.values())
    table = cp.kubeadm("certs", "check-expiration", check=True).stdout
    assert "CERTIFICATE AUTHORITY" in table and re.search(r"^apiserver\s+\w{3} \d\d, \d{4}", table, re.M)
    assert cp.kubeadm("certs", "renew", "apiserverr").returncode == 1
    old = open(os.path.join(cp.path, "etc/kubernetes/pki/apiserver.crt"), "rb").read()
    time.sleep(1.1)
    renew = cp.kubeadm("certs", "renew", "all", check=True)
    assert "certificate for apiserver renewed" in renew.stdout and "You must restart" in renew.stdout
    new = pki.load_cert(open(os.path.join(cp.path, "etc/kubernetes/pki/apiserver.crt"), "rb").read())
    assert new.not_valid_after_utc > pki.load_cert(old).not_valid_after_utc
    assert new.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == \
        pki.load_cert(old).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    after = {c["name"]: c for c in json.loads(cp.kubeadm("certs", "check-expiration", "-o", "json",
                                                         check=True).stdout)["certificates"]}
    assert all(after[n]["expirationDate"] >= before[n]["expirationDate"] for n in before)
    # the renewed admin.conf still authenticates
    _wait_nodes(os.path.join(cp.path, "etc/kubernetes/admin.conf"), ["cp1"])


def test_certs_commands_refuse_a_node_without_certificates(make_node):
    node = make_node("w9")
    assert node.kubeadm("certs", "check-expiration").returncode == 1
    proc = node.kubeadm("certs", "renew", "all")
    assert proc.returncode == 1 and "none of them" in proc.stderr


def test_real_kubectl_cordon_drain_delete_node_and_objects(cluster):
    cp, _port, _out = cluster
    admin = os.path.join(cp.path, "etc/kubernetes/admin.conf")

    def kubectl(*args):
        return cp.run("kubectl", "--kubeconfig", admin, *args)

    assert kubectl("drain", "cp1", "--ignore-daemonsets", "--timeout", "soon").returncode == 1
    drained = kubectl("drain", "cp1", "--ignore-daemonsets", "--delete-emptydir-data", "--timeout", "30s")
    assert drained.returncode == 0 and "node/cp1 drained" in drained.stdout, drained.stderr
    node = _wait_nodes(admin, ["cp1"])["cp1"]
    assert node.spec.unschedulable and "node.kubernetes.io/unschedulable" in [t.key for t in node.spec.taints]
    # the server's table, as kubectl prints it
    table = kubectl("get", "nodes").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert table[1].split()[:3] == ["cp1", "NotReady,SchedulingDisabled", "control-plane"]
    assert kubectl("uncordon", "cp1").returncode == 0
    assert not _wait_nodes(admin, ["cp1"])["cp1"].spec.unschedulable
    assert "NotFound" in kubectl("cordon", "nosuch").stderr
    # objects: client-side apply (create), get -f, delete -f
    probe = cp.file("/root/probe.yml", yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap",
                                                        "metadata": {"name": "probe", "namespace": "default"},
                                                        "data": {"a": "1"}}))
    assert kubectl("get", "-f", probe).returncode == 1
    assert "configmap/probe created" in kubectl("apply", "-f", probe).stdout
    assert json.loads(kubectl("get", "-f", probe, "-o", "json").stdout)["data"] == {"a": "1"}
    assert kubectl("diff", "-f", probe).returncode == 0
    assert 'configmap "probe" deleted' in kubectl("delete", "-f", probe).stdout
    assert "NotFound" in kubectl("get", "-f", probe).stderr
    # nodes: delete (kubectl waits with a field selector), ignore-not-found
    assert kubectl("delete", "node", "nosuch").returncode == 1
    assert kubectl("delete", "node", "nosuch", "--ignore-not-found").returncode == 0
    deleted = kubectl("delete", "node", "cp1")
    assert deleted.returncode == 0 and 'node "cp1" deleted' in deleted.stdout, deleted.stderr


def test_drain_evicts_under_disruption_budgets_and_falls_back_to_deletion(cluster):
    """remove-node.yml's drain: evictions refused by a PodDisruptionBudget until the bound, then
    --disable-eviction deletes; a pod without a controller needs --force; mirror-free, watch-free."""
    cp, _port, _out = cluster
    admin = os.path.join(cp.path, "etc/kubernetes/admin.conf")

    def kubectl(*args):
        return cp.run("kubectl", "--kubeconfig", admin, *args)

    owner = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u1", "controller": True}]
    pods = cp.file("/root/pods.yml", yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default",
                                                         "labels": {"app": "web"}, "ownerReferences": owner},
         "spec": {"nodeName": "cp1", "containers": [{"name": "web", "image": "web"}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "lonely", "namespace": "default"},
         "spec": {"nodeName": "cp1", "containers": [{"name": "c", "image": "c"}]}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "elsewhere", "namespace": "default",
                                                         "ownerReferences": owner},
         "spec": {"nodeName": "other", "containers": [{"name": "c", "image": "c"}]}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}},
    ]))
    assert kubectl("apply", "--server-side", "-f", pods).returncode == 0
    on_cp1 = json.loads(kubectl("get", "pods", "-A", "--field-selector", "spec.nodeName=cp1", "-o", "json").stdout)
    assert sorted(p["metadata"]["name"] for p in on_cp1["items"]) == ["lonely", "web"]
    refused = kubectl("drain", "cp1", "--ignore-daemonsets", "--timeout", "5s")
    assert refused.returncode == 1 and "declare no controller" in refused.stderr
    blocked = kubectl("drain", "cp1", "--ignore-daemonsets", "--force", "--timeout", "6s")
    assert blocked.returncode == 1 and "disruption budget" in blocked.stderr, blocked.stderr
    assert "global timeout reached" in blocked.stderr
    forced = kubectl("drain", "cp1", "--ignore-daemonsets", "--force", "--disable-eviction", "--timeout", "20s")
    assert forced.returncode == 0 and "pod/web deleted" in forced.stdout, forced.stderr
    left = json.loads(kubectl("get", "pods", "-A", "-o", "json").stdout)["items"]
    assert [p["metadata"]["name"] for p in left] == ["elsewhere"]


def test_object_api_is_strict_like_the_real_one(cluster):
    """Server-side apply conflicts between managers, strict field validation, dry runs, namespaces."""
    cp, _port, _out = cluster
    admin = os.path.join(cp.path, "etc/kubernetes/admin.conf")

    def kubectl(*args, stdin=None):
        return cp.run("kubectl", "--kubeconfig", admin, *args)

    def manifest(name, data, extra=None):
        doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "team"},
               "data": data}
        doc.update(extra or {})
        return cp.file("/root/%s.yml" % name, yaml.safe_dump(doc))

    mine = manifest("mine", {"a": "1"})
    missing = kubectl("apply", "--server-side", "-f", mine)
    assert missing.returncode == 1 and 'namespaces "team" not found' in missing.stderr
    # typed clients (kubectl create namespace) send protobuf, which the double refuses by name
    typed = kubectl("create", "namespace", "team")
    assert typed.returncode == 1 and "speaks no protobuf" in typed.stderr
    namespace = cp.file("/root/ns.yml", yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace",
                                                         "metadata": {"name": "team"}}))
    assert kubectl("apply", "-f", namespace).returncode == 0
    assert kubectl("apply", "--server-side", "--field-manager", "one", "-f", mine).returncode == 0
    theirs = manifest("theirs", {"a": "2"})
    conflict = kubectl("apply", "--server-side", "--field-manager", "two", "-f", theirs)
    assert conflict.returncode == 1 and 'conflict with "one"' in conflict.stderr and ".data.a" in conflict.stderr
    # dry run: the change is shown, nothing is written
    dry = kubectl("apply", "--server-side", "--field-manager", "two", "--force-conflicts", "--dry-run=server",
                  "-o", "json", "-f", theirs)
    assert json.loads(dry.stdout)["data"] == {"a": "2"}
    assert json.loads(kubectl("get", "-f", mine, "-o", "json").stdout)["data"] == {"a": "1"}
    assert kubectl("apply", "--server-side", "--field-manager", "two", "--force-conflicts", "-f", theirs).returncode == 0
    shown = json.loads(kubectl("get", "-f", mine, "-o", "json", "--show-managed-fields").stdout)
    assert shown["data"] == {"a": "2"}
    assert {m["manager"] for m in shown["metadata"]["managedFields"]} == {"two"}
    # unknown fields: refused by kubectl's strict validation, which the server does
    typo = manifest("typo", {"a": "3"}, {"datta": {"b": "1"}})
    bad = kubectl("apply", "--server-side", "-f", typo)
    assert bad.returncode == 1 and 'unknown field "datta"' in bad.stderr
    assert kubectl("apply", "--server-side", "--validate=false", "--field-manager", "two", "-f", typo).returncode == 0
    # what the double does not do, it refuses
    watch = kubectl("get", "configmaps", "-n", "team", "--watch", "--request-timeout", "5s")
    assert watch.returncode != 0 and "watches" in watch.stderr
    # deleting the namespace takes its objects
    assert kubectl("delete", "-f", namespace).returncode == 0
    assert "NotFound" in kubectl("get", "-f", mine).stderr


# --- upgrades ----------------------------------------------------------------------------------------

def test_upgrade_version_policy(monkeypatch):
    from fleetlab.kubeadm_double import upgrade
    monkeypatch.setenv("FLEET_DOUBLE_VERSION", "v1.33.0")
    assert upgrade.policy("v1.32.0", "v1.31.4", {"w1": "v1.31.4"}) == []
    assert "higher than the kubeadm version" in upgrade.policy("v1.34.0", "v1.33.0", {})[0]
    assert "one minor release higher" in upgrade.policy("v1.33.0", "v1.31.4", {})[0]
    assert "one minor release lower" in upgrade.policy("v1.30.9", "v1.31.4", {})[0]
    assert "lower than the cluster version" in upgrade.policy("v1.31.2", "v1.31.4", {})[0]
    assert upgrade.policy("v1.31.2", "v1.31.4", {}, force=True) == []
    newer = upgrade.policy("v1.32.0", "v1.31.4", {"w1": "v1.33.0"})
    assert len(newer) == 1 and "w1 is newer" in newer[0]


OLD, NEW = "v1.36.4", "v1.37.1"  # N-1 and N: the double's own default is N


def test_upgrade_plan_apply_and_node(make_node):
    """kubeadm upgrade with the packages of two versions: the new kubeadm plans and applies, the
    API server comes back at the new version, a re-run changes nothing, a worker follows."""
    cp = make_node("cp1", extra_env={"FLEET_DOUBLE_VERSION": OLD})  # the packages of N-1 installed
    port = free_port()
    cp.start_kubelet()
    out = _init(cp, port, ["--upload-certs"], config=INIT_CONFIG.replace(NEW, OLD).format(port=port, name="cp1"))
    assert out.returncode == 0, out.stderr
    admin = os.path.join(cp.path, "etc/kubernetes/admin.conf")
    token, ca_hash, _key = _join_values(out.stdout)
    worker = make_node("w1", extra_env={"FLEET_DOUBLE_VERSION": OLD})
    worker.start_kubelet()
    worker.kubeadm("join", "127.0.0.1:%d" % port, "--token", token, "--discovery-token-ca-cert-hash", ca_hash,
                   check=True)

    def kubeadm(node, version, *args):
        node.extra_env["FLEET_DOUBLE_VERSION"] = version  # the kubeadm package at that version
        try:
            return node.kubeadm("upgrade", *args)
        finally:
            node.extra_env["FLEET_DOUBLE_VERSION"] = OLD

    assert "up-to-date" in kubeadm(cp, OLD, "plan").stdout
    older_kubeadm = kubeadm(cp, OLD, "apply", NEW, "-y")
    assert older_kubeadm.returncode == 1 and "higher than the kubeadm version" in older_kubeadm.stderr
    plan = kubeadm(cp, NEW, "plan")
    assert plan.returncode == 0 and "kubeadm upgrade apply %s" % NEW in plan.stdout, plan.stderr
    for target, message in (("v1.38.0", "higher than the kubeadm version"), ("1.37", "not a Kubernetes version"),
                            ("v1.36.1", "Skippable errors may be skipped with --force")):
        refused = kubeadm(cp, NEW, "apply", target, "-y")
        assert refused.returncode == 1 and message in refused.stderr, refused.stderr
    assert "pass --yes" in kubeadm(cp, NEW, "apply", NEW).stderr
    manifest = os.path.join(cp.path, "etc/kubernetes/manifests/kube-apiserver.yaml")
    before = open(manifest).read()
    dry = kubeadm(cp, NEW, "apply", NEW, "--dry-run")
    assert dry.returncode == 0 and "Would write" in dry.stdout and open(manifest).read() == before
    applied = kubeadm(cp, NEW, "apply", NEW, "-y", "--timeout", "60")
    assert applied.returncode == 0 and 'upgraded to "%s"' % NEW in applied.stdout, applied.stderr
    assert "kube-apiserver:%s" % NEW in open(manifest).read()
    from kubernetes import client, config
    api_client = config.new_client_from_config(config_file=admin)
    assert client.VersionApi(api_client).get_code().git_version == NEW
    cm = client.CoreV1Api(api_client).read_namespaced_config_map("kubeadm-config", "kube-system")
    assert yaml.safe_load(cm.data["ClusterConfiguration"])["kubernetesVersion"] == NEW
    again = kubeadm(cp, NEW, "apply", NEW, "-y", "--timeout", "60")
    assert again.returncode == 0 and "already at %s" % NEW in again.stdout
    # a worker: kubelet configuration only; a kubeadm older than the cluster is refused
    assert "newer than this kubeadm" in kubeadm(worker, OLD, "node").stderr
    node_run = kubeadm(worker, NEW, "node")
    assert node_run.returncode == 0 and "Not a control plane node" in node_run.stdout, node_run.stderr


def test_a_newer_control_plane_joins_only_once_the_cluster_configuration_names_its_version(make_node):
    """Cluster API's rolling replacement: a control plane of N joins a cluster made at N-1 after the
    kubeadm-config ConfigMap names N; before, kubeadm's KubeletVersion check refuses it."""
    port = free_port()
    cp1 = make_node("cp1", address="127.0.0.11", extra_env={"FLEET_DOUBLE_VERSION": OLD})
    cp1.start_kubelet()
    init = _init(cp1, port, ["--upload-certs"], config=HA_CONFIG.replace(NEW, OLD).format(port=port, name="cp1"))
    assert init.returncode == 0, init.stderr
    token, ca_hash, key = _join_values(init.stdout)
    cp2 = make_node("cp2", address="127.0.0.12", extra_env={"FLEET_DOUBLE_VERSION": NEW})
    cp2.start_kubelet()
    join = ["join", "127.0.0.11:%d" % port, "--token", token, "--discovery-token-ca-cert-hash", ca_hash,
            "--control-plane", "--certificate-key", key, "--apiserver-bind-port", str(free_port()),
            "--apiserver-advertise-address", cp2.address]
    refused = cp2.kubeadm(*join)
    assert refused.returncode == 1 and "[ERROR KubeletVersion]: the kubelet version is higher" in refused.stderr
    assert not os.path.exists(os.path.join(cp2.path, "etc/kubernetes/manifests/kube-apiserver.yaml"))
    admin = os.path.join(cp1.path, "etc/kubernetes/admin.conf")

    def patch(body):
        return cp1.run("kubectl", "--kubeconfig", admin, "-n", "kube-system", "patch", "configmap", "kubeadm-config",
                       "--type", "merge", "-p", json.dumps(body))

    current = yaml.safe_load(cp1.run("kubectl", "--kubeconfig", admin, "-n", "kube-system", "get", "configmap",
                                     "kubeadm-config", "-o", "json").stdout)["data"]["ClusterConfiguration"]
    bad = patch({"data": {"ClusterConfiguration": current.replace("kind: ClusterConfiguration", "kind: Other")}})
    assert bad.returncode == 1 and "must be a ClusterConfiguration" in bad.stderr
    assert patch({"data": {"Other": "x"}}).returncode == 1
    newer = patch({"data": {"ClusterConfiguration": current.replace("kubernetesVersion: " + OLD,
                                                                    "kubernetesVersion: " + NEW)}})
    assert newer.returncode == 0, newer.stderr
    joined = cp2.kubeadm(*join)
    assert joined.returncode == 0, joined.stdout + joined.stderr
    with open(os.path.join(cp2.path, "etc/kubernetes/manifests/kube-apiserver.yaml")) as handle:
        assert "kube-apiserver:%s" % NEW in handle.read()
    _wait_nodes(os.path.join(cp2.path, "etc/kubernetes/admin.conf"), ["cp1", "cp2"])
