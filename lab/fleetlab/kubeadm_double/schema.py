"""Strict decoding of kubeadm configuration files (TEST DOUBLE).

Mirrors kubeadm's strict decoding for ``kubeadm.k8s.io/v1beta4``: unknown fields, wrong
types, unknown kinds and API versions are errors, as are the invalid values kubeadm's
validation rejects (token format, CIDRs, addresses, ports, the v1beta4 ``extraArgs`` list).
KubeletConfiguration and KubeProxyConfiguration documents are accepted with their top-level
fields checked against a list of the fields those types have.
"""
import ipaddress
import re

import yaml

KUBEADM_API = "kubeadm.k8s.io/v1beta4"
OLD_KUBEADM_APIS = ("kubeadm.k8s.io/v1beta1", "kubeadm.k8s.io/v1beta2", "kubeadm.k8s.io/v1beta3")
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
CA_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
DURATION_RE = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
CERT_KEY_RE = re.compile(r"^[0-9a-f]{64}$")


class ConfigError(Exception):
    """A configuration kubeadm would refuse."""


STR, BOOL, INT, DURATION, ANY = "string", "bool", "int", "duration", "any"


def ListOf(item):
    return ("list", item)


def MapOf(item):
    return ("map", item)


ARG = {"name": STR, "value": STR}
ENV = {"name": STR, "value": STR, "valueFrom": ANY}
HOST_PATH_MOUNT = {"name": STR, "hostPath": STR, "mountPath": STR, "readOnly": BOOL, "pathType": STR}
TAINT = {"key": STR, "value": STR, "effect": STR, "timeAdded": STR}
NODE_REGISTRATION = {
    "name": STR, "criSocket": STR, "taints": ListOf(TAINT), "kubeletExtraArgs": ListOf(ARG),
    "ignorePreflightErrors": ListOf(STR), "imagePullPolicy": STR, "imagePullSerial": BOOL,
}
API_ENDPOINT = {"advertiseAddress": STR, "bindPort": INT}
TIMEOUTS = {
    "controlPlaneComponentHealthCheck": DURATION, "kubeletHealthCheck": DURATION,
    "kubernetesAPICall": DURATION, "etcdAPICall": DURATION, "tlsBootstrap": DURATION,
    "discovery": DURATION, "upgradeManifests": DURATION,
}
PATCHES = {"directory": STR}
BOOTSTRAP_TOKEN = {"token": STR, "description": STR, "ttl": DURATION, "expires": STR,
                   "usages": ListOf(STR), "groups": ListOf(STR)}
CONTROL_PLANE_COMPONENT = {"extraArgs": ListOf(ARG), "extraVolumes": ListOf(HOST_PATH_MOUNT),
                           "extraEnvs": ListOf(ENV)}
API_SERVER = dict(CONTROL_PLANE_COMPONENT, certSANs=ListOf(STR))
IMAGE_META = {"imageRepository": STR, "imageTag": STR}
LOCAL_ETCD = dict(IMAGE_META, dataDir=STR, extraArgs=ListOf(ARG), extraEnvs=ListOf(ENV),
                  serverCertSANs=ListOf(STR), peerCertSANs=ListOf(STR))
EXTERNAL_ETCD = {"endpoints": ListOf(STR), "caFile": STR, "certFile": STR, "keyFile": STR}

SCHEMAS = {
    "InitConfiguration": {
        "apiVersion": STR, "kind": STR, "bootstrapTokens": ListOf(BOOTSTRAP_TOKEN), "dryRun": BOOL,
        "nodeRegistration": NODE_REGISTRATION, "localAPIEndpoint": API_ENDPOINT,
        "certificateKey": STR, "skipPhases": ListOf(STR), "patches": PATCHES, "timeouts": TIMEOUTS,
    },
    "ClusterConfiguration": {
        "apiVersion": STR, "kind": STR,
        "etcd": {"local": LOCAL_ETCD, "external": EXTERNAL_ETCD},
        "networking": {"serviceSubnet": STR, "podSubnet": STR, "dnsDomain": STR},
        "kubernetesVersion": STR, "controlPlaneEndpoint": STR,
        "apiServer": API_SERVER, "controllerManager": CONTROL_PLANE_COMPONENT,
        "scheduler": CONTROL_PLANE_COMPONENT,
        "dns": dict(IMAGE_META, disabled=BOOL), "proxy": {"disabled": BOOL},
        "certificatesDir": STR, "imageRepository": STR, "featureGates": MapOf(BOOL),
        "clusterName": STR, "encryptionAlgorithm": STR,
        "certificateValidityPeriod": DURATION, "caCertificateValidityPeriod": DURATION,
    },
    "JoinConfiguration": {
        "apiVersion": STR, "kind": STR, "dryRun": BOOL, "nodeRegistration": NODE_REGISTRATION,
        "caCertPath": STR,
        "discovery": {
            "bootstrapToken": {"token": STR, "apiServerEndpoint": STR, "caCertHashes": ListOf(STR),
                               "unsafeSkipCAVerification": BOOL},
            "file": {"kubeConfigPath": STR},
            "tlsBootstrapToken": STR,
        },
        "controlPlane": {"localAPIEndpoint": API_ENDPOINT, "certificateKey": STR},
        "skipPhases": ListOf(STR), "patches": PATCHES, "timeouts": TIMEOUTS,
    },
}

# component configs: top-level fields only (their own API groups are validated by the components)
KUBELET_FIELDS = {
    "apiVersion", "kind", "enableServer", "staticPodPath", "syncFrequency", "fileCheckFrequency",
    "httpCheckFrequency", "staticPodURL", "address", "port", "readOnlyPort", "tlsCertFile",
    "tlsPrivateKeyFile", "tlsCipherSuites", "tlsMinVersion", "rotateCertificates", "serverTLSBootstrap",
    "authentication", "authorization", "registryPullQPS", "registryBurst", "eventRecordQPS", "eventBurst",
    "enableDebuggingHandlers", "enableContentionProfiling", "healthzPort", "healthzBindAddress",
    "oomScoreAdj", "clusterDomain", "clusterDNS", "streamingConnectionIdleTimeout",
    "nodeStatusUpdateFrequency", "nodeStatusReportFrequency", "nodeLeaseDurationSeconds",
    "imageMinimumGCAge", "imageMaximumGCAge", "imageGCHighThresholdPercent", "imageGCLowThresholdPercent",
    "volumeStatsAggPeriod", "kubeletCgroups", "systemCgroups", "cgroupRoot", "cgroupsPerQOS",
    "cgroupDriver", "cpuManagerPolicy", "cpuManagerPolicyOptions", "cpuManagerReconcilePeriod",
    "memoryManagerPolicy", "topologyManagerPolicy", "topologyManagerScope", "topologyManagerPolicyOptions",
    "qosReserved", "runtimeRequestTimeout", "hairpinMode", "maxPods", "podCIDR", "podPidsLimit",
    "resolvConf", "runOnce", "cpuCFSQuota", "cpuCFSQuotaPeriod", "nodeStatusMaxImages", "maxOpenFiles",
    "contentType", "kubeAPIQPS", "kubeAPIBurst", "serializeImagePulls", "maxParallelImagePulls",
    "evictionHard", "evictionSoft", "evictionSoftGracePeriod", "evictionPressureTransitionPeriod",
    "evictionMaxPodGracePeriod", "evictionMinimumReclaim", "podsPerCore", "enableControllerAttachDetach",
    "protectKernelDefaults", "makeIPTablesUtilChains", "iptablesMasqueradeBit", "iptablesDropBit",
    "featureGates", "failSwapOn", "memorySwap", "containerLogMaxSize", "containerLogMaxFiles",
    "containerLogMaxWorkers", "containerLogMonitorInterval", "configMapAndSecretChangeDetectionStrategy",
    "systemReserved", "kubeReserved", "reservedSystemCPUs", "showHiddenMetricsForVersion",
    "systemReservedCgroup", "kubeReservedCgroup", "enforceNodeAllocatable", "allowedUnsafeSysctls",
    "volumePluginDir", "providerID", "kernelMemcgNotification", "logging", "enableSystemLogHandler",
    "enableSystemLogQuery", "shutdownGracePeriod", "shutdownGracePeriodCriticalPods",
    "shutdownGracePeriodByPodPriority", "reservedMemory", "enableProfilingHandler",
    "enableDebugFlagsHandler", "seccompDefault", "memoryThrottlingFactor", "registerWithTaints",
    "registerNode", "tracing", "localStorageCapacityIsolation", "containerRuntimeEndpoint",
    "imageServiceEndpoint", "failCgroupV1", "crashLoopBackOff", "singleProcessOOMKill",
}
KUBE_PROXY_FIELDS = {
    "apiVersion", "kind", "featureGates", "clientConnection", "logging", "hostnameOverride",
    "bindAddress", "healthzBindAddress", "metricsBindAddress", "bindAddressHardFail",
    "enableProfiling", "showHiddenMetricsForVersion", "mode", "iptables", "ipvs", "nftables",
    "winkernel", "detectLocalMode", "detectLocal", "clusterCIDR", "nodePortAddresses",
    "oomScoreAdj", "conntrack", "configSyncPeriod", "portRange", "windowsRunAsService",
}
COMPONENT_CONFIGS = {
    ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration"): KUBELET_FIELDS,
    ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration"): KUBE_PROXY_FIELDS,
}
ENCRYPTION_ALGORITHMS = ("RSA-2048", "RSA-3072", "RSA-4096", "ECDSA-P256", "ECDSA-P384")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _check(value, spec, path):
    if spec == ANY:
        return
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            raise ConfigError("%s: expected an object, got %s" % (path, type(value).__name__))
        for key, sub in value.items():
            if key not in spec:
                raise ConfigError('strict decoding error: unknown field "%s"' % (path + "." + key).lstrip("."))
            _check(sub, spec[key], path + "." + key)
        return
    if isinstance(spec, tuple):
        kind, item = spec
        if kind == "list":
            if not isinstance(value, list):
                raise ConfigError("%s: cannot unmarshal %s into a list" % (path, type(value).__name__))
            for index, sub in enumerate(value):
                _check(sub, item, "%s[%d]" % (path, index))
        else:
            if not isinstance(value, dict):
                raise ConfigError("%s: expected a map" % path)
            for key, sub in value.items():
                _check(sub, item, "%s.%s" % (path, key))
        return
    if spec in (STR, DURATION):
        if not isinstance(value, str):
            raise ConfigError("%s: cannot unmarshal %s into a string" % (path, type(value).__name__))
        if spec == DURATION and not DURATION_RE.match(value):
            raise ConfigError('%s: time: invalid duration "%s"' % (path, value))
    elif spec == BOOL:
        if not isinstance(value, bool):
            raise ConfigError("%s: cannot unmarshal %s into a bool" % (path, type(value).__name__))
    elif spec == INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError("%s: cannot unmarshal %s into an int" % (path, type(value).__name__))


def parse_duration(text):
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(float(num) * units[unit] for num, _frac, unit in
               re.findall(r"(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)", text))


def _host_port(endpoint, what):
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        host, port = endpoint, None
    host = host.strip("[]")
    if not host:
        raise ConfigError("%s: invalid address %r" % (what, endpoint))
    return host, port


def _check_ip(value, what):
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError('%s: Invalid value: "%s": must be a valid IP address' % (what, value))


def _check_cidrs(value, what):
    for cidr in value.split(","):
        try:
            ipaddress.ip_network(cidr.strip())
        except ValueError:
            raise ConfigError('%s: Invalid value: "%s": couldn\'t parse subnet' % (what, value))


def _validate_node_registration(nreg, what):
    for index, taint in enumerate(nreg.get("taints") or []):
        if taint.get("effect") not in TAINT_EFFECTS:
            raise ConfigError("%s.taints[%d].effect: Unsupported value: %r" % (what, index, taint.get("effect")))
    pull = nreg.get("imagePullPolicy")
    if pull is not None and pull not in ("Always", "IfNotPresent", "Never"):
        raise ConfigError("%s.imagePullPolicy: Unsupported value: %r" % (what, pull))
    ignored = [name.lower() for name in nreg.get("ignorePreflightErrors") or []]
    if "all" in ignored and len(ignored) > 1:
        raise ConfigError("ignorePreflightErrors: Invalid value: don't specify individual checks if 'all' is used")
    socket = nreg.get("criSocket")
    if socket is not None and not socket.startswith("unix://"):
        raise ConfigError('%s.criSocket: Invalid value: "%s": unsupported URL scheme, use unix://' % (what, socket))


def _validate_endpoint(ep, what):
    if "advertiseAddress" in ep:
        _check_ip(ep["advertiseAddress"], what + ".advertiseAddress")
    port = ep.get("bindPort")
    if port is not None and not 0 < port < 65536:
        raise ConfigError("%s.bindPort: Invalid value: %d: must be between 1 and 65535" % (what, port))


def _validate_semantics(kind, doc):
    if kind == "InitConfiguration":
        for index, tok in enumerate(doc.get("bootstrapTokens") or []):
            if "token" not in tok:
                raise ConfigError("bootstrapTokens[%d].token: Required value" % index)
            if not TOKEN_RE.match(tok["token"]):
                raise ConfigError('bootstrapTokens[%d].token: Invalid value: "%s": the bootstrap token is '
                                  'invalid' % (index, tok["token"]))
        _validate_node_registration(doc.get("nodeRegistration") or {}, "nodeRegistration")
        _validate_endpoint(doc.get("localAPIEndpoint") or {}, "localAPIEndpoint")
        key = doc.get("certificateKey")
        if key is not None and not CERT_KEY_RE.match(key):
            raise ConfigError("certificateKey: Invalid value: the certificate key must be 32 bytes hex encoded")
    elif kind == "ClusterConfiguration":
        net = doc.get("networking") or {}
        for field in ("serviceSubnet", "podSubnet"):
            if field in net:
                _check_cidrs(net[field], "networking." + field)
        if doc.get("controlPlaneEndpoint"):
            _host_port(doc["controlPlaneEndpoint"], "controlPlaneEndpoint")
        alg = doc.get("encryptionAlgorithm")
        if alg is not None and alg not in ENCRYPTION_ALGORITHMS:
            raise ConfigError("encryptionAlgorithm: Unsupported value: %r: supported values: %s"
                              % (alg, ", ".join(ENCRYPTION_ALGORITHMS)))
        etcd = doc.get("etcd") or {}
        if "local" in etcd and "external" in etcd:
            raise ConfigError("etcd: Invalid value: etcd.local and etcd.external are mutually exclusive")
        version = doc.get("kubernetesVersion")
        if version is not None and not re.match(r"^v?\d+\.\d+\.\d+", version) and version != "stable":
            raise ConfigError('kubernetesVersion: Invalid value: "%s"' % version)
    elif kind == "JoinConfiguration":
        disc = doc.get("discovery") or {}
        if "bootstrapToken" in disc and "file" in disc:
            raise ConfigError("discovery: Invalid value: bootstrapToken and file cannot both be set")
        if "bootstrapToken" not in disc and "file" not in disc:
            raise ConfigError("discovery: Invalid value: bootstrapToken or file must be set")
        bt = disc.get("bootstrapToken")
        if bt is not None:
            token = bt.get("token") or disc.get("tlsBootstrapToken")
            if not token or not TOKEN_RE.match(token):
                raise ConfigError('discovery.bootstrapToken.token: Invalid value: "%s": the bootstrap token is '
                                  'invalid' % (token or ""))
            if not bt.get("apiServerEndpoint"):
                raise ConfigError("discovery.bootstrapToken.apiServerEndpoint: Required value")
            hashes = bt.get("caCertHashes") or []
            if not hashes and not bt.get("unsafeSkipCAVerification"):
                raise ConfigError("discovery.bootstrapToken.caCertHashes: Invalid value: using token-based "
                                  "discovery without caCertHashes can be unsafe. Set "
                                  "unsafeSkipCAVerification as true to continue")
            for value in hashes:
                if not CA_HASH_RE.match(value):
                    raise ConfigError('discovery.bootstrapToken.caCertHashes: Invalid value: "%s": invalid '
                                      'hash, expected "sha256:<64 hex>"' % value)
        _validate_node_registration(doc.get("nodeRegistration") or {}, "nodeRegistration")
        cp = doc.get("controlPlane")
        if cp is not None:
            _validate_endpoint(cp.get("localAPIEndpoint") or {}, "controlPlane.localAPIEndpoint")
            key = cp.get("certificateKey")
            if key is not None and not CERT_KEY_RE.match(key):
                raise ConfigError("controlPlane.certificateKey: Invalid value: the certificate key must be "
                                  "32 bytes hex encoded")


def load_documents(text):
    """Parse a kubeadm config file: return {kind: document}. Raises ConfigError like kubeadm."""
    try:
        docs = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as exc:
        raise ConfigError("error converting YAML to JSON: %s" % exc)
    found = {}
    for doc in docs:
        if not isinstance(doc, dict):
            raise ConfigError("invalid configuration: every document must be an object")
        api, kind = doc.get("apiVersion"), doc.get("kind")
        if not api or not kind:
            raise ConfigError("invalid configuration for GroupVersionKind: apiVersion and kind are required")
        if api in OLD_KUBEADM_APIS:
            raise ConfigError('your configuration file uses an old API spec: "%s" (kind: "%s"). Please use '
                              'kubeadm v1.31 instead and run \'kubeadm config migrate --old-config old.yaml '
                              '--new-config new.yaml\', which will write the new, similar spec using a newer '
                              'API version.' % (api, kind))
        if api.startswith("kubeadm.k8s.io/"):
            if api != KUBEADM_API:
                raise ConfigError('no kind "%s" is registered for version "%s"' % (kind, api))
            if kind not in SCHEMAS:
                raise ConfigError('no kind "%s" is registered for version "%s"' % (kind, api))
            _check(doc, SCHEMAS[kind], "")
            _validate_semantics(kind, doc)
        elif (api, kind) in COMPONENT_CONFIGS:
            unknown = sorted(set(doc) - COMPONENT_CONFIGS[(api, kind)])
            if unknown:
                raise ConfigError('strict decoding error: unknown field "%s"' % unknown[0])
        else:
            raise ConfigError('no kind "%s" is registered for version "%s"' % (kind, api))
        if kind in found:
            raise ConfigError("invalid configuration: duplicate kind %s" % kind)
        found[kind] = doc
    if "InitConfiguration" in found and "JoinConfiguration" in found:
        raise ConfigError("invalid configuration: InitConfiguration and JoinConfiguration in one file")
    return found


def ignored_checks(cli_value, config_values):
    names = set()
    for item in (cli_value or "").split(","):
        if item.strip():
            names.add(item.strip().lower())
    for item in config_values or []:
        names.add(item.lower())
    if "all" in names and len(names) > 1:
        raise ConfigError("ignore-preflight-errors: Invalid value: don't specify individual checks if "
                          "'all' is used")
    return names
