# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""metal-api backend: a small v1 REST client (HMAC or bearer token) and the Provider.

HMAC as metal-api checks it: ``X-Date`` (UTC RFC 3339), ``X-Data-Salt`` (random
letters) and ``Authorization: <auth type> <hex>`` where hex is
HMAC-SHA256(key, X-Date + METHOD + salt). Body and path are not signed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import hmac
import random
import string
import time

from ansible_collections.baremetal.fleet.plugins.module_utils import pool
from ansible_collections.baremetal.fleet.plugins.module_utils.pool import (
    OWNER_TAG,
    Machine,
    PoolConflict,
    PoolError,
    PoolNotFound,
    Provider,
    normalize_mac,
)
from ansible_collections.baremetal.fleet.plugins.module_utils.transport import (
    JsonHttp,
    raise_for_auth,
    server_text,
    unexpected,
)

LEASE_TAG_PREFIX = "fleet.baremetal.io/lease="
INDEX_TAG_PREFIX = "fleet.baremetal.io/index="
SYSTEM_TAG_PREFIX = "machine.metal-stack.io/"

_SALT_CHARS = string.ascii_letters
_rand = random.SystemRandom()

# newest event -> pool state, for machines without / with an allocation
_FREE_STATES = {
    "Waiting": pool.UNLEASED,
    "Machine Reclaim": pool.WIPING,
    "PXE Booting": pool.WIPING,
    "Preparing": pool.WIPING,
    "Registering": pool.WIPING,
    "Planned Reboot": pool.WIPING,
}
_ALLOCATED_STATES = {
    "Waiting": pool.LEASED,
    "Registering": pool.INSTALLING,
    "PXE Booting": pool.INSTALLING,
    "Preparing": pool.INSTALLING,
    "Planned Reboot": pool.INSTALLING,
    "Installing": pool.INSTALLING,
    "Booting New Kernel": pool.INSTALLING,
    "Phoned Home": pool.PROVISIONED,
}


def hmac_headers(key, auth_type, method, now=None, salt=None):
    """The three headers metal-api checks for one request."""
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now if now is not None else time.time()))
    if salt is None:
        salt = "".join(_rand.choice(_SALT_CHARS) for _i in range(24))
    digest = hmac.new(key.encode("utf-8"), (date + method.upper() + salt).encode("utf-8"),
                      hashlib.sha256).hexdigest()
    return {"X-Date": date, "X-Data-Salt": salt, "Authorization": "%s %s" % (auth_type, digest)}


class MetalClient:
    """metal-api v1 REST, the few calls this collection needs."""

    def __init__(self, url, hmac_key=None, hmac_auth_type="Metal-Edit", token=None, validate_certs=True,
                 timeout=30, retries=4):
        headers = {"Accept": "application/json"}
        factory = None
        if token:
            headers["Authorization"] = "Bearer %s" % token
        elif hmac_key:
            def factory(method):
                return hmac_headers(hmac_key, hmac_auth_type, method)
        self.http = JsonHttp(url, headers=headers, timeout=timeout, validate_certs=validate_certs,
                             retries=retries, header_factory=factory)

    @property
    def url(self):
        return self.http.base_url

    def _check(self, resp, what, machine=None, ok=(200, 201)):
        raise_for_auth(resp, what)
        if resp.status in ok:
            return resp.body
        if resp.status == 404:
            raise PoolNotFound("%s: not found" % what, machine=machine, url=resp.url, status=404,
                               server_error=server_text(resp))
        if resp.status in (409, 422):
            raise PoolConflict("%s refused (HTTP %s)" % (what, resp.status), machine=machine, url=resp.url,
                               status=resp.status, server_error=server_text(resp))
        raise unexpected(resp, what, machine)

    def find_machines(self, query=None):
        resp = self.http.request("POST", "/v1/machine/find", body=dict(query or {}))
        return self._check(resp, "find machines") or []

    def list_machines(self):
        return self._check(self.http.request("GET", "/v1/machine"), "list machines") or []

    def get_machine(self, machine_id):
        return self._check(self.http.request("GET", "/v1/machine/%s" % machine_id), "get machine %s" % machine_id,
                           machine=machine_id)

    def allocate(self, request, verify=None):
        resp = self.http.request("POST", "/v1/machine/allocate", body=request, safe=False, verify=verify)
        if getattr(resp, "done", False):
            return resp.body
        return self._check(resp, "allocate machine %s" % (request.get("uuid") or request.get("name")),
                           machine=request.get("uuid") or request.get("name"))

    def free(self, machine_id):
        def verify():
            current = self.get_machine(machine_id)
            if current.get("allocation") is None:
                return _Done(current)
            return None

        resp = self.http.request("DELETE", "/v1/machine/%s/free" % machine_id, safe=False, verify=verify)
        if getattr(resp, "done", False):
            return resp.body
        return self._check(resp, "free machine %s" % machine_id, machine=machine_id)

    def reinstall(self, machine_id, image_id):
        resp = self.http.request("POST", "/v1/machine/%s/reinstall" % machine_id,
                                 body={"id": machine_id, "imageid": image_id})
        return self._check(resp, "reinstall machine %s" % machine_id, machine=machine_id)

    def power(self, machine_id, action):
        resp = self.http.request("POST", "/v1/machine/%s/power/%s" % (machine_id, action), body={})
        return self._check(resp, "power %s machine %s" % (action, machine_id), machine=machine_id)

    def ipmi(self, machine_id):
        return self._check(self.http.request("GET", "/v1/machine/%s/ipmi" % machine_id),
                           "read the BMC of machine %s" % machine_id, machine=machine_id)

    def find_networks(self, query):
        return self._check(self.http.request("POST", "/v1/network/find", body=query), "find networks") or []

    def get(self, path, what):
        return self._check(self.http.request("GET", path), what)


class _Done:
    """Reply stand-in for a write the re-read showed as applied."""

    done = True
    status = 200

    def __init__(self, body):
        self.body = body
        self.text = ""
        self.url = None


def _tags_to_labels(tags):
    labels = {}
    for tag in tags or []:
        if "=" in tag:
            key, _sep, value = tag.partition("=")
            labels[key] = value
    return labels


def _first_address(allocation):
    networks = (allocation or {}).get("networks") or []
    ordered = [n for n in networks if n.get("private")] + [n for n in networks if not n.get("private")]
    for net in ordered:
        for ip in net.get("ips") or []:
            return ip
    return None


def machine_from_response(mr):
    """pool.Machine for a metal-api machine response (tolerant to nulls)."""
    allocation = mr.get("allocation")
    events = (mr.get("events") or {})
    log = events.get("log") or []
    last_event = log[0].get("event") if log else None
    nics = ((mr.get("hardware") or {}).get("nics") or [])
    mac = (nics[0].get("mac") or "").lower() if nics else ""
    tags = mr.get("tags") or []
    lease = None
    for tag in tags:
        if tag.startswith(LEASE_TAG_PREFIX):
            lease = tag[len(LEASE_TAG_PREFIX):]
    if allocation is None:
        state = _FREE_STATES.get(last_event, pool.UNKNOWN)
        if state == pool.UNLEASED and mr.get("liveliness") not in (None, "", "Alive"):
            state = pool.UNKNOWN
        if state == pool.UNLEASED and (mr.get("state") or {}).get("value"):
            state = pool.UNKNOWN  # RESERVED / LOCKED: not free for random allocation
    else:
        state = _ALLOCATED_STATES.get(last_event, pool.LEASED)
        if allocation.get("reinstall") and state == pool.PROVISIONED:
            state = pool.INSTALLING
    labels = _tags_to_labels([t for t in tags if not t.startswith("fleet.baremetal.io/")])
    size = mr.get("size") or {}
    for key, value in (size.get("labels") or {}).items():
        labels.setdefault(key, value)
    image = ((allocation or {}).get("image") or {}).get("id")
    return Machine(
        id=mr.get("id"), mac=mac, provider="metal", state=state,
        vendor=(mr.get("bios") or {}).get("vendor") or "",
        size=size.get("id") or "", partition=(mr.get("partition") or {}).get("id") or "",
        rack=mr.get("rackid") or "", labels=labels,
        last_seen=events.get("last_event_time"),
        lease_name=(allocation or {}).get("name") or None,
        hostname=(allocation or {}).get("hostname") or None,
        address=_first_address(allocation), image=image,
        owned=OWNER_TAG in tags, last_event=last_event, lease=lease,
        rank=(pool.parse_time((allocation or {}).get("created")) or 0.0, mr.get("id") or "") if allocation else None)


class MetalProvider(Provider):
    """The machine pool of one metal-api (project-scoped leases, ownership tag)."""

    name = "metal"

    def __init__(self, url, hmac_key=None, hmac_auth_type="Metal-Edit", token=None, validate_certs=True,
                 timeout=30, retries=4, client=None):
        self.client = client or MetalClient(url, hmac_key=hmac_key, hmac_auth_type=hmac_auth_type, token=token,
                                            validate_certs=validate_certs, timeout=timeout, retries=retries)

    @staticmethod
    def _query(filters):
        query = {}
        filters = filters or {}
        if filters.get("partition") and isinstance(filters["partition"], str):
            query["partition_id"] = filters["partition"]
        if filters.get("size") and isinstance(filters["size"], str):
            query["sizeid"] = filters["size"]
        if filters.get("rack") and isinstance(filters["rack"], str):
            query["rackid"] = filters["rack"]
        if filters.get("id") and isinstance(filters["id"], str):
            query["id"] = filters["id"]
        if filters.get("lease_name") and isinstance(filters["lease_name"], str):
            query["allocation_name"] = filters["lease_name"]
        if filters.get("lease") and isinstance(filters["lease"], str):
            query["tags"] = [LEASE_TAG_PREFIX + filters["lease"]]
        if filters.get("mac") and isinstance(filters["mac"], str):
            query["nics_mac_addresses"] = [normalize_mac(filters["mac"])]
        return query

    def list_machines(self, status="all", filters=None):
        if status not in ("all", "unleased", "leased"):
            raise PoolError("unknown status filter %r (all, unleased, leased)" % (status,))
        query = self._query(filters)
        raw = self.client.find_machines(query) if query else self.client.list_machines()
        machines = [machine_from_response(mr) for mr in raw]
        if status == "unleased":
            machines = [m for m in machines if m.state == pool.UNLEASED]
        elif status == "leased":
            machines = [m for m in machines if m.lease_name is not None or m.state in
                        (pool.LEASED, pool.INSTALLING, pool.PROVISIONED)]
        return pool.filter_machines(machines, filters)

    def get_machine(self, ref):
        try:
            mac = normalize_mac(ref)
        except PoolError:
            mac = None
        if mac:
            found = self.client.find_machines({"nics_mac_addresses": [mac]})
            if not found:
                raise PoolNotFound("no machine with MAC %s on metal-api" % mac, machine=mac, url=self.client.url)
            return machine_from_response(found[0])
        return machine_from_response(self.client.get_machine(ref))

    # --- writes ---------------------------------------------------------------------------
    def lease_members(self, lease, names=None, template=None, project=None):
        """Machines allocated under ``lease``: every allocation this collection makes carries
        the lease tag, so one find is enough (``names`` and ``template`` are not needed)."""
        query = {"tags": [LEASE_TAG_PREFIX + lease]}
        if project:
            query["allocation_project"] = project
        found = [machine_from_response(mr) for mr in self.client.find_machines(query)]
        return [m for m in found if m.lease_name]

    def check_image(self, image):
        if not image:
            raise PoolError("provider metal needs image (the OS image id for the allocation, e.g. debian-12)")
        return image

    def private_network(self, project, partition):
        """The project's private network in the partition (what metalctl's mini-lab flow uses)."""
        cache = self.__dict__.setdefault("_network_cache", {})
        if (project, partition) not in cache:
            cache[(project, partition)] = self._find_private_network(project, partition)
        return cache[(project, partition)]

    def _find_private_network(self, project, partition):
        nets = self.client.find_networks({"projectid": project, "partitionid": partition})
        private = [n for n in nets if not n.get("privatesuper") and not n.get("underlay")
                   and not n.get("shared")] or [n for n in nets if not n.get("privatesuper") and not n.get("underlay")]
        if not private:
            raise PoolError("project %s has no private network in partition %s: allocate one "
                            "(metalctl network allocate) or pass networks" % (project, partition))
        return private[0]["id"]

    def lease_machine(self, machine, lease, member, hostname, address=None, image=None, options=None):
        options = options or {}
        project = options.get("project")
        if not project:
            raise PoolError("provider metal needs project (the project the machines are allocated to)")
        networks = options.get("networks") or []
        if not networks:
            networks = [self.private_network(project, machine.partition)]
        request = {
            "uuid": machine.id,
            "name": member,
            "hostname": hostname,
            "description": "leased by baremetal.fleet as %s of lease %s" % (member, lease),
            "projectid": project,
            "partitionid": machine.partition,
            "sizeid": machine.size,
            "imageid": self.check_image(image),
            "ssh_pub_keys": list(options.get("ssh_public_keys") or []),
            "networks": [{"networkid": n, "autoacquire": True} for n in networks],
            "tags": [OWNER_TAG, LEASE_TAG_PREFIX + lease] + list(options.get("tags") or []),
        }
        if address:
            request["ips"] = [address]
        if options.get("user_data"):
            request["user_data"] = options["user_data"]

        def verify():
            found = self.client.find_machines({"allocation_name": member, "allocation_project": project})
            for mr in found:
                if mr.get("id") == machine.id:
                    return _Done(mr)
            current = self.client.get_machine(machine.id)
            if current.get("allocation") is not None:
                raise PoolConflict("machine %s was allocated by someone else" % machine.id, machine=machine.id)
            return None

        return machine_from_response(self.client.allocate(request, verify=verify))

    def release_machine(self, machine):
        """metal-api has no release without wipe: free reclaims (wipes) the machine."""
        current = self.client.get_machine(machine.id)
        if current.get("allocation") is None:
            return False
        self.client.free(machine.id)
        return True

    def wipe_machine(self, machine, force=False):
        return self.release_machine(machine)

    def reinstall_machine(self, machine, image=None):
        self.client.reinstall(machine.id, image or machine.image)
        return True

    def probe_machine(self, machine):
        """State from the newest provisioning event; ``failed`` when the install crashed."""
        mr = self.client.get_machine(machine.id)
        current = machine_from_response(mr)
        log = (mr.get("events") or {}).get("log") or []
        detail = ("%s: %s" % (log[0].get("event"), log[0].get("message") or "")).rstrip(": ") if log else ""
        if current.last_event == "Crashed":
            return "failed", "install crashed: %s" % ((log[0].get("message") if log else "") or "no message")
        if mr.get("allocation") is None:
            return "failed", "machine is no longer allocated (%s)" % detail
        return current.state, detail

    def back_in_loop(self, machine):
        current = machine_from_response(self.client.get_machine(machine.id))
        return current.state == pool.UNLEASED

    has_power_api = True

    def power_state(self, machine):
        state = ((self.client.ipmi(machine.id) or {}).get("ipmi") or {}).get("powerstate") or ""
        if state.upper() not in ("ON", "OFF"):
            raise PoolError("metal-api reports no power state for machine %s (its BMC said %r)" % (machine.id, state),
                            machine=machine.id, url=self.client.url)
        return state.lower()

    def power(self, machine, action):
        self.client.power(machine.id, action)

    def ownership_hint(self, lease):
        return "on metal-api a machine is ours when its allocation carries the tag %s" % OWNER_TAG

    def is_owned(self, machine, lease=None, template=None):
        return bool(machine.owned) and (lease is None or machine.lease in (None, lease))
