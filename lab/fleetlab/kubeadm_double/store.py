"""The double's cluster state ("etcd"): one JSON file under the control plane's root (TEST DOUBLE)."""
import contextlib
import fcntl
import json
import os

STATE_PATH = "var/lib/etcd/fleet-kubeadm-double.json"


def state_file(root):
    return os.path.join(root, STATE_PATH)


@contextlib.contextmanager
def locked(root, write=True):
    """Yield the state dict under an exclusive lock; written back when ``write``."""
    path = state_file(root)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            try:
                with open(path) as handle:
                    state = json.load(handle)
            except FileNotFoundError:
                state = {}
            yield state
            if write:
                tmp = path + ".tmp"
                with open(tmp, "w") as handle:
                    json.dump(state, handle, indent=1, sort_keys=True)
                os.replace(tmp, path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def exists(root):
    return os.path.exists(state_file(root))
