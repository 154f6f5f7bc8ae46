"""The kubeadm command line, as far as the roles use it (TEST DOUBLE).

Subcommands: ``init --config``, ``init phase upload-certs --upload-certs``, ``join``
(flags or ``--config``; workers and ``--control-plane --certificate-key``),
``token create [--print-join-command]``, ``token list``, ``reset -f``, ``version``,
``config validate --config``, ``certs check-expiration [-o json]``, ``certs renew all|NAME``. Exit codes and the main messages follow kubeadm's.
"""
import argparse
import base64
import datetime
import json
import os
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import sys
import time

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from . import DOUBLE_BANNER, etcd, own_version, pki, preflight, schema, store, upgrade
from .client import APIError, Client

KUBE_DIR = "/etc/kubernetes"
PKI_DIR = "/etc/kubernetes/pki"
DEFAULT_BIND_PORT = 6443
DEFAULT_SERVICE_SUBNET = "10.96.0.0/12"
DEFAULT_DNS_DOMAIN = "cluster.local"
DEFAULT_CP_TIMEOUT = "4m0s"
DEFAULT_TLS_TIMEOUT = "5m0s"
DEFAULT_ETCD_TIMEOUT = "2m0s"
ETCD_DATA_DIR = "/var/lib/etcd"
ETCD_IMAGE_TAG = "3.5.15-0"  # written in kubeadm's form; the kubelet double runs Debian's etcd binary whatever it says
TOKEN_CHARS = string.ascii_lowercase + string.digits


class KubeadmError(Exception):
    """An error kubeadm would print before exiting non-zero."""


def out(message):
    print(message, flush=True)


class Node:
    """Paths and helpers below the root directory this run acts on."""

    def __init__(self, root):
        self.root = root

    def path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def write(self, path, data, mode=0o600):
        full = self.path(path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        tmp = full + ".tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, full)

    def read(self, path):
        with open(self.path(path), "rb") as handle:
            return handle.read()

    def exists(self, path):
        return os.path.exists(self.path(path))

    def real(self):
        return os.path.realpath(self.root) == "/"


# --- helpers --------------------------------------------------------------------------------------

def _minor(version):
    parts = version.lstrip("v").split(".")
    return int(parts[0]), int(parts[1])


def check_version(requested):
    if requested in (None, "stable"):
        return own_version()
    own = _minor(own_version())
    want = _minor(requested)
    if want > own:
        raise KubeadmError("the specified version to deploy (%s) is at least one minor release higher than "
                           "the kubeadm minor release (%d.%d). Such an upgrade is not supported"
                           % (requested, own[0], own[1]))
    if want < (own[0], own[1] - 1):
        raise KubeadmError("this version of kubeadm only supports deploying clusters with the control plane "
                           "version >= %d.%d.0. Current version: %s" % (own[0], own[1] - 1, requested))
    return requested if requested.startswith("v") else "v" + requested


def kubelet_version(node):
    """The installed kubelet's version, as kubeadm asks it (``kubelet --version``); below a test
    root, or where no kubelet is installed, this program's own."""
    binary = shutil.which("kubelet") if node.real() else None
    if binary:
        try:
            answer = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            answer = ""
        match = re.search(r"v\d+\.\d+\.\d+", answer)
        if match:
            return match.group(0)
    return own_version()


def default_address(node):
    env = os.environ.get("FLEET_KUBEADM_DEFAULT_ADDRESS")
    if env:
        return env
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect(("10.255.255.255", 1))  # UDP connect sends nothing; it picks the default route
        return sock.getsockname()[0]
    except OSError:
        raise KubeadmError("unable to select an IP from default routes.")
    finally:
        sock.close()


def node_name(nreg):
    return (nreg.get("name") or os.environ.get("FLEET_KUBEADM_NODE_NAME") or socket.gethostname()).lower()


def new_token():
    return "%s.%s" % ("".join(secrets.choice(TOKEN_CHARS) for _ in range(6)),
                      "".join(secrets.choice(TOKEN_CHARS) for _ in range(16)))


def _expiry(ttl):
    seconds = schema.parse_duration(ttl)
    if seconds == 0:
        return None
    return (datetime.datetime.utcnow() + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _args_list(items):
    return ["--%s=%s" % (a["name"], a.get("value", "")) for a in items or []]


def _args_value(items, name):
    for item in items or []:
        if item["name"] == name:
            return item.get("value")
    return None


def _kubelet_service(node):
    """Whether the kubelet runs as a systemd service here (FLEET_KUBEADM_KUBELET_START overrides)."""
    mode = os.environ.get("FLEET_KUBEADM_KUBELET_START")
    if mode is None:
        mode = "systemctl" if node.real() and os.path.isdir("/run/systemd/system") else "none"
    return mode == "systemctl"


def restart_kubelet(node):
    if _kubelet_service(node):
        out("[kubelet-start] Starting the kubelet")
        subprocess.run(["systemctl", "restart", "kubelet"], check=True)
    else:
        out("[kubelet-start] Not starting the kubelet (no service manager below this root)")


def stop_kubelet(node):
    if _kubelet_service(node):
        out("[reset] Stopping the kubelet service")
        subprocess.run(["systemctl", "stop", "kubelet"], check=False)


# The double ships alone in its .deb (only fleetlab.kubeadm_double), so it cannot use the lab's
# fleetlab.util.pid_alive / vm.host.kill_pid; these two are their small, self-contained kin.
def _exited(pid):
    """True once ``pid`` has exited (a zombie its parent has not reaped yet counts as exited)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def stop_static_pods(node, timeout=10.0):
    """Stop the static pods the kubelet double started (their pid files) and wait for them."""
    from .kubelet import POD_PID_DIR
    pid_dir = node.path(POD_PID_DIR)
    if not os.path.isdir(pid_dir):
        return
    for name in sorted(os.listdir(pid_dir)):
        path = os.path.join(pid_dir, name)
        try:
            with open(path) as handle:
                pid = int(handle.read().strip())
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                cmdline = handle.read()
                if b"kube-apiserver" not in cmdline and b"etcd" not in cmdline:
                    raise ValueError("a stale pid file")  # never signal an unrelated process
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            pid = None
        deadline = time.time() + timeout
        while pid and not _exited(pid) and time.time() < deadline:
            time.sleep(0.1)
        try:
            os.remove(path)
        except OSError:
            pass


def wait_healthy(server, ca_pem, timeout, what):
    deadline = time.time() + timeout
    client = Client(server, ca_pem, timeout=2.0)
    last = None
    while time.time() < deadline:
        try:
            client.request("GET", "/healthz")
            return
        except (OSError, APIError) as exc:
            last = exc
            time.sleep(0.25)
    raise KubeadmError("%s: the API server at %s is not healthy after %s: %s"
                       % (what, server, datetime.timedelta(seconds=int(timeout)), last))


# --- certificates and files -------------------------------------------------------------------

class CertWriter:
    def __init__(self, node, algorithm):
        self.node, self.algorithm = node, algorithm

    def write_pair(self, name, cert, key):
        self.node.write(PKI_DIR + "/" + name + ".crt", pki.cert_pem(cert), 0o644)
        self.node.write(PKI_DIR + "/" + name + ".key", pki.key_pem(key))

    def load_pair(self, name):
        return (pki.load_cert(self.node.read(PKI_DIR + "/" + name + ".crt")),
                pki.load_key(self.node.read(PKI_DIR + "/" + name + ".key")))

    def new_cas(self):
        out("[certs] Generating \"ca\" certificate and key")
        self.write_pair("ca", *pki.new_ca("kubernetes", self.algorithm))
        out("[certs] Generating \"front-proxy-ca\" certificate and key")
        self.write_pair("front-proxy-ca", *pki.new_ca("front-proxy-ca", self.algorithm))
        out("[certs] Generating \"etcd/ca\" certificate and key")
        self.write_pair("etcd/ca", *pki.new_ca("etcd-ca", self.algorithm))
        out("[certs] Generating \"sa\" key and public key")
        key = pki.new_key("RSA-2048")
        from cryptography.hazmat.primitives import serialization
        self.node.write(PKI_DIR + "/sa.key", pki.key_pem(key))
        self.node.write(PKI_DIR + "/sa.pub", key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)

    def leaf_certs(self, name, address, cpe_host, cluster):
        ca = self.load_pair("ca")
        svc_ip = _first_service_ip(cluster)
        domain = (cluster.get("networking") or {}).get("dnsDomain", DEFAULT_DNS_DOMAIN)
        sans = ["kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + domain,
                name, svc_ip, address] + ([cpe_host] if cpe_host else []) + \
            list((cluster.get("apiServer") or {}).get("certSANs") or [])
        out("[certs] apiserver serving cert is signed for DNS names and IPs %s" % sorted(set(sans)))
        self.write_pair("apiserver", *pki.issue(*ca, "kube-apiserver", algorithm=self.algorithm, server=True,
                                                sans=list(dict.fromkeys(sans))))
        self.write_pair("apiserver-kubelet-client", *pki.issue(
            *ca, "kube-apiserver-kubelet-client", ["kubeadm:cluster-admins"], algorithm=self.algorithm,
            client=True))
        fp = self.load_pair("front-proxy-ca")
        self.write_pair("front-proxy-client", *pki.issue(*fp, "front-proxy-client", algorithm=self.algorithm,
                                                         client=True))
        etcd_local = "external" not in (cluster.get("etcd") or {})
        if etcd_local:
            etcd = self.load_pair("etcd/ca")
            etcd_sans = [name, "localhost", address, "127.0.0.1", "::1"]
            self.write_pair("etcd/server", *pki.issue(*etcd, name, algorithm=self.algorithm, server=True,
                                                      client=True, sans=etcd_sans))
            self.write_pair("etcd/peer", *pki.issue(*etcd, name, algorithm=self.algorithm, server=True,
                                                    client=True, sans=etcd_sans))
            self.write_pair("etcd/healthcheck-client", *pki.issue(*etcd, "kube-etcd-healthcheck-client",
                                                                  algorithm=self.algorithm, client=True))
            self.write_pair("apiserver-etcd-client", *pki.issue(*etcd, "kube-apiserver-etcd-client",
                                                                algorithm=self.algorithm, client=True))

    def kubeconfigs(self, name, server, cluster_name, with_admin=True):
        ca_cert, ca_key = self.load_pair("ca")
        ca_pem = pki.cert_pem(ca_cert)
        files = []
        if with_admin:
            files += [("admin.conf", "kubernetes-admin", ["kubeadm:cluster-admins"]),
                      ("super-admin.conf", "kubernetes-super-admin", ["system:masters"])]
        files += [("controller-manager.conf", "system:kube-controller-manager", []),
                  ("scheduler.conf", "system:kube-scheduler", []),
                  ("kubelet.conf", "system:node:" + name, ["system:nodes"])]
        for filename, user, orgs in files:
            out("[kubeconfig] Writing \"%s\" kubeconfig file" % filename)
            cert, key = pki.issue(ca_cert, ca_key, user, orgs, algorithm=self.algorithm, client=True)
            cfg = pki.kubeconfig(server, ca_pem, user, cluster_name, pki.cert_pem(cert), pki.key_pem(key))
            self.node.write(KUBE_DIR + "/" + filename, pki.dump_kubeconfig(cfg))


def _first_service_ip(cluster):
    import ipaddress
    subnet = (cluster.get("networking") or {}).get("serviceSubnet", DEFAULT_SERVICE_SUBNET).split(",")[0]
    return str(ipaddress.ip_network(subnet.strip())[1])


def _manifest(component, command, image):
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": component, "namespace": "kube-system",
                     "labels": {"component": component, "tier": "control-plane"}},
        "spec": {"hostNetwork": True, "priorityClassName": "system-node-critical",
                 "containers": [{"name": component, "image": image, "command": command}]},
    }, sort_keys=False)


def _etcd_local_host(address):
    """Where the local etcd member answers its own control plane: 127.0.0.1 as kubeadm writes it,
    unless the member's address is a loopback address itself (several members on one test host)."""
    import ipaddress
    return address if ipaddress.ip_address(address).is_loopback else "127.0.0.1"


def _etcd_flags(cluster, address):
    """--etcd-* flags of the API server: the local member (stacked) or the external endpoints."""
    external = (cluster.get("etcd") or {}).get("external")
    if external:
        return ["--etcd-servers=" + ",".join(external["endpoints"]), "--etcd-cafile=" + external["caFile"],
                "--etcd-certfile=" + external["certFile"], "--etcd-keyfile=" + external["keyFile"]]
    return ["--etcd-servers=" + etcd.url(_etcd_local_host(address), etcd.CLIENT_PORT),
            "--etcd-cafile=%s/etcd/ca.crt" % PKI_DIR,
            "--etcd-certfile=%s/apiserver-etcd-client.crt" % PKI_DIR,
            "--etcd-keyfile=%s/apiserver-etcd-client.key" % PKI_DIR]


def etcd_client(node, endpoints, ca_file=PKI_DIR + "/etcd/ca.crt", timeout=5.0):
    """A client of the stacked etcd cluster with the API server's etcd client certificate."""
    return etcd.Etcd(endpoints, node.path(ca_file), node.path(PKI_DIR + "/apiserver-etcd-client.crt"),
                     node.path(PKI_DIR + "/apiserver-etcd-client.key"), timeout=timeout)


def local_etcd(node, address, timeout=5.0):
    """A client of this control plane's own etcd member."""
    return etcd_client(node, [etcd.url(_etcd_local_host(address), etcd.CLIENT_PORT)], timeout=timeout)


def write_control_plane_manifests(node, cluster, address, bind_port, version):
    repo = cluster.get("imageRepository", "registry.k8s.io")
    api = cluster.get("apiServer") or {}
    net = cluster.get("networking") or {}
    command = ["kube-apiserver", "--advertise-address=" + address, "--secure-port=%d" % bind_port,
               "--tls-cert-file=%s/apiserver.crt" % PKI_DIR, "--tls-private-key-file=%s/apiserver.key" % PKI_DIR,
               "--client-ca-file=%s/ca.crt" % PKI_DIR,
               "--service-cluster-ip-range=" + net.get("serviceSubnet", DEFAULT_SERVICE_SUBNET),
               "--authorization-mode=Node,RBAC", "--enable-bootstrap-token-auth=true"] + \
        _etcd_flags(cluster, address) + _args_list(api.get("extraArgs"))
    out("[control-plane] Creating static Pod manifest for \"kube-apiserver\"")
    node.write(KUBE_DIR + "/manifests/kube-apiserver.yaml",
               _manifest("kube-apiserver", command, "%s/kube-apiserver:%s" % (repo, version)))
    for comp in ("kube-controller-manager", "kube-scheduler"):
        out("[control-plane] Creating static Pod manifest for \"%s\"" % comp)
        extra = _args_list((cluster.get("controllerManager" if "controller" in comp else "scheduler") or {})
                           .get("extraArgs"))
        node.write(KUBE_DIR + "/manifests/%s.yaml" % comp,
                   _manifest(comp, [comp] + extra, "%s/%s:%s" % (repo, comp, version)))


def write_etcd_manifest(node, cluster, name, address, initial_cluster, existing):
    """The stacked etcd member's static pod, with the flags kubeadm writes."""
    local = _etcd_local_host(address)
    listen = [etcd.url(local, etcd.CLIENT_PORT)] + ([etcd.url(address, etcd.CLIENT_PORT)] if local != address else [])
    peer = etcd.url(address, etcd.PEER_PORT)
    command = ["etcd", "--advertise-client-urls=" + etcd.url(address, etcd.CLIENT_PORT),
               "--cert-file=%s/etcd/server.crt" % PKI_DIR, "--client-cert-auth=true",
               "--data-dir=" + ETCD_DATA_DIR, "--experimental-initial-corrupt-check=true",
               "--initial-advertise-peer-urls=" + peer, "--initial-cluster=" + initial_cluster,
               "--key-file=%s/etcd/server.key" % PKI_DIR, "--listen-client-urls=" + ",".join(listen),
               "--listen-metrics-urls=http://%s:2381" % local, "--listen-peer-urls=" + peer, "--name=" + name,
               "--peer-cert-file=%s/etcd/peer.crt" % PKI_DIR, "--peer-client-cert-auth=true",
               "--peer-key-file=%s/etcd/peer.key" % PKI_DIR, "--peer-trusted-ca-file=%s/etcd/ca.crt" % PKI_DIR,
               "--snapshot-count=10000", "--trusted-ca-file=%s/etcd/ca.crt" % PKI_DIR]
    if existing:
        command.append("--initial-cluster-state=existing")
    command += _args_list(((cluster.get("etcd") or {}).get("local") or {}).get("extraArgs"))
    os.makedirs(node.path(ETCD_DATA_DIR), mode=0o700, exist_ok=True)
    os.chmod(node.path(ETCD_DATA_DIR), 0o700)
    out("[etcd] Creating static Pod manifest for local etcd in \"/etc/kubernetes/manifests\"")
    repo = cluster.get("imageRepository", "registry.k8s.io")
    node.write(KUBE_DIR + "/manifests/etcd.yaml", _manifest("etcd", command, "%s/etcd:%s" % (repo, ETCD_IMAGE_TAG)))


def wait_etcd(client, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if client.healthy():
            return
        time.sleep(0.25)
    raise KubeadmError("%s: the local etcd member at %s is not healthy after %s (see the kubelet's etcd log)"
                       % (what, client.endpoints[0], datetime.timedelta(seconds=int(timeout))))


def write_kubelet_files(node, kubelet_config, cri_socket, name, address, extra_args):
    # flags first: a kubelet (re)started in between must not run with the config but without its flags
    overridden = {a["name"] for a in extra_args or []}
    defaults = [("container-runtime-endpoint", cri_socket), ("hostname-override", name), ("node-ip", address)]
    flags = ["--%s=%s" % (k, v) for k, v in defaults if k not in overridden] + _args_list(extra_args)
    out("[kubelet-start] Writing kubelet environment file with flags to file "
        "\"/var/lib/kubelet/kubeadm-flags.env\"")
    node.write("/var/lib/kubelet/kubeadm-flags.env", 'KUBELET_KUBEADM_ARGS="%s"\n' % " ".join(flags), 0o644)
    out("[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"")
    node.write("/var/lib/kubelet/config.yaml", kubelet_config, 0o644)


def kubelet_config_text(docs, cluster):
    cfg = dict(docs.get("KubeletConfiguration") or {})
    cfg.setdefault("apiVersion", "kubelet.config.k8s.io/v1beta1")
    cfg.setdefault("kind", "KubeletConfiguration")
    cfg.setdefault("cgroupDriver", "systemd")
    cfg.setdefault("clusterDomain", (cluster.get("networking") or {}).get("dnsDomain", DEFAULT_DNS_DOMAIN))
    cfg.setdefault("staticPodPath", "/etc/kubernetes/manifests")
    cfg.setdefault("authentication", {"x509": {"clientCAFile": PKI_DIR + "/ca.crt"}})
    return yaml.safe_dump(cfg, sort_keys=False)


def _split_host_port(endpoint, default_port):
    host, _sep, port = endpoint.rpartition(":")
    if not _sep or not port.isdigit():
        return endpoint.strip("[]"), default_port
    return host.strip("[]"), int(port)


def _url(host, port):
    return "https://%s:%d" % ("[%s]" % host if ":" in host else host, port)


def _load_config(node, path):
    if not path:
        return {}
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError as exc:
        raise KubeadmError("unable to read config from %q: %s".replace("%q", '"%s"') % (path, exc))
    try:
        return schema.load_documents(text)
    except schema.ConfigError as exc:
        raise KubeadmError("%s: %s" % (path, exc))


def _preflight(node, mode, ctx, cli_ignore, nreg):
    try:
        ignored = schema.ignored_checks(cli_ignore, nreg.get("ignorePreflightErrors"))
        preflight.run(node.root, mode, ctx, ignored, out)
    except schema.ConfigError as exc:
        raise KubeadmError(str(exc))
    except preflight.PreflightError as exc:
        raise KubeadmError("error execution phase preflight: " + str(exc))


# --- init -------------------------------------------------------------------------------------

def cmd_init(node, args):
    docs = _load_config(node, args.config)
    if args.config and not ({"InitConfiguration", "ClusterConfiguration"} & set(docs)):
        raise KubeadmError("%s: no InitConfiguration or ClusterConfiguration kind was found" % args.config)
    init = docs.get("InitConfiguration") or {}
    cluster = docs.get("ClusterConfiguration") or {}
    nreg = init.get("nodeRegistration") or {}
    version = check_version(cluster.get("kubernetesVersion"))
    out("[init] Using Kubernetes version: %s" % version)
    name = node_name(nreg)
    endpoint = init.get("localAPIEndpoint") or {}
    address = endpoint.get("advertiseAddress") or default_address(node)
    bind_port = endpoint.get("bindPort", DEFAULT_BIND_PORT)
    bind_addr = _args_value((cluster.get("apiServer") or {}).get("extraArgs"), "bind-address") or "0.0.0.0"
    cri = nreg.get("criSocket", preflight.DEFAULT_CRI_SOCKET)
    fail_swap_on = (docs.get("KubeletConfiguration") or {}).get("failSwapOn", True)
    _preflight(node, "init", {"cri_socket": cri, "api_bind": (bind_addr, bind_port), "fail_swap_on": fail_swap_on,
                              "kubelet_version": kubelet_version(node), "control_plane_version": version},
               args.ignore_preflight_errors, nreg)

    algorithm = cluster.get("encryptionAlgorithm", "RSA-2048")
    certs = CertWriter(node, algorithm)
    out("[certs] Using certificateDir folder \"%s\"" % PKI_DIR)
    certs.new_cas()
    cpe = cluster.get("controlPlaneEndpoint")
    cpe_host, cpe_port = _split_host_port(cpe, bind_port) if cpe else (None, None)
    certs.leaf_certs(name, address, cpe_host, cluster)
    server = _url(cpe_host, cpe_port) if cpe else _url(address, bind_port)
    cluster_name = cluster.get("clusterName", "kubernetes")
    certs.kubeconfigs(name, server, cluster_name)

    kubelet_cfg = kubelet_config_text(docs, cluster)
    write_kubelet_files(node, kubelet_cfg, cri, name, address,
                        nreg.get("kubeletExtraArgs"))
    write_control_plane_manifests(node, cluster, address, bind_port, version)

    ca_pem = node.read(PKI_DIR + "/ca.crt")
    full_cluster = dict(cluster, apiVersion=schema.KUBEADM_API, kind="ClusterConfiguration",
                        kubernetesVersion=version, clusterName=cluster_name)
    taints = nreg.get("taints")
    if taints is None:
        taints = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    tokens = init.get("bootstrapTokens") or [{"token": new_token()}]
    stacked = "external" not in (cluster.get("etcd") or {})
    if stacked:
        write_etcd_manifest(node, cluster, name, address, "%s=%s" % (name, etcd.url(address, etcd.PEER_PORT)),
                            existing=False)
    sections = {
        "cluster_configuration": yaml.safe_dump(full_cluster, sort_keys=False),
        "kubelet_config": kubelet_cfg,
        "cluster_info": {"kubeconfig": pki.dump_kubeconfig(pki.kubeconfig(server, ca_pem, "", ""))},
        "control_planes": {name: taints}, "tokens": {}, "objects": {},
    }
    for tok in tokens:
        token_id, secret = tok["token"].split(".")
        sections["tokens"][token_id] = {"secret": secret, "expires": _expiry(tok.get("ttl", "24h0m0s")),
                                        "description": tok.get("description", "")}
        from .apiserver import add_token_signature
        add_token_signature(sections, token_id, secret)

    restart_kubelet(node)
    timeout = schema.parse_duration((init.get("timeouts") or {}).get("controlPlaneComponentHealthCheck",
                                                                      DEFAULT_CP_TIMEOUT))
    out("[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from "
        "directory \"/etc/kubernetes/manifests\"")
    if stacked:
        client = local_etcd(node, address)
        wait_etcd(client, timeout, "wait-control-plane")
    else:
        ext = cluster["etcd"]["external"]
        client = etcd.Etcd(ext["endpoints"], node.path(ext["caFile"]), node.path(ext["certFile"]),
                           node.path(ext["keyFile"]))

    def seed(state):
        nodes = state.get("nodes", {})  # the kubelet may have registered its node already
        state.clear()
        state.update(sections)
        state["nodes"] = nodes

    store.Store(client).update(seed)
    local_url = _url("127.0.0.1" if bind_addr == "0.0.0.0" else bind_addr, bind_port)
    wait_healthy(local_url.replace("127.0.0.1", address) if bind_addr == "0.0.0.0" else local_url,
                 ca_pem, timeout, "wait-control-plane")
    # like kubeadm's api-check: through the control-plane endpoint the kubeconfig files name
    wait_healthy(server, ca_pem, timeout, "api-check")
    out("[api-check] The API server is healthy")
    out("[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the "
        "\"kube-system\" Namespace")
    cert_key = None
    if args.upload_certs:
        cert_key = _upload_certs(node, init.get("certificateKey") or args.certificate_key)
    # like kubeadm's mark-control-plane phase: the node must have registered to be marked
    _wait_node(Client.from_kubeconfig(node.path(KUBE_DIR + "/admin.conf")), name, timeout, "mark-control-plane")
    out("[mark-control-plane] Marking the node %s as control-plane by adding the labels: "
        "[node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]" % name)
    out("[bootstrap-token] Using token: %s" % tokens[0]["token"])
    out("")
    out("Your Kubernetes control-plane has initialized successfully!")
    join = "kubeadm join %s --token %s \\\n\t--discovery-token-ca-cert-hash %s" % (
        server[len("https://"):], tokens[0]["token"], pki.spki_hash(pki.load_cert(ca_pem)))
    if cert_key:
        out("You can now join any number of control-plane nodes running the following command on each as root:")
        out("  %s \\\n\t--control-plane --certificate-key %s" % (join, cert_key))
    out("Then you can join any number of worker nodes by running the following on each as root:")
    out(join)
    return 0


def _admin_client(node, kubeconfig):
    path = kubeconfig or node.path(KUBE_DIR + "/admin.conf")
    if not os.path.exists(path):
        raise KubeadmError("failed to load admin kubeconfig: open %s: no such file or directory" % path)
    return Client.from_kubeconfig(path)


def _upload_certs(node, key):
    key = key or pki.new_certificate_key()
    if not schema.CERT_KEY_RE.match(key):
        raise KubeadmError("error execution phase upload-certs: error decoding certificate key: "
                           "the certificate key must be 32 bytes hex encoded")
    files = {}
    for name in pki.SHARED_CERT_FILES:
        if node.exists(PKI_DIR + "/" + name):
            files[name] = node.read(PKI_DIR + "/" + name)
    client = _admin_client(node, None)
    out("[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace")
    client.request("PUT", "/api/v1/namespaces/kube-system/secrets/kubeadm-certs",
                   {"kind": "Secret", "apiVersion": "v1", "type": "Opaque",
                    "metadata": {"name": "kubeadm-certs", "namespace": "kube-system"},
                    "data": pki.encrypt_certs(key, files)})
    out("[upload-certs] Using certificate key:")
    out(key)
    return key


def cmd_upload_certs(node, args):
    if not args.upload_certs:
        raise KubeadmError("error execution phase upload-certs: the --upload-certs flag is required to "
                           "upload the certificates")
    docs = _load_config(node, args.config)
    key = args.certificate_key or (docs.get("InitConfiguration") or {}).get("certificateKey")
    _upload_certs(node, key)
    return 0


# --- tokens -----------------------------------------------------------------------------------

def cmd_token_create(node, args):
    token = args.token or new_token()
    if not schema.TOKEN_RE.match(token):
        raise KubeadmError('the bootstrap token "%s" was not of the form "[a-z0-9]{6}.[a-z0-9]{16}"' % token)
    client = _admin_client(node, args.kubeconfig)
    token_id, secret = token.split(".")
    client.request("POST", "/api/v1/namespaces/kube-system/secrets", {
        "kind": "Secret", "apiVersion": "v1", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": "bootstrap-token-" + token_id, "namespace": "kube-system"},
        "stringData": {"token-id": token_id, "token-secret": secret, "expiration": _expiry(args.ttl) or "",
                       "description": args.description or "",
                       "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true"}})
    if args.print_join_command:
        endpoint = client.server[len("https://"):]
        ca_hash = pki.spki_hash(pki.load_cert(client.ca_pem))
        out("kubeadm join %s --token %s --discovery-token-ca-cert-hash %s " % (endpoint, token, ca_hash))
    else:
        out(token)
    return 0


def cmd_token_list(node, args):
    client = _admin_client(node, args.kubeconfig)
    items = client.request("GET", "/api/v1/namespaces/kube-system/secrets")["items"]
    out("TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION")
    for item in items:
        data = item["stringData"]
        out("%s.<hidden>   %-22s authentication,signing   %s"
            % (data["token-id"], data["expiration"] or "<forever>", data["description"] or "<none>"))
    return 0


# --- join -------------------------------------------------------------------------------------

JOIN_FLAGS_CONFLICTING_WITH_CONFIG = ("token", "discovery_token_ca_cert_hash", "certificate_key",
                                      "apiserver_advertise_address", "node_name", "cri_socket", "endpoint")


def _join_settings(node, args):
    if args.config:
        mixed = [f for f in JOIN_FLAGS_CONFLICTING_WITH_CONFIG if getattr(args, f)]
        if mixed or args.control_plane:
            names = ["--" + f.replace("_", "-") for f in mixed] + (["--control-plane"] if args.control_plane else [])
            raise KubeadmError("can not mix '--config' with arguments %s" % names)
        docs = _load_config(node, args.config)
        if "JoinConfiguration" not in docs:
            raise KubeadmError("%s: no JoinConfiguration kind was found" % args.config)
        join = docs["JoinConfiguration"]
        bt = join["discovery"].get("bootstrapToken")
        if bt is None:
            raise KubeadmError("file-based discovery is not supported by this test double")
        return {
            "endpoint": bt["apiServerEndpoint"], "token": bt.get("token") or join["discovery"]["tlsBootstrapToken"],
            "hashes": bt.get("caCertHashes") or [], "unsafe": bt.get("unsafeSkipCAVerification", False),
            "nreg": join.get("nodeRegistration") or {}, "control_plane": join.get("controlPlane"),
            "timeouts": join.get("timeouts") or {}, "docs": docs,
        }
    if not args.endpoint:
        raise KubeadmError("discovery: Invalid value: \"\": bootstrapToken or file must be set")
    if not args.token or not schema.TOKEN_RE.match(args.token):
        raise KubeadmError('discovery.bootstrapToken.token: Invalid value: "%s": the bootstrap token is invalid'
                           % (args.token or ""))
    hashes = args.discovery_token_ca_cert_hash or []
    if not hashes and not args.discovery_token_unsafe_skip_ca_verification:
        raise KubeadmError("discovery.bootstrapToken.caCertHashes: Invalid value: []string(nil): using token-based "
                           "discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as "
                           "true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification "
                           "flag to continue")
    for value in hashes:
        if not schema.CA_HASH_RE.match(value):
            raise KubeadmError('invalid hash "%s", expected "sha256:<64 hex characters>"' % value)
    control_plane = None
    if args.control_plane:
        control_plane = {"certificateKey": args.certificate_key,
                         "localAPIEndpoint": {"advertiseAddress": args.apiserver_advertise_address,
                                              "bindPort": args.apiserver_bind_port}}
        if args.certificate_key and not schema.CERT_KEY_RE.match(args.certificate_key):
            raise KubeadmError("controlPlane.certificateKey: Invalid value: the certificate key must be 32 bytes "
                               "hex encoded")
    nreg = {}
    if args.node_name:
        nreg["name"] = args.node_name
    if args.cri_socket:
        nreg["criSocket"] = args.cri_socket
    return {"endpoint": args.endpoint, "token": args.token, "hashes": hashes,
            "unsafe": args.discovery_token_unsafe_skip_ca_verification, "nreg": nreg,
            "control_plane": control_plane, "timeouts": {}, "docs": {}}


def _discover(settings):
    """kubeadm's token discovery: fetch cluster-info, check the JWS and pin the CA by hash."""
    host, port = _split_host_port(settings["endpoint"], DEFAULT_BIND_PORT)
    server = _url(host, port)
    token_id, token_secret = settings["token"].split(".")
    timeout = schema.parse_duration(settings["timeouts"].get("discovery", "5m0s"))
    deadline = time.time() + min(timeout, float(os.environ.get("FLEET_KUBEADM_DISCOVERY_RETRY", timeout)))
    insecure = Client(server, None, timeout=5.0)
    while True:
        try:
            info = insecure.request("GET", "/api/v1/namespaces/kube-public/configmaps/cluster-info")["data"]
            break
        except (OSError, APIError) as exc:
            if time.time() > deadline:
                raise KubeadmError("couldn't validate the identity of the API Server: failed to request the "
                                   "cluster-info ConfigMap: %s" % exc)
            time.sleep(0.5)
    signature = info.get("jws-kubeconfig-" + token_id)
    if signature is None:
        raise KubeadmError('couldn\'t validate the identity of the API Server: token id "%s" is invalid for this '
                           'cluster or it has expired. Use "kubeadm token create" on the control-plane node to '
                           'create a new valid token' % token_id)
    if not pki.jws_verify(info["kubeconfig"], signature, token_id, token_secret):
        raise KubeadmError("couldn't validate the identity of the API Server: failed to verify JWS signature "
                           "of received cluster info object, can't trust this API Server")
    cfg = yaml.safe_load(info["kubeconfig"])
    ca_pem = base64.b64decode(cfg["clusters"][0]["cluster"]["certificate-authority-data"])
    ca_hash = pki.spki_hash(pki.load_cert(ca_pem))
    if not settings["unsafe"] and ca_hash not in settings["hashes"]:
        raise KubeadmError("couldn't validate the identity of the API Server: cluster CA found in cluster-info "
                           "ConfigMap is invalid: none of the public keys \"%s\" are pinned" % ca_hash)
    out("[discovery] Cluster info signature and contents are valid and TLS certificate validates against "
        "pinned roots, will use API Server \"%s\"" % settings["endpoint"])
    return server, ca_pem


def cmd_join(node, args):
    settings = _join_settings(node, args)
    nreg = settings["nreg"]
    name = node_name(nreg)
    cri = nreg.get("criSocket", preflight.DEFAULT_CRI_SOCKET)
    cp = settings["control_plane"]
    mode = "join-control-plane" if cp is not None else "join"
    ctx = {"cri_socket": cri,
           "fail_swap_on": (settings["docs"].get("KubeletConfiguration") or {}).get("failSwapOn", True)}
    if cp is not None:
        ep = cp.get("localAPIEndpoint") or {}
        ctx["api_bind"] = ("0.0.0.0", ep.get("bindPort") or DEFAULT_BIND_PORT)
    _preflight(node, mode, ctx, args.ignore_preflight_errors, nreg)

    server, ca_pem = _discover(settings)
    bootstrap = Client(server, ca_pem, token=settings["token"])
    try:
        cluster = yaml.safe_load(bootstrap.request(
            "GET", "/api/v1/namespaces/kube-system/configmaps/kubeadm-config")["data"]["ClusterConfiguration"])
        kubelet_cfg = bootstrap.request("GET", "/api/v1/namespaces/kube-system/configmaps/kubelet-config")[
            "data"]["kubelet"]
    except APIError as exc:
        if exc.status == 401:
            raise KubeadmError("error execution phase preflight: unable to fetch the kubeadm-config ConfigMap: "
                               "Unauthorized (the bootstrap token is not valid or has expired)")
        raise KubeadmError("unable to fetch the kubeadm-config ConfigMap: %s" % exc)
    out("[preflight] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...")

    algorithm = cluster.get("encryptionAlgorithm", "RSA-2048")
    address = None
    if cp is not None:
        _preflight(node, "control-plane-version", {"kubelet_version": kubelet_version(node),
                                                   "control_plane_version": cluster["kubernetesVersion"]},
                   args.ignore_preflight_errors, nreg)
        if not cluster.get("controlPlaneEndpoint"):
            raise KubeadmError("error execution phase preflight: \nOne or more conditions for hosting a new "
                               "control plane instance is not satisfied.\n\nunable to add a new control plane "
                               "instance to a cluster that doesn't have a stable controlPlaneEndpoint address")
        if not cp.get("certificateKey"):
            raise KubeadmError("the --certificate-key flag (controlPlane.certificateKey) is required to fetch the "
                               "control-plane certificates")
        try:
            secret = bootstrap.request("GET", "/api/v1/namespaces/kube-system/secrets/kubeadm-certs")
        except APIError as exc:
            raise KubeadmError("error execution phase control-plane-prepare/download-certs: error downloading "
                               "certs: error downloading the secret: %s" % exc)
        try:
            files = pki.decrypt_certs(cp["certificateKey"], secret["data"])
        except Exception:  # cryptography raises InvalidTag
            raise KubeadmError("error execution phase control-plane-prepare/download-certs: error downloading "
                               "certs: error decoding secret data with provided key: cipher: message "
                               "authentication failed")
        for filename, data in files.items():
            node.write(PKI_DIR + "/" + filename, data, 0o600 if filename.endswith(".key") else 0o644)
        ep = cp.get("localAPIEndpoint") or {}
        address = ep.get("advertiseAddress") or default_address(node)
        bind_port = ep.get("bindPort") or DEFAULT_BIND_PORT
        certs = CertWriter(node, algorithm)
        cpe_host, _port = _split_host_port(cluster["controlPlaneEndpoint"], bind_port)
        certs.leaf_certs(name, address, cpe_host, cluster)
        certs.kubeconfigs(name, server, cluster.get("clusterName", "kubernetes"), with_admin=True)
        os.remove(node.path(KUBE_DIR + "/kubelet.conf"))  # the kubelet's comes from TLS bootstrap below
    else:
        node.write(PKI_DIR + "/ca.crt", ca_pem, 0o644)
    address = address or _args_value(nreg.get("kubeletExtraArgs"), "node-ip") or default_address(node)

    # TLS bootstrap: a CSR authenticated by the bootstrap token, signed by the cluster CA
    key = pki.new_key(algorithm)
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:nodes"),
                                    x509.NameAttribute(NameOID.COMMON_NAME, "system:node:" + name)]))
           .sign(key, hashes.SHA256()))
    from cryptography.hazmat.primitives import serialization
    signed = bootstrap.request("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests", {
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "csr-"},
        "spec": {"request": csr.public_bytes(serialization.Encoding.PEM).decode(),
                 "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                 "usages": ["digital signature", "key encipherment", "client auth"]}})
    cert_pem = signed["status"]["certificate"].encode()
    cfg = pki.kubeconfig(server, ca_pem, "system:node:" + name, cluster.get("clusterName", "kubernetes"),
                         cert_pem, pki.key_pem(key))
    out("[kubelet-start] Writing kubelet configuration to file \"/etc/kubernetes/kubelet.conf\"")
    node.write(KUBE_DIR + "/kubelet.conf", pki.dump_kubeconfig(cfg))
    write_kubelet_files(node, kubelet_cfg, cri, name, address, nreg.get("kubeletExtraArgs"))
    if cp is not None:  # control-plane-join: the etcd member first, then the static pods
        stacked = _join_etcd(node, cluster, name, address, schema.parse_duration(
            settings["timeouts"].get("etcdAPICall", DEFAULT_ETCD_TIMEOUT)))
        write_control_plane_manifests(node, cluster, address, bind_port, cluster["kubernetesVersion"])
    restart_kubelet(node)
    if cp is not None and stacked:
        out("[etcd] Waiting for the new etcd member to join the cluster")
        wait_etcd(local_etcd(node, address), schema.parse_duration(
            settings["timeouts"].get("etcdAPICall", DEFAULT_ETCD_TIMEOUT)), "control-plane-join/etcd")
    out("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap")
    timeout = schema.parse_duration(settings["timeouts"].get("tlsBootstrap", DEFAULT_TLS_TIMEOUT))
    _wait_node(Client(server, ca_pem, cert_pem, pki.key_pem(key)), name, timeout, "kubelet-start")
    if cp is not None:
        out("[mark-control-plane] Marking the node %s as control-plane" % name)
        _mark_control_plane(server, ca_pem, node, name, nreg)
    out("")
    out("This node has joined the cluster%s" % (" and a new control plane instance was created" if cp else ""))
    return 0


def _etcd_retry(call, timeout):
    """``call()``, again while etcd answers "unhealthy cluster" (a member joined or left moments ago)."""
    deadline = time.time() + timeout
    while True:
        try:
            return call()
        except etcd.EtcdError as exc:
            if time.time() > deadline or "unhealthy cluster" not in str(exc):
                raise
            time.sleep(1.0)


def _join_etcd(node, cluster, name, address, timeout):
    """kubeadm's control-plane-join etcd phase: announce the new member through etcd's own API and
    write its manifest with the current members and ``--initial-cluster-state=existing``.
    False for an external etcd (nothing to join)."""
    if "external" in (cluster.get("etcd") or {}):
        return False
    admin = Client.from_kubeconfig(node.path(KUBE_DIR + "/admin.conf"))
    peers = []
    for item in admin.request("GET", "/api/v1/nodes")["items"]:
        if "node-role.kubernetes.io/control-plane" in item["metadata"].get("labels", {}):
            peers += [a["address"] for a in item["status"]["addresses"] if a["type"] == "InternalIP" and a["address"]]
    if not peers:
        raise KubeadmError("error execution phase control-plane-join/etcd: no control-plane node with an address "
                           "was found to reach the etcd cluster")
    client = etcd_client(node, [etcd.url(a, etcd.CLIENT_PORT) for a in peers])
    peer = etcd.url(address, etcd.PEER_PORT)
    # etcd refuses a new member until the last one has been connected for a while ("unhealthy
    # cluster"): retried within a bound, as kubeadm does
    def add():
        members = client.members()
        if not any(peer in m["peer_urls"] for m in members):  # a re-run after a failed join adds nothing
            members = client.add_member([peer])[1]
        return members

    try:
        members = _etcd_retry(add, timeout)
    except etcd.EtcdError as exc:
        raise KubeadmError("error execution phase control-plane-join/etcd: error creating local etcd "
                           "static pod manifest file: %s" % exc)
    out("[etcd] Announced new etcd member joining to the existing etcd cluster")
    initial = ["%s=%s" % (m["name"], m["peer_urls"][0]) for m in members
               if m["name"] and m["peer_urls"] and peer not in m["peer_urls"]]
    write_etcd_manifest(node, cluster, name, address, ",".join(initial + ["%s=%s" % (name, peer)]), existing=True)
    return True


def _remove_etcd_member(node):
    """kubeadm reset's remove-etcd-member phase; failures are warnings, as kubeadm's."""
    manifest = node.path(KUBE_DIR + "/manifests/etcd.yaml")
    if not os.path.exists(manifest):
        return
    with open(manifest) as handle:
        command = (yaml.safe_load(handle) or {})["spec"]["containers"][0]["command"]
    flags = dict(arg[2:].split("=", 1) for arg in command[1:] if arg.startswith("--") and "=" in arg)
    peer = flags.get("initial-advertise-peer-urls", "")
    try:
        local = etcd_client(node, flags["listen-client-urls"].split(","), flags["trusted-ca-file"])
        members = local.members()
        mine = [m for m in members if peer in m["peer_urls"]]
        if not mine:
            out("[reset] No etcd member for this node (%s) in the cluster" % peer)
            return
        others = [u for m in members if m is not mine[0] for u in m["client_urls"]]
        if not others:
            out("[reset] The etcd member %s is the last one: not removing it" % flags.get("name"))
            return
        local.endpoints = others + local.endpoints
        _etcd_retry(lambda: local.remove_member(mine[0]["id"]), schema.parse_duration(DEFAULT_ETCD_TIMEOUT))
        out("[reset] Removed the etcd member %s (%s) from the cluster" % (flags.get("name"), peer))
    except (etcd.EtcdError, OSError, KeyError) as exc:
        out("[reset] Failed to remove etcd member: %s, please manually remove this etcd member using etcdctl" % exc)


def _wait_node(client, name, timeout, phase):
    """Wait until the kubelet has registered Node ``name``; the phase's error after ``timeout``."""
    deadline = time.time() + timeout
    while True:
        try:
            client.request("GET", "/api/v1/nodes/" + name)
            return
        except (OSError, APIError) as exc:
            if time.time() > deadline:
                raise KubeadmError("error execution phase %s: timed out waiting for the node %s to "
                                   "register: %s" % (phase, name, exc))
            time.sleep(0.25)


def _mark_control_plane(server, ca_pem, node, name, nreg):
    taints = nreg.get("taints")
    if taints is None:
        taints = [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    # the state lives on the node serving the endpoint; the admin identity marks through the API
    admin = Client.from_kubeconfig(node.path(KUBE_DIR + "/admin.conf"))
    admin.request("PATCH", "/api/v1/nodes/%s/status" % name, {"controlPlaneTaints": taints, "markOnly": True})


# --- reset ------------------------------------------------------------------------------------

def _empty_dir(node, path):
    """Remove everything inside ``path``; False when there is no such directory."""
    full = node.path(path)
    if not os.path.isdir(full):
        return False
    for entry in os.listdir(full):
        target = os.path.join(full, entry)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        else:
            os.remove(target)
    return True


def cmd_reset(node, args):
    if not args.force:
        sys.stdout.write("[reset] Are you sure you want to proceed? [y/N]: ")
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise KubeadmError("aborted reset operation")
    _remove_etcd_member(node)
    stop_kubelet(node)
    # the manifests first, so that a kubelet still running does not restart the static pods; then
    # the pods themselves (kubeadm removes the control-plane containers), so that nothing rewrites
    # the state below once it is gone
    removed = [path for path in ("/etc/kubernetes/manifests",) if _empty_dir(node, path)]
    stop_static_pods(node)
    removed += [path for path in ("/var/lib/kubelet", "/var/lib/etcd", PKI_DIR) if _empty_dir(node, path)]
    for filename in ("admin.conf", "super-admin.conf", "kubelet.conf", "bootstrap-kubelet.conf",
                     "controller-manager.conf", "scheduler.conf"):
        full = node.path(KUBE_DIR + "/" + filename)
        if os.path.exists(full):
            os.remove(full)
    out("[reset] Deleted contents of the etcd data directory: /var/lib/etcd")
    out("[reset] Deleting contents of directories: %s" % removed)
    out("[reset] Deleting files: [/etc/kubernetes/admin.conf /etc/kubernetes/super-admin.conf "
        "/etc/kubernetes/kubelet.conf /etc/kubernetes/bootstrap-kubelet.conf "
        "/etc/kubernetes/controller-manager.conf /etc/kubernetes/scheduler.conf]")
    out("")
    out("The reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d")
    return 0


# --- certs ------------------------------------------------------------------------------------

# kubeadm's names: (name, file below /etc/kubernetes (kubeconfig) or below the PKI dir, its CA)
CERTS = [("admin.conf", "admin.conf", "ca"), ("apiserver", "apiserver", "ca"),
         ("apiserver-etcd-client", "apiserver-etcd-client", "etcd-ca"),
         ("apiserver-kubelet-client", "apiserver-kubelet-client", "ca"),
         ("controller-manager.conf", "controller-manager.conf", "ca"),
         ("etcd-healthcheck-client", "etcd/healthcheck-client", "etcd-ca"), ("etcd-peer", "etcd/peer", "etcd-ca"),
         ("etcd-server", "etcd/server", "etcd-ca"), ("front-proxy-client", "front-proxy-client", "front-proxy-ca"),
         ("scheduler.conf", "scheduler.conf", "ca"), ("super-admin.conf", "super-admin.conf", "ca")]
CAS = [("ca", "ca"), ("etcd-ca", "etcd/ca"), ("front-proxy-ca", "front-proxy-ca")]


def _not_after(cert):
    return cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def _load_leaf(node, filename):
    """(certificate, key, kubeconfig dict or None) of a certificate kubeadm manages; None when missing."""
    if filename.endswith(".conf"):
        path = node.path(KUBE_DIR + "/" + filename)
        if not os.path.exists(path):
            return None
        with open(path) as handle:
            cfg = yaml.safe_load(handle)
        user = cfg["users"][0]["user"]
        return (pki.load_cert(base64.b64decode(user["client-certificate-data"])),
                pki.load_key(base64.b64decode(user["client-key-data"])), cfg)
    if not node.exists(PKI_DIR + "/" + filename + ".crt"):
        return None
    return (pki.load_cert(node.read(PKI_DIR + "/" + filename + ".crt")),
            pki.load_key(node.read(PKI_DIR + "/" + filename + ".key")), None)


def _residual(when, now):
    seconds = max(0, int((when - now).total_seconds()))
    days = seconds // 86400
    if days >= 365:
        return "%dy" % (days // 365)
    return "%dd" % days if days else "%dh" % (seconds // 3600)


def cmd_certs_check_expiration(node, args):
    now = datetime.datetime.now(datetime.timezone.utc)
    certs, cas = [], []
    for name, filename, ca in CERTS:
        leaf = _load_leaf(node, filename)
        certs.append({"name": name, "ca": ca, "when": _not_after(leaf[0]) if leaf else None})
    for name, filename in CAS:
        present = node.exists(PKI_DIR + "/" + filename + ".crt")
        when = _not_after(pki.load_cert(node.read(PKI_DIR + "/" + filename + ".crt"))) if present else None
        cas.append({"name": name, "when": when})
    if not any(c["when"] for c in certs + cas):
        raise KubeadmError("[check-expiration] Error reading configuration from the Cluster: no certificates "
                           "in %s (is this a control-plane node?)" % PKI_DIR)
    if args.output == "json":
        def entry(c, with_ca):
            item = {"name": c["name"], "expirationDate": c["when"].strftime("%Y-%m-%dT%H:%M:%SZ") if c["when"] else
                    "0001-01-01T00:00:00Z",
                    "residualTime": int((c["when"] - now).total_seconds() * 1e9) if c["when"] else 0,
                    "externallyManaged": False, "missing": c["when"] is None}
            if with_ca:
                item["certificateAuthority"] = c["ca"]
            return item
        out(json.dumps({"kind": "CertificateExpirationInfo", "apiVersion": "output.kubeadm.k8s.io/v1alpha3",
                        "certificates": [entry(c, True) for c in certs],
                        "certificateAuthorities": [entry(c, False) for c in cas]}, indent=2))
        return 0
    out("CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   "
        "EXTERNALLY MANAGED")
    for c in certs:
        if c["when"]:
            out("%-26s %-24s %-15s %-23s no" % (c["name"], c["when"].strftime("%b %d, %Y %H:%M UTC"),
                                                 _residual(c["when"], now), c["ca"]))
        else:
            out("!MISSING! %s" % c["name"])
    out("")
    out("CERTIFICATE AUTHORITY   EXPIRES                  RESIDUAL TIME   EXTERNALLY MANAGED")
    for c in cas:
        if c["when"]:
            out("%-23s %-24s %-15s no" % (c["name"], c["when"].strftime("%b %d, %Y %H:%M UTC"),
                                         _residual(c["when"], now)))
        else:
            out("!MISSING! %s" % c["name"])
    return 0


def _algorithm_of(key):
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA-%d" % key.key_size
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp256r1": "ECDSA-P256", "secp384r1": "ECDSA-P384"}[key.curve.name]
    raise KubeadmError("unsupported key type %s" % type(key).__name__)


def _renew(node, name, filename, ca_name):
    leaf = _load_leaf(node, filename)
    if leaf is None:
        out("MISSING! certificate %s not found, skipping" % name)
        return False
    old, old_key, cfg = leaf
    ca_file = dict(CAS)[ca_name]
    if not node.exists(PKI_DIR + "/" + ca_file + ".key"):
        raise KubeadmError("failed to renew certificate %s: the CA key %s/%s.key is missing (external CA)"
                           % (name, PKI_DIR, ca_file))
    ca_cert = pki.load_cert(node.read(PKI_DIR + "/" + ca_file + ".crt"))
    ca_key = pki.load_key(node.read(PKI_DIR + "/" + ca_file + ".key"))
    cn = old.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    orgs = [a.value for a in old.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    try:
        usages = old.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = []
    try:
        alt = old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        sans = [str(v) for v in alt.get_values_for_type(x509.DNSName)] + \
            [str(v) for v in alt.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        sans = []
    from cryptography.x509.oid import ExtendedKeyUsageOID
    cert, key = pki.issue(ca_cert, ca_key, cn, orgs, algorithm=_algorithm_of(old_key),
                          server=ExtendedKeyUsageOID.SERVER_AUTH in usages,
                          client=ExtendedKeyUsageOID.CLIENT_AUTH in usages, sans=sans)
    if cfg is not None:
        user = cfg["users"][0]["user"]
        user["client-certificate-data"] = base64.b64encode(pki.cert_pem(cert)).decode()
        user["client-key-data"] = base64.b64encode(pki.key_pem(key)).decode()
        node.write(KUBE_DIR + "/" + filename, pki.dump_kubeconfig(cfg))
        out("certificate embedded in the kubeconfig file for %s renewed" % name.replace(".conf", ""))
    else:
        CertWriter(node, None).write_pair(filename, cert, key)
        out("certificate for %s renewed" % name)
    return True


def cmd_certs_renew(node, args):
    names = [c[0] for c in CERTS]
    if args.target != "all" and args.target not in names:
        raise KubeadmError('unknown certificate "%s": one of all, %s' % (args.target, ", ".join(names)))
    renewed = [_renew(node, *c) for c in CERTS if args.target in ("all", c[0])]
    if not any(renewed):
        raise KubeadmError("no certificate was renewed: none of them is on this node")
    out("")
    out("Done renewing certificates. You must restart the kube-apiserver, kube-controller-manager, "
        "kube-scheduler and etcd, so that they can use the new certificates.")
    return 0


# --- misc -------------------------------------------------------------------------------------

def cmd_version(node, args):
    if args.output == "short":
        out(own_version())
    elif args.output == "json":
        from .apiserver import version_info
        out(json.dumps({"clientVersion": version_info()}, indent=2))
    elif args.output in ("yaml",):
        from .apiserver import version_info
        out(yaml.safe_dump({"clientVersion": version_info()}))
    else:
        out("kubeadm version: &version.Info{GitVersion:\"%s\", %s}" % (own_version(), DOUBLE_BANNER))
    return 0


def cmd_config_validate(node, args):
    _load_config(node, args.config)
    out("ok")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="kubeadm", description=DOUBLE_BANNER)
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init")
    init.add_argument("--config")
    init.add_argument("--upload-certs", action="store_true")
    init.add_argument("--certificate-key")
    init.add_argument("--ignore-preflight-errors")
    init.add_argument("--skip-token-print", action="store_true")
    init_sub = init.add_subparsers(dest="init_command")
    phase = init_sub.add_parser("phase")
    phase_sub = phase.add_subparsers(dest="phase", required=True)
    upload = phase_sub.add_parser("upload-certs")
    upload.add_argument("--upload-certs", action="store_true")
    upload.add_argument("--certificate-key")
    upload.add_argument("--config")
    upload.add_argument("--kubeconfig")

    join = sub.add_parser("join")
    join.add_argument("endpoint", nargs="?")
    join.add_argument("--config")
    join.add_argument("--token")
    join.add_argument("--discovery-token-ca-cert-hash", action="append")
    join.add_argument("--discovery-token-unsafe-skip-ca-verification", action="store_true")
    join.add_argument("--control-plane", action="store_true")
    join.add_argument("--certificate-key")
    join.add_argument("--apiserver-advertise-address")
    join.add_argument("--apiserver-bind-port", type=int)
    join.add_argument("--node-name")
    join.add_argument("--cri-socket")
    join.add_argument("--ignore-preflight-errors")

    token = sub.add_parser("token")
    token.add_argument("--kubeconfig")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    create = token_sub.add_parser("create")
    create.add_argument("token", nargs="?")
    create.add_argument("--print-join-command", action="store_true")
    create.add_argument("--ttl", default="24h0m0s")
    create.add_argument("--description")
    create.add_argument("--kubeconfig", dest="kubeconfig_sub")
    listing = token_sub.add_parser("list")
    listing.add_argument("--kubeconfig", dest="kubeconfig_sub")

    reset = sub.add_parser("reset")
    reset.add_argument("-f", "--force", action="store_true")
    reset.add_argument("--cri-socket")
    reset.add_argument("--cleanup-tmp-dir", action="store_true")
    reset.add_argument("--ignore-preflight-errors")

    version = sub.add_parser("version")
    version.add_argument("-o", "--output", default="")

    certs = sub.add_parser("certs")
    certs_sub = certs.add_subparsers(dest="certs_command", required=True)
    check = certs_sub.add_parser("check-expiration")
    check.add_argument("-o", "--output", default="", choices=["", "json"])
    check.add_argument("--config")
    renew = certs_sub.add_parser("renew")
    renew.add_argument("target")
    renew.add_argument("--config")

    upgrade.add_parser(sub)
    config = sub.add_parser("config")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    validate = config_sub.add_parser("validate")
    validate.add_argument("--config", required=True)
    return parser


def main(argv, root):
    args = build_parser().parse_args(argv)
    node = Node(root)
    try:
        if args.command == "init":
            if args.init_command == "phase":
                return cmd_upload_certs(node, args)
            return cmd_init(node, args)
        if args.command == "join":
            return cmd_join(node, args)
        if args.command == "token":
            args.kubeconfig = getattr(args, "kubeconfig_sub", None) or args.kubeconfig
            if args.token_command == "create":
                return cmd_token_create(node, args)
            return cmd_token_list(node, args)
        if args.command == "reset":
            return cmd_reset(node, args)
        if args.command == "version":
            return cmd_version(node, args)
        if args.command == "upgrade":
            return upgrade.main(node, args)
        if args.command == "certs":
            if args.certs_command == "renew":
                return cmd_certs_renew(node, args)
            return cmd_certs_check_expiration(node, args)
        return cmd_config_validate(node, args)
    except KubeadmError as exc:
        sys.stderr.write("%s\n" % exc)
        sys.stderr.write("To see the stack trace of this error execute with --v=5 or higher\n")
        return 1
    except APIError as exc:
        sys.stderr.write("%s\n" % exc)
        return 1
