"""``fleetlab`` command: serve (foreground), up / down / status / env (background daemon),
fault (inject or clear a machine fault in the running lab), prepare / prune-images (the libvirt
driver's downloads and image cache)."""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time

from .util import pid_alive, stop_pid

DEFAULT_STATE = os.environ.get("FLEETLAB_STATE", ".lab")


def _add_serve_options(p):
    p.add_argument("--driver", default="sim", choices=("sim", "libvirt", "vagrant"),
                   help="what runs the machines (default: sim)")
    p.add_argument("--machines", type=int, default=None,
                   help="generate N machines (racks and sizes spread over them; default 24 for a new pool)")
    p.add_argument("--pool", metavar="FILE", help="YAML file with the machines (see docs/lab.md)")
    p.add_argument("--state", default=DEFAULT_STATE, help="state directory (default: %(default)s)")
    p.add_argument("--bind", default="127.0.0.1", help="address both faces listen on (default: %(default)s)")
    p.add_argument("--plunder-port", type=int, default=60443, help="plunder face port, 0 = any (default 60443)")
    p.add_argument("--metal-port", type=int, default=8080, help="metal-api face port, 0 = any (default 8080)")
    p.add_argument("--metal-base-path", default="/metal", help="metal-api base path (default: %(default)s)")
    p.add_argument("--plunder-insecure", action="store_true", help="plain HTTP on the plunder port (plunder -i)")
    p.add_argument("--preset", default="fast", choices=("fast", "demo", "realistic"),
                   help="sim timing preset (default: fast)")
    p.add_argument("--loop-period", type=float, default=None, help="seconds between loop sightings")
    p.add_argument("--install-seconds", type=float, default=None, help="lease -> provisioned duration (sim)")
    p.add_argument("--wipe-seconds", type=float, default=None, help="wipe -> back in the loop duration (sim)")
    p.add_argument("--lease-network", default="10.77.0.0/16",
                   help="CIDR metal allocations take addresses from (default: %(default)s)")
    for role in ("view", "edit", "admin"):
        p.add_argument("--hmac-%s-key" % role, default=None,
                       help="HMAC key of Metal-%s (default: $FLEETLAB_HMAC_%s_KEY, else random, kept in the "
                            "state dir; prefer the environment: arguments show in ps)" % (role.title(), role.upper()))
    p.add_argument("--metal-env-role", default="edit", choices=("view", "edit", "admin"),
                   help="which key metal.env carries (default: edit)")
    p.add_argument("--metal-token", action="append", metavar="ROLE=TOKEN",
                   help="accept 'Authorization: Bearer TOKEN' with ROLE (repeatable; also "
                        "$FLEETLAB_METAL_TOKENS=ROLE=TOKEN,...; prefer the environment: arguments show in ps)")
    p.add_argument("--driver-opt", action="append", metavar="KEY=VALUE", help="driver-specific option")
    p.add_argument("--hypervisor", action="append", metavar="URI[,vtep=ADDR][,rack=R][,name=N]",
                   help="libvirt driver: run VMs on this hypervisor too (repeatable; 'local' is the lab's own "
                        "libvirtd, always one of them); needs --driver-opt vtep=ADDRESS (see docs/lab-libvirt.md)")
    p.add_argument("--max-connections", type=int, default=None,
                   help="open connections per face at most (default 256; more are closed at once)")
    p.add_argument("--idle-timeout", type=float, default=None,
                   help="seconds a silent connection is kept (default 60)")
    p.add_argument("--quiet", action="store_true", help="log only to the state dir")
    p.add_argument("--no-access-log", action="store_true", help="do not log every request")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fleetlab",
        description="plunder- and metal-api-compatible lab servers over one persistent machine pool "
                    "(see docs/lab.md)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the lab in the foreground")
    _add_serve_options(p)
    p = sub.add_parser("up", help="start the lab in the background")
    _add_serve_options(p)
    p.add_argument("--timeout", type=float, default=120,
                   help="seconds to wait for the lab and its driver to be ready; when the driver fails or "
                        "is not ready in time, the lab is stopped and up exits 1 with the cause")
    p = sub.add_parser("down", help="stop the background lab")
    p.add_argument("--state", default=DEFAULT_STATE)
    p.add_argument("--timeout", type=float, default=15)
    p = sub.add_parser("status", help="show the lab, its driver's health and its machines; exit 1 when "
                                      "the lab is down or its driver failed")
    p.add_argument("--state", default=DEFAULT_STATE)
    p.add_argument("--limit", type=int, default=50, help="machines to list (0 = all)")
    p.add_argument("--json", action="store_true", help="machine readable")
    from .drivers.base import FAULT_KINDS
    p = sub.add_parser("fault", help="inject a fault into a machine of the running lab, or clear it")
    p.add_argument("machine", metavar="MACHINE", help="id (or its tail as status shows it), MAC, lease name "
                                                      "or hostname")
    p.add_argument("kind", metavar="FAULT", choices=FAULT_KINDS + ("clear",),
                   help="power-off: power the machine off and keep it off; hang: freeze it, power on, "
                        "until a power reset/cycle/off; kill-kubelet: stop its kubelet until the next boot "
                        "(over SSH); no-pxe: its firmware boots only the disk; boot-disk: its firmware boots the disk "
                        "first (both until its boot device is set to the network through its BMC); clear: remove "
                        "its fault and undo it")
    p.add_argument("--state", default=DEFAULT_STATE)
    p = sub.add_parser("bmc", help="the libvirt lab's Redfish BMCs as a cluster_bmc map (YAML, secrets included)")
    p.add_argument("--state", default=DEFAULT_STATE)
    p = sub.add_parser("report", help="the pool's machines and their recent events as an HTML page (and JSON)")
    p.add_argument("--state", default=DEFAULT_STATE)
    p.add_argument("--out", default=None, help="page to write (default: STATE/report.html)")
    p.add_argument("--minutes", type=float, default=60, help="how far back (default 60)")
    p = sub.add_parser("env", help="print the client environment (export lines)")
    p.add_argument("--state", default=DEFAULT_STATE)
    p = sub.add_parser("prepare", help="download and build what the libvirt lab needs, once (set-up time)")
    p.add_argument("--cache", default=None, help="cache (default: $FLEETLAB_CACHE or /var/cache/fleetlab)")
    p.add_argument("--no-image", action="store_true", help="only the Debian packages, not the VM image")
    p = sub.add_parser("packages", help="copy a group of Debian packages `prepare` cached (e.g. vip: keepalived, "
                                        "haproxy and what the lab image lacks for them) into a directory")
    p.add_argument("group", choices=["vip"])
    p.add_argument("--out", required=True, help="artifacts directory to fill")
    p.add_argument("--cache", default=None, help="cache (default: $FLEETLAB_CACHE or /var/cache/fleetlab)")
    p = sub.add_parser("hypervisor", help="make this host a hypervisor of a lab that runs on another host "
                                          "(a private libvirtd on TCP, a bridge with a VXLAN to the lab)")
    p.add_argument("action", choices=("up", "down"))
    p.add_argument("--state", default=os.environ.get("FLEETLAB_HYPERVISOR_STATE", ".hypervisor"),
                   help="state directory of this hypervisor (default: %(default)s)")
    p.add_argument("--listen", help="address libvirtd listens on (up)")
    p.add_argument("--port", type=int, default=16509, help="its TCP port (default: %(default)s)")
    p.add_argument("--vtep", help="this host's tunnel endpoint (an address of its own; default: --listen)")
    p.add_argument("--peer", action="append", metavar="ADDRESS", help="another host's tunnel endpoint: the lab's "
                                                                       "(repeatable)")
    p.add_argument("--vni", type=int, default=7700, help="VXLAN id (default: %(default)s, as the lab's)")
    p.add_argument("--bridge", default="fleetlab0", help="bridge the lab's VMs attach to (default: %(default)s)")
    p.add_argument("--no-kvm", action="store_true", help="hide /dev/kvm from libvirtd (VMs run under TCG)")
    p.add_argument("--cache", default=None, help="libvirt's capabilities cache (default: $FLEETLAB_CACHE or "
                                                 "/var/cache/fleetlab)")
    p = sub.add_parser("prune-images",
                       help="remove cached VM images of old recipes (the current one always stays)")
    p.add_argument("--cache", default=None, help="image cache (default: $FLEETLAB_CACHE or /var/cache/fleetlab)")
    p.add_argument("--older-than", type=float, default=0, metavar="HOURS",
                   help="only entries no lab started from for this long (default: 0, every old entry)")
    return parser


def _info(state):
    try:
        with open(os.path.join(state, "lab.json"), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _pid(state):
    try:
        with open(os.path.join(state, "fleetlab.pid"), encoding="utf-8") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def _port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def is_up(state):
    info = _info(state)
    pid = _pid(state)
    if not info or not pid or not pid_alive(pid) or info.get("pid") != pid:
        return False, info
    return _port_open(info["bind"], info["plunder_port"]) and _port_open(info["bind"], info["metal_port"]), info


def _health(state):
    from .drivers.base import read_health

    return read_health(state) or {}


def _stop_server(pid, timeout=30.0):
    """SIGTERM the lab we started (its driver removes what it set up), SIGKILL after ``timeout``."""
    stop_pid(pid, timeout)


def _driver_failed(state, pid, error, timeout=False):
    log = os.path.join(state, "fleetlab.log")
    if timeout:
        sys.stderr.write("fleetlab: the %s\n" % error)
    else:
        sys.stderr.write("fleetlab: the lab's driver failed: %s\n" % error)
    sys.stderr.write("fleetlab: log %s; last lines:\n%s" % (log, _tail(log, 15)))
    _stop_server(pid)
    _teardown_vms(state)
    return 1


def cmd_up(args):
    state = os.path.abspath(args.state)
    up, info = is_up(state)
    if up:
        health = _health(state)
        if health.get("phase") != "failed":
            print("fleetlab is already running (state %s)" % state)
            return _wait_ready(state, info["pid"], args.timeout, time.time())
        print("fleetlab: the running lab's driver had failed (%s): restarting it" % health.get("error"))
        _stop_server(info["pid"])
    os.makedirs(state, exist_ok=True)
    for name in ("plunderclient.yaml", "metal.env", "lab.json", "driver.json"):
        try:
            os.remove(os.path.join(state, name))
        except FileNotFoundError:
            pass
    started = time.time()
    argv = [sys.executable, "-m", "fleetlab", "serve", "--quiet"]
    skip = {"command", "timeout", "quiet"}
    # secrets reach the background server through its environment, never its argv (ps shows that)
    env = dict(os.environ)
    for role in ("view", "edit", "admin"):
        if getattr(args, "hmac_%s_key" % role, None):
            env["FLEETLAB_HMAC_%s_KEY" % role.upper()] = getattr(args, "hmac_%s_key" % role)
    if args.metal_token:
        env["FLEETLAB_METAL_TOKENS"] = ",".join([t for t in env.get("FLEETLAB_METAL_TOKENS", "").split(",") if t]
                                                + list(args.metal_token))
    skip |= {"hmac_view_key", "hmac_edit_key", "hmac_admin_key", "metal_token"}
    for key, value in vars(args).items():
        if key in skip or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if key == "state":
            value = state
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):
            for v in value:
                argv += [flag, str(v)]
        else:
            argv += [flag, str(value)]
    out = open(os.path.join(state, "daemon.out"), "ab")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=os.getcwd(), env=env)
    deadline = time.time() + args.timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            break
        if all(os.path.exists(os.path.join(state, n)) for n in ("plunderclient.yaml", "metal.env", "lab.json")):
            info = _info(state)
            print("fleetlab up (pid %d): plunder %s, metal %s" % (proc.pid, info["plunder_url"], info["metal_url"]))
            print("environment: eval \"$(fleetlab env --state %s)\"" % state)
            return _wait_ready(state, proc.pid, args.timeout, started)
        time.sleep(0.1)
    if proc.poll() is None:
        _stop_server(proc.pid)
        _teardown_vms(state)
    sys.stderr.write("fleetlab did not come up within %.0f s; log tail:\n" % args.timeout)
    sys.stderr.write(_tail(os.path.join(state, "daemon.out")) + _tail(os.path.join(state, "fleetlab.log")))
    return 1


def _wait_ready(state, pid, timeout, started):
    """Until the driver says ready; a failed driver or one still starting after ``timeout`` s
    stops the lab and exits non-zero with the cause."""
    deadline = started + timeout
    said = None
    while True:
        health = _health(state)
        phase = health.get("phase")
        if phase == "ready":
            if said:
                print("fleetlab: driver ready after %.0f s" % (time.time() - started))
            return 0
        if phase == "failed":
            return _driver_failed(state, pid, health.get("error") or "unknown error")
        if not pid_alive(pid):
            return _driver_failed(state, pid, "lab process %d ended while its driver was %s"
                                  % (pid, phase or "starting"), timeout=True)
        if time.time() > deadline:
            return _driver_failed(state, pid, "driver was still %s after %.0f s (--timeout)"
                                  % (phase or "starting", timeout), timeout=True)
        if not said:
            print("fleetlab: waiting for the %s driver to be ready (at most %.0f s)"
                  % (health.get("driver") or "lab's", max(0, deadline - time.time())), flush=True)
            said = True
        time.sleep(0.2)


def _tail(path, lines=30):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(fh.readlines()[-lines:])
    except OSError:
        return ""


def cmd_down(args):
    state = os.path.abspath(args.state)
    pid = _pid(state)
    if pid is None or not pid_alive(pid):
        print("fleetlab is not running (state %s)" % state)
        _teardown_vms(state)
        return 0
    _stop_server(pid, args.timeout)
    for name in ("plunderclient.yaml", "metal.env", "lab.json", "fleetlab.pid", "driver.json"):
        try:
            os.remove(os.path.join(state, name))
        except FileNotFoundError:
            pass
    _teardown_vms(state)
    print("fleetlab stopped (pid %d)" % pid)
    return 0


def _teardown_vms(state):
    """A VM lab leaves a record of what it created; remove what is left of it (after a
    crash the lab process could not do it itself). Sim labs have no record."""
    if os.path.exists(os.path.join(state, "vmlab.json")):
        from .vm.lab import teardown
        if teardown(state):
            print("fleetlab: VM lab torn down (state %s)" % state)


def cmd_fault(args):
    """Faults are made by the running lab (the process that owns the driver and its machines),
    through its control socket ``STATE/control.sock``; see :class:`fleetlab.server._Control`."""
    from .server import CONTROL_SOCKET

    state = os.path.abspath(args.state)
    up, _ = is_up(state)
    if not up:
        sys.stderr.write("fleetlab is not running (state %s)\n" % state)
        return 1
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(120)
            sock.connect(os.path.join(state, CONTROL_SOCKET))
            sock.sendall((json.dumps({"machine": args.machine, "fault": args.kind}) + "\n").encode())
            answer = json.loads(sock.makefile("rb").readline() or b"null")
    except (OSError, ValueError) as exc:
        sys.stderr.write("fleetlab: cannot reach the lab's control socket in %s: %s\n" % (state, exc))
        return 1
    if not isinstance(answer, dict) or answer.get("error"):
        sys.stderr.write("fleetlab: %s\n" % (answer.get("error") if isinstance(answer, dict) else answer))
        return 1
    m = answer["machine"]
    if args.kind == "clear":
        if answer.get("cleared"):
            print("fleetlab: %s (%s): fault %s cleared, power %s"
                  % (m["mac"], m["id"], answer["cleared"]["kind"], m["power"]))
        else:
            print("fleetlab: %s (%s) has no fault" % (m["mac"], m["id"]))
    else:
        from .drivers.base import BOOT_ORDER_FAULTS
        ends = ("" if args.kind == "power-off" else
                "its boot device is set to the network (BMC), or " if args.kind in BOOT_ORDER_FAULTS else
                "a power reset, cycle or off, or ")
        print("fleetlab: %s (%s): fault %s, power %s until %s`fleetlab fault %s clear`"
              % (m["mac"], m["id"], args.kind, m["power"], ends, m["mac"]))
    return 0


def cmd_status(args):
    from . import store as P
    from .drivers.base import read_faults
    state = os.path.abspath(args.state)
    up, info = is_up(state)
    faults = read_faults(state)
    db = os.path.join(state, "pool.sqlite")
    rows, counts = [], {}
    if os.path.exists(db):
        pool = P.Pool(db)
        counts = pool.state_counts()
        rows = pool.machines(order="leased_first")
        if args.limit:
            rows = rows[:args.limit]
    health = _health(state) if up else {}
    failed = health.get("phase") == "failed"
    if args.json:
        print(json.dumps({"up": up, "info": {k: v for k, v in (info or {}).items() if k != "hmac_keys"},
                          "driver": health or None, "states": counts,
                          "machines": [dict({k: m[k] for k in ("id", "mac", "vendor", "size", "partition", "rack",
                                                               "state", "lease_name", "hostname", "address",
                                                               "last_seen", "power")},
                                            fault=faults.get(m["id"]),
                                            hypervisor=m["labels"].get("fleetlab.io/hypervisor"))
                                       for m in rows]}, indent=2))
        return 0 if up and not failed else 1
    if up:
        phase = health.get("phase") or "starting"
        if failed:
            print("fleetlab is up but its driver FAILED (pid %d, driver %s): %s"
                  % (info["pid"], info["driver"], health.get("error")))
            print("  log: %s" % os.path.join(state, "fleetlab.log"))
        else:
            print("fleetlab is up (pid %d, driver %s %s)" % (info["pid"], info["driver"], phase))
        print("  plunder %s   metal %s" % (info["plunder_url"], info["metal_url"]))
        hvs = health.get("hypervisors") or []
        if len(hvs) > 1:
            print("  hypervisors: %s" % "; ".join(
                "%s %s (%d machines)%s" % (h["name"], h["state"].upper() if h["state"] != "up" else "up",
                                           h.get("machines", 0), ": " + h["error"] if h.get("error") else "")
                for h in hvs))
    else:
        print("fleetlab is DOWN (state %s)" % state)
    if counts:
        total = sum(counts.values())
        print("  %d machines: %s%s" % (total, ", ".join("%s %d" % (s, counts.get(s, 0)) for s in P.STATES),
                                       "; %d with a fault" % len(faults) if faults else ""))
        print()
        header = ("MAC", "ID", "VENDOR", "SIZE", "RACK", "STATE", "SINCE", "LEASE", "HOSTNAME", "ADDRESS", "POWER")
        spread = len({m["labels"].get("fleetlab.io/hypervisor") for m in rows}) > 1
        if spread:
            header += ("HYPERVISOR",)  # only when the machines run on several
        if faults:
            header += ("FAULT",)  # only while a fault is active
        table = [header]
        now = time.time()
        ids = _short_ids(m["id"] for m in rows)
        for m in rows:
            row = (m["mac"], ids[str(m["id"])], (m["vendor"] or "-")[:18], m["size"], m["rack"], m["state"],
                   _ago(now - m["state_since"]), m["lease_name"] or "-", m["hostname"] or "-", m["address"] or "-",
                   m["power"] or "-")
            if spread:
                row += (m["labels"].get("fleetlab.io/hypervisor") or "-",)
            if faults:
                row += ((faults.get(m["id"]) or {}).get("kind") or "-",)
            table.append(row)
        widths = [max(len(str(r[i])) for r in table) for i in range(len(header))]
        for r in table:
            print("  ".join(str(c).ljust(widths[i]) for i, c in enumerate(r)).rstrip())
        if args.limit and sum(counts.values()) > len(rows):
            print("... %d more (--limit 0 shows all)" % (sum(counts.values()) - len(rows)))
    return 0 if up and not failed else 1


def _short_ids(all_ids, width=8):
    """{id: the shortest tail (at least ``width`` characters) no other listed id shares}:
    generated ids differ at their end, not their start."""
    from collections import Counter

    out = {}
    pending = [str(i) for i in all_ids]
    n = width
    while pending:
        counts = Counter(i[-n:] for i in pending)
        rest = []
        for ident in pending:
            if counts[ident[-n:]] == 1 or n >= len(ident):
                out[ident] = ident if n >= len(ident) else "…" + ident[-n:]
            else:
                rest.append(ident)
        pending, n = rest, n + 1
    return out


def _ago(seconds):
    seconds = int(max(0, seconds))
    if seconds < 120:
        return "%ds" % seconds
    if seconds < 7200:
        return "%dm" % (seconds // 60)
    return "%dh" % (seconds // 3600)


def cmd_bmc(args):
    """Print ``cluster_bmc:`` for a vars file: each VM's Redfish BMC (``fleetlab.vm.bmc``)."""
    import yaml
    from .vm import bmc

    data = bmc.read_map(os.path.abspath(args.state))
    if not data:
        sys.stderr.write("fleetlab: the lab in %s has no BMC (only the libvirt driver runs one)\n" % args.state)
        return 1
    sys.stdout.write(yaml.safe_dump({"cluster_bmc": data["machines"]}, default_flow_style=False, sort_keys=True))
    return 0


def cmd_report(args):
    from .report import write

    print("report: %s" % write(os.path.abspath(args.state), args.out, args.minutes))
    return 0


def cmd_env(args):
    state = os.path.abspath(args.state)
    plunder = os.path.join(state, "plunderclient.yaml")
    menv = os.path.join(state, "metal.env")
    if not (os.path.exists(plunder) and os.path.exists(menv)):
        sys.stderr.write("fleetlab is not up (no client files in %s)\n" % state)
        return 1
    print("export PLUNDER_CLIENT_CONFIG=%s" % plunder)
    with open(menv, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line and "=" in line:
                print("export %s" % line)
    return 0


def cmd_prepare(args):
    from . import debcache
    from .vm import images
    cache = args.cache or images.DEFAULT_CACHE
    for path in debcache.fetch(tuple(debcache.DOUBLE_DEPENDENCIES) + (debcache.ETCD_IMAGE,), cache_dir=cache):
        print("cached %s" % path)
    if not args.no_image:
        print("image %s" % images.build_os(cache, log=lambda msg: print(msg, flush=True)))
        # what the image lacks for the keepalived VIP method, resolved against the image's packages
        status = os.path.join(images.build_rootfs(cache, log=lambda msg: print(msg, flush=True)), "var/lib/dpkg/status")
        for path in debcache.fetch_group("vip", debcache.VIP_PACKAGES, status, cache_dir=cache):
            print("cached %s" % path)
    return 0


def cmd_packages(args):
    """Copy a group of cached Debian packages into an artifacts directory (nothing is downloaded)."""
    from . import debcache
    from .vm import images
    cache = args.cache or images.DEFAULT_CACHE
    try:
        for path in debcache.copy_to(args.out, debcache.group(args.group, cache), cache_dir=cache):
            print(path)
    except debcache.MissingDebs as exc:
        sys.stderr.write("fleetlab packages: %s\n" % exc)
        return 1
    return 0


def cmd_prune_images(args):
    from .vm import images
    removed = images.prune(args.cache or images.DEFAULT_CACHE, older_than=args.older_than * 3600, log=None)
    for name in removed:
        print("removed %s" % name)
    if not removed:
        print("nothing to remove")
    return 0


def cmd_hypervisor(args):
    from .vm import images, remote_host
    if args.action == "down":
        if not remote_host.down(args.state, log=lambda msg: print(msg, file=sys.stderr)):
            print("hypervisor: nothing to stop in %s" % os.path.abspath(args.state))
        return 0
    if not args.listen or not args.peer:
        print("fleetlab hypervisor up: --listen ADDRESS and --peer ADDRESS (the lab's host) are required",
              file=sys.stderr)
        return 2
    try:
        uri = remote_host.up(args.state, args.listen, args.vtep or args.listen, args.peer, port=args.port,
                             vni=args.vni, bridge=args.bridge, hide_kvm=args.no_kvm,
                             cache_dir=args.cache or os.environ.get("FLEETLAB_CACHE") or images.DEFAULT_CACHE,
                             log=lambda msg: print(msg, file=sys.stderr))
    except Exception as exc:  # the cause, after removing what was started
        remote_host.down(args.state, log=lambda msg: None)
        print("fleetlab hypervisor up: %s" % exc, file=sys.stderr)
        return 1
    print(uri)
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from .server import serve
        return serve(args)
    # `fleetlab status | head` closing the pipe is not an error
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return {"up": cmd_up, "down": cmd_down, "status": cmd_status, "env": cmd_env, "report": cmd_report, "bmc": cmd_bmc,
            "fault": cmd_fault, "prepare": cmd_prepare, "packages": cmd_packages,
            "prune-images": cmd_prune_images, "hypervisor": cmd_hypervisor}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
