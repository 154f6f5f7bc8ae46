"""power.ensure: what it sends, in which order, and bounded waits that name the machine."""
import pytest

from ansible_collections.baremetal.fleet.plugins.module_utils import power
from ansible_collections.baremetal.fleet.plugins.module_utils.pool import PoolError


class FakeControl:
    """A machine whose power follows the requests after `lag` looks (or never, lag=None)."""
    via = "fake"

    def __init__(self, state, lag=1):
        self.state, self.lag, self.sent, self.pending = state, lag, [], None

    def power_state(self):
        if self.pending and self.lag is not None:
            self.pending[1] -= 1
            if self.pending[1] < 0:
                self.state, self.pending = self.pending[0], None
        return self.state

    def power(self, action):
        self.sent.append(action)
        if action in ("on", "off"):
            self.pending = [action, self.lag or 0]
        elif action in ("reset", "cycle"):
            self.state, self.pending = "off", ["on", self.lag or 0]


def _ensure(controls, **kwargs):
    kwargs.setdefault("sleep", lambda _s: None)
    return power.ensure([("m%d" % i, "52:54:00:00:00:0%d" % i, c) for i, c in enumerate(controls)], **kwargs)


def test_on_and_off_are_idempotent_and_boot_once_goes_first():
    on, off = FakeControl("on"), FakeControl("off")
    result = _ensure([on, off], state="on", boot_once="pxe")
    assert on.sent == ["pxe"] and off.sent == ["pxe", "on"]
    assert [m["power"] for m in result["machines"]] == ["on", "on"]
    again = _ensure([on, off], state="on")
    assert not again["changed"] and on.sent == ["pxe"] and off.sent == ["pxe", "on"]


def test_check_mode_sends_nothing_and_says_what_it_would():
    off = FakeControl("off")
    result = _ensure([off], state="on", check_mode=True)
    assert result["changed"] and off.sent == [] and result["machines"][0]["actions"] == ["on"]
    assert result["diff"] == {"before": {"power": {"m0": "off"}}, "after": {"power": {"m0": "on"}}}


def test_a_reset_needs_the_machine_on_and_nothing_is_sent_to_any():
    on, off = FakeControl("on"), FakeControl("off")
    with pytest.raises(PoolError, match="m1 is off: a reset needs it on"):
        _ensure([on, off], state="reset")
    assert on.sent == [] and off.sent == []


def test_waits_are_bounded_and_name_the_machine():
    clock = iter(range(0, 1000, 10))
    stuck = FakeControl("on", lag=None)
    with pytest.raises(PoolError, match=r"m0 is still on 30 s after the power request \(wanted off\)"):
        _ensure([stuck], state="off", timeout=30, poll=10, clock=lambda: next(clock))


def test_nothing_to_do_is_an_error():
    with pytest.raises(PoolError, match="give state, boot_once or both"):
        _ensure([FakeControl("on")])
