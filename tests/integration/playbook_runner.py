"""Run a real ansible-playbook against the lab and return its JSON result."""
import json
import os
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROJECT = "00000000-0000-0000-0000-000000000001"


def connection_vars(lab, provider):
    """module_defaults for the action group: the connection settings, set once."""
    if provider == "plunder":
        return {"provider": "plunder", "plunder_config": lab.plunder_config}
    return {"provider": "metal", "api_url": lab.metal_env["METALCTL_API_URL"],
            "api_hmac": lab.metal_env["METALCTL_HMAC"],
            "api_hmac_auth_type": lab.metal_env["METALCTL_HMAC_AUTH_TYPE"]}


def lease_defaults(provider, name):
    """Provider-specific lease options a playbook for that backend gives."""
    if provider == "plunder":
        third = 100 + (sum(map(ord, name)) % 150)
        return {"image": "preseed", "address_range": "10.77.%d.1-10.77.%d.250" % (third, third)}
    return {"image": "debian-12", "project": PROJECT}


class Result:
    def __init__(self, proc, data):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.data = data

    @property
    def stats(self):
        return (self.data or {}).get("stats", {}).get("localhost", {})

    def task(self, name):
        for play in (self.data or {}).get("plays", []):
            for task in play.get("tasks", []):
                if task["task"]["name"] == name:
                    return task["hosts"]["localhost"]
        raise KeyError("no task %r in %s" % (name, self.stdout[-2000:]))

    def failed_msg(self):
        for play in (self.data or {}).get("plays", []):
            for task in play.get("tasks", []):
                res = task["hosts"].get("localhost", {})
                if res.get("failed"):
                    return res.get("msg", "")
        return None


def run_playbook(tmp_path, tasks, module_defaults=None, check=False, env=None, extra_args=()):
    play = {"name": "fleet", "hosts": "localhost", "connection": "local", "gather_facts": False,
            "tasks": tasks}
    if module_defaults is not None:
        play["module_defaults"] = {"group/baremetal.fleet.pool": module_defaults}
    book = tmp_path / ("play-%d.yml" % len(list(tmp_path.glob("play-*.yml"))))
    book.write_text(yaml.safe_dump([play], sort_keys=False))
    inv = tmp_path / "hosts.ini"
    inv.write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    run_env = dict(os.environ)
    for key in ("FLEET_PROVIDER", "PLUNDER_CLIENT_CONFIG", "METALCTL_API_URL", "METALCTL_HMAC",
                "METALCTL_HMAC_AUTH_TYPE", "METALCTL_APITOKEN"):
        run_env.pop(key, None)
    site = [p for p in sys.path if p.endswith("site-packages")]
    run_env.update({
        "ANSIBLE_COLLECTIONS_PATH": os.pathsep.join([os.path.join(ROOT, "build", "collections")] + site),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
    })
    run_env.update(env or {})
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", str(inv), str(book)]
    if check:
        cmd.append("--check")
    cmd.extend(extra_args)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=600, cwd=str(tmp_path))
    data = None
    try:
        data = json.loads(proc.stdout[proc.stdout.index("{"):])
    except ValueError:
        data = None
    return Result(proc, data)
