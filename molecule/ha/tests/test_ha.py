"""testinfra checks of an HA control plane made by playbooks/create-cluster.yml on the lab's VMs:
three control planes, a real etcd cluster, keepalived + haproxy holding the VIP. (That exactly one
control plane holds the VIP is checked by the side effect, which sees all three at once.)"""
import json

VIP = "10.77.9.250"
ETCDCTL = ("ETCDCTL_API=3 etcdctl --endpoints https://127.0.0.1:2379 --cacert /etc/kubernetes/pki/etcd/ca.crt "
           "--cert /etc/kubernetes/pki/apiserver-etcd-client.crt --key /etc/kubernetes/pki/apiserver-etcd-client.key ")


def test_etcd_has_three_healthy_members(host):
    members = json.loads(host.check_output(ETCDCTL + "member list -w json"))["members"]
    assert sorted(m["name"] for m in members) == ["molecule-cp-0", "molecule-cp-1", "molecule-cp-2"]
    health = json.loads(host.check_output(ETCDCTL + "endpoint health --cluster -w json"))
    assert len(health) == 3 and all(h["health"] for h in health)


def test_etcd_runs_as_the_kubelets_static_pod(host):
    manifest = host.file("/etc/kubernetes/manifests/etcd.yaml")
    assert manifest.contains("--client-cert-auth=true")
    assert host.process.filter(comm="etcd"), "no etcd process"
    # never as Debian's system service
    assert not host.service("etcd").is_running


def test_keepalived_and_haproxy_run(host):
    for name in ("keepalived", "haproxy"):
        assert host.service(name).is_running and host.service(name).is_enabled
    assert host.socket("tcp://0.0.0.0:8443").is_listening


def test_the_vip_answers_and_every_node_is_ready_through_it(host):
    assert host.check_output("curl -sf --cacert /etc/kubernetes/pki/ca.crt https://%s:8443/healthz" % VIP) == "ok"
    config = host.file("/etc/kubernetes/admin.conf").content_string
    assert "server: https://%s:8443" % VIP in config
    nodes = json.loads(host.check_output("kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o json"))
    ready = {n["metadata"]["name"]: [c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready"][0]
             for n in nodes["items"]}
    assert ready == {"molecule-cp-0": "True", "molecule-cp-1": "True", "molecule-cp-2": "True"}
