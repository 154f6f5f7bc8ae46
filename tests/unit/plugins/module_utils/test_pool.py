import pytest

from ansible_collections.baremetal.fleet.plugins.module_utils import pool


@pytest.mark.parametrize("raw,expected", [
    ("52:54:00:AB:cd:01", "52:54:00:ab:cd:01"),
    ("52-54-00-ab-cd-01", "52:54:00:ab:cd:01"),
    (" 52:54:00:ab:cd:01 ", "52:54:00:ab:cd:01"),
])
def test_normalize_mac_accepts_both_separators(raw, expected):
    assert pool.normalize_mac(raw) == expected


@pytest.mark.parametrize("raw", ["52:54:00:ab:cd", "zz:54:00:ab:cd:01", "", None, 5, "5254.00ab.cd01"])
def test_normalize_mac_rejects_garbage(raw):
    with pytest.raises(pool.PoolError) as err:
        pool.normalize_mac(raw)
    assert "invalid MAC address" in str(err.value)


def test_provider_id_per_backend():
    plunder = pool.Machine(id="52:54:00:00:00:01", mac="52:54:00:00:00:01", provider="plunder")
    metal = pool.Machine(id="00000000-0000-0000-0000-000000000001", mac="52:54:00:00:00:02", provider="metal")
    assert plunder.provider_id == "plunder://52:54:00:00:00:01"
    assert metal.provider_id == "metal://00000000-0000-0000-0000-000000000001"


def test_machine_to_dict_is_complete_and_detached():
    labels = {"gpu": "no"}
    machine = pool.Machine(id="m1", mac="52:54:00:00:00:01", provider="metal", labels=labels,
                           state=pool.PROVISIONED, lease_name="demo-cp-0")
    out = machine.to_dict()
    # rank only orders a member's holders inside the collection; it is not reported
    assert set(out) == (set(pool.Machine.__slots__) - {"rank"}) | {"provider_id"}
    labels["gpu"] = "yes"
    assert out["labels"] == {"gpu": "no"}


def test_pool_error_message_names_machine_and_server_text():
    err = pool.PoolConflict("lease failed", machine="52:54:00:00:00:01", url="https://x:60443/deployment",
                            server_error="Duplicate entry for MAC address [52:54:00:00:00:01]")
    text = str(err)
    assert "52:54:00:00:00:01" in text and "Duplicate entry" in text and "https://x:60443" in text
    kwargs = err.to_fail_kwargs()
    assert kwargs["msg"] == text and kwargs["machine"] == "52:54:00:00:00:01"
    assert isinstance(err, pool.PoolError)
