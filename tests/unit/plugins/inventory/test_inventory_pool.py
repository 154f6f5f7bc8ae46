"""Unit tests of the baremetal.fleet.pool inventory plugin: the pure parts (naming, hostvars,
groups, filters, constructed options, cache, errors) against a strict test double of the
Provider. The same plugin against the running lab is tested in tests/integration/."""
import json
import os
import socket
import sys

import pytest

from ansible.errors import AnsibleParserError
from ansible.inventory.data import InventoryData
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader, inventory_loader

COLLECTIONS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), *([".."] * 4),
                                            "build", "collections"))


def _install_collection_loader():
    """Plugins are found through Ansible's collection loader (as ansible-inventory does). If
    ``ansible_collections`` was already imported as a plain namespace package by an earlier test
    module, the loader cannot take it over: drop those modules so they are imported through it."""
    if any(type(finder).__name__ == "_AnsibleCollectionFinder" for finder in sys.meta_path):
        return  # installed already (before anything imported the collection)
    root = sys.modules.get("ansible_collections")
    if root is not None and "Ansible" not in type(getattr(root, "__loader__", None)).__name__:
        for name in [n for n in sys.modules if n == "ansible_collections" or n.startswith("ansible_collections.")]:
            del sys.modules[name]
    init_plugin_loader([COLLECTIONS])


_install_collection_loader()

from ansible_collections.baremetal.fleet.plugins.inventory import pool as plugin_mod  # noqa: E402
from ansible_collections.baremetal.fleet.plugins.module_utils import pool  # noqa: E402


class StrictFakeProvider(pool.Provider):
    """Test double of a pool Provider: serves a fixed machine list with the real status and filter
    semantics, records every call, and fails the test on anything the plugin must not do."""

    name = "fake"

    def __init__(self, machines, fail=None):
        self.machines = list(machines)
        self.fail = fail
        self.calls = []

    def list_machines(self, status="all", filters=None):
        assert status in ("unleased", "leased", "all"), status
        filters = dict(filters or {})
        unknown = set(filters) - set(plugin_mod.FILTER_KEYS)
        assert not unknown, "unexpected filter keys %s" % unknown
        self.calls.append((status, filters))
        if self.fail is not None:
            raise self.fail
        if status == "unleased":
            chosen = [m for m in self.machines if m.state == pool.UNLEASED]
        elif status == "leased":
            chosen = [m for m in self.machines if m.lease_name is not None
                      or m.state in (pool.LEASED, pool.INSTALLING, pool.PROVISIONED)]
        else:
            chosen = list(self.machines)
        return pool.filter_machines(chosen, filters)

    def get_machine(self, ref):
        raise AssertionError("the inventory plugin must list, not get machines one by one")

    def _never(self, *args, **kwargs):
        raise AssertionError("the inventory plugin only reads the pool")

    lease_members = check_image = lease_machine = release_machine = wipe_machine = _never
    reinstall_machine = probe_machine = back_in_loop = is_owned = _never


def free(i, **kw):
    mac = "52:54:00:00:01:%02x" % i
    args = dict(id=mac, mac=mac, provider="plunder", state=pool.UNLEASED, vendor="Dell Inc.",
                size="v1-small-x86", partition="mini-lab", rack="rack-%02d" % (i % 2 + 1),
                labels={"gpu": "no"}, last_seen="2026-11-22T00:00:%02dZ" % i)
    args.update(kw)
    return pool.Machine(**args)


def taken(i, lease="demo", **kw):
    mac = "52:54:00:00:02:%02x" % i
    args = dict(id=mac, mac=mac, provider="plunder", state=pool.PROVISIONED, vendor="QEMU virtual NIC",
                size="v1-large-x86", partition="mini-lab", rack="rack-01", labels={},
                lease_name="%s-%d" % (lease, i), hostname="%s-%d" % (lease, i), lease=lease,
                address="10.0.0.%d" % (10 + i), image="debian-12", owned=True, last_event="Phoned Home")
    args.update(kw)
    return pool.Machine(**args)


POOL = [free(0), free(1), free(2, vendor="Super Micro Computer, Inc.", size="v1-medium-x86",
                             labels={"gpu": "yes"}),
        taken(0), taken(1),
        free(3, state=pool.WIPING)]


def write_config(tmp_path, text, name="lab.pool.yml"):
    path = tmp_path / name
    path.write_text("plugin: baremetal.fleet.pool\nprovider: plunder\nplunder_config: /nonexistent/plunderclient.yaml\n"
                    + text)
    return str(path)


def run(monkeypatch, tmp_path, text="", provider=None, cache=True, name="lab.pool.yml"):
    """Parse one source as ansible-inventory does; returns (InventoryData, provider, params seen)."""
    provider = provider if provider is not None else StrictFakeProvider(POOL)
    seen = []

    def factory(params):
        seen.append(dict(params))
        return provider

    monkeypatch.setattr(plugin_mod, "provider_from_params", factory)
    path = write_config(tmp_path, text, name=name)
    plugin = inventory_loader.get("baremetal.fleet.pool")
    assert plugin.verify_file(path)
    inventory = InventoryData()
    plugin.parse(inventory, DataLoader(), path, cache=cache)
    if getattr(plugin, "_cache", None) is not None:  # as InventoryManager.parse_source does
        plugin.update_cache_if_changed()
    return inventory, provider, seen


def groups_of(inventory):
    return dict((name, sorted(h.name for h in g.get_hosts())) for name, g in inventory.groups.items()
                if name not in ("all", "ungrouped"))


def test_verify_file_accepts_only_pool_configs(tmp_path):
    plugin = inventory_loader.get("baremetal.fleet.pool")
    for name, ok in (("fleet.pool.yml", True), ("fleet.pool.yaml", True), ("pool.yml", True),
                     ("pool.yaml", True), ("fleet.yml", False), ("hosts", False), ("mypool.yml", False)):
        path = tmp_path / name
        path.write_text("plugin: baremetal.fleet.pool\n")
        assert plugin.verify_file(str(path)) is ok, name
    assert plugin.verify_file(str(tmp_path / "missing.pool.yml")) is False


def test_default_lists_unleased_with_mac_names_prefixed_vars_and_groups(monkeypatch, tmp_path):
    inventory, provider, seen = run(monkeypatch, tmp_path)
    assert provider.calls == [("unleased", {})]
    assert sorted(inventory.hosts) == ["m-52-54-00-00-01-00", "m-52-54-00-00-01-01", "m-52-54-00-00-01-02"]
    assert groups_of(inventory) == {
        "unleased": ["m-52-54-00-00-01-00", "m-52-54-00-00-01-01", "m-52-54-00-00-01-02"],
        "leased": [],
        "vendor_dell_inc": ["m-52-54-00-00-01-00", "m-52-54-00-00-01-01"],
        "vendor_super_micro_computer_inc": ["m-52-54-00-00-01-02"],
        "size_v1_small_x86": ["m-52-54-00-00-01-00", "m-52-54-00-00-01-01"],
        "size_v1_medium_x86": ["m-52-54-00-00-01-02"],
        "rack_01": ["m-52-54-00-00-01-00", "m-52-54-00-00-01-02"],
        "rack_02": ["m-52-54-00-00-01-01"],
        "partition_mini_lab": ["m-52-54-00-00-01-00", "m-52-54-00-00-01-01", "m-52-54-00-00-01-02"],
    }
    hostvars = inventory.get_host("m-52-54-00-00-01-02").get_vars()
    assert hostvars["fleet_id"] == "52:54:00:00:01:02"
    assert hostvars["fleet_mac"] == "52:54:00:00:01:02"
    assert hostvars["fleet_provider"] == "plunder"
    assert hostvars["fleet_provider_id"] == "plunder://52:54:00:00:01:02"
    assert hostvars["fleet_state"] == "unleased"
    assert hostvars["fleet_vendor"] == "Super Micro Computer, Inc."
    assert hostvars["fleet_size"] == "v1-medium-x86"
    assert hostvars["fleet_partition"] == "mini-lab"
    assert hostvars["fleet_rack"] == "rack-01"
    assert hostvars["fleet_labels"] == {"gpu": "yes"}
    assert hostvars["fleet_last_seen"] == "2026-11-22T00:00:02Z"
    assert hostvars["fleet_lease_name"] is None
    assert hostvars["fleet_owned"] is False
    assert "ansible_host" not in hostvars  # no address is known for a machine in the loop
    # connection options reach the factory as a plain dict, with the documented defaults
    assert seen[0]["provider"] == "plunder"
    assert seen[0]["validate_certs"] is True


def test_status_all_names_leased_machines_by_their_lease_hostname(monkeypatch, tmp_path):
    inventory, provider, _seen = run(monkeypatch, tmp_path, "status: all\n")
    assert provider.calls == [("all", {})]
    assert "demo-0" in inventory.hosts and "demo-1" in inventory.hosts
    groups = groups_of(inventory)
    assert groups["leased"] == ["demo-0", "demo-1"]
    assert groups["lease_demo"] == ["demo-0", "demo-1"]
    # a machine being wiped is listed with status all but is neither leased nor unleased
    assert "m-52-54-00-00-01-03" in inventory.hosts
    assert "m-52-54-00-00-01-03" not in groups["leased"] + groups["unleased"]
    demo = inventory.get_host("demo-1").get_vars()
    assert demo["ansible_host"] == "10.0.0.11"
    assert demo["fleet_address"] == "10.0.0.11"
    assert demo["fleet_lease"] == "demo"
    assert demo["fleet_lease_name"] == "demo-1"
    assert demo["fleet_state"] == "provisioned"
    assert demo["fleet_owned"] is True


def test_status_leased_only(monkeypatch, tmp_path):
    inventory, provider, _seen = run(monkeypatch, tmp_path, "status: leased\n")
    assert provider.calls == [("leased", {})]
    assert sorted(inventory.hosts) == ["demo-0", "demo-1"]


def test_filters_are_normalised_and_passed_to_the_provider(monkeypatch, tmp_path):
    text = ("filters:\n  size: [v1-small-x86, v1-medium-x86]\n  rack: [rack-01]\n  labels: {gpu: 'yes'}\n"
            "  vendor: super\n  lease_name: ''\n")
    inventory, provider, _seen = run(monkeypatch, tmp_path, text)
    assert provider.calls == [("unleased", {"size": ["v1-small-x86", "v1-medium-x86"], "rack": "rack-01",
                                            "labels": {"gpu": "yes"}, "vendor": "super"})]
    assert sorted(inventory.hosts) == ["m-52-54-00-00-01-02"]


@pytest.mark.parametrize("text,needle", [
    ("filters:\n  colour: red\n", "unknown filter 'colour'"),
    ("filters:\n  labels: [a]\n", "filter labels must be a dictionary"),
    ("hostnames: [hostname, serial]\n", "unknown hostnames entry 'serial'"),
])
def test_bad_options_fail_clearly(monkeypatch, tmp_path, text, needle):
    provider = StrictFakeProvider(POOL)
    with pytest.raises(AnsibleParserError) as err:
        run(monkeypatch, tmp_path, text, provider=provider)
    assert needle in str(err.value)
    assert provider.calls == []


def test_status_outside_choices_is_refused(monkeypatch, tmp_path):
    with pytest.raises(Exception) as err:
        run(monkeypatch, tmp_path, "status: free\n")
    assert "status" in str(err.value)


def test_host_names_are_sanitised_unique_and_fall_back(monkeypatch, tmp_path):
    machines = [
        taken(0, hostname="web 1:prod"),
        # same lease hostname twice: the second (in id order) falls back to its lease name, then MAC
        taken(1, hostname="dup", lease_name="dup"),
        taken(2, hostname="dup", lease_name="dup"),
        pool.Machine(id="0b6a6f3c-7a41-4a5e-9d1c-000000000001", mac="", provider="metal", state=pool.UNLEASED),
    ]
    inventory, _p, _s = run(monkeypatch, tmp_path, "status: all\n", provider=StrictFakeProvider(machines))
    assert sorted(inventory.hosts) == ["dup", "m-0b6a6f3c-7a41-4a5e-9d1c-000000000001", "m-52-54-00-00-02-02",
                                       "web-1-prod"]
    assert inventory.get_host("dup").get_vars()["fleet_mac"] == "52:54:00:00:02:01"


def test_hostnames_order_and_prefixes_are_configurable(monkeypatch, tmp_path):
    text = ("status: all\nhostnames: [id]\nhostname_prefix: node-\nvars_prefix: pool_\n"
            "group_prefix: fleet_\n")
    inventory, _p, _s = run(monkeypatch, tmp_path, text)
    assert "node-52-54-00-00-02-00" in inventory.hosts  # even leased machines: id first
    hostvars = inventory.get_host("node-52-54-00-00-02-00").get_vars()
    assert hostvars["pool_lease_name"] == "demo-0"
    assert not [k for k in hostvars if k.startswith("fleet_")]
    assert "fleet_leased" in inventory.groups and "fleet_rack_01" in inventory.groups
    assert "leased" not in inventory.groups


def test_default_groups_can_be_switched_off(monkeypatch, tmp_path):
    inventory, _p, _s = run(monkeypatch, tmp_path, "default_groups: false\n")
    assert groups_of(inventory) == {}
    assert len(inventory.hosts) == 3


def test_constructed_compose_groups_keyed_groups(monkeypatch, tmp_path):
    text = """status: all
compose:
  ansible_user: "'metal'"
  fleet_rack_number: fleet_rack.split('-')[1] | int
groups:
  gpu: fleet_labels.gpu | default('no') == 'yes'
  cluster_demo: fleet_lease == 'demo'
keyed_groups:
  - key: fleet_state
    prefix: state
  - key: fleet_labels
    prefix: label
  - key: fleet_image
    leading_separator: false
leading_separator: false
"""
    inventory, _p, _s = run(monkeypatch, tmp_path, text)
    groups = groups_of(inventory)
    assert groups["gpu"] == ["m-52-54-00-00-01-02"]
    assert groups["cluster_demo"] == ["demo-0", "demo-1"]
    assert groups["state_unleased"] == ["m-52-54-00-00-01-00", "m-52-54-00-00-01-01", "m-52-54-00-00-01-02"]
    assert groups["state_wiping"] == ["m-52-54-00-00-01-03"]
    assert groups["label_gpu_yes"] == ["m-52-54-00-00-01-02"]
    assert groups["debian_12"] == ["demo-0", "demo-1"]  # no prefix, no leading separator
    hostvars = inventory.get_host("demo-0").get_vars()
    assert hostvars["ansible_user"] == "metal"
    assert hostvars["fleet_rack_number"] == 1


def test_strict_turns_template_errors_into_failures(monkeypatch, tmp_path):
    text = "compose:\n  broken: fleet_no_such_var.attr\n"
    inventory, _p, _s = run(monkeypatch, tmp_path, text + "strict: false\n")
    assert "broken" not in inventory.get_host("m-52-54-00-00-01-00").get_vars()
    with pytest.raises(Exception) as err:
        run(monkeypatch, tmp_path, text + "strict: true\n")
    assert "broken" in str(err.value)


CACHE = "cache: true\ncache_plugin: ansible.builtin.jsonfile\ncache_connection: {dir}\n"


def hosts_and_vars(inventory):
    return dict((name, dict((k, v) for k, v in h.get_vars().items() if k != "inventory_dir"))
                for name, h in inventory.hosts.items())


def test_cache_hit_makes_no_provider_call(monkeypatch, tmp_path):
    cache_dir = tmp_path / "cache"
    text = CACHE.format(dir=cache_dir) + "status: all\n"
    first, provider, _s = run(monkeypatch, tmp_path, text)
    assert len(provider.calls) == 1
    files = os.listdir(str(cache_dir))
    assert len(files) == 1  # one entry for this source

    # the server is "down" now: any call fails the test
    down = StrictFakeProvider(POOL, fail=AssertionError("cache hit expected, the provider was called"))
    second, down, _s = run(monkeypatch, tmp_path, text, provider=down)
    assert down.calls == []
    assert hosts_and_vars(second) == hosts_and_vars(first)
    assert groups_of(second) == groups_of(first)


def test_cache_is_one_entry_per_source_and_keyed_by_query(monkeypatch, tmp_path):
    cache_dir = tmp_path / "cache"
    base = CACHE.format(dir=cache_dir)
    run(monkeypatch, tmp_path, base, name="a.pool.yml")
    run(monkeypatch, tmp_path, base, name="b.pool.yml")
    assert len(os.listdir(str(cache_dir))) == 2

    # a changed filter does not reuse data fetched for another query
    _inv, provider, _s = run(monkeypatch, tmp_path, base + "filters: {rack: rack-02}\n", name="a.pool.yml")
    assert provider.calls == [("unleased", {"rack": "rack-02"})]
    assert len(os.listdir(str(cache_dir))) == 2
    # ... and that result is now the cached one for a.pool.yml
    inventory, provider, _s = run(monkeypatch, tmp_path, base + "filters: {rack: rack-02}\n", name="a.pool.yml")
    assert provider.calls == [] and sorted(inventory.hosts) == ["m-52-54-00-00-01-01"]


def test_flush_cache_refetches_and_rewrites(monkeypatch, tmp_path):
    cache_dir = tmp_path / "cache"
    text = CACHE.format(dir=cache_dir)
    run(monkeypatch, tmp_path, text)
    smaller = StrictFakeProvider([free(0)])
    inventory, smaller, _s = run(monkeypatch, tmp_path, text, provider=smaller, cache=False)  # --flush-cache
    assert len(smaller.calls) == 1 and sorted(inventory.hosts) == ["m-52-54-00-00-01-00"]
    again, unused, _s = run(monkeypatch, tmp_path, text, provider=StrictFakeProvider([]))
    assert unused.calls == [] and sorted(again.hosts) == ["m-52-54-00-00-01-00"]


def test_cache_never_stores_secrets(monkeypatch, tmp_path):
    cache_dir = tmp_path / "cache"
    secret = "s3cr3t-hmac-key-value"
    text = CACHE.format(dir=cache_dir) + "api_hmac: %s\napi_token: tok-%s\n" % (secret, secret)
    _inv, _p, seen = run(monkeypatch, tmp_path, text)
    assert seen[0]["api_hmac"] == secret  # it does reach the backend
    (entry,) = os.listdir(str(cache_dir))
    content = (cache_dir / entry).read_text()
    assert secret not in content
    data = json.loads(content)
    data = json.loads(data.get("__payload__", content))  # ansible-core 2.19 wraps cache values
    assert data["query"]["status"] == "unleased" and len(data["machines"]) == 3
    assert "api_hmac" not in data["query"] and "api_token" not in data["query"]


def test_auth_error_names_url_and_hides_secrets(monkeypatch, tmp_path):
    secret = "very-secret-hmac"
    fail = pool.PoolAuthError("find machines: access denied (HTTP 403) for key %s" % secret,
                              url="http://admin:pw@127.0.0.1:8080/metal/v1/machine/find", status=403)
    with pytest.raises(AnsibleParserError) as err:
        run(monkeypatch, tmp_path, "api_hmac: %s\n" % secret, provider=StrictFakeProvider(POOL, fail=fail))
    msg = str(err.value)
    assert "HTTP 403" in msg
    assert "http://***@127.0.0.1:8080/metal/v1/machine/find" in msg
    assert secret not in msg and "pw@" not in msg


def _closed_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_unreachable_server_error_names_the_url(tmp_path):
    """Through the real backend factory and HTTP client (no test double): nothing listens."""
    url = "http://127.0.0.1:%d/metal" % _closed_port()
    path = tmp_path / "down.pool.yml"
    path.write_text("plugin: baremetal.fleet.pool\nprovider: metal\napi_url: %s\napi_hmac: hidden-key-123\n"
                    "api_retries: 0\napi_timeout: 2\n" % url)
    plugin = inventory_loader.get("baremetal.fleet.pool")
    with pytest.raises(AnsibleParserError) as err:
        plugin.parse(InventoryData(), DataLoader(), str(path))
    msg = str(err.value)
    assert url in msg
    assert "hidden-key-123" not in msg


def test_redact():
    assert plugin_mod.redact("GET https://u:p@h/x failed, key abcd1234", ["abcd1234", None, ""]) == \
        "GET https://***@h/x failed, key ********"


def test_hosts_and_groups_are_added_in_sorted_order(monkeypatch, tmp_path):
    machines = [free(5, vendor="Zeta"), free(1, vendor="Alpha"), free(3, vendor="Mid")]
    inventory, _p, _s = run(monkeypatch, tmp_path, "", provider=StrictFakeProvider(machines))
    assert list(inventory.hosts) == sorted(inventory.hosts)
    names = [n for n in inventory.groups if n not in ("all", "ungrouped")]
    assert names[:2] == ["unleased", "leased"] and names[2:] == sorted(names[2:])
    assert [h.name for h in inventory.groups["unleased"].hosts] == sorted(inventory.hosts)


def test_invalid_vars_prefix_is_refused(monkeypatch, tmp_path):
    with pytest.raises(AnsibleParserError) as err:
        run(monkeypatch, tmp_path, "vars_prefix: 'fleet-'\n")
    assert "vars_prefix" in str(err.value)


def test_host_from_an_earlier_source_keeps_its_vars(monkeypatch, tmp_path):
    """A host another source defined already is updated with set_variable's merge rules."""
    monkeypatch.setattr(plugin_mod, "provider_from_params", lambda params: StrictFakeProvider([free(0)]))
    path = write_config(tmp_path, "")
    inventory = InventoryData()
    inventory.add_host("m-52-54-00-00-01-00")
    inventory.set_variable("m-52-54-00-00-01-00", "ansible_user", "root")
    inventory.set_variable("m-52-54-00-00-01-00", "fleet_labels", {"site": "a"})
    plugin = inventory_loader.get("baremetal.fleet.pool")
    plugin.parse(inventory, DataLoader(), path)
    hostvars = inventory.get_host("m-52-54-00-00-01-00").get_vars()
    assert hostvars["ansible_user"] == "root"
    assert hostvars["fleet_labels"] == {"gpu": "no"}  # default hash_behaviour: replace
    assert hostvars["fleet_mac"] == "52:54:00:00:01:00"


def test_expired_cache_entry_is_refetched(monkeypatch, tmp_path):
    import time

    text = CACHE.format(dir=tmp_path / "cache") + "cache_timeout: 1\n"
    run(monkeypatch, tmp_path, text)
    time.sleep(1.5)
    inventory, provider, _s = run(monkeypatch, tmp_path, text, provider=StrictFakeProvider([free(7)]))
    assert len(provider.calls) == 1 and sorted(inventory.hosts) == ["m-52-54-00-00-01-07"]


@pytest.mark.parametrize("damage", ["short row", "labels not a dict", "rows not a list"])
def test_malformed_cache_entry_is_a_miss(monkeypatch, tmp_path, damage):
    """An entry with the right fingerprint but rows of another shape is fetched again and rewritten,
    not a failure of every later run until --flush-cache."""
    import json

    cache_dir = tmp_path / "cache"
    text = CACHE.format(dir=cache_dir) + "status: all\n"
    first, _p, _s = run(monkeypatch, tmp_path, text)
    (entry,) = [cache_dir / f for f in os.listdir(str(cache_dir))]
    wrapper = json.loads(entry.read_text())  # ansible's jsonfile cache wraps the value
    data = json.loads(wrapper["__payload__"]) if "__payload__" in wrapper else wrapper
    if damage == "short row":
        data["machines"][0] = data["machines"][0][:3]
    elif damage == "labels not a dict":
        data["machines"][0][list(plugin_mod.FIELDS).index("labels")] = "x"
    else:
        data["machines"] = {"oops": 1}
    if "__payload__" in wrapper:
        wrapper["__payload__"] = json.dumps(data)
    else:
        wrapper = data
    entry.write_text(json.dumps(wrapper))
    second, provider, _s = run(monkeypatch, tmp_path, text)
    assert len(provider.calls) == 1
    assert hosts_and_vars(second) == hosts_and_vars(first)
    third, quiet, _s = run(monkeypatch, tmp_path, text,
                           provider=StrictFakeProvider(POOL, fail=AssertionError("rewritten entry expected")))
    assert quiet.calls == [] and hosts_and_vars(third) == hosts_and_vars(first)
