#!/usr/bin/env bash
# The test command: set-up from nothing (apt-get + .venv), then every check the project has.
# Exits non-zero when any step fails or when pytest ran no test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
. scripts/env.sh

step() { printf '\n==== %s ====\n' "$*"; }
started=$(date +%s)

step "pytest (unit, integration, lab)"
# exit code 5 (no tests collected) is a failure too. Two workers (pytest-xdist): most of the time
# goes to waiting on playbooks, lab daemons and VMs; every test has its own lab and ports, and the
# kubeadm double's clusters (etcd on 127.0.0.1:2379) take turns (the double_cluster_lock fixture).
python -m pytest ${PYTEST_ARGS:--n 2} tests

# The whole journey on lab VMs (create, converge, idempotence, testinfra verify, day 2, destroy),
# once per provider: "default" (plunder face: 1 control plane + 1 worker, --check, scale out/in,
# remove-node) and "ha" (metal-api face: three control planes, keepalived VIP, renewal,
# backup/restore, failover). FLEET_MOLECULE: "auto" (default) runs both where the libvirt lab can
# run; a scenario name runs that one; "0" skips molecule.
FLEET_MOLECULE="${FLEET_MOLECULE:-auto}"
case "$FLEET_MOLECULE" in
  0) scenarios=() ;;
  auto|all) scenarios=(default ha) ;;
  *) scenarios=("$FLEET_MOLECULE") ;;
esac
if [ "${#scenarios[@]}" -gt 0 ]; then
  if [ -x /usr/sbin/libvirtd ] && [ -x /usr/bin/qemu-system-x86_64 ]; then
    for scenario in "${scenarios[@]}"; do
      step "molecule test -s $scenario (libvirt lab)"
      t0=$(date +%s)
      molecule test -s "$scenario"
      echo "molecule $scenario: passed in $(( $(date +%s) - t0 ))s"
    done
  else
    echo "molecule: skipped, this machine has no libvirtd/qemu-system-x86_64 (see docs/kubernetes.md)"
  fi
fi

step "ansible-test sanity"
bash scripts/sanity.sh

step "ansible-lint (production profile)"
ansible-lint --profile production --offline

step "antsibull-changelog lint"
antsibull-changelog lint

step "ansible-galaxy collection build"
ansible-galaxy collection build --force --output-path build/dist . | tail -1
ls build/dist/baremetal-fleet-*.tar.gz

printf '\nall checks passed in %ss\n' "$(( $(date +%s) - started ))"
