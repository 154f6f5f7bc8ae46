#!/usr/bin/env python3
"""Benchmark: `ansible-inventory --list` with the baremetal.fleet.pool plugin against the lab,
compared with the same hosts, variables and groups from a static inventory file.

For each pool size (default 100, 1000, 10000) and provider (plunder, metal) a sim lab with that
many machines is started; then, each timed as wall time of a real `ansible-inventory --list`
process (best of --repeat runs):

  static YAML   the plugin's own output written as a static YAML inventory (the baseline)
  static JSON   the same, as a JSON file (Ansible's loader reads JSON much faster than YAML)
  plugin cold   the plugin without cache: HTTP fetch from the lab + building the inventory
  plugin warm   the plugin with a warm jsonfile cache (no server call)

Targets (docs/architecture.md, "Targets"): against the fastest baseline, static JSON: cold within
1.0x and warm within 0.8x (the static YAML baseline is printed too; ``--no-yaml`` skips it, it takes
minutes at 10,000 machines).

    .venv/bin/python bench/bench_inventory.py [--sizes 100,1000,10000] [--providers plunder,metal]
                                              [--repeat 3] [--markdown]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
ANSIBLE_INVENTORY = os.path.join(BIN, "ansible-inventory")


def collections_path():
    import sysconfig

    coll = os.path.join(ROOT, "build", "collections")
    link = os.path.join(coll, "ansible_collections", "baremetal", "fleet")
    if not os.path.lexists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)
    return "%s:%s" % (coll, sysconfig.get_paths()["purelib"])


def run_inventory(source, env, extra=()):
    started = time.perf_counter()
    proc = subprocess.run([ANSIBLE_INVENTORY, "-i", source, "--list"] + list(extra), env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0 or "[WARNING]" in proc.stderr:
        raise SystemExit("ansible-inventory -i %s failed (rc %s):\n%s" % (source, proc.returncode, proc.stderr))
    return elapsed, json.loads(proc.stdout)


def best(repeat, source, env, extra=()):
    times = []
    data = None
    for _i in range(repeat):
        elapsed, data = run_inventory(source, env, extra)
        times.append(elapsed)
    return min(times), data


def static_inventory(listing):
    """The --list output as a static inventory: every host with its vars under all.hosts, groups
    with their members (what a user would have to maintain by hand)."""
    hostvars = listing["_meta"]["hostvars"]
    hosts = {}
    for name, hv in hostvars.items():
        hosts[name] = dict((k, v) for k, v in hv.items() if k not in ("inventory_file", "inventory_dir"))
    children = {}
    for group, body in listing.items():
        if group in ("_meta", "all", "ungrouped"):
            continue
        children[group] = {"hosts": dict((h, None) for h in body.get("hosts", []))}
    return {"all": {"hosts": hosts, "children": children}}


def host_count(listing):
    return len(listing["_meta"]["hostvars"])


def bench_one(size, provider, repeat, workdir, base_env, with_yaml=True):
    from fleetlab.testing import LabServer

    state = os.path.join(workdir, "lab-%s-%d" % (provider, size))
    lab = LabServer(state_dir=state, machines=size)
    lab.start()
    try:
        env = dict(base_env)
        env.update(lab.env())
        cfg = os.path.join(workdir, "%s-%d.pool.yml" % (provider, size))
        with open(cfg, "w") as handle:
            handle.write("plugin: baremetal.fleet.pool\nprovider: %s\n" % provider)
        cached_cfg = os.path.join(workdir, "%s-%d-cached.pool.yml" % (provider, size))
        cache_dir = os.path.join(workdir, "cache-%s-%d" % (provider, size))
        with open(cached_cfg, "w") as handle:
            handle.write("plugin: baremetal.fleet.pool\nprovider: %s\ncache: true\n"
                         "cache_plugin: ansible.builtin.jsonfile\ncache_connection: %s\n" % (provider, cache_dir))

        # wait until the whole pool is in the reboot loop (the sim lab seeds it at start)
        deadline = time.time() + 120
        while True:
            _t, listing = run_inventory(cfg, env)
            if host_count(listing) >= size or time.time() > deadline:
                break
            time.sleep(1)
        if host_count(listing) != size:
            raise SystemExit("%s lab with %d machines lists %d unleased" % (provider, size, host_count(listing)))

        cold, listing = best(repeat, cfg, env)
        fill, _x = run_inventory(cached_cfg, env, ["--flush-cache"])
        warm, warm_listing = best(repeat, cached_cfg, env)
    finally:
        lab.stop()
    # once more with the lab stopped: a warm cache answers without any server
    warm_down, warm_listing_down = run_inventory(cached_cfg, env)
    assert host_count(warm_listing_down) == size, "warm cache must answer without the server"

    static = static_inventory(listing)
    import yaml

    yml = os.path.join(workdir, "%s-%d.static.yml" % (provider, size))
    with open(yml, "w") as handle:
        yaml.safe_dump(static, handle, default_flow_style=False)
    jsn = os.path.join(workdir, "%s-%d.static.json" % (provider, size))
    with open(jsn, "w") as handle:
        json.dump(static, handle)
    static_env = dict(base_env)
    t_yaml = None
    if with_yaml:
        t_yaml, yaml_listing = best(repeat if size < 10000 else max(1, repeat - 1), yml, static_env)
        if host_count(yaml_listing) != size:
            raise SystemExit("static inventory has %d hosts, expected %d" % (host_count(yaml_listing), size))
    t_json, json_listing = best(repeat, jsn, static_env)
    if host_count(json_listing) != size:
        raise SystemExit("static inventory has %d hosts, expected %d" % (host_count(json_listing), size))
    return {"size": size, "provider": provider, "static_yaml": t_yaml, "static_json": t_json,
            "cold": cold, "fill": fill, "warm": min(warm, warm_down)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--providers", default="plunder,metal")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--no-yaml", action="store_true", help="skip the static YAML baseline (slow at 10,000)")
    args = parser.parse_args()

    base_env = dict(os.environ)
    base_env["ANSIBLE_COLLECTIONS_PATH"] = collections_path()
    base_env.setdefault("ANSIBLE_INVENTORY_UNPARSED_WARNING", "true")
    base_env["ANSIBLE_NOCOLOR"] = "1"
    workdir = tempfile.mkdtemp(prefix="fleet-bench-inventory-")
    rows = []
    try:
        for size in [int(s) for s in args.sizes.split(",") if s]:
            for provider in [p for p in args.providers.split(",") if p]:
                row = bench_one(size, provider, args.repeat, workdir, base_env, with_yaml=not args.no_yaml)
                rows.append(row)
                print("# %-7s %6d machines: static json %.2fs, plugin cold %.2fs, warm %.2fs"
                      % (provider, size, row["static_json"], row["cold"], row["warm"]), file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    head = ("machines", "provider", "static YAML s", "static JSON s", "plugin cold s", "plugin warm s",
            "cold/YAML", "warm/YAML", "cold/JSON", "warm/JSON")
    lines = []
    def ratio(a, b):
        return "%.2fx" % (a / b) if b else "-"

    for r in rows:
        yml = r["static_yaml"]
        lines.append(("%d" % r["size"], r["provider"], "%.2f" % yml if yml else "-", "%.2f" % r["static_json"],
                      "%.2f" % r["cold"], "%.2f" % r["warm"], ratio(r["cold"], yml), ratio(r["warm"], yml),
                      ratio(r["cold"], r["static_json"]), ratio(r["warm"], r["static_json"])))
    if args.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for line in lines:
            print("| " + " | ".join(line) + " |")
    else:
        widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(head)]
        print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
        for line in lines:
            print("  ".join(c.rjust(w) for c, w in zip(line, widths)))
    print("targets: plugin cold <= 1.0x static JSON, plugin warm <= 0.8x static JSON")
    failed = [r for r in rows if r["cold"] > 1.0 * r["static_json"] or r["warm"] > 0.8 * r["static_json"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
