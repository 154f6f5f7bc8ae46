"""Leasing, provisioning and wiping through module_utils against the sim lab."""
import pytest

from ansible_collections.baremetal.fleet.plugins.module_utils import leasing, pool, provisioning
from ansible_collections.baremetal.fleet.plugins.module_utils.pool import PoolConflict, PoolError

from labhelp import lease_params, provider, unique, wait_for

pytestmark = pytest.mark.lab
PROVIDERS = ["plunder", "metal"]


def _members(prov, name):
    return sorted(m.lease_name for m in prov.lease_members(name, template="{name}-{index}",
                                                            project=lease_params("metal", name)["project"]))


@pytest.mark.parametrize("backend", PROVIDERS)
def test_lease_is_idempotent_and_released(fresh_lab, backend):
    # own lab: plunder releases without wiping, released machines keep their OS and leave the loop
    prov = provider(fresh_lab, backend)
    wait_for(lambda: prov.list_machines(status="unleased"))
    name = unique("idem")
    params = lease_params(backend, name, count=3, state="present")
    first = leasing.ensure_present(prov, params)
    assert first["changed"] and len(first["machines"]) == 3
    assert [m["name"] for m in first["machines"]] == ["%s-0" % name, "%s-1" % name, "%s-2" % name]
    for item in first["machines"]:
        assert item["mac"] and item["address"] and item["hostname"] == item["name"]
        assert item["provider_id"].startswith(backend + "://") and item["state"] in ("leased", "installing")
    assert len(set(m["mac"] for m in first["machines"])) == 3
    assert len(set(m["address"] for m in first["machines"])) == 3
    second = leasing.ensure_present(prov, params)
    assert not second["changed"]
    assert sorted(m["mac"] for m in second["machines"]) == sorted(m["mac"] for m in first["machines"])
    assert second["diff"]["before"] == second["diff"]["after"]
    # growing the lease leases only the new member
    grown = leasing.ensure_present(prov, dict(params, count=4))
    assert grown["changed"] and [m["name"] for m in grown["machines"] if m["changed"]] == ["%s-3" % name]
    # a lower count keeps the members beyond it and marks them, in check mode and with a new member too
    lower = leasing.ensure_present(prov, dict(params, count=2))
    assert not lower["changed"] and [m["name"] for m in lower["machines"] if m.get("surplus")] == \
        ["%s-2" % name, "%s-3" % name]
    assert "beyond what this task asks for" in lower["warnings"][0]
    mixed = leasing.ensure_present(prov, dict(params, count=2, machines=None), check_mode=True)
    assert [m["name"] for m in mixed["machines"] if m.get("surplus")] == ["%s-2" % name, "%s-3" % name]
    gone = leasing.ensure_absent(prov, params)
    assert gone["changed"] and len(gone["machines"]) == 4
    assert _members(prov, name) == []
    assert not leasing.ensure_absent(prov, params)["changed"]


@pytest.mark.parametrize("backend", PROVIDERS)
def test_members_named_first_go_first_and_a_removed_member_leaves_a_hole(fresh_lab, backend):
    """Scale in by name: drop_first picks the surplus; once it is released, the lower count keeps
    the others (no new lease for the freed index); a higher count fills the hole first."""
    prov = provider(fresh_lab, backend)
    wait_for(lambda: len(prov.list_machines(status="unleased")) >= 4)
    name = unique("hole")
    params = lease_params(backend, name, count=3, state="present")
    first = leasing.ensure_present(prov, params)
    macs = dict((m["name"], m["mac"]) for m in first["machines"])
    plan = leasing.ensure_present(prov, dict(params, count=2, drop_first=["%s-0" % name, "nosuch"]), check_mode=True)
    assert not plan["changed"]
    assert [m["name"] for m in plan["machines"] if m.get("surplus")] == ["%s-0" % name]
    assert [m["name"] for m in plan["machines"] if not m.get("surplus")] == ["%s-1" % name, "%s-2" % name]
    held = [m for m in prov.lease_members(name, template="{name}-{index}", project=params.get("project"))
            if m.lease_name == "%s-0" % name]
    prov.release_machine(held[0])
    kept = leasing.ensure_present(prov, dict(params, count=2))
    assert not kept["changed"] and not any(m.get("surplus") for m in kept["machines"])
    assert dict((m["name"], m["mac"]) for m in kept["machines"]) == {
        "%s-1" % name: macs["%s-1" % name], "%s-2" % name: macs["%s-2" % name]}
    grown = leasing.ensure_present(prov, dict(params, count=3))
    assert [m["name"] for m in grown["machines"] if m["changed"]] == ["%s-0" % name]
    leasing.ensure_absent(prov, params)


@pytest.mark.parametrize("backend", PROVIDERS)
def test_check_mode_predicts_and_writes_nothing(lab, backend):
    prov = provider(lab, backend)
    name = unique("chk")
    params = lease_params(backend, name, count=2)
    before = set(m.mac for m in prov.list_machines(status="unleased"))
    planned = leasing.ensure_present(prov, params, check_mode=True)
    assert planned["changed"] and all(m.get("planned") for m in planned["machines"])
    assert len(planned["diff"]["after"]["machines"]) == 2 and planned["diff"]["before"]["machines"] == {}
    assert _members(prov, name) == []
    after = set(m.mac for m in prov.list_machines(status="unleased"))
    assert {m["mac"] for m in planned["machines"]} <= before
    assert {m["mac"] for m in planned["machines"]} <= after


@pytest.mark.parametrize("backend", PROVIDERS)
def test_count_larger_than_pool_fails_before_writing(fresh_lab, backend):
    prov = provider(fresh_lab, backend)
    wait_for(lambda: prov.list_machines(status="unleased"))
    name = unique("big")
    with pytest.raises(PoolConflict) as err:
        leasing.ensure_present(prov, lease_params(backend, name, count=500))
    assert "needs 500 more machine(s)" in str(err.value) and "has only 24" in str(err.value)
    assert _members(prov, name) == []


def test_spread_by_rack_distinct_racks_or_clear_failure(fresh_lab):
    prov = provider(fresh_lab, "metal")
    wait_for(lambda: prov.list_machines(status="unleased"))
    racks = set(m.rack for m in prov.list_machines(status="unleased"))
    name = unique("cp")
    with pytest.raises(PoolConflict) as err:
        leasing.ensure_present(prov, lease_params("metal", name, count=len(racks) + 1, spread_by="rack"))
    assert "spread_by rack needs %d distinct rack" % (len(racks) + 1) in str(err.value)
    assert _members(prov, name) == []
    got = leasing.ensure_present(prov, lease_params("metal", name, count=len(racks), spread_by="rack"))
    assert len(set(m["rack"] for m in got["machines"])) == len(racks)
    leasing.ensure_absent(prov, lease_params("metal", name))


class FailingThirdLease:
    """Test double around a real provider: the third lease call asks the server for an
    image that does not exist, so the server itself refuses it."""

    def __init__(self, real, bad_image):
        self.real = real
        self.bad_image = bad_image
        self.calls = 0

    def __getattr__(self, attr):
        return getattr(self.real, attr)

    def lease_machine(self, machine, lease, member, hostname, address=None, image=None, options=None):
        self.calls += 1
        if self.calls == 3:
            image = self.bad_image
        return self.real.lease_machine(machine, lease, member, hostname, address=address, image=image,
                                       options=options)


@pytest.mark.parametrize("backend", PROVIDERS)
def test_half_failed_lease_is_rolled_back(fresh_lab, backend):
    real = provider(fresh_lab, backend)
    wait_for(lambda: real.list_machines(status="unleased"))
    wrapped = FailingThirdLease(real, "no-such-image")
    name = unique("half")
    with pytest.raises(PoolError) as err:
        leasing.ensure_present(wrapped, lease_params(backend, name, count=5), workers=1)
    text = str(err.value)
    assert "released again the 2 machine(s) leased in this run" in text
    assert "no-such-image" in text  # the server's own words
    assert _members(real, name) == []


@pytest.mark.parametrize("backend", PROVIDERS)
def test_provision_then_wipe_back_to_loop(lab, backend):
    prov = provider(lab, backend)
    name = unique("prov")
    params = lease_params(backend, name, count=2)
    leased = leasing.ensure_present(prov, params)
    macs = set(m["mac"] for m in leased["machines"])
    out = provisioning.provision(prov, {"name": name, "wait_timeout": 60, "poll_interval": 0.3,
                                        "project": params["project"]})
    assert out["failed_machines"] == [] and not out["changed"]
    for item in out["machines"]:
        assert item["state"] == pool.PROVISIONED and "provisioned" in item["phases"]
    again = provisioning.provision(prov, {"name": name, "wait_timeout": 60, "poll_interval": 0.3,
                                          "project": params["project"]})
    assert not again["changed"] and again["failed_machines"] == []
    wiped = provisioning.wipe(prov, {"name": name, "wait": True, "wait_timeout": 60, "poll_interval": 0.3,
                                     "project": params["project"]})
    assert wiped["changed"] and wiped["failed_machines"] == []
    assert all(m["state"] == pool.UNLEASED for m in wiped["machines"])
    unleased = set(m.mac for m in prov.list_machines(status="unleased"))
    assert macs <= unleased
    assert _members(prov, name) == []


def lease_foreign(prov, backend, address):
    """Lease one machine the way another tool would: no ownership tag, free-form hostname."""
    machine = prov.list_machines(status="unleased")[0]
    if backend == "plunder":
        prov.client.create_deployment(machine.mac, "preseed", address, "legacy-db")
    else:
        prov.client.allocate({"uuid": machine.id, "name": "legacy-db", "hostname": "legacy-db",
                              "projectid": lease_params("metal", "x")["project"], "partitionid": machine.partition,
                              "sizeid": machine.size, "imageid": "debian-12", "ssh_pub_keys": [],
                              "networks": [{"networkid": prov.private_network(lease_params("metal", "x")["project"],
                                                                              machine.partition),
                                            "autoacquire": True}]})
    # wait until its OS is up, so that a wipe can really run on it
    current = prov.get_machine(machine.mac)
    assert wait_for(lambda: prov.probe_machine(current)[0] == pool.PROVISIONED, timeout=30)
    return machine


@pytest.mark.parametrize("backend", PROVIDERS)
def test_wipe_refuses_foreign_machine_unless_forced(lab, backend):
    prov = provider(lab, backend)
    machine = lease_foreign(prov, backend, "10.77.250.%d" % (7 if backend == "plunder" else 8))
    params = {"machines": [machine.mac], "project": lease_params("metal", "x")["project"]}
    with pytest.raises(PoolError) as err:
        provisioning.wipe(prov, params)
    assert "refusing to wipe %s" % machine.mac in str(err.value) and "force: true" in str(err.value)
    assert prov.get_machine(machine.mac).state != pool.UNLEASED
    forced = provisioning.wipe(prov, dict(params, force=True, wait=True, wait_timeout=60, poll_interval=0.3))
    assert forced["changed"]
    assert prov.get_machine(machine.mac).state == pool.UNLEASED


def test_plunder_spread_by_rack_needs_and_uses_a_hardware_map(fresh_lab):
    prov = provider(fresh_lab, "plunder")
    macs = sorted(m.mac for m in wait_for(lambda: prov.list_machines(status="unleased")))
    name = unique("pcp")
    with pytest.raises(PoolConflict, match="spread_by rack needs 3 distinct rack value.s.* offers 0"):
        leasing.ensure_present(prov, lease_params("plunder", name, count=3, spread_by="rack"))
    hardware = dict((mac, {"rack": "row-%d" % (i % 3), "labels": {"gpu": "yes" if i % 2 else "no"}})
                    for i, mac in enumerate(macs))
    got = leasing.ensure_present(prov, lease_params("plunder", name, count=3, spread_by="rack", hardware=hardware,
                                                    labels={"gpu": "yes"}))
    assert sorted(m["rack"] for m in got["machines"]) == ["row-0", "row-1", "row-2"]
    assert all(m["labels"] == {"gpu": "yes"} for m in got["machines"])
    with pytest.raises(PoolError, match="unknown keys colour"):
        leasing.ensure_present(prov, lease_params("plunder", unique("x"), count=1,
                                                  hardware={macs[0]: {"colour": "red"}}))


def test_plunder_wipe_that_cannot_run_keeps_the_deployment_unless_forced(tmp_path_factory):
    """A machine whose SSH does not answer (still installing) cannot be wiped: the lease stays,
    the error says why; force removes the deployment and reports the machine as not wiped."""
    from fleetlab.testing import LabServer
    slow = LabServer(state_dir=str(tmp_path_factory.mktemp("slowlab")), machines=4, install_seconds=600)
    slow.start()
    try:
        prov = provider(slow, "plunder")
        wait_for(lambda: prov.list_machines(status="unleased"))
        name = unique("stuck")
        params = lease_params("plunder", name, count=1)
        leased = leasing.ensure_present(prov, params)
        mac = leased["machines"][0]["mac"]
        prov.wipe_timeout = 30
        out = provisioning.wipe(prov, {"name": name, "poll_interval": 0.3})
        assert out["failed_machines"] == ["%s-0" % name]
        error = out["machines"][0]["error"]
        assert "did not succeed; deployment kept" in error and "i/o timeout" in error and "force=true" in error
        assert _members(prov, name) == ["%s-0" % name]
        forced = provisioning.wipe(prov, {"name": name, "poll_interval": 0.3, "force": True})
        assert forced["changed"] and _members(prov, name) == []
        # plunder no longer knows it: no deployment, and it is not looping (its disk was never wiped)
        assert mac not in [m.mac for m in prov.list_machines(status="unleased")]
        assert "released WITHOUT wiping" in forced["machines"][0]["detail"]
    finally:
        slow.stop()


def test_plunder_wipe_without_ssh_goes_through_the_bmc(tmp_path_factory, redfish_bmc):
    """The machine does not answer SSH (still installing), its BMC is known: the deployment goes
    and the machine boots into the network boot through its BMC (boot once from PXE, power on)."""
    from fleetlab.testing import LabServer
    from redfish_emulator import MAC
    slow = LabServer(state_dir=str(tmp_path_factory.mktemp("slowbmc")), machines=3, install_seconds=600)
    slow.start()
    try:
        prov = provider(slow, "plunder")
        wait_for(lambda: prov.list_machines(status="unleased"))
        name = unique("deaf")
        leased = leasing.ensure_present(prov, lease_params("plunder", name, count=1))
        mac = leased["machines"][0]["mac"]
        prov.wipe_timeout = 5
        # a bad entry is refused for that machine, before anything is released
        bad = provisioning.wipe(prov, {"name": name, "poll_interval": 0.3, "bmc": {mac: {"user": "x"}}})
        assert "needs at least an address" in bad["machines"][0]["error"] and _members(prov, name) == [name + "-0"]
        out = provisioning.wipe(prov, {"name": name, "poll_interval": 0.3,
                                       "bmc": {mac.upper(): redfish_bmc.entry()}})
        assert out["failed_machines"] == [] and out["changed"]
        machine = out["machines"][0]
        assert machine["path"] == "bmc" and "through its BMC" in machine["detail"]
        assert "i/o timeout" in machine["detail"] and "power on" in machine["detail"]
        assert _members(prov, name) == []  # the deployment is gone
        system = redfish_bmc.system()
        assert system["Boot"]["BootSourceOverrideTarget"] == "Pxe"
        assert wait_for(lambda: redfish_bmc.system()["PowerState"] == "On", timeout=30)
        assert MAC != mac  # the emulator's own NIC plays no part: the map is keyed by the lab machine

        # a BMC that refuses: without force the machine fails (it was released, not booted); with
        # force it is released without wiping, and the BMC's answer is in the detail
        for forced in (False, True):
            name = unique("deaf")
            mac = leasing.ensure_present(prov, lease_params("plunder", name, count=1))["machines"][0]["mac"]
            wrong = dict(redfish_bmc.entry(), password="wrong")
            out = provisioning.wipe(prov, {"name": name, "poll_interval": 0.3, "force": forced, "bmc": {mac: wrong}})
            machine = out["machines"][0]
            if forced:
                assert out["failed_machines"] == [] and machine["path"] == "none"
                assert "its BMC could not boot it either" in machine["detail"] and "refuses the credentials" in machine["detail"]
            else:
                assert out["failed_machines"] and "refuses the credentials" in machine["error"]
            assert _members(prov, name) == []
    finally:
        slow.stop()


def test_count_indexes_keep_high_members_after_holes():
    """Members 6 and 7 left after 0..5 were removed by name: count 2 keeps them, count 3 adds 0."""
    params = {"name": "w", "hostname_template": "{name}-{index}"}
    held = {"w-6", "w-7"}
    assert leasing._count_indexes(params, 2, held) == [6, 7]
    assert leasing._count_indexes(params, 3, held) == [0, 6, 7]
    assert leasing._count_indexes(dict(params, drop_first=["w-6"]), 1, held) == [7]
    assert leasing._count_indexes(params, 1, held) == [6]
    assert leasing._count_indexes(params, 2, {"w-0", "w-1"}) == [0, 1]


def test_fill_first_gives_a_removed_member_its_name_back():
    """A repair removed w-1 of [w-1] (w-0 went earlier): the new member is w-1 again, not w-0;
    names the lease holds or the template cannot make are ignored."""
    params = {"name": "w", "hostname_template": "{name}-{index}", "fill_first": ["w-1"]}
    assert [m.name for m in leasing.wanted_members(dict(params, count=1))] == ["w-1"]
    assert leasing._count_indexes(params, 1, set()) == [1]
    assert leasing._count_indexes(dict(params, fill_first=["w-3", "w-1"]), 3, {"w-0"}) == [0, 1, 3]
    assert leasing._count_indexes(dict(params, fill_first=["w-0", "other-2", "w-"]), 2, {"w-0"}) == [0, 1]
    assert leasing._count_indexes(dict(params, fill_first=["w-5"]), 1, {"w-0"}) == [0]
    assert [m.name for m in leasing.wanted_members(dict(params, count=1, fill_first=[]))] == ["w-0"]
