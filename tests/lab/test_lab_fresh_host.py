"""A fresh machine: what the lab does where libvirtd never ran, when its driver cannot start, and
when set-up never filled the cache. These need no VM to boot (seconds each); the libvirt smoke test
(``test_libvirt_lab.py``) runs its VMs inside a fresh /run as well.

Every broken driver must make ``fleetlab up`` (and the main job) fail fast, naming the cause, and
leave nothing running.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from labclients import Metal, Plunder

pytestmark = [pytest.mark.lab, pytest.mark.vm]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAIL_FAST = 120  # seconds: a broken driver is reported within this


def _reason():
    from fleetlab.vm import host

    return host.cannot_run_vms()


@pytest.fixture
def vm_host(vm_host):  # conftest's lock, after the reason to skip
    reason = _reason()
    if reason:
        print("SKIP fresh-host tests: %s" % reason)
        pytest.skip(reason)
    yield vm_host


def _broken_libvirtd(tmp_path):
    """A PATH whose libvirtd refuses to start, as a broken installation would."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "libvirtd").write_text("#!/bin/sh\necho 'libvirtd: cannot start: broken on purpose by the test' >&2\n"
                                   "exit 1\n")
    (shim / "libvirtd").chmod(0o755)
    return "%s:%s" % (shim, os.environ["PATH"])


def _without_libvirtd(tmp_path):
    """A PATH on which every tool the lab uses is found, except libvirtd."""
    shim = tmp_path / "bin"
    shim.mkdir()
    dirs = [d for d in os.environ["PATH"].split(":") if d]
    for d in dirs:
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            if name == "libvirtd" or (shim / name).exists():
                continue
            path = os.path.join(d, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                (shim / name).symlink_to(path)
    return str(shim)


def _fleetlab(args, env=None, timeout=FAIL_FAST + 60):
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "fleetlab"] + args, capture_output=True, text=True,
                         env=env, timeout=timeout)
    return out, time.monotonic() - t0


def _leftovers(state):
    """Processes and namespaces of this lab still present (by the names and paths the lab gives them)."""
    from fleetlab.vm.lab import lab_id

    lid = lab_id(state)
    left = []
    if os.path.exists("/run/netns/fl" + lid):
        left.append("netns fl" + lid)
    for pattern in ("/run/fleetlab/%s/" % lid, "qemu-system-x86_64.*guest=fl%s-" % lid):
        out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
        left += ["%s: pid %s" % (pattern, p) for p in out.stdout.split()]
    if os.path.exists(os.path.join(state, "vmlab.json")):
        left.append("vmlab.json")
    return left


def _lab_pid(state):
    try:
        with open(os.path.join(state, "lab.json")) as fh:
            return json.load(fh).get("pid")
    except (OSError, ValueError):
        return None


def test_up_fails_fast_naming_a_libvirtd_that_does_not_start(vm_host, tmp_path):
    state = str(tmp_path / "lab")
    env = dict(os.environ, PATH=_broken_libvirtd(tmp_path))
    out, took = _fleetlab(["up", "--driver", "libvirt", "--machines", "1", "--state", state,
                           "--plunder-port", "0", "--metal-port", "0", "--timeout", "900"], env=env)
    print("broken libvirtd: fleetlab up exited %d after %.1f s" % (out.returncode, took))
    assert out.returncode != 0, out.stdout
    assert took < FAIL_FAST
    assert "driver failed" in out.stderr and "broken on purpose" in out.stderr, out.stderr
    assert os.path.join(state, "fleetlab.log") in out.stderr
    # the lab was stopped and took down what it had started: daemons, namespace, record
    assert _leftovers(state) == []
    status, _ = _fleetlab(["status", "--state", state, "--json"])
    assert status.returncode != 0


def test_up_fails_fast_naming_a_missing_libvirtd(vm_host, tmp_path):
    state = str(tmp_path / "lab")
    env = dict(os.environ, PATH=_without_libvirtd(tmp_path))
    out, took = _fleetlab(["up", "--driver", "libvirt", "--machines", "1", "--state", state,
                           "--plunder-port", "0", "--metal-port", "0", "--timeout", "900"], env=env)
    assert out.returncode != 0, out.stdout
    assert took < FAIL_FAST
    assert "libvirtd is not installed" in out.stderr, out.stderr
    assert _leftovers(state) == []


def test_up_without_a_prepared_cache_says_to_run_prepare(vm_host, tmp_path):
    state = str(tmp_path / "lab")
    cache = tmp_path / "empty-cache"
    out, took = _fleetlab(["up", "--driver", "libvirt", "--machines", "1", "--state", state,
                           "--plunder-port", "0", "--metal-port", "0", "--driver-opt", "cache_dir=%s" % cache])
    assert out.returncode != 0
    assert took < FAIL_FAST
    assert "fleetlab prepare" in out.stderr and str(cache) in out.stderr, out.stderr
    assert _leftovers(state) == []


def test_a_failed_driver_shows_in_status_and_refuses_leases_at_once(vm_host, tmp_path):
    """A lab whose driver failed keeps serving only to say so: status exits non-zero with the
    cause, both faces refuse every call with it, and the client library fails within seconds."""
    from fleetlab.testing import LabServer

    state = str(tmp_path / "lab")
    lab = LabServer(state_dir=state, machines=2, driver="libvirt", start_timeout=60)
    old_path = os.environ["PATH"]
    os.environ["PATH"] = _broken_libvirtd(tmp_path)
    try:
        lab.start()
    finally:
        os.environ["PATH"] = old_path
    try:
        with pytest.raises(RuntimeError, match="broken on purpose"):
            lab.wait_ready(FAIL_FAST)
        status, _ = _fleetlab(["status", "--state", state])
        assert status.returncode != 0
        assert "driver FAILED" in status.stdout and "broken on purpose" in status.stdout, status.stdout
        data = json.loads(_fleetlab(["status", "--state", state, "--json"])[0].stdout)
        assert data["up"] and data["driver"]["phase"] == "failed"

        status_code, body = Metal(lab.metal_url, lab.hmac_keys["edit"]).raw("GET", "/v1/machine")
        assert status_code == 503 and "broken on purpose" in body["message"]
        assert "broken on purpose" in Plunder(lab.plunder_config).call("GET", "/dhcp/unleased")["error"]

        from ansible_collections.baremetal.fleet.plugins.module_utils import connection
        from ansible_collections.baremetal.fleet.plugins.module_utils.pool import PoolError

        for params in ({"provider": "plunder", "plunder_config": lab.plunder_config},
                       {"provider": "metal", "api_url": lab.metal_url, "api_hmac": lab.hmac_keys["edit"],
                        "api_hmac_auth_type": "Metal-Edit"}):
            prov = connection.provider_from_params(params, environ={})
            t0 = time.monotonic()
            with pytest.raises(PoolError) as err:
                prov.list_machines("unleased")
            took = time.monotonic() - t0
            text = "%s %s" % (err.value, err.value.to_fail_kwargs())
            print("%s against a failed driver: error after %.1f s" % (params["provider"], took))
            assert "broken on purpose" in text, text
            assert took < 30
    finally:
        lab.stop(timeout=60)
    assert _leftovers(state) == []


def test_up_restarts_a_lab_whose_driver_had_failed(vm_host, tmp_path):
    """Re-running `fleetlab up` after fixing the cause replaces the failed lab instead of
    reporting "already running" (the main job is re-runnable)."""
    state = str(tmp_path / "lab")
    args = ["up", "--driver", "libvirt", "--machines", "1", "--state", state, "--plunder-port", "0",
            "--metal-port", "0", "--driver-opt", "cache_dir=%s" % (tmp_path / "empty")]
    first, _ = _fleetlab(args)
    assert first.returncode != 0
    assert _lab_pid(state) is None or not os.path.exists("/proc/%d" % _lab_pid(state))
    second, _ = _fleetlab(args)
    assert second.returncode != 0 and "already running" not in second.stdout


def test_main_job_fails_fast_with_the_cause(vm_host, tmp_path):
    """`bash scripts/lab-cluster.sh` with a libvirtd that cannot start stops within two minutes
    and says why (here set-up has already run: the test command runs it first)."""
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    env = dict(os.environ, PATH=_broken_libvirtd(tmp_path), FLEET_LAB_STATE=str(tmp_path / "cluster"))
    t0 = time.monotonic()
    out = subprocess.run(["bash", os.path.join(ROOT, "scripts", "lab-cluster.sh")], capture_output=True,
                         text=True, env=env, timeout=FAIL_FAST + 120, cwd=ROOT)
    took = time.monotonic() - t0
    print("main job with a broken libvirtd: exit %d after %.1f s" % (out.returncode, took))
    assert out.returncode != 0
    assert took < FAIL_FAST, (took, out.stdout[-2000:])
    assert "broken on purpose" in out.stderr + out.stdout, out.stderr[-3000:]
    assert _leftovers(str(tmp_path / "cluster")) == []
