#!/usr/bin/python3.11
"""oxwsgi benchmark harness: Apache static vs oxwsgi vs mod_wsgi, embedded and daemon mode.

Run it through bench/run (see bench/README.md). Python standard library only; the chart is
drawn by bench/chart.py with matplotlib from the bench virtualenv.

Every server variant is its own Apache instance (/usr/sbin/apache2, event MPM, identical MPM
settings) on its own free loopback port, started and stopped by this script. Load comes from
wrk in a separate process. Apache is only ever stopped by pid: the pid file / the process we
spawned, then its descendants found through /proc ppid links (checked against their start
time so a recycled pid is never signalled).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as _dt
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
HTTPD = "/usr/sbin/apache2"
MODULES_DIR = "/usr/lib/apache2/modules"
DEBIAN_MOD_WSGI = f"{MODULES_DIR}/mod_wsgi.so"
SYSTEM_PYTHON = "/usr/bin/python3.11"
RUN_USER = "www-data"
RUN_GROUP = "www-data"
READY_MARKER = "configured -- resuming normal operations"

# Identical for every variant. Two fixed child processes (StartServers = ServerLimit, spare
# thread limits wide enough that the MPM never starts or stops a child during a run).
MPM = {
    "StartServers": 2,
    "ServerLimit": 2,
    "ThreadLimit": 32,
    "ThreadsPerChild": 32,
    "MaxRequestWorkers": 64,
    "MinSpareThreads": 32,
    "MaxSpareThreads": 96,
    "MaxConnectionsPerChild": 0,
}
DAEMON_PROCESSES = 2
DAEMON_THREADS = 15
SIZE_1M = 1 << 20
SIZE_5M = 5 << 20
SIZE_64K = 64 << 10
HELLO = b"Hello, world!"

LOG_LOCK = threading.Lock()
T0 = time.monotonic()


def log(msg: str) -> None:
    with LOG_LOCK:
        print(f"[{time.monotonic() - T0:7.1f}s] {msg}", flush=True)


# --------------------------------------------------------------------------------------------
# Variants and scenarios
# --------------------------------------------------------------------------------------------


@dataclass
class Variant:
    key: str
    label: str
    impl: str  # static | oxwsgi | mw494 | mwlatest
    mode: str  # static | embedded | daemon
    module: str | None = None
    unavailable: str | None = None  # reason, when the variant cannot run at all
    notes: list = field(default_factory=list)

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

    @property
    def static_key(self) -> str:
        return self.static_from or self.key


SCENARIOS = [
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
    Scenario("django", "Django view (URL resolver, middleware, template), 16 connections",
             "/django/", 16, static_from="hello16", expect_contains=b"DJANGO BENCH",
             static_note="static: hello.txt at 16 connections"),
]


def make_variants(mw_latest_module: str | None, mw_latest_version: str | None,
                  mw_latest_reason: str | None, ox_module: str | None, ox_reason: str | None):
    latest = f"mod_wsgi {mw_latest_version}" if mw_latest_version else "mod_wsgi (PyPI latest)"
    v = [
        Variant("static", "Apache static file", "static", "static"),
        Variant("ox-emb", "oxwsgi embedded", "oxwsgi", "embedded", ox_module, ox_reason),
        Variant("ox-dmn", "oxwsgi daemon", "oxwsgi", "daemon", ox_module, ox_reason),
        Variant("mw494-emb", "mod_wsgi 4.9.4 embedded", "mw494", "embedded", DEBIAN_MOD_WSGI),
        Variant("mw494-dmn", "mod_wsgi 4.9.4 daemon", "mw494", "daemon", DEBIAN_MOD_WSGI),
        Variant("mwnew-emb", f"{latest} embedded", "mwlatest", "embedded", mw_latest_module,
                mw_latest_reason),
        Variant("mwnew-dmn", f"{latest} daemon", "mwlatest", "daemon", mw_latest_module,
                mw_latest_reason),
    ]
    for x in v:
        if x.module and not x.unavailable and not os.path.isfile(x.module):
            x.unavailable = f"module {x.module} does not exist"
    return v


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def run(cmd, timeout, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, **kw)


def tail(text: str, lines: int = 6, width: int = 400) -> str:
    t = "\n".join(text.strip().splitlines()[-lines:])
    return t[-width:]


def read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def world_traversable(path: Path) -> bool:
    """True if every directory from / down to path is o+x (www-data can reach it)."""
    p = path.resolve()
    for d in [p, *p.parents]:
        try:
            if not os.stat(d).st_mode & 0o001:
                return False
        except FileNotFoundError:
            continue
    return True


def ensure_dir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    os.chmod(p, 0o755)
    return p


def write_file(p: Path, data: bytes | str, mode: int = 0o644) -> None:
    ensure_dir(p.parent)
    if isinstance(data, str):
        data = data.encode()
    p.write_bytes(data)
    os.chmod(p, mode)


def make_readable(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        os.chmod(dirpath, os.stat(dirpath).st_mode | 0o755)
        for f in filenames:
            fp = os.path.join(dirpath, f)
            if not os.path.islink(fp):
                os.chmod(fp, os.stat(fp).st_mode | 0o444)


# --------------------------------------------------------------------------------------------
# /proc
# --------------------------------------------------------------------------------------------


def proc_stat(pid: int):
    """(ppid, starttime, state) or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    # rest[0]=state rest[1]=ppid ... rest[19]=starttime
    try:
        return int(rest[1]), int(rest[19]), rest[0]
    except (IndexError, ValueError):
        return None


def all_procs():
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st:
                out[int(name)] = st
    return out


def descendants(root_pid: int):
    """{pid: (ppid, starttime)} of live (non-zombie) descendants of root_pid."""
    procs = all_procs()
    children = {}
    for pid, (ppid, _st, _state) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out = {}
    stack = [root_pid]
    while stack:
        p = stack.pop()
        for c in children.get(p, []):
            ppid, start, state = procs[c]
            if state != "Z":
                out[c] = (ppid, start)
            stack.append(c)
    return out


def proc_status(pid: int) -> dict:
    res = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    res[k] = int(v.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return res


def proc_cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def classify(parent: int, desc: dict, daemon_mode: bool) -> dict:
    """{pid: 'worker'|'daemon'}.

    Apache worker children are direct children of the parent running /usr/sbin/apache2 with
    the MPM's full thread count. Daemon processes are recognised by their display-name
    ("(wsgi:GROUP)", set for both implementations), by running another program, or failing
    both, as the remaining descendants. Without a daemon group every descendant is a worker.
    """
    out = {}
    for pid, (ppid, _start) in desc.items():
        if not daemon_mode:
            out[pid] = "worker"
            continue
        cmd = proc_cmdline(pid)
        argv0 = cmd.split(" ", 1)[0] if cmd else ""
        if cmd.startswith("(wsgi:") or "wsgi:" in cmd.split(" ", 1)[0]:
            out[pid] = "daemon"
        elif argv0 and os.path.basename(argv0) not in ("apache2", "httpd"):
            out[pid] = "daemon"
        elif ppid == parent and proc_status(pid).get("Threads", 0) >= MPM["ThreadsPerChild"]:
            out[pid] = "worker"
        else:
            out[pid] = "daemon"
    return out


def reset_hwm(pids) -> None:
    """Reset VmHWM to the current RSS (Linux clear_refs "5"), so VmHWM after a run is that
    run's peak."""
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


def rss_snapshot(parent: int, daemon_mode: bool) -> dict:
    desc = descendants(parent)
    kinds = classify(parent, desc, daemon_mode)
    snap = {"worker": {"rss": 0, "hwm": 0, "n": 0, "pids": []},
            "daemon": {"rss": 0, "hwm": 0, "n": 0, "pids": []}}
    for pid, kind in kinds.items():
        st = proc_status(pid)
        if "VmRSS" not in st:
            continue
        s = snap[kind]
        s["rss"] += st["VmRSS"]
        s["hwm"] += st.get("VmHWM", st["VmRSS"])
        s["n"] += 1
        s["pids"].append(pid)
    return snap


class RssSampler(threading.Thread):
    """Samples the summed VmRSS of Apache's worker children and of the daemon processes."""

    def __init__(self, parent: int, daemon_mode: bool, interval: float = 0.2):
        super().__init__(daemon=True)
        self.parent, self.daemon_mode, self.interval = parent, daemon_mode, interval
        self.stop_event = threading.Event()
        self.peak = {"worker": 0, "daemon": 0}
        self.samples = 0

    def sample(self):
        snap = rss_snapshot(self.parent, self.daemon_mode)
        for k in self.peak:
            self.peak[k] = max(self.peak[k], snap[k]["rss"])
        self.samples += 1
        return snap

    def run(self):
        while not self.stop_event.is_set():
            try:
                self.sample()
            except Exception:  # a process vanished mid-read: next sample
                pass
            self.stop_event.wait(self.interval)


# --------------------------------------------------------------------------------------------
# Apache instances
# --------------------------------------------------------------------------------------------

LIVE: list = []  # running Apache instances, stopped on exit / signal


def _child_setup():
    os.setpgid(0, 0)
    try:  # SIGTERM Apache if this harness dies
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Apache:
    def __init__(self, name: str, root: Path, conf_fn):
        self.name, self.root, self.conf_fn = name, root, conf_fn
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.pid = 0
        self.seen: dict = {}  # pid -> starttime, every descendant ever observed
        self.started_at = 0.0

    @property
    def error_log(self) -> Path:
        return self.root / "logs" / "error.log"

    def log_tail(self, n=5) -> str:
        text = read_text(self.error_log) + read_text(self.root / "logs" / "stderr.log")
        lines = [l for l in text.splitlines() if l.strip() and ":notice]" not in l]
        return " | ".join(lines[-n:])[-700:]

    def start(self, timeout: float = 30.0) -> str | None:
        """Start and wait until it serves. Returns None, or the reason it failed."""
        last = ""
        for _attempt in range(4):
            if self.root.exists():
                shutil.rmtree(self.root, ignore_errors=True)
            for sub in ("logs", "run"):
                ensure_dir(self.root / sub)
            self.port = free_port()
            write_file(self.root / "httpd.conf", self.conf_fn(self.root, self.port))
            err = self._spawn_and_wait(timeout)
            if err is None:
                return None
            last = err
            self.stop()
            if "Address already in use" not in err:
                break
        return last

    def _spawn_and_wait(self, timeout: float) -> str | None:
        out = open(self.root / "logs" / "stderr.log", "wb")
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
        self.proc = subprocess.Popen(
            [HTTPD, "-f", str(self.root / "httpd.conf"), "-DFOREGROUND"],
            cwd=self.root, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            preexec_fn=_child_setup)
        out.close()
        self.pid = self.proc.pid
        self.started_at = time.monotonic()
        LIVE.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"Apache exited during startup (status {self.proc.returncode}): {self.log_tail()}"
            self.track()
            if READY_MARKER in read_text(self.error_log):
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return None
                except OSError:
                    pass
            time.sleep(0.05)
        return f"Apache did not become ready within {timeout:.0f}s: {self.log_tail()}"

    def track(self) -> dict:
        desc = descendants(self.pid) if self.pid else {}
        for pid, (_ppid, start) in desc.items():
            self.seen[pid] = start
        return desc

    def stop(self, grace: float = 12.0) -> dict:
        """SIGTERM the parent (pid file, else the pid we spawned); after `grace`, SIGKILL it
        and every descendant we have seen that is still the same process."""
        report = {"forced": False, "leftovers": []}
        if self.proc is None:
            return report
        self.track()
        pid = self.pid
        try:
            pf = int(read_text(self.root / "run" / "apache2.pid").strip() or 0)
            if pf and pf == self.pid:
                pid = pf
        except ValueError:
            pass
        if self.proc.poll() is None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                report["forced"] = True
                self.track()
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        # Anything left of this instance (e.g. a daemon process that outlived the parent).
        deadline = time.monotonic() + 3
        while True:
            alive = [p for p, start in self.seen.items()
                     if (st := proc_stat(p)) and st[1] == start and st[2] != "Z"]
            if not alive or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        for p in alive:
            st = proc_stat(p)
            if st and st[1] == self.seen[p]:
                try:
                    os.kill(p, signal.SIGKILL)
                    report["leftovers"].append(p)
                except ProcessLookupError:
                    pass
        if self in LIVE:
            LIVE.remove(self)
        self.proc = None
        return report


def stop_all_live():
    for a in list(LIVE):
        try:
            a.stop(grace=5)
        except Exception as e:  # keep going: stop the others
            print(f"warning: stopping {a.name}: {e}", file=sys.stderr)


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
    for m in ("authz_core", "mime"):
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
    ]
    if v.module:
        c += [
            f'WSGISocketPrefix "{root}/run/wsgi"',
            f'WSGIPythonHome "{venv}"',
            f'WSGIPythonPath "{apps}"',
            "WSGIApplicationGroup %{GLOBAL}",
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


# --------------------------------------------------------------------------------------------
# Requests and load
# --------------------------------------------------------------------------------------------


def one_request(port: int, method: str, path: str, body: bytes = b"", close: bool = False,
                timeout: float = 20.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Connection": "close"} if close else {}
        if body:
            headers["Content-Type"] = "application/octet-stream"
        conn.request(method, path, body=body or None, headers=headers)
        r = conn.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    finally:
        conn.close()


def preflight(inst: Apache, sc: Scenario, path: str, post: bool, repeat: int) -> str | None:
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
            if status == 200:
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


def run_wrk(port: int, path: str, conns: int, seconds: int, threads: int, lua: Path,
            post_bytes: int, close: bool):
    """Returns (figures dict, None) or (None, reason)."""
    cmd = ["wrk", "-t", str(max(1, min(threads, conns))), "-c", str(conns), "-d", f"{seconds}s",
           "--timeout", "5s", "--latency", "-s", str(lua)]
    if close:
        cmd += ["-H", "Connection: close"]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "BENCH_POST_BYTES": str(post_bytes)}
    try:
        p = run(cmd, timeout=seconds + 30, env=env)
    except subprocess.TimeoutExpired:
        return None, f"wrk did not finish within {seconds + 30}s (killed)"
    m = re.search(r"^BENCH_JSON (\{.*\})$", p.stdout, re.M)
    if p.returncode != 0 or not m:
        return None, f"wrk failed (exit {p.returncode}): {tail(p.stdout, 3)}"
    fig = json.loads(m.group(1))
    fig["rps"] = fig["requests"] / (fig["duration_us"] / 1e6) if fig["duration_us"] else 0.0
    return fig, None


# --------------------------------------------------------------------------------------------
# Setup: build, virtualenv, site files
# --------------------------------------------------------------------------------------------


def build_oxwsgi(work: Path, skip: bool) -> tuple:
    """(path of a private copy of the module, None) or (None, reason)."""
    so = REPO / "target" / "release" / "libmod_oxwsgi.so"
    if not skip:
        log("building: cargo build --release --lib")
        try:
            p = run(["cargo", "build", "--release", "--lib"], timeout=1800, cwd=REPO)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"cargo build failed: {e}"
        if p.returncode != 0:
            return None, f"cargo build --release --lib failed: {tail(p.stdout, 4)}"
    if not so.is_file():
        return None, f"{so} does not exist"
    # A private copy: other engineers may rebuild target/ during the run, and www-data must
    # be able to read it.
    dst = ensure_dir(work / "modules") / "libmod_oxwsgi.so"
    shutil.copy2(so, dst)
    os.chmod(dst, 0o755)
    return str(dst), None


def pip(venv: Path, *pkgs, timeout=900) -> str | None:
    try:
        p = run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *pkgs], timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"pip install {' '.join(pkgs)} timed out"
    return None if p.returncode == 0 else f"pip install {' '.join(pkgs)} failed: {tail(p.stdout, 3)}"


def venv_has(venv: Path, mod: str) -> bool:
    try:
        return run([str(venv / "bin" / "python"), "-c", f"import {mod}"], timeout=120).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def setup_venv(work: Path, want_latest: bool) -> dict:
    """The bench virtualenv (from /usr/bin/python3.11): Django for every server, matplotlib
    for the chart, and the newest mod_wsgi from PyPI. Reused across runs."""
    venv = work / "venv"
    info = {"venv": str(venv), "django": None, "matplotlib": False, "mw_latest_module": None,
            "mw_latest_version": None, "mw_latest_reason": None, "notes": []}
    if not (venv / "bin" / "python").exists():
        log(f"creating virtualenv {venv} from {SYSTEM_PYTHON}")
        p = run([SYSTEM_PYTHON, "-m", "venv", str(venv)], timeout=300)
        if p.returncode != 0:
            raise SystemExit(f"cannot create the bench virtualenv: {p.stdout}")
    if not venv_has(venv, "django"):
        log("installing Django into the bench virtualenv")
        err = pip(venv, "django")
        if err:
            info["notes"].append(err)
    if not venv_has(venv, "matplotlib"):
        log("installing matplotlib into the bench virtualenv")
        err = pip(venv, "matplotlib")
        if err:
            info["notes"].append(f"chart skipped: {err}")
    info["matplotlib"] = venv_has(venv, "matplotlib")
    q = run([str(venv / "bin" / "python"), "-c",
             "import importlib.metadata as m, sys\n"
             "for n in ('django', 'mod_wsgi'):\n"
             "    try: print(n, m.version(n))\n"
             "    except Exception: print(n, '-')"], timeout=120)
    versions = dict(l.split(" ", 1) for l in q.stdout.splitlines() if " " in l)
    info["django"] = None if versions.get("django", "-") == "-" else versions["django"]
    if want_latest:
        express = venv / "bin" / "mod_wsgi-express"
        if not express.exists():
            log("installing the newest mod_wsgi from PyPI (compiles against apache2-dev)")
            err = pip(venv, "mod_wsgi")
            if err:
                info["mw_latest_reason"] = err
        if express.exists():
            p = run([str(express), "module-config"], timeout=120)
            m = re.search(r'^LoadModule\s+wsgi_module\s+"?([^"\n]+)"?', p.stdout, re.M)
            if m:
                info["mw_latest_module"] = m.group(1).strip()
                q = run([str(venv / "bin" / "python"), "-c",
                         "import importlib.metadata as m; print(m.version('mod_wsgi'))"], timeout=120)
                info["mw_latest_version"] = q.stdout.strip() or None
            else:
                info["mw_latest_reason"] = f"mod_wsgi-express module-config: {tail(p.stdout, 2)}"
        elif not info["mw_latest_reason"]:
            info["mw_latest_reason"] = "mod_wsgi-express missing after pip install"
    else:
        info["mw_latest_reason"] = "skipped (--skip-latest)"
    make_readable(venv)
    return info


def setup_site(work: Path) -> Path:
    site = work / "site"
    apps, htdocs = ensure_dir(site / "apps"), ensure_dir(site / "htdocs")
    for name in ("app.wsgi", "django.wsgi", "benchsite.py"):
        write_file(apps / name, (BENCH / "apps" / name).read_bytes())
    # Deterministic, incompressible-ish data files.
    block = bytes((i * 131 + 7) & 0xFF for i in range(65536))
    write_file(apps / "data" / "5m.bin", block * (SIZE_5M // len(block)))
    write_file(htdocs / "5m.bin", block * (SIZE_5M // len(block)))
    write_file(htdocs / "1m.bin", block * (SIZE_1M // len(block)))
    write_file(htdocs / "64k.bin", block)
    write_file(htdocs / "hello.txt", HELLO)
    write_file(work / "report.lua", (BENCH / "report.lua").read_bytes())
    make_readable(site)
    return site


def machine_info(args) -> dict:
    def cmd_out(cmd, cwd=None):
        try:
            return run(cmd, timeout=30, cwd=cwd).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    cpu = "?"
    for line in read_text(Path("/proc/cpuinfo")).splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    commit = cmd_out(["git", "rev-parse", "--short=12", "HEAD"], cwd=REPO)
    dirty = cmd_out(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO)
    mem_kb = 0
    for line in read_text(Path("/proc/meminfo")).splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / (1 << 20), 1),
        "kernel": os.uname().release,
        "apache": cmd_out([HTTPD, "-v"]).splitlines()[0].split(":", 1)[-1].strip(),
        "python": cmd_out([SYSTEM_PYTHON, "-V"]),
        "wrk": cmd_out(["wrk", "--version"]).splitlines()[0].split(" Copyright")[0],
        "git_commit": commit + (" (tracked files modified)" if dirty else ""),
        "loadavg_at_start": read_text(Path("/proc/loadavg")).split()[:3],
    }


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
        self.idle = {v.key: {"runs": [], "failures": []} for v in variants if v.mode == "daemon"}
        self.stop_reports = []

    def instance(self, v: Variant, rnd: int, daemon_group) -> Apache:
        root = self.work / "instances" / f"r{rnd}-{v.key}{'-idle' if daemon_group and daemon_group[1] == 1 else ''}"

        def conf(root_, port):
            return render_conf(v, root_, port, self.site, self.venv, self.args.sendfile, daemon_group)
        return Apache(v.key, root, conf)

    def scenarios_for(self, v: Variant):
        return scenarios_for(v, self.scenarios)

    def fail_all(self, v: Variant, rnd: int, reason: str):
        for s in self.scenarios_for(v):
            self.results[v.key][s.key]["failures"].append({"round": rnd, "reason": reason})

    def finish(self, inst: Apache, rnd: int, v: Variant, ok: bool):
        rep = inst.stop()
        if rep["forced"] or rep["leftovers"]:
            self.stop_reports.append({"round": rnd, "variant": v.key, **rep})
        if ok and not self.args.keep_instances:
            shutil.rmtree(inst.root, ignore_errors=True)

    def run_scenario(self, inst: Apache, v: Variant, s: Scenario, rnd: int) -> bool:
        static = v.mode == "static"
        path = s.static_path if static else s.path
        post = s.post_bytes if not static else 0
        slot = self.results[v.key][s.key]
        if inst.proc is None or inst.proc.poll() is not None:
            slot["failures"].append({"round": rnd, "reason": f"Apache exited: {inst.log_tail(3)}"})
            return False
        err = preflight(inst, s, path, bool(post), self.args.preflight_requests)
        if err:
            log(f"  {v.label} / {s.key}: n/a: {err}")
            slot["failures"].append({"round": rnd, "reason": err})
            return False
        a = self.args
        if a.warmup > 0:
            _fig, err = run_wrk(inst.port, path, s.conns, a.warmup, a.wrk_threads, self.lua, post, s.close)
            if err:
                log(f"  {v.label} / {s.key}: warm-up failed: {err}")
                slot["failures"].append({"round": rnd, "reason": f"warm-up: {err}"})
                return False
        daemon_mode = v.mode == "daemon"
        reset_hwm(inst.track().keys())
        sampler = RssSampler(inst.pid, daemon_mode)
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
        bad = fig["status_errors"]
        if fig["requests"] == 0 or bad > 0.01 * fig["requests"]:
            reason = (f"{fig['requests']} responses, {bad} not 2xx/3xx, {errors} socket errors; "
                      f"error log: {inst.log_tail(3)}")
            log(f"  {v.label} / {s.key}: n/a: {reason}")
            slot["failures"].append({"round": rnd, "reason": reason})
            return False
        rec = {
            "round": rnd,
            "rps": round(fig["rps"], 1),
            "p50_ms": fig["p50_us"] / 1000, "p90_ms": fig["p90_us"] / 1000,
            "p99_ms": fig["p99_us"] / 1000, "max_ms": fig["max_us"] / 1000,
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
        log(f"  {v.label:28s} {s.key:8s} {rec['rps']:10.0f} req/s  p50 {rec['p50_ms']:7.2f} ms  "
            f"p99 {rec['p99_ms']:7.2f} ms  children {rec['workers_peak_mib']:.0f} MiB{extra}"
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
                err = preflight(inst, SCENARIOS[0], "/wsgi/hello", False, 1)
            if not err:
                time.sleep(1.0)
                snap = rss_snapshot(inst.pid, True)
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
                    if v.mode == "daemon":
                        self.run_idle(v, rnd)

    def run_round(self, order, rnd: int):
        """One round: every variant's Apache is started, then each scenario runs on every variant
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


def scenarios_for(v: Variant, scenarios: list) -> list:
    """The scenarios a variant runs: the static server only those with a static counterpart."""
    if v.mode == "static":
        needed = {s.static_key for s in scenarios}
        return [s for s in SCENARIOS if s.key in needed and s.static_path]
    return scenarios


def round_ratios(results: dict, vkey: str, skey: str, ref_vkey, ref_skey):
    """req/s of (vkey, skey) over req/s of (ref_vkey, ref_skey), per round both ran."""
    if not ref_vkey or ref_vkey == vkey and ref_skey == skey:
        return None
    mine = {r["round"]: r.get("rps") for r in results.get(vkey, {}).get(skey, {}).get("runs", [])}
    ref = {r["round"]: r.get("rps") for r in results.get(ref_vkey, {}).get(ref_skey, {}).get("runs", [])}
    return stats([mine[k] / ref[k] for k in mine if mine[k] and ref.get(k)])


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
            agg[v.key][s.key] = entry
    # Ratios: to mod_wsgi 4.9.4 in the same mode, and to the static counterpart.
    by_key = {s.key: s for s in SCENARIOS}
    for v in variants:
        for skey, e in agg[v.key].items():
            s = by_key[skey]
            base = agg.get(v.baseline_key or "", {}).get(s.key) if v.baseline_key else None
            stat = agg.get("static", {}).get(s.static_key)
            e["ratio_mw494"], e["ratio_static"] = {}, {}
            for m, _l, _h in METRICS:
                mine = (e.get(m) or {}).get("median")
                for ref, out in ((base, e["ratio_mw494"]), (stat, e["ratio_static"])):
                    r = ((ref or {}).get(m) or {}).get("median") if ref else None
                    out[m] = (mine / r) if (mine is not None and r) else None
            if v.mode == "static":
                e["ratio_static"] = {m: None for m, _l, _h in METRICS}
            # The same ratios of req/s taken round by round (both servers ran that scenario
            # back to back): shows how much of a ratio is noise between rounds.
            e["round_ratio_mw494"] = round_ratios(results, v.key, s.key, v.baseline_key, s.key)
            e["round_ratio_static"] = (None if v.mode == "static"
                                        else round_ratios(results, v.key, s.key, "static", s.static_key))
    idle = {}
    for key, slot in idle_results.items():
        st = stats([r["rss_mib"] for r in slot["runs"]])
        idle[key] = {"rss_mib": st, "failures": slot["failures"], "runs": slot["runs"]}
        if not st:
            idle[key]["na"] = slot["failures"][0]["reason"] if slot["failures"] else "not run"
    base = (idle.get("mw494-dmn") or {}).get("rss_mib")
    for key, e in idle.items():
        e["ratio_mw494"] = (e["rss_mib"]["median"] / base["median"]) if (e["rss_mib"] and base) else None
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


def evaluate_targets(agg: dict, variants: dict) -> list:
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
    target("Embedded 5 MiB file_wrapper ≥ 0.95× static", "ox-emb", "file5m", "ratio_static", 0.95)
    target("Daemon 5 MiB file_wrapper ≥ 0.9× static", "ox-dmn", "file5m", "ratio_static", 0.9)
    target("Daemon 64 KiB POST echo ≥ 1.5× mod_wsgi 4.9.4 daemon", "ox-dmn", "post64k",
           "ratio_mw494", 1.5)
    target("Daemon 1 MiB body ≥ 1.5× mod_wsgi 4.9.4 daemon", "ox-dmn", "body1m", "ratio_mw494", 1.5)
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
            if e and e.get("failures") and not variants[k].get("unavailable"):
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


def draw_chart(data_path: Path, png: Path, venv: Path) -> str | None:
    py = venv / "bin" / "python"
    try:
        p = run([str(py), str(BENCH / "chart.py"), str(data_path), str(png)], timeout=300)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"chart failed: {e}"
    return None if p.returncode == 0 else f"chart failed: {tail(p.stdout, 4)}"


# --------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/run", description="Benchmark oxwsgi against mod_wsgi and static Apache.",
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
                   "(static,ox-emb,ox-dmn,mw494-emb,mw494-dmn,mwnew-emb,mwnew-dmn)")
    p.add_argument("--scenarios", default="", help="comma-separated scenario keys "
                   f"({','.join(s.key for s in SCENARIOS)})")
    p.add_argument("--no-build", action="store_true",
                   help="use the existing target/release/libmod_oxwsgi.so")
    p.add_argument("--skip-latest", action="store_true", help="do not pip install the newest mod_wsgi")
    p.add_argument("--no-idle", action="store_true", help="skip the idle daemon RSS measurement")
    p.add_argument("--sendfile", action=argparse.BooleanOptionalAction, default=False,
                   help="EnableSendfile On for every variant (Apache's default is Off)")
    p.add_argument("--work", default="", help="work directory (default bench/work, or "
                   "/tmp/oxwsgi-bench when www-data cannot reach bench/work)")
    p.add_argument("--out", default=str(BENCH / "results"), help="results directory")
    p.add_argument("--keep-instances", action="store_true",
                   help="keep every instance's httpd.conf and logs under WORK/instances")
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


def rewrite_report(jpath: Path):
    """Recomputes a results JSON's aggregate and targets (with this version of the code) and
    rewrites it and its markdown report; the raw measurements are left as they are."""
    data = json.loads(jpath.read_text())
    fields = ("key", "label", "impl", "mode", "module", "unavailable")
    variants = [Variant(**{k: v.get(k) for k in fields}) for v in data["variants"]]
    by_key = {s.key: s for s in SCENARIOS}
    scenarios = [by_key[s["key"]] for s in data["scenarios"]]
    agg = aggregate(variants, scenarios, data["raw"], data["idle_raw"])
    data["aggregate"] = agg
    data["targets"] = evaluate_targets(agg, {v.key: v for v in variants})
    jpath.write_text(json.dumps(data, indent=1, default=str))
    mpath = jpath.with_suffix(".md")
    write_markdown(mpath, data)
    log(f"rewrote {jpath} and {mpath}")


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
        venv_info = setup_venv(work, not args.skip_latest)
        notes += venv_info["notes"]
        if venv_info["mw_latest_reason"]:
            notes.append(f"newest mod_wsgi not measured: {venv_info['mw_latest_reason']}")
        if not venv_info["django"]:
            notes.append("Django is not installed in the bench virtualenv: the django scenario fails")
        site = setup_site(work)
        make_readable(work / "modules") if (work / "modules").exists() else None
        variants = make_variants(venv_info["mw_latest_module"], venv_info["mw_latest_version"],
                                 venv_info["mw_latest_reason"], ox_module, ox_reason)
        if args.only:
            keys = {k.strip() for k in args.only.split(",") if k.strip()}
            unknown = keys - {v.key for v in variants}
            if unknown:
                raise SystemExit(f"unknown variant(s): {', '.join(sorted(unknown))}")
            variants = [v for v in variants if v.key in keys]
        scenarios = SCENARIOS
        if args.scenarios:
            keys = {k.strip() for k in args.scenarios.split(",") if k.strip()}
            unknown = keys - {s.key for s in SCENARIOS}
            if unknown:
                raise SystemExit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
            scenarios = [s for s in SCENARIOS if s.key in keys]
        machine = machine_info(args)
        log(f"machine: {machine['nproc']} × {machine['cpu']}, kernel {machine['kernel']}, "
            f"{machine['apache']}, {machine['python']}, commit {machine['git_commit']}")
        bench = Bench(args, work, site, Path(venv_info["venv"]), variants, scenarios)
        bench.run_all()
    finally:
        stop_all_live()

    agg = aggregate(bench.variants, bench.scenarios, bench.results, bench.idle)
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
        },
        "variants": [{"key": v.key, "label": v.label, "impl": v.impl, "mode": v.mode,
                      "module": v.module, "unavailable": v.unavailable} for v in variants],
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
    }
    data["targets"] = evaluate_targets(agg, {v.key: v for v in variants})
    data["elapsed_s"] = time.monotonic() - T0
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
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        stop_all_live()
        print(f"interrupted ({e}); Apache instances stopped", file=sys.stderr)
        sys.exit(130)
