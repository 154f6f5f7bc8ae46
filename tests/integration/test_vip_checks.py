"""control_plane_vip (keepalived method) refuses a bad VIP before it installs anything: run against
this host's loopback interface (127.0.0.1/8), in check mode, as the control plane."""
import os
import subprocess
import sys

import pytest

from playbook_runner import ROOT

pytestmark = pytest.mark.integration

PLAY = """\
- hosts: kube_control_plane
  connection: local
  gather_facts: true
  gather_subset: [min, network]
  roles:
    - role: baremetal.fleet.control_plane_vip
"""


def _run(tmp_path, vip, port=None):
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "inv").write_text("[kube_control_plane]\nvipcp ansible_host=127.0.0.1 machine_address=127.0.0.1\n")
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([os.path.join(ROOT, "build", "collections")] + site),
               ANSIBLE_NOCOLOR="1")
    extra = ["-e", "control_plane_vip_port=%d" % port] if port else []
    return subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(tmp_path / "inv"),
         str(tmp_path / "play.yml"), "--check", "-e", "control_plane_vip_address=%s" % vip,
         "-e", "control_plane_vip_method=keepalived", "-e", "control_plane_vip_interface=lo",
         "-e", "ansible_python_interpreter=%s" % sys.executable] + extra,
        capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("vip, port, message", [
    ("10.0.0.5", None, "must be a free address of the network of lo (127.0.0.1/255.0.0.0)"),   # outside
    ("127.0.0.1", None, "not a machine's own"),                                                # a machine's
    ("127.0.0.2", 6443, "must differ from the API server's"),                                  # port clash
    ("127.0.0.2", None, "The VIP 127.0.0.2 is already in use"),                                # answers pings
])
def test_a_bad_vip_is_refused_before_anything_is_installed(tmp_path, vip, port, message):
    proc = _run(tmp_path, vip, port)
    assert proc.returncode != 0
    assert message in proc.stdout, proc.stdout[-3000:]
    # nothing was installed or written: the refusal comes before the package and template tasks
    assert "Install keepalived" not in proc.stdout.split(message)[1]
