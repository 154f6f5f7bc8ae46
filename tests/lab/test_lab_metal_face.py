"""The metal-api face over real HTTP: HMAC auth, status codes, metal-python as client, spec validation."""
import datetime
import time

import pytest
from metal_python import models
from metal_python.api import ImageApi, MachineApi, PartitionApi, ProjectApi, SizeApi
from metal_python.driver import Driver
from metal_python.rest import ApiException

from labclients import PRIVATE_NET, PROJECT, Metal, allocate_body, pool_snapshot, sign, validate

pytestmark = pytest.mark.lab


def _wait_event(metal, mid, event, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = metal.ok("GET", "/v1/machine/" + mid)
        if m["events"]["log"][0]["event"] == event:
            return m
        time.sleep(0.1)
    raise AssertionError("machine %s never reached %s: %s" % (mid, event, m["events"]["log"][:3]))


@pytest.mark.parametrize("role,auth_type", [("view", "Metal-View"), ("edit", "Metal-Edit"),
                                            ("admin", "Metal-Admin")])
def test_hmac_each_role_can_read(fresh_lab, role, auth_type):
    client = Metal(fresh_lab.metal_url, fresh_lab.hmac_keys[role], auth_type)
    machines = client.ok("GET", "/v1/machine")
    assert len(machines) == 24


def test_hmac_failures_are_403_like_metal_api(fresh_lab):
    url, keys = fresh_lab.metal_url, fresh_lab.hmac_keys
    wrong = Metal(url, "not-the-key", "Metal-Edit")
    assert wrong.raw("GET", "/v1/machine") == (403, {"statuscode": 403, "message": "Wrong HMAC found"})
    cross = Metal(url, keys["view"], "Metal-Edit")  # a valid key under the wrong scheme
    assert cross.raw("GET", "/v1/machine")[0] == 403
    old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=45)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    code, body = Metal(url, keys["edit"]).raw("GET", "/v1/machine", headers=sign(keys["edit"], "Metal-Edit", "GET",
                                                                                  date=old), auth=False)
    assert code == 403 and body["message"].startswith("the timestamp in your header is too old")
    # admin keys live 90 s
    code, _ = Metal(url, keys["admin"]).raw("GET", "/v1/machine", auth=False,
                                             headers=sign(keys["admin"], "Metal-Admin", "GET", date=old))
    assert code == 200
    code, body = Metal(url, keys["edit"]).raw("GET", "/v1/machine", auth=False,
                                               headers=sign(keys["edit"], "Metal-Edit", "GET", date="yesterday"))
    assert code == 403 and body["message"].startswith('unknown timestamp "yesterday"')
    # no credentials: guest, refused by the tenant filter with a bare JSON string
    assert Metal(url, "").raw("GET", "/v1/machine", auth=False) == (403, "tenant  not allowed")
    assert Metal(url, "").raw("GET", "/v1/machine", auth=False, headers={"Authorization": "Metal-Foo abc"}) == (
        403, "tenant  not allowed")
    # health and version need no credentials
    assert Metal(url, "").raw("GET", "/v1/health", auth=False)[0] == 200
    assert Metal(url, "").raw("GET", "/v1/version", auth=False)[0] == 200
    # the signature covers date + method + salt: a GET signature does not authorise a POST
    hdrs = sign(keys["edit"], "Metal-Edit", "GET")
    code, body = Metal(url, keys["edit"]).raw("POST", "/v1/machine/find", {}, headers=hdrs, auth=False)
    assert (code, body["message"]) == (403, "Wrong HMAC found")


def test_roles(fresh_lab):
    view = Metal(fresh_lab.metal_url, fresh_lab.hmac_keys["view"], "Metal-View")
    code, body = view.raw("POST", "/v1/machine/allocate", allocate_body("x"))
    assert code == 403
    assert body["message"] == ("you are not member in one of [k8s_kaas-edit maas-all-all-edit k8s_kaas-admin "
                               "maas-all-all-admin]")
    edit = Metal(fresh_lab.metal_url, fresh_lab.hmac_keys["edit"])
    code, body = edit.raw("PUT", "/v1/image", {"id": "x-1.0", "url": "http://x"})
    assert code == 403 and "maas-all-all-admin" in body["message"]


def test_status_codes(fresh_lab, metal, metal_admin):
    before = pool_snapshot(fresh_lab)
    assert metal.raw("GET", "/v1/nosuch") == (404, {"statuscode": 404, "message": "404: Page Not Found"})
    assert metal.raw("GET", "/v1/machine/nope") == (404, {"statuscode": 404,
                                                         "message": 'NotFound no machine with id "nope" found'})
    assert metal.raw("POST", "/v1/machine/find", b"{}", content_type=None) == (
        415, {"statuscode": 415, "message": "415: Unsupported Media Type"})
    assert metal.raw("POST", "/v1/machine/find", b"{}", content_type="text/plain")[0] == 415
    code, body = metal.raw("POST", "/v1/machine/find", b"{bad")
    assert code == 400 and body["statuscode"] == 400 and "invalid character" in body["message"]
    code, body = metal.raw("POST", "/v1/machine/find", {"partition_id": 5})
    assert code == 400 and "cannot unmarshal number" in body["message"]
    assert metal.raw("POST", "/v1/machine/allocate", allocate_body("x", networks=[]))[1]["message"] == (
        "network ids cannot be empty")
    assert metal.raw("POST", "/v1/machine/allocate", allocate_body("x", imageid="nosuch-1"))[0] == 400
    assert metal.raw("POST", "/v1/machine/allocate", allocate_body("x", sizeid="huge"))[0] == 400
    assert metal.raw("POST", "/v1/machine/allocate", allocate_body("x", projectid="nope"))[0] == 404
    assert metal.raw("POST", "/v1/machine/allocate", allocate_body("x", ssh_pub_keys=["garbage"]))[0] == 422
    assert metal.raw("POST", "/v1/machine/allocate", allocate_body("x", ips=["10.1.2"]))[0] == 422
    assert metal.raw("POST", "/v1/machine/allocate", allocate_body("x", uuid="nope"))[0] == 400
    assert metal.raw("POST", "/v1/machine/allocate", b"x" * (1024 * 1024 + 1))[0] == 400
    assert pool_snapshot(fresh_lab) == before
    for method, path, body in (("GET", "/v1/machine/nope", None), ("POST", "/v1/machine/find", b"{bad"),
                               ("POST", "/v1/machine/allocate", allocate_body("x", ips=["10.1.2"]))):
        validate(metal.raw(method, path, body)[1], "httperrors.HTTPErrorResponse")
    created = metal_admin.ok("PUT", "/v1/image", {"id": "debian-12.7", "url": "http://images/debian-12.7",
                                                   "features": ["machine"]}, status=201)
    validate(created, "v1.ImageResponse")
    assert metal_admin.raw("PUT", "/v1/image", {"id": "debian-12.7", "url": "http://x"})[0] == 409
    assert metal_admin.ok("PUT", "/v1/size", {"id": "v1-tiny-x86"}, status=201)["id"] == "v1-tiny-x86"
    assert metal_admin.raw("PUT", "/v1/size", {"id": "v1-tiny-x86"})[0] == 409


def test_every_machine_response_validates_against_the_spec(fresh_lab, metal):
    m = metal.ok("POST", "/v1/machine/allocate", allocate_body("spec-check", ssh_pub_keys=[
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGn7d0H0p2bGZ2VfWc4yqv0ZJ8pLQ9t1rPzKkZp3n5Qm lab@test"],
        user_data="I2Nsb3VkLWNvbmZpZw=="))
    validate(m, "v1.MachineResponse")
    for mr in metal.ok("GET", "/v1/machine"):
        validate(mr, "v1.MachineResponse")
    for path, definition in (("/v1/size", "v1.SizeResponse"), ("/v1/image", "v1.ImageResponse"),
                             ("/v1/partition", "v1.PartitionResponse"), ("/v1/project", "v1.ProjectResponse"),
                             ("/v1/network", "v1.NetworkResponse")):
        for item in metal.ok("GET", path):
            validate(item, definition)
    for cap in metal.ok("POST", "/v1/partition/capacity", {"projectid": PROJECT}):
        validate(cap, "v1.PartitionCapacity")
    validate(metal.ok("GET", "/v1/health"), "rest.HealthResponse")
    validate(metal.ok("GET", "/v1/version"), "rest.version")
    done = _wait_event(metal, m["id"], "Phoned Home")
    validate(done, "v1.MachineResponse")
    assert done["allocation"]["boot_info"]["image_id"] == "debian-12"
    assert done["allocation"]["user_data"] == "I2Nsb3VkLWNvbmZpZw=="


def test_metal_python_client_full_cycle(fresh_lab):
    d = Driver(fresh_lab.metal_url, None, fresh_lab.hmac_keys["edit"], hmac_user="Metal-Edit")
    api = MachineApi(api_client=d.client)
    machines = api.list_machines()
    assert len(machines) == 24 and all(m.events.log[0].event == "Waiting" for m in machines)
    assert [s.id for s in SizeApi(api_client=d.client).list_sizes()][0] == "v1-small-x86"
    assert "debian-12" in [i.id for i in ImageApi(api_client=d.client).list_images()]
    assert [p.id for p in PartitionApi(api_client=d.client).list_partitions()] == ["mini-lab"]
    assert [p.meta.id for p in ProjectApi(api_client=d.client).list_projects()] == [PROJECT]
    req = models.V1MachineAllocateRequest(
        name="mp-1", hostname="mp-1", projectid=PROJECT, partitionid="mini-lab", sizeid="v1-small-x86",
        imageid="debian-12", ssh_pub_keys=[], tags=["fleet.baremetal.io/owner=ansible"],
        networks=[models.V1MachineAllocationNetwork(networkid=PRIVATE_NET, autoacquire=True)])
    m = api.allocate_machine(req)
    assert m.allocation.name == "mp-1" and m.allocation.creator == "metal-edit@metal-stack.io"
    assert m.allocation.networks[0].ips[0].startswith("10.77.")
    assert "fleet.baremetal.io/owner=ansible" in m.tags
    found = api.find_machines(models.V1MachineFindRequest(allocation_name="mp-1", allocation_project=PROJECT))
    assert [f.id for f in found] == [m.id]
    assert api.find_machines(models.V1MachineFindRequest(tags=["fleet.baremetal.io/owner=ansible"]))[0].id == m.id
    with pytest.raises(ApiException) as err:
        api.find_machine("00000000-0000-0000-0000-00000000dead")
    assert err.value.status == 404
    deadline = time.time() + 15
    while api.find_machine(m.id).events.log[0].event != "Phoned Home":
        assert time.time() < deadline
        time.sleep(0.1)
    r = api.reinstall_machine(m.id, models.V1MachineReinstallRequest(id=m.id, imageid="ubuntu-24.04"))
    assert r.allocation.reinstall is True and r.allocation.image.id == "ubuntu-24.04"
    deadline = time.time() + 15
    while True:
        log = [e.event for e in api.find_machine(m.id).events.log]
        if log[0] == "Phoned Home" and log.count("Phoned Home") == 2:
            break
        assert time.time() < deadline, log
        time.sleep(0.1)
    assert log[:6] == ["Phoned Home", "Booting New Kernel", "Installing", "Registering", "Preparing", "PXE Booting"]
    assert api.find_machine(m.id).allocation.reinstall is False
    off = api.machine_off(m.id, models.V1EmptyBody())
    assert off.events.log[0].event == "Planned Reboot" and off.events.log[0].message == "OFF"
    api.machine_on(m.id, models.V1EmptyBody())
    st = api.set_machine_state(m.id, models.V1MachineState(value="LOCKED", description="maintenance",
                                                           metal_hammer_version=""))
    assert st.state.value == "LOCKED" and st.state.issuer == "metal-edit@metal-stack.io"
    with pytest.raises(ApiException) as err:
        api.free_machine(m.id)
    assert err.value.status == 422 and "machine is locked" in err.value.body
    api.set_machine_state(m.id, models.V1MachineState(value="", description="", metal_hammer_version=""))
    freed = api.free_machine(m.id)
    assert freed.allocation is None
    deadline = time.time() + 15
    while api.find_machine(m.id).events.log[0].event != "Waiting":
        assert time.time() < deadline
        time.sleep(0.1)
    events = [e.event for e in api.find_machine(m.id).events.log]
    assert events[:5] == ["Waiting", "Registering", "Preparing", "PXE Booting", "Machine Reclaim"]


def test_allocation_by_uuid_and_exhaustion(fresh_lab, metal):
    ids = [m["id"] for m in metal.ok("POST", "/v1/machine/find", {"sizeid": "v1-small-x86"})]
    first = metal.ok("POST", "/v1/machine/allocate", allocate_body("by-id", uuid=ids[0]))
    assert first["id"] == ids[0]
    code, body = metal.raw("POST", "/v1/machine/allocate", allocate_body("by-id-2", uuid=ids[0]))
    assert (code, body["message"]) == (422, "machine is already allocated")
    for n in range(len(ids) - 1):
        metal.ok("POST", "/v1/machine/allocate", allocate_body("fill-%d" % n))
    code, body = metal.raw("POST", "/v1/machine/allocate", allocate_body("one-too-many"))
    assert (code, body) == (422, {"statuscode": 422, "message": "no machine available"})
    cap = metal.ok("POST", "/v1/partition/capacity", {"projectid": PROJECT})[0]
    small = [s for s in cap["servers"] if s["size"] == "v1-small-x86"][0]
    assert small["allocated"] == len(ids) and small["free"] == 0
    addresses = [m["allocation"]["networks"][0]["ips"][0]
                 for m in metal.ok("POST", "/v1/machine/find", {"allocation_project": PROJECT})]
    assert len(addresses) == len(set(addresses)) == len(ids)


def test_bearer_token_optional(tmp_path):
    from fleetlab.testing import LabServer
    lab = LabServer(state_dir=str(tmp_path), machines=3, metal_token=["view=tok-view-1"])
    lab.start()
    try:
        client = Metal(lab.metal_url, "")
        code, body = client.raw("GET", "/v1/machine", auth=False, headers={"Authorization": "Bearer tok-view-1"})
        assert code == 200 and len(body) == 3
        code, _ = client.raw("POST", "/v1/machine/allocate", allocate_body("t"), auth=False,
                             headers={"Authorization": "Bearer tok-view-1"})
        assert code == 403
        assert client.raw("GET", "/v1/machine", auth=False, headers={"Authorization": "Bearer nope"})[0] == 403
    finally:
        lab.stop()


def test_unknown_ids_are_404_and_change_nothing(fresh_lab, metal):
    before = pool_snapshot(fresh_lab)
    missing = "00000000-0000-0000-0000-00000000beef"
    for method, path, body in (("DELETE", "/v1/machine/%s/free" % missing, None),
                               ("POST", "/v1/machine/%s/reinstall" % missing, {"id": missing, "imageid": "debian-12"}),
                               ("POST", "/v1/machine/%s/power/reset" % missing, {}),
                               ("POST", "/v1/machine/%s/state" % missing, {"value": "LOCKED", "description": "x",
                                                                           "metal_hammer_version": ""}),
                               ("GET", "/v1/size/nosuch", None), ("GET", "/v1/partition/nosuch", None),
                               ("GET", "/v1/project/nosuch", None), ("GET", "/v1/image/nosuch", None)):
        code, out = metal.raw(method, path, body)
        assert code == 404 and out["statuscode"] == 404 and out["message"].startswith("NotFound"), (path, out)
    some = metal.ok("GET", "/v1/machine")[0]["id"]
    code, out = metal.raw("POST", "/v1/machine/%s/reinstall" % some, {"id": some, "imageid": "debian-12"})
    assert (code, out["message"]) == (400, "machine either locked, not allocated yet or invalid image ID specified")
    code, out = metal.raw("POST", "/v1/machine/%s/state" % some, {"value": "BROKEN", "description": "x",
                                                                   "metal_hammer_version": ""})
    assert code == 400
    code, out = metal.raw("POST", "/v1/machine/%s/state" % some, {"value": "RESERVED", "description": "",
                                                                   "metal_hammer_version": ""})
    assert (code, out["message"]) == (400, "you must supply a description")
    assert pool_snapshot(fresh_lab) == before


def test_simulated_install_crash(tmp_path):
    import yaml
    from fleetlab.testing import LabServer
    pool = tmp_path / "pool.yml"
    pool.write_text(yaml.safe_dump({"machines": [
        {"mac": "52:54:00:00:09:01", "labels": {"fleetlab.io/fail-install": "true"}}]}))
    lab = LabServer(state_dir=str(tmp_path / "s"), machines=None, pool=str(pool))
    lab.start()
    try:
        metal = Metal(lab.metal_url, lab.hmac_keys["edit"])
        m = metal.ok("POST", "/v1/machine/allocate", allocate_body("crash"))
        got = _wait_event(metal, m["id"], "Crashed")
        validate(got, "v1.MachineResponse")
        assert got["events"]["crash_loop"] is True
        assert got["events"]["last_error_event"]["event"] == "Crashed"
    finally:
        lab.stop()


def test_private_network_allocation_like_mini_lab(fresh_lab, metal):
    net = metal.ok("POST", "/v1/network/allocate", {"projectid": PROJECT, "partitionid": "mini-lab",
                                                    "name": "my-private"}, status=201)
    validate(net, "v1.NetworkResponse")
    assert net["parentnetworkid"] == "tenant-super-network-mini-lab" and net["prefixes"][0].endswith("/22")
    assert metal.raw("POST", "/v1/network/allocate", {"partitionid": "mini-lab"})[1]["message"] == (
        "projectid should not be empty")
    m = metal.ok("POST", "/v1/machine/allocate", allocate_body("on-own-net", networks=[
        {"networkid": net["id"], "autoacquire": True}, {"networkid": "internet-mini-lab", "autoacquire": True}]))
    nets = {n["networkid"]: n for n in m["allocation"]["networks"]}
    import ipaddress
    assert ipaddress.ip_address(nets[net["id"]]["ips"][0]) in ipaddress.ip_network(net["prefixes"][0])
    assert nets["internet-mini-lab"]["ips"][0].startswith("203.0.113.")
    assert nets["internet-mini-lab"]["networktype"] == "external" and nets[net["id"]]["private"] is True
    found = metal.ok("POST", "/v1/machine/find", {"network_ids": [net["id"]]})
    assert [f["id"] for f in found] == [m["id"]]
    assert metal.raw("DELETE", "/v1/network/free/" + net["id"])[0] == 422  # still in use
    metal.ok("DELETE", "/v1/machine/%s/free" % m["id"])
    assert metal.ok("DELETE", "/v1/network/free/" + net["id"])["id"] == net["id"]
    assert metal.raw("GET", "/v1/network/" + net["id"])[0] == 404
