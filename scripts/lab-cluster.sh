#!/usr/bin/env bash
# The main job, from nothing: set-up (apt-get + .venv), the libvirt lab (VMs that PXE-boot in a
# reboot loop), then playbooks/create-cluster.yml against it. Safe to run twice: a running lab is
# reused and a second create-cluster.yml run changes nothing.
#
#   FLEET_PROVIDER=metal|plunder   which face of the lab the collection talks to (default: metal)
#   FLEET_WORKERS=N                worker count (default 1; one control plane)
#   FLEET_LAB_STATE=DIR            lab state directory (default: .lab/cluster)
#   FLEET_SPARE=N                  machines in the loop beyond the cluster's, to scale out to (default 0)
#
# Afterwards: .lab/cluster/demo.kubeconfig, `bash scripts/lab-cluster.sh delete` gives the machines
# back wiped and stops the lab.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/setup.sh
. scripts/env.sh

PROVIDER="${FLEET_PROVIDER:-metal}"
WORKERS="${FLEET_WORKERS:-1}"
STATE="$(realpath -m "${FLEET_LAB_STATE:-.lab/cluster}")"
ARTIFACTS="$STATE/artifacts"
VARS="$STATE/demo.yml"
mkdir -p "$STATE"
# a timeline picture of every run (one row per machine): $STATE/timeline/timeline-*.html
export ANSIBLE_CALLBACKS_ENABLED="baremetal.fleet.timeline${ANSIBLE_CALLBACKS_ENABLED:+,$ANSIBLE_CALLBACKS_ENABLED}"
export FLEET_TIMELINE_DIR="$STATE/timeline"

if [ "${1:-}" = delete ]; then
  eval "$(fleetlab env --state "$STATE")"
  ansible-playbook playbooks/delete-cluster.yml -e cluster_vars_file="$VARS"
  fleetlab down --state "$STATE"
  exit 0
fi

if [ ! -x /usr/sbin/libvirtd ] || [ ! -x /usr/bin/qemu-system-x86_64 ]; then
  echo "lab-cluster: this machine has no libvirtd/qemu (lab/apt-packages.txt); cannot run VMs" >&2
  exit 2
fi

machines=$((1 + WORKERS + ${FLEET_SPARE:-0}))
# `fleetlab status` exits non-zero when no lab runs or its driver failed; `fleetlab up` then starts
# (or restarts) it and exits non-zero with the driver's error when it cannot run the VMs.
if ! fleetlab status --state "$STATE" --limit 0 >/dev/null 2>&1; then
  echo "lab-cluster: starting the libvirt lab with $machines VMs (state $STATE)"
  fleetlab up --driver libvirt --driver-opt memory=2048 --machines "$machines" --state "$STATE" --timeout 900
fi
eval "$(fleetlab env --state "$STATE")"

# The lab's machines cannot download: kubeadm/kubelet/kubectl come from an artifacts directory, as on
# an air-gapped site. Here they are the lab's kubeadm test double (docs/kubernetes.md), packaged as .debs,
# with the Debian packages it needs (cached by scripts/setup.sh: fleetlab prepare). Built while the
# VMs boot.
# Rebuilt when the double's code or the pinned packages (kubectl) change: never yesterday's packages.
stamp="$(cat lab/fleetlab/kubeadm_double/*.py pyproject.toml | sha256sum | cut -c1-16)"
if [ "$(cat "$ARTIFACTS/.complete" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$ARTIFACTS"
  python -m fleetlab.kubeadm_double build-debs --with-debian-deps --out "$ARTIFACTS"
  echo "$stamp" > "$ARTIFACTS/.complete"
fi

# Bounded, and stops at the first sign of a failed driver (status exits non-zero) with its cause.
echo "lab-cluster: waiting until every VM loops, unleased or leased (at most 15 min)"
deadline=$(( $(date +%s) + 900 ))
while :; do
  if ! status_json=$(fleetlab status --state "$STATE" --json --limit 0); then
    echo "lab-cluster: the lab stopped or its driver failed:" >&2
    fleetlab status --state "$STATE" --limit 0 >&2 || true
    exit 1
  fi
  seen=$(printf '%s' "$status_json" | python -c \
    'import json,sys; print(sum(1 for m in json.load(sys.stdin)["machines"] if m["last_seen"] or m["lease_name"]))')
  [ "$seen" -ge "$machines" ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "lab-cluster: only $seen of $machines VMs seen in the loop after 15 min; see $STATE/fleetlab.log" \
         "and the consoles in $STATE/vm/*.console.log" >&2
    exit 1
  fi
  sleep 5
done

cat > "$VARS" <<VARS
---
cluster_name: demo
cluster_provider: $PROVIDER
cluster_control_plane_count: 1
cluster_worker_count: $WORKERS
cluster_control_plane_addresses: []
cluster_worker_addresses: []
cluster_address_range: 10.77.9.10-10.77.9.60
cluster_image: $( [ "$PROVIDER" = metal ] && echo debian-12 || echo preseed )
cluster_metal_project: "$( [ "$PROVIDER" = metal ] && echo 00000000-0000-0000-0000-000000000001 )"
cluster_ssh_user: root
cluster_ssh_map_file: $STATE/vm/ssh.json
cluster_provision_timeout: 1800
cluster_poll_interval: 10
# the API endpoint lives inside the lab's network namespace: verify from the control plane
cluster_verify_from: control_plane
cluster_verify_timeout: 900
kubernetes_version: "1.37.1"
kubernetes_artifacts_dir: $ARTIFACTS
kubernetes_pod_subnet: 10.244.0.0/16
# ECDSA keys: the certificates of kubeadm init are made in a fraction of RSA's time under TCG
kubernetes_encryption_algorithm: ECDSA-P256
# lab VMs have one vCPU: downgrade exactly that check
kubeadm_ignore_preflight_errors: [NumCPU]
cni_plugin: flannel
cni_manifest_file: $ROOT/molecule/shared/files/flannel-lab.yml
VARS

ansible-playbook playbooks/create-cluster.yml -e cluster_vars_file="$VARS"
echo "lab-cluster: done. kubeconfig: $STATE/demo.kubeconfig (API inside the lab's namespace);"
echo "  machines: fleetlab status --state $STATE; give them back: bash scripts/lab-cluster.sh delete"
