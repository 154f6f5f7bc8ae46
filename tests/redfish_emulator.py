"""sushy-tools' Redfish BMC emulator for tests: one fake system (power changes take 1-11 s, as a
BMC's do), HTTP basic auth with a bcrypt htpasswd file, on 127.0.0.1; stopped by PID."""
import os
import socket
import subprocess
import sys
import time
import urllib.request

SYSTEM = "6b0b2e8e-7c0a-4a36-9b56-0d5f3c1e9a11"
MAC = "52:54:00:fe:00:01"
USER, PASSWORD = "admin", "s3cret-bmc"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedfishEmulator:
    def __init__(self, workdir, power_state="Off"):
        import bcrypt
        self.workdir, self.port = str(workdir), free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        htpasswd = os.path.join(self.workdir, "htpasswd")
        with open(htpasswd, "wb") as handle:
            handle.write(USER.encode() + b":" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt()) + b"\n")
        self.config = os.path.join(self.workdir, "emulator.conf")
        with open(self.config, "w") as handle:
            handle.write("SUSHY_EMULATOR_AUTH_FILE = %r\nSUSHY_EMULATOR_STATE_DIR = %r\n"
                         "SUSHY_EMULATOR_FAKE_SYSTEMS = [{'uuid': %r, 'name': 'bmc-test', 'power_state': %r,"
                         " 'nics': [{'mac': %r, 'ip': '127.0.0.1'}]}]\n"
                         % (htpasswd, os.path.join(self.workdir, "state"), SYSTEM, power_state, MAC))
        self.proc = None

    def start(self, timeout=30):
        self.log = open(os.path.join(self.workdir, "emulator.log"), "w")
        self.proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "sushy-emulator"), "--fake",
                                      "--config", self.config, "--interface", "127.0.0.1", "--port", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while True:
            try:
                urllib.request.urlopen(self.url + "/redfish/v1/", timeout=2)
                return self
            except OSError as exc:
                if self.proc.poll() is not None or time.time() > deadline:
                    self.stop()
                    with open(os.path.join(self.workdir, "emulator.log")) as handle:
                        raise AssertionError("the BMC emulator did not start: %s\n%s" % (exc, handle.read()))
                time.sleep(0.3)

    def system(self):
        import base64
        import json
        request = urllib.request.Request(self.url + "/redfish/v1/Systems/%s" % SYSTEM)
        request.add_header("Authorization", "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode())
        return json.loads(urllib.request.urlopen(request, timeout=5).read())

    def entry(self, **overrides):
        """The machine's entry for a module's ``bmc`` map."""
        return dict({"address": self.url, "username": USER, "password": PASSWORD}, **overrides)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if getattr(self, "log", None):
            self.log.close()
