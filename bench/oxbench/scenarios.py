"""The server variants, the scenarios, each variant's Apache configuration or standalone
command line (and nginx configuration), and the run itself (rounds, per-scenario preflight,
wrk and RSS, idle daemon RSS)."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from .harness import (DAEMON_PROCESSES, DAEMON_THREADS, DEBIAN_MOD_WSGI, MODULES_DIR, MPM,
                      RUN_GROUP, RUN_USER, Apache, Nginx, RssSampler, SlowClients, Standalone,
                      log,
                      one_request, proc_cmdline, reset_hwm, rss_snapshot, run_wrk)

SIZE_1M = 1 << 20
SIZE_5M = 5 << 20
SIZE_64K = 64 << 10
HELLO = b"Hello, world!"
FLOOR_PATH = "/floor"  # `Redirect 410` in every Apache configuration: Apache's own floor


# --------------------------------------------------------------------------------------------
# Variants and scenarios
# --------------------------------------------------------------------------------------------


@dataclass
class Variant:
    key: str
    label: str
    # static | oxwsgi | oxnometrics | oxprev | mw494 | mwlatest | granian | gunicorn |
    # gunicorn-nginx
    impl: str
    mode: str  # static | embedded | daemon | standalone
    module: str | None = None
    python: str | None = None  # granian-shared: the Python executable it runs under
    unavailable: str | None = None  # reason, when the variant cannot run at all
    notes: list = field(default_factory=list)
    # Scenarios this server cannot run the same way: key -> reason (reported n/a).
    na: dict = field(default_factory=dict)

    @property
    def apache(self) -> bool:
        return self.mode != "standalone"

    @property
    def baseline_key(self) -> str | None:
        """The mod_wsgi 4.9.4 variant in the same mode."""
        if self.mode == "embedded":
            return "mw494-emb"
        if self.mode == "daemon":
            return "mw494-dmn"
        return None


@dataclass
class Scenario:
    key: str
    title: str
    path: str
    conns: int
    static_path: str | None = None  # measured on the static variant under this scenario's key
    static_from: str | None = None  # reuse another scenario's static measurement instead
    static_note: str = ""
    expect_len: int | None = None
    expect_contains: bytes | None = None
    post_bytes: int = 0
    close: bool = False
    # The status the response must have; wrk counts statuses >= 400 as errors, which for a
    # scenario that expects one (Apache's floor answers 410) are the expected responses.
    expect_status: int = 200
    apache_only: bool = False  # a response Apache makes itself: not run on standalone servers
    # Slow clients downloading `slow_path` at 16 KiB/s during the run (and its warm-up).
    slow_clients: int = 0
    slow_path: str = ""
    # Instead of downloading: each slow client uploads this many bytes to `slow_path`, and when
    # the run is over sends the rest and checks the answer (every byte, by CRC).
    slow_upload: int = 0

    @property
    def static_key(self) -> str:
        return self.static_from or self.key


SCENARIOS = [
    Scenario("floor16", "Apache's own floor: `Redirect 410` answered by Apache itself (no Python, "
             "no file), 16 connections", FLOOR_PATH, 16, static_path=FLOOR_PATH, expect_status=410,
             apache_only=True, static_note="static: the same Redirect 410 on the Apache without a "
             "WSGI module; every other Apache answers it in its own configuration, beside its WSGI "
             "module's hooks"),
    Scenario("hello16", "hello world, keep-alive, 16 connections", "/wsgi/hello", 16,
             static_path="/hello.txt", expect_len=len(HELLO),
             static_note="static: 13-byte hello.txt"),
    Scenario("hello64", "hello world, keep-alive, 64 connections", "/wsgi/hello", 64,
             static_path="/hello.txt", expect_len=len(HELLO),
             static_note="static: 13-byte hello.txt"),
    Scenario("close16", "hello world, Connection: close, 16 connections", "/wsgi/hello", 16,
             static_path="/hello.txt", expect_len=len(HELLO), close=True,
             static_note="static: hello.txt with Connection: close"),
    Scenario("post64k", "64 KiB POST echoed back, 16 connections", "/wsgi/echo", 16,
             static_path="/64k.bin", expect_len=SIZE_64K, post_bytes=SIZE_64K,
             static_note="static: GET of a 64 KiB file (Apache cannot echo)"),
    Scenario("body1m", "1 MiB body from a list, 16 connections", "/wsgi/body1m", 16,
             static_path="/1m.bin", expect_len=SIZE_1M, static_note="static: 1 MiB file"),
    Scenario("file5m", "5 MiB file via wsgi.file_wrapper, 16 connections", "/wsgi/file5m", 16,
             static_path="/5m.bin", expect_len=SIZE_5M, static_note="static: the same 5 MiB file"),
    Scenario("slow64", "hello world, 16 connections, while 64 slow clients download 16 MiB bodies",
             "/wsgi/hello", 16, expect_len=len(HELLO), slow_clients=64, slow_path="/wsgi/body16m"),
    Scenario("slowup64", "hello world, 16 connections, while 64 slow clients upload 1 MiB bodies",
             "/wsgi/hello", 16, expect_len=len(HELLO), slow_clients=64, slow_path="/wsgi/upload",
             slow_upload=SIZE_1M),
    Scenario("django", "Django view (URL resolver, middleware, template), 16 connections",
             "/django/", 16, static_from="hello16", expect_contains=b"DJANGO BENCH",
             static_note="static: hello.txt at 16 connections"),
]


SCENARIO_BY_KEY = {s.key: s for s in SCENARIOS}

# --compare-module: each oxwsgi variant and its twin loading the other build of the module.
COMPARE = {"ox-emb": "oxprev-emb", "ox-dmn": "oxprev-dmn"}
# The metrics overhead: each oxwsgi variant and its twin with `WSGIMetrics Off`, hello only.
NOMETRICS = {"ox-emb": "oxnm-emb", "ox-dmn": "oxnm-dmn"}
NOMETRICS_SCENARIOS = ("hello16", "hello64")
COMPANIONS = {k: [COMPARE[k], NOMETRICS[k]] for k in COMPARE}
# hello ÷ Apache's floor needs the floor measured in the same run: it comes along with hello.
SCENARIO_COMPANIONS = {"hello16": ["floor16"], "hello64": ["floor16"]}
# The standalone servers: what people pick instead of a WSGI module in Apache (Gunicorn also
# behind nginx, the setup people use it in, which buffers slow clients for it).
# Granian also on libpython3.X.so, the interpreter build every Apache module loads.
STANDALONE = ("granian", "granian-shared", "gunicorn", "gunicorn-nginx")
GRANIAN_WORKERS = 2
GUNICORN_WORKERS, GUNICORN_THREADS = 2, 16
NGINX_WORKERS = 2  # worker_processes: the 2 cores


def make_variants(mw_latest_module: str | None, mw_latest_version: str | None,
                  mw_latest_reason: str | None, ox_module: str | None, ox_reason: str | None,
                  compare: tuple | None = None, standalone: dict | None = None):
    """compare: (module, reason) of --compare-module, or None without it; standalone:
    {"granian"/"gunicorn": (version, reason)} from the bench virtualenv, and "nginx"'s
    (version, reason) from prepare.setup_nginx."""
    latest = f"mod_wsgi {mw_latest_version}" if mw_latest_version else "mod_wsgi (PyPI latest)"
    ox = [Variant("ox-emb", "oxwsgi embedded", "oxwsgi", "embedded", ox_module, unavailable=ox_reason),
          Variant("ox-dmn", "oxwsgi daemon", "oxwsgi", "daemon", ox_module, unavailable=ox_reason)]
    base = list(ox)
    ox += [Variant(NOMETRICS[x.key], f"oxwsgi {x.mode} WSGIMetrics Off", "oxnometrics", x.mode,
                   ox_module, unavailable=ox_reason) for x in base]
    if compare:
        ox += [Variant(COMPARE[x.key], f"oxwsgi prev {x.mode}", "oxprev", x.mode, compare[0],
                       unavailable=compare[1])
               for x in base]
    v = [
        Variant("static", "Apache static file", "static", "static"),
        *ox,
        Variant("mw494-emb", "mod_wsgi 4.9.4 embedded", "mw494", "embedded", DEBIAN_MOD_WSGI),
        Variant("mw494-dmn", "mod_wsgi 4.9.4 daemon", "mw494", "daemon", DEBIAN_MOD_WSGI),
        Variant("mwnew-emb", f"{latest} embedded", "mwlatest", "embedded", mw_latest_module,
                unavailable=mw_latest_reason),
        Variant("mwnew-dmn", f"{latest} daemon", "mwlatest", "daemon", mw_latest_module,
                unavailable=mw_latest_reason),
        *standalone_variants(standalone or {}),
    ]
    for x in v:
        if x.module and not x.unavailable and not os.path.isfile(x.module):
            x.unavailable = f"module {x.module} does not exist"
    return v


def standalone_variants(versions: dict) -> list:
    """Granian, Gunicorn and Gunicorn behind nginx, from {"granian"/"gunicorn"/"nginx":
    (version, reason)}."""
    g_ver, g_why = versions.get("granian", (None, "not installed"))
    u_ver, u_why = versions.get("gunicorn", (None, "not installed"))
    n_ver, n_why = versions.get("nginx", (None, "not installed"))
    py_shared, py_shared_why = versions.get("python-shared", (None, "not built"))
    gunicorn = f"Gunicorn {u_ver or ''}".replace("  ", " ")
    return [
        Variant("granian", f"Granian {g_ver or ''}".strip(), "granian",
                "standalone", unavailable=g_why,
                na={"file5m": "Granian's WSGI environ has no wsgi.file_wrapper"}),
        Variant("granian-shared", f"Granian {g_ver or ''} on libpython".replace("  ", " "),
                "granian-shared", "standalone", python=py_shared,
                unavailable=g_why or (f"python-shared: {py_shared_why}" if py_shared_why else None),
                na={"file5m": "Granian's WSGI environ has no wsgi.file_wrapper"}),
        Variant("gunicorn", f"{gunicorn} gthread", "gunicorn", "standalone", unavailable=u_why),
        Variant("gunicorn-nginx", f"{gunicorn} behind nginx {n_ver or ''}".strip(),
                "gunicorn-nginx", "standalone",
                unavailable=u_why or (f"nginx: {n_why}" if n_why else None)),
    ]


def pick(items: list, csv: str, what: str, companions: dict | None = None) -> list:
    """The variants / scenarios named in a comma-separated --only / --scenarios value (all of
    them when it is empty), with the companions[key] of each one named; an unknown name ends
    the run."""
    if not csv:
        return items
    keys = {k.strip() for k in csv.split(",") if k.strip()}
    unknown = keys - {x.key for x in items}
    if unknown:
        raise SystemExit(f"unknown {what}(s): {', '.join(sorted(unknown))}")
    keys |= {c for k in keys for c in (companions or {}).get(k, ())}
    return [x for x in items if x.key in keys]


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def render_conf(v: Variant, root: Path, port: int, site: Path, venv: Path, sendfile: bool,
                daemon_group: tuple | None) -> str:
    """daemon_group: (name, processes, threads) or None for embedded/static."""
    apps, htdocs = site / "apps", site / "htdocs"
    c = [f"# oxwsgi bench: {v.label}",
         f'ServerRoot "{root}"',
         f"LoadModule mpm_event_module {MODULES_DIR}/mod_mpm_event.so"]
    c += [f"{k} {val}" for k, val in MPM.items()]
    for m in ("alias", "authz_core", "mime"):
        c.append(f"LoadModule {m}_module {MODULES_DIR}/mod_{m}.so")
    if v.module:
        c.append(f'LoadModule wsgi_module "{v.module}"')
    c += [
        f"User {RUN_USER}",
        f"Group {RUN_GROUP}",
        "ServerName 127.0.0.1",
        f"Listen 127.0.0.1:{port}",
        f'PidFile "{root}/run/apache2.pid"',
        f'DefaultRuntimeDir "{root}/run"',
        f"Mutex file:{root}/run default",
        f'ErrorLog "{root}/logs/error.log"',
        "LogLevel warn",
        "TypesConfig /etc/mime.types",
        "Timeout 60",
        "KeepAlive On",
        "MaxKeepAliveRequests 0",
        "KeepAliveTimeout 5",
        f"EnableSendfile {'On' if sendfile else 'Off'}",
        f'DocumentRoot "{htdocs}"',
        "<Directory />\n    AllowOverride None\n    Require all denied\n</Directory>",
        f'<Directory "{htdocs}">\n    Require all granted\n</Directory>',
        f'<Directory "{apps}">\n    Require all granted\n</Directory>',
        f"Redirect 410 {FLOOR_PATH}",
    ]
    if v.module:
        c += [
            f'WSGISocketPrefix "{root}/run/wsgi"',
            f'WSGIPythonHome "{venv}"',
            f'WSGIPythonPath "{apps}"',
            "WSGIApplicationGroup %{GLOBAL}",
            *(["WSGIMetrics Off"] if v.impl == "oxnometrics" else []),
            f'WSGIScriptAlias /wsgi "{apps}/app.wsgi"',
            f'WSGIScriptAlias /django "{apps}/django.wsgi"',
        ]
        if daemon_group:
            name, procs, threads = daemon_group
            c += [
                f"WSGIDaemonProcess {name} processes={procs} threads={threads} "
                f'display-name=%{{GROUP}} python-home="{venv}" python-path="{apps}"',
                f"WSGIProcessGroup {name}",
            ]
    return "\n".join(c) + "\n"


def standalone_argv(v: Variant, port: int, site: Path, venv: Path, sendfile: bool,
                    unix_socket: Path | None = None) -> list:
    """The command line of a standalone server serving bench/apps/standalone.py (the same app
    files, mounted at /wsgi and /django as WSGIScriptAlias does) on 127.0.0.1:port, or (the
    Gunicorn behind nginx) on unix_socket."""
    apps, bindir = site / "apps", venv / "bin"
    if v.impl in ("granian", "granian-shared"):
        # Granian's own defaults for threads, runtime mode and backpressure: its README asks
        # not to tune them after other servers' numbers; workers = the 2 cores. granian-shared:
        # the same under venv/bin/python-shared (v.python), linked to libpython3.X.so.
        run = [str(bindir / "granian")] if v.impl == "granian" else [v.python, "-m", "granian"]
        return [*run, "--interface", "wsgi", "--workers", str(GRANIAN_WORKERS),
                "--host", "127.0.0.1", "--port", str(port), "--working-dir", str(apps),
                "standalone:application"]
    if v.impl in ("gunicorn", "gunicorn-nginx"):
        # wsgi.file_wrapper uses sendfile unless told not to: follow --sendfile like Apache.
        # No control socket: it is a management interface (and www-data's home is not
        # writable). Behind nginx: the same, on a UNIX socket.
        bind = f"unix:{unix_socket}" if unix_socket else f"127.0.0.1:{port}"
        return [str(bindir / "gunicorn"), "-k", "gthread", "-w", str(GUNICORN_WORKERS),
                "--threads", str(GUNICORN_THREADS), "-b", bind,
                "--chdir", str(apps), *([] if sendfile else ["--no-sendfile"]),
                "--no-control-socket", "standalone:application"]
    raise ValueError(f"not a standalone variant: {v.key}")


# Gunicorn's SIGTERM waits up to 30 s for its workers; SIGQUIT is its quick shutdown.
STOP_SIGNAL = {"gunicorn": signal.SIGQUIT, "gunicorn-nginx": signal.SIGQUIT}


def render_nginx_conf(root: Path, port: int, backend_socket: Path, sendfile: bool) -> str:
    """nginx in front of Gunicorn as people run it for slow clients: nginx's defaults
    proxy_request_buffering on (a request reaches Gunicorn once its body is all in nginx) and
    proxy_buffering on (nginx takes the response as fast as Gunicorn writes it, into temp files
    when it is large), keep-alive to the clients and a keep-alive pool to Gunicorn. Every path
    nginx writes (pid, lock, error log, temp files) is inside root."""
    tmp = root / "tmp"
    return f"""# oxwsgi bench: Gunicorn behind nginx
user {RUN_USER} {RUN_GROUP};
worker_processes {NGINX_WORKERS};
pid {root}/run/nginx.pid;
lock_file {root}/run/nginx.lock;
error_log {root}/logs/error.log error;  # nginx's default level: no warning per buffered body

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    sendfile {'on' if sendfile else 'off'};
    # Like the bench's Apache: KeepAliveTimeout 5, MaxKeepAliveRequests 0 (unlimited).
    keepalive_timeout 5s;
    keepalive_requests 1000000;
    client_max_body_size 16m;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    upstream gunicorn {{
        server unix:{backend_socket} fail_timeout=0;
        keepalive 32;
        # Below Gunicorn's own keep-alive (2 s), so nginx never reuses a connection Gunicorn
        # is closing.
        keepalive_timeout 1s;
    }}

    server {{
        listen 127.0.0.1:{port};
        server_name 127.0.0.1;

        location / {{
            proxy_pass http://gunicorn;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_redirect off;
            proxy_request_buffering on;
            proxy_buffering on;
        }}
    }}
}}
"""


# --------------------------------------------------------------------------------------------
# Preflight: is the scenario's response right?
# --------------------------------------------------------------------------------------------


def preflight(inst, sc: Scenario, path: str, post: bool, repeat: int) -> str | None:
    """Check the scenario's URL answers correctly. Retries connection errors and 502/503
    until 20 s after Apache started (daemon processes may still be starting)."""
    body = b"x" * sc.post_bytes if post else b""
    method = "POST" if post else "GET"
    deadline = max(inst.started_at + 20.0, time.monotonic() + 2.0)
    last = ""
    done = 0
    while True:
        try:
            status, data, _h = one_request(inst.port, method, path, body, sc.close)
            if status == sc.expect_status:
                if sc.expect_len is not None and len(data) != sc.expect_len:
                    return f"{method} {path}: body is {len(data)} bytes, expected {sc.expect_len}"
                if post and data != body:
                    return f"{method} {path}: echoed body differs from the request body"
                if sc.expect_contains and sc.expect_contains not in data:
                    return f"{method} {path}: response lacks {sc.expect_contains!r}"
                done += 1
                if done >= repeat:
                    return None
                continue
            last = f"{method} {path}: HTTP {status} {data[:120]!r}"
            if status not in (502, 503):
                break
        except (OSError, http.client.HTTPException) as e:
            last = f"{method} {path}: {type(e).__name__}: {e}"
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
    return f"{last}; error log: {inst.log_tail(3)}"


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args, work: Path, site: Path, venv: Path, variants, scenarios):
        self.args, self.work, self.site, self.venv = args, work, site, venv
        self.variants = variants
        self.scenarios = scenarios
        self.lua = work / "report.lua"
        # results[variant][scenario] = {"runs": [...], "failures": [...]}
        self.results = {v.key: {s.key: {"runs": [], "failures": []} for s in SCENARIOS}
                        for v in variants}
        self.idle = {v.key: {"runs": [], "failures": []} for v in variants
                     if v.mode == "daemon" and v.impl != "oxnometrics"}
        self.stop_reports = []

    def instance(self, v: Variant, rnd: int, daemon_group):
        root = self.work / "instances" / f"r{rnd}-{v.key}{'-idle' if daemon_group and daemon_group[1] == 1 else ''}"
        if v.impl == "gunicorn-nginx":
            sock = root / "gunicorn" / "run" / "gunicorn.sock"

            def backend_argv(port):
                return standalone_argv(v, port, self.site, self.venv, self.args.sendfile, sock)

            def nginx_conf(root_, port):
                return render_nginx_conf(root_, port, sock, self.args.sendfile)
            backend = Standalone("gunicorn", root / "gunicorn", backend_argv,
                                 STOP_SIGNAL[v.impl], unix_socket=sock)
            return Nginx(v.key, root, nginx_conf, backend)
        if not v.apache:
            def argv(port):
                return standalone_argv(v, port, self.site, self.venv, self.args.sendfile)
            return Standalone(v.key, root, argv, STOP_SIGNAL.get(v.impl, signal.SIGTERM))

        def conf(root_, port):
            return render_conf(v, root_, port, self.site, self.venv, self.args.sendfile, daemon_group)
        return Apache(v.key, root, conf)

    def scenarios_for(self, v: Variant):
        return scenarios_for(v, self.scenarios)

    def fail_all(self, v: Variant, rnd: int, reason: str):
        for s in self.scenarios_for(v):
            self.results[v.key][s.key]["failures"].append({"round": rnd, "reason": reason})

    def finish(self, inst, rnd: int, v: Variant, ok: bool):
        rep = inst.stop()
        if rep["forced"] or rep["leftovers"]:
            self.stop_reports.append({"round": rnd, "variant": v.key, **rep})
        if ok and not self.args.keep_instances:
            shutil.rmtree(inst.root, ignore_errors=True)

    def run_scenario(self, inst, v: Variant, s: Scenario, rnd: int) -> bool:
        static = v.mode == "static"
        path = s.static_path if static else s.path
        post = s.post_bytes if not static else 0
        slot = self.results[v.key][s.key]
        if s.key in v.na:  # n/a by design: said so in the report, not a failure of the instance
            slot["failures"].append({"round": rnd, "reason": v.na[s.key]})
            return True
        if not inst.running():
            slot["failures"].append({"round": rnd,
                                     "reason": f"{inst.kind} exited: {inst.log_tail(3)}"})
            return False
        err = preflight(inst, s, path, bool(post), self.args.preflight_requests)
        if err:
            log(f"  {v.label} / {s.key}: n/a: {err}")
            slot["failures"].append({"round": rnd, "reason": err})
            return False
        if s.slow_clients and not static:
            with SlowClients(inst.port, s.slow_path, s.slow_clients, upload=s.slow_upload) as slow:
                ok = self.measure(inst, v, s, rnd, path, post, slot)
            if ok and s.slow_upload:
                # Counted once the uploads have been finished and answered (__exit__).
                up = {"started": slow.started, "intact": slow.uploads_intact,
                      "bad": len(slow.uploads_bad)}
                slot["runs"][-1]["uploads"] = up
                log(f"  {v.label:28s} {s.key:8s} uploads: {up['intact']} intact, {up['bad']} not"
                    + (f" (first: {slow.uploads_bad[0]!r})" if slow.uploads_bad else ""))
            return ok
        return self.measure(inst, v, s, rnd, path, post, slot)

    def measure(self, inst, v: Variant, s: Scenario, rnd: int, path: str, post: int, slot) -> bool:
        a = self.args
        if a.warmup > 0:
            _fig, err = run_wrk(inst.port, path, s.conns, a.warmup, a.wrk_threads, self.lua, post, s.close)
            if err:
                log(f"  {v.label} / {s.key}: warm-up failed: {err}")
                slot["failures"].append({"round": rnd, "reason": f"warm-up: {err}"})
                return False
        daemon_mode = v.mode == "daemon"
        reset_hwm(inst.track().keys())
        sampler = RssSampler(inst.rss_roots(), daemon_mode)
        sampler.sample()
        sampler.start()
        fig, err = run_wrk(inst.port, path, s.conns, a.duration, a.wrk_threads, self.lua, post, s.close)
        sampler.stop_event.set()
        sampler.join(timeout=5)
        after = sampler.sample()  # after the run
        inst.track()
        if err:
            log(f"  {v.label} / {s.key}: n/a: {err}")
            slot["failures"].append({"round": rnd, "reason": err})
            return False
        errors = fig["connect_errors"] + fig["read_errors"] + fig["write_errors"] + fig["timeouts"]
        # wrk counts statuses >= 400 as errors: for a scenario expecting one, they are its
        # responses (the preflight checked the status).
        bad = fig["status_errors"] if s.expect_status < 400 else 0
        # Beside slow clients, serving nothing at all is a result (the server is saturated).
        starved = s.slow_clients and fig["requests"] == 0
        if (fig["requests"] == 0 and not starved) or bad > 0.01 * fig["requests"]:
            reason = (f"{fig['requests']} responses, {bad} not 2xx/3xx, {errors} socket errors; "
                      f"error log: {inst.log_tail(3)}")
            log(f"  {v.label} / {s.key}: n/a: {reason}")
            slot["failures"].append({"round": rnd, "reason": reason})
            return False
        rec = {
            "round": rnd,
            "rps": round(fig["rps"], 1),
            "p50_ms": None if starved else fig["p50_us"] / 1000,
            "p90_ms": None if starved else fig["p90_us"] / 1000,
            "p99_ms": None if starved else fig["p99_us"] / 1000,
            "max_ms": None if starved else fig["max_us"] / 1000,
            "requests": fig["requests"], "bytes": fig["bytes"],
            "socket_errors": errors, "status_errors": bad,
            "wrk": fig,
            "workers_rss_peak_mib": sampler.peak["worker"] / 1024,
            "workers_hwm_mib": after["worker"]["hwm"] / 1024,
            "workers_n": after["worker"]["n"],
            "daemons_rss_peak_mib": sampler.peak["daemon"] / 1024 if daemon_mode else None,
            "daemons_hwm_mib": after["daemon"]["hwm"] / 1024 if daemon_mode else None,
            "daemons_n": after["daemon"]["n"] if daemon_mode else None,
            "rss_samples": sampler.samples,
        }
        # Peak RSS: the larger of the sampled peak and the summed per-process high-water marks
        # (reset just before the run), so a spike between samples is not missed.
        rec["workers_peak_mib"] = max(rec["workers_rss_peak_mib"], rec["workers_hwm_mib"])
        rec["daemons_peak_mib"] = (max(rec["daemons_rss_peak_mib"], rec["daemons_hwm_mib"])
                                   if daemon_mode else None)
        slot["runs"].append(rec)
        extra = f", daemons {rec['daemons_peak_mib']:.0f} MiB" if daemon_mode else ""
        lat = ("no response" if starved else
               f"p50 {rec['p50_ms']:7.2f} ms  p99 {rec['p99_ms']:7.2f} ms")
        log(f"  {v.label:28s} {s.key:8s} {rec['rps']:10.0f} req/s  {lat}  "
            f"children {rec['workers_peak_mib']:.0f} MiB{extra}"
            + (f"  ({errors} socket errors)" if errors else ""))
        return True

    def run_idle(self, v: Variant, rnd: int):
        """Idle RSS of a one-process daemon group after startup + one request."""
        inst = self.instance(v, rnd, ("idle", 1, DAEMON_THREADS))
        slot = self.idle[v.key]
        err = inst.start()
        ok = False
        try:
            if not err:
                err = preflight(inst, SCENARIO_BY_KEY["hello16"], "/wsgi/hello", False, 1)
            if not err:
                time.sleep(1.0)
                snap = rss_snapshot(inst.rss_roots(), True)
                d = snap["daemon"]
                if d["n"] == 0:
                    err = "no daemon process found among Apache's descendants"
                else:
                    slot["runs"].append({"round": rnd, "rss_mib": d["rss"] / 1024,
                                         "hwm_mib": d["hwm"] / 1024, "processes": d["n"],
                                         "cmdlines": [proc_cmdline(p)[:60] for p in d["pids"]]})
                    log(f"  {v.label:28s} idle 1-process daemon: {d['rss'] / 1024:.1f} MiB "
                        f"({d['n']} process{'es' if d['n'] != 1 else ''})")
                    ok = True
            if err:
                log(f"  {v.label} idle daemon: n/a: {err}")
                slot["failures"].append({"round": rnd, "reason": err})
        finally:
            self.finish(inst, rnd, v, ok=ok)

    def run_all(self):
        runnable = [v for v in self.variants if not v.unavailable]
        for v in self.variants:
            if v.unavailable:
                self.fail_all(v, 0, v.unavailable)
                if v.key in self.idle:
                    self.idle[v.key]["failures"].append({"round": 0, "reason": v.unavailable})
        for rnd in range(1, self.args.rounds + 1):
            k = (rnd - 1) % max(1, len(runnable))
            order = runnable[k:] + runnable[:k]
            if rnd % 2 == 0:
                order = order[::-1]
            log(f"round {rnd}/{self.args.rounds}: {', '.join(v.key for v in order)}")
            self.run_round(order, rnd)
            if not self.args.no_idle:
                for v in order:
                    if v.mode == "daemon" and v.impl != "oxnometrics":
                        self.run_idle(v, rnd)

    def run_round(self, order, rnd: int):
        """One round: every variant's server is started, then each scenario runs on every variant
        in turn, so a noisy stretch of time lands on all servers of a scenario, not on one."""
        live = []  # (variant, instance, [ok])
        for v in order:
            daemon_group = ("bench", DAEMON_PROCESSES, DAEMON_THREADS) if v.mode == "daemon" else None
            inst = self.instance(v, rnd, daemon_group)
            err = inst.start()
            if err:
                log(f"  {v.label}: n/a: {err}")
                self.fail_all(v, rnd, err)
                self.finish(inst, rnd, v, ok=False)
                continue
            live.append((v, inst, [True]))
        try:
            for s in SCENARIOS:
                for v, inst, ok in live:
                    if any(x.key == s.key for x in self.scenarios_for(v)):
                        ok[0] &= self.run_scenario(inst, v, s, rnd)
        finally:
            for v, inst, ok in live:
                self.finish(inst, rnd, v, ok=ok[0])


def scenarios_for(v: Variant, scenarios: list) -> list:
    """The scenarios a variant runs: the static server only those with a static counterpart."""
    if v.mode == "static":
        needed = {s.static_key for s in scenarios}
        return [s for s in SCENARIOS if s.key in needed and s.static_path]
    if v.impl == "oxnometrics":
        return [s for s in scenarios if s.key in NOMETRICS_SCENARIOS]
    if not v.apache:
        return [s for s in scenarios if not s.apache_only]
    return scenarios
