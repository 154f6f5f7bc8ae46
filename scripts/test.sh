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
# exit code 5 (no tests collected) is a failure too
python -m pytest ${PYTEST_ARGS:-} tests

# The whole journey on lab VMs (create, converge, idempotence, --check, testinfra verify, destroy).
# FLEET_MOLECULE: "auto" (default) runs the metal-api scenario where the libvirt lab can run;
# "all" adds the plunder scenario (default); "0" skips molecule.
FLEET_MOLECULE="${FLEET_MOLECULE:-auto}"
if [ "$FLEET_MOLECULE" != 0 ]; then
  if [ -x /usr/sbin/libvirtd ] && [ -x /usr/bin/qemu-system-x86_64 ]; then
    step "molecule test -s metal (libvirt lab)"
    molecule test -s metal
    if [ "$FLEET_MOLECULE" = all ]; then
      step "molecule test -s default (libvirt lab)"
      molecule test -s default
    fi
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
