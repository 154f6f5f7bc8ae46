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


RENDER = """\
- hosts: kube_control_plane
  connection: local
  gather_facts: false
  vars_files:
    - {defaults}
    - {settings}
  tasks:
    - name: Render keepalived.conf as this host, and as the peer named by _control_plane_vip_host
      ansible.builtin.copy:
        content: "{{{{ lookup('ansible.builtin.template', '{template}') }}}}"
        dest: "{out}/{{{{ _control_plane_vip_host | default(inventory_hostname) }}}}.conf"
        mode: "0600"
      delegate_to: localhost
"""


def _render(tmp_path, hosts, extra=()):
    (tmp_path / "settings.yml").write_text(
        "ansible_managed: managed\ncontrol_plane_vip_address: 10.9.0.250\ncontrol_plane_vip_method: keepalived\n"
        "control_plane_vip_interface: eth0\nkubeadm_control_plane_group: kube_control_plane\n"
        "_control_plane_vip_cidr: 10.9.0.11/255.255.255.0\n")
    (tmp_path / "render.yml").write_text(RENDER.format(
        defaults=os.path.join(ROOT, "roles", "control_plane_vip", "defaults", "main.yml"), settings=tmp_path / "settings.yml",
        template=os.path.join(ROOT, "roles", "control_plane_vip", "templates", "keepalived.conf.j2"), out=tmp_path))
    (tmp_path / "inv").write_text("[kube_control_plane]\n" + "".join(
        "%s machine_address=10.9.0.%d\n" % (h, 11 + i) for i, h in enumerate(hosts)))
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.pathsep.join([os.path.join(ROOT, "build", "collections")] + site),
               ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(tmp_path / "inv"),
         str(tmp_path / "render.yml"), "-e", "ansible_python_interpreter=%s" % sys.executable] + list(extra),
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return {h: (tmp_path / ("%s.conf" % h)).read_text() for h in hosts if (tmp_path / ("%s.conf" % h)).exists()}


def test_keepalived_configuration_for_one_control_plane_has_no_empty_unicast_block(tmp_path):
    """keepalived --config-test refuses a unicast_peer block without peers (seen on lab VMs)."""
    conf = _render(tmp_path, ["cp1"])["cp1"]
    assert "unicast_peer {" not in conf and "unicast_src_ip" not in conf
    assert "priority 150" in conf and "10.9.0.250/24 dev eth0" in conf


def test_keepalived_configuration_names_the_other_control_planes_and_can_be_rendered_for_a_peer(tmp_path):
    confs = _render(tmp_path, ["cp1", "cp2", "cp3"])
    peers = {h: c.split("unicast_peer {")[1].split("}")[0].split() for h, c in confs.items()}
    assert peers == {"cp1": ["10.9.0.12", "10.9.0.13"], "cp2": ["10.9.0.11", "10.9.0.13"],
                     "cp3": ["10.9.0.11", "10.9.0.12"]}
    assert "priority 149" in confs["cp2"] and "unicast_src_ip 10.9.0.12" in confs["cp2"]
    # the peers entry point renders another control plane's file from this host's play
    tmp2 = tmp_path / "as-peer"
    tmp2.mkdir()
    rendered = _render(tmp2, ["cp1", "cp2", "cp3"], ["--limit", "cp1", "-e", "_control_plane_vip_host=cp3"])
    assert list(rendered) == ["cp3"] and rendered["cp3"] == confs["cp3"]
