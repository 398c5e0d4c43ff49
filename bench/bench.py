#!/usr/bin/python3
"""oxwsgi benchmark: Apache static vs oxwsgi vs mod_wsgi, embedded and daemon mode, vs the
standalone servers Granian and Gunicorn (alone and behind nginx).

Run it through bench/run (see bench/README.md). Python standard library only; the chart is
drawn by bench/chart.py with matplotlib from the bench virtualenv.

This file is the command line and the order of a run; the work is in the package oxbench/:
harness.py (Apache instances, /proc, RSS, wrk), prepare.py (build, virtualenv, site files),
scenarios.py (server variants, scenarios, configuration, the rounds) and report.py
(aggregation, targets, latest.json/.md/.png).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from pathlib import Path

from oxbench.harness import (BENCH, HTTPD, SYSTEM_PYTHON, ensure_dir, log, make_readable,
                             stop_all_live, world_traversable)
from oxbench.prepare import (build_oxwsgi, machine_info, private_copy, setup_nginx, setup_site,
                             setup_venv)
from oxbench.report import results_data, rewrite_report, write_results
from oxbench.scenarios import (COMPANIONS, SCENARIO_COMPANIONS, SCENARIOS, Bench, make_variants,
                               pick)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/run", description="Benchmark oxwsgi against mod_wsgi, static Apache, Apache's "
        "own floor, Granian and Gunicorn (alone and behind nginx).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 round, 1 s per run, no warm-up (about 2 minutes)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; servers alternate within each")
    p.add_argument("--duration", type=int, default=4, help="measured seconds per wrk run")
    p.add_argument("--warmup", type=int, default=1, help="warm-up seconds before each run (0: none)")
    p.add_argument("--wrk-threads", type=int, default=2, help="wrk -t")
    p.add_argument("--preflight-requests", type=int, default=3,
                   help="correctness-checked requests before each scenario")
    p.add_argument("--only", default="", help="comma-separated variant keys "
                   "(static,ox-emb,ox-dmn,mw494-emb,mw494-dmn,mwnew-emb,mwnew-dmn,granian,"
                   "gunicorn,gunicorn-nginx; ox-emb / ox-dmn bring oxnm-emb / oxnm-dmn along)")
    p.add_argument("--scenarios", default="", help="comma-separated scenario keys "
                   f"({','.join(s.key for s in SCENARIOS)}; hello16 / hello64 bring floor16 "
                   "along)")
    p.add_argument("--compare-module", metavar="PATH", default="",
                   help="A/B run: also run oxprev-emb and oxprev-dmn, i.e. ox-emb and ox-dmn "
                   "loading the module at PATH (e.g. an older build of libmod_oxwsgi.so); they "
                   "run with ox-emb / ox-dmn (also under --only) and the report adds the ratios "
                   "ox-*/oxprev-* per scenario")
    p.add_argument("--no-build", action="store_true",
                   help="use the existing target/release/libmod_oxwsgi.so")
    p.add_argument("--skip-latest", action="store_true", help="do not pip install the newest mod_wsgi")
    p.add_argument("--no-idle", action="store_true", help="skip the idle daemon RSS measurement")
    p.add_argument("--sendfile", action=argparse.BooleanOptionalAction, default=False,
                   help="EnableSendfile On for every Apache variant (Apache's default is Off), "
                   "and sendfile for Gunicorn's wsgi.file_wrapper")
    p.add_argument("--work", default="", help="work directory (default bench/work, or "
                   "/tmp/oxwsgi-bench when www-data cannot reach bench/work)")
    p.add_argument("--out", default=str(BENCH / "results"), help="results directory")
    p.add_argument("--keep-instances", action="store_true",
                   help="keep every instance's httpd.conf and logs under WORK/instances")
    p.add_argument("--baseline", metavar="JSON", default=str(BENCH / "baseline-mw494.json"),
                   help="the ratios to mod_wsgi 4.9.4 of an earlier run: the target rows "
                   "'not below before' compare each scenario's ratio with them")
    p.add_argument("--report", metavar="JSON", default="",
                   help="run nothing: recompute the figures and targets of a results JSON (e.g. "
                   "bench/results/latest.json) and rewrite it and the .md next to it")
    a = p.parse_args(argv)
    if a.quick:
        given = {x.split("=", 1)[0] for x in argv}
        if "--rounds" not in given:
            a.rounds = 1
        if "--duration" not in given:
            a.duration = 1
        if "--warmup" not in given:
            a.warmup = 0
        if "--preflight-requests" not in given:
            a.preflight_requests = 20  # stands in for the warm-up
    if a.rounds < 1 or a.duration < 1 or a.warmup < 0:
        p.error("--rounds and --duration must be >= 1, --warmup >= 0")
    return a


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.report:
        rewrite_report(Path(args.report))
        return
    os.umask(0o022)
    if os.geteuid() != 0:
        raise SystemExit("bench/run must run as root (Apache switches its children to www-data)")
    for tool in (HTTPD, SYSTEM_PYTHON):
        if not os.path.exists(tool):
            raise SystemExit(f"{tool} is missing")
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed")

    work = Path(args.work) if args.work else BENCH / "work"
    if not args.work and not world_traversable(BENCH):
        work = Path("/tmp/oxwsgi-bench")
    ensure_dir(work)
    if not world_traversable(work):
        raise SystemExit(f"www-data cannot reach {work}: pass --work under /tmp")
    shutil.rmtree(work / "instances", ignore_errors=True)
    ensure_dir(work / "instances")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log(f"work directory {work}; results to {out}")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    notes = []
    try:
        ox_module, ox_reason = build_oxwsgi(work, args.no_build)
        if ox_reason:
            log(f"oxwsgi unavailable: {ox_reason}")
        compare = None
        if args.compare_module:
            compare = private_copy(Path(args.compare_module), work, "libmod_oxwsgi-compare.so")
            if compare[1]:
                log(f"--compare-module unavailable: {compare[1]}")
        venv_info = setup_venv(work, not args.skip_latest)
        notes += venv_info["notes"]
        # nginx (installed when missing) only when the variant in front of Gunicorn runs.
        if not args.only or "gunicorn-nginx" in {k.strip() for k in args.only.split(",")}:
            venv_info["standalone"]["nginx"] = setup_nginx()
        if venv_info["mw_latest_reason"]:
            notes.append(f"newest mod_wsgi not measured: {venv_info['mw_latest_reason']}")
        if not venv_info["django"]:
            notes.append("Django is not installed in the bench virtualenv: the django scenario fails")
        site = setup_site(work)
        make_readable(work / "modules") if (work / "modules").exists() else None
        variants = make_variants(venv_info["mw_latest_module"], venv_info["mw_latest_version"],
                                 venv_info["mw_latest_reason"], ox_module, ox_reason, compare,
                                 venv_info["standalone"])
        variants = pick(variants, args.only, "variant", COMPANIONS)
        scenarios = pick(SCENARIOS, args.scenarios, "scenario", SCENARIO_COMPANIONS)
        machine = machine_info(args)
        log(f"machine: {machine['nproc']} × {machine['cpu']}, kernel {machine['kernel']}, "
            f"{machine['apache']}, {machine['python']}, commit {machine['git_commit']}")
        bench = Bench(args, work, site, Path(venv_info["venv"]), variants, scenarios)
        bench.run_all()
    finally:
        stop_all_live()

    write_results(out, results_data(args, machine, venv_info, bench, notes), venv_info)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        stop_all_live()
        print(f"interrupted ({e}); servers stopped", file=sys.stderr)
        sys.exit(130)
