"""plunder on the wire: the endpoint table, the deployment and boot-config keys, the envelope's
warnings, and small helpers."""

import ipaddress
import shlex




# name, method, route, path, description (plunder pkg/services/handler.go, pkg/parlay/handler.go)
ENDPOINTS = [
    ("apis", "GET", "/api", "/api", "Endpoint for interacting with the api server"),
    ("apiFunctions", "GET", "/api/{function}/{method}", "/api", "Endpoint for interacting with the api server"),
    ("config", "GET", "/config", "/config", "Allows the retrieving of Plunder Server configuration"),
    ("config", "POST", "/config", "/config", "Allows the creation of Plunder Server configuration"),
    ("configBoot", "POST", "/config/boot/{id}", "/config/boot",
     "Allows the creation of Plunder Server Boot configuration"),
    ("configBoot", "DELETE", "/config/boot/{id}", "/config/boot",
     "Performs the deletion of Plunder Server Boot configuration"),
    ("dhcp", "GET", "/dhcp/{id}", "/dhcp", "Allows the retrieval of DHCP information"),
    ("deployments", "GET", "/deployments", "/deployments", "Allows the retrieving of Plunder Server deployments"),
    ("deployments", "POST", "/deployments", "/deployments", "Allows the creation of Plunder Server deployments"),
    ("deployment", "POST", "/deployment", "/deployment", "Allows the creation of a specific Plunder deployment"),
    ("deployment", "PATCH", "/deployment", "/deployment", "Allows the patching of a Plunder Server deployment"),
    ("deploymentID", "GET", "/deployment/{id}", "/deployment",
     "Allows the retrieval of specific information about a deployment"),
    ("deploymentID", "PATCH", "/deployment/{id}", "/deployment", "Allows the patching of Plunder Server deployments"),
    ("deploymentID", "DELETE", "/deployment/{id}", "/deployment", "Allows the deletion of a Plunder Server deployment"),
    ("deploymentMac", "DELETE", "/deployment/mac/{id}", "/deployment/mac",
     "Allows the deletion of a Plunder Server deployment based upon its MAC address"),
    ("deploymentAddress", "DELETE", "/deployment/address/{id}", "/deployment/address",
     "Allows the deletion of a Plunder Server deployment based upon its network address"),
    ("parlay", "POST", "/parlay", "/parlay", "Create a parlay automation deployment"),
    ("parlayLog", "GET", "/parlay/logs/{id}", "/parlay/logs", "Retrieve the logs from a parlay deployment"),
    ("parlayLog", "DELETE", "/parlay/logs/{id}", "/parlay/logs",
     "Delete the cached logs from a specific parlay deployment"),
]

HOST_CONFIG_KEYS = [
    "adapter", "address", "hostname", "gateway", "subnet", "nameserver", "ntpserver", "lvmEnabled",
    "swapDisabled", "username", "password", "repoaddress", "mirrordir", "sshkeypath", "sshkey", "packages",
    "bootyAction", "compressed", "sourceImage", "destinationDevice", "sourceDevice", "destinationAddress",
    "growPartition", "lvmRootName", "shellOnFail",
]
# inherited from globalConfig on every rebuild (templateUtils.go PopulateFromGlobalConfiguration)
INHERITED = ["gateway", "subnet", "nameserver", "adapter", "repoaddress", "mirrordir", "username", "password",
             "sshkeypath", "packages", "bootyAction", "compressed", "sourceImage", "destinationDevice",
             "sourceDevice", "destinationAddress", "growPartition", "lvmRootName", "shellOnFail"]
BOOT_CONFIG_KEYS = ["configName", "configType", "kernelPath", "initrdPath", "cmdline", "isoPath", "isoPrefix"]

W_DEPLOY = "Error updating Deployment Configuration"
W_SERVER = "Error updating Server Configuration"


def default_server_config(gateway="10.77.0.1"):
    return {
        "adapter": "labbr0", "enableDHCP": False,
        "dhcpConfig": {"addressDHCP": gateway, "startDHCP": "", "leasePoolDHCP": 20, "subnetDHCP": "",
                       "gatewayDHCP": gateway, "nameserverDHCP": gateway},
        "enableTFTP": False, "addressTFTP": gateway, "enableHTTP": True, "addressHTTP": gateway,
        "pxePath": "undionly.kpxe",
        "bootConfigs": [
            {"configName": "preseed", "configType": "preseed", "kernelPath": "/ubuntu/linux",
             "initrdPath": "/ubuntu/initrd.gz", "cmdline": ""},
            {"configName": "booty", "configType": "booty", "kernelPath": "/booty/vmlinuz",
             "initrdPath": "/booty/initrd.gz", "cmdline": ""},
        ],
    }


def default_global_config(network):
    gw = str(next(network.hosts()))
    return {"adapter": "eth0", "gateway": gw, "subnet": str(network.netmask), "nameserver": gw,
            "username": "fleet", "repoaddress": gw, "mirrordir": "/ubuntu", "packages": "openssh-server"}


def ordered(d, keys):
    out = {k: d[k] for k in keys if k in d and d[k] not in (None, "")}
    return out


def valid_ip(text):
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


class Refusal(Exception):
    def __init__(self, warning, error):
        super().__init__(error)
        self.warning = warning
        self.error = error



def echo_output(cmd):
    """What ``bash -c <cmd>`` prints for a plain ``echo`` (the only local command the lab runs)."""
    try:
        argv = shlex.split(cmd)
    except ValueError:
        return None
    if not argv or argv[0] != "echo":
        return None
    args = argv[1:]
    newline = True
    while args and args[0] in ("-e", "-n", "-en", "-ne"):
        if "n" in args[0]:
            newline = False
        args = args[1:]
    return " ".join(args) + ("\n" if newline else "")

