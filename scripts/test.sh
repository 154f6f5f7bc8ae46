#!/usr/bin/env bash
# The test command: set-up from nothing (apt-get + .venv), then every check the project has.
# Exits non-zero when any step fails or when pytest ran no test.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
export PATH="$ROOT/.venv/bin:$PATH"
# The collection is found from the checkout itself (no Galaxy server needed).
mkdir -p build/collections/ansible_collections/baremetal
ln -sfn "$ROOT" build/collections/ansible_collections/baremetal/fleet
export ANSIBLE_COLLECTIONS_PATH="$ROOT/build/collections:$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

step() { printf '\n==== %s ====\n' "$*"; }
started=$(date +%s)

step "pytest (unit, integration, lab)"
# exit code 5 (no tests collected) is a failure too
python -m pytest ${PYTEST_ARGS:-} tests

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
