"""Start and stop a lab server from tests: ``LabServer(state_dir=..., machines=N, **options)``.

The server runs as a subprocess (``python -m fleetlab serve``) on free ports bound to
127.0.0.1; :meth:`LabServer.start` returns once ``plunderclient.yaml`` and ``metal.env``
exist (both faces accept connections) and raises with the server log otherwise.
Options map to ``fleetlab serve`` flags (``loop_period=1`` -> ``--loop-period 1``); the
default is the sim driver with the ``fast`` preset (install ~1.5 s, wipe ~1 s).
``wrapper`` is an argv prefix the server runs under (e.g. a fresh mount namespace);
:meth:`LabServer.wait_ready` waits for the driver's health and raises with its error.
"""

import json
import os
import signal
import subprocess
import sys
import time


class LabServer:
    def __init__(self, state_dir, machines=24, driver="sim", start_timeout=60.0, python=None, wrapper=(),
                 **options):
        self.state_dir = os.path.abspath(state_dir)
        self.wrapper = list(wrapper)
        self.machines = machines
        self.driver = driver
        self.start_timeout = start_timeout
        self.python = python or sys.executable
        self.options = options
        self.proc = None
        self.info = {}

    # -- process ------------------------------------------------------------------------
    def command(self):
        argv = self.wrapper + [self.python, "-m", "fleetlab", "serve", "--driver", self.driver, "--state", self.state_dir,
                "--plunder-port", str(self.options.get("plunder_port", 0)),
                "--metal-port", str(self.options.get("metal_port", 0)), "--quiet"]
        if self.machines is not None:
            argv += ["--machines", str(self.machines)]
        for key, value in self.options.items():
            if key in ("plunder_port", "metal_port") or value is None or value is False:
                continue
            flag = "--" + key.replace("_", "-")
            if value is True:
                argv.append(flag)
            elif isinstance(value, (list, tuple)):
                for v in value:
                    argv += [flag, str(v)]
            else:
                argv += [flag, str(value)]
        return argv

    def start(self):
        os.makedirs(self.state_dir, exist_ok=True)
        for name in ("plunderclient.yaml", "metal.env", "lab.json", "driver.json"):
            try:
                os.remove(os.path.join(self.state_dir, name))
            except FileNotFoundError:
                pass
        out = open(self.log_path, "ab")
        env = dict(os.environ)
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        out.close()
        deadline = time.time() + self.start_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("fleetlab exited with %s during start; log:\n%s" % (self.proc.returncode,
                                                                                     self.log_tail()))
            if all(os.path.exists(os.path.join(self.state_dir, n)) for n in ("plunderclient.yaml", "metal.env",
                                                                                "lab.json")):
                with open(os.path.join(self.state_dir, "lab.json"), encoding="utf-8") as fh:
                    self.info = json.load(fh)
                if self.info.get("pid") == self.proc.pid:
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("fleetlab did not come up within %ss; log:\n%s" % (self.start_timeout, self.log_tail()))

    def health(self):
        from .drivers.base import read_health

        return read_health(self.state_dir) or {}

    def wait_ready(self, timeout=1800.0):
        """Until the driver is ready; RuntimeError with the driver's error when it failed, or
        when it is not ready within ``timeout`` s or the server ended."""
        deadline = time.time() + timeout
        while True:
            health = self.health()
            if health.get("phase") == "ready":
                return health
            if health.get("phase") == "failed":
                raise RuntimeError("the lab's driver failed: %s" % health.get("error"))
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError("fleetlab exited with %s; log:\n%s" % (self.proc.returncode, self.log_tail()))
            if time.time() > deadline:
                raise RuntimeError("the lab's driver was not ready within %ss (%s); log:\n%s"
                                   % (timeout, health.get("phase"), self.log_tail()))
            time.sleep(0.5)

    def stop(self, timeout=10.0):
        """SIGTERM by PID, SIGKILL after ``timeout``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def kill(self):
        """``kill -9`` the server (for crash tests); ``start()`` brings it back on the same state."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- what clients need -----------------------------------------------------------------
    @property
    def log_path(self):
        return os.path.join(self.state_dir, "server.out")

    def log_tail(self, lines=60):
        text = ""
        for name in ("server.out", "fleetlab.log"):
            try:
                with open(os.path.join(self.state_dir, name), encoding="utf-8", errors="replace") as fh:
                    text += "==> %s <==\n" % name + "".join(fh.readlines()[-lines:])
            except OSError:
                pass
        return text

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    @property
    def plunder_config(self):
        return os.path.join(self.state_dir, "plunderclient.yaml")

    @property
    def plunder_url(self):
        return self.info["plunder_url"]

    @property
    def metal_url(self):
        return self.info["metal_url"]

    @property
    def hmac_keys(self):
        return dict(self.info["hmac_keys"])

    @property
    def metal_env(self):
        out = {}
        with open(os.path.join(self.state_dir, "metal.env"), encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line and "=" in line:
                    key, _, value = line.partition("=")
                    out[key] = value
        return out

    @property
    def pool_path(self):
        return os.path.join(self.state_dir, "pool.sqlite")

    def env(self):
        out = {"PLUNDER_CLIENT_CONFIG": self.plunder_config}
        out.update(self.metal_env)
        return out
