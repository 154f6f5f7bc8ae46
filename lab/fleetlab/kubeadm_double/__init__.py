"""TEST DOUBLE for kubeadm, the kubelet and the kube-apiserver (kubectl is the real client).

This package is a *test double*. It exists because kubeadm, the kubelet and the
control-plane images cannot be downloaded where the lab runs; only those three are stood in for. It is placed on the
lab's machine images (or by a molecule prepare step) and never by the roles on
real hardware. It is strict on purpose: it implements exactly the parts of the
kubeadm contract that ``roles/kubeadm_*`` use and rejects what real kubeadm rejects:

* configuration: only ``kubeadm.k8s.io/v1beta4`` InitConfiguration,
  ClusterConfiguration and JoinConfiguration (plus KubeletConfiguration and
  KubeProxyConfiguration documents), unknown fields and wrong types are errors;
* preflight: swap on, ``br_netfilter``/``overlay`` missing, ``ip_forward`` and
  ``bridge-nf-call-iptables`` not 1, container runtime socket not answering,
  too few CPUs / too little memory on control planes, files already present,
  ports in use; ``--ignore-preflight-errors`` works by check name like kubeadm's;
* join: bootstrap tokens and the discovery CA hash (``sha256:<SPKI>``) are checked
  against what ``init`` issued, through the API the control plane serves; control
  planes fetch the shared certificates with the certificate key (AES-GCM, as kubeadm);
* etcd is real: ``init`` writes the stacked etcd member's static pod manifest as kubeadm does and
  the kubelet double runs it with Debian's etcd binary; ``join --control-plane`` adds the member
  through etcd's API first (``--initial-cluster-state=existing``), ``reset`` removes it; the API
  stand-in keeps every object in that etcd (``store.py``), so all control planes serve one cluster;
* ``certs check-expiration`` / ``certs renew`` read and re-issue the real certificates;
* a kube-apiserver stand-in (HTTPS, client certificates signed by the cluster CA)
  answers ``/version``, ``/healthz``, discovery, OpenAPI v3 paths, ``/api/v1/nodes``, the
  objects kubeadm itself reads and writes, and the generic kinds of ``objects.py`` (get, list
  with selectors, create, server-side apply, merge patches, delete, eviction under
  PodDisruptionBudgets), so that the real kubectl (get, apply, diff, cordon, drain, delete), the
  ``kubernetes`` Python client and ``kubernetes.core`` work unchanged; it refuses what it does not
  implement (watches, JSON patch, protobuf, strategic-merge directives) instead of pretending.

Everything runs against a root directory (``--root DIR`` or ``FLEET_KUBEADM_ROOT``)
so that tests never touch the real ``/etc`` or ``/proc``.
"""

DOUBLE_BANNER = "fleetlab kubeadm TEST DOUBLE (not kubeadm)"
#: the version the double is when nothing says otherwise (tests on the host)
DEFAULT_VERSION = "v1.37.1"


def own_version():
    """The Kubernetes version this program is: its package bakes it into the wrapper
    (FLEET_DOUBLE_VERSION), the kubelet passes a static pod its image's tag; else the default."""
    import os
    import re
    version = os.environ.get("FLEET_DOUBLE_VERSION") or DEFAULT_VERSION
    version = "v" + version.lstrip("v")
    if not re.match(r"^v\d+\.\d+\.\d+$", version):
        raise SystemExit("FLEET_DOUBLE_VERSION %r is not a Kubernetes version (vMAJOR.MINOR.PATCH)" % version)
    return version
