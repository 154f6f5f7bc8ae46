"""Hostile and racing callers against the sim lab: a wipe never touches a disk it does not own,
addresses are never shared, one member name means one machine, absurd counts fail at once."""
import threading
import time
import tracemalloc

import pytest

from ansible_collections.baremetal.fleet.plugins.module_utils import leasing, pool, provisioning
from ansible_collections.baremetal.fleet.plugins.module_utils.pool import PoolConflict, PoolError

from labhelp import lease_params, provider, unique, wait_for

pytestmark = pytest.mark.lab
PROVIDERS = ["plunder", "metal"]


@pytest.fixture(scope="module")
def big_lab(tmp_path_factory):
    """A sim lab with room for the race probes (plunder releases leave the loop)."""
    from fleetlab.testing import LabServer

    server = LabServer(state_dir=str(tmp_path_factory.mktemp("racelab")), machines=150)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _deployments_by_address(prov):
    out = {}
    for dep in prov.client.deployments():
        out.setdefault((dep.get("config") or {}).get("address"), []).append(dep["mac"])
    return out


def _disk_state(lab, mac):
    import sqlite3

    with sqlite3.connect(lab.pool_path) as db:
        return db.execute("SELECT disk_state, state FROM machines WHERE mac=?", (mac,)).fetchone()


# --- addresses -------------------------------------------------------------------------------

def test_duplicate_addresses_in_one_task_are_refused():
    params = lease_params("plunder", "dup", count=2, addresses=["10.77.9.7", "10.77.9.7"])
    with pytest.raises(PoolError, match="gives address 10.77.9.7 to both dup-0 and dup-1"):
        leasing.wanted_members(params)
    machines = {"name": "dup", "machines": [{"address": "10.77.9.8"}, {"address": "10.77.9.8"}]}
    with pytest.raises(PoolError, match="one address, one machine"):
        leasing.wanted_members(machines)


def test_concurrent_leases_over_one_range_never_share_an_address(big_lab):
    """The collision probe: 30 callers at once over a range of 10 addresses."""
    prov = provider(big_lab, "plunder")
    wait_for(lambda: len(prov.list_machines(status="unleased")) >= 100)
    rng = "10.77.61.1-10.77.61.10"
    results, errors = [], []

    def one(i):
        try:
            results.append(leasing.ensure_present(provider(big_lab, "plunder"),
                                                  lease_params("plunder", "rng%02d" % i, count=1, address_range=rng)))
        except PoolError as err:
            errors.append(str(err))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    in_range = dict((a, macs) for a, macs in _deployments_by_address(prov).items() if a and a.startswith("10.77.61."))
    shared = dict((a, macs) for a, macs in in_range.items() if len(macs) > 1)
    print("range probe: %d leased, %d refused, %d addresses used, shared %s"
          % (len(results), len(errors), len(in_range), shared))
    assert shared == {}
    assert len(results) == len(in_range) == 10
    assert all("no free address left" in e or "taken" in e for e in errors), errors


def test_an_address_another_deployment_holds_is_refused(big_lab):
    prov = provider(big_lab, "plunder")
    first = leasing.ensure_present(prov, lease_params("plunder", unique("own"), count=1, addresses=["10.77.62.5"]))
    assert first["machines"][0]["address"] == "10.77.62.5"
    with pytest.raises(PoolConflict, match="10.77.62.5 .* already used by another deployment"):
        leasing.ensure_present(prov, lease_params("plunder", unique("thief"), count=1, addresses=["10.77.62.5"]))


# --- the wipe --------------------------------------------------------------------------------

def test_wipe_refuses_an_address_shared_with_another_lease(big_lab):
    """Reproduction of the destroyed-neighbour defect: lease c00 and a later deployment of
    another lease on c00's address (as the unreserved range used to produce). The wipe of c00
    must run nothing: neither disk is touched, both deployments stay."""
    prov = provider(big_lab, "plunder")
    victim_lease = unique("c00")
    mine = leasing.ensure_present(prov, lease_params("plunder", victim_lease, count=1, addresses=["10.77.63.7"]))
    mine_mac = mine["machines"][0]["mac"]
    other = [m for m in prov.list_machines(status="unleased") if prov.is_candidate(m)][0]
    prov.client.create_deployment(other.mac, "preseed", "10.77.63.7", unique("c05") + "-0")  # the old race's result
    assert wait_for(lambda: prov.probe_machine(prov.get_machine(other.mac))[0] == pool.PROVISIONED, timeout=30)
    assert wait_for(lambda: prov.probe_machine(prov.get_machine(mine_mac))[0] == pool.PROVISIONED, timeout=30)
    out = provisioning.wipe(prov, {"name": victim_lease, "poll_interval": 0.3})
    assert out["failed_machines"] == ["%s-0" % victim_lease]
    assert "also the address of %s" % other.mac in out["machines"][0]["error"]
    assert _disk_state(big_lab, other.mac)[0] != "blank" and _disk_state(big_lab, mine_mac)[0] != "blank"
    assert set(_deployments_by_address(prov)["10.77.63.7"]) == {mine_mac, other.mac}
    # once the address is its own again, the wipe runs, and deletes by MAC: the other stays
    prov.client.delete_deployment(other.mac)
    done = provisioning.wipe(prov, {"name": victim_lease, "poll_interval": 0.3, "wait": True, "wait_timeout": 60})
    assert done["failed_machines"] == [] and done["changed"]
    assert _disk_state(big_lab, mine_mac)[0] == "blank"


def test_a_host_without_the_mac_refuses_the_disk_wipe(big_lab):
    """The wipe command itself proves the host: run at another machine's address, it does not dd."""
    from ansible_collections.baremetal.fleet.plugins.module_utils.plunder import WIPE_DEPLOYMENT, guarded_wipe_command

    prov = provider(big_lab, "plunder")
    name = unique("host")
    got = leasing.ensure_present(prov, lease_params("plunder", name, count=2))
    (a, b) = got["machines"]
    for m in (a, b):
        assert wait_for(lambda m=m: prov.probe_machine(prov.get_machine(m["mac"]))[0] == pool.PROVISIONED, 30)
    prov.client.delete_parlay_logs(a["address"])
    prov.client.parlay(WIPE_DEPLOYMENT, a["address"], [
        {"name": "wipe", "type": "command", "timeout": 0, "command": guarded_wipe_command(b["mac"]),
         "commandSudo": "root"}])
    log = prov._wait_log(a["address"], 20)
    assert log["state"] == "Failed" and "exited with status 1" in log["entries"][-1]["error"]
    assert _disk_state(big_lab, a["mac"])[0] != "blank" and _disk_state(big_lab, b["mac"])[0] != "blank"
    leasing.ensure_absent(prov, {"name": name})


def test_ownership_is_exact(big_lab):
    prov = provider(big_lab, "plunder")
    with pytest.raises(PoolError, match="cannot tell leases apart"):
        leasing.ensure_present(prov, lease_params("plunder", "n", count=1, hostname_template="{name}{index}"))
    base = unique("own")
    leasing.ensure_present(prov, lease_params("plunder", base + "-1", count=1))
    # lease BASE must not claim lease BASE-1's member BASE-1-0
    assert prov.lease_members(base, template="{name}-{index}") == []
    out = provisioning.wipe(prov, {"name": base, "poll_interval": 0.3})
    assert not out["changed"] and "has no machines" in out["msg"]
    assert [m.lease_name for m in prov.lease_members(base + "-1")] == [base + "-1-0"]
    leasing.ensure_absent(prov, {"name": base + "-1"})


# --- one name, one machine -------------------------------------------------------------------

@pytest.mark.parametrize("backend", PROVIDERS)
def test_same_member_name_from_two_callers_at_once_gives_one_machine(big_lab, backend):
    """The pair probe: two callers lease name=same count=1 at the same instant, 8 times."""
    doubles = 0
    for trial in range(8):
        name = unique("same")
        params = lease_params(backend, name, count=1)
        barrier = threading.Barrier(2)
        outs = []

        def one():
            prov = provider(big_lab, backend)
            barrier.wait()
            outs.append(leasing.ensure_present(prov, dict(params)))

        threads = [threading.Thread(target=one) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        prov = provider(big_lab, backend)
        holders = prov.lease_members(name, template="{name}-{index}", project=params["project"])
        doubles += len(holders) > 1
        assert len(holders) == 1, (trial, [(m.mac, m.lease_name) for m in holders])
        assert len(outs) == 2
        assert set(o["machines"][0]["mac"] for o in outs) == {holders[0].mac}
        leasing.ensure_absent(prov, dict(params, state="absent"))
    assert doubles == 0


@pytest.mark.parametrize("backend", PROVIDERS)
def test_extra_members_are_reported_on_every_run(big_lab, backend):
    prov = provider(big_lab, backend)
    name = unique("xtra")
    params = lease_params(backend, name, count=1)
    first = leasing.ensure_present(prov, params)
    kept = first["machines"][0]["mac"]
    other = [m for m in prov.list_machines(status="unleased") if prov.is_candidate(m)][0]
    # what an old collection (or another tool) left behind: a second machine under the same member name
    prov.lease_machine(other, name, name + "-0", name + "-0",
                       address="10.77.64.9" if backend == "plunder" else None, image=params["image"],
                       options=leasing._provider_options(params))
    for _ in range(2):
        again = leasing.ensure_present(prov, params)
        assert not again["changed"]
        assert again["machines"][0]["mac"] == kept
        assert any("held by 2 machines" in w and other.mac in w for w in again["warnings"]), again["warnings"]
    leasing.ensure_absent(prov, dict(params, state="absent"))


# --- sizes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("count", [1000000000, leasing.MAX_MEMBERS + 1])
def test_absurd_counts_fail_at_once_without_building_members(big_lab, count):
    prov = provider(big_lab, "metal")
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        with pytest.raises(PoolError, match="more than one lease may hold"):
            leasing.ensure_present(prov, lease_params("metal", unique("huge"), count=count))
        _cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - t0 < 2
    assert peak < 10 * 1024 * 1024


@pytest.mark.parametrize("facts,message", [
    ({"labels": "x"}, "labels must be a mapping"),
    ({"rack": ["r1", "r2"]}, "rack must be a single value"),
    ("rack-1", "must be a mapping of rack"),
])
def test_malformed_hardware_maps_are_clear_errors(facts, message):
    machine = pool.Machine(id="52:54:00:00:00:01", mac="52:54:00:00:00:01", provider="plunder")
    with pytest.raises(PoolError, match=message):
        leasing.apply_hardware([machine], {"52:54:00:00:00:01": facts})
