"""Debian packages the lab hands to its machines, downloaded once at set-up and kept in the cache.

The lab's machines cannot download, so whatever they install besides the image comes from an
artifacts directory (the roles' air-gap path). The kubeadm test double needs a few Debian packages
there; ``fleetlab prepare`` (run by scripts/setup.sh) fetches them with ``apt-get download`` into
``<cache>/debs/`` and later runs only copy them, so tests and the lab download nothing.
"""
import glob
import os
import shutil
import subprocess

from .vm.images import DEFAULT_CACHE

# what the test double's packages depend on (python3 itself is in the lab image), and etcdctl,
# which the control-plane playbooks (etcd-backup.yml, etcd-restore.yml) run on the nodes
DOUBLE_DEPENDENCIES = ("python3-yaml", "libyaml-0-2", "python3-cryptography", "python3-cffi-backend",
                       "etcd-client")
# never installed on a machine: its etcd binary is what the kubelet double runs for kubeadm's etcd image
ETCD_IMAGE = "etcd-server"
# the keepalived VIP method (control_plane_vip role): keepalived, haproxy, curl for the health check;
# with the dependencies the lab's image lacks (resolved by apt against the image's package list)
VIP_PACKAGES = ("keepalived", "haproxy", "curl")


class MissingDebs(RuntimeError):
    """Packages not in the cache while downloading is not allowed."""


def _cached(cache, name):
    return sorted(glob.glob(os.path.join(cache, "%s_*.deb" % name)))


def fetch(names=DOUBLE_DEPENDENCIES, cache_dir=DEFAULT_CACHE, download=True):
    """Paths of the cached .deb of every package in ``names``; missing ones are downloaded with
    ``apt-get download`` (after an ``apt-get update`` when apt has no lists) unless ``download``
    is false, which raises MissingDebs instead."""
    cache = os.path.join(cache_dir, "debs")
    os.makedirs(cache, exist_ok=True)
    missing = [n for n in names if not _cached(cache, n)]
    if missing and not download:
        raise MissingDebs("not in %s: %s (run scripts/setup.sh or `fleetlab prepare` first)"
                          % (cache, ", ".join(missing)))
    if missing:
        proc = subprocess.run(["apt-get", "download"] + missing, cwd=cache, capture_output=True, text=True)
        if proc.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
            proc = subprocess.run(["apt-get", "download"] + missing, cwd=cache, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError("apt-get download %s failed: %s" % (" ".join(missing), proc.stderr[-2000:]))
    return [_cached(cache, n)[-1] for n in names]


def resolve(names, status_file):
    """The packages apt would install for ``names`` on a system whose dpkg status is ``status_file``
    (the lab image's): the named ones and the dependencies that system lacks."""
    argv = ["apt-get", "install", "--simulate", "--no-install-recommends", "-o", "Dir::State::status=" + status_file]
    proc = subprocess.run(argv + list(names), capture_output=True, text=True)
    if proc.returncode != 0:  # a machine whose apt has no package lists yet
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
        proc = subprocess.run(argv + list(names), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError("apt-get cannot resolve %s: %s" % (" ".join(names), proc.stderr[-2000:]))
    return [line.split()[1] for line in proc.stdout.splitlines() if line.startswith("Inst ")]


def fetch_group(group, names, status_file, cache_dir=DEFAULT_CACHE):
    """Resolve ``names`` against ``status_file``, cache the packages, remember the list as ``group``."""
    resolved = resolve(names, status_file)
    paths = fetch(resolved, cache_dir)
    with open(_group_file(cache_dir, group), "w") as handle:
        handle.write("\n".join(resolved) + "\n")
    return paths


def _group_file(cache_dir, group):
    return os.path.join(cache_dir, "debs", group + ".list")


def group(group_name, cache_dir=DEFAULT_CACHE):
    """The package names ``fetch_group`` cached for ``group_name``."""
    try:
        with open(_group_file(cache_dir, group_name)) as handle:
            return [line.strip() for line in handle if line.strip()]
    except FileNotFoundError:
        raise MissingDebs("no %s packages in %s (run scripts/setup.sh or `fleetlab prepare` first)"
                          % (group_name, os.path.join(cache_dir, "debs")))


def copy_to(out_dir, names=DOUBLE_DEPENDENCIES, cache_dir=DEFAULT_CACHE, download=False):
    """Copy the cached packages into ``out_dir``; returns the copied paths."""
    os.makedirs(out_dir, exist_ok=True)
    copied = []
    for path in fetch(names, cache_dir, download=download):
        dest = os.path.join(out_dir, os.path.basename(path))
        shutil.copyfile(path, dest)
        copied.append(dest)
    return copied
