"""Fixtures of the lab tests (clients bound to the per-test ``fresh_lab``)."""
import pytest

from labclients import Metal, Plunder


@pytest.fixture
def plunder(fresh_lab):
    return Plunder(fresh_lab.plunder_config)


@pytest.fixture
def metal(fresh_lab):
    return Metal(fresh_lab.metal_url, fresh_lab.hmac_keys["edit"])


@pytest.fixture
def metal_admin(fresh_lab):
    return Metal(fresh_lab.metal_url, fresh_lab.hmac_keys["admin"], "Metal-Admin")


@pytest.fixture
def vm_host():
    """VM tests run one at a time on a host (also across pytest workers and runs): they share
    libvirtd and the CPU."""
    import fcntl

    with open("/run/fleetlab-vm-tests.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield
