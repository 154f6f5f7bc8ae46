"""The double's cluster state, kept in the cluster's real etcd (TEST DOUBLE side).

The state is a dict of sections; the sections that hold one entry per object (nodes, applied
objects, bootstrap tokens, control-plane marks) are stored one key per entry, the others one key
per section, all under ``/registry/fleetlab-double/`` — so ``etcdctl get --prefix /registry``
lists the cluster's objects and an etcd snapshot holds all of it. Writes are optimistic, as the
real API server's: a transaction that succeeds only when nothing was written since the read
(the ``generation`` key's revision); a conflict re-runs the change on fresh state.
"""
import json
import threading

from .etcd import Etcd, EtcdError  # noqa: F401  (EtcdError is part of this module's interface)

PREFIX = "/registry/fleetlab-double/"
GENERATION = PREFIX + "generation"
ENTRY_SECTIONS = ("nodes", "objects", "tokens", "control_planes")
MAX_ATTEMPTS = 50


class Conflict(Exception):
    """Another writer changed the state between our read and our write."""


def _encode(state):
    keys = {}
    for section, value in state.items():
        if section in ENTRY_SECTIONS:
            for entry, item in value.items():
                keys[PREFIX + section + "/" + entry] = json.dumps(item, sort_keys=True).encode()
        else:
            keys[PREFIX + section] = json.dumps(value, sort_keys=True).encode()
    return keys


def _decode(kvs):
    state = {section: {} for section in ENTRY_SECTIONS}
    for key, (value, _rev) in kvs.items():
        if key == GENERATION:
            continue
        section, _sep, entry = key[len(PREFIX):].partition("/")
        if section in ENTRY_SECTIONS and entry:
            state[section][entry] = json.loads(value)
        elif not entry:
            state[section] = json.loads(value)
    return state


class Store:
    def __init__(self, etcd):
        self.etcd = etcd
        self._local = threading.Lock()  # one writer per process at a time: fewer conflicts

    @classmethod
    def connect(cls, endpoints, ca_file, cert_file, key_file, timeout=5.0):
        return cls(Etcd(endpoints, ca_file, cert_file, key_file, timeout))

    def read(self):
        _rev, kvs = self.etcd.range_prefix(PREFIX)
        return _decode(kvs)

    def _commit(self, kvs, state):
        old = {k: v for k, (v, _r) in kvs.items() if k != GENERATION}
        new = _encode(state)
        ops = [Etcd.put_op(k, v) for k, v in sorted(new.items()) if old.get(k) != v]
        ops += [Etcd.delete_op(k) for k in sorted(old) if k not in new]
        if not ops:
            return
        generation = kvs.get(GENERATION, (b"0", 0))
        ops.append(Etcd.put_op(GENERATION, str(int(generation[0] or b"0") + 1)))
        if not self.etcd.txn([Etcd.mod_revision_is(GENERATION, generation[1])], ops):
            raise Conflict()

    def update(self, change):
        """Run ``change(state)`` on the current state and write what it changed; returns its result."""
        with self._local:
            for _attempt in range(MAX_ATTEMPTS):
                _rev, kvs = self.etcd.range_prefix(PREFIX)
                state = _decode(kvs)
                result = change(state)
                try:
                    self._commit(kvs, state)
                    return result
                except Conflict:
                    continue
        raise EtcdError("the state kept changing under %d attempts to write it" % MAX_ATTEMPTS)
