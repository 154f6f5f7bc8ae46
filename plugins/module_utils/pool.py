# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Provider-neutral view of a reboot-loop machine pool.

Modules and the inventory plugin speak only to this interface; one file per
backend (``plunder.py``, ``metal.py``) implements it over HTTP.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
from abc import ABC, abstractmethod

# Lifecycle states, the same words for every backend.
UNLEASED = "unleased"        # in the reboot loop, free to lease
LEASED = "leased"            # leased, OS not yet being written
INSTALLING = "installing"    # OS being written / booting
PROVISIONED = "provisioned"  # OS up and reachable
WIPING = "wiping"            # disks being wiped, on its way back to the loop
UNKNOWN = "unknown"
STATES = (UNLEASED, LEASED, INSTALLING, PROVISIONED, WIPING, UNKNOWN)

# Ownership mark put on every lease this collection makes.
OWNER_TAG = "fleet.baremetal.io/owner=ansible"

_MAC_RE = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$", re.IGNORECASE)


class PoolError(Exception):
    """The one exception type plugins turn into ``fail_json`` / ``AnsibleError``."""

    def __init__(self, msg, machine=None, url=None, status=None, server_error=None):
        super(PoolError, self).__init__(msg)
        self.msg = msg
        self.machine = machine
        self.url = url
        self.status = status
        self.server_error = server_error

    def __str__(self):
        parts = [self.msg]
        if self.machine:
            parts.append("machine %s" % self.machine)
        if self.server_error:
            parts.append("server said: %s" % self.server_error)
        if self.url:
            parts.append("url %s" % self.url)
        return "; ".join(parts)

    def to_fail_kwargs(self):
        out = {"msg": str(self)}
        for key in ("machine", "url", "status", "server_error"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


class PoolConnectionError(PoolError):
    """Server unreachable, TLS failure, timeout: transient or configuration."""


class PoolAuthError(PoolError):
    """401/403 or a rejected HMAC/token."""


class PoolNotFound(PoolError):
    """A machine, lease or object the caller named does not exist."""


class PoolConflict(PoolError):
    """The pool cannot satisfy the request (taken, too few machines, placement)."""


class PoolAddressConflict(PoolConflict):
    """The address a lease asked for was taken by another lease meanwhile. The provider has
    already undone its own write; the caller may try another address."""


def normalize_mac(value):
    """Return a MAC as lower-case colon form or raise PoolError."""
    if not isinstance(value, str) or not _MAC_RE.match(value.strip()):
        raise PoolError("invalid MAC address %r (expected six hex pairs such as 52:54:00:12:34:56)" % (value,))
    return value.strip().lower().replace("-", ":")


class Machine:
    """One machine as every backend reports it."""

    __slots__ = (
        "id", "mac", "provider", "state", "vendor", "size", "partition", "rack",
        "labels", "last_seen", "lease_name", "hostname", "address", "image", "owned",
        "last_event", "lease", "rank",
    )

    def __init__(self, id, mac, provider, state=UNKNOWN, vendor="", size="", partition="",
                 rack="", labels=None, last_seen=None, lease_name=None, hostname=None,
                 address=None, image=None, owned=False, last_event=None, lease=None, rank=None):
        self.id = id
        self.mac = mac
        self.provider = provider
        self.state = state
        self.vendor = vendor or ""
        self.size = size or ""
        self.partition = partition or ""
        self.rack = rack or ""
        self.labels = dict(labels or {})
        self.last_seen = last_seen
        self.lease_name = lease_name
        self.hostname = hostname
        self.address = address
        self.image = image
        self.owned = owned
        self.last_event = last_event
        self.lease = lease  # the lease (group) name; ``lease_name`` is this machine's own name
        # sortable: leased earlier ranks lower (the backend's creation order); None when unleased
        self.rank = rank

    @property
    def provider_id(self):
        """``plunder://<mac>`` or ``metal://<id>``, as cluster-api providers spell it."""
        if self.provider == "plunder":
            return "plunder://%s" % self.mac
        return "%s://%s" % (self.provider, self.id)

    def to_dict(self):
        out = dict((key, getattr(self, key)) for key in self.__slots__ if key != "rank")
        out["provider_id"] = self.provider_id
        return out

    def __repr__(self):
        return "Machine(%s %s %s)" % (self.provider, self.id, self.state)


class Provider(ABC):
    """The contract every backend implements, and all the provider-neutral layer (``leasing``,
    ``provisioning``, the modules and the inventory plugin) may call. A backend is one file that
    subclasses this and implements every abstract method; ``tests/unit`` checks that each does.
    Methods raise PoolError subclasses only.

    Words: a *lease* (``demo``) is a group of machines leased together; a *member* (``demo-1``) is
    one machine's name in it. ``template`` is the hostname template (``{name}-{index}``) that
    turns a lease and an index into a member name.
    """

    #: backend name as users write it (``provider:``)
    name = None
    #: the backend has no IPAM: every leased machine needs an address from the caller
    needs_addresses = False
    #: the member name is the only mark the backend can keep, so hostname must equal it
    hostname_is_member = False

    # --- reads ----------------------------------------------------------------------------
    @abstractmethod
    def list_machines(self, status="all", filters=None):
        """Return [Machine]. ``status``: unleased | leased | all. ``filters``: dict of
        size, partition, vendor, rack, labels (dict), lease_name, mac, id, pushed to the
        server where its API can filter."""

    @abstractmethod
    def get_machine(self, ref):
        """Return one Machine by id or MAC, or raise PoolNotFound."""

    @abstractmethod
    def lease_members(self, lease, names=None, template=None, project=None):
        """Machines leased under ``lease`` (members named in ``names`` or by ``template``),
        each with ``rank`` set. Several machines may carry one member name when two callers
        leased it at once; the neutral layer keeps the lowest rank."""

    def used_addresses(self):
        """Addresses other leases hold (backends that need caller-given addresses)."""
        return set()

    def invalid_members(self, machines):
        """{machine id: reason} for leased members that cannot stay as they are (e.g. an address
        another deployment holds since a run died half-way); the lease replaces them."""
        return {}

    def is_candidate(self, machine, now=None):
        """Whether an unleased machine may be leased now (e.g. seen in the loop recently)."""
        return True

    # --- checks before anything is written --------------------------------------------------
    @abstractmethod
    def check_image(self, image):
        """The image (or boot config) a lease will use; PoolError when the backend lacks it."""

    def check_template(self, template):
        """PoolError when ``template`` cannot tell this backend's leases apart."""

    def ownership_hint(self, lease):
        """How ownership works on this backend, for a refusal's message."""
        return ""

    # --- writes: each returns what the server then shows -----------------------------------
    @abstractmethod
    def lease_machine(self, machine, lease, member, hostname, address=None, image=None, options=None):
        """Lease one unleased machine under ``member`` and start its OS install; return the
        Machine. PoolConflict when the machine was taken meanwhile; PoolAddressConflict when
        ``address`` was (the write is then undone)."""

    @abstractmethod
    def release_machine(self, machine):
        """Give a leased machine back, without wiping where the backend allows it.
        Returns False when it was not leased any more."""

    @abstractmethod
    def wipe_machine(self, machine, force=False):
        """Wipe a leased machine's disks and return it to the reboot loop. True when wiped;
        False when, ``force`` given, it was released although the wipe could not run."""

    @abstractmethod
    def reinstall_machine(self, machine, image=None):
        """Write the OS again on a leased machine."""

    @abstractmethod
    def probe_machine(self, machine):
        """Return (state, detail): PROVISIONED once the OS is up and reachable; ``failed``
        when the install cannot succeed any more."""

    @abstractmethod
    def back_in_loop(self, machine):
        """True once a wiped machine is unleased in the reboot loop again."""

    @abstractmethod
    def is_owned(self, machine, lease=None, template=None):
        """True when the machine carries this collection's ownership mark (of ``lease``)."""

    # --- power, where the provisioner has a power API (else a BMC map, module_utils/redfish.py) ----
    #: the provisioner switches its machines' power itself
    has_power_api = False

    def power_state(self, machine):
        """``on`` or ``off``, as the provisioner's BMC connection reports it."""
        raise PoolError("%s has no power API: give the machine's BMC (bmc)" % self.name, machine=machine.id)

    def power(self, machine, action):
        """``action``: on | off | reset | cycle | pxe | disk (the last two: boot once from it)."""
        raise PoolError("%s has no power API: give the machine's BMC (bmc)" % self.name, machine=machine.id)


def parse_time(value):
    """Seconds since the epoch for an RFC 3339 time with optional fraction and offset."""
    match = re.match(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:?\d\d)?$",
                     str(value or "").strip())
    if not match:
        return None
    import calendar

    year, mon, day, hour, minute, sec = (int(match.group(i)) for i in range(1, 7))
    frac = float(match.group(7) or 0)
    stamp = calendar.timegm((year, mon, day, hour, minute, sec, 0, 0, 0)) + frac
    zone = match.group(8)
    if zone and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        stamp -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return stamp


def filter_machines(machines, filters):
    """Client-side filters shared by both backends: size, partition, vendor (substring,
    any case), rack, labels (dict, all must match), lease_name, lease, mac, id, state.
    A list value means any of."""
    if not filters:
        return list(machines)
    return [m for m in machines if _matches(m, filters)]


def _matches(machine, filters):
    for key, want in filters.items():
        if want is None or want == "" or want == [] or want == {}:
            continue
        if key == "labels":
            for lkey, lval in want.items():
                if machine.labels.get(lkey) != str(lval):
                    return False
            continue
        if key == "mac":
            wanted = [want] if isinstance(want, str) else list(want)
            if machine.mac not in [normalize_mac(w) for w in wanted]:
                return False
            continue
        have = getattr(machine, key, None)
        if isinstance(want, (list, tuple, set)):
            if have not in want:
                return False
        elif key == "vendor":
            if str(want).lower() not in (have or "").lower():
                return False
        elif have != want:
            return False
    return True
