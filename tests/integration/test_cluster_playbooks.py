"""create-cluster.yml / delete-cluster.yml against the sim lab, as far as sim machines go.

Sim machines have no SSH, so these runs stop after leasing and provisioning
(``--tags lease``) and delete without ``kubeadm reset`` (``--skip-tags reset``); the
roles themselves need the libvirt lab's VMs (molecule scenarios)."""
import json
import re
import os
import subprocess
import sys
import uuid

import pytest
import yaml

from playbook_runner import PROJECT, ROOT

pytestmark = [pytest.mark.integration, pytest.mark.lab]


def _run(playbook, vars_file, lab, *extra):
    env = dict(os.environ)
    for key in ("FLEET_PROVIDER", "PLUNDER_CLIENT_CONFIG", "METALCTL_API_URL", "METALCTL_HMAC",
                "METALCTL_HMAC_AUTH_TYPE", "METALCTL_APITOKEN"):
        env.pop(key, None)
    env.update(lab.env())
    site = [p for p in sys.path if p.endswith("site-packages")]
    env.update({"ANSIBLE_COLLECTIONS_PATH": os.pathsep.join([os.path.join(ROOT, "build", "collections")] + site),
                "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json", "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"})
    cmd = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
           os.path.join(ROOT, "playbooks", playbook), "-e", "cluster_vars_file=%s" % vars_file,
           "-e", "ansible_python_interpreter=%s" % sys.executable] + list(extra)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    data = json.loads(proc.stdout[proc.stdout.index("{"):]) if "{" in proc.stdout else {}
    return proc, data


def _task(data, name_part, host="localhost"):
    """Results of the tasks whose name contains name_part that ran (not skipped; create-cluster's
    look-ahead "(plan)" leases excluded)."""
    for play in data.get("plays", []):
        for task in play.get("tasks", []):
            name = task["task"]["name"]
            if name_part in name and host in task["hosts"] and not name.endswith("(plan)") \
                    and not task["hosts"][host].get("skipped"):
                yield task["hosts"][host]


@pytest.mark.parametrize("provider", ["plunder", "metal"])
def test_create_and_delete_cluster_lease_phases(lab, tmp_path, provider):
    name = "k%s" % uuid.uuid4().hex[:6]
    third = 100 + (sum(map(ord, name)) % 150)
    cluster = {
        "cluster_name": name, "cluster_provider": provider,
        "cluster_control_plane_count": 1, "cluster_worker_count": 2,
        "cluster_control_plane_addresses": ["10.78.%d.10" % third] if provider == "plunder" else [],
        "cluster_worker_addresses": ["10.78.%d.20" % third, "10.78.%d.21" % third] if provider == "plunder" else [],
        "cluster_image": "preseed" if provider == "plunder" else "debian-12",
        "cluster_metal_project": PROJECT if provider == "metal" else "",
        "cluster_poll_interval": 0.3, "cluster_provision_timeout": 120,
        "kubernetes_version": "1.37.1",
    }
    vars_file = tmp_path / "cluster.yml"
    vars_file.write_text(yaml.safe_dump(cluster))

    proc, data = _run("create-cluster.yml", vars_file, lab, "--tags", "lease")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    leased = [m for r in _task(data, "Lease the machines of") for m in r.get("machines", [])]
    assert len(leased) == 3
    provisioned = [m for r in _task(data, "Provision (and wait for)") for m in r.get("machines", [])]
    assert sorted(m["state"] for m in provisioned) == ["provisioned"] * 3
    added = list(_task(data, "Add to the inventory"))
    hosts = sorted(item["add_host"]["host_name"] for r in added for item in r["results"])
    assert hosts == sorted(m.get("hostname") or m["name"] for m in leased)
    groups = {item["add_host"]["host_name"]: item["add_host"]["groups"] for r in added for item in r["results"]}
    assert sum("kube_control_plane" in g for g in groups.values()) == 1
    assert sum("kube_node" in g for g in groups.values()) == 2

    # leasing again changes nothing; machines behind port forwards are reached through the SSH map
    ssh_map = tmp_path / "ssh.json"
    ssh_map.write_text(json.dumps({"key": "/nonexistent/id", "known_hosts": "/nonexistent/known_hosts", "machines": {
        m["mac"]: {"name": "vm-%d" % i, "ssh_host": "127.0.0.1", "ssh_port": 2200 + i} for i, m in enumerate(leased)}}))
    proc, data = _run("create-cluster.yml", vars_file, lab, "--tags", "lease", "-e", "cluster_ssh_map_file=%s" % ssh_map)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert not any(r.get("changed") for r in _task(data, "Lease the machines of"))
    # and in check mode (what `--check` over a running cluster does first): the same members, nothing leased
    proc, check = _run("create-cluster.yml", vars_file, lab, "--tags", "lease", "--check", "--diff",
                       "-e", "cluster_ssh_map_file=%s" % ssh_map)
    assert proc.returncode == 0, proc.stdout[-4000:]
    planned = [r for r in _task(check, "Lease the machines of")]
    assert planned and not any(r.get("changed") for r in planned)
    assert sorted(m["mac"] for r in planned for m in r.get("machines", [])) == sorted(m["mac"] for m in leased)
    host_vars = {item["add_host"]["host_name"]: item["add_host"]["host_vars"]
                 for r in _task(data, "Add to the inventory") for item in r["results"]}
    ports = {m["mac"]: 2200 + i for i, m in enumerate(leased)}
    for m in leased:
        hv = host_vars[m.get("hostname") or m["name"]]
        assert (hv["ansible_host"], int(hv["ansible_port"])) == ("127.0.0.1", ports[m["mac"]])
        assert hv["machine_address"] == m["address"] and hv["ansible_connection"] == "ssh"
        assert "-o UserKnownHostsFile=/nonexistent/known_hosts -o HostKeyAlias=vm-" in hv["ansible_ssh_common_args"]
        assert hv["ansible_ssh_common_args"].startswith("-o ServerAliveInterval=10 -o ServerAliveCountMax=3 ")
    # a map without these machines is an error, never a silent fall-back to the raw address
    ssh_map.write_text(json.dumps({"key": "/nonexistent/id", "machines": {}}))
    proc, data = _run("create-cluster.yml", vars_file, lab, "--tags", "lease", "-e", "cluster_ssh_map_file=%s" % ssh_map)
    assert proc.returncode != 0 and "has no SSH endpoint" in proc.stdout

    proc, data = _run("delete-cluster.yml", vars_file, lab, "--skip-tags", "reset",
                      "-e", "cluster_wipe_timeout=120")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    wiped = [m for r in _task(data, "Wipe the disks") for item in r["results"] for m in item.get("machines", [])]
    assert sorted(m["mac"] for m in wiped) == sorted(m["mac"] for m in leased)
    assert all(m["state"] == "unleased" for m in wiped)
    # delete again: nothing left to do
    proc, data = _run("delete-cluster.yml", vars_file, lab, "--skip-tags", "reset")
    assert proc.returncode == 0, proc.stdout[-4000:]
    changed = [t["task"]["name"] for p in data["plays"] for t in p["tasks"]
               if any(h.get("changed") for h in t["hosts"].values())]
    assert changed == []


def test_plunder_control_planes_spread_over_racks_from_the_vars_file(fresh_lab, tmp_path):
    """plunder knows only MACs: cluster_hardware says where each machine is, and three control
    planes land in three racks even when the pool's first machines share one."""
    import sqlite3
    conn = sqlite3.connect("file:%s?mode=ro" % fresh_lab.pool_path, uri=True, timeout=30)
    try:
        macs = [r[0] for r in conn.execute("SELECT mac FROM machines WHERE lease_name IS NULL ORDER BY mac LIMIT 5")]
    finally:
        conn.close()
    racks = ["r1", "r1", "r1", "r2", "r3"]
    cluster = {
        "cluster_name": "spread", "cluster_provider": "plunder",
        "cluster_control_plane_count": 3, "cluster_worker_count": 0,
        "cluster_address_range": "10.79.0.10-10.79.0.20", "control_plane_vip_address": "10.79.0.5",
        "cluster_image": "preseed", "cluster_poll_interval": 0.3, "cluster_provision_timeout": 120,
        "cluster_hardware": {mac: {"rack": rack} for mac, rack in zip(macs, racks)},
        "kubernetes_version": "1.37.1",
    }
    vars_file = tmp_path / "cluster.yml"
    vars_file.write_text(yaml.safe_dump(cluster))
    proc, data = _run("create-cluster.yml", vars_file, fresh_lab, "--tags", "lease")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    leased = [m for r in _task(data, "Lease the machines of") for m in r.get("machines", [])]
    rack_of = dict(zip(macs, racks))
    assert sorted(rack_of.get(m["mac"]) for m in leased) == ["r1", "r2", "r3"]

    # without the map plunder cannot spread, and says so instead of guessing
    cluster.update(cluster_name="nospread", cluster_hardware={})
    vars_file.write_text(yaml.safe_dump(cluster))
    proc, data = _run("create-cluster.yml", vars_file, fresh_lab, "--tags", "lease")
    assert proc.returncode != 0 and "rack" in proc.stdout


@pytest.mark.parametrize("count", [2, 4])
def test_an_even_control_plane_count_is_refused_before_anything_is_leased(fresh_lab, tmp_path, count):
    cluster = {
        "cluster_name": "even%d" % count, "cluster_provider": "plunder",
        "cluster_control_plane_count": count, "cluster_worker_count": 0,
        "cluster_address_range": "10.79.0.10-10.79.0.20", "control_plane_vip_address": "10.79.0.5",
        "cluster_image": "preseed", "kubernetes_version": "1.37.1",
    }
    vars_file = tmp_path / "cluster.yml"
    vars_file.write_text(yaml.safe_dump(cluster))
    proc, data = _run("create-cluster.yml", vars_file, fresh_lab, "--tags", "lease")
    assert proc.returncode != 0
    failed = list(_task(data, "Check the control-plane count for HA"))
    assert failed and "odd number of 3 or more" in failed[0]["msg"]
    assert list(_task(data, "Lease the machines of")) == []


def _restore_with(tmp_path, lab, snapshot):
    cluster = {"cluster_name": "restore", "cluster_provider": "plunder", "cluster_control_plane_count": 1,
               "cluster_worker_count": 0, "cluster_address_range": "10.79.0.10-10.79.0.20",
               "cluster_image": "preseed", "kubernetes_version": "1.37.1"}
    vars_file = tmp_path / "cluster.yml"
    vars_file.write_text(yaml.safe_dump(cluster))
    return _run("etcd-restore.yml", vars_file, lab, "-e", "etcd_snapshot=%s" % snapshot)


def test_restore_refuses_a_missing_or_corrupt_snapshot_before_anything_stops(fresh_lab, tmp_path):
    proc, data = _restore_with(tmp_path, fresh_lab, tmp_path / "absent.db")
    assert proc.returncode != 0
    assert "does not exist: nothing was changed" in list(_task(data, "Refuse a missing snapshot"))[0]["msg"]
    snapshot = tmp_path / "restore-20261130T000000Z.db"
    snapshot.write_bytes(b"etcd snapshot bytes")
    (tmp_path / (snapshot.name + ".sha256")).write_text("%s  %s\n" % ("0" * 64, snapshot.name))
    proc, data = _restore_with(tmp_path, fresh_lab, snapshot)
    assert proc.returncode != 0
    assert "corrupt" in list(_task(data, "Refuse a corrupt snapshot"))[0]["msg"]
    # nothing ran on any control plane
    assert not [t for p in data.get("plays", []) if p["play"]["name"] == "Restore etcd on every control plane"
                for t in p["tasks"]]


def _closed_ssh_map(tmp_path, lab_pool):
    """Every machine reached at a closed loopback port: SSH fails at once (a dead machine)."""
    import socket
    import sqlite3
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn = sqlite3.connect("file:%s?mode=ro" % lab_pool, uri=True, timeout=30)
    try:
        macs = [r[0] for r in conn.execute("SELECT mac FROM machines")]
    finally:
        conn.close()
    path = tmp_path / "ssh.json"
    path.write_text(json.dumps({"machines": {m: {"ssh_host": "127.0.0.1", "ssh_port": port} for m in macs}}))
    return str(path)


def _leased_cluster(lab, tmp_path, name, provider="plunder"):
    """A 1 + 2 cluster leased and provisioned on the sim lab, its machines not answering SSH."""
    cluster = {
        "cluster_name": name, "cluster_provider": provider,
        "cluster_control_plane_count": 1, "cluster_worker_count": 2,
        "cluster_image": "preseed" if provider == "plunder" else "debian-12",
        "cluster_metal_project": PROJECT if provider == "metal" else "",
        "cluster_address_range": "10.79.0.10-10.79.0.20",
        "cluster_poll_interval": 0.3, "cluster_provision_timeout": 120, "kubernetes_version": "1.37.1",
        "cluster_ssh_map_file": _closed_ssh_map(tmp_path, lab.pool_path),
    }
    vars_file = tmp_path / "cluster.yml"
    vars_file.write_text(yaml.safe_dump(cluster))
    proc, _data = _run("create-cluster.yml", vars_file, lab, "--tags", "lease")
    assert proc.returncode == 0, proc.stdout[-3000:]
    return cluster, vars_file


def test_a_replacement_takes_the_name_of_the_member_it_replaces(fresh_lab, tmp_path):
    """repair-cluster.yml removes a member and leases its replacement in one run; Ansible keeps the
    removed host in its groups, so the replacement must be that host: fleet_replaced_members (the
    lease's fill_first) gives it the name, where the lowest free index would give another."""
    name = "fill%s" % uuid.uuid4().hex[:4]
    _cluster, vars_file = _leased_cluster(fresh_lab, tmp_path, name)
    release = tmp_path / "release.yml"
    release.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Release the workers", "baremetal.fleet.lease": {"name": name + "-worker", "state": "absent",
                                                                    "provider": "plunder"}}]}]))
    proc, _data = _run(str(release), vars_file, fresh_lab)
    assert proc.returncode == 0, proc.stdout[-3000:]

    def planned_workers(*extra):
        _proc, data = _run("create-cluster.yml", vars_file, fresh_lab, "--tags", "lease", "--check",
                           "-e", "cluster_worker_count=1", *extra)
        plans = [t["hosts"]["localhost"] for p in data["plays"] for t in p["tasks"]
                 if t["task"]["name"] == "Lease the machines of %s-worker (plan)" % name]
        assert plans, _proc.stdout[-3000:]
        return [m["name"] for m in plans[0]["machines"] if m.get("planned")]

    assert planned_workers() == [name + "-worker-0"]
    assert planned_workers("-e", json.dumps({"fleet_replaced_members": [name + "-worker-1"]})) == [name + "-worker-1"]
    # and leased so
    proc, data = _run("create-cluster.yml", vars_file, fresh_lab, "--tags", "lease", "-e", "cluster_worker_count=1",
                      "-e", json.dumps({"fleet_replaced_members": [name + "-worker-1"]}))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert [m["name"] for r in _task(data, "Lease the machines of") for m in r.get("machines", [])
            if m["name"].startswith(name + "-worker")] == [name + "-worker-1"]


def test_remove_node_refuses_unknown_members_and_the_last_control_plane_and_plans(fresh_lab, tmp_path):
    _cluster, vars_file = _leased_cluster(fresh_lab, tmp_path, "rm")

    proc, data = _run("remove-node.yml", vars_file, fresh_lab, "-e", "node=rm-worker-7")
    assert proc.returncode != 0
    msg = list(_task(data, "Refuse unknown members"))[0]["msg"]
    assert "not members of rm: rm-worker-7" in msg and "rm-cp-0" in msg and "Nothing was changed" in msg

    proc, data = _run("remove-node.yml", vars_file, fresh_lab, "-e", "node=rm-cp-0")
    assert proc.returncode != 0
    assert "without a control plane" in list(_task(data, "Refuse to remove the last control plane"))[0]["msg"]

    # the plan for a member that does not answer, and nothing changes in check mode
    proc, data = _run("remove-node.yml", vars_file, fresh_lab, "-e", "node=rm-worker-1", "-e",
                      "remove_node_ssh_timeout=2", "--check", "--diff")
    assert proc.returncode == 0, proc.stdout[-3000:]
    plan = list(_task(data, "The plan"))[0]["msg"]
    assert len(plan) == 1 and plan[0].startswith("rm-worker-1 (worker, machine ")
    assert "no SSH: reset skipped" in plan[0] and "release with force" in plan[0]
    proc, data = _run("lookup-cluster.yml", vars_file, fresh_lab)
    assert "rm-worker-1" in list(_task(data, "Show the members"))[0]["msg"][1]


def test_scale_plan_and_scale_in_refusal(fresh_lab, tmp_path):
    """The vars file is the desired state: a higher count plans only the missing members (with their
    machine), a lower one is refused, naming the members that would go, unless cluster_scale_in."""
    cluster, vars_file = _leased_cluster(fresh_lab, tmp_path, "scale")

    def members():
        proc, data = _run("lookup-cluster.yml", vars_file, fresh_lab)
        return list(_task(data, "Show the members"))[0]["msg"]

    before = members()
    # scale out, planned in check mode: one worker to lease, on a named machine; nothing leased
    vars_file.write_text(yaml.safe_dump(dict(cluster, cluster_worker_count=3)))
    proc, data = _run("create-cluster.yml", vars_file, fresh_lab, "--tags", "lease", "--check", "--diff")
    assert proc.returncode == 0, proc.stdout[-3000:]
    plan = list(_task(data, "The plan"))[0]["msg"]
    assert len(plan) == 1 and re.match(r"^lease scale-worker-2 on [0-9a-f:]{17}", plan[0]), plan
    assert members() == before
    # scale in without the flag: refused, naming the member, nothing changed
    vars_file.write_text(yaml.safe_dump(dict(cluster, cluster_worker_count=1)))
    proc, data = _run("create-cluster.yml", vars_file, fresh_lab, "--tags", "lease")
    assert proc.returncode != 0
    assert list(_task(data, "The plan"))[0]["msg"] == [
        "remove scale-worker-1: drain, kubeadm reset, delete the node, wipe and release"]
    refusal = list(_task(data, "Refuse to scale in unless asked"))[0]["msg"]
    assert "scale-worker-1 would be drained" in refusal and "cluster_scale_in: true" in refusal
    assert members() == before
    # scale in by name: the named member goes instead of the highest index (planned in check mode)
    vars_file.write_text(yaml.safe_dump(dict(cluster, cluster_worker_count=1, cluster_scale_in=True,
                                             cluster_remove_members=["scale-worker-0"])))
    proc, data = _run("create-cluster.yml", vars_file, fresh_lab, "--tags", "lease", "--check", "--diff")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert list(_task(data, "The plan"))[0]["msg"] == [
        "remove scale-worker-0: drain, kubeadm reset, delete the node, wipe and release"]
    # a name the cluster does not have, or one the counts keep: refused before anything changes
    for named, count, message in ((["scale-worker-9"], 1, "which scale does not have"),
                                  (["scale-worker-0"], 2, "but the counts keep them")):
        vars_file.write_text(yaml.safe_dump(dict(cluster, cluster_worker_count=count, cluster_scale_in=True,
                                                 cluster_remove_members=named)))
        proc, data = _run("create-cluster.yml", vars_file, fresh_lab, "--tags", "lease")
        assert proc.returncode != 0
        assert message in list(_task(data, "Check the members named for removal"))[0]["msg"]
    assert members() == before
    # a re-run at the same counts plans nothing
    vars_file.write_text(yaml.safe_dump(cluster))
    proc, data = _run("create-cluster.yml", vars_file, fresh_lab, "--tags", "lease")
    assert proc.returncode == 0 and not list(_task(data, "The plan"))


def test_upgrade_refusals_come_before_any_node_is_contacted(fresh_lab, tmp_path):
    """upgrade-cluster.yml: a partial version, an unknown strategy, replace without a VIP, no packages directory, a directory
    without the target's kubeadm: refused on the controller (the machines do not even answer SSH)."""
    _cluster, vars_file = _leased_cluster(fresh_lab, tmp_path, "up")
    debs = tmp_path / "debs"
    debs.mkdir()
    (debs / "kubeadm_1.31.9-1.1_all.deb").write_bytes(b"!<arch>\n")
    for extra, message in (
            (["-e", "kubernetes_version=1.32"], "must be a full version such as 1.32.0 (got 1.32)"),
            (["-e", "kubernetes_version=1.32.0", "-e", "cluster_upgrade_strategy=surge",
              "-e", "upgrade_artifacts_dir=%s" % debs], "cluster_upgrade_strategy surge: use in_place or replace"),
            (["-e", "kubernetes_version=1.32.0", "-e", "cluster_upgrade_strategy=replace",
              "-e", "upgrade_artifacts_dir=%s" % debs], "cluster_upgrade_strategy replace needs control_plane_vip_address"),
            (["-e", "kubernetes_version=1.32.0", "-e", "cluster_upgrade_strategy=replace", "-e", "cluster_address_range=",
              "-e", "control_plane_vip_address=10.79.0.99", "-e", "upgrade_artifacts_dir=%s" % debs],
             "replace on plunder needs cluster_address_range"),
            (["-e", "kubernetes_version=1.32.0"], "upgrade_artifacts_dir (the .deb packages of 1.32.0) is required"),
            (["-e", "kubernetes_version=1.32.0", "-e", "upgrade_artifacts_dir=%s" % debs],
             "has no kubeadm package of version 1.32.0-1.1 (it holds: kubeadm_1.31.9-1.1_all.deb)")):
        proc, data = _run("upgrade-cluster.yml", vars_file, fresh_lab, *extra)
        assert proc.returncode != 0
        failed = [t for p in data["plays"] for t in p["tasks"] for h in t["hosts"].values() if h.get("failed")]
        assert failed and message in failed[0]["hosts"]["localhost"]["msg"], failed
        assert all(p["play"]["name"] in ("Find the cluster's machines", "Check the upgrade") for p in data["plays"])


def test_repair_refuses_too_many_unhealthy_members_and_plans(fresh_lab, tmp_path):
    """repair-cluster.yml on a cluster whose machines do not answer SSH: three unhealthy members
    are more than cluster_max_unhealthy (1 by default) allows, so it stops before anything changes;
    with a higher limit, --check prints the plan (no power control on plunder without BMCs: replace)
    and changes nothing."""
    _cluster, vars_file = _leased_cluster(fresh_lab, tmp_path, "rp")
    before = _pool_rows(fresh_lab)

    proc, data = _run("repair-cluster.yml", vars_file, fresh_lab, "-e", "cluster_repair_ssh_timeout=2")
    assert proc.returncode != 0
    msg = list(_task(data, "Refuse to repair more members"))[0]["msg"]
    assert "3 of 3 members are unhealthy (rp-cp-0, rp-worker-0, rp-worker-1)" in msg
    assert "allows 1" in msg and "Nothing was changed" in msg

    proc, data = _run("repair-cluster.yml", vars_file, fresh_lab, "-e", "cluster_repair_ssh_timeout=2",
                      "-e", "cluster_max_unhealthy=100%", "--check", "--diff")
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    plan = list(_task(data, "The health of every member"))[0]["msg"]
    assert plan[0].startswith("rp-cp-0: unhealthy (no SSH): no power control (cluster_bmc is empty): replace it")
    assert len(plan) == 4 and plan[-1] == "no control plane answers SSH: the Nodes were not read"
    assert _pool_rows(fresh_lab) == before

    # 2 of 3 with "50%": 1 allowed
    proc, data = _run("repair-cluster.yml", vars_file, fresh_lab, "-e", "cluster_repair_ssh_timeout=2",
                      "-e", "cluster_max_unhealthy=50%")
    assert proc.returncode != 0 and "allows 1" in list(_task(data, "Refuse to repair more members"))[0]["msg"]


def _pool_rows(lab):
    import sqlite3
    conn = sqlite3.connect("file:%s?mode=ro" % lab.pool_path, uri=True, timeout=30)
    try:
        return sorted(conn.execute("SELECT mac, state, lease_name FROM machines"))
    finally:
        conn.close()


def test_repair_plan_on_the_metal_face_reads_the_power(fresh_lab, tmp_path):
    """With a power API (metal), the health check asks each machine's power: one powered off by the
    lab is named so, and the plan powers it on before replacing anything."""
    _cluster, vars_file = _leased_cluster(fresh_lab, tmp_path, "rq", provider="metal")
    off = subprocess.run([sys.executable, "-m", "fleetlab", "fault", "rq-worker-1", "power-off",
                          "--state", fresh_lab.state_dir], capture_output=True, text=True, timeout=60)
    assert off.returncode == 0, off.stderr
    proc, data = _run("repair-cluster.yml", vars_file, fresh_lab, "-e", "cluster_repair_ssh_timeout=2",
                      "-e", "cluster_max_unhealthy=100%", "--check")
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    plan = list(_task(data, "The health of every member"))[0]["msg"]
    worker = [line for line in plan if line.startswith("rq-worker-1:")][0]
    assert worker.startswith("rq-worker-1: unhealthy (no SSH, powered off): power on through the provisioner")
    assert [line for line in plan if line.startswith("rq-worker-0:")][0].startswith(
        "rq-worker-0: unhealthy (no SSH): power reset through the provisioner")


def _plan_replacements(lab, tmp_path, vars_file, kubelets, *extra):
    """upgrade-cluster.yml's replace plan (tasks/plan-replacements.yml) over a leased sim cluster,
    with the kubelet versions the API would report given here (sim machines have no API)."""
    book = tmp_path / "plan-replacements.yml"
    book.write_text(yaml.safe_dump([
        {"import_playbook": os.path.join(ROOT, "playbooks", "lookup-cluster.yml")},
        {"name": "Plan", "hosts": "localhost", "gather_facts": False,
         "vars_files": [str(vars_file)],
         "tasks": [{"name": "The kubelets", "ansible.builtin.set_fact": {"_upgrade_kubelets": kubelets}},
                   {"name": "Plan the replacements",
                    "ansible.builtin.include_tasks": os.path.join(ROOT, "playbooks", "tasks", "plan-replacements.yml")},
                   {"name": "Queued", "ansible.builtin.debug": {
                       "msg": "{{ dict(_queued | zip(_queued | map('extract', hostvars, 'fleet_replaces'))) }}"},
                    "vars": {"_queued": "{{ (groups['fleet_replacement_cp'] | default([]))"
                                        " + (groups['fleet_replacement_worker'] | default([])) }}"}}]}]))
    proc, data = _run(str(book), vars_file, lab, "-e", "kubernetes_version=1.37.1", *extra)
    plan = next(_task(data, "The plan (replace)"), {}).get("msg")
    queued = next(_task(data, "Queued"), {}).get("msg")
    return proc, data, plan, queued


def test_replace_plan_pairs_members_resumes_and_refuses_an_empty_pool(fresh_lab, tmp_path):
    """The replace strategy's plan: control planes first, each member below the target gets a new
    member with the next free index, a member at the target is left alone; a replacement left
    beyond the count by a stopped run is paired again (no second machine); --check queues nothing;
    a pool without a free machine is refused, naming the replacement, before anything changes."""
    name = "rpl%s" % uuid.uuid4().hex[:4]
    _cluster, vars_file = _leased_cluster(fresh_lab, tmp_path, name)
    cp0, w0, w1 = name + "-cp-0", name + "-worker-0", name + "-worker-1"
    kubelets = {cp0: "1.36.4", w0: "1.36.4", w1: "1.37.1"}
    proc, _data, plan, queued = _plan_replacements(fresh_lab, tmp_path, vars_file, kubelets, "--check")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert [line.split(":")[0] for line in plan] == [name + "-cp-1 replaces " + cp0 + " (at 1.36.4)",
                                                     name + "-worker-2 replaces " + w0 + " (at 1.36.4)", w1]
    assert "lease a machine (e.g. " in plan[0] and "etcd quorum checked" in plan[0]
    assert "etcd quorum" not in plan[1] and plan[2].endswith("at 1.37.1, nothing to do")
    assert queued == {}
    proc, _data, plan, queued = _plan_replacements(fresh_lab, tmp_path, vars_file, kubelets)
    assert proc.returncode == 0 and queued == {name + "-cp-1": cp0, name + "-worker-2": w0}, proc.stdout[-3000:]
    # resumed: the vars file asks for one worker, worker-1 (at the target) joined before worker-0 left
    proc, _data, plan, queued = _plan_replacements(fresh_lab, tmp_path, vars_file, kubelets,
                                                   "-e", "cluster_worker_count=1")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert queued == {name + "-cp-1": cp0, w1: w0}
    assert plan[1].startswith(w1 + " replaces " + w0 + " (at 1.36.4): joined already, install and join")
    # every free machine taken: refused before anything changes
    blocker = tmp_path / "blocker.yml"
    blocker.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Take the pool", "baremetal.fleet.lease": {"name": name + "-blocker", "count": 21,
                                                            "provider": "plunder",
                                                            "address_range": "10.79.1.10-10.79.1.60"}}]}]))
    assert _run(str(blocker), vars_file, fresh_lab)[0].returncode == 0
    proc, data, plan, queued = _plan_replacements(fresh_lab, tmp_path, vars_file, kubelets)
    assert proc.returncode != 0 and plan is None and queued is None, json.dumps(list(_task(data, "Ask the pool")))[:3000]
    failed = [h for p in data["plays"] for t in p["tasks"] for h in t["hosts"].values() if h.get("failed")]
    refusal = [h["msg"] for h in failed if "Nothing was changed" in h.get("msg", "")]
    assert refusal and "%s-cp-1 (replacing %s) finds none: lease %s-cp needs 1 more machine" % (name, cp0, name) \
        in " ".join(refusal[0].split()), refusal
