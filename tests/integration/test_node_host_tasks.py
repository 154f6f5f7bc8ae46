"""kubeadm_node's tasks that change the machine itself, run on this host inside a private mount and
network namespace (unshare), so that nothing of the host changes: /etc/sysctl.d and
/etc/modules-load.d are empty tmpfs mounts there, the net.* parameters belong to that namespace, and
/var/lib/dpkg is a copy. For each: --check reports and changes nothing, the first run applies, the
second changes nothing."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from playbook_runner import ROOT

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare")]

PLAY = """\
- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    kubeadm_node_kernel_modules: [overlay]
    kubeadm_node_sysctls: {net.ipv4.ip_forward: 1, net.ipv4.conf.all.rp_filter: 2}
    kubeadm_node_packages: [coreutils, findutils]
  tasks:
    - ansible.builtin.include_role:
        name: baremetal.fleet.kubeadm_node
        tasks_from: %s
"""

# one shell in the namespaces: the three runs, then what the kernel and the files hold
SETUP = """\
set -e
mount -t tmpfs none /etc/sysctl.d
mount -t tmpfs none /etc/modules-load.d
cp -a /var/lib/dpkg dpkg && mount --bind dpkg /var/lib/dpkg
"""

SCRIPT = """\
"$PLAYBOOK" -i localhost, --check play.yml > check.json
sysctl -n net.ipv4.ip_forward net.ipv4.conf.all.rp_filter > before.txt
ls /etc/sysctl.d > files-after-check.txt
"$PLAYBOOK" -i localhost, play.yml > first.json
"$PLAYBOOK" -i localhost, play.yml > second.json
sysctl -n net.ipv4.ip_forward net.ipv4.conf.all.rp_filter > after.txt
cat /etc/sysctl.d/99-kubernetes.conf > sysctl.conf
cat /etc/modules-load.d/kubernetes.conf > modules.conf
"""


def _tasks(path):
    data = json.loads(path.read_text()[path.read_text().index("{"):])
    tasks = {t["task"]["name"]: t["hosts"]["localhost"] for p in data["plays"] for t in p["tasks"]
             if "localhost" in t["hosts"]}
    return tasks, data["stats"]["localhost"]


def _in_namespaces(tmp_path, tasks_from, script):
    (tmp_path / "play.yml").write_text(PLAY % tasks_from)
    (tmp_path / "run.sh").write_text(SETUP + script)
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = dict(os.environ, PLAYBOOK=os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
               ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([os.path.join(ROOT, "build", "collections")] + site),
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    proc = subprocess.run(["unshare", "--mount", "--net", "--propagation", "private", "sh", "run.sh"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_kernel_tasks_check_apply_and_idempotence(tmp_path):
    _in_namespaces(tmp_path, "kernel.yml", SCRIPT)
    apply = "baremetal.fleet.kubeadm_node : Load the modules and set the parameters on the running kernel"

    check, stats = _tasks(tmp_path / "check.json")
    # a new network namespace starts with forwarding off and rp_filter 0: both would change
    assert check[apply]["changed"] and check[apply]["stdout_lines"] == [
        "sysctl net.ipv4.ip_forward=1", "sysctl net.ipv4.conf.all.rp_filter=2"]
    assert (tmp_path / "before.txt").read_text().split() == ["0", "0"]
    assert (tmp_path / "files-after-check.txt").read_text() == ""

    first, stats = _tasks(tmp_path / "first.json")
    assert stats["changed"] == 3 and stats["failures"] == 0
    assert (tmp_path / "after.txt").read_text().split() == ["1", "2"]
    assert "net.ipv4.ip_forward = 1\nnet.ipv4.conf.all.rp_filter = 2\n" in (tmp_path / "sysctl.conf").read_text()
    assert (tmp_path / "modules.conf").read_text().splitlines()[-1] == "overlay"

    second, stats = _tasks(tmp_path / "second.json")
    assert stats["changed"] == 0 and stats["failures"] == 0
    assert second[apply]["stdout"] == ""


HOLD_SCRIPT = """\
"$PLAYBOOK" -i localhost, --check play.yml > check.json
apt-mark showhold > held-after-check.txt
"$PLAYBOOK" -i localhost, play.yml > first.json
"$PLAYBOOK" -i localhost, play.yml > second.json
apt-mark showhold > held.txt
"""


def test_hold_check_apply_and_idempotence(tmp_path):
    _in_namespaces(tmp_path, "hold.yml", HOLD_SCRIPT)
    task = "baremetal.fleet.kubeadm_node : Hold the Kubernetes packages at this version"
    check, _stats = _tasks(tmp_path / "check.json")
    assert check[task]["changed"] and check[task]["stdout_lines"] == ["coreutils", "findutils"]
    assert "coreutils" not in (tmp_path / "held-after-check.txt").read_text().split()
    first, stats = _tasks(tmp_path / "first.json")
    assert first[task]["changed"] and stats["failures"] == 0
    assert {"coreutils", "findutils"} <= set((tmp_path / "held.txt").read_text().split())
    second, stats = _tasks(tmp_path / "second.json")
    assert not second[task]["changed"] and stats["changed"] == 0
