"""Lease planning without a server: members, hostnames, addresses, selectors, spread."""
import random

import pytest

from ansible_collections.baremetal.fleet.plugins.module_utils import leasing
from ansible_collections.baremetal.fleet.plugins.module_utils.pool import Machine, PoolConflict, PoolError


def test_members_from_count_and_template():
    members = leasing.wanted_members({"name": "demo", "count": 3, "hostname_template": "{name}-cp-{index}",
                                      "addresses": ["10.0.0.1", "10.0.0.2", "10.0.0.3"]})
    assert [(m.name, m.hostname, m.address) for m in members] == [
        ("demo-cp-0", "demo-cp-0", "10.0.0.1"), ("demo-cp-1", "demo-cp-1", "10.0.0.2"),
        ("demo-cp-2", "demo-cp-2", "10.0.0.3")]


def test_explicit_machines_keep_their_names_and_selectors():
    members = leasing.wanted_members({"name": "db", "size": "s", "machines": [
        {"name": "db-primary", "mac": "52-54-00-AA-00-01"}, {"vendor": "dell"}]})
    assert members[0].name == "db-primary" and members[0].mac == "52:54:00:aa:00:01"
    assert members[1].name == "db-1" and members[1].selectors == {"size": "s", "vendor": "dell"}


@pytest.mark.parametrize("params,text", [
    ({"name": "demo", "count": 2, "addresses": ["10.0.0.1"]}, "only 1 addresses"),
    ({"name": "demo", "count": 1, "addresses": ["10.0.0.300"]}, "is not an IP address"),
    ({"name": "de mo", "count": 1}, "is not a valid hostname"),
    ({"name": "demo", "count": 1, "hostname_template": "{name}_{index}"}, "is not a valid hostname"),
    ({"name": "demo", "count": 1, "hostname_template": "{nam}-{index}"}, "cannot be rendered"),
    ({"name": "demo", "machines": [{"name": "a"}, {"name": "a"}]}, "names machine a twice"),
    ({"name": "demo", "count": -1}, "must not be negative"),
    ({"name": "demo", "machines": [{"mac": "52:54:00:zz:00:01"}]}, "invalid MAC address"),
])
def test_bad_input_is_refused(params, text):
    with pytest.raises(PoolError, match=text):
        leasing.wanted_members(params)


def test_address_pool_skips_used_and_understands_ranges():
    assert list(leasing.address_pool("10.0.0.0/30", {"10.0.0.1"})) == ["10.0.0.2"]
    assert list(leasing.address_pool("10.0.0.5-10.0.0.7", set())) == ["10.0.0.5", "10.0.0.6", "10.0.0.7"]
    with pytest.raises(PoolError, match="is not a CIDR"):
        list(leasing.address_pool("ten/24", set()))


def _pool():
    return [Machine(id="m%d" % i, mac="52:54:00:00:00:%02x" % i, provider="metal", state="unleased",
                    size="small" if i < 6 else "large", rack="r%d" % (i % 3), vendor="Dell Inc.")
            for i in range(9)]


def test_spread_by_rack_picks_distinct_racks():
    planner = leasing.LeasePlanner(_pool(), spread_by="rack", rng=random.Random(1))
    members = leasing.wanted_members({"name": "cp", "count": 3, "size": "small"})
    planner.check_feasible(members, "cp")
    picked = [planner.pick(m) for m in members]
    assert len(set(m.rack for m in picked)) == 3 and all(m.size == "small" for m in picked)


def test_spread_never_picks_a_machine_whose_rack_is_unknown():
    pool = _pool()
    for machine in pool[:6]:
        machine.rack = ""
    planner = leasing.LeasePlanner(pool, spread_by="rack", rng=random.Random(2))
    members = leasing.wanted_members({"name": "cp", "count": 3})
    planner.check_feasible(members, "cp")
    picked = [planner.pick(m) for m in members]
    assert sorted(m.rack for m in picked) == ["r0", "r1", "r2"]


def test_spread_by_rack_fails_clearly_when_racks_run_out():
    planner = leasing.LeasePlanner(_pool(), spread_by="rack", taken_values={"r0"})
    with pytest.raises(PoolConflict) as err:
        planner.check_feasible(leasing.wanted_members({"name": "cp", "count": 3}), "cp")
    assert "needs 3 distinct rack value(s)" in str(err.value) and "already used by the lease: r0" in str(err.value)


def test_not_enough_matching_machines():
    planner = leasing.LeasePlanner(_pool())
    with pytest.raises(PoolConflict, match="needs 4 more machine.s. matching size=large but the unleased pool has only 3"):
        planner.check_feasible(leasing.wanted_members({"name": "w", "count": 4, "size": "large"}), "w")
