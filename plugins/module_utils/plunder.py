# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plunder backend: client for the plunder API server and the Provider over it.

Wire format as plunder serves it (HTTPS, every reply HTTP 200 with an envelope
``{"warning","error","success","payload"}``, paths discovered through
``GET /api/<name>/<METHOD>``). The TLS trust anchor is the base64 PEM ``cert`` from
``plunderclient.yaml``, as pldrctl and cluster-api-plunder use it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import re
import ssl
import time

from ansible_collections.baremetal.fleet.plugins.module_utils import pool
from ansible_collections.baremetal.fleet.plugins.module_utils.pool import (
    Machine,
    PoolAddressConflict,
    PoolConflict,
    PoolError,
    PoolNotFound,
    Provider,
    normalize_mac,
    parse_time,
)
from ansible_collections.baremetal.fleet.plugins.module_utils.transport import JsonHttp

# A few OUIs (first three octets) -> vendor, as pldrctl derives "Hardware Vendor" client-side.
OUI_VENDORS = {
    "00:50:56": "VMware, Inc.",
    "00:0c:29": "VMware, Inc.",
    "52:54:00": "QEMU virtual NIC",
    "08:00:27": "Oracle VirtualBox",
    "00:25:90": "Super Micro Computer, Inc.",
    "0c:c4:7a": "Super Micro Computer, Inc.",
    "ac:1f:6b": "Super Micro Computer, Inc.",
    "3c:ec:ef": "Super Micro Computer, Inc.",
    "00:1e:67": "Intel Corporate",
    "b4:96:91": "Intel Corporate",
    "f4:02:70": "Dell Inc.",
    "14:18:77": "Dell Inc.",
    "18:66:da": "Dell Inc.",
    "d0:94:66": "Dell Inc.",
    "24:6e:96": "Dell Inc.",
    "94:40:c9": "Hewlett Packard Enterprise",
    "48:df:37": "Hewlett Packard Enterprise",
    "1c:98:ec": "Hewlett Packard Enterprise",
    "98:03:9b": "Mellanox Technologies, Inc.",
    "b8:59:9f": "Mellanox Technologies, Inc.",
    "7c:d3:0a": "Inventec Corporation",
    "0c:42:a1": "Mellanox Technologies, Inc.",
    "00:1b:21": "Intel Corporate",
    "a0:36:9f": "Intel Corporate",
    "a4:bf:01": "Intel Corporate",
    "08:f1:ea": "Hewlett Packard Enterprise",
    "70:10:6f": "Hewlett Packard Enterprise",
    "6c:b3:11": "Lenovo",
    "08:94:ef": "Lenovo",
}

# What cluster-api-plunder sends to see whether a host is up, and to wipe it.
PROBE_DEPLOYMENT = "baremetal.fleet provisioning probe"
PROBE_TASK = "baremetal.fleet uptime probe"
WIPE_DEPLOYMENT = "baremetal.fleet de-provisioning"
WIPE_TASKS = ("baremetal.fleet machine [enable sysrq]", "baremetal.fleet machine [disk wipe]",
              "baremetal.fleet machine [reset]")

_MEMBER_RE = re.compile(r"^(?P<lease>.+)-(?P<index>\d+)$")


def vendor_for_mac(mac):
    return OUI_VENDORS.get((mac or "")[:8].lower(), "")


def dashed(value):
    """IP or MAC as plunder wants it in a URL (``.`` and ``:`` become ``-``)."""
    return value.replace(".", "-").replace(":", "-")


def read_client_config(path):
    """Parse a plunderclient.yaml (YAML or JSON): address, port, base64 cert."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read().decode("utf-8")
    except (IOError, OSError) as err:
        raise PoolError("cannot read plunder client config %s: %s" % (path, err))
    data = None
    try:
        import yaml  # PyYAML comes with Ansible

        data = yaml.safe_load(raw)
    except ImportError:
        data = None
    except Exception as err:  # pylint: disable=broad-except
        raise PoolError("plunder client config %s is not valid YAML: %s" % (path, err))
    if data is None:
        try:
            data = json.loads(raw)
        except ValueError:
            data = {}
            for line in raw.splitlines():
                if ":" in line and not line.lstrip().startswith("#"):
                    key, _sep, val = line.partition(":")
                    data[key.strip()] = val.strip().strip("'\"")
    if not isinstance(data, dict) or not data.get("cert"):
        raise PoolError("plunder client config %s has no 'cert' (base64 PEM of the server certificate)" % path)
    address = data.get("address") or "localhost"
    try:
        port = int(data.get("port") or 60443)
    except (TypeError, ValueError):
        raise PoolError("plunder client config %s has an invalid port %r" % (path, data.get("port")))
    try:
        pem = base64.b64decode(str(data["cert"]).strip()).decode("ascii")
    except Exception as err:  # pylint: disable=broad-except
        raise PoolError("plunder client config %s: 'cert' is not base64 PEM: %s" % (path, err))
    if "BEGIN CERTIFICATE" not in pem:
        raise PoolError("plunder client config %s: 'cert' does not hold a PEM certificate" % path)
    return {"address": str(address), "port": port, "cert_pem": pem}


def _ssl_context(cert_pem, validate_certs):
    if not validate_certs:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx = ssl.create_default_context(cadata=cert_pem)
    # plunder's certificate is a self-issued leaf: trust it as an anchor on its own.
    ctx.verify_flags |= getattr(ssl, "VERIFY_X509_PARTIAL_CHAIN", 0)
    return ctx


class PlunderClient:
    """The plunder API as pldrctl uses it (endpoint discovery, envelopes)."""

    def __init__(self, url, cert_pem=None, validate_certs=True, timeout=30, retries=4, ssl_context=None):
        if ssl_context is None and url.startswith("https"):
            ssl_context = _ssl_context(cert_pem, validate_certs) if cert_pem else None
        self.http = JsonHttp(url, timeout=timeout, validate_certs=validate_certs,
                             ssl_context=ssl_context, retries=retries)
        self._paths = {}

    @property
    def url(self):
        return self.http.base_url

    # --- envelope and discovery -------------------------------------------------------
    def _envelope(self, resp, what, machine=None):
        if resp.status != 200:
            raise PoolError("%s: plunder answered HTTP %s" % (what, resp.status), machine=machine,
                            url=resp.url, status=resp.status,
                            server_error=(resp.text or "").strip()[:300] or None)
        body = resp.body
        if body is None and (resp.text or "").strip() in ("", "null"):
            body = {}
        if not isinstance(body, dict):
            raise PoolError("%s: plunder sent a reply that is not a JSON envelope" % what, machine=machine,
                            url=resp.url, server_error=(resp.text or "")[:300])
        return body

    def endpoint(self, name, method):
        """Path for function ``name`` and HTTP ``method`` (GET /api/<name>/<METHOD>)."""
        key = (name, method)
        if key not in self._paths:
            resp = self.http.request("GET", "/api/%s/%s" % (name, method))
            env = self._envelope(resp, "endpoint lookup %s %s" % (method, name))
            if env.get("error"):
                raise PoolError("plunder does not offer %s %s" % (method, name), url=resp.url,
                                server_error=_join(env))
            payload = env.get("payload") or {}
            path = payload.get("path")
            if not path:
                raise PoolError("plunder endpoint lookup for %s %s returned no path" % (method, name),
                                url=resp.url)
            self._paths[key] = path
        return self._paths[key]

    def call(self, name, method, suffix="", body=None, safe=True, verify=None, machine=None, what=None):
        """Envelope of one call; raises PoolError with the server's text when ``error`` is set."""
        path = self.endpoint(name, method) + suffix
        resp = self.http.request(method, path, body=body, safe=safe, verify=verify)
        env = self._envelope(resp, what or "%s %s" % (method, path), machine=machine)
        if env.get("error"):
            raise _classify(env, what or "%s %s" % (method, path), machine, resp.url)
        return env

    # --- reads ----------------------------------------------------------------------
    def unleased(self):
        return self.call("dhcp", "GET", "/unleased").get("payload") or []

    def deployments(self):
        payload = self.call("deployments", "GET").get("payload") or {}
        return payload.get("deployments") or []

    def boot_configs(self):
        payload = self.call("config", "GET").get("payload") or {}
        return [b.get("configName") for b in (payload.get("bootConfigs") or []) if b.get("configName")]

    def parlay_logs(self, address):
        """JSONLog of a host or None when plunder holds no logs for it."""
        try:
            return self.call("parlayLog", "GET", "/" + dashed(address)).get("payload")
        except PoolNotFound:
            return None

    # --- writes ---------------------------------------------------------------------
    def create_deployment(self, mac, boot_config, address, hostname):
        body = {"mac": mac, "bootConfigName": boot_config,
                "bootConfig": {"configName": "", "configType": "", "kernelPath": "", "initrdPath": "",
                               "cmdline": ""},
                "config": {"address": address, "hostname": hostname}}

        def verify():
            # The POST may have landed: if the deployment is there as we asked, it did.
            for dep in self.deployments():
                if dep.get("mac") == mac:
                    cfg = dep.get("config") or {}
                    if cfg.get("hostname") == hostname and cfg.get("address") == address:
                        return _Done()
                    raise PoolConflict("MAC already has a deployment", machine=mac)
            return None

        return self.call("deployment", "POST", body=body, safe=False, verify=verify, machine=mac,
                         what="create deployment for %s" % mac)

    def update_deployment(self, mac, boot_config, address, hostname):
        body = {"mac": mac, "bootConfigName": boot_config,
                "bootConfig": {"configName": "", "configType": "", "kernelPath": "", "initrdPath": "",
                               "cmdline": ""},
                "config": {"address": address, "hostname": hostname}}
        return self.call("deploymentID", "PATCH", "/" + dashed(mac), body=body, machine=mac,
                         what="update deployment of %s" % mac)

    def delete_deployment(self, mac):
        """Remove the deployment of ``mac``. Always by MAC: an address can be held by more than
        one deployment (plunder has no IPAM), a MAC by one only. False when it was already gone."""
        try:
            self.call("deploymentMac", "DELETE", "/" + dashed(mac), machine=mac,
                      what="delete deployment %s" % mac)
        except PoolNotFound:
            return False
        return True

    def parlay(self, deployment_name, address, actions):
        body = {"deployments": [{"name": deployment_name, "hosts": [address], "parallel": False,
                                 "parallelSessions": 0, "actions": actions}]}
        return self.call("parlay", "POST", body=body, machine=address,
                         what="parlay %r on %s" % (deployment_name, address))

    def delete_parlay_logs(self, address):
        try:
            self.call("parlayLog", "DELETE", "/" + dashed(address))
        except PoolNotFound:
            pass


class _Done:
    """Stands for the reply of a write that the re-read showed as applied."""

    status = 200
    body = {}
    text = "{}"
    url = None


def _join(env):
    parts = [p for p in (env.get("warning"), env.get("error")) if p]
    return ": ".join(parts)


def _classify(env, what, machine, url):
    text = _join(env)
    low = (env.get("error") or "").lower()
    cls = PoolError
    if "unable to find" in low or "no logs for target" in low or "hasn't been enabled" in low \
            or "doesn't exist" in low:
        cls = PoolNotFound
    elif "duplicate" in low or "already exists" in low:
        cls = PoolConflict
    return cls("%s failed" % what, machine=machine, url=url, server_error=text)


def member_parts(hostname):
    """('demo', 3) for 'demo-3', else (None, None)."""
    match = _MEMBER_RE.match(hostname or "")
    if not match:
        return None, None
    return match.group("lease"), int(match.group("index"))


class _PlunderReader(Provider):
    """Reads: the unleased list and the deployments."""

    name = "plunder"

    def __init__(self, client, unleased_max_age=600):
        self.client = client
        self.unleased_max_age = unleased_max_age

    @classmethod
    def from_config_file(cls, path, validate_certs=True, timeout=30, retries=4):
        cfg = read_client_config(path)
        host = cfg["address"]
        if ":" in host and not host.startswith("["):
            host = "[%s]" % host
        url = "https://%s:%d" % (host, cfg["port"])
        return cls(PlunderClient(url, cert_pem=cfg["cert_pem"], validate_certs=validate_certs,
                                 timeout=timeout, retries=retries))

    # --- conversions ------------------------------------------------------------------
    def _from_unleased(self, entry):
        mac = (entry.get("mac") or "").lower()
        labels = entry.get("labels") if isinstance(entry.get("labels"), dict) else {}
        return Machine(id=mac, mac=mac, provider=self.name, state=pool.UNLEASED,
                       vendor=entry.get("vendor") or vendor_for_mac(mac),
                       size=entry.get("size") or "", partition=entry.get("partition") or "",
                       rack=entry.get("rack") or "", labels=labels, last_seen=entry.get("time"))

    def _from_deployment(self, dep, rank=None):
        mac = (dep.get("mac") or "").lower()
        cfg = dep.get("config") or {}
        hostname = cfg.get("hostname") or None
        lease, _index = member_parts(hostname)
        return Machine(id=mac, mac=mac, provider=self.name, state=pool.LEASED,
                       vendor=vendor_for_mac(mac), lease_name=hostname, hostname=hostname,
                       address=cfg.get("address") or None, image=dep.get("bootConfigName") or None,
                       owned=False, lease=lease, rank=rank)

    def snapshot(self):
        """(deployments by MAC, unleased entries by MAC) in two reads."""
        deps = {}
        for dep in self.client.deployments():
            mac = (dep.get("mac") or "").lower()
            if mac:
                deps[mac] = dep
        unleased = {}
        for entry in self.client.unleased():
            mac = (entry.get("mac") or "").lower()
            if mac and mac not in deps:
                unleased[mac] = entry
        return deps, unleased

    def list_machines(self, status="all", filters=None):
        if status not in ("all", "unleased", "leased"):
            raise PoolError("unknown status filter %r (all, unleased, leased)" % (status,))
        deps, unleased = self.snapshot()
        out = []
        if status in ("all", "leased"):
            out.extend(self._from_deployment(d) for d in deps.values())
        if status in ("all", "unleased"):
            out.extend(self._from_unleased(e) for e in unleased.values())
        return pool.filter_machines(out, filters)

    def get_machine(self, ref):
        try:
            mac = normalize_mac(ref)
        except PoolError:
            mac = None
        deps, unleased = self.snapshot()
        if mac in deps:
            return self._from_deployment(deps[mac])
        if mac in unleased:
            return self._from_unleased(unleased[mac])
        for dep in deps.values():
            if (dep.get("config") or {}).get("address") == ref:
                return self._from_deployment(dep)
        raise PoolNotFound("no machine %s on plunder" % ref, machine=str(ref), url=self.client.url)

    def is_candidate(self, machine, now=None):
        """Seen in the reboot loop recently (cluster-api-plunder takes < 10 min): plunder keeps
        listing a machine that stopped looping (it never forgets a MAC)."""
        if not self.unleased_max_age or not machine.last_seen:
            return True
        seen = parse_time(machine.last_seen)
        if seen is None:
            return True
        return ((now or time.time()) - seen) <= self.unleased_max_age


def _address_holders(deployments):
    """{address: [MACs of the deployments that have it]}, in plunder's order (creation order)."""
    out = {}
    for dep in deployments:
        address = (dep.get("config") or {}).get("address")
        if address:
            out.setdefault(address, []).append((dep.get("mac") or "").lower())
    return out


def check_template_unambiguous(template):
    """PoolError unless a hostname made by ``template`` names one lease and index only: ``{index}``
    is digits, so it must be kept apart from ``{name}`` (and from digits) by a non-digit."""
    if "{index}" not in template or "{name}" not in template:
        raise PoolError("hostname_template %r must contain {name} and {index}: on plunder the hostname is "
                        "the only mark of a lease" % template)
    for match in re.finditer(r"\{index\}", template):
        before, after = template[:match.start()], template[match.end():]
        for side in (before[-6:] if before.endswith("{name}") else before[-1:],
                     after[:6] if after.startswith("{name}") else after[:1]):
            if side == "{name}" or side.isdigit():
                raise PoolError("hostname_template %r cannot tell leases apart on plunder: {index} needs a "
                                "non-digit separator from {name} and from digits (lease n's n10 would also be "
                                "lease n1's n0); use e.g. {name}-{index}" % template)


def guarded_wipe_command(mac, mib=1000):
    """The disk wipe (the first ``mib`` MiB of /dev/sda), run only by a host that has ``mac``:
    grep of its interfaces, then dd, in one shell."""
    return ("sh -c 'grep -qix %s /sys/class/net/*/address && exec dd if=/dev/zero of=/dev/sda bs=1024k count=%d'"
            % (normalize_mac(mac), int(mib)))


def template_regex(template, lease):
    """Regex matching the member names a hostname template gives for ``lease``."""
    out = []
    pos = 0
    for match in re.finditer(r"\{(name|index)\}", template):
        out.append(re.escape(template[pos:match.start()]))
        out.append(re.escape(lease) if match.group(1) == "name" else r"\d+")
        pos = match.end()
    out.append(re.escape(template[pos:]))
    return re.compile("^" + "".join(out) + "$")


class PlunderProvider(_PlunderReader):
    """The reboot-loop pool as one plunder server sees it.

    plunder stores only MAC and last-seen time for unleased machines; a lease is a
    deployment whose ``config.hostname`` is the member name the collection gave it
    (plunder has nowhere else to keep a mark). Writes go through deployments and
    parlay, as cluster-api-plunder does.
    """

    default_boot_config = "preseed"
    probe_timeout = 20.0
    probe_interval = 0.25
    wipe_timeout = 120.0

    needs_addresses = True
    hostname_is_member = True

    def _deployment_machine(self, dep, lease=None, rank=None):
        machine = self._from_deployment(dep, rank=rank)
        if lease is not None:
            machine.lease = lease
            machine.owned = True
        return machine

    def check_template(self, template):
        """A deployment's hostname is the only mark plunder keeps, so it must name exactly one
        lease and index: with ``{name}{index}``, lease ``n`` would claim lease ``n1``'s ``n10``."""
        check_template_unambiguous(template or "{name}-{index}")

    def ownership_hint(self, lease):
        if lease:
            return "on plunder a machine belongs to lease %s when its hostname is one of the lease's member names" % lease
        return "on plunder name the lease the machines belong to"

    def lease_members(self, lease, names=None, template="{name}-{index}", project=None):
        """Deployments of ``lease``: hostname among ``names`` or made by the template (exactly:
        ``check_template`` refuses templates that cannot tell two leases apart)."""
        template = template or "{name}-{index}"
        check_template_unambiguous(template)
        regex = template_regex(template, lease)
        names = set(names or ())
        out = []
        for rank, dep in enumerate(self.client.deployments()):
            hostname = (dep.get("config") or {}).get("hostname") or ""
            if hostname in names or regex.match(hostname):
                out.append(self._deployment_machine(dep, lease, rank=rank))
        return out

    def used_addresses(self):
        return set(_address_holders(self.client.deployments()))

    def invalid_members(self, machines):
        """Members whose address an earlier deployment holds (a run that died between writing
        its deployment and checking the address leaves that behind)."""
        holders = _address_holders(self.client.deployments())
        return dict((m.id, "its address %s belongs to the earlier deployment of %s" % (m.address, holders[m.address][0]))
                    for m in machines if m.address in holders and holders[m.address][0] != m.mac)

    def _address_holder(self, address):
        """MAC of the deployment that holds ``address``: the earliest one (plunder lists them in
        creation order), so that racing writers agree on who keeps it."""
        return (_address_holders(self.client.deployments()).get(address) or [None])[0]

    def check_image(self, image):
        name = image or self.default_boot_config
        configs = self.client.boot_configs()
        if name not in configs:
            raise PoolError("plunder has no boot config %r (it has: %s)" % (name, ", ".join(configs) or "none"),
                            url=self.client.url)
        return name

    def lease_machine(self, machine, lease, member, hostname, address=None, image=None, options=None):
        if not address:
            raise PoolError("plunder has no IPAM: machine %s (%s) needs an address; give addresses or "
                            "address_range" % (member, machine.mac), machine=machine.mac)
        if hostname != member:
            raise PoolError("on plunder the hostname is the lease key: %s != %s" % (hostname, member))
        self.client.create_deployment(machine.mac, image or self.default_boot_config, address, hostname)
        # No IPAM: reserve by re-reading. Whoever wrote the address first keeps it; a later
        # writer removes its own deployment and may try another address.
        holder = self._address_holder(address)
        if holder != machine.mac:
            self.client.delete_deployment(machine.mac)
            raise PoolAddressConflict("address %s was taken by another deployment (%s) while leasing %s"
                                      % (address, holder or "gone", member), machine=machine.mac)
        return Machine(id=machine.mac, mac=machine.mac, provider=self.name, state=pool.LEASED,
                       vendor=machine.vendor, size=machine.size, partition=machine.partition, rack=machine.rack,
                       labels=machine.labels, lease_name=member, hostname=hostname, address=address,
                       image=image or self.default_boot_config, owned=True, lease=lease)

    def release_machine(self, machine):
        """Remove the deployment; plunder lets a machine go without wiping it."""
        return self.client.delete_deployment(machine.mac)

    def probe_machine(self, machine):
        """cluster-api-plunder's readiness check: run ``uptime`` through parlay, read the log."""
        if not machine.address:
            return pool.LEASED, "no address in the deployment"
        self.client.delete_parlay_logs(machine.address)
        self.client.parlay(PROBE_DEPLOYMENT, machine.address,
                           [{"name": PROBE_TASK, "type": "command", "timeout": 10, "command": "uptime"}])
        log = self._wait_log(machine.address, self.probe_timeout)
        if log is None:
            return pool.INSTALLING, "no parlay log for %s yet" % machine.address
        entries = [e for e in (log.get("entries") or []) if e.get("task") == PROBE_TASK]
        if log.get("state") == "Completed" and entries and not entries[-1].get("error"):
            return pool.PROVISIONED, entries[-1].get("entry") or ""
        if entries and entries[-1].get("error"):
            return pool.INSTALLING, entries[-1]["error"]
        return pool.INSTALLING, "probe state %s" % log.get("state")

    def _wait_log(self, address, timeout):
        deadline = time.time() + timeout
        log = None
        while True:
            log = self.client.parlay_logs(address)
            if log is not None and log.get("state") in ("Completed", "Failed"):
                return log
            if time.time() >= deadline:
                return log
            time.sleep(self.probe_interval)

    def _proven_address(self, machine):
        """The address of ``machine``'s deployment, proven to be its own: the deployment of its
        MAC has it and no other deployment does. Raises PoolNotFound / PoolConflict otherwise."""
        deps = self.client.deployments()
        mine = [d for d in deps if (d.get("mac") or "").lower() == machine.mac]
        if not mine:
            raise PoolNotFound("%s has no deployment any more" % machine.mac, machine=machine.mac)
        address = (mine[0].get("config") or {}).get("address") or None
        if not address:
            return None
        others = sorted(mac for mac in _address_holders(deps).get(address, []) if mac != machine.mac)
        if others:
            raise PoolConflict("address %s of %s is also the address of %s: the wipe could reach another "
                               "machine, so nothing was run" % (address, machine.mac, ", ".join(others)),
                               machine=machine.mac)
        return address

    def wipe_machine(self, machine, force=False):
        """cluster-api-plunder's de-provisioning: enable sysrq, zero the disk start, reboot;
        then remove the deployment (by MAC) so that the machine re-enters the reboot loop.

        Two proofs guard the disk: the deployment's address belongs to this MAC alone, and the
        wipe itself runs only on a host that has this MAC (``grep`` of /sys/class/net on the
        machine, in the same shell as ``dd``); parlay stops at that failed step, before the reboot.
        Returns False when, forced, the deployment was removed although the wipe failed (the
        machine keeps its disk and will not come back to the loop by itself)."""
        address = self._proven_address(machine)
        if address:
            self.client.delete_parlay_logs(address)
            self.client.parlay(WIPE_DEPLOYMENT, address, [
                {"name": WIPE_TASKS[0], "type": "command", "timeout": 0, "command": "tee /proc/sys/kernel/sysrq",
                 "commandSudo": "root", "commandPipeCmd": "echo \"1\""},
                {"name": WIPE_TASKS[1], "type": "command", "timeout": 0,
                 "command": guarded_wipe_command(machine.mac), "commandSudo": "root"},
                {"name": WIPE_TASKS[2], "type": "command", "timeout": 2, "command": "tee /proc/sysrq-trigger",
                 "commandSudo": "root", "commandPipeCmd": "echo \"b\""},
            ])
            log = self._wait_log(address, self.wipe_timeout) or {}
            entries = log.get("entries") or []
            wiped = [e for e in entries if e.get("task") == WIPE_TASKS[1]]
            if not wiped or wiped[-1].get("error"):
                if wiped:
                    detail = wiped[-1]["error"]
                elif entries and entries[-1].get("error"):  # parlay stops at the first failed step
                    detail = "%s: %s" % (entries[-1].get("task"), entries[-1]["error"])
                else:
                    detail = "no disk-wipe result (log state %s)" % log.get("state")
                if not force:
                    raise PoolError("disk wipe of %s (%s) did not succeed; deployment kept (force=true removes it "
                                    "anyway: check the disk first; a host at %s without MAC %s refuses the wipe)"
                                    % (machine.lease_name or machine.mac, address, address, machine.mac),
                                    machine=machine.mac, server_error=detail)
                self.client.delete_deployment(machine.mac)
                return False
        elif not force:
            raise PoolError("deployment of %s has no address to run the wipe on" % machine.mac, machine=machine.mac)
        else:
            self.client.delete_deployment(machine.mac)
            return False
        self.client.delete_deployment(machine.mac)
        return True

    def reinstall_machine(self, machine, image=None):
        """Re-deploy: update the boot config if asked, wipe the disk start and reboot so that the
        machine PXE-boots into its deployment again."""
        boot = image or machine.image or self.default_boot_config
        if image and image != machine.image:
            self.client.update_deployment(machine.mac, boot, machine.address, machine.hostname)
        address = self._proven_address(machine)
        self.client.delete_parlay_logs(address)
        self.client.parlay(WIPE_DEPLOYMENT, address, [
            {"name": WIPE_TASKS[1], "type": "command", "timeout": 0,
             "command": guarded_wipe_command(machine.mac), "commandSudo": "root"},
            {"name": WIPE_TASKS[2], "type": "command", "timeout": 2, "command": "tee /proc/sysrq-trigger",
             "commandSudo": "root", "commandPipeCmd": "echo \"b\""},
        ])
        self._wait_log(address, self.wipe_timeout)
        return True

    def back_in_loop(self, machine):
        _deps, unleased = self.snapshot()
        return machine.mac in unleased

    def is_owned(self, machine, lease=None, template="{name}-{index}"):
        if machine.owned:
            return True
        if lease and machine.hostname:
            template = template or "{name}-{index}"
            check_template_unambiguous(template)
            return bool(template_regex(template, lease).match(machine.hostname))
        return False
