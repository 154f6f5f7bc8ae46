"""A lab server that dies and comes back: reads and safe writes ride it out with backoff."""
import socket
import threading
import time

import pytest

from ansible_collections.baremetal.fleet.plugins.module_utils import leasing

from labhelp import lease_params, metal, plunder, wait_for

pytestmark = pytest.mark.lab


def _free_port():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def restartable_lab(tmp_path):
    from fleetlab.testing import LabServer

    server = LabServer(state_dir=str(tmp_path / "lab"), machines=12, plunder_port=_free_port(),
                       metal_port=_free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _restart_later(server, delay):
    def run():
        time.sleep(delay)
        server.start()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.parametrize("backend", ["metal", "plunder"])
def test_lease_rides_out_a_server_restart(restartable_lab, backend):
    prov = metal(restartable_lab, api_retries=6) if backend == "metal" else plunder(restartable_lab, api_retries=6)
    assert wait_for(lambda: len(prov.list_machines(status="unleased")) == 12)
    restartable_lab.kill()  # kill -9: connections are refused until it is back
    thread = _restart_later(restartable_lab, 1.0)
    try:
        started = time.time()
        out = leasing.ensure_present(prov, lease_params(backend, "rs%s" % backend, count=2,
                                                        address_range="10.77.8.0/24"))
        assert time.time() - started >= 0.9  # it really waited for the server
    finally:
        thread.join()
    assert out["changed"] and len(out["machines"]) == 2
    # the leases survived and are seen after the restart; a second run changes nothing
    again = leasing.ensure_present(prov, lease_params(backend, "rs%s" % backend, count=2,
                                                      address_range="10.77.8.0/24"))
    assert not again["changed"]
