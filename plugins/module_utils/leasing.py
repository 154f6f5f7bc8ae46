# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Provider-neutral leasing: which members a lease wants, which machines it gets.

A lease has a caller-given ``name``; its members are named from a hostname template
(``{name}-{index}``) or given one by one. Re-running with the same name finds the
members already leased and leases only what is missing. When a run fails half-way,
the machines it leased are released again before the error is reported.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random
import re
import threading

from ansible_collections.baremetal.fleet.plugins.module_utils import pool
from ansible_collections.baremetal.fleet.plugins.module_utils._results import (
    lease_state,
    machine_result,
    run_parallel,
)
from ansible_collections.baremetal.fleet.plugins.module_utils.pool import (
    PoolAddressConflict,
    PoolConflict,
    PoolError,
    normalize_mac,
)

DEFAULT_TEMPLATE = "{name}-{index}"
_HOST_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
SELECTOR_KEYS = ("size", "partition", "vendor", "labels", "rack")
SPREAD_KEYS = ("rack", "vendor", "size", "partition")
MAX_CONFLICT_RETRIES = 20
#: the most machines one lease may hold: checked before any member is built
MAX_MEMBERS = 10000


def render_hostname(template, name, index):
    try:
        return (template or DEFAULT_TEMPLATE).format(name=name, index=index)
    except (KeyError, IndexError, ValueError) as err:
        raise PoolError("hostname_template %r cannot be rendered (use {name} and {index}): %s" % (template, err))


class Member:
    """One wanted machine of a lease."""

    def __init__(self, name, index, hostname, selectors, mac=None, machine_id=None, address=None):
        self.from_range = False  # address picked from address_range (another may be tried)
        self.name = name
        self.index = index
        self.hostname = hostname
        self.selectors = selectors
        self.mac = mac
        self.machine_id = machine_id
        self.address = address


def _count_indexes(params, count, held):
    """The member indexes a ``count`` lease wants: the members it holds first (but those named in
    ``drop_first``, then the highest), the free names in ``fill_first``, then the lowest free
    indexes for the rest. A lease holding 0..k-1 wants 0..count-1 as before; one with a hole (a
    member removed by name) keeps its members."""
    template = params.get("hostname_template") or DEFAULT_TEMPLATE
    drop = set(params.get("drop_first") or ())
    names, found, index = [], 0, 0
    # far enough for every free index wanted and every member held (a hole can leave high indexes)
    while index < MAX_MEMBERS and (index < count + len(held) or found < len(held)):
        name = render_hostname(template, params["name"], index)
        names.append((index, name))
        found += name in held
        index += 1
    kept = [i for i, n in names if n in held and n not in drop] + [i for i, n in names if n in held and n in drop]
    kept = sorted(kept[:count])
    # names given back first (``fill_first``: a replacement takes its predecessor's place)
    fill = _fill_indexes(params, template, held)
    free = (fill + [i for i, n in names if n not in held and i not in fill])[:count - len(kept)]
    return sorted(kept + free)


def _fill_indexes(params, template, held):
    """The indexes of the ``fill_first`` names the lease does not hold, in the order given; names
    the template cannot produce are ignored."""
    wanted = [n for n in params.get("fill_first") or () if n not in held]
    if not wanted:
        return []
    index_of = dict((render_hostname(template, params["name"], i), i) for i in range(MAX_MEMBERS))
    out = []
    for name in wanted:
        if name in index_of and index_of[name] not in out:
            out.append(index_of[name])
    return out


def wanted_members(params, held=None):
    """Members from ``count`` or ``machines``; selectors merged (per machine wins). ``held``: the
    member names the lease holds now (see _count_indexes); without it, indexes 0..count-1."""
    name = params["name"]
    template = params.get("hostname_template") or DEFAULT_TEMPLATE
    base = dict((k, params.get(k)) for k in SELECTOR_KEYS if params.get(k))
    addresses = list(params.get("addresses") or [])
    members = []
    if params.get("machines"):
        if len(params["machines"]) > MAX_MEMBERS:
            raise PoolError("lease %s lists %d machines; at most %d per lease"
                            % (name, len(params["machines"]), MAX_MEMBERS))
        for index, entry in enumerate(params["machines"]):
            sel = dict(base)
            for key in SELECTOR_KEYS:
                if entry.get(key):
                    sel[key] = entry[key]
            mname = entry.get("name") or render_hostname(template, name, index)
            mac = normalize_mac(entry["mac"]) if entry.get("mac") else None
            address = entry.get("address") or (addresses[index] if index < len(addresses) else None)
            members.append(Member(mname, index, entry.get("hostname") or mname, sel, mac=mac,
                                  machine_id=entry.get("id"), address=address))
    else:
        count = params.get("count")
        if count is None:
            count = 1
        if count < 0:
            raise PoolError("count must not be negative (got %d)" % count)
        if count > MAX_MEMBERS:
            raise PoolError("lease %s: count %d is more than one lease may hold (%d); split it into several leases"
                            % (name, count, MAX_MEMBERS))
        fill = params.get("fill_first")
        for index in (_count_indexes(params, count, set(held or ())) if held or fill else range(count)):
            mname = render_hostname(template, name, index)
            address = addresses[index] if index < len(addresses) else None
            members.append(Member(mname, index, mname, dict(base), address=address))
    import ipaddress

    seen = set()
    seen_addresses = {}
    for member in members:
        for label in member.hostname.split("."):
            if not _HOST_LABEL.match(label):
                raise PoolError("lease %s: %r is not a valid hostname (letters, digits and '-', at most 63 per "
                                "label; check name and hostname_template)" % (name, member.hostname),
                                machine=member.name)
        if member.address:
            try:
                member.address = str(ipaddress.ip_address(u"%s" % member.address))
            except ValueError:
                raise PoolError("lease %s: address %r for %s is not an IP address" % (name, member.address, member.name),
                                machine=member.name)
            if member.address in seen_addresses:
                raise PoolError("lease %s gives address %s to both %s and %s: one address, one machine"
                                % (name, member.address, seen_addresses[member.address], member.name),
                                machine=member.name)
            seen_addresses[member.address] = member.name
        if member.name in seen:
            raise PoolError("lease %s names machine %s twice" % (name, member.name))
        seen.add(member.name)
    if addresses and len(addresses) < len(members) and not params.get("address_range"):
        raise PoolError("lease %s has %d machines but only %d addresses" % (name, len(members), len(addresses)))
    return members


def address_pool(cidr, used):
    """Generator of free host addresses in ``cidr`` (``a.b.c.d/n`` or ``first-last``)."""
    import ipaddress

    text = str(cidr).strip()
    try:
        if "-" in text and "/" not in text:
            first, last = [ipaddress.ip_address(p.strip()) for p in text.split("-", 1)]
            candidates = (ipaddress.ip_address(i) for i in range(int(first), int(last) + 1))
        else:
            net = ipaddress.ip_network(text, strict=False)
            candidates = net.hosts()
    except ValueError as err:
        raise PoolError("address_range %r is not a CIDR (10.0.0.0/24) or a range (10.0.0.10-10.0.0.50): %s"
                        % (cidr, err))
    for addr in candidates:
        if str(addr) not in used:
            yield str(addr)


class AddressBook:
    """Addresses for a backend without IPAM (``provider.needs_addresses``): the caller's own,
    checked against what other leases hold, or the next free one of ``address_range``. Shared by
    the leasing threads; an address another lease took meanwhile is never offered again."""

    def __init__(self, provider, lease, members, address_range):
        self.lease = lease
        self.provider_name = provider.name
        self.used = provider.used_addresses()
        given = set(m.address for m in members if m.address)
        self.lock = threading.Lock()
        self.range = address_range
        self.free = address_pool(address_range, self.used | given) if address_range else None

    def assign(self, missing):
        """Give every missing member an address (or fail before anything is written)."""
        for member in missing:
            if member.address:
                if member.address in self.used:
                    raise PoolConflict("lease %s: address %s for %s is already used by another deployment"
                                       % (self.lease, member.address, member.name), machine=member.name)
                continue
            if self.free is None:
                raise PoolError("%s has no IPAM: lease %s needs an address for %s; give addresses "
                                "(a list) or address_range (a CIDR)" % (self.provider_name, self.lease, member.name),
                                machine=member.name)
            member.address = self.take(member)
            member.from_range = True

    def take(self, member):
        with self.lock:
            try:
                return next(self.free)
            except StopIteration:
                raise PoolConflict("lease %s: address_range %s has no free address left for %s"
                                   % (self.lease, self.range, member.name), machine=member.name)


def _rank(machine):
    return (machine.rank is None, machine.rank if machine.rank is not None else 0, machine.id or "")


def holders_by_member(machines):
    """{member name: [machines]} with the earliest lease first (it keeps the name)."""
    out = {}
    for machine in sorted(machines, key=_rank):
        out.setdefault(machine.lease_name, []).append(machine)
    return out


def duplicate_warnings(lease, by_member):
    """One warning per member name held by more than one machine (two callers at once);
    ``by_member`` as :func:`holders_by_member` gives it."""
    out = []
    for name, holders in sorted(by_member.items(), key=lambda kv: str(kv[0])):
        if len(holders) > 1:
            out.append("lease %s: %s is held by %d machines: %s keeps the name (leased first); extra: %s. Wipe the "
                       "extra machines by MAC/id (force: true) to give them back"
                       % (lease, name, len(holders), holders[0].mac or holders[0].id,
                          ", ".join(m.mac or m.id for m in holders[1:])))
    return out


HARDWARE_KEYS = ("rack", "size", "partition", "vendor", "labels")


def apply_hardware(machines, hardware):
    """Fill in what the backend does not know (plunder: rack, size, labels, ...) from a map
    ``{MAC or id: {rack, size, partition, vendor, labels}}`` the caller keeps (a CMDB export)."""
    table = {}
    for key, facts in (hardware or {}).items():
        if not isinstance(facts, dict):
            raise PoolError("hardware entry %s must be a mapping of rack, size, partition, vendor, labels" % key)
        unknown = set(facts) - set(HARDWARE_KEYS)
        if unknown:
            raise PoolError("hardware entry %s has unknown keys %s (allowed: %s)"
                            % (key, ", ".join(sorted(unknown)), ", ".join(HARDWARE_KEYS)))
        if facts.get("labels") is not None and not isinstance(facts["labels"], dict):
            raise PoolError("hardware entry %s: labels must be a mapping of label names to values, got %r"
                            % (key, facts["labels"]))
        for attr in ("rack", "size", "partition", "vendor"):
            if isinstance(facts.get(attr), (dict, list)):
                raise PoolError("hardware entry %s: %s must be a single value, got %r" % (key, attr, facts[attr]))
        try:
            key = normalize_mac(key)
        except PoolError:
            pass
        table[key] = facts
    for machine in machines:
        facts = table.get(machine.mac) or table.get(machine.id)
        if not facts:
            continue
        for attr in ("rack", "size", "partition", "vendor"):
            if facts.get(attr):
                setattr(machine, attr, str(facts[attr]))
        if facts.get("labels"):
            labels = dict(machine.labels)
            labels.update(dict((str(k), str(v)) for k, v in facts["labels"].items()))
            machine.labels = labels
    return machines


def describe_selectors(sel):
    parts = []
    for key in SELECTOR_KEYS:
        if sel.get(key):
            value = sel[key]
            if isinstance(value, dict):
                value = ",".join("%s=%s" % kv for kv in sorted(value.items()))
            parts.append("%s=%s" % (key, value))
    return " ".join(parts) or "any"


class LeasePlanner:
    """Picks machines for missing members (selectors, spread) from an unleased snapshot."""

    def __init__(self, candidates, spread_by=None, taken_values=None, rng=None):
        self.candidates = list(candidates)
        (rng or random.SystemRandom()).shuffle(self.candidates)  # parallel runs rarely collide
        self.spread_by = spread_by
        self.used = set()
        self.spread_used = set(taken_values or ())
        self.lock = threading.Lock()

    def _fits(self, machine, member):
        if machine.id in self.used:
            return False
        if member.mac and machine.mac != member.mac:
            return False
        if member.machine_id and machine.id != member.machine_id:
            return False
        if not pool.filter_machines([machine], member.selectors):
            return False
        if self.spread_by and not member.mac and not member.machine_id:
            value = getattr(machine, self.spread_by)
            # a machine whose rack (...) is unknown cannot prove it is apart from the others
            if not value or value in self.spread_used:
                return False
        return True

    def pick(self, member):
        with self.lock:
            for machine in self.candidates:
                if self._fits(machine, member):
                    self.used.add(machine.id)
                    if self.spread_by:
                        self.spread_used.add(getattr(machine, self.spread_by))
                    return machine
        return None

    def drop(self, machine):
        """A machine the server refused (taken meanwhile): never offer it again."""
        with self.lock:
            self.used.add(machine.id)
            if self.spread_by:
                self.spread_used.discard(getattr(machine, self.spread_by))

    def check_feasible(self, members, lease):
        """Fail before writing anything when the pool cannot satisfy ``members``."""
        for member in members:
            if member.mac or member.machine_id:
                ref = member.mac or member.machine_id
                if not any((member.mac and m.mac == member.mac) or (member.machine_id and m.id == member.machine_id)
                           for m in self.candidates):
                    raise PoolConflict("lease %s: machine %s for %s is not in the unleased pool"
                                       % (lease, ref, member.name), machine=ref)
        groups = {}
        for member in members:
            if not (member.mac or member.machine_id):
                groups.setdefault(describe_selectors(member.selectors), []).append(member)
        for desc, group in groups.items():
            fitting = [m for m in self.candidates if pool.filter_machines([m], group[0].selectors)]
            if len(fitting) < len(group):
                raise PoolConflict("lease %s needs %d more machine(s) matching %s but the unleased pool has only %d"
                                   % (lease, len(group), desc, len(fitting)))
            if self.spread_by:
                values = set(getattr(m, self.spread_by) for m in fitting) - self.spread_used
                values.discard("")
                if len(values) < len(group):
                    raise PoolConflict(
                        "lease %s: spread_by %s needs %d distinct %s value(s) for the missing machines, the unleased "
                        "pool matching %s offers %d (%s)%s"
                        % (lease, self.spread_by, len(group), self.spread_by, desc, len(values),
                           ", ".join(sorted(values)) or "none",
                           "; already used by the lease: %s" % ", ".join(sorted(self.spread_used))
                           if self.spread_used else ""))


def _provider_options(params):
    return dict((k, params.get(k)) for k in ("project", "networks", "ssh_public_keys", "user_data", "tags"))


def ensure_present(provider, params, check_mode=False, workers=8):
    """Lease whatever members of ``params['name']`` are missing. Returns a result dict."""
    lease = params["name"]
    template = params.get("hostname_template") or DEFAULT_TEMPLATE
    provider.check_template(template)
    members = wanted_members(params)
    existing = provider.lease_members(lease, names=[m.name for m in members], template=template,
                                      project=params.get("project"))
    apply_hardware(existing, params.get("hardware"))
    holders = holders_by_member(existing)
    by_name = dict((name, found[0]) for name, found in holders.items())
    notes = duplicate_warnings(lease, holders)
    invalid = provider.invalid_members(list(by_name.values()))
    for machine in [m for m in by_name.values() if m.id in invalid]:
        # replaced below like a missing member (released first, except in check mode)
        notes.append("lease %s: %s (%s) is replaced: %s"
                     % (lease, machine.lease_name, machine.mac or machine.id, invalid[machine.id]))
        if not check_mode:
            provider.release_machine(machine)
        del by_name[machine.lease_name]
        existing = [m for m in existing if m.id != machine.id]
    if not params.get("machines") and by_name:
        members = wanted_members(params, held=by_name)
    for member in members:
        have = by_name.get(member.name)
        if have is not None and member.mac and have.mac != member.mac:
            raise PoolConflict("lease %s: %s is already leased on %s, not on the requested %s"
                               % (lease, member.name, have.mac, member.mac), machine=member.name)
    missing = [m for m in members if m.name not in by_name]
    wanted_names = set(m.name for m in members)
    extras = sorted((m for m in existing if m.lease_name not in wanted_names), key=_natural)
    before = lease_state(existing)
    result = {"changed": False, "machines": [], "warnings": notes}
    if extras:
        result["warnings"].append(
            "lease %s also holds %s beyond what this task asks for; they are kept (state=absent releases all)"
            % (lease, ", ".join(sorted(m.lease_name for m in extras))))
    if not missing:
        result["machines"] = [machine_result(by_name[m.name]) for m in members] + \
            [machine_result(m, surplus=True) for m in extras]
        result["diff"] = {"before": {"lease": lease, "machines": before},
                          "after": {"lease": lease, "machines": before}}
        return result

    if provider.hostname_is_member:
        for member in missing:
            if member.hostname != member.name:
                raise PoolError("lease %s: on %s the hostname is the lease key, so %s cannot have hostname %s"
                                % (lease, provider.name, member.name, member.hostname), machine=member.name)
    image = provider.check_image(params.get("image"))
    # selectors every missing member shares are pushed to the server where it can filter
    common = missing[0].selectors if all(m.selectors == missing[0].selectors for m in missing) else None
    hardware = params.get("hardware")
    if hardware:
        candidates = apply_hardware(provider.list_machines(status="unleased"), hardware)
    else:
        candidates = provider.list_machines(status="unleased", filters=common or None)
    candidates = [m for m in candidates if provider.is_candidate(m)]
    spread_by = params.get("spread_by")
    taken_values = set()
    if spread_by:
        taken_values = set(getattr(m, spread_by) for m in existing if getattr(m, spread_by))
    planner = LeasePlanner(candidates, spread_by=spread_by, taken_values=taken_values)
    planner.check_feasible(missing, lease)

    # Addresses: a backend without IPAM gets them from the caller, reserved as they are written.
    book = None
    if provider.needs_addresses:
        book = AddressBook(provider, lease, members, params.get("address_range"))
        book.assign(missing)

    options = _provider_options(params)
    result["changed"] = True
    if check_mode:
        planned = []
        for member in missing:
            machine = planner.pick(member)
            if machine is None:
                raise PoolConflict("lease %s: no unleased machine left for %s (%s)"
                                   % (lease, member.name, describe_selectors(member.selectors)))
            machine.lease_name = member.name
            machine.hostname = member.hostname
            machine.address = member.address or machine.address
            machine.lease = lease
            machine.state = pool.LEASED
            planned.append(machine)
        after = dict(before)
        after.update(lease_state(planned))
        result["machines"] = [machine_result(by_name[m.name]) for m in members if m.name in by_name] + \
            [machine_result(m, changed=True, planned=True) for m in planned] + \
            [machine_result(m, surplus=True) for m in extras]
        result["diff"] = {"before": {"lease": lease, "machines": before}, "after": {"lease": lease, "machines": after}}
        return result

    def lease_one(member):
        conflicts = []
        machine = None
        for _attempt in range(MAX_CONFLICT_RETRIES):
            if machine is None:
                machine = planner.pick(member)
                if machine is None:
                    break
            try:
                return provider.lease_machine(machine, lease, member.name, member.hostname,
                                              address=member.address, image=image, options=options)
            except PoolAddressConflict as err:
                conflicts.append("address %s: %s" % (member.address, err.msg))
                if book is None or not member.from_range:
                    raise PoolConflict("lease %s: address %s for %s was taken by another lease meanwhile"
                                       % (lease, member.address, member.name), machine=member.name)
                member.address = book.take(member)  # same machine, the next free address
            except PoolConflict as err:
                planner.drop(machine)
                conflicts.append("%s: %s" % (machine.mac or machine.id, err.server_error or err.msg))
                machine = None
                if member.mac or member.machine_id:
                    raise
        raise PoolConflict("lease %s: no unleased machine left for %s (%s)%s"
                           % (lease, member.name, describe_selectors(member.selectors),
                              "; taken meanwhile: " + "; ".join(conflicts) if conflicts else ""),
                           machine=member.name)

    leased, failure = run_parallel(lease_one, missing, workers)
    if failure is not None:
        index, err = failure
        done = [m for m in leased if m is not None]
        rolled, rollback_errors = [], []
        for machine in done:
            try:
                provider.release_machine(machine)
                rolled.append("%s (%s)" % (machine.lease_name, machine.mac or machine.id))
            except PoolError as rerr:
                rollback_errors.append("%s: %s" % (machine.lease_name, rerr))
        msg = "lease %s failed at %s: %s" % (lease, missing[index].name, err)
        if rolled:
            msg += "; released again the %d machine(s) leased in this run: %s" % (len(rolled), ", ".join(rolled))
        else:
            msg += "; nothing had been leased in this run"
        if rollback_errors:
            msg += "; COULD NOT release: %s" % "; ".join(rollback_errors)
        raise PoolError(msg, machine=missing[index].name, url=getattr(err, "url", None),
                        status=getattr(err, "status", None), server_error=getattr(err, "server_error", None))
    leased = _settle(provider, lease, template, params.get("project"), leased, result["warnings"])
    new = dict((m.lease_name, m) for m in leased)
    result["machines"] = [machine_result(by_name[m.name]) if m.name in by_name else
                          machine_result(new[m.name], changed=True) for m in members] + \
        [machine_result(m, surplus=True) for m in extras]
    after = dict(before)
    after.update(lease_state(leased))
    result["diff"] = {"before": {"lease": lease, "machines": before}, "after": {"lease": lease, "machines": after}}
    return result


def _natural(machine):
    """Sort key: member names in index order (demo-2 before demo-10)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", machine.lease_name or "")]


def _settle(provider, lease, template, project, leased, warnings):
    """Two callers leasing one member name at once each get a machine. After writing, read the
    lease back: the earliest lease of a name keeps it, a later one gives its machine back and
    reports the keeper. Every caller reads after its own write, so any two agree."""
    found = holders_by_member(provider.lease_members(lease, names=[m.lease_name for m in leased],
                                                     template=template, project=project))
    out = []
    for mine in leased:
        holders = found.get(mine.lease_name) or []
        keeper = holders[0] if holders else mine
        if (keeper.id, keeper.mac) == (mine.id, mine.mac):
            out.append(mine)
            continue
        provider.release_machine(mine)
        warnings.append("lease %s: %s was leased by another run at the same time; it keeps %s, this run gave "
                        "back %s" % (lease, mine.lease_name, keeper.mac or keeper.id, mine.mac or mine.id))
        out.append(keeper)
    return out


def ensure_absent(provider, params, check_mode=False, workers=8):
    """Release every machine of the lease (backends that cannot release without wiping wipe)."""
    lease = params["name"]
    template = params.get("hostname_template") or DEFAULT_TEMPLATE
    provider.check_template(template)
    names = [m.name for m in wanted_members(params)] if params.get("machines") else []
    existing = provider.lease_members(lease, names=names, template=template, project=params.get("project"))
    targets = [m for m in existing if provider.is_owned(m, lease=lease, template=template)]
    before = lease_state(existing)
    after = dict((k, v) for k, v in before.items() if k not in set(m.lease_name for m in targets))
    result = {"changed": bool(targets), "machines": [machine_result(m, changed=True) for m in targets],
              "warnings": [], "diff": {"before": {"lease": lease, "machines": before},
                                       "after": {"lease": lease, "machines": after}}}
    if not targets or check_mode:
        return result
    _done, failure = run_parallel(provider.release_machine, targets, workers)
    if failure is not None:
        index, err = failure
        raise PoolError("releasing %s of lease %s failed: %s" % (targets[index].lease_name, lease, err),
                        machine=targets[index].lease_name, server_error=getattr(err, "server_error", None))
    for item in result["machines"]:
        item["state"] = "released"
    return result
