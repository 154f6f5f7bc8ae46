"""testinfra checks of a cluster made by playbooks/create-cluster.yml on the lab's machines.

Molecule runs them against its inventory (molecule-cp-0 in kube_control_plane, the workers in
kube_node), over SSH to the lab's VMs."""
import json
import os

import pytest
import yaml

KUBE_FILES_ALL = ["/etc/kubernetes/kubelet.conf", "/etc/kubernetes/pki/ca.crt", "/var/lib/kubelet/config.yaml",
                  "/var/lib/kubelet/kubeadm-flags.env"]
KUBE_FILES_CONTROL_PLANE = ["/etc/kubernetes/admin.conf", "/etc/kubernetes/pki/ca.key",
                            "/etc/kubernetes/pki/apiserver.crt", "/etc/kubernetes/pki/sa.key",
                            "/etc/kubernetes/manifests/kube-apiserver.yaml",
                            "/etc/kubernetes/manifests/kube-controller-manager.yaml",
                            "/etc/kubernetes/manifests/kube-scheduler.yaml", "/etc/kubernetes/manifests/etcd.yaml"]


def _groups(host):
    return host.ansible.get_variables().get("group_names", [])


def _cluster_version():
    """kubernetes_version of the cluster description molecule's create step wrote."""
    with open(os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "cluster.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)["kubernetes_version"]


def test_containerd_runs_with_the_systemd_cgroup_driver(host):
    containerd = host.service("containerd")
    assert containerd.is_running
    assert containerd.is_enabled
    config = host.file("/etc/containerd/config.toml")
    assert config.contains("SystemdCgroup = true")
    assert host.socket("unix:///run/containerd/containerd.sock").is_listening


def test_kubelet_enabled_and_running(host):
    kubelet = host.service("kubelet")
    assert kubelet.is_enabled
    assert kubelet.is_running


@pytest.mark.parametrize("name", ["kubelet", "kubeadm", "kubectl"])
def test_packages_installed_and_held(host, name):
    assert host.package(name).is_installed
    selection = host.check_output("dpkg --get-selections %s", name)
    assert selection.split()[-1] == "hold"
    assert host.package(name).version == _cluster_version() + "-1.1"


@pytest.mark.parametrize("key", ["net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables",
                                 "net.bridge.bridge-nf-call-ip6tables"])
def test_sysctls(host, key):
    assert host.sysctl(key) == 1
    assert host.file("/etc/sysctl.d/99-kubernetes.conf").contains("^%s" % key.replace(".", r"\."))


@pytest.mark.parametrize("module", ["overlay", "br_netfilter"])
def test_kernel_modules_loaded_and_persistent(host, module):
    assert host.file("/sys/module/%s" % module).is_directory
    assert host.file("/etc/modules-load.d/kubernetes.conf").contains("^%s$" % module)


def test_swap_off(host):
    assert host.check_output("swapon --show=NAME --noheadings").strip() == ""


def test_kubernetes_files(host):
    expected = KUBE_FILES_ALL + (KUBE_FILES_CONTROL_PLANE if "kube_control_plane" in _groups(host) else [])
    for path in expected:
        assert host.file(path).exists, path
    if "kube_control_plane" not in _groups(host):
        assert not host.file("/etc/kubernetes/admin.conf").exists
    # the join configuration held a token: it must not stay behind
    assert not host.file("/etc/kubernetes/kubeadm/join.yaml").exists


def test_every_node_ready_through_the_api(host):
    if "kube_control_plane" not in _groups(host):
        pytest.skip("asked once, from the control plane")
    groups = host.ansible.get_variables()["groups"]
    expected = sorted(set(groups.get("kube_control_plane", []) + groups.get("kube_node", [])))
    assert expected
    nodes = json.loads(host.check_output("kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o json"))
    items = nodes["items"]
    for item in items:
        ready = [c for c in item["status"]["conditions"] if c["type"] == "Ready"][0]
        assert ready["status"] == "True", (item["metadata"]["name"], ready)
        assert item["status"]["nodeInfo"]["kubeletVersion"] == "v" + _cluster_version(), item["metadata"]["name"]
    server = json.loads(host.check_output("kubectl --kubeconfig /etc/kubernetes/admin.conf version -o json"))
    assert server["serverVersion"]["gitVersion"] == "v" + _cluster_version()
    assert sorted(item["metadata"]["name"] for item in items) == expected
