"""Real ansible-playbook runs of lease / provision / wipe / machine_info against the sim lab."""
import base64
import datetime
import ipaddress
import time
import uuid

import pytest
import yaml

from ansible_collections.baremetal.fleet.plugins.module_utils import connection

from playbook_runner import PROJECT, connection_vars, lease_defaults, run_playbook

pytestmark = [pytest.mark.integration, pytest.mark.lab]
PROVIDERS = ["plunder", "metal"]


def _name(prefix):
    return "%s%s" % (prefix, uuid.uuid4().hex[:5])


def _provider(lab, backend):
    return connection.provider_from_params(connection_vars(lab, backend), environ={})


def _lease_task(backend, name, title="lease", **extra):
    args = {"name": name}
    args.update(lease_defaults(backend, name))
    args.update(extra)
    return {"name": title, "baremetal.fleet.lease": args, "register": title.replace(" ", "_")}


@pytest.mark.parametrize("backend", PROVIDERS)
def test_lease_provision_wipe_and_idempotence(lab, tmp_path, backend):
    name = _name("rt")
    defaults = connection_vars(lab, backend)
    lease = _lease_task(backend, name, count=2, spread_by="rack" if backend == "metal" else None)
    if lease["baremetal.fleet.lease"]["spread_by"] is None:
        del lease["baremetal.fleet.lease"]["spread_by"]
    tasks = [
        lease,
        {"name": "provision", "baremetal.fleet.provision": {"name": name, "wait_timeout": 90, "poll_interval": 0.3,
                                                             "project": PROJECT}, "register": "prov"},
        {"name": "pool view", "baremetal.fleet.machine_info": {"name": name, "project": PROJECT},
         "register": "info"},
    ]
    first = run_playbook(tmp_path, tasks, module_defaults=defaults)
    assert first.rc == 0, first.stdout[-3000:] + first.stderr[-2000:]
    leased = first.task("lease")
    assert leased["changed"] and len(leased["machines"]) == 2
    assert all(m["provider_id"] == ("plunder://%s" % m["mac"] if backend == "plunder" else "metal://%s" % m["id"])
               for m in leased["machines"])
    if backend == "metal":
        assert len(set(m["rack"] for m in leased["machines"])) == 2
    prov = first.task("provision")
    assert prov["failed_machines"] == []
    assert all(m["state"] == "provisioned" and "provisioned" in m["phases"] for m in prov["machines"])
    info = first.task("pool view")
    assert info["summary"]["total"] == 2 and not info["changed"]

    # second run of the same playbook: nothing changes
    second = run_playbook(tmp_path, tasks, module_defaults=defaults)
    assert second.rc == 0, second.stdout[-3000:]
    assert second.stats["changed"] == 0
    assert sorted(m["mac"] for m in second.task("lease")["machines"]) == \
        sorted(m["mac"] for m in leased["machines"])

    wipe = [{"name": "wipe", "baremetal.fleet.wipe": {"name": name, "wait": True, "wait_timeout": 90,
                                                       "poll_interval": 0.3, "project": PROJECT}}]
    third = run_playbook(tmp_path, wipe, module_defaults=defaults)
    assert third.rc == 0, third.stdout[-3000:]
    assert third.task("wipe")["changed"]
    assert all(m["state"] == "unleased" for m in third.task("wipe")["machines"])
    fourth = run_playbook(tmp_path, wipe, module_defaults=defaults)
    assert fourth.rc == 0 and fourth.stats["changed"] == 0
    free = set(m.mac for m in _provider(lab, backend).list_machines(status="unleased"))
    assert set(m["mac"] for m in leased["machines"]) <= free


@pytest.mark.parametrize("backend", PROVIDERS)
def test_check_mode_writes_nothing(lab, tmp_path, backend):
    name = _name("ck")
    prov = _provider(lab, backend)
    before = sorted(m.mac for m in prov.list_machines(status="leased"))
    res = run_playbook(tmp_path, [_lease_task(backend, name, count=3)], module_defaults=connection_vars(lab, backend),
                       check=True, extra_args=["--diff"])
    assert res.rc == 0, res.stdout[-3000:]
    lease = res.task("lease")
    assert lease["changed"] and len(lease["machines"]) == 3 and all(m["planned"] for m in lease["machines"])
    assert len(lease["diff"]["after"]["machines"]) == 3
    assert sorted(m.mac for m in prov.list_machines(status="leased")) == before
    assert prov.lease_members(name, template="{name}-{index}", project=PROJECT) == []


def test_half_failed_lease_is_rolled_back(lab, tmp_path):
    """metal-api refuses the third machine's address (already in use by another machine):
    the two machines leased in that run are released again."""
    prov = _provider(lab, "metal")
    name = _name("hf")
    holder = _name("holder")
    taken = run_playbook(tmp_path, [_lease_task("metal", holder, count=1)],
                         module_defaults=connection_vars(lab, "metal"))
    assert taken.rc == 0, taken.stdout[-2000:]
    used_ip = taken.task("lease")["machines"][0]["address"]
    net = ipaddress.ip_network("10.77.0.0/16")
    free_ips = [str(net.network_address + 60000 + i + (sum(map(ord, name)) % 1000)) for i in range(2)]
    res = run_playbook(tmp_path, [_lease_task("metal", name, count=3, addresses=free_ips + [used_ip])],
                       module_defaults=connection_vars(lab, "metal"))
    assert res.rc != 0
    msg = res.failed_msg()
    assert "lease %s failed at %s-2" % (name, name) in msg
    assert "released again the 2 machine(s) leased in this run" in msg
    assert "already in use" in msg  # metal-api's own words
    assert prov.lease_members(name, project=PROJECT) == []
    run_playbook(tmp_path, [_lease_task("metal", holder, state="absent")], module_defaults=connection_vars(lab, "metal"))


@pytest.mark.parametrize("backend", PROVIDERS)
def test_wipe_refused_on_foreign_machine(lab, tmp_path, backend):
    prov = _provider(lab, backend)
    machine = prov.list_machines(status="unleased")[-1]
    if backend == "plunder":
        prov.client.create_deployment(machine.mac, "preseed", "10.77.251.%d" % (int(machine.mac[-2:], 16) % 250 + 1),
                                      "legacy-db")
    else:
        prov.client.allocate({"uuid": machine.id, "name": "legacy-db", "hostname": "legacy-db", "projectid": PROJECT,
                              "partitionid": machine.partition, "sizeid": machine.size, "imageid": "debian-12",
                              "ssh_pub_keys": [], "networks": [{"networkid": prov.private_network(
                                  PROJECT, machine.partition), "autoacquire": True}]})
    try:
        res = run_playbook(tmp_path, [{"name": "wipe", "baremetal.fleet.wipe": {"machines": [machine.mac]}}],
                           module_defaults=connection_vars(lab, backend))
        assert res.rc != 0
        msg = res.failed_msg()
        assert "refusing to wipe %s" % machine.mac in msg and "force: true" in msg
        assert prov.get_machine(machine.mac).state != "unleased"
    finally:
        if backend == "plunder":  # let its OS come up so that the forced wipe can really wipe it
            current = prov.get_machine(machine.mac)
            deadline = time.time() + 30
            while prov.probe_machine(current)[0] != "provisioned" and time.time() < deadline:
                time.sleep(0.3)
        forced = run_playbook(tmp_path, [{"name": "wipe", "baremetal.fleet.wipe": {
            "machines": [machine.mac], "force": True, "wait": True, "wait_timeout": 60, "poll_interval": 0.3}}],
            module_defaults=connection_vars(lab, backend))
    assert forced.rc == 0, forced.stdout[-2000:]
    assert forced.task("wipe")["machines"][0]["state"] == "unleased"


def _other_cert_config(lab, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Not plunder")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(99).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False).sign(key, hashes.SHA256()))
    with open(lab.plunder_config) as fh:
        cfg = yaml.safe_load(fh)
    cfg["cert"] = base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()
    path = tmp_path / "other-plunderclient.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_bad_input_gives_clear_errors(lab, tmp_path):
    metal = connection_vars(lab, "metal")
    plunder = connection_vars(lab, "plunder")
    cases = [
        ("unknown provider", dict(metal, provider="maas"), {"name": "x", "count": 1},
         "value of provider must be one of: plunder, metal, got: maas"),
        ("bad MAC", plunder, {"name": "x", "machines": [{"mac": "52:54:00:zz:00:01", "address": "10.77.9.9"}],
                              "image": "preseed"},
         "invalid MAC address '52:54:00:zz:00:01'"),
        ("count larger than the pool", metal, {"name": _name("big"), "count": 5000, "image": "debian-12",
                                              "project": PROJECT},
         "needs 5000 more machine(s)"),
        ("wrong HMAC", dict(metal, api_hmac="guessed-key"), {"name": "x", "count": 1, "image": "debian-12",
                                                             "project": PROJECT},
         "access denied (HTTP 403)"),
        ("wrong certificate", dict(plunder, plunder_config=_other_cert_config(lab, tmp_path)),
         {"name": "x", "count": 1, "image": "preseed", "address_range": "10.77.9.0/24"},
         "TLS verification failed"),
        ("plunder without addresses", plunder, {"name": _name("noip"), "count": 1, "image": "preseed"},
         "plunder has no IPAM"),
        ("unknown boot config", plunder, {"name": _name("boot"), "count": 1, "image": "windows",
                                          "address_range": "10.77.9.0/24"},
         "plunder has no boot config 'windows'"),
    ]
    for title, defaults, args, expected in cases:
        res = run_playbook(tmp_path, [{"name": title, "baremetal.fleet.lease": args}], module_defaults=defaults)
        assert res.rc != 0, title
        msg = res.failed_msg() or res.stdout
        assert expected in msg, "%s: %s" % (title, msg)


def test_env_fallbacks_without_module_defaults(lab, tmp_path):
    env = dict(lab.env())
    env["FLEET_PROVIDER"] = "metal"
    res = run_playbook(tmp_path, [{"name": "info", "baremetal.fleet.machine_info": {"status": "unleased"},
                                   "register": "info"}], env=env)
    assert res.rc == 0, res.stdout[-2000:]
    info = res.task("info")
    assert info["summary"]["total"] > 0 and info["summary"]["total"] == info["summary"].get("unleased")
    assert info["invocation"]["module_args"]["api_hmac"] == "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


@pytest.fixture(scope="module")
def failing_lab(tmp_path_factory):
    """Three machines; the second fails its OS install (fleetlab.io/fail-install)."""
    from fleetlab.testing import LabServer

    state = tmp_path_factory.mktemp("failinglab")
    machines = [{"mac": "52:54:00:1f:00:0%d" % i, "rack": "rack-0%d" % i} for i in range(1, 4)]
    machines[1]["labels"] = {"fleetlab.io/fail-install": "true"}
    (state / "pool.yml").write_text(yaml.safe_dump({"machines": machines}))
    server = LabServer(state_dir=str(state / "state"), machines=None, pool=str(state / "pool.yml"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_provision_reports_each_failed_machine(failing_lab, tmp_path):
    defaults = connection_vars(failing_lab, "metal")
    tasks = [
        {"name": "lease", "baremetal.fleet.lease": {
            "name": "pf", "project": PROJECT, "image": "debian-12",
            "machines": [{"mac": "52:54:00:1f:00:01"}, {"mac": "52:54:00:1f:00:02"}]}},
        {"name": "provision", "baremetal.fleet.provision": {"name": "pf", "project": PROJECT, "wait_timeout": 20,
                                                             "poll_interval": 0.3}},
    ]
    res = run_playbook(tmp_path, tasks, module_defaults=defaults)
    assert res.rc != 0
    prov = res.task("provision")
    assert prov["failed"] and prov["failed_machines"] == ["pf-1"]
    assert prov["msg"].startswith("1 machine(s) not ready: pf-1: install crashed")
    states = dict((m["name"], m["state"]) for m in prov["machines"])
    assert states["pf-0"] == "provisioned"


def test_a_password_in_api_url_never_shows(lab, tmp_path):
    """metalctl users paste URLs with user:password@: neither the error, the url nor the echoed
    arguments may show the password (the server is unreachable on purpose: port 9 on loopback)."""
    defaults = dict(connection_vars(lab, "metal"), api_url="http://fleetuser:TopSecret-99@127.0.0.1:9/metal",
                    api_timeout=1, api_retries=1)
    res = run_playbook(tmp_path, [{"name": "info", "baremetal.fleet.machine_info": {"status": "unleased"},
                                   "register": "info", "ignore_errors": True}], module_defaults=defaults,
                       extra_args=["-vvv"])
    info = res.task("info")
    assert info["failed"] and "cannot reach" in info["msg"]
    assert "TopSecret-99" not in res.stdout + res.stderr
    assert "***@127.0.0.1:9" in info["msg"]


def test_a_wipe_of_a_lease_that_does_not_exist_says_so(lab, tmp_path):
    name = _name("ghost")
    res = run_playbook(tmp_path, [{"name": "wipe", "baremetal.fleet.wipe": {"name": name, "project": PROJECT},
                                   "register": "wipe"}], module_defaults=connection_vars(lab, "metal"))
    wipe = res.task("wipe")
    assert res.rc == 0 and not wipe["changed"]
    assert wipe["msg"] == "lease %s has no machines (in project %s): nothing to wipe" % (name, PROJECT)
    assert any("nothing to wipe" in w for w in wipe.get("warnings", []))
