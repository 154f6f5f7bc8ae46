# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: pool
short_description: Machines of a PXE reboot-loop pool (plunder or metal-api) as inventory
version_added: 0.1.0
description:
  - Lists the machines of a plunder server or a metal-api as Ansible hosts. By default only the
    B(unleased) machines, the free ones that sit in the provisioner's reboot loop, are listed.
  - Filters are sent to the server where its API can filter (metal-api C(/v1/machine/find));
    everything the server cannot filter is filtered on the controller, so a filter means the same
    on both backends (plunder's API reports no size, partition, rack or labels, see O(filters)).
  - An unleased machine has no hostname; its inventory name is derived from its MAC address
    (or its id when it has no MAC), for example C(m-52-54-00-12-34-56). A leased machine is named
    by its lease hostname.
  - Every host gets the variables C(<vars_prefix>id), C(mac), C(provider), C(provider_id), C(state),
    C(vendor), C(size), C(partition), C(rack), C(labels), C(last_seen), C(lease), C(lease_name),
    C(hostname), C(address), C(image), C(last_event) and C(owned) (prefix V(fleet_) by default),
    and C(ansible_host) when an address is known.
  - Default groups are V(unleased), V(leased), and C(vendor_*), C(size_*), C(rack_*), C(partition_*)
    and C(lease_*) by the machine's attributes (lower case, other characters than letters and digits
    become V(_); a value that already starts with the attribute name is not prefixed twice, so rack
    V(rack-01) gives group V(rack_01)). O(compose), O(groups) and O(keyed_groups) add more.
  - The configuration file name must end in C(.pool.yml) or C(.pool.yaml), or be C(pool.yml) / C(pool.yaml).
  - With O(cache) enabled, one cache entry is kept per inventory source; it is used only while the
    connection, O(status) and O(filters) are those it was fetched with.
author:
  - baremetal.fleet maintainers (@baremetal-fleet)
extends_documentation_fragment:
  - baremetal.fleet.connection.plugin
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin; it identifies the file as one for this plugin.
    type: str
    required: true
    choices: [baremetal.fleet.pool]
  status:
    description:
      - Which machines to list. V(unleased) are the free machines in the reboot loop, V(leased) the
        machines with a lease (being provisioned or provisioned), V(all) every machine the server knows,
        including those being wiped.
    type: str
    default: unleased
    choices: [unleased, leased, all]
  filters:
    description:
      - Only machines matching all given filters are listed. A list value matches any of its items.
      - Keys are V(size), V(partition), V(vendor) (case-insensitive substring), V(rack), V(labels)
        (a dictionary; every label must match), V(lease) (the lease a machine belongs to),
        V(lease_name) (the machine's own lease member name), V(mac) and V(id).
      - metal-api filters V(size), V(partition), V(rack), V(id), V(mac), V(lease) and V(lease_name) on the
        server when a single value is given; plunder's API has no filters, so they are applied here.
      - plunder's API reports only MAC addresses and times for machines in the loop, so on plunder
        V(size), V(partition), V(rack) and V(labels) are empty and filters on them list nothing.
    type: dict
    default: {}
  hostnames:
    description:
      - Sources of the inventory host name, tried in order; the first one that gives a name not yet taken
        in this source wins.
      - V(hostname) is the lease hostname, V(lease_name) the lease member name, V(mac) a name derived from the
        MAC address and V(id) a name derived from the provider id. Derived names carry O(hostname_prefix).
      - Characters other than letters, digits, V(.), V(-) and V(_) are replaced by V(-).
    type: list
    elements: str
    default: [hostname, lease_name, mac, id]
  hostname_prefix:
    description: Prefix of the host names derived from a MAC address or a machine id.
    type: str
    default: m-
  vars_prefix:
    description: Prefix of the host variables this plugin sets (not of O(compose) results).
    type: str
    default: fleet_
  default_groups:
    description:
      - Put hosts into the groups V(unleased) and V(leased), and into C(vendor_*), C(size_*), C(rack_*),
        C(partition_*) and C(lease_*) groups by their attributes.
    type: bool
    default: true
  group_prefix:
    description: Prefix of the default group names.
    type: str
    default: ''
notes:
  - Secrets (O(api_hmac), O(api_token)) are never written to the cache and never shown in errors.
  - An HTTP 401 or 403, or a server that cannot be reached, fails the source with an error that names the URL.
"""

EXAMPLES = r"""
# fleet.pool.yml: the unleased pool of a metal-api, grouped by size and rack (the default groups)
plugin: baremetal.fleet.pool
provider: metal
api_url: http://127.0.0.1:8080/metal
# api_hmac comes from METALCTL_HMAC

---
# racks.pool.yml: the small machines of two racks (metal-api filters these on the server)
plugin: baremetal.fleet.pool
provider: metal
filters:
  size: v1-small-x86
  rack: [rack-01, rack-02]

---
# lab.pool.yml: a plunder server, only Dell machines, cached for ten minutes
plugin: baremetal.fleet.pool
provider: plunder
plunder_config: ~/.plunder/plunderclient.yaml
filters:
  vendor: dell
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/fleet-inventory
cache_timeout: 600

---
# leased.pool.yml: the machines of one lease, with constructed groups and variables
plugin: baremetal.fleet.pool
provider: metal
status: leased
filters:
  lease: demo
compose:
  ansible_user: "'metal'"
groups:
  control_plane: fleet_lease_name is match('.*-cp-.*')
keyed_groups:
  - key: fleet_labels
    prefix: label
"""

import json
import os
import re

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.utils.vars import isidentifier

from ansible_collections.baremetal.fleet.plugins.module_utils.connection import (
    OPTION_NAMES as CONNECTION_OPTIONS,
    SECRET_OPTIONS,
    provider_from_params,
    redact,
)
from ansible_collections.baremetal.fleet.plugins.module_utils.pool import PoolError

# Cache entry layout; bump when the stored record changes.
CACHE_FORMAT = 1


# Record fields (Machine attributes) kept in the cache and exposed as host variables.
FIELDS = ("id", "mac", "provider", "provider_id", "state", "vendor", "size", "partition", "rack", "labels",
          "last_seen", "lease", "lease_name", "hostname", "address", "image", "last_event", "owned")

FILTER_KEYS = ("size", "partition", "vendor", "rack", "labels", "lease", "lease_name", "mac", "id")
HOSTNAME_SOURCES = ("hostname", "lease_name", "mac", "id")
LEASED_STATES = ("leased", "installing", "provisioned")

_UNSAFE_HOST_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_UNSAFE_GROUP_CHARS = re.compile(r"[^A-Za-z0-9_]+")


def safe_host_name(value):
    """A host name Ansible takes as is: letters, digits, ``.``, ``-``, ``_``."""
    return _UNSAFE_HOST_CHARS.sub("-", str(value)).strip("-.")


def safe_group_part(value):
    """Lower-case group name part: letters, digits and single underscores."""
    return _UNSAFE_GROUP_CHARS.sub("_", str(value).lower()).strip("_")


def derive_name(record, source, prefix):
    """The inventory name one hostname source gives for a record, or None."""
    if source in ("hostname", "lease_name"):
        value = record.get(source)
        return safe_host_name(value) or None if value else None
    if source == "mac":
        mac = record.get("mac")
        return (prefix + safe_host_name(mac.lower().replace(":", "-"))) if mac else None
    if source == "id":
        ident = record.get("id")
        return (prefix + safe_host_name(ident)) if ident else None
    return None


def machine_record(machine):
    """Plain, JSON-safe dict of the fields the inventory uses (what the cache stores)."""
    rec = {}
    for key in FIELDS:
        value = getattr(machine, key, None)
        if key == "labels":
            value = dict((str(k), str(v)) for k, v in (value or {}).items())
        elif key == "owned":
            value = bool(value)
        elif value is not None and not isinstance(value, (str, int, float, bool)):
            value = str(value)
        rec[key] = value
    return rec


_ID = FIELDS.index("id")
_LABELS = FIELDS.index("labels")
_OWNED = FIELDS.index("owned")


def _valid_rows(rows):
    """Whether cached rows have the shape this version writes (one list of FIELDS per machine)."""
    if not isinstance(rows, list):
        return False
    width = len(FIELDS)
    for row in rows:
        if not isinstance(row, list) or len(row) != width or not isinstance(row[_ID], str) \
                or not isinstance(row[_LABELS], dict) or not isinstance(row[_OWNED], bool):
            return False
    return True


def is_leased(record):
    return record.get("lease_name") is not None or record.get("state") in LEASED_STATES


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):
    """The unleased (or leased, or whole) machine pool of plunder or metal-api as inventory."""

    NAME = "baremetal.fleet.pool"

    def verify_file(self, path):
        if not super(InventoryModule, self).verify_file(path):
            return False
        base = os.path.basename(path)
        return base in ("pool.yml", "pool.yaml") or base.endswith((".pool.yml", ".pool.yaml"))

    # --- options -----------------------------------------------------------------------------
    def _connection_options(self):
        return dict((key, self.get_option(key)) for key in CONNECTION_OPTIONS)

    def _filters(self):
        filters = self.get_option("filters") or {}
        if not isinstance(filters, dict):
            raise AnsibleParserError("baremetal.fleet.pool: filters must be a dictionary, got %r" % (filters,))
        out = {}
        for key, value in filters.items():
            if key not in FILTER_KEYS:
                raise AnsibleParserError("baremetal.fleet.pool: unknown filter %r (known: %s)"
                                         % (key, ", ".join(FILTER_KEYS)))
            if value is None or value == "" or value == [] or value == {}:
                continue
            if key == "labels":
                if not isinstance(value, dict):
                    raise AnsibleParserError("baremetal.fleet.pool: filter labels must be a dictionary")
                value = dict((str(k), str(v)) for k, v in value.items())
            elif isinstance(value, (list, tuple)):
                value = [str(v) for v in value]
                if len(value) == 1:
                    value = value[0]
            else:
                value = str(value)
            out[str(key)] = value
        return out

    def _hostname_sources(self):
        sources = self.get_option("hostnames") or list(HOSTNAME_SOURCES)
        for source in sources:
            if source not in HOSTNAME_SOURCES:
                raise AnsibleParserError("baremetal.fleet.pool: unknown hostnames entry %r (known: %s)"
                                         % (source, ", ".join(HOSTNAME_SOURCES)))
        return list(sources)

    def _fingerprint(self, options, status, filters):
        """What the cached data depends on (never the secrets)."""
        endpoint = redact(options.get("api_url") or "")  # no user:password@ in the cache
        config = options.get("plunder_config") or ""
        if config:
            config = os.path.realpath(os.path.expanduser(config))
        # plain JSON types only: option values carry Ansible's origin tags
        return json.loads(json.dumps({
            "format": CACHE_FORMAT,
            "provider": options.get("provider") or "",
            "plunder_config": config,
            "api_url": endpoint,
            "status": status,
            "filters": filters,
            "fields": list(FIELDS),
        }))

    # --- data --------------------------------------------------------------------------------
    def _fetch(self, options, status, filters):
        secrets = [options.get(key) for key in SECRET_OPTIONS]
        try:
            provider = provider_from_params(options)
            machines = provider.list_machines(status=status, filters=filters)
        except PoolError as err:
            raise AnsibleParserError("baremetal.fleet.pool: %s" % redact(err, secrets))
        return [machine_record(m) for m in machines]

    def _records(self, path, cache):
        options = self._connection_options()
        status = self.get_option("status")
        filters = self._filters()
        fingerprint = self._fingerprint(options, status, filters)

        use_cache = bool(self.get_option("cache"))
        cache_key = self.get_cache_key(path)
        if use_cache and cache:
            try:
                entry = self._cache[cache_key]
            except KeyError:
                entry = None
            if isinstance(entry, dict) and entry.get("query") == fingerprint \
                    and _valid_rows(entry.get("machines")):
                # rows in FIELDS order: a list per machine loads much faster than a dict
                return [dict(zip(FIELDS, row)) for row in entry["machines"]]
            # a malformed entry (edited, truncated, another version's) is a miss: fetched and rewritten
        records = self._fetch(options, status, filters)
        if use_cache:
            rows = [[rec[key] for key in FIELDS] for rec in records]
            self._cache[cache_key] = {"query": fingerprint, "machines": rows}
        return records

    # --- inventory ---------------------------------------------------------------------------
    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache=cache)
        self._read_config_data(path)
        sources = self._hostname_sources()  # every option is checked before the server is asked
        records = self._records(path, cache)
        self._populate(records, sources)

    def _populate(self, records, sources):
        inventory = self.inventory
        prefix = self.get_option("vars_prefix")
        default_groups = self.get_option("default_groups")
        group_prefix = self.get_option("group_prefix") or ""
        compose = self.get_option("compose")
        groups = self.get_option("groups")
        keyed_groups = self.get_option("keyed_groups")
        strict = self.get_option("strict")
        constructed = bool(compose or groups or keyed_groups)
        var_names = [(key, prefix + key) for key in FIELDS]
        for _key, var in var_names:
            if not isidentifier(var):
                raise AnsibleParserError("baremetal.fleet.pool: vars_prefix %r does not give valid variable names"
                                         " (%s)" % (prefix, var))

        named = self._assign_names(records, sources, self.get_option("hostname_prefix"))
        named.sort(key=lambda item: item[0])  # hosts (and groups) appear sorted by name

        members = {}
        if default_groups:
            for name, rec in named:
                for group_name in self._default_groups(rec):
                    members.setdefault(group_prefix + group_name, []).append(name)
            fixed = [group_prefix + "unleased", group_prefix + "leased"]
            for group_name in fixed + sorted(g for g in members if g not in fixed):
                inventory.add_group(group_name)

        for name, rec in named:
            existing = name in inventory.hosts
            inventory.add_host(name)
            host = inventory.get_host(name)
            hostvars = {}
            for key, var in var_names:
                hostvars[var] = rec.get(key)
            if rec.get("address"):
                hostvars["ansible_host"] = rec["address"]
            if existing:
                # defined by an earlier source too: keep set_variable's merge rules
                for var, value in hostvars.items():
                    host.set_variable(var, value)
            else:
                # a new host holds only inventory_file/inventory_dir; the names were checked once
                host.vars.update(hostvars)
            if constructed:
                self._set_composite_vars(compose, hostvars, name, strict=strict)
                self._add_host_to_composed_groups(groups, hostvars, name, strict=strict)
                self._add_host_to_keyed_groups(keyed_groups, hostvars, name, strict=strict)

        for group_name, hosts in members.items():
            for name in hosts:
                inventory.add_child(group_name, name)

    def _assign_names(self, records, sources, name_prefix):
        """[(inventory name, record)]: the first free name from ``sources`` per machine, machines
        taken in (provider, id) order so that the same pool always gives the same names."""
        taken = set()
        out = []
        for rec in sorted(records, key=lambda r: (str(r.get("provider")), str(r.get("id")))):
            name = None
            for source in sources:
                candidate = derive_name(rec, source, name_prefix)
                if candidate and candidate not in taken:
                    name = candidate
                    break
            if name is None:
                name = derive_name(rec, "id", name_prefix) or safe_host_name(rec.get("provider_id"))
                if not name or name in taken:
                    self.display.warning("baremetal.fleet.pool: skipping %s, its name %s is already taken"
                                         % (rec.get("provider_id"), name))
                    continue
            taken.add(name)
            out.append((name, rec))
        return out

    @staticmethod
    def _default_groups(rec):
        """Default group names (without group_prefix) of one record."""
        out = []
        if rec.get("state") == "unleased":
            out.append("unleased")
        elif is_leased(rec):
            out.append("leased")
        for attr in ("vendor", "size", "rack", "partition", "lease"):
            value = rec.get(attr)
            part = safe_group_part(value) if value else ""
            if part:
                out.append(part if part.startswith(attr + "_") else "%s_%s" % (attr, part))
        return out
