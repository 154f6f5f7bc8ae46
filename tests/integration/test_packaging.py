"""The collection as users get it: the built tarball installed into an empty path answers
ansible-inventory against the lab, and its execution-environment files give ansible-builder a
valid build context with the collection's Python and system dependencies."""
import glob
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.lab]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def _run(argv, **kwargs):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kwargs)
    assert out.returncode == 0, "%s\n%s\n%s" % (" ".join(argv), out.stdout[-3000:], out.stderr[-3000:])
    return out


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    _run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--output-path", str(dist), ROOT])
    (path,) = glob.glob(str(dist / "baremetal-fleet-*.tar.gz"))
    return path


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory):
    """The tarball installed into an empty collections path (dependencies come from elsewhere:
    no Galaxy server here)."""
    path = tmp_path_factory.mktemp("collections")
    # only the empty path: the checkout's own copy must not count as "already installed"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(path))
    _run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--no-deps", "-p", str(path), tarball],
         env=env)
    assert os.path.isdir(os.path.join(str(path), "ansible_collections", "baremetal", "fleet"))
    return path


def test_installed_tarball_lists_the_lab_pool(installed, lab, tmp_path):
    names = sorted(os.listdir(os.path.join(installed, "ansible_collections", "baremetal", "fleet")))
    assert "plugins" in names and "roles" in names and "playbooks" in names
    for private in (".lab", "lab", "ee", "bench", ".venv", "tests/unit", "tests/integration", "tests/lab"):
        assert not os.path.exists(os.path.join(installed, "ansible_collections", "baremetal", "fleet", private)), \
            "%s shipped in the tarball" % private
    source = tmp_path / "lab.pool.yml"
    source.write_text(yaml.safe_dump({"plugin": "baremetal.fleet.pool", "provider": "metal"}))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(installed), METALCTL_API_URL=lab.metal_url,
               METALCTL_HMAC=lab.hmac_keys["view"], METALCTL_HMAC_AUTH_TYPE="Metal-View",
               ANSIBLE_INVENTORY_ENABLED="baremetal.fleet.pool")
    graph = _run([os.path.join(BIN, "ansible-inventory"), "-i", str(source), "--graph"], env=env, cwd=str(tmp_path))
    assert "@unleased:" in graph.stdout
    listed = json.loads(_run([os.path.join(BIN, "ansible-inventory"), "-i", str(source), "--list"], env=env,
                             cwd=str(tmp_path)).stdout)
    assert len(listed["_meta"]["hostvars"]) > 0


def test_execution_environment_build_context(installed, tarball, tmp_path):
    builder = os.path.join(BIN, "ansible-builder")
    # what the collection declares, as ansible-builder reads it from an installed collection
    intro = _run([builder, "introspect", "--sanitize", str(installed)])
    assert "kubernetes" in intro.stdout and "openssh-client" in intro.stdout, intro.stdout
    # the EE definition users build from, with the collection taken from the built tarball
    work = tmp_path / "ee"
    shutil.copytree(os.path.join(ROOT, "ee"), str(work))
    reqs = yaml.safe_load((work / "requirements.yml").read_text())
    reqs["collections"] = [{"name": tarball, "type": "file"} if c["name"] == "baremetal.fleet" else c
                           for c in reqs["collections"]]
    (work / "requirements.yml").write_text(yaml.safe_dump(reqs))
    context = tmp_path / "context"
    _run([builder, "create", "-f", str(work / "execution-environment.yml"), "--context", str(context),
          "--output-filename", "Containerfile"], cwd=str(work))
    containerfile = (context / "Containerfile").read_text()
    assert "ansible-galaxy collection install" in containerfile
    staged = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    assert any(c["name"] == tarball for c in staged["collections"])
