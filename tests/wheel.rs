//! The wheel, as a user gets it: `scripts/build-wheel` (what `make wheel` runs; it reuses
//! target/release) builds it from this checkout, pip installs it into a fresh virtualenv of
//! the Python oxwsgi is built for (tests/common/python.rs) with no package index and no cargo on PATH, and then, from that
//! virtualenv: the module links only the Debian system's libraries, `oxwsgi module-config` names the
//! module and the virtualenv, `oxwsgi install-module` copies that module, and `oxwsgi serve` and
//! `python -m oxwsgi serve` serve an application that imports a package installed in the
//! virtualenv. pip refuses the wheel for another Python or platform, and a module the dynamic
//! linker cannot load is one clear line from `oxwsgi`, not an Apache failure.
//!
//! Skipped (with the reason on stderr) only when the build tools must be installed and pip
//! cannot reach its package index. Everything lives in a temporary directory under /tmp that
//! Apache's www-data children can read; every wait is bounded; `Serve` stops what it starts by
//! pid.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

mod common;
use common::cli::{assert_one_line_error, run, run_command, Serve, TempDir};
#[path = "django/venv.rs"]
mod venv;
use venv::{make_world_readable, run_with_timeout};

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
use common::python::PYTHON;
/// A PATH without cargo or rustc (they live under ~/.cargo/bin): installing needs neither.
const PLAIN_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Building the wheel: a release build of the crate when target/release is not up to date.
const BUILD_TIMEOUT: Duration = Duration::from_secs(1200);
/// A virtualenv or an offline pip install.
const PIP_TIMEOUT: Duration = Duration::from_secs(300);
/// scripts/build-wheel's exit status when pip cannot reach its package index.
const NO_INDEX_STATUS: &str = "exit status: 75";

/// The libraries the module may need: a Debian system with apache2 and libpython3.N (the
/// version oxwsgi is built for) has them all. Each is the Debian package that ships it.
fn allowed_packages() -> [String; 5] {
    let libpython = format!("libpython{}", common::python::PYTHON_VERSION);
    ["libc6", "libgcc-s1", &libpython, "zlib1g", "libexpat1"].map(String::from)
}

/// `oxwsgi_probe`, a one-module package in a wheel that pip installs offline: the application
/// imports it to show that it runs with the virtualenv's packages.
const PROBE_WHEEL_PY: &str = r#"
import base64, hashlib, sys, zipfile
out = sys.argv[1]
files = {
    'oxwsgi_probe/__init__.py': b'MARKER = "installed in the virtualenv"\n',
    'oxwsgi_probe-1.0.dist-info/METADATA': b'Metadata-Version: 2.1\nName: oxwsgi-probe\nVersion: 1.0\n',
    'oxwsgi_probe-1.0.dist-info/WHEEL': b'Wheel-Version: 1.0\nGenerator: tests/wheel.rs\nRoot-Is-Purelib: true\nTag: py3-none-any\n',
}
record = ''
for name, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()
    record += '%s,sha256=%s,%d\n' % (name, digest, len(data))
record += 'oxwsgi_probe-1.0.dist-info/RECORD,,\n'
with zipfile.ZipFile(out, 'w') as z:
    for name, data in files.items():
        z.writestr(name, data)
    z.writestr('oxwsgi_probe-1.0.dist-info/RECORD', record)
"#;

const APP: &str = r#"import sys

import oxwsgi_probe


def application(environ, start_response):
    body = 'prefix=%s\nprobe=%s\nmarker=%s\n' % (sys.prefix, oxwsgi_probe.__file__, oxwsgi_probe.MARKER)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [body.encode()]
"#;

/// Builds the wheel into `out`; None (after saying why) when pip cannot reach its index.
fn build_wheel(out: &Path) -> Option<PathBuf> {
    let mut cmd = Command::new(Path::new(MANIFEST).join("scripts/build-wheel"));
    cmd.arg("--out").arg(out).current_dir(MANIFEST);
    match run_with_timeout(&mut cmd, BUILD_TIMEOUT) {
        Ok(output) => {
            let last = output.lines().map(str::trim).filter(|l| !l.is_empty()).last().unwrap_or_default();
            Some(PathBuf::from(MANIFEST).join(last))
        }
        Err(e) if e.contains(NO_INDEX_STATUS) => {
            eprintln!("skipping: pip cannot reach its package index to install the wheel's build tools\n{e}");
            None
        }
        Err(e) => panic!("scripts/build-wheel failed:\n{e}"),
    }
}

/// Runs `program ARGS` with PATH=PLAIN_PATH, bounded; panics with its output on failure.
fn plain(program: impl AsRef<Path>, args: &[&str]) -> String {
    let mut cmd = Command::new(program.as_ref());
    cmd.args(args).env("PATH", PLAIN_PATH).env_remove("VIRTUAL_ENV").env_remove("CARGO");
    run_with_timeout(&mut cmd, PIP_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

/// `(name, resolved path)` of every library `ldd` lists for `file`, with none "not found".
fn ldd(file: &Path) -> Vec<(String, String)> {
    let out = Command::new("ldd").arg(file).output().expect("ldd");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && !text.contains("not found"), "ldd {}:\n{text}", file.display());
    text.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().split_once(" => ")?;
            Some((name.to_string(), rest.split(" (").next()?.to_string()))
        })
        .collect()
}

/// The Debian package that ships the library `lib` found at `path` (through /usr-merge links).
fn debian_package(lib: &str, path: &str) -> String {
    let out = Command::new("dpkg").arg("-S").arg(format!("*/{lib}")).output().expect("dpkg -S");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let real = fs::canonicalize(path).unwrap();
    let line = text
        .lines()
        .find(|l| l.split_once(": ").is_some_and(|(_, p)| fs::canonicalize(p).is_ok_and(|p| p == real)))
        .unwrap_or_else(|| panic!("no Debian package ships {path}:\n{text}"));
    line.split(':').next().unwrap().to_string()
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A command that runs the virtualenv's `oxwsgi` the way a user's shell would.
fn in_venv(program: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args).env("PATH", PLAIN_PATH).env_remove("OXWSGI_MODULE").env_remove("OXWSGI_PYTHON");
    cmd
}

#[test]
fn wheel_installs_into_a_virtualenv_and_serves_from_it() {
    let dir = TempDir::new("wheel");
    let Some(wheel) = build_wheel(&dir.path().join("dist")) else { return };
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    let cp = common::python::cp_tag();
    assert_eq!(name, format!("oxwsgi-{}-{cp}-{cp}-linux_x86_64.whl", env!("CARGO_PKG_VERSION")));
    let wheel_arg = wheel.display().to_string();
    let listing = plain(PYTHON, &["-m", "zipfile", "-l", &wheel_arg]);
    for file in ["oxwsgi/__init__.py", "oxwsgi/__main__.py", "oxwsgi/oxwsgi", "oxwsgi/libmod_oxwsgi.so"] {
        assert!(listing.lines().any(|l| l.starts_with(&format!("{file} "))), "{file} not in the wheel:\n{listing}");
    }

    // A fresh virtualenv; the wheel and the probe package install with no index and no cargo.
    let venv = dir.path().join("venv");
    let venv_arg = venv.display().to_string();
    plain(PYTHON, &["-m", "venv", &venv_arg]);
    let probe = dir.path().join("oxwsgi_probe-1.0-py3-none-any.whl");
    plain(PYTHON, &["-c", PROBE_WHEEL_PY, &probe.display().to_string()]);
    let python = venv.join("bin/python");
    let pip_install = ["-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check"];
    plain(&python, &[&pip_install[..], &[wheel_arg.as_str(), &probe.display().to_string()]].concat());
    make_world_readable(dir.path()).unwrap();
    let oxwsgi = venv.join("bin/oxwsgi");
    assert!(oxwsgi.is_file(), "pip put no oxwsgi on the virtualenv's PATH");
    let package = common::python::site_packages(&venv).join("oxwsgi");
    let module = package.join("libmod_oxwsgi.so");

    // The module links only what Debian with apache2 and libpython3.N has.
    let libs = ldd(&module);
    let libpython = format!("libpython{}.so.1.0", common::python::PYTHON_VERSION);
    assert!(libs.iter().any(|(n, _)| n == &libpython), "{libs:?}");
    for (lib, path) in &libs {
        let pkg = debian_package(lib, path);
        assert!(allowed_packages().contains(&pkg), "the module needs {lib} ({path}) from {pkg}");
    }

    // module-config names the module in the virtualenv, and the virtualenv.
    let out = run_command(in_venv(&oxwsgi, &[]), dir.path(), &["module-config"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        format!("LoadModule wsgi_module \"{}\"\nWSGIPythonHome \"{venv_arg}\"\n", module.display()),
        "{stderr}"
    );

    // install-module copies that module.
    let stage = dir.path().join("stage");
    let stage_arg = stage.display().to_string();
    let args = ["install-module", "--destdir", &stage_arg, "--modules-dir", "/usr/lib/apache2/modules"];
    let out = run_command(in_venv(&oxwsgi, &[]), dir.path(), &args, &[]);
    assert!(out.status.success(), "{}", text(&out).1);
    let installed = stage.join("usr/lib/apache2/modules/mod_oxwsgi.so");
    assert!(fs::read(&installed).unwrap() == fs::read(&module).unwrap(), "install-module copied another module");
    assert!(stage.join("etc/apache2/mods-available/oxwsgi.load").is_file());

    // serve (daemon mode) and python -m oxwsgi serve (embedded) run the application with the
    // virtualenv's packages.
    let app_dir = dir.path().join("app");
    fs::create_dir(&app_dir).unwrap();
    fs::write(app_dir.join("app.wsgi"), APP).unwrap();
    make_world_readable(&app_dir).unwrap();
    let python_m = in_venv(&python, &["-m", "oxwsgi"]);
    for (cmd, extra) in [(in_venv(&oxwsgi, &[]), None), (python_m, Some("--embedded"))] {
        let mut args = vec!["app.wsgi"];
        args.extend(extra);
        let mut s = Serve::start_command(cmd, &app_dir, &args);
        let (status, body) = s.get("/");
        assert_eq!(status, 200, "{body}\n{}", s.output());
        assert!(body.contains(&format!("prefix={venv_arg}\n")), "{body}");
        let probe_dir = common::python::site_packages(&venv).join("oxwsgi_probe");
        assert!(body.contains(&format!("probe={}/", probe_dir.display())), "{body}");
        s.stop_cleanly(libc::SIGTERM);
    }

    // pip refuses the wheel for another Python or another platform.
    let target = dir.path().join("elsewhere").display().to_string();
    let other_python = if common::python::PYTHON_VERSION == "3.12" { "3.13" } else { "3.12" };
    for other in [["--python-version", other_python], ["--platform", "manylinux2014_aarch64"]] {
        let mut cmd = Command::new(&python);
        cmd.args(["-m", "pip", "install", "--dry-run", "--no-index", "--no-deps", "--only-binary=:all:"]);
        cmd.args(other).args(["--target", &target, &wheel_arg]).env("PATH", PLAIN_PATH);
        let err = run_with_timeout(&mut cmd, PIP_TIMEOUT).expect_err("pip installed the wheel for another platform");
        assert!(err.contains(&format!("{name} is not a supported wheel on this platform")), "{err}");
    }
}

/// A module whose libraries are missing (as the wheel's is on a system without Debian's
/// libpython3.N): `serve` refuses in one line, `module-config` warns.
#[test]
fn a_module_that_cannot_be_loaded_is_one_clear_line() {
    let dir = TempDir::new("wheel-unloadable");
    let c = dir.write("empty.c", "int oxwsgi_test_symbol;\n");
    let lib = dir.path().join("liboxwsgi_gone.so");
    let module = dir.path().join("mod_broken.so");
    let gcc = |args: &[&str]| Command::new("gcc").args(args).current_dir(dir.path()).output();
    let (c_arg, lib_arg, module_arg) =
        (c.display().to_string(), lib.display().to_string(), module.display().to_string());
    match gcc(&["-shared", "-fPIC", "-o", &lib_arg, &c_arg]) {
        Ok(out) if out.status.success() => {}
        other => {
            eprintln!("skipping: gcc cannot build a shared library here: {other:?}");
            return;
        }
    }
    let out =
        gcc(&["-shared", "-fPIC", "-o", &module_arg, &c_arg, "-Wl,--no-as-needed", "-L.", "-loxwsgi_gone"]).unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    fs::remove_file(&lib).unwrap();

    let env = [("OXWSGI_MODULE", module_arg.as_str())];
    let out = run(dir.path(), &["module-config"], &env);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, format!("LoadModule wsgi_module \"{module_arg}\"\n"));
    assert!(stderr.contains("cannot be loaded on this system") && stderr.contains("liboxwsgi_gone.so"), "{stderr}");

    dir.example("hello.wsgi");
    let site = dir.path().join("site").display().to_string();
    let out = run(dir.path(), &["serve", "hello.wsgi", "--setup-only", &site], &env);
    assert_one_line_error(
        &out,
        &[
            &format!("the oxwsgi module {module_arg} cannot be loaded on this system"),
            "does not find liboxwsgi_gone.so",
            &format!("apt-get install apache2 libpython{}", common::python::PYTHON_VERSION),
        ],
    );
}
