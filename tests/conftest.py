"""Shared pytest set-up: make ``ansible_collections.baremetal.fleet`` importable from the
checkout (a symlink under build/collections, as the test command also uses)."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, "build", "collections")
link = os.path.join(COLLECTIONS, "ansible_collections", "baremetal", "fleet")
if not os.path.islink(link):
    os.makedirs(os.path.dirname(link), exist_ok=True)
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(ROOT, link)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", COLLECTIONS)

# Ansible's collection loader, installed before anything imports ``ansible_collections``,
# so that plugin loading (inventory, doc fragments) and plain imports share one copy.
from ansible.plugins.loader import init_plugin_loader  # noqa: E402

init_plugin_loader([COLLECTIONS])

import pytest  # noqa: E402


def _lab_server(tmp_path_factory, name, **kwargs):
    from fleetlab.testing import LabServer  # the lab package, installed by `pip install -e .`

    return LabServer(state_dir=str(tmp_path_factory.mktemp(name)), **kwargs)


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """One sim lab (both faces) shared by a test session. Tests that change the pool
    must lease under unique names and give back what they took."""
    server = _lab_server(tmp_path_factory, "lab", machines=200)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_lab(tmp_path_factory):
    """A private sim lab for tests that need a known, untouched pool."""
    server = _lab_server(tmp_path_factory, "freshlab", machines=24)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redfish_bmc(tmp_path):
    """sushy-tools' Redfish emulator with one fake system (tests/redfish_emulator.py)."""
    from redfish_emulator import RedfishEmulator

    emulator = RedfishEmulator(tmp_path).start()
    try:
        yield emulator
    finally:
        emulator.stop()
