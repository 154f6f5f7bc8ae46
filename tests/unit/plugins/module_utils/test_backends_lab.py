"""plunder and metal-api clients against the running sim lab (both faces, one pool)."""
import base64
import datetime

import pytest
import yaml

from ansible_collections.baremetal.fleet.plugins.module_utils import connection, metal, plunder, pool
from ansible_collections.baremetal.fleet.plugins.module_utils.pool import (
    PoolAuthError,
    PoolConnectionError,
    PoolError,
    PoolNotFound,
)

from labhelp import metal as metal_provider
from labhelp import plunder as plunder_provider
from labhelp import wait_for

pytestmark = pytest.mark.lab


def test_hmac_matches_metal_api_test_vector():
    now = (datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)).timestamp()
    headers = metal.hmac_headers("metal-admin", "Metal-Admin", "get", now=now, salt="abcdefghijklmnopqrstuvwx")
    assert headers == {
        "X-Date": "2024-01-01T00:00:00Z", "X-Data-Salt": "abcdefghijklmnopqrstuvwx",
        "Authorization": "Metal-Admin 6e53f61787e125661d1d4fbae56ea4b8aaa0874a299f84b4cfc1a0eaa27e571f"}


def test_env_fallbacks_and_provider_choice(lab):
    env = dict(lab.env())
    env["FLEET_PROVIDER"] = "metal"
    settings = connection.resolve_settings({}, environ=env)
    assert settings["api_url"] == lab.metal_url and settings["api_hmac"] == env["METALCTL_HMAC"]
    assert settings["validate_certs"] is True
    only_plunder = {"PLUNDER_CLIENT_CONFIG": lab.plunder_config}
    assert connection.resolve_settings({}, environ=only_plunder)["provider"] == "plunder"
    with pytest.raises(PoolError, match="no provider chosen"):
        connection.resolve_settings({}, environ=dict(lab.env()))
    with pytest.raises(PoolError, match="unknown provider 'maas'"):
        connection.resolve_settings({"provider": "maas"}, environ={})
    with pytest.raises(PoolError, match="needs api_hmac"):
        connection.provider_from_params({"provider": "metal", "api_url": lab.metal_url}, environ={})


def test_both_faces_list_the_same_unleased_pool(fresh_lab):
    p = plunder_provider(fresh_lab)
    m = metal_provider(fresh_lab)
    assert wait_for(lambda: len(p.list_machines(status="unleased")) == 24 == len(m.list_machines(status="unleased")))
    macs_p = set(x.mac for x in p.list_machines(status="unleased"))
    macs_m = set(x.mac for x in m.list_machines(status="unleased"))
    assert len(macs_p) == 24 and macs_p == macs_m
    one = m.list_machines(status="unleased")[0]
    assert one.size and one.partition == "mini-lab" and one.rack and one.provider_id == "metal://%s" % one.id
    assert p.get_machine(one.mac.upper()).provider_id == "plunder://%s" % one.mac
    assert m.get_machine(one.mac).id == one.id == m.get_machine(one.id).id
    small = m.list_machines(status="unleased", filters={"size": "v1-small-x86"})
    assert small and all(x.size == "v1-small-x86" for x in small)
    vendor = p.list_machines(filters={"vendor": "dell"})
    assert vendor and all("Dell" in x.vendor for x in vendor)


def test_unknown_machine_is_not_found(lab):
    with pytest.raises(PoolNotFound):
        plunder_provider(lab).get_machine("02:00:00:00:00:99")
    with pytest.raises(PoolNotFound):
        metal_provider(lab).get_machine("00000000-0000-0000-0000-0000deadbeef")


def _foreign_cert_b64():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Someone else")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    return base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()


def test_wrong_certificate_is_refused(lab, tmp_path):
    with open(lab.plunder_config) as fh:
        cfg = yaml.safe_load(fh)
    cfg["cert"] = _foreign_cert_b64()
    bad = tmp_path / "plunderclient.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    prov = connection.provider_from_params({"provider": "plunder", "plunder_config": str(bad)}, environ={})
    with pytest.raises(PoolConnectionError, match="TLS verification failed"):
        prov.list_machines()
    # the real certificate from the lab's file is trusted
    assert plunder_provider(lab).list_machines(status="unleased")


def test_broken_client_config_is_reported(tmp_path):
    path = tmp_path / "plunderclient.yaml"
    path.write_text("address: 127.0.0.1\nport: 60443\n")
    with pytest.raises(PoolError, match="has no 'cert'"):
        connection.provider_from_params({"provider": "plunder", "plunder_config": str(path)}, environ={})
    with pytest.raises(PoolError, match="cannot read"):
        connection.provider_from_params({"provider": "plunder", "plunder_config": str(tmp_path / "nope")},
                                        environ={})


def test_wrong_hmac_is_an_auth_error(lab):
    prov = connection.provider_from_params(
        {"provider": "metal", "api_url": lab.metal_url, "api_hmac": "not-the-key",
         "api_hmac_auth_type": "Metal-Edit"}, environ={})
    with pytest.raises(PoolAuthError) as err:
        prov.list_machines()
    assert err.value.status == 403 and "HMAC" in str(err.value)


def test_unreachable_server_is_a_connection_error(lab):
    prov = connection.provider_from_params(
        {"provider": "metal", "api_url": "http://127.0.0.1:9/metal", "api_hmac": "x", "api_retries": 1},
        environ={})
    with pytest.raises(PoolConnectionError, match="cannot reach"):
        prov.list_machines()


def test_machine_states_follow_the_lifecycle(fresh_lab):
    """Lease on metal, watch both faces see it installing then provisioned."""
    m = metal_provider(fresh_lab)
    p = plunder_provider(fresh_lab)
    machine = wait_for(lambda: m.list_machines(status="unleased"))[0]
    leased = m.lease_machine(machine, "life", "life-0", "life-0", image="debian-12",
                             options={"project": "00000000-0000-0000-0000-000000000001"})
    assert leased.owned and leased.lease == "life" and leased.lease_name == "life-0" and leased.address
    assert machine.mac not in set(x.mac for x in p.list_machines(status="unleased"))
    state = wait_for(lambda: m.probe_machine(leased)[0] == pool.PROVISIONED, timeout=30)
    assert state
    assert m.lease_members("life")[0].id == machine.id
    assert m.release_machine(leased) is True
    back = wait_for(lambda: m.back_in_loop(leased), timeout=30)
    assert back


def test_view_key_reads_but_cannot_lease(lab):
    from ansible_collections.baremetal.fleet.plugins.module_utils import leasing

    viewer = metal_provider(lab, key="view")
    assert viewer.list_machines(status="unleased")
    with pytest.raises(PoolError) as err:
        leasing.ensure_present(viewer, {"name": "viewonly", "count": 1, "image": "debian-12",
                                        "project": "00000000-0000-0000-0000-000000000001"}, workers=1)
    assert "403" in str(err.value) and "nothing had been leased in this run" in str(err.value)


def test_validate_certs_false_skips_verification(lab, tmp_path):
    """With a certificate that is not the server's, only validate_certs=false connects."""
    with open(lab.plunder_config) as fh:
        cfg = yaml.safe_load(fh)
    cfg["cert"] = _foreign_cert_b64()
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(cfg))
    strict = connection.provider_from_params({"provider": "plunder", "plunder_config": str(other)}, environ={})
    with pytest.raises(PoolConnectionError):
        strict.list_machines()
    lax = connection.provider_from_params({"provider": "plunder", "plunder_config": str(other),
                                           "validate_certs": "false"}, environ={})
    assert lax.list_machines(status="unleased")
