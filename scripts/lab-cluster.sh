#!/usr/bin/env bash
# The main job: set-up from nothing, start the lab, run playbooks/create-cluster.yml against it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
if [ ! -f playbooks/create-cluster.yml ]; then
  echo "lab-cluster: playbooks/create-cluster.yml does not exist yet; nothing to run." >&2
  exit 2
fi
