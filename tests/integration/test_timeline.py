"""The timeline callback on a real ansible-playbook run (lease, provision, wipe on the sim lab):
the page and its JSON are written, every machine has its row with its bars, the slowest step is
marked, and a real browser (Debian's headless Chromium) renders it without errors."""
import glob
import json
import os
import re
import shutil
import subprocess
import uuid

import pytest

from playbook_runner import PROJECT, connection_vars, lease_defaults, run_playbook

pytestmark = [pytest.mark.integration, pytest.mark.lab]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def timeline(lab, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("timeline")
    name = "tl%s" % uuid.uuid4().hex[:5]
    lease = {"name": name, "count": 2}
    lease.update(lease_defaults("metal", name))
    target = {"name": name, "project": PROJECT, "poll_interval": 0.3, "wait_timeout": 60}
    tasks = [{"name": "lease", "baremetal.fleet.lease": lease},
             {"name": "provision", "baremetal.fleet.provision": target},
             {"name": "wipe", "baremetal.fleet.wipe": dict(target, wait=True)}]
    out_dir = tmp / "pages"
    res = run_playbook(tmp, tasks, module_defaults=connection_vars(lab, "metal"),
                       env={"ANSIBLE_CALLBACKS_ENABLED": "baremetal.fleet.timeline",
                            "FLEET_TIMELINE_DIR": str(out_dir)})
    assert res.rc == 0, res.stdout[-3000:]
    (page,) = glob.glob(str(out_dir / "timeline-*.html"))
    with open(page[:-5] + ".json") as fh:
        data = json.load(fh)
    return page, data, name


def test_every_machine_has_its_row_and_bars(timeline):
    page, data, name = timeline
    rows = dict((r["name"], r["bars"]) for r in data["rows"])
    members = sorted(r for r in rows if r.startswith(name))
    assert members == ["%s-0" % name, "%s-1" % name]
    for member in members:
        labels = [b["label"] for b in rows[member]]
        assert labels[0] == "lease" and "provisioned" in labels and "wipe" in labels and "back in the loop" in labels
        starts = [b["start"] for b in rows[member]]
        assert starts == sorted(starts) and all(b["seconds"] >= 0 for b in rows[member])
    longest = max(b["seconds"] for r in data["rows"] for b in r["bars"])
    slowest = data["slowest"]
    assert slowest["seconds"] == longest
    assert any(b["label"] == slowest["label"] and b["seconds"] == longest for b in rows[slowest["row"]])


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (scripts/setup.sh installs it)")
def test_page_renders_in_a_real_browser(timeline, tmp_path):
    page, data, _name = timeline
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--user-data-dir=%s" % (tmp_path / "profile"), "--enable-logging=stderr", "--v=0",
            "--virtual-time-budget=2000", "--dump-dom", "file://" + page]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    dom = out.stdout
    bars = len(re.findall(r'<rect [^>]*class="bar', dom))
    assert bars == sum(len(r["bars"]) for r in data["rows"]) and bars > 0
    for row in data["rows"]:
        assert 'data-row="%s"' % row["name"] in dom
    assert dom.count('class="bar slowest"') == 1
    assert "Uncaught" not in out.stderr and "SyntaxError" not in out.stderr
    shot = os.environ.get("FLEET_TIMELINE_SCREENSHOT") or str(tmp_path / "page.png")
    subprocess.run(argv[:-2] + ["--screenshot=%s" % shot, "--window-size=1200,400", "file://" + page],
                   capture_output=True, timeout=120)
    assert os.path.getsize(shot) > 5000  # a picture, not an empty page
