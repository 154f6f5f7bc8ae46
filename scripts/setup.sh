#!/usr/bin/env bash
# One-time (and re-runnable) set-up of a fresh Debian 12 machine for baremetal.fleet:
# system packages with apt-get, Python packages into .venv inside the checkout.
# Safe to run twice: apt-get and pip skip what is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# System packages: the lab's VMs (libvirt, QEMU, iPXE, dnsmasq), image building
# (debootstrap, extlinux, busybox) and the usual build tools for libvirt-python.
APT_PACKAGES=(
  git ca-certificates openssh-client iproute2 procps
  gcc pkg-config python3-dev python3-venv
  # the tests check the timeline page in a real browser
  chromium
)
if [ -f "$ROOT/lab/apt-packages.txt" ]; then
  while read -r pkg; do
    case "$pkg" in ""|\#*) ;; *) APT_PACKAGES+=("$pkg") ;; esac
  done < "$ROOT/lab/apt-packages.txt"
fi
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: apt-get install ${missing[*]}"
  $SUDO apt-get update -q
  # policy-rc.d keeps Debian from starting daemons at install time (no systemd here).
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.fleet-installed
want="$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: pip install -e .[test]"
  .venv/bin/pip install -q --upgrade pip
  extras="test"
  if pkg-config --exists libvirt 2>/dev/null; then extras="test,libvirt"; fi
  .venv/bin/pip install -q -e ".[$extras]"
  echo "$want" > "$stamp"
fi
# The collection, found from the checkout itself (no Galaxy server needed):
# ANSIBLE_COLLECTIONS_PATH=<checkout>/build/collections
mkdir -p build/collections/ansible_collections/baremetal
ln -sfn "$ROOT" build/collections/ansible_collections/baremetal/fleet
# Everything the lab downloads, fetched now so that the lab and the tests download nothing: the
# VM image (debootstrap from the Debian mirror, ~2 min once; cached by recipe in /var/cache/fleetlab)
# and the Debian packages the lab's machines install (the kubeadm test double's dependencies, etcd,
# keepalived and haproxy); the double's tests run Debian's etcd from that cache on this host too.
if [ -x /usr/sbin/libvirtd ] && [ -x /usr/bin/qemu-system-x86_64 ]; then
  echo "setup: fleetlab prepare (VM image and packages, cached)"
  .venv/bin/fleetlab prepare
else
  echo "setup: fleetlab prepare --no-image (packages only: no libvirt/QEMU here)"
  .venv/bin/fleetlab prepare --no-image
fi
echo "setup: ready ($(.venv/bin/ansible --version | head -1))"
