#!/usr/bin/env bash
# The lab over two hypervisors, on this one machine: two network namespaces joined by a veth link
# play two hosts; host B runs `fleetlab hypervisor up`, the lab on host A places one VM on each and
# leases, installs, wipes, powers off and loses host B (tests/lab/test_libvirt_hypervisors.py).
# About 5 min of VMs under TCG: outside the test command (scripts/test.sh runs only this file's fast
# tests: placement, the VXLAN overlay in namespaces, `fleetlab hypervisor up|down`). Set-up as scripts/test.sh does.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
. scripts/env.sh
FLEETLAB_MULTIHOST=1 python -m pytest -s -p no:cacheprovider tests/lab/test_libvirt_hypervisors.py "$@"
