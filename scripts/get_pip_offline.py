"""Stand-in for ansible-test's get-pip bootstrap script, for hosts that reach PyPI but
not ansible-test's download site: installs pip with the standard library's ensurepip,
then lets that pip install the requested version from the package index.

ansible-test runs pip with a trimmed environment, so the system CA bundle (which a
TLS-intercepting mirror may need) is written into the venv's own pip.conf."""
import ensurepip
import os
import subprocess
import sys

BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")

bundle = next((path for path in BUNDLES if os.path.exists(path)), None)
if bundle and sys.prefix != sys.base_prefix:
    with open(os.path.join(sys.prefix, "pip.conf"), "w") as handle:
        handle.write("[global]\ncert = %s\n" % bundle)

args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
env = dict(os.environ)
ensurepip.bootstrap(upgrade=True, default_pip=True)  # it points PIP_CONFIG_FILE at /dev/null
if args:
    subprocess.check_call([sys.executable, "-m", "pip", "install"] + args, env=env)
