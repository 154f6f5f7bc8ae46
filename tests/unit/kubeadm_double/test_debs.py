"""The lab packages of the double install real-looking kubeadm/kubelet/kubectl and run on
Debian 12's own Python and python3-cryptography (the lab machines' environment)."""
import os
import re
import shutil
import subprocess

import pytest

from fleetlab.kubeadm_double.testing import INIT_CONFIG, free_port

from fleetlab.kubeadm_double import debs

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb is not installed")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("debs")
    return debs.build(str(out), "1.37.1-1.1")


def _field(deb, name):
    return subprocess.run(["dpkg-deb", "-f", deb, name], capture_output=True, text=True, check=True).stdout.strip()


def test_packages_are_named_like_upstream_and_say_test_double(built):
    names = sorted(_field(deb, "Package") for deb in built)
    assert names == ["fleetlab-kubernetes-double", "kubeadm", "kubectl", "kubelet"]
    for deb in built:
        assert _field(deb, "Version") == "1.37.1-1.1"
        real = _field(deb, "Package") == "kubectl"
        assert ("TEST DOUBLE" in _field(deb, "Description")) != real
    # kubectl is the real client, whole
    kubectl = [d for d in built if os.path.basename(d).startswith("kubectl_")][0]
    _path, client_version = debs.real_kubectl()
    assert _field(kubectl, "Architecture") == "amd64" and client_version in _field(kubectl, "Description")
    unpacked = os.path.join(os.path.dirname(kubectl), "kubectl-unpacked")
    subprocess.run(["dpkg-deb", "-x", kubectl, unpacked], check=True)
    version = subprocess.run([os.path.join(unpacked, "usr/bin/kubectl"), "version", "--client", "-o", "json"],
                             capture_output=True, text=True, check=True).stdout
    assert '"gitVersion": "v%s"' % client_version in version
    kubeadm = [d for d in built if os.path.basename(d).startswith("kubeadm_")][0]
    listing = subprocess.run(["dpkg-deb", "-c", kubeadm], capture_output=True, text=True, check=True).stdout
    assert "./usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf" in listing
    assert "./usr/bin/kubeadm" in listing


@pytest.mark.skipif(subprocess.run(["/usr/bin/python3", "-c", "import yaml, cryptography"],
                                   capture_output=True).returncode != 0,
                    reason="Debian's python3-yaml / python3-cryptography are not installed")
def test_double_runs_on_the_distribution_python(built, tmp_path, make_node):
    lib = [d for d in built if "fleetlab-kubernetes-double" in d][0]
    unpacked = tmp_path / "unpacked"
    subprocess.run(["dpkg-deb", "-x", lib, str(unpacked)], check=True)
    pythonpath = str(unpacked / debs.LIB_DIR.lstrip("/"))
    system = {"command": ["/usr/bin/python3", "-m", "fleetlab.kubeadm_double"],
              "extra_env": {"PYTHONPATH": pythonpath}}
    cp = make_node("cp1", **system)
    port = free_port()
    cp.start_kubelet()
    cfg = cp.file("/root/kubeadm.yaml", INIT_CONFIG.format(port=port, name="cp1")
                  .replace("ECDSA-P256", "RSA-2048"))
    init = cp.kubeadm("init", "--config", cfg)
    assert init.returncode == 0, init.stderr
    token = re.search(r"--token (\S+)", init.stdout).group(1)
    ca_hash = re.search(r"--discovery-token-ca-cert-hash (\S+)", init.stdout).group(1)
    worker = make_node("w1", **system)
    worker.start_kubelet()
    join = worker.kubeadm("join", "127.0.0.1:%d" % port, "--token", token, "--discovery-token-ca-cert-hash", ca_hash)
    assert join.returncode == 0, join.stderr


def test_debian_dependencies_come_from_the_cache_never_the_network(tmp_path, monkeypatch):
    from fleetlab import debcache

    cache = tmp_path / "cache"
    with pytest.raises(debcache.MissingDebs, match="fleetlab prepare"):
        debcache.copy_to(str(tmp_path / "out"), cache_dir=str(cache))
    (cache / "debs").mkdir(parents=True, exist_ok=True)
    for name in debcache.DOUBLE_DEPENDENCIES:
        (cache / "debs" / ("%s_1.0_amd64.deb" % name)).write_bytes(b"!<arch>\n")

    def no_network(*args, **kwargs):
        raise AssertionError("copy_to ran %r" % (args,))
    monkeypatch.setattr(debcache.subprocess, "run", no_network)
    copied = debcache.copy_to(str(tmp_path / "out"), cache_dir=str(cache))
    assert sorted(os.path.basename(p) for p in copied) == sorted(
        "%s_1.0_amd64.deb" % n for n in debcache.DOUBLE_DEPENDENCIES)


def test_package_groups_resolve_against_the_image_and_come_from_the_cache(tmp_path, monkeypatch):
    from fleetlab import debcache

    cache = tmp_path / "cache"
    with pytest.raises(debcache.MissingDebs, match="no vip packages"):
        debcache.group("vip", cache_dir=str(cache))
    calls = []

    def fake_run(argv, **kwargs):
        calls.append(argv)
        out = "Inst keepalived (1:2.2.7-1+b2 Debian:12)\nInst libnl-3-200 (3.7.0-0.2+b1 Debian:12)\nConf keepalived\n"
        return subprocess.CompletedProcess(argv, 0, stdout=out, stderr="")
    monkeypatch.setattr(debcache.subprocess, "run", fake_run)
    monkeypatch.setattr(debcache, "fetch", lambda names, cache_dir: ["%s/%s.deb" % (cache_dir, n) for n in names])
    (cache / "debs").mkdir(parents=True)
    paths = debcache.fetch_group("vip", ("keepalived",), "/image/var/lib/dpkg/status", cache_dir=str(cache))
    assert [os.path.basename(p) for p in paths] == ["keepalived.deb", "libnl-3-200.deb"]
    assert "Dir::State::status=/image/var/lib/dpkg/status" in calls[0] and "--simulate" in calls[0]
    assert debcache.group("vip", cache_dir=str(cache)) == ["keepalived", "libnl-3-200"]


def test_a_newer_library_keeps_the_older_kubelet_installable(built):
    """kubeadm's upgrade order (kubeadm first, the kubelet later) needs the kubelet of the version
    before to accept the newer shared library."""
    kubelet = [d for d in built if os.path.basename(d).startswith("kubelet_")][0]
    assert _field(kubelet, "Depends") == "fleetlab-kubernetes-double (>= 1.37.1-1.1)"
