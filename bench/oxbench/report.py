"""The report: aggregation of the raw results (medians, min–max, ratios), the targets, the
markdown report and the chart (bench/chart.py), and --report's rewrite of a results JSON."""

from __future__ import annotations

import json
import statistics
import subprocess
import time
from pathlib import Path

from .harness import (BENCH, DAEMON_PROCESSES, DAEMON_THREADS, DEBIAN_MOD_WSGI, MPM, REPO, T0,
                      log, run, tail)
from .scenarios import COMPARE, NOMETRICS, SCENARIOS, STANDALONE, Variant, scenarios_for

BASELINE = BENCH / "baseline-mw494.json"  # the "before" of "no row slower than before"
FLOOR = "floor16"  # Apache's own floor, measured on every Apache variant
FLOOR_OF = ("hello16", "hello64")  # scenarios reported ÷ the floor of the same instance

# --------------------------------------------------------------------------------------------
# Aggregation and reports
# --------------------------------------------------------------------------------------------

METRICS = [  # key, label, higher_is_better
    ("rps", "req/s", True),
    ("p50_ms", "p50 ms", False),
    ("p99_ms", "p99 ms", False),
    ("workers_peak_mib", "Apache children peak RSS MiB", False),
    ("daemons_peak_mib", "daemons peak RSS MiB", False),
]


def stats(values):
    values = [x for x in values if x is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def round_ratios(results: dict, vkey: str, skey: str, ref_vkey, ref_skey, metric: str = "rps"):
    """metric (req/s) of (vkey, skey) over that of (ref_vkey, ref_skey), per round both ran."""
    if not ref_vkey or ref_vkey == vkey and ref_skey == skey:
        return None
    mine = {r["round"]: r.get(metric) for r in results.get(vkey, {}).get(skey, {}).get("runs", [])}
    ref = {r["round"]: r.get(metric)
           for r in results.get(ref_vkey, {}).get(ref_skey, {}).get("runs", [])}
    return stats([mine[k] / ref[k] for k in mine if mine[k] and ref.get(k)])


def median_ratios(e: dict, ref: dict | None) -> dict:
    """{metric: median of e / median of ref} (None where either is missing)."""
    out = {}
    for m, _l, _h in METRICS:
        mine = (e.get(m) or {}).get("median")
        r = ((ref or {}).get(m) or {}).get("median") if ref else None
        out[m] = (mine / r) if (mine is not None and r) else None
    return out


def aggregate(variants: list, scenarios: list, results: dict, idle_results: dict) -> dict:
    """Medians, min–max and ratios from the raw results (a run's, or those in latest.json)."""
    agg = {}
    for v in variants:
        agg[v.key] = {}
        for s in scenarios_for(v, scenarios):
            slot = results.get(v.key, {}).get(s.key) or {"runs": [], "failures": []}
            entry = {"n_runs": len(slot["runs"]), "failures": slot["failures"]}
            for m, _l, _h in METRICS:
                entry[m] = stats([r.get(m) for r in slot["runs"]])
            if not slot["runs"]:
                entry["na"] = slot["failures"][0]["reason"] if slot["failures"] else "not run"
            ups = [r["uploads"] for r in slot["runs"] if r.get("uploads")]
            if ups:
                entry["uploads"] = {k: sum(u[k] for u in ups) for k in ("intact", "bad")}
            agg[v.key][s.key] = entry
    # Ratios: to mod_wsgi 4.9.4 in the same mode, and to the static counterpart.
    by_key = {s.key: s for s in SCENARIOS}
    for v in variants:
        for skey, e in agg[v.key].items():
            s = by_key[skey]
            base = agg.get(v.baseline_key or "", {}).get(s.key) if v.baseline_key else None
            stat = agg.get("static", {}).get(s.static_key)
            e["ratio_mw494"], e["ratio_static"] = median_ratios(e, base), median_ratios(e, stat)
            if v.mode == "static":
                e["ratio_static"] = {m: None for m, _l, _h in METRICS}
            # The same ratios of req/s taken round by round (both servers ran that scenario
            # back to back): shows how much of a ratio is noise between rounds.
            e["round_ratio_mw494"] = round_ratios(results, v.key, s.key, v.baseline_key, s.key)
            e["round_ratio_static"] = (None if v.mode == "static"
                                        else round_ratios(results, v.key, s.key, "static", s.static_key))
    # Against the standalone servers (the same scenario), Apache's own floor (the floor16
    # scenario of the same instance) and, in daemon mode, the same server in embedded mode.
    for v in variants:
        for skey, e in agg[v.key].items():
            for other in STANDALONE:
                if other != v.key and skey in agg.get(other, {}):
                    e[f"ratio_{other}"] = median_ratios(e, agg[other][skey])
                    e[f"round_ratio_{other}"] = round_ratios(results, v.key, skey, other, skey)
            if skey in FLOOR_OF and FLOOR in agg[v.key]:
                e["ratio_floor"] = median_ratios(e, agg[v.key][FLOOR])
                e["round_ratio_floor"] = round_ratios(results, v.key, skey, v.key, FLOOR)
            emb = v.key[:-len("-dmn")] + "-emb" if v.key.endswith("-dmn") else None
            if emb and skey in agg.get(emb, {}):
                e["ratio_embedded"] = median_ratios(e, agg[emb][skey])
                e["round_ratio_embedded"] = round_ratios(results, v.key, skey, emb, skey)
    # --compare-module: ox-* over oxprev-*, the same server loading the other build.
    for key, prev in COMPARE.items():
        for skey, e in agg.get(key, {}).items() if prev in agg else ():
            e["ratio_prev"] = median_ratios(e, agg[prev].get(skey))
            e["round_ratio_prev"] = {m: round_ratios(results, key, skey, prev, skey, m)
                                     for m in ("rps", "p99_ms")}
    # The metrics overhead: ox-* over oxnm-* (the same server with WSGIMetrics Off).
    for key, off in NOMETRICS.items():
        for skey, e in agg.get(key, {}).items() if off in agg else ():
            if skey in agg[off]:
                e["ratio_nometrics"] = median_ratios(e, agg[off][skey])
                e["round_ratio_nometrics"] = round_ratios(results, key, skey, off, skey)
    idle = {}
    for key, slot in idle_results.items():
        st = stats([r["rss_mib"] for r in slot["runs"]])
        idle[key] = {"rss_mib": st, "failures": slot["failures"], "runs": slot["runs"]}
        if not st:
            idle[key]["na"] = slot["failures"][0]["reason"] if slot["failures"] else "not run"
    base = (idle.get("mw494-dmn") or {}).get("rss_mib")
    for key, e in idle.items():
        e["ratio_mw494"] = (e["rss_mib"]["median"] / base["median"]) if (e["rss_mib"] and base) else None
    if "ox-dmn" in idle and COMPARE["ox-dmn"] in idle:
        a, b = idle["ox-dmn"]["rss_mib"], idle[COMPARE["ox-dmn"]]["rss_mib"]
        idle["ox-dmn"]["ratio_prev"] = a["median"] / b["median"] if (a and b) else None
    return {"scenarios": agg, "idle_daemon": idle}


def fmt_num(x, digits=None):
    if x is None:
        return "n/a"
    if digits is None:
        digits = 0 if abs(x) >= 100 else (1 if abs(x) >= 10 else 2)
    return f"{x:,.{digits}f}"


def fmt_stat(st, digits=None):
    if not st:
        return "n/a"
    if st["n"] == 1:
        return fmt_num(st["median"], digits)
    return f"{fmt_num(st['median'], digits)} ({fmt_num(st['min'], digits)}–{fmt_num(st['max'], digits)})"


def fmt_ratio(r):
    if r is None:
        return "–"
    return f"{r:.3f}×" if r < 0.1 else f"{r:.2f}×"


def evaluate_targets(agg: dict, variants: dict, baseline: dict | None = None) -> list:
    """baseline: {"ratio_mw494_rps": {vkey: {scenario: ratio}}}, the "before" of the target
    "no row slower than before against mod_wsgi" (BASELINE)."""
    sc, idle = agg["scenarios"], agg["idle_daemon"]

    def ratio(vkey, skey, kind):
        e = sc.get(vkey, {}).get(skey)
        if not e:
            return None, "not measured"
        r = e.get(kind, {}).get("rps")
        if r is not None:
            return r, None
        if e.get("na"):
            return None, f"{variants[vkey].label}: {e['na']}"
        base = "mw494-emb" if vkey.endswith("emb") else "mw494-dmn"
        if kind == "ratio_nometrics":
            base = NOMETRICS[vkey]
        ref = sc.get("static" if kind == "ratio_static" else base, {}).get(
            "hello16" if (kind == "ratio_static" and skey == "django") else skey, {})
        return None, f"reference n/a: {ref.get('na', 'not measured')}"

    rows = []

    def target(name, vkey, skey, kind, threshold):
        r, why = ratio(vkey, skey, kind)
        met = r is not None and r >= threshold
        shown = f"{r:.3f}×" if r is not None else f"n/a ({why})"
        rounds = sc.get(vkey, {}).get(skey, {}).get("round_" + kind)
        rows.append({"target": name, "threshold": threshold, "value": r, "met": met,
                     "shown": shown, "rounds": rounds})

    for skey, conns in (("hello16", 16), ("hello64", 64)):
        target(f"Embedded hello ({conns} conns) ≥ 1.0× mod_wsgi 4.9.4 embedded", "ox-emb", skey,
               "ratio_mw494", 1.0)
        target(f"Embedded hello ({conns} conns) ≥ 0.9× static", "ox-emb", skey, "ratio_static", 0.9)
    for skey, conns in (("hello16", 16), ("hello64", 64)):
        target(f"Daemon hello ({conns} conns) ≥ 1.6× mod_wsgi 4.9.4 daemon", "ox-dmn", skey,
               "ratio_mw494", 1.6)
    for vkey, mode in (("ox-emb", "Embedded"), ("ox-dmn", "Daemon")):
        for skey, conns in (("hello16", 16), ("hello64", 64)):
            target(f"{mode} hello ({conns} conns) with metrics ≥ 0.97× WSGIMetrics Off", vkey, skey,
                   "ratio_nometrics", 0.97)
    # Beside slow clients mod_wsgi may serve nothing at all: compare the medians directly.
    ox_slow = ((sc.get("ox-dmn", {}).get("slow64") or {}).get("rps") or {}).get("median")
    mw_slow = ((sc.get("mw494-dmn", {}).get("slow64") or {}).get("rps") or {}).get("median")
    name = "Daemon hello while 64 slow clients download ≥ 1.0× mod_wsgi 4.9.4 daemon"
    if ox_slow is not None and mw_slow is not None:
        times = ox_slow / mw_slow if mw_slow else float("inf")
        rows.append({"target": name, "threshold": 1.0, "value": times if mw_slow else None,
                     "met": ox_slow > 0 and times >= 1.0,
                     "shown": f"{ox_slow:,.0f} vs {mw_slow:,.0f} req/s"
                              + (f" ({times:.2f}×)" if mw_slow else " (mod_wsgi served none)")})
    else:
        target(name, "ox-dmn", "slow64", "ratio_mw494", 1.0)
    rows += slow_client_targets(sc)
    target("Embedded 5 MiB file_wrapper ≥ 0.95× static", "ox-emb", "file5m", "ratio_static", 0.95)
    target("Daemon 5 MiB file_wrapper ≥ 0.9× static", "ox-dmn", "file5m", "ratio_static", 0.9)
    target("Daemon 64 KiB POST echo ≥ 1.5× mod_wsgi 4.9.4 daemon", "ox-dmn", "post64k",
           "ratio_mw494", 1.5)
    target("Daemon 1 MiB body ≥ 1.5× mod_wsgi 4.9.4 daemon", "ox-dmn", "body1m", "ratio_mw494", 1.5)
    rows += issue27_targets(sc, variants, baseline)
    ox, mw = idle.get("ox-dmn", {}), idle.get("mw494-dmn", {})
    if ox.get("rss_mib") and mw.get("rss_mib"):
        a, b = ox["rss_mib"]["median"], mw["rss_mib"]["median"]
        rows.append({"target": "Idle one-process daemon RSS ≤ mod_wsgi 4.9.4's", "threshold": 1.0,
                     "value": a / b, "met": a <= b,
                     "shown": f"{a:.1f} MiB vs {b:.1f} MiB ({a / b:.2f}×)"})
    else:
        why = ox.get("na") or mw.get("na") or "not measured"
        rows.append({"target": "Idle one-process daemon RSS ≤ mod_wsgi 4.9.4's", "threshold": 1.0,
                     "value": None, "met": False, "shown": f"n/a ({why})"})
    return rows


def slow_client_targets(sc: dict) -> list:
    """Issue 26: hello beside 64 slow downloads (slow64) and 64 slow uploads (slowup64), in both
    modes, ≥ 0.8× hello alone (hello16) in the same run; and every slow upload arrived whole."""
    rows = []
    for vkey, mode in (("ox-emb", "Embedded"), ("ox-dmn", "Daemon")):
        alone = ((sc.get(vkey, {}).get("hello16") or {}).get("rps") or {}).get("median")
        for skey, what in (("slow64", "download"), ("slowup64", "upload")):
            e = sc.get(vkey, {}).get(skey) or {}
            busy = (e.get("rps") or {}).get("median")
            name = f"{mode} hello while 64 slow clients {what} ≥ 0.8× hello alone"
            if busy is None or not alone:
                why = e.get("na") or "not measured"
                rows.append({"target": name, "threshold": 0.8, "value": None, "met": False,
                             "shown": f"n/a ({why})"})
                continue
            r = busy / alone
            rows.append({"target": name, "threshold": 0.8, "value": r, "met": r >= 0.8,
                         "shown": f"{busy:,.0f} vs {alone:,.0f} req/s ({r:.2f}×)"})
            ups = e.get("uploads")
            if what == "upload" and ups:
                rows.append({"target": f"{mode}: every slow upload arrives whole (CRC)",
                             "threshold": 1.0, "value": None, "met": ups["bad"] == 0 and ups["intact"] > 0,
                             "shown": f"{ups['intact']} intact, {ups['bad']} not"})
    return rows


def issue27_targets(sc: dict, variants: dict, baseline: dict | None) -> list:
    """Against what people pick instead (issue 27): Granian, Apache's own floor, embedded mode,
    and no ratio to mod_wsgi below the one before (baseline)."""
    rows = []

    def target(name, vkey, skey, kind, threshold, ref_vkey, ref_skey=None):
        e = sc.get(vkey, {}).get(skey)
        ref = sc.get(ref_vkey, {}).get(ref_skey or skey)
        r = ((e or {}).get(kind) or {}).get("rps")
        if r is None:
            if not e or not ref:
                why = "not measured"
            elif e.get("na") or ref.get("na"):
                which = vkey if e.get("na") else ref_vkey
                why = f"{variants[which].label}: {(e if e.get('na') else ref)['na']}"
            else:
                why = "not measured"
        rows.append({"target": name, "threshold": threshold, "value": r,
                     "met": r is not None and r >= threshold,
                     "shown": f"{r:.3f}×" if r is not None else f"n/a ({why})",
                     "rounds": (e or {}).get("round_" + kind)})

    target("Django view embedded ≥ 1.0× Granian", "ox-emb", "django", "ratio_granian", 1.0,
           "granian")
    target("Django view daemon ≥ 0.9× Granian", "ox-dmn", "django", "ratio_granian", 0.9,
           "granian")
    # The same two against Granian on the interpreter build every Apache module loads
    # (libpython3.X.so): what the server costs, without what the interpreter build costs.
    target("Django view embedded ≥ 1.0× Granian on libpython (same interpreter build)", "ox-emb",
           "django", "ratio_granian-shared", 1.0, "granian-shared")
    target("Django view daemon ≥ 0.9× Granian on libpython (same interpreter build)", "ox-dmn",
           "django", "ratio_granian-shared", 0.9, "granian-shared")
    target("Embedded hello (16 conns) ≥ 0.8× Apache's own floor (Redirect 410, same instance)",
           "ox-emb", "hello16", "ratio_floor", 0.8, "ox-emb", FLOOR)
    for skey, conns in (("hello16", 16), ("hello64", 64)):
        target(f"Daemon hello ({conns} conns) ≥ 0.85× embedded hello", "ox-dmn", skey,
               "ratio_embedded", 0.85, "ox-emb")
    before = (baseline or {}).get("ratio_mw494_rps", {})
    for vkey, mode in (("ox-emb", "embedded"), ("ox-dmn", "daemon")):
        for skey, was in before.get(vkey, {}).items():
            target(f"{skey} {mode} ×mod_wsgi 4.9.4 not below before ({was:.2f}×)", vkey, skey,
                   "ratio_mw494", was, "mw494-emb" if mode == "embedded" else "mw494-dmn")
    # The same rule measured in one run, with the earlier build itself beside this one
    # (--compare-module): a ratio to mod_wsgi not below before is this build ≥ 1.0× that one.
    # (The ratios above come from an earlier run, on an earlier bench.)
    for vkey, mode in (("ox-emb", "embedded"), ("ox-dmn", "daemon")):
        prev = COMPARE[vkey]
        for skey in before.get(vkey, {}):
            e = sc.get(vkey, {}).get(skey) or {}
            r = (e.get("ratio_prev") or {}).get("rps")
            if prev not in variants or r is None:
                continue
            rows.append({"target": f"{skey} {mode} not below before: ≥ 1.0× the --compare-module build, same run",
                         "threshold": 1.0, "value": r, "met": r >= 1.0, "shown": f"{r:.3f}×",
                         "rounds": (e.get("round_ratio_prev") or {}).get("rps")})
    return rows


def load_baseline(path: Path = BASELINE) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def md_escape(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def write_markdown(path: Path, data: dict):
    m, cfg = data["machine"], data["config"]
    variants = {v["key"]: v for v in data["variants"]}
    sc_agg = data["aggregate"]["scenarios"]
    L = []
    L.append("# oxwsgi benchmark: latest run\n")
    L.append(f"Generated by `bench/run{' --quick' if cfg['quick'] else ''}` — see bench/README.md "
             "for what is measured and how to read it.\n")
    L.append("| | |\n|---|---|")
    for k, label in (("date", "date"), ("nproc", "nproc"), ("cpu", "CPU"),
                     ("memory_gib", "memory GiB"), ("kernel", "kernel"), ("apache", "Apache"),
                     ("python", "Python"), ("git_commit", "git commit"), ("wrk", "load generator")):
        L.append(f"| {label} | {md_escape(str(m.get(k)))} |")
    L.append(f"| load average at start | {' '.join(m.get('loadavg_at_start', []))} |")
    L.append(f"| mod_wsgi | 4.9.4 (Debian {DEBIAN_MOD_WSGI}); latest from PyPI: "
             f"{md_escape(cfg.get('mw_latest_version') or 'n/a — ' + str(cfg.get('mw_latest_reason')))} |")
    L.append(f"| Django | {cfg.get('django') or 'n/a'} |")
    L.append(f"| MPM | event: {', '.join(f'{k} {v}' for k, v in MPM.items())}; "
             f"KeepAlive On, MaxKeepAliveRequests 0, EnableSendfile {'On' if cfg['sendfile'] else 'Off'} |")
    L.append(f"| daemon groups | processes={DAEMON_PROCESSES} threads={DAEMON_THREADS} "
             "display-name=%{GROUP}, WSGIApplicationGroup %{GLOBAL} |")
    L.append(f"| load | wrk -t{cfg['wrk_threads']} --latency, {cfg['warmup']} s warm-up + "
             f"{cfg['duration']} s measured per run, {cfg['rounds']} round(s), servers alternated |")
    L.append(f"| wall time | {data['elapsed_s'] / 60:.1f} min |")
    L.append("")

    # Targets.
    L.append("## Targets\n")
    L.append("The target is met or not on the ratio of the medians; the ratio taken round by round "
             "(the two servers ran that scenario back to back) is shown for how much of it is noise.\n")
    L.append("| target | measured (ratio of medians) | per-round ratios: median (min–max) | result |")
    L.append("|---|---|---|---|")
    for t in data["targets"]:
        rounds = t.get("rounds")
        per_round = (f"{rounds['median']:.2f}× ({rounds['min']:.2f}–{rounds['max']:.2f}×)"
                     if rounds else "–")
        L.append(f"| {md_escape(t['target'])} | {md_escape(t['shown'])} | {per_round} | "
                 f"{'**met**' if t['met'] else '**NOT MET**'} |")
    L.append("")
    L += standalone_section(data)
    L += slow_client_section(data)
    L += compare_section(data)

    # Overview: req/s.
    order = [v["key"] for v in data["variants"]]
    L.append("## Requests per second (median of rounds)\n")
    L.append("Cell: req/s, then ×mod_wsgi 4.9.4 in the same mode / ×static counterpart.\n")
    L.append("| scenario | " + " | ".join(variants[k]["label"] for k in order) + " |")
    L.append("|---|" + "---|" * len(order))
    for s in data["scenarios"]:
        cells = []
        for k in order:
            e = sc_agg[k].get(s["key"])
            if e is None and k != "static":  # a scenario this server does not run
                cells.append("–")
                continue
            if e is None:  # the static variant reuses another scenario's measurement
                e2 = sc_agg[k].get(s["static_key"]) or {}
                val = fmt_num(e2["rps"]["median"]) if e2.get("rps") else "n/a"
                cells.append(f"(= {s['static_key']}: {val})")
                continue
            if not e.get("rps"):
                cells.append("n/a")
                continue
            cell = fmt_num(e["rps"]["median"])
            if k != "static":
                cell += (f"<br>{fmt_ratio(e['ratio_mw494'].get('rps'))} / "
                         f"{fmt_ratio(e['ratio_static'].get('rps'))}")
            cells.append(cell)
        L.append(f"| {s['key']} | " + " | ".join(cells) + " |")
    L.append("")
    idle = data["aggregate"]["idle_daemon"]
    if idle:
        L.append("## Idle one-process daemon group (after startup + one request)\n")
        L.append("| server | daemon RSS MiB median (min–max) | ×mod_wsgi 4.9.4 |\n|---|---|---|")
        for k, e in idle.items():
            val = fmt_stat(e["rss_mib"], 1) if e.get("rss_mib") else f"n/a ({md_escape(e.get('na', ''))[:300]})"
            L.append(f"| {variants[k]['label']} | {val} | {fmt_ratio(e.get('ratio_mw494'))} |")
        L.append("")

    # Per-scenario detail.
    L.append("## Details per scenario\n")
    L.append("Each figure: median (min–max) over rounds; ratio columns: ×mod_wsgi 4.9.4 in the same "
             "mode / ×static counterpart (for latency and RSS lower is better). RSS is the peak "
             "of the summed resident set of Apache's worker children, and of the daemon "
             "processes, during the measured run.\n")
    for s in data["scenarios"]:
        L.append(f"### {s['key']}: {s['title']}\n")
        note = s["static_note"]
        L.append(f"Path `{s['path']}`; {note}.\n")
        L.append("| server | req/s | ratios | p50 ms | ratios | p99 ms | ratios | children RSS MiB "
                 "| ratios | daemons RSS MiB | ×mw |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for k in order:
            e = sc_agg[k].get(s["key"])
            lbl = variants[k]["label"]
            if e is None:
                e = sc_agg[k].get(s["static_key"])
                lbl += f" (= {s['static_key']})"
            if e is None:
                continue
            if not e.get("rps"):
                L.append(f"| {lbl} | n/a: {md_escape(e.get('na', ''))[:400]} |" + " |" * 9)
                continue

            def rat(metric):
                a = e["ratio_mw494"].get(metric)
                b = e["ratio_static"].get(metric)
                return f"{fmt_ratio(a)} / {fmt_ratio(b)}"
            d = e.get("daemons_peak_mib")
            L.append(f"| {lbl} | {fmt_stat(e['rps'])} | {rat('rps')} | {fmt_stat(e['p50_ms'])} | "
                     f"{rat('p50_ms')} | {fmt_stat(e['p99_ms'])} | {rat('p99_ms')} | "
                     f"{fmt_stat(e['workers_peak_mib'], 0)} | {rat('workers_peak_mib')} | "
                     f"{fmt_stat(d, 0) if d else '–'} | "
                     f"{fmt_ratio(e['ratio_mw494'].get('daemons_peak_mib'))} |")
        L.append("")

    # n/a reasons and notes.
    notes = []
    for v in data["variants"]:
        if v.get("unavailable"):
            notes.append(f"- {v['label']}: not run — {md_escape(v['unavailable'])}")
    for k in order:
        for s in data["scenarios"]:
            e = sc_agg[k].get(s["key"])
            na = (variants[k].get("na") or {}).get(s["key"])
            if na:
                notes.append(f"- {variants[k]['label']} / {s['key']}: n/a — {md_escape(na)}")
            elif e and e.get("failures") and not variants[k].get("unavailable"):
                fails = e["failures"]
                notes.append(f"- {variants[k]['label']} / {s['key']}: {len(fails)} failed run(s): "
                             f"{md_escape(fails[0]['reason'])[:500]}")
    for n in data.get("notes", []):
        notes.append(f"- {md_escape(n)}")
    for r in data.get("stop_reports", []):
        notes.append(f"- round {r['round']} {r['variant']}: Apache needed SIGKILL "
                     f"(forced={r['forced']}, leftovers={r['leftovers']})")
    if notes:
        L.append("## Failures and notes\n")
        L += notes
        L.append("")
    path.write_text("\n".join(L))


def standalone_section(data: dict) -> list:
    """Ratios to Granian and Gunicorn per scenario, hello ÷ Apache's own floor, daemon ÷
    embedded (no lines when none of them was measured)."""
    variants = {v["key"]: v for v in data["variants"]}
    sc_agg = data["aggregate"]["scenarios"]
    refs = [k for k in STANDALONE if k in variants]
    mine = [v["key"] for v in data["variants"] if v["mode"] in ("embedded", "daemon")
            and v["impl"] != "oxnometrics" and not v.get("unavailable")]
    L = []
    if refs and mine:
        L += ["## Against the standalone servers\n",
              "Cell: req/s, then " + " / ".join(f"×{variants[k]['label']}" for k in refs)
              + " (ratios of the medians, same scenario, same run; higher is better).\n",
              "| scenario | " + " | ".join(variants[k]["label"] for k in refs + mine) + " |",
              "|---|" + "---|" * len(refs + mine)]
        for s in data["scenarios"]:
            if all(s["key"] not in sc_agg[k] for k in refs):
                continue
            cells = []
            for k in refs + mine:
                e = sc_agg[k].get(s["key"]) or {}
                if not e.get("rps"):
                    why = e.get("na", "not run")
                    cells.append(f"n/a ({md_escape(why)[:120]})" if e else "–")
                    continue
                cell = fmt_num(e["rps"]["median"])
                if k in mine:
                    cell += "<br>" + " / ".join(
                        fmt_ratio((e.get(f"ratio_{r}") or {}).get("rps")) for r in refs)
                cells.append(cell)
            L.append(f"| {s['key']} | " + " | ".join(cells) + " |")
        L.append("")
    floors = [k for k, v in variants.items()
              if FLOOR in sc_agg.get(k, {}) and not v.get("unavailable")]
    if floors:
        L += ["## Apache's own floor\n",
              f"`{FLOOR}`: a response Apache makes itself (`Redirect 410`, no Python, no file) on "
              "the same instance as the hello scenarios. hello ÷ floor: ratio of the medians; "
              "per round: median (min–max) of the same ratio taken round by round.\n",
              "| server | floor req/s | hello16 req/s | hello16 ÷ floor | per round | "
              "hello64 req/s | hello64 ÷ floor | per round |",
              "|---|---|---|---|---|---|---|---|"]
        for k in floors:
            f = sc_agg[k][FLOOR]
            cells = [fmt_stat(f["rps"]) if f.get("rps")
                     else f"n/a ({md_escape(f.get('na', ''))[:120]})"]
            for skey in FLOOR_OF:
                h = sc_agg[k].get(skey) or {}
                cells += [fmt_stat(h["rps"]) if h.get("rps") else "n/a",
                          fmt_ratio((h.get("ratio_floor") or {}).get("rps")),
                          per_round_text(h.get("round_ratio_floor"))]
            L.append(f"| {variants[k]['label']} | " + " | ".join(cells) + " |")
        L.append("")
    dmn = [(k, sc_agg[k]) for k in variants if k.endswith("-dmn") and k in sc_agg]
    lines = [f"| {variants[k]['label']} | {s['key']} | "
             f"{fmt_ratio(e['ratio_embedded'].get('rps'))} | "
             f"{per_round_text(e.get('round_ratio_embedded'))} |"
             for k, per in dmn for s in data["scenarios"]
             if s["key"] != FLOOR and (e := per.get(s["key"]))
             and (e.get("ratio_embedded") or {}).get("rps")]
    if lines:
        L += ["## Daemon mode ÷ embedded mode (req/s, same server)\n",
              "| server | scenario | daemon ÷ embedded | per round |", "|---|---|---|---|",
              *lines, ""]
    return L


def per_round_text(st) -> str:
    return f"{st['median']:.2f}× ({st['min']:.2f}–{st['max']:.2f}×)" if st else "–"


SLOW = (("slow64", "download"), ("slowup64", "upload"))  # issue 26's scenarios


def slow_client_section(data: dict) -> list:
    """Issue 26, every server side by side: hello alone (hello16) and beside 64 slow downloads /
    uploads, the ratio of the two, the uploads that arrived whole and the peak RSS (no lines
    when neither slow scenario ran)."""
    variants = {v["key"]: v for v in data["variants"]}
    sc_agg = data["aggregate"]["scenarios"]
    rows = [k for k, v in variants.items() if v["mode"] != "static"
            and any(skey in sc_agg.get(k, {}) for skey, _w in SLOW)]
    if not rows:
        return []
    L = ["## Hello beside slow clients (issue 26)\n",
         "hello16 alone, and hello at 16 connections while 64 slow clients download "
         "(`slow64`) or upload (`slowup64`): req/s, ÷ hello alone (ratio of the medians; "
         "issue 26's targets ask ≥ 0.8× of oxwsgi, the other servers are here to compare), "
         "the slow uploads that arrived whole (CRC checked) and the peak RSS of the workers "
         "(+ daemons) during the run.\n",
         "| server | hello16 req/s | slow64 req/s | ÷ hello16 | peak RSS MiB | slowup64 req/s "
         "| ÷ hello16 | uploads whole / not | peak RSS MiB |",
         "|---|---|---|---|---|---|---|---|---|"]
    for k in rows:
        alone = sc_agg[k].get("hello16") or {}
        a = (alone.get("rps") or {}).get("median")
        cells = [fmt_stat(alone["rps"]) if alone.get("rps") else "n/a"]
        for skey, what in SLOW:
            e = sc_agg[k].get(skey)
            if e is None or not e.get("rps"):
                why = f"n/a ({md_escape(e.get('na', ''))[:120]})" if e else "–"
                cells += [why, "–", "–"] + (["–"] if what == "upload" else [])
                continue
            peak = e["workers_peak_mib"]["median"] + ((e.get("daemons_peak_mib") or {})
                                                       .get("median") or 0)
            cells += [fmt_stat(e["rps"]), fmt_ratio(e["rps"]["median"] / a) if a else "–"]
            if what == "upload":
                ups = e.get("uploads")
                cells.append(f"{ups['intact']} / {ups['bad']}" if ups else "–")
            cells.append(fmt_num(peak, 0))
        L.append(f"| {variants[k]['label']} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def compare_section(data: dict) -> list:
    """--compare-module: ox-* against oxprev-* per scenario (no lines without it)."""
    variants = {v["key"]: v for v in data["variants"]}
    sc_agg, idle = data["aggregate"]["scenarios"], data["aggregate"]["idle_daemon"]
    pairs = [(k, p) for k, p in COMPARE.items() if k in variants and p in variants]
    if not pairs:
        return []
    src = data["config"].get("compare_module_source")
    L = ["## A/B: oxwsgi against --compare-module\n",
         f"`oxprev-emb` / `oxprev-dmn` are `ox-emb` / `ox-dmn` loading `{md_escape(str(src))}`. "
         "new/prev is the ratio of the medians (req/s: higher is better; p99: lower is better); "
         "per round: the same ratio taken round by round (the two ran that scenario back to back "
         "in each round), median (min–max), for how much of it is noise.\n",
         "| scenario | mode | req/s new | req/s prev | new/prev | per round | p99 ms new | "
         "p99 ms prev | new/prev | per round |",
         "|---|---|---|---|---|---|---|---|---|---|"]

    def per_round(st):
        return f"{st['median']:.2f}× ({st['min']:.2f}–{st['max']:.2f}×)" if st else "–"
    for s in data["scenarios"]:
        for key, prev in pairs:
            e, p = sc_agg[key].get(s["key"]), sc_agg[prev].get(s["key"])
            if e is None or p is None:
                continue
            ratio, rounds = e.get("ratio_prev") or {}, e.get("round_ratio_prev") or {}
            L.append(f"| {s['key']} | {variants[key]['mode']} | {fmt_stat(e['rps'])} | "
                     f"{fmt_stat(p['rps'])} | {fmt_ratio(ratio.get('rps'))} | "
                     f"{per_round(rounds.get('rps'))} | {fmt_stat(e['p99_ms'])} | "
                     f"{fmt_stat(p['p99_ms'])} | {fmt_ratio(ratio.get('p99_ms'))} | "
                     f"{per_round(rounds.get('p99_ms'))} |")
    if idle.get("ox-dmn", {}).get("ratio_prev") is not None:
        a, b = idle["ox-dmn"]["rss_mib"], idle[COMPARE["ox-dmn"]]["rss_mib"]
        L.append(f"\nIdle one-process daemon RSS: {fmt_stat(a, 1)} MiB new, {fmt_stat(b, 1)} MiB "
                 f"prev ({fmt_ratio(idle['ox-dmn']['ratio_prev'])}).")
    L.append("")
    return L


def draw_chart(data_path: Path, png: Path, venv: Path) -> str | None:
    py = venv / "bin" / "python"
    try:
        p = run([str(py), str(BENCH / "chart.py"), str(data_path), str(png)], timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"chart failed: {e}"
    return None if p.returncode == 0 else f"chart failed: {tail(p.stdout, 4)}"


def rewrite_report(jpath: Path):
    """Recomputes a results JSON's aggregate and targets (with this version of the code) and
    rewrites it and its markdown report; the raw measurements are left as they are."""
    data = json.loads(jpath.read_text())
    fields = ("key", "label", "impl", "mode", "module", "unavailable", "na")
    variants = [Variant(**{k: v.get(k) for k in fields}) for v in data["variants"]]
    by_key = {s.key: s for s in SCENARIOS}
    scenarios = [by_key[s["key"]] for s in data["scenarios"]]
    agg = aggregate(variants, scenarios, data["raw"], data["idle_raw"])
    data["aggregate"] = agg
    data.setdefault("baseline", load_baseline())
    data["targets"] = evaluate_targets(agg, {v.key: v for v in variants}, data["baseline"])
    jpath.write_text(json.dumps(data, indent=1, default=str))
    mpath = jpath.with_suffix(".md")
    write_markdown(mpath, data)
    log(f"rewrote {jpath} and {mpath}")


# --------------------------------------------------------------------------------------------
# The results of a run: latest.json, latest.png, latest.md
# --------------------------------------------------------------------------------------------


def results_data(args, machine: dict, venv_info: dict, bench, notes: list) -> dict:
    """Everything latest.json holds: machine, configuration, raw results, aggregate, targets."""
    variants, scenarios = bench.variants, bench.scenarios
    agg = aggregate(variants, scenarios, bench.results, bench.idle)
    data = {
        "machine": machine,
        "config": {
            "quick": args.quick, "rounds": args.rounds, "duration": args.duration,
            "warmup": args.warmup, "wrk_threads": args.wrk_threads, "sendfile": args.sendfile,
            "mpm": MPM, "daemon_processes": DAEMON_PROCESSES, "daemon_threads": DAEMON_THREADS,
            "django": venv_info["django"], "mw_latest_version": venv_info["mw_latest_version"],
            "mw_latest_reason": venv_info["mw_latest_reason"],
            "mw_latest_module": venv_info["mw_latest_module"], "oxwsgi_module_source":
                str(REPO / "target" / "release" / "libmod_oxwsgi.so"),
            "compare_module_source": args.compare_module or None,
        },
        "variants": [{"key": v.key, "label": v.label, "impl": v.impl, "mode": v.mode,
                      "module": v.module, "unavailable": v.unavailable, "na": v.na}
                     for v in variants],
        "scenarios": [{"key": s.key, "title": s.title, "path": s.path, "conns": s.conns,
                       "static_path": s.static_path, "static_key": s.static_key,
                       "static_note": s.static_note, "post_bytes": s.post_bytes,
                       "connection_close": s.close} for s in scenarios],
        "raw": {v: {k: slot for k, slot in per.items() if slot["runs"] or slot["failures"]}
                for v, per in bench.results.items()},
        "idle_raw": bench.idle,
        "aggregate": agg,
        "stop_reports": bench.stop_reports,
        "notes": notes,
        "baseline": load_baseline(Path(args.baseline)),
    }
    data["targets"] = evaluate_targets(agg, {v.key: v for v in variants}, data["baseline"])
    data["elapsed_s"] = time.monotonic() - T0
    return data


def write_results(out: Path, data: dict, venv_info: dict) -> None:
    """Writes latest.json, the chart latest.png (when matplotlib is there) and latest.md."""
    jpath, mpath, ppath = out / "latest.json", out / "latest.md", out / "latest.png"
    jpath.write_text(json.dumps(data, indent=1, default=str))
    if venv_info["matplotlib"]:
        err = draw_chart(jpath, ppath, Path(venv_info["venv"]))
        if err:
            data["notes"].append(err)
            log(err)
    else:
        data["notes"].append("no chart: matplotlib is not available in the bench virtualenv")
    jpath.write_text(json.dumps(data, indent=1, default=str))
    write_markdown(mpath, data)
    log(f"wrote {mpath}, {jpath}" + (f", {ppath}" if ppath.exists() else ""))
    for t in data["targets"]:
        log(f"  {'met    ' if t['met'] else 'NOT MET'}  {t['target']}: {t['shown'][:160]}")
