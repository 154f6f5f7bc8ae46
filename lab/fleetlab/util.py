"""Small helpers shared by the faces."""

import datetime
import json
import os
import time

MAX_BODY = 1024 * 1024  # bytes; larger request bodies are refused


def rfc3339nano(ts):
    """Go's time.RFC3339Nano for a unix timestamp, UTC: trailing fraction zeros trimmed."""
    if ts is None:
        return None
    sec = int(ts // 1)
    micro = int((ts - sec) * 1e6 + 0.5)
    if micro >= 1000000:
        sec, micro = sec + 1, micro - 1000000
    base = _base_cache.get(sec)
    if base is None:
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        if len(_base_cache) > 100000:
            _base_cache.clear()
        _base_cache[sec] = base
    if not micro:
        return base + "Z"
    return base + "." + ("%06d" % micro).rstrip("0") + "Z"


_base_cache = {}


def rfc3339(ts):
    dt = datetime.datetime.fromtimestamp(ts, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text):
    """Parse an RFC3339 timestamp (as Go's time.Parse(time.RFC3339)) to a unix time."""
    if not isinstance(text, str) or "T" not in text:
        raise ValueError("not RFC3339: %r" % (text,))
    value = text
    if value.endswith("Z") or value.endswith("z"):
        value = value[:-1] + "+00:00"
    dt = datetime.datetime.fromisoformat(value)
    if dt.tzinfo is None:
        raise ValueError("no zone in %r" % (text,))
    return dt.timestamp()


def dumps(obj):
    """Compact JSON like Go's encoder (no ASCII escaping)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class BodyTooLarge(Exception):
    pass


def read_body(request, limit=MAX_BODY):
    """The request body, refusing more than ``limit`` bytes."""
    length = request.content_length
    if length is not None and length > limit:
        raise BodyTooLarge()
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise BodyTooLarge()
    return data


def stop_pid(pid, timeout=10.0):
    """SIGTERM process ``pid`` (one we started), SIGKILL when it is still there after ``timeout``."""
    import signal

    if not pid or not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.1)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def pid_alive(pid):
    """Whether a process runs: a zombie (nothing reaps it where PID 1 is not an init) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/stat" % pid) as f:
            if f.read().split(")")[-1].split()[0] == "Z":
                return False
    except OSError:
        return False
    return True


MAX_ALIASES = 64  # YAML aliases one request body may use


def load_bounded_yaml(text, max_aliases=MAX_ALIASES, max_size=MAX_BODY):
    """``yaml.safe_load`` that refuses (ValueError) a document using more than ``max_aliases``
    aliases or expanding, as if every alias were a copy, past ``max_size`` (scalars count their
    length). A YAML alias bomb is a few hundred bytes that expand to gigabytes."""
    import yaml

    class _Loader(yaml.SafeLoader):
        aliases = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > max_aliases:
                    raise ValueError("more than %d YAML aliases" % max_aliases)
            return super().compose_node(parent, index)

    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506  (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc))
    except RecursionError:
        raise ValueError("document nested too deep")
    if expanded_size(data, max_size) > max_size:
        raise ValueError("document expands past %d bytes" % max_size)
    return data


def expanded_size(obj, limit):
    """Size of ``obj`` with shared sub-objects counted at every use, computed once per object;
    the answer is exact up to ``limit`` and only "more than limit" beyond it."""
    memo = {}

    def size(o, depth=0):
        key = id(o)
        if key in memo:
            return memo[key]
        if depth > 1000:
            return limit + 1
        if isinstance(o, dict):
            n = 1 + sum(size(k, depth + 1) + size(v, depth + 1) for k, v in o.items())
        elif isinstance(o, (list, tuple)):
            n = 1 + sum(size(v, depth + 1) for v in o)
        elif isinstance(o, (str, bytes)):
            n = 1 + len(o)
        else:
            n = 1
        memo[key] = n = min(n, limit + 1)
        return n

    return size(obj)
