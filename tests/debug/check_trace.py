#!/usr/bin/env python3
"""check_trace.py TRACE.json [--strict] [--expect-task NAME]... [--expect-wait TEXT]...
                 [--trace2html TOOL]

Checks a Chrome Trace Event file written by gr (gr::start_chrome_trace or GR_TRACE=...):
  - it is valid JSON with a traceEvents list; every event has the fields its phase needs;
  - every scheduler (pid) has a process_name and every task row (pid, tid) a thread_name;
  - spans ("X") have a known category (running / runnable / blocked), ts >= 0 and dur >= 0; a
    task's spans do not overlap, and at most one task of a scheduler runs at a time;
  - every blocked span ends in its wake: a wake flow ("f") on that task at the span's end time, or
    a "timeout" / "deadlock" instant there; the woken task turns runnable at that moment. A span
    still open when the trace was written (it ends at the trace's last timestamp) is allowed
    unless --strict;
  - every flow start ("s") has its finish ("f") with the same id and time;
  - after a task's "exit" instant, its row has no more spans.
--expect-task / --expect-wait: a thread_name / a blocked span's name must contain the text.
--trace2html TOOL: also renders the trace with tools/trace2html (HTML and --svg) and checks that
both outputs parse as XML with one row per task and an arrow per wake.
Prints a summary line; exits 1 with the list of problems if any check fails.
"""

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

EPS = 0.002  # timestamps are printed with 3 decimals (ns), so sums may be off by a rounding step


def load(path, problems):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        problems.append("cannot load %s as JSON: %s" % (path, e))
        return []
    events = doc.get("traceEvents") if isinstance(doc, dict) else doc
    if not isinstance(events, list):
        problems.append("no traceEvents list")
        return []
    return events


def check(events, args, problems):
    need = {"X": ("name", "cat", "pid", "tid", "ts", "dur"), "M": ("name", "pid", "args"),
            "i": ("name", "pid", "tid", "ts"), "s": ("id", "pid", "tid", "ts"), "f": ("id", "pid", "tid", "ts")}
    procs, threads = set(), {}
    spans = collections.defaultdict(list)      # (pid, tid) -> [(ts, end, cat, name)]
    instants = collections.defaultdict(list)   # (pid, tid) -> [(ts, name)]
    flow_s, flow_f = {}, {}
    used_rows = set()
    for k, e in enumerate(events):
        ph = e.get("ph")
        if ph not in need:
            problems.append("event %d: unknown phase %r" % (k, ph))
            continue
        missing = [f for f in need[ph] if f not in e]
        if missing:
            problems.append("event %d (%s): missing %s" % (k, ph, ", ".join(missing)))
            continue
        row = (e["pid"], e.get("tid"))
        if ph == "M":
            if e["name"] == "process_name":
                procs.add(e["pid"])
            elif e["name"] == "thread_name":
                threads[row] = e["args"].get("name", "")
            continue
        used_rows.add(row)
        if ph == "X":
            if e["cat"] not in ("running", "runnable", "blocked"):
                problems.append("event %d: span of unknown category %r" % (k, e["cat"]))
            if e["ts"] < 0 or e["dur"] < 0:
                problems.append("event %d: negative time in span %r (ts %s, dur %s)" % (k, e["name"], e["ts"], e["dur"]))
            spans[row].append((e["ts"], e["ts"] + e["dur"], e["cat"], e["name"]))
        elif ph == "i":
            instants[row].append((e["ts"], e["name"]))
        elif ph == "s":
            if e["id"] in flow_s:
                problems.append("flow id %s started twice" % e["id"])
            flow_s[e["id"]] = e
        elif ph == "f":
            if e["id"] in flow_f:
                problems.append("flow id %s finished twice" % e["id"])
            flow_f[e["id"]] = e

    for pid in sorted({r[0] for r in used_rows} - procs):
        problems.append("scheduler pid %s has no process_name" % pid)
    for row in sorted(used_rows - set(threads)):
        problems.append("task row %s has no thread_name" % (row,))

    last = max([s[1] for v in spans.values() for s in v] + [t for v in instants.values() for t, _ in v] + [0.0])

    for fid, s in flow_s.items():
        f = flow_f.get(fid)
        if f is None:
            problems.append("flow %s (from task %s) has no finish" % (fid, s["tid"]))
        elif abs(f["ts"] - s["ts"]) > EPS or f["pid"] != s["pid"]:
            problems.append("flow %s: start and finish differ (%s vs %s)" % (fid, s["ts"], f["ts"]))
    for fid in flow_f.keys() - flow_s.keys():
        problems.append("flow %s finishes without a start" % fid)
    wakes = collections.defaultdict(list)  # row -> [ts] of flow finishes
    for f in flow_f.values():
        wakes[(f["pid"], f["tid"])].append(f["ts"])

    blocked = woken_by_flow = woken_by_timer = still_open = 0
    for row, lst in spans.items():
        lst.sort()
        for a, b in zip(lst, lst[1:]):
            if b[0] < a[1] - EPS:
                problems.append("task %s: spans overlap: %r [%s, %s] and %r [%s, %s]" % (row, a[3], a[0], a[1], b[3], b[0], b[1]))
        starts = {round(s[0], 3): s for s in lst}
        exits = [t for t, n in instants[row] if n.startswith("exit")]
        if exits and lst and lst[-1][0] > min(exits) + EPS:
            problems.append("task %s: a span starts after its exit" % (row,))
        for ts, end, cat, name in lst:
            if cat != "blocked":
                continue
            blocked += 1
            if any(abs(w - end) <= EPS for w in wakes[row]):
                woken_by_flow += 1
            elif any(abs(t - end) <= EPS and n in ("timeout", "deadlock") for t, n in instants[row]):
                woken_by_timer += 1
            elif abs(end - last) <= EPS:
                still_open += 1
                if args.strict:
                    problems.append("task %s: %r is still blocked when the trace ends" % (row, name))
                continue
            else:
                problems.append("task %s: %r (from %s to %s) has no wake at its end" % (row, name, ts, end))
                continue
            nxt = [s for s in lst if abs(s[0] - end) <= EPS and s[2] == "runnable"]
            if not nxt:
                problems.append("task %s: woken at %s but no runnable span starts there" % (row, end))
    for row, ws in wakes.items():
        lst = spans.get(row, [])
        for w in ws:
            if not any(abs(s[1] - w) <= EPS and s[2] == "blocked" for s in lst):
                problems.append("task %s: a wake at %s ends no blocked span" % (row, w))

    by_pid = collections.defaultdict(list)
    for row, lst in spans.items():
        by_pid[row[0]] += [(s[0], s[1], row[1]) for s in lst if s[2] == "running"]
    for pid, lst in by_pid.items():
        lst.sort()
        for a, b in zip(lst, lst[1:]):
            if b[0] < a[1] - EPS:
                problems.append("scheduler %s: tasks %s and %s run at once (%s..%s, %s..%s)" % (pid, a[2], b[2], a[0], a[1], b[0], b[1]))

    names = list(threads.values())
    for want in args.expect_task or []:
        if not any(want in n for n in names):
            problems.append("no task row named like %r (rows: %s)" % (want, ", ".join(names)))
    waits = {s[3] for lst in spans.values() for s in lst if s[2] == "blocked"}
    for want in args.expect_wait or []:
        if not any(want in n for n in waits):
            problems.append("no blocked span like %r (blocked spans: %s)" % (want, ", ".join(sorted(waits))))

    return ("%d events, %d scheduler(s), %d task rows, %d spans, %d blocked: %d woken by a task, %d by a timer or the deadlock, "
            "%d still blocked at the end; %d wake flows" % (
                len(events), len(procs), len(threads), sum(map(len, spans.values())), blocked, woken_by_flow,
                woken_by_timer, still_open, len(flow_f)))


def check_render(tool, trace, n_rows, n_flows, problems):
    with tempfile.TemporaryDirectory() as d:
        for flag, out in (([], os.path.join(d, "t.html")), (["--svg"], os.path.join(d, "t.svg"))):
            r = subprocess.run([sys.executable, tool, *flag, trace, "-o", out], capture_output=True, text=True)
            if r.returncode != 0:
                problems.append("trace2html %s failed (%d): %s" % (" ".join(flag), r.returncode, r.stderr.strip()))
                continue
            text = open(out, encoding="utf-8").read()
            for bad in ("http://", "https://"):
                for line in text.splitlines():
                    if bad in line and "xmlns" not in line and "w3.org" not in line:
                        problems.append("trace2html %s output refers to the network: %s" % (" ".join(flag), line.strip()[:120]))
                        break
            try:
                root = ET.fromstring(text if flag else text.split("<!DOCTYPE html>", 1)[-1])
            except ET.ParseError as e:
                problems.append("trace2html %s output is not well-formed: %s" % (" ".join(flag), e))
                continue
            ns = "{http://www.w3.org/2000/svg}"
            svg = root if root.tag == ns + "svg" else root.find(".//" + ns + "svg")
            if svg is None:
                problems.append("trace2html %s output holds no svg" % " ".join(flag))
                continue
            rows = svg.findall(".//*[@class='row-label']")
            arrows = svg.findall(".//*[@class='wake']")
            if len(rows) != n_rows:
                problems.append("trace2html %s: %d row labels for %d tasks" % (" ".join(flag), len(rows), n_rows))
            if len(arrows) != n_flows:
                problems.append("trace2html %s: %d arrows for %d wakes" % (" ".join(flag), len(arrows), n_flows))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[2])
    ap.add_argument("trace")
    ap.add_argument("--strict", action="store_true", help="no task may still be blocked when the trace ends")
    ap.add_argument("--expect-task", action="append")
    ap.add_argument("--expect-wait", action="append")
    ap.add_argument("--trace2html", help="path of tools/trace2html, to check its output too")
    args = ap.parse_args()
    problems = []
    events = load(args.trace, problems)
    summary = check(events, args, problems) if events else ""
    if args.trace2html and not problems:
        rows = {(e["pid"], e["tid"]) for e in events if e.get("ph") == "M" and e.get("name") == "thread_name"}
        flows = sum(1 for e in events if e.get("ph") == "f")
        check_render(args.trace2html, args.trace, len(rows), flows, problems)
    if problems:
        print("check_trace: %s: %d problem(s)" % (args.trace, len(problems)))
        for p in problems[:50]:
            print("  " + p)
        return 1
    print("check_trace: %s: ok: %s" % (args.trace, summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
