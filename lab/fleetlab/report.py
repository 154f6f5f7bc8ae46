"""``fleetlab report``: the pool's machines and their recent events as one self-contained HTML page
(an SVG chart, one row per machine, one bar per lifecycle event lasting until the next one),
in the style of the collection's timeline callback, and the same data as JSON beside it."""
import html
import json
import os
import time
import zlib

from . import store as P


def _colour(label):
    return "hsl(%d, 55%%, 55%%)" % (zlib.crc32(label.encode("utf-8")) % 360)


def collect(pool, since, now=None, limit=50):
    """{"since", "now", "rows": [{name, mac, state, lease, bars: [{label, start, end, message}]}]}."""
    now = now or time.time()
    machines = pool.machines(order="mac")
    events = pool.events([m["id"] for m in machines], limit=limit)
    rows = []
    for m in machines:
        evs = sorted((t, e, msg) for t, e, msg in events.get(m["id"], []) if t is not None)
        bars = []
        for i, (t, event, message) in enumerate(evs):
            end = evs[i + 1][0] if i + 1 < len(evs) else now
            if end < since:
                continue
            bars.append({"label": event, "start": round(max(t, since) - since, 2), "end": round(end - since, 2),
                         "message": message or ""})
        rows.append({"name": m["hostname"] or m["mac"], "mac": m["mac"], "state": m["state"],
                     "lease": m["lease_name"], "bars": bars})
    return {"since": since, "now": now, "seconds": round(now - since, 2), "rows": rows}


def render(data, title):
    width, left, row_h, top = 1100, 230, 22, 40
    total = max(data["seconds"], 1.0)
    scale = (width - left - 20) / total
    height = top + row_h * len(data["rows"]) + 30
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d">' % (width, height)]
    step = max(1, int(total / 10))
    for t in range(0, int(total) + 1, step):
        x = left + t * scale
        svg.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" class="grid"/><text x="%.1f" y="%d" class="tick">-%ds'
                   '</text>' % (x, top - 5, x, height - 20, x, top - 10, int(total - t)))
    for i, row in enumerate(data["rows"]):
        y = top + i * row_h
        svg.append('<text x="%d" y="%d" class="row">%s (%s)</text>'
                   % (left - 8, y + 15, html.escape(row["name"]), html.escape(row["state"])))
        for span in row["bars"]:
            x = left + span["start"] * scale
            w = max(2.0, (span["end"] - span["start"]) * scale)
            svg.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" rx="3" fill="%s" class="bar" data-row="%s">'
                       '<title>%s: %s for %.1f s %s</title></rect>'
                       % (x, y + 3, w, row_h - 6, _colour(span["label"]), html.escape(row["mac"]),
                          html.escape(row["name"]), html.escape(span["label"]), span["end"] - span["start"],
                          html.escape(span["message"])))
    svg.append("</svg>")
    labels = sorted(set(b["label"] for r in data["rows"] for b in r["bars"]))
    legend = "".join('<span class="key"><i style="background:%s"></i>%s</span>' % (_colour(l), html.escape(l))
                     for l in labels)
    counts = {}
    for row in data["rows"]:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    summary = ", ".join("%s %d" % (s, counts.get(s, 0)) for s in P.STATES)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>%s</title><style>"
            "body{font:14px sans-serif;margin:1.5em;color:#222}.grid{stroke:#ddd}"
            ".tick{font-size:11px;fill:#777;text-anchor:middle}.row{font-size:12px;text-anchor:end}"
            ".bar{stroke:#0002}.key{margin-right:1em;white-space:nowrap}"
            ".key i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}"
            "</style></head><body><h1>%s</h1><p>%d machines: %s. The last %.0f s; hover a bar for the event.</p>"
            "%s<p>%s</p></body></html>\n"
            % (html.escape(title), html.escape(title), len(data["rows"]), html.escape(summary), data["seconds"],
               "\n".join(svg), legend))


def write(state_dir, out, minutes=60.0):
    """Write the page (and ``.json`` beside it) for the lab in ``state_dir``; return its path."""
    db = os.path.join(state_dir, "pool.sqlite")
    if not os.path.exists(db):
        raise SystemExit("fleetlab report: no pool in %s" % state_dir)
    pool = P.Pool(db)
    now = time.time()
    data = collect(pool, now - minutes * 60.0, now)
    out = os.path.abspath(out or os.path.join(state_dir, "report.html"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        fh.write(render(data, "fleetlab pool %s" % state_dir))
    with open(os.path.splitext(out)[0] + ".json", "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1)
    return out
