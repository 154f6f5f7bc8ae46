"""Vagrant (python-vagrant + vagrant-libvirt) for the lab's ``vagrant`` driver.

The lab's own ``lab/Vagrantfile`` describes PXE-only machines from a JSON spec; the Vagrant state
(``.vagrant``) lives in the lab's state dir, so the checkout stays clean and two labs never share it.
"""
import json
import os
import shutil
import subprocess

import fleetlab

VAGRANTFILE_DIR = os.path.abspath(os.path.join(os.path.dirname(fleetlab.__file__), ".."))


def missing():
    """Why Vagrant cannot be used here (str), or None."""
    if not shutil.which("vagrant"):
        return "vagrant is not installed (apt-get install vagrant vagrant-libvirt)"
    try:
        import vagrant  # noqa: F401  (python-vagrant)
    except ImportError:
        return "python-vagrant is not installed"
    if not os.path.exists(os.path.join(VAGRANTFILE_DIR, "Vagrantfile")):
        return "lab/Vagrantfile not found next to the fleetlab package"
    out = subprocess.run(["vagrant", "plugin", "list"], capture_output=True, text=True, env=_env({}))
    if "vagrant-libvirt" not in out.stdout:
        return "the vagrant-libvirt plugin is not installed"
    return None


def _env(info):
    env = dict(os.environ)
    env.update({"VAGRANT_CHECKPOINT_DISABLE": "1", "VAGRANT_BOX_UPDATE_CHECK_DISABLE": "1",
                "VAGRANT_CWD": VAGRANTFILE_DIR, "VAGRANT_DEFAULT_PROVIDER": "libvirt"})
    if info.get("dotfile"):
        env["VAGRANT_DOTFILE_PATH"] = info["dotfile"]
    if info.get("spec"):
        env["FLEETLAB_VAGRANT_SPEC"] = info["spec"]
    return env


def write_spec(path, spec):
    with open(path + ".tmp", "w") as f:
        json.dump(spec, f, indent=1)
    os.replace(path + ".tmp", path)


def client(info, log_path):
    """A python-vagrant client for the lab's Vagrantfile and state (output appended to ``log_path``)."""
    import vagrant

    out = open(log_path, "a")
    return vagrant.Vagrant(root=VAGRANTFILE_DIR, env=_env(info), out_cm=lambda: _Keep(out),
                           err_cm=lambda: _Keep(out))


class _Keep:
    """Context manager handing python-vagrant an open log file without closing it."""

    def __init__(self, fh):
        self.fh = fh

    def __enter__(self):
        return self.fh

    def __exit__(self, *exc):
        self.fh.flush()
        return False


def up(info, log_path):
    client(info, log_path).up(provider="libvirt", no_provision=True)


def destroy(info, uri=None, log=print):
    """``vagrant destroy -f`` for a lab's machines (best effort: tear-down goes on without it)."""
    if not shutil.which("vagrant") or not info.get("spec") or not os.path.exists(info["spec"]):
        return False
    try:
        env = _env(info)
        subprocess.run(["vagrant", "destroy", "-f"], env=env, capture_output=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        if log:
            log("vm: vagrant destroy failed: %s" % exc)
        return False
    return True
