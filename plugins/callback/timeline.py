# -*- coding: utf-8 -*-
# Copyright: baremetal.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: timeline
type: aggregate
short_description: A timeline picture of a run, one row per machine
description:
  - Writes a self-contained HTML page with an SVG chart and the same data as JSON beside it, when
    the playbook ends.
  - One row per machine, with bars for its lease and each provisioning phase the collection's
    modules report (installing, provisioned, wiping, back in the loop), the first SSH connection,
    each role and every kubeadm join, and one row for the controller's own steps (such as the
    check that every node is Ready).
  - Durations show on hover; the slowest step is marked.
  - Enable it per run, for example C(ANSIBLE_CALLBACKS_ENABLED=baremetal.fleet.timeline).
version_added: 0.2.0
author:
  - baremetal.fleet maintainers (@baremetal-fleet)
requirements:
  - enabled in the run (C(callbacks_enabled))
options:
  output_dir:
    description: Directory the page (C(timeline-<time>.html)) and the data (C(.json)) are written to.
    type: path
    default: ./timeline
    env:
      - name: FLEET_TIMELINE_DIR
    ini:
      - section: callback_timeline
        key: output_dir
"""

import json
import os
import time
import zlib

from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.callback import CallbackBase

CONTROLLER = "controller"
# provisioning states the modules report, in order, and the span each one opens
PHASE_LABELS = (("leased", "lease"), ("installing", "PXE / install"), ("provisioned", "provisioned"),
                ("wiping", "wipe"), ("unleased", "back in the loop"))
MACHINE_MODULES = ("lease", "provision", "wipe")


def _escape(text):
    return (to_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _colour(label):
    hue = zlib.crc32(label.encode("utf-8")) % 360
    return "hsl(%d, 55%%, 55%%)" % hue


class Timeline:
    """Bars per row, in seconds since the epoch; rendered as JSON and as an HTML page with SVG."""

    def __init__(self):
        self.rows = {}
        self.start = time.time()
        self.end = None
        self.playbook = ""

    def add(self, row, label, start, end):
        if end is None or start is None or end < start:
            return
        bars = self.rows.setdefault(row, [])
        for span in bars:
            if span["label"] == label:  # one span per label and row: it grows to cover every part
                span["start"], span["end"] = min(span["start"], start), max(span["end"], end)
                return
        bars.append({"label": label, "start": start, "end": end})

    def data(self):
        end = self.end or time.time()
        rows = []
        slowest = None
        for name in sorted(self.rows, key=lambda n: (n == CONTROLLER, n)):
            bars = sorted(self.rows[name], key=lambda b: b["start"])
            out = []
            for span in bars:
                item = {"label": span["label"], "start": round(span["start"] - self.start, 2),
                        "end": round(span["end"] - self.start, 2), "seconds": round(span["end"] - span["start"], 2)}
                out.append(item)
                if slowest is None or item["seconds"] > slowest["seconds"]:
                    slowest = dict(item, row=name)
            rows.append({"name": name, "bars": out})
        return {"playbook": self.playbook, "started": self.start, "seconds": round(end - self.start, 2),
                "rows": rows, "slowest": slowest}

    def html(self, data, json_name):
        width, left, row_h, top = 1100, 190, 24, 40
        total = max(data["seconds"], 1.0)
        scale = (width - left - 20) / total
        height = top + row_h * len(data["rows"]) + 40
        parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" role="img" '
                 'aria-label="timeline">' % (width, height)]
        step = max(1, int(total / 10))
        for t in range(0, int(total) + 1, step):
            x = left + t * scale
            parts.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="grid"/>' % (x, top - 5, x, height - 30))
            parts.append('<text x="%.1f" y="%d" class="tick">%ds</text>' % (x, top - 10, t))
        slowest = data["slowest"] or {}
        for i, row in enumerate(data["rows"]):
            y = top + i * row_h
            parts.append('<text x="%d" y="%d" class="row">%s</text>' % (left - 8, y + 16, _escape(row["name"])))
            for span in row["bars"]:
                mark = (row["name"] == slowest.get("row") and span["label"] == slowest.get("label"))
                x = left + span["start"] * scale
                w = max(2.0, span["seconds"] * scale)
                parts.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" rx="3" fill="%s" class="bar%s" '
                             'data-row="%s" data-label="%s"><title>%s: %s, %.1f s (from %.1f s to %.1f s)</title></rect>'
                             % (x, y + 3, w, row_h - 6, _colour(span["label"]), " slowest" if mark else "",
                                _escape(row["name"]), _escape(span["label"]), _escape(row["name"]),
                                _escape(span["label"]), span["seconds"], span["start"], span["end"]))
                if mark:
                    parts.append('<text x="%.1f" y="%d" class="slowest-label">slowest: %s %.1f s</text>'
                                 % (x + w + 4, y + 16, _escape(span["label"]), span["seconds"]))
        parts.append("</svg>")
        labels = sorted(set(b["label"] for r in data["rows"] for b in r["bars"]))
        legend = "".join('<span class="key"><i style="background:%s"></i>%s</span>' % (_colour(l), _escape(l))
                         for l in labels)
        page = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>timeline: %(title)s</title>
<style>
body{font:14px sans-serif;margin:1.5em;color:#222}
.grid{stroke:#ddd}.tick{font-size:11px;fill:#777;text-anchor:middle}
.row{font-size:12px;text-anchor:end;fill:#222}
.bar{stroke:#0002}.bar.slowest{stroke:#c00;stroke-width:3}
.slowest-label{font-size:11px;fill:#c00}
.key{margin-right:1em;white-space:nowrap}.key i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
</style></head><body>
<h1>%(title)s</h1>
<p>%(seconds).1f s in all; slowest step: %(slowest)s. Hover a span for its duration. Data: <a href="%(json)s">%(json)s</a></p>
%(svg)s
<p class="legend">%(legend)s</p>
</body></html>
"""
        summary = ("%s on %s, %.1f s" % (slowest.get("label"), slowest.get("row"), slowest.get("seconds", 0))
                   if slowest else "none")
        return page % {"title": _escape(data["playbook"] or "ansible run"), "seconds": data["seconds"],
                       "slowest": _escape(summary), "json": _escape(json_name), "svg": "\n".join(parts),
                       "legend": legend}


class CallbackModule(CallbackBase):
    """Collects when each task ran on each host (and what the pool modules report per machine)
    and writes the timeline when the playbook ends."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "baremetal.fleet.timeline"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.timeline = Timeline()
        self._task_start = {}   # task uuid -> time
        self._host_start = {}   # (task uuid, host) -> time

    def v2_playbook_on_start(self, playbook):
        self.timeline.playbook = os.path.basename(to_text(playbook._file_name))

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task_start[task._uuid] = time.time()

    def v2_playbook_on_handler_task_start(self, task):
        self._task_start[task._uuid] = time.time()

    def v2_runner_on_start(self, host, task):
        self._host_start[(task._uuid, host.get_name())] = time.time()

    def _done(self, result):
        end = time.time()
        task = result._task
        host = result._host.get_name()
        start = self._host_start.get((task._uuid, host), self._task_start.get(task._uuid, end))
        delegated = (result._result.get("_ansible_delegated_vars") or {}).get("ansible_host")
        action = (task.action or "").split(".")[-1]
        name = task.get_name()
        if action in MACHINE_MODULES and isinstance(result._result.get("machines"), list):
            self._machines(action, result._result["machines"], start, end)
        if host in ("localhost", "127.0.0.1") or delegated in ("localhost", "127.0.0.1"):
            if action not in MACHINE_MODULES and (end - start) >= 1.0:
                self.timeline.add(CONTROLLER, name.split(" : ")[-1][:40], start, end)
            return
        if action == "wait_for_connection":
            self.timeline.add(host, "first SSH", start, end)
        role = task._role.get_name() if task._role else None
        if role:
            self.timeline.add(host, role.split(".")[-1], start, end)
        lowered = name.lower()
        if "join" in lowered and action in ("command", "shell"):
            self.timeline.add(host, "kubeadm join", start, end)
        elif "kubeadm init" in lowered or lowered.endswith("initialise the first control plane"):
            self.timeline.add(host, "kubeadm init", start, end)

    def _machines(self, action, machines, start, end):
        """Bars from what lease / provision / wipe report per machine: the lease itself, and each
        provisioning phase from when it was first seen to when the next one was (or the task ended)."""
        for item in machines:
            if not isinstance(item, dict):
                continue
            row = item.get("hostname") or item.get("name") or item.get("mac")
            if not row:
                continue
            if action == "lease":
                if item.get("changed"):
                    self.timeline.add(row, "lease", start, end)
                continue
            phases = item.get("phases") or {}
            seen = sorted((float(t), state) for state, t in phases.items() if isinstance(t, (int, float)))
            for i, (t, state) in enumerate(seen):
                label = dict(PHASE_LABELS).get(state, state)
                t_end = seen[i + 1][0] if i + 1 < len(seen) else (end - start)
                if state in ("provisioned", "unleased") and i + 1 == len(seen):
                    t_end = t + 0.5  # a point in time: the machine got there
                self.timeline.add(row, label, start + t, start + t_end)

    v2_runner_on_ok = _done
    v2_runner_on_failed = _done
    v2_runner_on_unreachable = _done

    def v2_playbook_on_stats(self, stats):
        self.timeline.end = time.time()
        out_dir = self.get_option("output_dir") if self._plugin_options is not None else "./timeline"
        out_dir = os.path.abspath(os.path.expanduser(out_dir or "./timeline"))
        try:
            os.makedirs(out_dir, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.timeline.start))
            base = "timeline-%s-%s" % (os.path.splitext(self.timeline.playbook)[0] or "run", stamp)
            data = self.timeline.data()
            with open(os.path.join(out_dir, base + ".json"), "w") as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
            page = os.path.join(out_dir, base + ".html")
            with open(page, "w") as fh:
                fh.write(self.timeline.html(data, base + ".json"))
            self._display.display("timeline: %s" % page)
        except (OSError, IOError) as err:
            self._display.warning("baremetal.fleet.timeline: cannot write the timeline to %s: %s" % (out_dir, err))
