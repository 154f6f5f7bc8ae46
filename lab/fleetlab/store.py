"""The lab's one persistent machine pool (SQLite, WAL, transactions).

Both API faces (plunder, metal-api) and every driver read and change machines only
through :class:`Pool`. The guarantees the rest of the project relies on:

* a machine carries at most one lease: every lease is taken inside one
  ``BEGIN IMMEDIATE`` transaction that re-checks the machine is free, so concurrent
  requests (threads or processes) can never lease it twice;
* a change is committed (``synchronous=FULL``) before any API answers, so an
  acknowledged lease survives ``kill -9`` of the server;
* bad input is rejected before a transaction starts, so it never changes the pool.

Lifecycle (the ``state`` column, the same words as the collection's pool interface):
``unleased`` (in the reboot loop) -> ``leased`` -> ``installing`` -> ``provisioned``
(reachable) -> ``wiping`` -> ``unleased``. Each machine also has a provisioning event
log (metal-api vocabulary, server timestamps) that both faces render in their terms.
"""

import ipaddress
import json
import os
import random
import sqlite3
import threading
import time
import uuid

import yaml

from .vendors import GENERATED_OUIS, vendor_for

UNLEASED = "unleased"
LEASED = "leased"
INSTALLING = "installing"
PROVISIONED = "provisioned"
WIPING = "wiping"
STATES = (UNLEASED, LEASED, INSTALLING, PROVISIONED, WIPING)

# metal-api provisioning event types (metal/provisioning.go)
EV_PXE = "PXE Booting"
EV_PREPARING = "Preparing"
EV_REGISTERING = "Registering"
EV_WAITING = "Waiting"
EV_INSTALLING = "Installing"
EV_BOOTING = "Booting New Kernel"
EV_PHONED_HOME = "Phoned Home"
EV_RECLAIM = "Machine Reclaim"
EV_PLANNED_REBOOT = "Planned Reboot"
EV_CRASHED = "Crashed"
EV_ALIVE = "Alive"
EVENT_TYPES = (EV_PXE, EV_PREPARING, EV_REGISTERING, EV_WAITING, EV_INSTALLING, EV_BOOTING,
               EV_PHONED_HOME, EV_RECLAIM, EV_PLANNED_REBOOT, EV_CRASHED, EV_ALIVE)
HAMMER_VERSION = "v0.13.2"

# The boot sequence a blank machine reports on its way into the loop.
LOOP_ENTRY_EVENTS = [
    (EV_PXE, "machine sent extended dhcp request"),
    (EV_PREPARING, 'starting metal-hammer version:"%s"' % HAMMER_VERSION),
    (EV_REGISTERING, "start registering"),
    (EV_WAITING, "waiting for allocation"),
]

DEFAULT_PARTITION = "mini-lab"
DEFAULT_SIZES = ("v1-small-x86", "v1-medium-x86", "v1-large-x86")
SIZE_HARDWARE = {  # cores, memory bytes, disk bytes
    "v1-small-x86": (4, 4 * 1024 ** 3, 100 * 1000 ** 3),
    "v1-medium-x86": (16, 64 * 1024 ** 3, 960 * 1000 ** 3),
    "v1-large-x86": (64, 256 * 1024 ** 3, 3840 * 1000 ** 3),
}
MAX_EVENTS_KEPT = 100

_SCHEMA = """
CREATE TABLE IF NOT EXISTS machines (
    id TEXT PRIMARY KEY,
    mac TEXT NOT NULL UNIQUE,
    vendor TEXT NOT NULL DEFAULT '',
    size TEXT NOT NULL,
    partition TEXT NOT NULL,
    rack TEXT NOT NULL DEFAULT '',
    labels TEXT NOT NULL DEFAULT '{}',
    cpus INTEGER NOT NULL DEFAULT 4,
    memory INTEGER NOT NULL DEFAULT 0,
    disk INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    state_since REAL NOT NULL,
    loop_since REAL,
    last_seen REAL,
    disk_state TEXT NOT NULL DEFAULT 'blank',
    power TEXT NOT NULL DEFAULT 'on',
    lease_name TEXT,
    lease_owner TEXT,
    lease_face TEXT,
    hostname TEXT,
    address TEXT,
    image TEXT,
    project TEXT,
    lease TEXT,
    leased_at REAL,
    mstate TEXT NOT NULL DEFAULT '',
    mstate_description TEXT NOT NULL DEFAULT '',
    mstate_issuer TEXT NOT NULL DEFAULT '',
    led TEXT NOT NULL DEFAULT 'LED-OFF',
    led_description TEXT NOT NULL DEFAULT 'Machine registered',
    crash_loop INTEGER NOT NULL DEFAULT 0,
    failed_reclaim INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    event_time REAL,
    due_at REAL,
    due_step TEXT,
    created REAL NOT NULL,
    changed REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS machines_state ON machines(state);
CREATE INDEX IF NOT EXISTS machines_ps ON machines(partition, size, state);
CREATE INDEX IF NOT EXISTS machines_address ON machines(address);
CREATE INDEX IF NOT EXISTS machines_lease_name ON machines(lease_name);
CREATE INDEX IF NOT EXISTS machines_project ON machines(project);
CREATE INDEX IF NOT EXISTS machines_due ON machines(due_at) WHERE due_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    machine_id TEXT NOT NULL,
    time REAL NOT NULL,
    event TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_machine ON events(machine_id, seq);
CREATE TABLE IF NOT EXISTS ips (
    address TEXT PRIMARY KEY,
    network TEXT NOT NULL,
    machine_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ips_machine ON ips(machine_id);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_LEASE_COLUMNS = ("lease_name", "lease_owner", "lease_face", "hostname", "address", "image",
                  "project", "lease", "leased_at")


class PoolError(Exception):
    """A request the pool cannot satisfy; ``kind`` tells the faces how to report it."""

    def __init__(self, message, kind="invalid"):
        super().__init__(message)
        self.message = message
        self.kind = kind  # invalid | notfound | conflict | unavailable


def normalize_mac(value):
    """Lower-case colon form, or raise PoolError."""
    if not isinstance(value, str):
        raise PoolError("invalid MAC address %r" % (value,))
    mac = value.strip().lower().replace("-", ":")
    parts = mac.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise PoolError("invalid MAC address %r" % (value,))
    return mac


def _now():
    return time.time()


class Pool:
    """SQLite-backed machine pool shared by both faces and the driver.

    ``loop_period``: when set (the sim driver), machines in the loop are seen again
    every ``loop_period`` seconds without a row update per sighting; the seen time is
    derived from ``loop_since``. Without it, sightings come from :meth:`record_seen`.
    """

    def __init__(self, path, loop_period=None, lease_network="10.77.0.0/16"):
        self.path = path
        self.loop_period = loop_period
        self.lease_network = ipaddress.ip_network(lease_network, strict=False)
        self._local = threading.local()
        self._write_lock = threading.RLock()
        conn = self._conn()
        conn.executescript(_SCHEMA)
        # pools created by an older fleetlab: add the columns they lack
        have = {r[1] for r in conn.execute("PRAGMA table_info(machines)")}
        for column, decl in (("event_time", "REAL"),):
            if column not in have:
                conn.execute("ALTER TABLE machines ADD COLUMN %s %s" % (column, decl))

    # -- connections and transactions ---------------------------------------------------
    def _conn(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=60000")
            self._local.conn = conn
        return conn

    def close(self):
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    class _Tx:
        def __init__(self, pool):
            self.pool = pool
            self.conn = pool._conn()

        def __enter__(self):
            self.pool._write_lock.acquire()
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except Exception:
                self.pool._write_lock.release()
                raise
            return self.conn

        def __exit__(self, exc_type, exc, tb):
            try:
                if exc_type is None:
                    self.conn.execute("COMMIT")
                else:
                    self.conn.execute("ROLLBACK")
            finally:
                self.pool._write_lock.release()
            return False

    def tx(self):
        """``with pool.tx() as conn:`` one write transaction (serialised, committed on exit)."""
        return Pool._Tx(self)

    def _write(self, conn, fn):
        """``fn(conn)`` inside the caller's transaction ``conn``, or inside a new one."""
        if conn is not None:
            return fn(conn)
        with self.tx() as c:
            return fn(c)

    def query(self, sql, params=()):
        return self._conn().execute(sql, params).fetchall()

    # -- population -------------------------------------------------------------------
    def count(self):
        return self.query("SELECT count(*) FROM machines")[0][0]

    def populate(self, machines, now=None):
        """Insert machines (dicts from :func:`generate_machines` / :func:`load_pool_file`)
        that are not in the pool yet (by MAC). Each enters the reboot loop."""
        now = _now() if now is None else now
        added = 0
        with self.tx() as conn:
            existing = {r[0] for r in conn.execute("SELECT mac FROM machines")}
            for m in machines:
                if m["mac"] in existing:
                    continue
                existing.add(m["mac"])
                # spread the first sightings over one loop period, all in the past
                period = self.loop_period or 6.0
                loop_since = now - random.uniform(0, period)
                t0 = loop_since - 40.0
                conn.execute(
                    "INSERT INTO machines (id, mac, vendor, size, partition, rack, labels, cpus, memory,"
                    " disk, state, state_since, loop_since, last_seen, disk_state, created, changed)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (m["id"], m["mac"], m.get("vendor") or vendor_for(m["mac"]), m["size"],
                     m["partition"], m.get("rack", ""), json.dumps(m.get("labels") or {}, sort_keys=True),
                     m.get("cpus", 4), m.get("memory", 0), m.get("disk", 0), UNLEASED, loop_since,
                     loop_since, loop_since, "blank", t0, loop_since))
                for i, (ev, msg) in enumerate(LOOP_ENTRY_EVENTS):
                    conn.execute("INSERT INTO events (machine_id, time, event, message) VALUES (?,?,?,?)",
                                 (m["id"], t0 + 10.0 * i, ev, msg))
                added += 1
        return added

    # -- key/value (plunder server configuration etc.) ----------------------------------
    def kv_get(self, key, default=None):
        rows = self.query("SELECT value FROM kv WHERE key=?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def kv_set(self, key, value, conn=None):
        sql = "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value"
        if conn is not None:
            conn.execute(sql, (key, json.dumps(value)))
        else:
            with self.tx() as c:
                c.execute(sql, (key, json.dumps(value)))

    # -- reads -----------------------------------------------------------------------
    def get(self, ident, conn=None):
        """Machine row (dict) by id or MAC, or None."""
        conn = conn or self._conn()
        row = conn.execute("SELECT * FROM machines WHERE id=?", (ident,)).fetchone()
        if row is None and isinstance(ident, str) and len(ident) in (17,):
            row = conn.execute("SELECT * FROM machines WHERE mac=?", (ident.lower(),)).fetchone()
        return _row(row)

    def lookup(self, name):
        """The machines ``name`` names, as ``fleetlab status`` shows them: id, MAC, the tail of an id
        (8 characters or more, with or without the leading "…"), lease name, hostname, or the VM
        name (label ``fleetlab.io/vm``). Exact ids and MACs win; otherwise every match is returned."""
        name = (name or "").strip()
        if not name:
            return []
        m = self.get(name)
        if m is None:
            try:
                m = self.get(normalize_mac(name))
            except PoolError:
                pass
        if m is not None:
            return [m]
        tail = name.lstrip("\u2026.")
        rows = self.query(
            "SELECT * FROM machines WHERE lease_name=? OR hostname=? OR json_extract(labels, '$.\"fleetlab.io/vm\"')=?"
            " OR (length(?) >= 8 AND substr(id, -length(?)) = ?) ORDER BY created, mac",
            (name, name, name, tail, tail, tail))
        return [_row(r) for r in rows]

    def by_address(self, address, conn=None):
        conn = conn or self._conn()
        rows = conn.execute("SELECT * FROM machines WHERE address=? AND lease_name IS NOT NULL ORDER BY leased_at",
                            (address,)).fetchall()
        return [_row(r) for r in rows]

    #: orders ``machines`` knows: creation, MAC, lease time, or leased first (status listings)
    ORDERS = {"created": "created, mac", "mac": "mac", "leased_at": "leased_at, mac",
              "leased_first": "CASE WHEN lease_name IS NULL THEN 1 ELSE 0 END, "
                              "CASE state WHEN 'unleased' THEN 1 ELSE 0 END, created, mac"}
    #: machine columns ``machines`` filters on by equality
    COLUMNS = ("id", "mac", "partition", "size", "rack", "mstate", "lease_name", "project", "hostname", "memory",
               "image", "power", "state", "lease_face")

    def machines(self, order="created", states=None, leased=None, due=None, with_ips=(), nothing=False,
                 **equal):
        """Machines (dicts) matching every condition given: ``column=value`` for the columns in
        ``COLUMNS``, ``states`` (any of), ``leased`` (carries a lease or not), ``due`` (has a
        pending timer or not), ``with_ips`` (holds each of these metal addresses); ``nothing``
        matches no machine (a query that cannot match). The faces and drivers never write SQL."""
        where, params = [], []
        for column, value in equal.items():
            if column not in self.COLUMNS:
                raise ValueError("machines: no column %r" % column)
            where.append("%s=?" % column)
            params.append(value)
        if states is not None:
            states = list(states)
            where.append("state IN (%s)" % ",".join("?" * len(states)) if states else "0")
            params.extend(states)
        if leased is not None:
            where.append("lease_name IS NOT NULL" if leased else "lease_name IS NULL")
        if due is not None:
            where.append("due_at IS NOT NULL" if due else "due_at IS NULL")
        for address in with_ips:
            where.append("id IN (SELECT machine_id FROM ips WHERE address=?)")
            params.append(address)
        if nothing:
            where.append("0")
        sql = "SELECT * FROM machines" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY " + self.ORDERS[order]
        return [_row(r) for r in self.query(sql, params)]

    def unleased(self, now=None):
        """[(mac, seen_time)] for machines in the reboot loop, as plunder lists them."""
        now = _now() if now is None else now
        rows = self.query(
            "SELECT mac, loop_since, last_seen, power FROM machines WHERE state=? AND lease_name IS NULL"
            " AND loop_since IS NOT NULL AND loop_since <= ? ORDER BY loop_since",
            (UNLEASED, now))
        out = []
        period = self.loop_period
        for mac, since, seen, power in rows:
            if period:
                # a powered-off machine keeps its last sighting (plunder never prunes the list)
                ref = now if power == "on" or seen is None else min(now, seen)
                seen = since + ((ref - since) // period) * period
            elif seen is None:
                continue
            out.append((mac, seen))
        return out

    def events(self, machine_ids, limit=20):
        """{machine_id: [(time, event, message)] newest first, at most ``limit``}."""
        out = {mid: [] for mid in machine_ids}
        if not machine_ids:
            return out
        conn = self._conn()
        if len(machine_ids) > 200:
            if len(machine_ids) >= 2000:
                rows = conn.execute("SELECT machine_id, time, event, message FROM events"
                                    " ORDER BY machine_id, seq DESC")
            else:
                rows = conn.execute("SELECT machine_id, time, event, message FROM events WHERE machine_id IN"
                                    " (SELECT value FROM json_each(?)) ORDER BY machine_id, seq DESC",
                                    (json.dumps(list(machine_ids)),))
            for mid, t, ev, msg in rows:
                lst = out.get(mid)
                if lst is not None and len(lst) < limit:
                    lst.append((t, ev, msg))
        else:
            for mid in machine_ids:
                out[mid] = [tuple(r) for r in conn.execute(
                    "SELECT time, event, message FROM events WHERE machine_id=? ORDER BY seq DESC LIMIT ?",
                    (mid, limit))]
        return out

    def ips_of(self, machine_id):
        return [tuple(r) for r in self.query("SELECT network, address FROM ips WHERE machine_id=? ORDER BY rowid",
                                             (machine_id,))]

    # -- event log -------------------------------------------------------------------
    def _add_event(self, conn, machine_id, event, message="", when=None):
        when = _now() if when is None else when
        conn.execute("UPDATE machines SET event_time=? WHERE id=?", (when, machine_id))
        if event in (EV_PXE, EV_PHONED_HOME):
            newest = conn.execute("SELECT event FROM events WHERE machine_id=? ORDER BY seq DESC LIMIT 1",
                                  (machine_id,)).fetchone()
            if newest is not None and newest[0] == event:
                return  # metal-api swallows repeats of these two: only the time is refreshed
        conn.execute("INSERT INTO events (machine_id, time, event, message) VALUES (?,?,?,?)",
                     (machine_id, when, event, message))
        conn.execute(
            "DELETE FROM events WHERE machine_id=? AND seq <= (SELECT seq FROM events WHERE machine_id=?"
            " ORDER BY seq DESC LIMIT 1 OFFSET ?)", (machine_id, machine_id, MAX_EVENTS_KEPT))
        if event == EV_CRASHED:
            conn.execute("UPDATE machines SET crash_loop=1, last_error=? WHERE id=?",
                         (json.dumps({"time": when, "event": event, "message": message}), machine_id))
        elif event in (EV_PLANNED_REBOOT, EV_RECLAIM, EV_PHONED_HOME):
            conn.execute("UPDATE machines SET crash_loop=0 WHERE id=?", (machine_id,))
        if event in (EV_PXE, EV_PREPARING):
            conn.execute("UPDATE machines SET failed_reclaim=0 WHERE id=?", (machine_id,))

    def add_event(self, ident, event, message=""):
        with self.tx() as conn:
            m = self._require(conn, ident)
            self._add_event(conn, m["id"], event, message)

    def _require(self, conn, ident):
        m = self.get(ident, conn)
        if m is None:
            raise PoolError("no machine with id %r" % (ident,), "notfound")
        return m

    def _set_state(self, conn, m, state, when=None, **cols):
        when = _now() if when is None else when
        sets = {"state": state, "state_since": when, "changed": when}
        sets.update(cols)
        conn.execute("UPDATE machines SET %s WHERE id=?" % ", ".join("%s=?" % k for k in sets),
                     list(sets.values()) + [m["id"]])
        return m["state"], state

    # -- leases ----------------------------------------------------------------------
    def lease(self, ident, lease, face, allowed_states=None, conn=None):
        """Lease one named machine (by id or MAC). ``lease`` is a dict with at least
        ``name``; optional ``owner``, ``hostname``, ``address``, ``image``, ``project``
        and any face-specific details (kept as JSON). Raises PoolError(conflict) when
        the machine already carries a lease."""
        def _do(c):
            m = self._require(c, ident)
            if m["lease_name"] is not None:
                raise PoolError("machine %s is already leased" % m["id"], "conflict")
            if allowed_states is not None and m["state"] not in allowed_states:
                raise PoolError("machine %s is %s" % (m["id"], m["state"]), "conflict")
            self._write_lease(c, m, lease, face)
            return self.get(m["id"], c)
        return self._write(conn, _do)

    def _write_lease(self, conn, m, lease, face):
        now = _now()
        cur = conn.execute(
            "UPDATE machines SET lease_name=?, lease_owner=?, lease_face=?, hostname=?, address=?, image=?,"
            " project=?, lease=?, leased_at=?, changed=? WHERE id=? AND lease_name IS NULL",
            (lease.get("name") or "", lease.get("owner") or "", face, lease.get("hostname") or "",
             lease.get("address"), lease.get("image") or "", lease.get("project") or "",
             json.dumps(lease, sort_keys=True), now, now, m["id"]))
        if cur.rowcount != 1:
            raise PoolError("machine %s is already leased" % m["id"], "conflict")
        if m["state"] == UNLEASED:
            self._set_state(conn, m, LEASED, now, loop_since=None)

    def allocate(self, partition, size, lease, face, rack_spread_project=None, conn=None):
        """Lease a random free machine of ``partition``/``size`` in the loop (metal-api's
        random allocation: unallocated, waiting, available, alive), spreading a project's
        machines over racks. Raises PoolError(unavailable) when none is free."""
        def _do(c):
            pred = ("state=? AND lease_name IS NULL AND mstate='' AND power='on' AND loop_since IS NOT NULL"
                    " AND partition=? AND size=?")
            args = (UNLEASED, partition, size)
            if not self.loop_period:
                # real sightings: only machines alive (seen within 5 minutes) are candidates
                pred += " AND last_seen >= ?"
                args += (_now() - 300.0,)
            racks = [r[0] for r in c.execute("SELECT DISTINCT rack FROM machines WHERE " + pred, args)]
            if not racks:
                raise PoolError("no machine available", "unavailable")
            if rack_spread_project is not None and len(racks) > 1:
                used = dict(c.execute("SELECT rack, count(*) FROM machines WHERE project=? AND lease_name IS NOT NULL"
                                      " GROUP BY rack", (rack_spread_project,)).fetchall())
                low = min(used.get(r, 0) for r in racks)
                racks = [r for r in racks if used.get(r, 0) == low]
            rack = random.choice(racks)
            row = c.execute("SELECT id FROM machines WHERE " + pred + " AND rack=? ORDER BY random() LIMIT 1",
                            args + (rack,)).fetchone()
            m = self.get(row[0], c)
            self._write_lease(c, m, lease, face)
            return m["id"]
        return self._write(conn, _do)

    def assign_ip(self, conn, machine_id, network_id, cidr, skip=10):
        """Take the first free address of ``cidr`` (after ``skip`` host addresses) for
        ``machine_id`` on ``network_id``. Unique across the pool (primary key)."""
        net = ipaddress.ip_network(cidr, strict=False)
        # addresses are unique lab-wide (networks of the lab may overlap)
        used = {r[0] for r in conn.execute("SELECT address FROM ips")}
        used.update(r[0] for r in conn.execute("SELECT address FROM machines WHERE address IS NOT NULL"))
        for i, host in enumerate(net.hosts()):
            if i < skip:
                continue
            addr = str(host)
            if addr not in used:
                conn.execute("INSERT INTO ips (address, network, machine_id) VALUES (?,?,?)",
                             (addr, network_id, machine_id))
                return addr
        raise PoolError("no free ip in network %s" % network_id, "unavailable")

    # -- addresses of metal allocations (the ips table) ---------------------------------------
    def ips(self, machine_ids=None):
        """[(machine_id, network, address)] in the order they were taken; all, or of ``machine_ids``."""
        if machine_ids is None or len(machine_ids) > 200:
            rows = self.query("SELECT machine_id, network, address FROM ips ORDER BY rowid")
            if machine_ids is not None:
                wanted = set(machine_ids)
                rows = [r for r in rows if r[0] in wanted]
            return rows
        return self.query("SELECT machine_id, network, address FROM ips WHERE machine_id IN (%s) ORDER BY rowid"
                          % ",".join("?" * len(machine_ids)), list(machine_ids))

    def take_ip(self, conn, address, network_id, machine_id):
        """Give ``address`` on ``network_id`` to ``machine_id``; False when the address is in use."""
        if conn.execute("SELECT 1 FROM ips WHERE address=?", (address,)).fetchone():
            return False
        conn.execute("INSERT INTO ips (address, network, machine_id) VALUES (?,?,?)", (address, network_id, machine_id))
        return True

    def has_ip(self, conn, machine_id=None, network_id=None):
        """Whether any address is held (by ``machine_id``, on ``network_id``, or both)."""
        where, args = [], []
        if machine_id is not None:
            where.append("machine_id=?")
            args.append(machine_id)
        if network_id is not None:
            where.append("network=?")
            args.append(network_id)
        sql = "SELECT 1 FROM ips" + (" WHERE " + " AND ".join(where) if where else "") + " LIMIT 1"
        return conn.execute(sql, args).fetchone() is not None

    # -- counts the faces report ----------------------------------------------------------------
    def leased_count(self, face, conn=None):
        """How many machines carry a lease made through ``face``."""
        return (conn or self._conn()).execute("SELECT count(*) FROM machines WHERE lease_face=?",
                                              (face,)).fetchone()[0]

    def distinct(self, column):
        """The distinct values of a machine attribute (``partition``, ``size``, ``rack``)."""
        if column not in ("partition", "size", "rack", "vendor"):
            raise ValueError("no such machine attribute: %s" % column)
        return [r[0] for r in self.query("SELECT DISTINCT %s FROM machines" % column)]

    def capacity(self):
        """[(partition, size, state, leased, mstate, power, count)] over the whole pool."""
        return self.query("SELECT partition, size, state, lease_name IS NOT NULL, mstate, power, count(*)"
                          " FROM machines GROUP BY partition, size, state, lease_name IS NOT NULL, mstate, power")

    def update_lease(self, ident, changes, conn=None):
        """Merge ``changes`` into the lease of a leased machine (columns and JSON)."""
        def _do(c):
            m = self._require(c, ident)
            if m["lease_name"] is None:
                raise PoolError("machine %s is not leased" % m["id"], "conflict")
            lease = m["lease"] or {}
            lease.update(changes)
            cols = {"lease": json.dumps(lease, sort_keys=True), "changed": _now()}
            for key in ("name", "hostname", "address", "image", "project", "owner"):
                if key in changes:
                    cols["lease_name" if key == "name" else ("lease_owner" if key == "owner" else key)] = changes[key]
            c.execute("UPDATE machines SET %s WHERE id=?" % ", ".join("%s=?" % k for k in cols),
                      list(cols.values()) + [m["id"]])
            return self.get(m["id"], c)
        return self._write(conn, _do)

    def release(self, ident, conn=None, event=None):
        """Drop the lease of a machine (and its metal IPs). Returns the machine as it was."""
        def _do(c):
            m = self._require(c, ident)
            if m["lease_name"] is None:
                raise PoolError("machine %s is not leased" % m["id"], "conflict")
            cols = {k: None for k in _LEASE_COLUMNS}
            cols["changed"] = _now()
            c.execute("UPDATE machines SET %s WHERE id=?" % ", ".join("%s=?" % k for k in cols),
                      list(cols.values()) + [m["id"]])
            c.execute("DELETE FROM ips WHERE machine_id=?", (m["id"],))
            if m["state"] == LEASED:
                # never started installing: straight back into the loop
                self._set_state(c, m, UNLEASED, loop_since=_now(), due_at=None, due_step=None)
            if event:
                self._add_event(c, m["id"], *event)
            return m
        return self._write(conn, _do)

    def reclaim(self, ident, conn=None):
        """metal free: the machine is reclaimed (event, LED off) and wipes on its way to the loop."""
        def _do(c):
            m = self._require(c, ident)
            self._add_event(c, m["id"], EV_RECLAIM, "free machine called")
            self._set_state(c, m, WIPING, led="LED-OFF", led_description="", due_at=None, due_step=None)
        return self._write(conn, _do)

    # -- what the machine did (drivers report here) -------------------------------------
    def record_seen(self, mac, when=None):
        """A PXE loop hit of ``mac``. A machine with a lease starts installing; one without
        (after a wipe or reboot with a blank disk) is back in the reboot loop."""
        when = _now() if when is None else when
        with self.tx() as conn:
            m = self._require(conn, mac)
            if m["state"] == UNLEASED:
                conn.execute("UPDATE machines SET last_seen=?, loop_since=COALESCE(loop_since, ?) WHERE id=?",
                             (when, when, m["id"]))
                return UNLEASED
            if m["state"] == INSTALLING:
                conn.execute("UPDATE machines SET last_seen=? WHERE id=?", (when, m["id"]))
                return INSTALLING
            if m["lease_name"] is not None:
                self._enter_install(conn, m, when)
                return INSTALLING
            self._enter_loop(conn, m, when)
            return UNLEASED

    def _enter_loop(self, conn, m, when):
        for ev, msg in LOOP_ENTRY_EVENTS:
            self._add_event(conn, m["id"], ev, msg, when)
        self._set_state(conn, m, UNLEASED, when, loop_since=when, last_seen=when, disk_state="blank",
                        due_at=None, due_step=None)

    def _enter_install(self, conn, m, when):
        if m["state"] != LEASED:
            # rebooted into PXE (reinstall, or a wiped machine whose deployment still exists)
            for ev, msg in LOOP_ENTRY_EVENTS[:3]:
                self._add_event(conn, m["id"], ev, msg, when)
        self._add_event(conn, m["id"], EV_INSTALLING, "start installation", when)
        self._set_state(conn, m, INSTALLING, when, last_seen=when, loop_since=None,
                        disk_state="installing", due_at=None, due_step=None)

    def record_event(self, ident, phase, message=None, when=None):
        """A driver reports what really happened to a machine. ``phase``:

        ``installing`` (installer started), ``booting`` / ``os-written`` (OS written,
        booting into it), ``provisioned`` (OS up and reachable), ``rebooting`` (planned
        reboot), ``wiping`` (disks being wiped), ``unleased`` (back in the loop),
        ``crashed`` (installer failed; ``message`` = error), ``alive`` (heartbeat).
        Returns the new state."""
        when = _now() if when is None else when
        with self.tx() as conn:
            m = self._require(conn, ident)
            mid = m["id"]
            if phase == "installing":
                if m["state"] != INSTALLING:
                    self._enter_install(conn, m, when)
                return INSTALLING
            if phase in ("booting", "os-written"):
                self._add_event(conn, mid, EV_BOOTING, message or "booting into distro kernel", when)
                conn.execute("UPDATE machines SET disk_state='os', last_seen=?, changed=? WHERE id=?",
                             (when, when, mid))
                if m["state"] != INSTALLING:
                    self._set_state(conn, m, INSTALLING, when)
                return INSTALLING
            if phase == "provisioned":
                self._add_event(conn, mid, EV_PHONED_HOME, message or "%s provisioned" % (m["hostname"] or mid),
                                when)
                cols = {}
                if m["lease"] and m["lease"].get("reinstall"):
                    cols["lease"] = json.dumps(dict(m["lease"], reinstall=False), sort_keys=True)
                self._set_state(conn, m, PROVISIONED, when, disk_state="os", last_seen=when, **cols)
                return PROVISIONED
            if phase == "rebooting":
                self._add_event(conn, mid, EV_PLANNED_REBOOT, message or "RESET", when)
                return m["state"]
            if phase == "wiping":
                if message:
                    self._add_event(conn, mid, EV_PLANNED_REBOOT, message, when)
                self._set_state(conn, m, WIPING, when, disk_state="blank")
                return WIPING
            if phase == "unleased":
                if m["lease_name"] is not None:
                    raise PoolError("machine %s is leased; it cannot return to the loop" % mid, "conflict")
                self._enter_loop(conn, m, when)
                return UNLEASED
            if phase == "crashed":
                self._add_event(conn, mid, EV_CRASHED, message or "installation failed", when)
                return m["state"]
            if phase == "alive":
                conn.execute("UPDATE machines SET last_seen=? WHERE id=?", (when, mid))
                return m["state"]
            raise PoolError("unknown phase %r" % phase)

    def set_columns(self, ident, conn=None, **cols):
        def _do(c):
            m = self._require(c, ident)
            cols.setdefault("changed", _now())
            c.execute("UPDATE machines SET %s WHERE id=?" % ", ".join("%s=?" % k for k in cols),
                      list(cols.values()) + [m["id"]])
            return self.get(m["id"], c)
        return self._write(conn, _do)

    # -- driver timers -----------------------------------------------------------------
    def schedule(self, ident, step, at, conn=None):
        """Set the driver's one pending timer of a machine (persisted: survives restarts)."""
        def _do(c):
            c.execute("UPDATE machines SET due_at=?, due_step=? WHERE id=? OR mac=?", (at, step, ident, ident))
        return self._write(conn, _do)

    def take_due(self, now=None, limit=500):
        """[(machine_id, step)] whose timer expired; the timers are cleared."""
        now = _now() if now is None else now
        with self.tx() as conn:
            rows = conn.execute("SELECT id, due_step FROM machines WHERE due_at IS NOT NULL AND due_at <= ?"
                                " ORDER BY due_at LIMIT ?", (now, limit)).fetchall()
            for mid, _ in rows:
                conn.execute("UPDATE machines SET due_at=NULL, due_step=NULL WHERE id=?", (mid,))
        return [(r[0], r[1]) for r in rows]

    def next_due(self):
        rows = self.query("SELECT min(due_at) FROM machines WHERE due_at IS NOT NULL")
        return rows[0][0]

    def state_counts(self):
        return dict(self.query("SELECT state, count(*) FROM machines GROUP BY state"))


def _row(row):
    if row is None:
        return None
    d = dict(row)
    labels = d.get("labels")
    d["labels"] = json.loads(labels) if labels and labels != "{}" else {}
    d["lease"] = json.loads(d["lease"]) if d.get("lease") else None
    d["last_error"] = json.loads(d["last_error"]) if d.get("last_error") else None
    return d


# -- pool sources ------------------------------------------------------------------------
def _mac_for(index, oui):
    return "%s:%02x:%02x:%02x" % (oui, (index >> 16) & 0xFF, (index >> 8) & 0xFF, index & 0xFF)


def generate_machines(n, racks=None, sizes=DEFAULT_SIZES, partition=DEFAULT_PARTITION, seed=0):
    """``n`` machines with stable ids/MACs, spread over racks (20 per rack by default),
    sizes (mostly small) and vendors (by OUI)."""
    rng = random.Random(seed)
    racks = racks or max(1, (n + 19) // 20)
    out = []
    weights = [6, 3, 1][:len(sizes)]
    for i in range(n):
        oui = GENERATED_OUIS[i % len(GENERATED_OUIS)]
        size = sizes[0] if i < 3 else rng.choices(sizes, weights=weights)[0]
        cores, mem, disk = SIZE_HARDWARE.get(size, (4, 4 * 1024 ** 3, 100 * 1000 ** 3))
        out.append({
            "id": str(uuid.UUID(int=(0x1AB << 96) | (i + 1))),
            "mac": _mac_for(i + 1, oui),
            "size": size,
            "partition": partition,
            "rack": "rack-%02d" % (i % racks + 1),
            "labels": {"fleetlab.io/index": str(i + 1)},
            "cpus": cores,
            "memory": mem,
            "disk": disk,
        })
    return out


def load_pool_file(path):
    """Machines from a YAML file::

        machines:
          - mac: 52:54:00:00:02:01
            id: 00000000-0000-0000-0000-000000000001   # optional (derived from the MAC)
            size: v1-small-x86                          # optional
            partition: mini-lab                         # optional
            rack: rack-01                               # optional
            vendor: ...                                 # optional (from the OUI)
            labels: {role: storage}                     # optional
    """
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    items = data.get("machines") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError("%s: expected a list under 'machines'" % path)
    out = []
    seen = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "mac" not in item:
            raise ValueError("%s: machine #%d has no mac" % (path, i + 1))
        raw = item["mac"]
        if isinstance(raw, int) and not isinstance(raw, bool):
            # YAML 1.1 reads an unquoted 52:54:00:00:00:01 as a base-60 integer: undo that
            digits = []
            for _ in range(6):
                raw, d = divmod(raw, 60)
                digits.append("%02d" % d)
            raw = ":".join(reversed(digits)) if raw == 0 else str(item["mac"])
        try:
            mac = normalize_mac(str(raw))
        except PoolError as exc:
            raise ValueError("%s: machine #%d: %s" % (path, i + 1, exc.message))
        if mac in seen:
            raise ValueError("%s: duplicate mac %s" % (path, mac))
        seen.add(mac)
        size = item.get("size", DEFAULT_SIZES[0])
        cores, mem, disk = SIZE_HARDWARE.get(size, (4, 4 * 1024 ** 3, 100 * 1000 ** 3))
        mid = str(item.get("id") or uuid.uuid5(uuid.NAMESPACE_OID, "fleetlab:" + mac))
        uuid.UUID(mid)
        labels = item.get("labels") or {}
        if not isinstance(labels, dict):
            raise ValueError("%s: labels of %s must be a mapping" % (path, mac))
        out.append({
            "id": mid, "mac": mac, "size": size,
            "partition": item.get("partition", DEFAULT_PARTITION),
            "rack": str(item.get("rack", "rack-01")),
            "vendor": item.get("vendor") or vendor_for(mac),
            "labels": {str(k): str(v) for k, v in labels.items()},
            "cpus": int(item.get("cpus", cores)),
            "memory": int(item.get("memory", mem)),
            "disk": int(item.get("disk", disk)),
        })
    return out


def open_pool(state_dir, loop_period=None, lease_network="10.77.0.0/16"):
    os.makedirs(state_dir, exist_ok=True)
    path = os.path.join(state_dir, "pool.sqlite")
    # the pool holds leases' user data and SSH keys: owner-only. SQLite gives its -wal and -shm
    # files the main file's mode, so the main file is created 0600 before SQLite opens it.
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    for name in (path, path + "-wal", path + "-shm"):
        if os.path.exists(name):
            os.chmod(name, 0o600)
    return Pool(path, loop_period=loop_period, lease_network=lease_network)
