"""Provision: per-machine failures, reinstall, bearer tokens (own small labs)."""
import pytest
import yaml

from ansible_collections.baremetal.fleet.plugins.module_utils import connection, leasing, pool, provisioning

from labhelp import PROJECT, lease_params, provider, wait_for

pytestmark = pytest.mark.lab

BAD_MAC = "52:54:00:0f:00:03"


@pytest.fixture(scope="module")
def small_lab(tmp_path_factory):
    """Four machines; one fails its OS install (the lab's fleetlab.io/fail-install label)."""
    from fleetlab.testing import LabServer

    state = tmp_path_factory.mktemp("smalllab")
    pool_file = state / "pool.yml"
    machines = [{"mac": "52:54:00:0f:00:0%d" % i, "rack": "rack-0%d" % i} for i in range(1, 5)]
    machines[2]["labels"] = {"fleetlab.io/fail-install": "true"}
    pool_file.write_text(yaml.safe_dump({"machines": machines}))
    server = LabServer(state_dir=str(state / "state"), machines=None, pool=str(pool_file),
                       metal_token=["edit=fleet-test-token"])
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("backend", ["metal", "plunder"])
def test_failed_install_is_reported_per_machine(small_lab, backend):
    prov = provider(small_lab, backend)
    wait_for(lambda: len(prov.list_machines(status="unleased")) == 4)
    name = "fail%s" % backend
    params = lease_params(backend, name, machines=[{"name": "%s-ok" % name, "mac": "52:54:00:0f:00:01"},
                                                   {"name": "%s-bad" % name, "mac": BAD_MAC}],
                          address_range="10.77.3.0/24")
    leasing.ensure_present(prov, params)
    try:
        # plunder keeps no lease tag: explicitly named members are selected by their names
        sel = {"name": name} if backend == "metal" else {"machines": ["%s-ok" % name, "%s-bad" % name]}
        out = provisioning.provision(prov, dict(sel, wait_timeout=15, poll_interval=0.3, project=PROJECT))
        by_name = dict((m["name"], m) for m in out["machines"])
        assert out["failed_machines"] == ["%s-bad" % name]
        assert by_name["%s-ok" % name]["state"] == pool.PROVISIONED and "error" not in by_name["%s-ok" % name]
        err = by_name["%s-bad" % name]["error"]
        if backend == "metal":
            assert "install crashed" in err and "fail-install" in err
        else:
            assert "not reachable after 15s" in err and "i/o timeout" in err
    finally:
        leasing.ensure_absent(prov, params)


@pytest.mark.parametrize("backend", ["metal", "plunder"])
def test_reinstall_goes_through_installing_again(small_lab, backend):
    prov = provider(small_lab, backend)
    assert wait_for(lambda: "52:54:00:0f:00:04" in set(m.mac for m in prov.list_machines(status="unleased")),
                    timeout=30)
    name = "re%s" % backend
    params = lease_params(backend, name, machines=[{"name": "%s-0" % name, "mac": "52:54:00:0f:00:04"}],
                          address_range="10.77.4.0/24")
    leasing.ensure_present(prov, params)
    sel = {"name": name, "wait_timeout": 30, "poll_interval": 0.3, "project": PROJECT}
    first = provisioning.provision(prov, sel)
    assert first["failed_machines"] == [] and not first["changed"]
    again = provisioning.provision(prov, dict(sel, reinstall=True))
    assert again["changed"] and again["failed_machines"] == []
    phases = again["machines"][0]["phases"]
    assert "installing" in phases and phases["provisioned"] >= phases["installing"]
    check = provisioning.provision(prov, dict(sel, reinstall=True), check_mode=True)
    assert check["changed"] and check["machines"][0]["planned"] == "reinstall"
    wiped = provisioning.wipe(prov, dict(sel, wait=True))
    assert wiped["failed_machines"] == []


def test_bearer_token_instead_of_hmac(small_lab):
    prov = connection.provider_from_params({"provider": "metal", "api_url": small_lab.metal_url,
                                            "api_token": "fleet-test-token"}, environ={})
    assert len(prov.list_machines()) == 4
    bad = connection.provider_from_params({"provider": "metal", "api_url": small_lab.metal_url,
                                           "api_token": "nope"}, environ={})
    with pytest.raises(pool.PoolAuthError):
        bad.list_machines()
