"""Setup before a run: the oxwsgi build, the bench virtualenv, nginx, the site files, machine
facts."""

from __future__ import annotations

import datetime as _dt
import os
import re
import shutil
import subprocess
from pathlib import Path

from .harness import (BENCH, HTTPD, NGINX, REPO, SYSTEM_PYTHON, ensure_dir, log, make_readable,
                      read_text, run, tail, write_file)
from .scenarios import HELLO, SIZE_1M, SIZE_5M

# --------------------------------------------------------------------------------------------
# Setup: build, virtualenv, site files
# --------------------------------------------------------------------------------------------


def build_oxwsgi(work: Path, skip: bool) -> tuple:
    """(path of a private copy of the module, None) or (None, reason)."""
    # CARGO_TARGET_DIR as cargo reads it (scripts/distro-root sets one per root, relative to the
    # checkout), so a run inside a distribution's root measures that root's build.
    so = REPO / os.environ.get("CARGO_TARGET_DIR", "target") / "release" / "libmod_oxwsgi.so"
    if not skip:
        log("building: cargo build --release --lib")
        try:
            p = run(["cargo", "build", "--release", "--lib"], timeout=1800, cwd=REPO)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, f"cargo build failed: {e}"
        if p.returncode != 0:
            return None, f"cargo build --release --lib failed: {tail(p.stdout, 4)}"
    return private_copy(so, work, "libmod_oxwsgi.so")


def private_copy(so: Path, work: Path, name: str) -> tuple:
    """(path of WORK/modules/NAME, a copy of the module so, None) or (None, reason)."""
    if not so.is_file():
        return None, f"{so} does not exist"
    # A private copy: other engineers may rebuild target/ during the run, and www-data must
    # be able to read it.
    dst = ensure_dir(work / "modules") / name
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


STANDALONE_PACKAGES = {"granian": "granian", "gunicorn": "gunicorn"}  # variant key -> PyPI name


def setup_venv(work: Path, want_latest: bool) -> dict:
    """The bench virtualenv (from SYSTEM_PYTHON, the Python oxwsgi is built for): Django for
    every server, matplotlib for the chart, Granian and Gunicorn (the standalone servers) and
    the newest mod_wsgi from PyPI. Reused across runs."""
    venv = work / "venv"
    info = {"venv": str(venv), "django": None, "matplotlib": False, "mw_latest_module": None,
            "mw_latest_version": None, "mw_latest_reason": None, "standalone": {}, "notes": []}
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
    standalone_errors = {}
    for key, package in STANDALONE_PACKAGES.items():
        if not venv_has(venv, key):
            log(f"installing {package} into the bench virtualenv")
            standalone_errors[key] = pip(venv, package)
    q = run([str(venv / "bin" / "python"), "-c",
             "import importlib.metadata as m, sys\n"
             "for n in ('django', 'mod_wsgi', 'granian', 'gunicorn'):\n"
             "    try: print(n, m.version(n))\n"
             "    except Exception: print(n, '-')"], timeout=120)
    versions = dict(l.split(" ", 1) for l in q.stdout.splitlines() if " " in l)
    info["django"] = None if versions.get("django", "-") == "-" else versions["django"]
    for key, package in STANDALONE_PACKAGES.items():
        version = None if versions.get(package, "-") == "-" else versions[package]
        why = None if version else (standalone_errors.get(key) or f"{package} is not installed")
        info["standalone"][key] = (version, why)
    info["standalone"]["python-shared"] = shared_python(venv)
    # --skip-latest installs nothing, but a mod_wsgi the venv already has is measured.
    express = venv / "bin" / "mod_wsgi-express"
    if want_latest or express.exists():
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


# Python's main(), linked to the interpreter every Apache module loads (libpython3.X.so) for the
# granian-shared variant (Granian on the same interpreter build as oxwsgi and mod_wsgi), and to
# other builds of it by bench/interpreter-builds.
PYTHON_MAIN_C = "#include <Python.h>\nint main(int argc, char **argv) { return Py_BytesMain(argc, argv); }\n"


def shared_python(venv: Path) -> tuple:
    """(path, None) of venv/bin/python-shared, built when missing (gcc and the -dev package of
    SYSTEM_PYTHON), or (None, reason). It lives in the virtualenv's bin/ so that it finds the
    virtualenv's pyvenv.cfg as venv/bin/python does."""
    exe = venv / "bin" / "python-shared"
    if exe.exists():
        return str(exe), None
    q = run([SYSTEM_PYTHON, "-c", "import sysconfig as s; print(s.get_paths()['include']); "
             "print(s.get_config_var('LDVERSION'))"], timeout=60)
    lines = q.stdout.split()
    if q.returncode != 0 or len(lines) != 2:
        return None, f"{SYSTEM_PYTHON} sysconfig: {tail(q.stdout, 2)}"
    include, ldversion = lines
    src = venv / "python-shared.c"
    src.write_text(PYTHON_MAIN_C)
    p = run(["gcc", "-O2", str(src), f"-I{include}", "-o", str(exe), f"-lpython{ldversion}"], timeout=120)
    if p.returncode != 0:
        return None, f"building {exe}: {tail(p.stdout, 2)}"
    return str(exe), None


NGINX_PACKAGES = ("nginx-light", "nginx")  # the first this Debian has


def setup_nginx() -> tuple:
    """(version, None) of /usr/sbin/nginx, installed with apt-get when missing, or (None,
    reason): the front of the gunicorn-nginx variant."""
    if not os.path.exists(NGINX):
        err = install_nginx()
        if err:
            return None, err
    try:
        out = run([NGINX, "-v"], timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{NGINX} -v failed: {e}"
    m = re.search(r"nginx/(\S+)", out)
    return (m.group(1), None) if m else (None, f"{NGINX} -v: {tail(out, 2)}")


def apt_candidate(package: str) -> bool:
    """Whether apt-cache policy has a candidate version of package."""
    m = re.search(r"Candidate:\s*(\S+)", run(["apt-cache", "policy", package], timeout=120).stdout)
    return bool(m) and m.group(1) != "(none)"


def install_nginx() -> str | None:
    """apt-get install nginx-light (else nginx), without starting the system's nginx service.
    None, or why nginx could not be installed."""
    if not shutil.which("apt-get"):
        return f"{NGINX} is missing and there is no apt-get to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        package = next((p for p in NGINX_PACKAGES if apt_candidate(p)), None)
        if package is None:  # no package lists yet
            run(["apt-get", "update", "-q"], timeout=600, env=env)
            package = next((p for p in NGINX_PACKAGES if apt_candidate(p)), None)
        if package is None:
            return f"{NGINX} is missing and apt-cache policy has no candidate for " + \
                " or ".join(NGINX_PACKAGES)
        log(f"installing nginx: apt-get install -y --no-install-recommends {package}")
        # The package would start the system's nginx (on port 80): a policy-rc.d that says no
        # (101) while it installs, unless the machine has one already.
        policy = Path("/usr/sbin/policy-rc.d")
        ours = not policy.exists()
        if ours:
            write_file(policy, "#!/bin/sh\n# oxwsgi bench: no service starts while nginx "
                       "installs\nexit 101\n", 0o755)
        try:
            p = run(["apt-get", "install", "-y", "--no-install-recommends", package],
                    timeout=900, env=env)
        finally:
            if ours:
                policy.unlink(missing_ok=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"installing nginx failed: {e}"
    if p.returncode != 0 or not os.path.exists(NGINX):
        return f"apt-get install {package} failed (exit {p.returncode}): {tail(p.stdout, 3)}"
    return None


def setup_site(work: Path) -> Path:
    site = work / "site"
    apps, htdocs = ensure_dir(site / "apps"), ensure_dir(site / "htdocs")
    for name in ("app.wsgi", "django.wsgi", "benchsite.py", "standalone.py"):
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
