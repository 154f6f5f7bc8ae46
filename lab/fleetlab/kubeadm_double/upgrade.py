"""``kubeadm upgrade plan | apply VERSION | node`` of the kubeadm TEST DOUBLE.

Strict as kubeadm's version policy: the target must be a full version, no newer than this kubeadm,
at most one minor above the running API server, not a downgrade (unless ``--force``), and no
kubelet may be newer than it. ``apply`` (first control plane) rewrites the control-plane static
pod manifests at the target version, records it in the cluster's ClusterConfiguration and waits
until the API server answers at that version; ``node`` brings another control plane's manifests
to the cluster's version, and on every node rewrites the kubelet configuration from the cluster's.
"""
import re
import time

import yaml

from . import own_version, store
from .client import APIError

VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)$")
COMPONENTS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def parse(version, what="version"):
    match = VERSION_RE.match(version or "")
    if not match:
        raise _error()("%s %r is not a Kubernetes version (vMAJOR.MINOR.PATCH)" % (what, version))
    return tuple(int(part) for part in match.groups())


def _error():
    from .kubeadm import KubeadmError
    return KubeadmError


def _text(parts):
    return "v%d.%d.%d" % parts


def policy(target, api, kubelets, force=False):
    """kubeadm's version policy: the reasons the upgrade to target is refused (empty: allowed)."""
    own, want, have = parse(own_version()), parse(target, "the target version"), parse(api, "the API server version")
    hard, skippable = [], []
    if want > own:
        hard.append('Specified version to upgrade to "%s" is higher than the kubeadm version "%s". Upgrade kubeadm '
                    "first using the tool you used to install kubeadm" % (_text(want), _text(own)))
    if want[:2] > (have[0], have[1] + 1):
        hard.append('Specified version to upgrade to "%s" is at least one minor release higher than the '
                    "kube-apiserver minor release (%d.%d). Such an upgrade is not supported"
                    % (_text(want), have[0], have[1]))
    if want[:2] < have[:2]:
        hard.append('Specified version to downgrade to "%s" is at least one minor release lower than the '
                    "kube-apiserver minor release (%d.%d). Such a downgrade is not supported"
                    % (_text(want), have[0], have[1]))
    elif want < have:
        skippable.append('Specified version to downgrade to "%s" is lower than the cluster version "%s"'
                         % (_text(want), _text(have)))
    for name, version in sorted(kubelets.items()):
        if parse(version, "the kubelet version")[:2] > want[:2]:
            skippable.append('Kubelet version "%s" on node %s is newer than the control plane version "%s": '
                             "the kubelet must never be newer" % (version, name, _text(want)))
    return hard + ([] if force else skippable)


def _manifest_version(node, component):
    path = "/etc/kubernetes/manifests/%s.yaml" % component
    if not node.exists(path):
        return None
    pod = yaml.safe_load(node.read(path)) or {}
    return pod["spec"]["containers"][0]["image"].rpartition(":")[2]


def _rewrite_manifests(node, version, dry_run):
    from .kubeadm import out
    for component in COMPONENTS:
        path = "/etc/kubernetes/manifests/%s.yaml" % component
        pod = yaml.safe_load(node.read(path))
        container = pod["spec"]["containers"][0]
        repo = container["image"].rpartition(":")[0]
        if container["image"] == "%s:%s" % (repo, version):
            out("[upgrade/staticpods] %s is already at %s" % (component, version))
            continue
        out("[upgrade/staticpods] %s static Pod manifest for \"%s\": %s -> %s"
            % ("Would write the" if dry_run else "Writing the", component, container["image"], version))
        container["image"] = "%s:%s" % (repo, version)
        if not dry_run:
            node.write(path, yaml.safe_dump(pod, sort_keys=False), 0o600)


def _cluster(client):
    cm = client.request("GET", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    return yaml.safe_load(cm["data"]["ClusterConfiguration"])


def _kubelets(client):
    nodes = client.request("GET", "/api/v1/nodes")["items"]
    return {n["metadata"]["name"]: n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes
            if n["status"]["nodeInfo"].get("kubeletVersion")}


def _advertise(node):
    pod = yaml.safe_load(node.read("/etc/kubernetes/manifests/kube-apiserver.yaml"))
    flags = dict(arg.split("=", 1) for arg in pod["spec"]["containers"][0]["command"][1:] if "=" in arg)
    return flags["--advertise-address"], int(flags["--secure-port"])


def _wait_version(node, version, timeout):
    """Until this control plane's own API server answers at version (the kubelet restarts it)."""
    from .client import Client
    from .kubeadm import KubeadmError, PKI_DIR, _url
    address, port = _advertise(node)
    client = Client(_url(address, port), node.read(PKI_DIR + "/ca.crt"), timeout=2.0)
    deadline, seen = time.time() + timeout, None
    while time.time() < deadline:
        try:
            seen = client.request("GET", "/version")["gitVersion"]
            if seen == version:
                return
        except (OSError, APIError) as exc:
            seen = exc
        time.sleep(0.5)
    raise KubeadmError("[upgrade/apply] the API server at %s:%d does not answer at %s after %ds (last: %s)"
                       % (address, port, version, timeout, seen))


def _record_version(node, version):
    """The new kubernetesVersion in the cluster's ClusterConfiguration (kept in etcd)."""
    from .kubeadm import local_etcd
    address, _port = _advertise(node)

    def change(state):
        cluster = yaml.safe_load(state["cluster_configuration"])
        cluster["kubernetesVersion"] = version
        state["cluster_configuration"] = yaml.safe_dump(cluster, sort_keys=False)
    store.Store(local_etcd(node, address)).update(change)


def _kubelet_config(node, client, dry_run):
    from .kubeadm import out
    cm = client.request("GET", "/api/v1/namespaces/kube-system/configmaps/kubelet-config")
    out("[upgrade] %s the kubelet configuration to \"/var/lib/kubelet/config.yaml\""
        % ("Would write" if dry_run else "Writing"))
    if not dry_run:
        node.write("/var/lib/kubelet/config.yaml", cm["data"]["kubelet"], 0o644)


def cmd_plan(node, args, client):
    from .kubeadm import out
    cluster = _cluster(client)
    api = client.request("GET", "/version")["gitVersion"]
    kubelets = _kubelets(client)
    target = args.version or own_version()
    refused = policy(target, api, kubelets)
    out("[upgrade/config] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"")
    out("[upgrade] Running cluster health checks")
    out("[upgrade] Fetching available versions to upgrade to")
    out("[upgrade/versions] Cluster version: %s" % cluster["kubernetesVersion"])
    out("[upgrade/versions] kubeadm version: %s" % own_version())
    if parse(target) <= parse(api):
        out("Awesome, you're up-to-date! Enjoy!")
        return 0
    if refused:
        raise _error()("[upgrade/version] FATAL: the version policy refuses %s:\n\t- %s" % (target, "\n\t- ".join(refused)))
    out("Upgrade to the latest version in the v%d.%d series:" % parse(target)[:2])
    out("")
    out("COMPONENT                 NODE      CURRENT   TARGET")
    for name, version in sorted(kubelets.items()):
        out("kubelet                   %-9s %-9s %s" % (name, version, target))
    for component in COMPONENTS:
        out("%-25s           %-9s %s" % (component, api, target))
    out("")
    out("You can now apply the upgrade by executing the following command:")
    out("")
    out("\tkubeadm upgrade apply %s" % target)
    return 0


def cmd_apply(node, args, client):
    from .kubeadm import out
    target = "v" + args.version.lstrip("v")
    parse(target, "the target version")
    if not node.exists("/etc/kubernetes/manifests/kube-apiserver.yaml"):
        raise _error()("[upgrade/apply] this node runs no control plane: run \"kubeadm upgrade node\" here")
    api = client.request("GET", "/version")["gitVersion"]
    refused = policy(target, api, _kubelets(client), force=args.force)
    if refused:
        raise _error()("[upgrade/version] FATAL: the version policy refuses %s:\n\t- %s\n"
                       "Skippable errors may be skipped with --force" % (target, "\n\t- ".join(refused)))
    if not (args.yes or args.dry_run or args.force):
        raise _error()("[upgrade/confirm] Are you sure you want to proceed? [y/N]: EOF (pass --yes when there is no "
                       "terminal)")
    out("[upgrade/version] You have chosen to change the cluster version to \"%s\"" % target)
    _rewrite_manifests(node, target, args.dry_run)
    if args.dry_run:
        out("[dryrun] Finished dryrunning successfully!")
        return 0
    _record_version(node, target)
    _wait_version(node, target, args.timeout)
    _kubelet_config(node, client, False)
    out("[upgrade/successful] SUCCESS! Your cluster was upgraded to \"%s\". Enjoy!" % target)
    out("[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your kubelets "
        "if you haven't already done so.")
    return 0


def cmd_node(node, args, client):
    from .kubeadm import out
    version = _cluster(client)["kubernetesVersion"]
    if parse(version) > parse(own_version()):
        raise _error()("[upgrade/node] the cluster is at %s, newer than this kubeadm (%s): upgrade kubeadm first"
                       % (version, own_version()))
    if node.exists("/etc/kubernetes/manifests/kube-apiserver.yaml"):
        out("[upgrade] Upgrading your Static Pod-hosted control plane instance to version \"%s\"..." % version)
        _rewrite_manifests(node, version, args.dry_run)
        if not args.dry_run:
            _wait_version(node, version, args.timeout)
    else:
        out("[upgrade] Skipping phase. Not a control plane node.")
    _kubelet_config(node, client, args.dry_run)
    out("[upgrade] The configuration for this node was successfully updated!")
    out("[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.")
    return 0


def add_parser(sub):
    upgrade = sub.add_parser("upgrade")
    commands = upgrade.add_subparsers(dest="upgrade_command", required=True)
    plan = commands.add_parser("plan")
    plan.add_argument("version", nargs="?")
    apply = commands.add_parser("apply")
    apply.add_argument("version")
    apply.add_argument("-y", "--yes", action="store_true")
    apply.add_argument("-f", "--force", action="store_true")
    apply.add_argument("--certificate-renewal", default="true")
    apply.add_argument("--etcd-upgrade", default="true")
    node_cmd = commands.add_parser("node")
    for cmd in (plan, apply, node_cmd):
        cmd.add_argument("--kubeconfig", dest="upgrade_kubeconfig")
        cmd.add_argument("--dry-run", action="store_true")
        cmd.add_argument("--timeout", type=float, default=300.0,
                         help="seconds to wait for the API server at the new version (kubeadm's default: 5m)")


def main(node, args):
    from .kubeadm import KUBE_DIR, _admin_client
    kubeconfig = args.upgrade_kubeconfig
    if args.upgrade_command == "node" and not kubeconfig and not node.exists(KUBE_DIR + "/admin.conf"):
        kubeconfig = node.path(KUBE_DIR + "/kubelet.conf")  # workers read the cluster as their kubelet
    client = _admin_client(node, kubeconfig)
    return {"plan": cmd_plan, "apply": cmd_apply, "node": cmd_node}[args.upgrade_command](node, args, client)

