"""The harness: server instances (Apache, or a standalone Python server; start, stop by pid),
ports, work-dir files, /proc process handling, RSS measurement, single requests and wrk load
runs.

Every server variant is its own instance on its own free loopback port: an Apache
(/usr/sbin/apache2, event MPM, identical MPM settings), or Granian / Gunicorn from the bench
virtualenv, or nginx in front of Gunicorn (two process trees, one instance). Load comes from
wrk in a separate process. A server is only ever stopped by pid:
the pid file / the process we spawned, then its descendants found through /proc ppid links
(checked against their start time so a recycled pid is never signalled).
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
REPO = BENCH.parent
HTTPD = "/usr/sbin/apache2"
NGINX = "/usr/sbin/nginx"
MODULES_DIR = "/usr/lib/apache2/modules"
DEBIAN_MOD_WSGI = f"{MODULES_DIR}/mod_wsgi.so"
# The Python oxwsgi is built for (PYTHON, as the Makefile passes it), as its versioned binary.
SYSTEM_PYTHON = os.path.realpath(os.environ.get("PYTHON") or "/usr/bin/python3")
RUN_USER = "www-data"
RUN_GROUP = "www-data"
READY_MARKER = "configured -- resuming normal operations"

# Identical for every variant. Two fixed child processes (StartServers = ServerLimit, spare
# thread limits wide enough that the MPM never starts or stops a child during a run), each with
# its own listening socket (ListenCoresBucketsRatio 1: one SO_REUSEPORT bucket per core, so the
# kernel spreads the connections over both children; without it a child's listener may accept
# all 16 of a run's keep-alive connections, and an embedded Python application then runs on
# one child's GIL, at half the rate: the bimodal rounds of earlier runs).
MPM = {
    "ListenCoresBucketsRatio": 1,
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

LOG_LOCK = threading.Lock()
T0 = time.monotonic()


def log(msg: str) -> None:
    with LOG_LOCK:
        print(f"[{time.monotonic() - T0:7.1f}s] {msg}", flush=True)


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


def descendants(*root_pids: int):
    """{pid: (ppid, starttime)} of live (non-zombie) descendants of the root_pids."""
    procs = all_procs()
    children = {}
    for pid, (ppid, _st, _state) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out = {}
    stack = list(root_pids)
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


def rss_snapshot(parents: list, daemon_mode: bool) -> dict:
    """The worker (and daemon) processes among the descendants of parents: the server's
    parent processes (Apache's, or nginx's and Gunicorn's)."""
    desc = descendants(*parents)
    kinds = classify(parents[0], desc, daemon_mode)
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
    """Samples the summed VmRSS of Apache's worker children and of the daemon processes
    (parents: Server.rss_roots())."""

    def __init__(self, parents: list, daemon_mode: bool, interval: float = 0.2):
        super().__init__(daemon=True)
        self.parents, self.daemon_mode, self.interval = parents, daemon_mode, interval
        self.stop_event = threading.Event()
        self.peak = {"worker": 0, "daemon": 0}
        self.samples = 0

    def sample(self):
        snap = rss_snapshot(self.parents, self.daemon_mode)
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
# Server instances
# --------------------------------------------------------------------------------------------

LIVE: list = []  # running servers, stopped on exit / signal


def _child_setup():
    os.setpgid(0, 0)
    try:  # SIGTERM the server if this harness dies
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class Server:
    """One server under test: a process tree started on a free 127.0.0.1 port and stopped by
    pid. Subclasses give the command line (`argv`), what to write before it starts
    (`prepare`) and when it counts as started (`ready`, then a TCP connect must succeed)."""

    stop_signal = signal.SIGTERM  # what asks the parent to stop (then SIGKILL after a grace)
    kind = "server"  # in messages

    def __init__(self, name: str, root: Path):
        self.name, self.root = name, root
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.pid = 0
        self.seen: dict = {}  # pid -> starttime, every descendant ever observed
        self.started_at = 0.0

    @property
    def error_log(self) -> Path:
        return self.root / "logs" / "error.log"

    def prepare(self, port: int) -> None:
        """Write what the server reads at startup (its configuration) into self.root."""

    def argv(self, port: int) -> list:
        raise NotImplementedError

    def popen_kwargs(self) -> dict:
        return {}

    def ready(self) -> bool:
        return True

    def log_tail(self, n=5) -> str:
        text = read_text(self.error_log) + read_text(self.root / "logs" / "stderr.log")
        lines = [l for l in text.splitlines() if l.strip() and ":notice]" not in l
                 and "[notice]" not in l and "[INFO]" not in l]
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
            self.prepare(self.port)
            err = self._spawn_and_wait(timeout)
            if err is None:
                return None
            last = err
            self.stop()
            if "already in use" not in err and "Connection in use" not in err:
                break
        return last

    def _spawn_and_wait(self, timeout: float) -> str | None:
        out = open(self.root / "logs" / "stderr.log", "wb")
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
        self.proc = subprocess.Popen(
            self.argv(self.port), cwd=self.root, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=out, preexec_fn=_child_setup, **self.popen_kwargs())
        out.close()
        self.pid = self.proc.pid
        self.started_at = time.monotonic()
        LIVE.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return (f"{self.kind} exited during startup (status {self.proc.returncode}): "
                        f"{self.log_tail()}")
            self.track()
            if self.ready() and self.accepts():
                return None
            time.sleep(0.05)
        return f"{self.kind} did not become ready within {timeout:.0f}s: {self.log_tail()}"

    def accepts(self) -> bool:
        """Whether a connection to where it listens succeeds."""
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def rss_roots(self) -> list:
        """The parent processes whose descendants are the workers measured for RSS."""
        return [self.pid]

    def track(self) -> dict:
        desc = descendants(self.pid) if self.pid else {}
        for pid, (_ppid, start) in desc.items():
            self.seen[pid] = start
        return desc

    def stop(self, grace: float = 12.0) -> dict:
        """stop_signal to the parent (pid file, else the pid we spawned); after `grace`,
        SIGKILL it and every descendant we have seen that is still the same process."""
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
                os.kill(pid, self.stop_signal)
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


class Apache(Server):
    """/usr/sbin/apache2 -DFOREGROUND with the httpd.conf that conf_fn(root, port) renders."""

    kind = "Apache"

    def __init__(self, name: str, root: Path, conf_fn):
        super().__init__(name, root)
        self.conf_fn = conf_fn

    def prepare(self, port: int) -> None:
        write_file(self.root / "httpd.conf", self.conf_fn(self.root, port))

    def argv(self, port: int) -> list:
        return [HTTPD, "-f", str(self.root / "httpd.conf"), "-DFOREGROUND"]

    def ready(self) -> bool:
        return READY_MARKER in read_text(self.error_log)


class Standalone(Server):
    """A standalone Python server (Granian, Gunicorn): the command argv_fn(port) run as
    RUN_USER, like Apache's children; its output goes to logs/stderr.log. With unix_socket
    (a path in root/run) it listens there instead of on the port (a backend behind nginx)."""

    def __init__(self, name: str, root: Path, argv_fn, stop_signal=signal.SIGTERM,
                 unix_socket: Path | None = None):
        super().__init__(name, root)
        self.argv_fn, self.stop_signal, self.kind = argv_fn, stop_signal, name
        self.unix_socket = unix_socket

    def prepare(self, port: int) -> None:
        if self.unix_socket:  # RUN_USER creates its socket there
            shutil.chown(self.unix_socket.parent, RUN_USER, RUN_GROUP)

    def argv(self, port: int) -> list:
        return self.argv_fn(port)

    def popen_kwargs(self) -> dict:
        return {"user": RUN_USER, "group": RUN_GROUP, "extra_groups": []}

    def accepts(self) -> bool:
        if not self.unix_socket:
            return super().accepts()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1)
                s.connect(str(self.unix_socket))
            return True
        except OSError:
            return False


class Nginx(Server):
    """nginx in front of a backend server: /usr/sbin/nginx -p ROOT -c ROOT/nginx.conf -g
    'daemon off;' with the configuration conf_fn(root, port) renders (its pid, lock, error log
    and temp files all in root; the master runs as root like Apache's parent, its workers as
    RUN_USER); the backend (its root inside this one) is started once nginx serves. Both are
    stopped by pid, nginx first; RSS counts the workers of both."""

    kind = "nginx"

    def __init__(self, name: str, root: Path, conf_fn, backend: Server):
        super().__init__(name, root)
        self.conf_fn, self.backend = conf_fn, backend

    def prepare(self, port: int) -> None:
        ensure_dir(self.root / "tmp")  # nginx creates its *_temp_path directories in it
        write_file(self.root / "nginx.conf", self.conf_fn(self.root, port))

    def argv(self, port: int) -> list:
        return [NGINX, "-p", f"{self.root}/", "-c", str(self.root / "nginx.conf"),
                "-e", str(self.error_log), "-g", "daemon off;"]

    def start(self, timeout: float = 30.0) -> str | None:
        err = super().start(timeout)
        if err is None:
            err = self.backend.start(timeout)
            if err:
                err = f"{self.backend.kind} (behind nginx): {err}"
                self.stop()
        return err

    def running(self) -> bool:
        return super().running() and self.backend.running()

    def rss_roots(self) -> list:
        return [self.pid, self.backend.pid]

    def track(self) -> dict:
        desc = super().track()
        return {**desc, **self.backend.track()} if self.backend.proc else desc

    def log_tail(self, n=5) -> str:
        return " | ".join(x for x in (super().log_tail(n), self.backend.log_tail(n)) if x)[-700:]

    def stop(self, grace: float = 12.0) -> dict:
        front, back = super().stop(grace), self.backend.stop(grace)
        return {"forced": front["forced"] or back["forced"],
                "leftovers": front["leftovers"] + back["leftovers"]}


def stop_all_live():
    for a in list(LIVE):
        try:
            a.stop(grace=5)
        except Exception as e:  # keep going: stop the others
            print(f"warning: stopping {a.name}: {e}", file=sys.stderr)

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


class SlowClients:
    """`n` clients that each ask for `path` and then read it at about `rate` bytes/s (a phone on
    a bad network), over and over, until stopped: the load beside a scenario's wrk run. With
    `upload` (bytes), each POSTs that many bytes to `path` at `rate` instead; when stopped it
    sends the rest at once and checks the answer ("LENGTH CRC32" of what it sent), counted in
    `uploads_intact` / `uploads_bad`."""

    def __init__(self, port: int, path: str, n: int, rate: int = 16 * 1024, upload: int = 0):
        self.port, self.path, self.n, self.rate, self.upload = port, path, n, rate, upload
        self.stop_event = threading.Event()
        self.threads = []
        self.started = 0
        self.uploads_intact = 0
        self.uploads_bad = []
        self.payload = bytes(i * 31 % 251 for i in range(upload))

    def _connect(self):
        import socket
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(5)
        s.connect(("127.0.0.1", self.port))
        return s

    def _client(self):
        while not self.stop_event.is_set():
            try:
                s = self._connect()
                if self.upload:
                    self._upload(s)
                    s.close()
                    continue
                s.sendall(f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
                self.started += 1
                chunk = max(1, self.rate // 10)
                while not self.stop_event.is_set():
                    if not s.recv(chunk):
                        break
                    self.stop_event.wait(0.1)
                s.close()
            except OSError:
                self.stop_event.wait(0.2)

    def _upload(self, s):
        """One slow upload: a tenth of `rate` every 0.1 s until stopped or done, then the rest
        at once, then the answer checked."""
        import zlib
        s.sendall(f"POST {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                  f"Content-Length: {self.upload}\r\n\r\n".encode())
        self.started += 1
        sent, chunk = 0, max(1, self.rate // 10)
        while sent < self.upload and not self.stop_event.is_set():
            s.sendall(self.payload[sent:sent + chunk])
            sent += chunk
            self.stop_event.wait(0.1)
        s.settimeout(60)
        s.sendall(self.payload[sent:])
        answer = b""
        while True:
            got = s.recv(65536)
            if not got:
                break
            answer += got
        want = b"%d %08x" % (self.upload, zlib.crc32(self.payload))
        if answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"\r\n\r\n" + want):
            self.uploads_intact += 1
        else:
            self.uploads_bad.append(answer[:200])

    def __enter__(self):
        for _ in range(self.n):
            t = threading.Thread(target=self._client, daemon=True)
            t.start()
            self.threads.append(t)
        time.sleep(1.0)  # let them all be stuck in their downloads (uploads)
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=60 if self.upload else 10)
