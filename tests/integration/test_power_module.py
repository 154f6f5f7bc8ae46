"""baremetal.fleet.power: through metal-api's power API on the sim lab, and over Redfish against
sushy-tools' BMC emulator (its fake systems, whose power changes take 1-11 s as a BMC's do) on
loopback, for plunder, which has no power API."""
import uuid

import pytest

from playbook_runner import PROJECT, connection_vars, lease_defaults, run_playbook
from redfish_emulator import MAC, PASSWORD, free_port

pytestmark = [pytest.mark.integration, pytest.mark.lab]


def test_metal_power_api_is_idempotent_and_planned_in_check_mode(lab, tmp_path):
    name = "pw%s" % uuid.uuid4().hex[:5]
    defaults = connection_vars(lab, "metal")
    lease = {"name": "lease", "baremetal.fleet.lease": dict({"name": name, "count": 1}, **lease_defaults("metal", name))}
    power = {"name": name, "project": PROJECT, "poll_interval": 0.2, "wait_timeout": 30}
    tasks = [lease,
             {"name": "off", "baremetal.fleet.power": dict(power, state="off")},
             {"name": "off again", "baremetal.fleet.power": dict(power, state="off")},
             {"name": "reset when off", "baremetal.fleet.power": dict(power, state="reset"), "ignore_errors": True},
             {"name": "on planned", "baremetal.fleet.power": dict(power, state="on"), "check_mode": True,
              "diff": True},
             {"name": "still off", "baremetal.fleet.power": dict(power, state="off"), "check_mode": True},
             {"name": "on", "baremetal.fleet.power": dict(power, state="on")},
             {"name": "pxe and reset", "baremetal.fleet.power": dict(power, state="reset", boot_once="pxe")},
             {"name": "release", "baremetal.fleet.lease": {"name": name, "state": "absent", "project": PROJECT}}]
    result = run_playbook(tmp_path, tasks, module_defaults=defaults)
    assert result.rc == 0, result.stdout[-3000:] + result.stderr[-2000:]
    off = result.task("off")
    assert off["changed"] and off["machines"][0]["power_before"] == "on" and off["machines"][0]["power"] == "off"
    assert off["machines"][0]["via"] == "provisioner"
    assert not result.task("off again")["changed"]
    assert "is off: a reset needs it on" in result.task("reset when off")["msg"]
    planned = result.task("on planned")
    assert planned["changed"] and planned["machines"][0]["actions"] == ["on"]
    assert planned["diff"]["after"]["power"] == {"%s-0" % name: "on"}
    assert not result.task("still off")["changed"]  # the check above switched nothing
    assert result.task("on")["machines"][0]["power"] == "on"
    both = result.task("pxe and reset")
    assert both["changed"] and both["machines"][0]["actions"] == ["pxe", "reset"]


def test_plunder_needs_a_bmc_and_gets_there_through_redfish(lab, tmp_path, redfish_bmc):
    defaults = connection_vars(lab, "plunder")
    creds = {MAC: redfish_bmc.entry()}
    power = {"machines": [MAC], "poll_interval": 0.5, "wait_timeout": 40}
    tasks = [
        {"name": "no bmc", "baremetal.fleet.power": dict(power, state="on"), "ignore_errors": True},
        {"name": "on", "baremetal.fleet.power": dict(power, state="on", bmc=creds)},
        {"name": "on again", "baremetal.fleet.power": dict(power, state="on", bmc=creds)},
        {"name": "pxe and cycle", "baremetal.fleet.power": dict(power, state="cycle", boot_once="pxe", bmc=creds)},
        {"name": "off", "baremetal.fleet.power": dict(power, state="off", bmc=creds)},
        {"name": "wrong password", "ignore_errors": True, "baremetal.fleet.power": dict(
            power, state="on", bmc={MAC: dict(creds[MAC], password="wrong")})},
        {"name": "no answer", "ignore_errors": True, "baremetal.fleet.power": dict(
            power, state="on", bmc={MAC: dict(creds[MAC], address="http://127.0.0.1:%d" % free_port())},
            bmc_timeout=5)},
    ]
    result = run_playbook(tmp_path, tasks, module_defaults=defaults)
    assert result.rc == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "neither the provisioner nor bmc knows it" in result.task("no bmc")["msg"]
    on = result.task("on")
    assert on["changed"] and on["machines"][0]["via"] == "bmc" and on["machines"][0]["power"] == "on"
    assert not result.task("on again")["changed"]
    cycled = result.task("pxe and cycle")
    assert cycled["machines"][0]["actions"] == ["pxe", "cycle"] and cycled["machines"][0]["power"] == "on"
    # (the emulator keeps every boot device "Continuous", as libvirt does; a BMC honours "Once")
    assert redfish_bmc.system()["Boot"]["BootSourceOverrideTarget"] == "Pxe"
    assert result.task("off")["machines"][0]["power"] == "off"
    assert redfish_bmc.system()["PowerState"] == "Off"
    assert "refuses the credentials" in result.task("wrong password")["msg"]
    assert "does not answer" in result.task("no answer")["msg"]
    # the BMC's password never shows
    assert PASSWORD not in result.stdout and PASSWORD not in result.stderr
