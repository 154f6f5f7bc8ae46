"""kubeadm's preflight checks that matter for the roles (TEST DOUBLE).

Every input is read below the root directory so that tests can set swap, modules,
sysctls and the runtime socket as they like. Check names are kubeadm's, so
``--ignore-preflight-errors`` / ``nodeRegistration.ignorePreflightErrors`` behave alike.
"""
import os
import socket

DEFAULT_CRI_SOCKET = "unix:///var/run/containerd/containerd.sock"
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MIN_CPUS = 2
MIN_MEMORY_MB = 1700


class PreflightError(Exception):
    def __init__(self, errors):
        self.errors = errors
        lines = ["[preflight] Some fatal errors occurred:"]
        lines += ["\t[ERROR %s]: %s" % item for item in errors]
        lines.append("[preflight] If you know what you are doing, you can make a check non-fatal with "
                     "`--ignore-preflight-errors=...`")
        super().__init__("\n".join(lines))


def _path(root, path):
    return os.path.join(root, path.lstrip("/"))


def _read(root, path):
    try:
        with open(_path(root, path)) as handle:
            return handle.read()
    except OSError:
        return None


def _swap(root, ctx):
    text = _read(root, "/proc/swaps")
    if text is None:
        return None
    active = [line for line in text.splitlines()[1:] if line.strip()]
    if active:
        return "running with swap on is not supported. Please disable swap"
    return None


def _file_content(path):
    def check(root, ctx):
        text = _read(root, path)
        if text is None:
            return "%s does not exist" % path
        if text.strip() != "1":
            return "%s contents are not set to 1" % path
        return None
    return check


def _module_loaded(root, name):
    if os.path.isdir(_path(root, "/sys/module/" + name)):
        return True
    text = _read(root, "/proc/modules") or ""
    return any(line.split(" ", 1)[0] == name for line in text.splitlines())


def _system_verification(root, ctx):
    missing = [name for name in ("overlay", "br_netfilter") if not _module_loaded(root, name)]
    if missing:
        return "kernel module(s) not loaded and not built in: %s" % ", ".join(missing)
    return None


def runtime_answers(path, timeout=3.0):
    """True when something speaking HTTP/2 (gRPC) answers on the unix socket at ``path``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        # client preface + an empty SETTINGS frame; a gRPC server answers with its SETTINGS
        sock.sendall(HTTP2_PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        header = b""
        while len(header) < 9:
            chunk = sock.recv(9 - len(header))
            if not chunk:
                return False
            header += chunk
        return header[3] == 0x04
    except OSError:
        return False
    finally:
        sock.close()


def _cri(root, ctx):
    url = ctx.get("cri_socket") or DEFAULT_CRI_SOCKET
    path = _path(root, url[len("unix://"):])
    if not os.path.exists(path):
        return ("container runtime is not running: output: validate service connection: validate CRI v1 "
                "runtime API for endpoint \"%s\": dial unix %s: connect: no such file or directory"
                % (url, url[len("unix://"):]))
    if not runtime_answers(path):
        return ("container runtime is not running: output: validate service connection: validate CRI v1 "
                "runtime API for endpoint \"%s\": rpc error: code = Unavailable" % url)
    return None


def _num_cpu(root, ctx):
    text = _read(root, "/proc/cpuinfo") or ""
    count = sum(1 for line in text.splitlines() if line.startswith("processor"))
    if count < MIN_CPUS:
        return "the number of available CPUs %d is less than the required %d" % (count, MIN_CPUS)
    return None


def _mem(root, ctx):
    text = _read(root, "/proc/meminfo") or ""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            mb = int(line.split()[1]) // 1024
            if mb < MIN_MEMORY_MB:
                return "the system RAM (%d MB) is less than the minimum %d MB" % (mb, MIN_MEMORY_MB)
    return None


def _file_available(path):
    def check(root, ctx):
        if os.path.exists(_path(root, path)):
            return "%s already exists" % path
        return None
    return check


def _dir_available(path):
    def check(root, ctx):
        full = _path(root, path)
        if os.path.isdir(full) and os.listdir(full):
            return "%s is not empty" % path
        return None
    return check


def _port(ctx_key):
    def check(root, ctx):
        address, port = ctx.get(ctx_key, ("0.0.0.0", 6443))
        sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((address, port))
        except OSError:
            return "Port %d is in use" % port
        finally:
            sock.close()
        return None
    return check


def _privileged(root, ctx):
    if os.geteuid() != 0:
        return "user is not running as root"
    return None


def _version_minor(version):
    parts = version.lstrip("v").split(".")
    return int(parts[0]), int(parts[1])


def _kubelet_version(root, ctx):
    kubelet, control_plane = ctx["kubelet_version"], ctx["control_plane_version"]
    if _version_minor(kubelet) > _version_minor(control_plane):
        return ("the kubelet version is higher than the control plane version. This is not a supported version "
                "skew and may lead to a malfunctional cluster. Kubelet version: \"%s\" Control plane version: \"%s\""
                % (kubelet.lstrip("v"), control_plane.lstrip("v")))
    return None


def _name(kind, path):
    return "%s-%s" % (kind, path.replace("/", "-"))


def checks_for(mode, ctx):
    """The checks kubeadm runs for ``mode`` (init, join, join-control-plane; control-plane-version:
    the check a control-plane join runs once it has read the cluster's version)."""
    if mode == "control-plane-version":
        return [("KubeletVersion", _kubelet_version)]
    checks = [("IsPrivilegedUser", _privileged)]
    control_plane = mode in ("init", "join-control-plane")
    if control_plane:
        checks += [("NumCPU", _num_cpu), ("Mem", _mem)]
        port = ctx.get("api_bind", ("0.0.0.0", 6443))[1]
        checks.append(("Port-%d" % port, _port("api_bind")))
        for comp in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"):
            path = "/etc/kubernetes/manifests/%s.yaml" % comp
            checks.append((_name("FileAvailable", path), _file_available(path)))
        checks.append((_name("DirAvailable", "/var/lib/etcd"), _dir_available("/var/lib/etcd")))
        if "control_plane_version" in ctx:
            checks.append(("KubeletVersion", _kubelet_version))
    if mode != "init":
        for path in ("/etc/kubernetes/kubelet.conf", "/etc/kubernetes/pki/ca.crt"):
            checks.append((_name("FileAvailable", path), _file_available(path)))
    checks += [
        ("CRI", _cri),
        ("Swap", _swap),
        (_name("FileContent", "/proc/sys/net/bridge/bridge-nf-call-iptables"),
         _file_content("/proc/sys/net/bridge/bridge-nf-call-iptables")),
        (_name("FileContent", "/proc/sys/net/ipv4/ip_forward"), _file_content("/proc/sys/net/ipv4/ip_forward")),
        ("SystemVerification", _system_verification),
    ]
    return checks


def run(root, mode, ctx, ignored, out):
    """Run the checks; print warnings for ignored failures; raise PreflightError for the rest."""
    out("[preflight] Running pre-flight checks" + (" before initializing the new control plane instance"
                                                   if mode == "control-plane-version" else ""))
    errors = []
    for name, check in checks_for(mode, ctx):
        if name == "Swap" and ctx.get("fail_swap_on") is False:
            message = check(root, ctx)
            if message:
                out("\t[WARNING Swap]: swap is enabled; production deployments should disable swap")
            continue
        message = check(root, ctx)
        if message is None:
            continue
        if "all" in ignored or name.lower() in ignored:
            out("\t[WARNING %s]: %s" % (name, message))
        else:
            errors.append((name, message))
    if errors:
        raise PreflightError(errors)
