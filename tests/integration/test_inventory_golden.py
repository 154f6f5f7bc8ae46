"""Golden-output tests of the baremetal.fleet.pool inventory plugin: real `ansible-inventory
--list` / `--graph` runs against a fresh sim lab, for both providers, compared with the output
expected from the lab's known generated pool (fleetlab.store.generate_machines)."""
import datetime
import json
import os
import re
import subprocess
import sys
import time

import pytest

from fleetlab.store import generate_machines
from fleetlab.vendors import vendor_for

pytestmark = [pytest.mark.lab, pytest.mark.integration]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
PROVIDERS = ("plunder", "metal")
FRESH_LAB_MACHINES = 24  # tests/conftest.py fresh_lab


def _collections_path():
    import sysconfig

    return "%s:%s" % (os.path.join(ROOT, "build", "collections"), sysconfig.get_paths()["purelib"])


def lab_env(lab, **extra):
    env = dict(os.environ)
    for key in ("FLEET_PROVIDER", "PLUNDER_CLIENT_CONFIG", "METALCTL_API_URL", "METALCTL_HMAC",
                "METALCTL_HMAC_AUTH_TYPE", "METALCTL_APITOKEN", "ANSIBLE_INVENTORY_CACHE"):
        env.pop(key, None)
    env.update(lab.env())
    env["ANSIBLE_COLLECTIONS_PATH"] = _collections_path()
    env["ANSIBLE_NOCOLOR"] = "1"
    env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "true"  # a source that fails is an error, not a warning
    env.update(extra)
    return env


def write_config(tmp_path, provider, text="", name=None):
    path = tmp_path / (name or "%s.pool.yml" % provider)
    path.write_text("plugin: baremetal.fleet.pool\nprovider: %s\n%s" % (provider, text))
    return str(path)


def inventory(path, env, *args, check=True):
    proc = subprocess.run([os.path.join(BIN, "ansible-inventory"), "-i", path] + list(args), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
        assert "[WARNING]" not in proc.stderr and "[ERROR]" not in proc.stderr, proc.stderr
    return proc


def listing(path, env, *args):
    return json.loads(inventory(path, env, "--list", *args).stdout)


def wait_for_pool(path, env, count, timeout=30):
    """The sim lab seeds its pool at start; wait until every machine shows as unleased."""
    deadline = time.time() + timeout
    while True:
        data = listing(path, env)
        if len(data["_meta"]["hostvars"]) == count or time.time() > deadline:
            return data
        time.sleep(0.5)


# --- expected output, from the lab's generated pool -------------------------------------------
def host_name(mac):
    return "m-" + mac.replace(":", "-")


def group_part(attr, value):
    part = re.sub(r"[^a-z0-9_]+", "_", value.lower()).strip("_")
    return part if part.startswith(attr + "_") else "%s_%s" % (attr, part)


def expected_host(provider, m):
    """Hostvars of one unleased generated machine as each face reports it."""
    mac = m["mac"]
    hv = {
        "fleet_mac": mac, "fleet_provider": provider, "fleet_state": "unleased", "fleet_vendor": vendor_for(mac),
        "fleet_last_seen": "<time>", "fleet_lease": None, "fleet_lease_name": None, "fleet_hostname": None,
        "fleet_address": None, "fleet_image": None, "fleet_owned": False,
    }
    if provider == "plunder":
        # plunder's API knows MACs only: no size, partition, rack or labels
        hv.update({"fleet_id": mac, "fleet_provider_id": "plunder://" + mac, "fleet_size": "",
                   "fleet_partition": "", "fleet_rack": "", "fleet_labels": {}, "fleet_last_event": None})
    else:
        hv.update({"fleet_id": m["id"], "fleet_provider_id": "metal://" + m["id"], "fleet_size": m["size"],
                   "fleet_partition": m["partition"], "fleet_rack": m["rack"], "fleet_labels": dict(m["labels"]),
                   "fleet_last_event": "Waiting"})
    return hv


def expected_inventory(provider, machines):
    """(hostvars by name, members by group in the order --graph shows them)."""
    hosts = {}
    groups = {}
    for m in machines:
        name = host_name(m["mac"])
        hv = expected_host(provider, m)
        hosts[name] = hv
        for attr in ("vendor", "size", "rack", "partition"):
            if hv["fleet_" + attr]:
                groups.setdefault(group_part(attr, hv["fleet_" + attr]), []).append(name)
    ordered = [("ungrouped", []), ("unleased", sorted(hosts)), ("leased", [])]
    ordered += [(g, sorted(groups[g])) for g in sorted(groups)]
    return hosts, ordered


def expected_graph(ordered_groups):
    lines = ["@all:"]
    for group, members in ordered_groups:
        lines.append("  |--@%s:" % group)
        lines.extend("  |  |--%s" % h for h in members)
    return "\n".join(lines)


# --- normalising the real output ---------------------------------------------------------------
def plain(value):
    """The data without ansible-core's ``__ansible_unsafe`` markers (values from the server are
    marked unsafe: they are never rendered as templates)."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return dict((k, plain(v)) for k, v in value.items())
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def check_time(value):
    stamp = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    age = abs((datetime.datetime.now(datetime.timezone.utc) - stamp).total_seconds())
    assert age < 3600, value
    return "<time>"


def normalised_hosts(data, source):
    out = {}
    for name, hv in data["_meta"]["hostvars"].items():
        hv = plain(hv)
        # ansible-inventory leaves the magic inventory_file/inventory_dir out of --list
        assert hv.pop("inventory_file", source) == source
        assert hv.pop("inventory_dir", os.path.dirname(source)) == os.path.dirname(source)
        if hv.get("fleet_last_seen"):
            hv["fleet_last_seen"] = check_time(hv["fleet_last_seen"])
        out[name] = hv
    return out


def groups_of(data):
    return dict((g, sorted(data.get(g, {}).get("hosts", []))) for g in data["all"]["children"])


# --- tests ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
def test_golden_list_and_graph(fresh_lab, tmp_path, provider):
    env = lab_env(fresh_lab)
    source = write_config(tmp_path, provider)
    machines = generate_machines(FRESH_LAB_MACHINES)
    want_hosts, want_groups = expected_inventory(provider, machines)

    data = wait_for_pool(source, env, len(machines))
    assert normalised_hosts(data, source) == want_hosts
    assert groups_of(data) == dict(want_groups)
    # values that come from the server are marked unsafe (never templated)
    some = data["_meta"]["hostvars"][host_name(machines[0]["mac"])]
    assert some["fleet_vendor"] == {"__ansible_unsafe": vendor_for(machines[0]["mac"])}

    graph = inventory(source, env, "--graph").stdout.rstrip("\n")
    assert graph == expected_graph(want_groups)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_cache_hit_needs_no_server(fresh_lab, tmp_path, provider):
    env = lab_env(fresh_lab)
    cache_dir = tmp_path / "cache"
    source = write_config(tmp_path, provider, "cache: true\ncache_plugin: ansible.builtin.jsonfile\n"
                                               "cache_connection: %s\ncache_timeout: 600\n"
                                               "api_retries: 0\n" % cache_dir)
    wait_for_pool(write_config(tmp_path, provider, name="nocache.pool.yml"), env, FRESH_LAB_MACHINES)
    first = inventory(source, env, "--list").stdout
    assert len(json.loads(first)["_meta"]["hostvars"]) == FRESH_LAB_MACHINES
    assert len(os.listdir(str(cache_dir))) == 1  # one entry for the one source
    first_graph = inventory(source, env, "--graph").stdout

    fresh_lab.stop()  # from here on every server call would fail
    assert inventory(source, env, "--list").stdout == first  # byte for byte, last_seen included
    assert inventory(source, env, "--graph").stdout == first_graph

    # --flush-cache goes to the server, which is down: a clear error naming its URL
    proc = inventory(source, env, "--list", "--flush-cache", check=False)
    assert proc.returncode != 0
    url = fresh_lab.info["plunder_url"] if provider == "plunder" else fresh_lab.info["metal_url"]
    assert "baremetal.fleet.pool" in proc.stderr
    assert url in proc.stderr, proc.stderr
    assert fresh_lab.hmac_keys["edit"] not in proc.stderr


def test_filters_and_constructed_options_metal(fresh_lab, tmp_path):
    env = lab_env(fresh_lab)
    machines = generate_machines(FRESH_LAB_MACHINES)
    text = """filters:
  size: v1-small-x86
  rack: [rack-02]
compose:
  ansible_user: "'metal'"
  fleet_index: fleet_labels['fleetlab.io/index'] | int
groups:
  first_ten: fleet_index < 10
keyed_groups:
  - key: fleet_vendor
    prefix: made_by
  - key: fleet_size
    leading_separator: false
leading_separator: false
default_groups: false
"""
    source = write_config(tmp_path, "metal", text)
    data = listing(source, env)
    chosen = [m for m in machines if m["size"] == "v1-small-x86" and m["rack"] == "rack-02"]
    assert chosen, "the generated pool has small machines in rack-02"
    names = sorted(host_name(m["mac"]) for m in chosen)
    assert sorted(data["_meta"]["hostvars"]) == names

    hostvars = plain(data["_meta"]["hostvars"])
    for m in chosen:
        hv = hostvars[host_name(m["mac"])]
        assert hv["ansible_user"] == "metal"
        assert hv["fleet_index"] == int(m["labels"]["fleetlab.io/index"])
    groups = groups_of(data)
    assert groups["first_ten"] == sorted(host_name(m["mac"]) for m in chosen
                                         if int(m["labels"]["fleetlab.io/index"]) < 10)
    assert groups["v1_small_x86"] == names
    by_vendor = {}
    for m in chosen:
        key = "made_by_" + re.sub(r"[^A-Za-z0-9_]", "_", vendor_for(m["mac"]))
        by_vendor.setdefault(key, []).append(host_name(m["mac"]))
    for group, members in by_vendor.items():
        assert groups[group] == sorted(members)
    assert "unleased" not in groups and "rack_02" not in groups  # default groups are off


def test_filters_plunder_are_applied_on_the_controller(fresh_lab, tmp_path):
    env = lab_env(fresh_lab)
    machines = generate_machines(FRESH_LAB_MACHINES)
    macs = [machines[0]["mac"], machines[1]["mac"], machines[6]["mac"]]
    text = "filters:\n  vendor: dell\n  mac: [%s]\n" % ", ".join('"%s"' % m for m in macs)
    source = write_config(tmp_path, "plunder", text)
    data = listing(source, env)
    want = sorted(host_name(m) for m in macs if vendor_for(m) == "Dell Inc.")
    assert want and len(want) < len(macs)
    assert sorted(data["_meta"]["hostvars"]) == want
    assert groups_of(data)["vendor_dell_inc"] == want


LEASE_PLAY = """
- name: Lease two machines for the inventory test
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Lease
      baremetal.fleet.lease:
        provider: {provider}
        name: golden
        machines:
          - name: golden-0
            mac: "{mac_a}"
{extra_a}
          - name: golden-1
            mac: "{mac_b}"
{extra_b}
{extra}
"""


def lease_two(lab, tmp_path, provider, machines):
    if provider == "plunder":
        extra_a = "            address: 10.99.0.11"
        extra_b = "            address: 10.99.0.12"
        extra = ""
    else:
        extra_a = extra_b = ""
        extra = ("        project: 00000000-0000-0000-0000-000000000001\n"
                 "        image: debian-12")
    play = tmp_path / "lease.yml"
    play.write_text(LEASE_PLAY.format(provider=provider, mac_a=machines[0]["mac"], mac_b=machines[1]["mac"],
                                      extra_a=extra_a, extra_b=extra_b, extra=extra))
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", "ansible_python_interpreter=%s" % sys.executable, str(play)],
                          env=lab_env(lab), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300)
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize("provider", PROVIDERS)
def test_leased_and_all(fresh_lab, tmp_path, provider):
    env = lab_env(fresh_lab)
    machines = generate_machines(FRESH_LAB_MACHINES)
    wait_for_pool(write_config(tmp_path, provider, name="wait.pool.yml"), env, FRESH_LAB_MACHINES)
    lease_two(fresh_lab, tmp_path, provider, machines)

    leased = listing(write_config(tmp_path, provider, "status: leased\n", name="leased.pool.yml"), env)
    hostvars = plain(leased["_meta"]["hostvars"])
    assert sorted(hostvars) == ["golden-0", "golden-1"]
    for name, m in (("golden-0", machines[0]), ("golden-1", machines[1])):
        hv = hostvars[name]
        assert hv["fleet_mac"] == m["mac"]
        assert hv["fleet_lease"] == "golden"
        assert hv["fleet_lease_name"] == name
        assert hv["fleet_hostname"] == name
        assert hv["fleet_state"] in ("leased", "installing", "provisioned")
        assert hv["fleet_address"] and hv["ansible_host"] == hv["fleet_address"]
        # metal keeps an ownership tag on the allocation; plunder has nowhere to keep one
        assert hv["fleet_owned"] is (provider == "metal")
        if provider == "plunder":
            assert hv["fleet_address"] == {"golden-0": "10.99.0.11", "golden-1": "10.99.0.12"}[name]
    groups = groups_of(leased)
    assert groups["leased"] == ["golden-0", "golden-1"]
    assert groups["lease_golden"] == ["golden-0", "golden-1"]
    assert groups["unleased"] == []

    everything = listing(write_config(tmp_path, provider, "status: all\n", name="all.pool.yml"), env)
    groups = groups_of(everything)
    assert len(everything["_meta"]["hostvars"]) == FRESH_LAB_MACHINES
    assert groups["leased"] == ["golden-0", "golden-1"]
    assert groups["unleased"] == sorted(host_name(m["mac"]) for m in machines[2:])

    # the default (unleased) view no longer shows them
    free = listing(write_config(tmp_path, provider, name="free.pool.yml"), env)
    assert sorted(free["_meta"]["hostvars"]) == sorted(host_name(m["mac"]) for m in machines[2:])


def test_wrong_hmac_is_a_clear_error(fresh_lab, tmp_path):
    bad_key = "not-the-right-hmac-key"
    env = lab_env(fresh_lab, METALCTL_HMAC=bad_key)
    proc = inventory(write_config(tmp_path, "metal"), env, "--list", check=False)
    assert proc.returncode != 0
    assert "baremetal.fleet.pool" in proc.stderr
    assert "403" in proc.stderr or "401" in proc.stderr, proc.stderr
    assert fresh_lab.info["metal_url"] in proc.stderr
    assert bad_key not in proc.stderr and bad_key not in proc.stdout


def _other_cert_pem():
    """A self-signed certificate the lab's plunder face does not hold."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-the-lab")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def test_plunder_tls_is_verified_against_the_client_config(fresh_lab, tmp_path):
    import base64

    import yaml

    with open(fresh_lab.plunder_config) as handle:
        good = yaml.safe_load(handle)
    forged = dict(good, cert=base64.b64encode(_other_cert_pem()).decode("ascii"))
    config = tmp_path / "plunderclient.yaml"
    config.write_text(yaml.safe_dump(forged))
    env = lab_env(fresh_lab, PLUNDER_CLIENT_CONFIG=str(config))
    proc = inventory(write_config(tmp_path, "plunder", "api_retries: 0\n"), env, "--list", check=False)
    assert proc.returncode != 0
    assert "TLS" in proc.stderr or "certificate" in proc.stderr, proc.stderr
    assert fresh_lab.info["plunder_url"] in proc.stderr, proc.stderr


def test_vaulted_hmac_key(fresh_lab, tmp_path):
    env = lab_env(fresh_lab)
    wait_for_pool(write_config(tmp_path, "metal", name="plain.pool.yml"), env, FRESH_LAB_MACHINES)
    key = env.pop("METALCTL_HMAC")
    password = tmp_path / "vault-pass"
    password.write_text("fleet-test\n")
    enc = subprocess.run([os.path.join(BIN, "ansible-vault"), "encrypt_string", "--vault-password-file",
                          str(password), "--name", "api_hmac", key], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, check=True).stdout
    source = write_config(tmp_path, "metal", enc)
    assert key not in open(source).read()
    data = listing(source, env, "--vault-password-file", str(password))
    assert len(data["_meta"]["hostvars"]) == FRESH_LAB_MACHINES
