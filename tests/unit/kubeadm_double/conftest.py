"""Fixtures for the kubeadm test double (helpers in fleetlab.kubeadm_double.testing)."""
import os
import shutil
import tempfile

import pytest

from fleetlab.kubeadm_double.testing import NodeRoot, cluster_lock


@pytest.fixture
def double_cluster_lock():
    with cluster_lock():
        yield


@pytest.fixture
def make_node(double_cluster_lock):
    nodes = []
    # short paths: unix socket names are limited to 108 bytes (pytest's tmp_path can be longer)
    base = tempfile.mkdtemp(prefix="kd-", dir="/tmp")

    def _make(name, address="127.0.0.1", **kwargs):
        node = NodeRoot(os.path.join(base, name), name, address, **kwargs)
        nodes.append(node)
        return node

    yield _make
    for node in nodes:
        node.close()
    shutil.rmtree(base, ignore_errors=True)


