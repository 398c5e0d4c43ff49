//! A virtualenv with Django (and bcrypt, a pyo3-built extension) for the integration tests,
//! made once per machine with the Python oxwsgi is built for (tests/common/python.rs) and
//! cached.
//!
//! Include it with `#[path = "django/venv.rs"] mod venv;`.
//!
//! Where: /var/tmp/oxwsgi-test-venv-<hash of the Python and the requirements>. Not under the
//! checkout (it may be under /root, which Apache's www-data children cannot read) and not in a
//! per-test temp dir (pip would run for every test). Made under an exclusive flock on a lock
//! file next to it, so parallel tests (threads or processes) neither race nor install twice; a
//! `.complete` marker written last tells a finished venv from one interrupted half-way, which
//! is removed and made again. Everything is world-readable.
#![allow(dead_code)]

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// The interpreter oxwsgi links against; `python3` on PATH may be unreadable to www-data.
pub const PYTHON: &str = crate::common::python::PYTHON;
/// What the venv holds. Changing this list makes a new venv (the hash changes).
pub const REQUIREMENTS: &[&str] = &["Django>=5.2,<5.3", "bcrypt>=4.1,<6"];
/// Longest a `venv` + `pip install` may take before the test gives up.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// The cached venv's directory, made if needed. Panics (with pip's output) if it cannot be made.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(|| make_venv(REQUIREMENTS).unwrap_or_else(|e| panic!("cannot make the test virtualenv: {e}")))
}

/// mod_wsgi 6.x from PyPI (it builds against this machine's apache2-dev), for the tests that
/// run mod_wsgi-express's generated configurations.
pub const MOD_WSGI_REQUIREMENTS: &[&str] = &["mod_wsgi>=6,<7"];

/// A cached venv holding `requirements` (same rules as [`venv`]); Err with pip's output.
pub fn venv_with(requirements: &[&str]) -> Result<PathBuf, String> {
    make_venv(requirements)
}

/// A cached venv holding `requirements`, or None (with the reason printed) when pip cannot
/// reach PyPI; panics on any other failure.
pub fn venv_or_skip(requirements: &[&str]) -> Option<PathBuf> {
    match venv_with(requirements) {
        Ok(v) => Some(v),
        Err(e)
            if [
                "Failed to establish a new connection",
                "Temporary failure in name resolution",
                "No matching distribution",
                "Network is unreachable",
            ]
            .iter()
            .any(|n| e.contains(n)) =>
        {
            eprintln!("SKIPPED: pip cannot reach PyPI to install {requirements:?}: {}", e.lines().last().unwrap_or(""));
            None
        }
        Err(e) => panic!("cannot install {requirements:?} from PyPI: {e}"),
    }
}

/// `<venv>/bin/python`.
pub fn venv_python() -> PathBuf {
    venv().join("bin/python")
}

/// `<venv>/lib/python3.N/site-packages`.
pub fn site_packages() -> PathBuf {
    crate::common::python::site_packages(venv())
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn venv_path(requirements: &[&str]) -> PathBuf {
    let key = format!("v1\n{PYTHON}\n{}", requirements.join("\n"));
    PathBuf::from(format!("/var/tmp/oxwsgi-test-venv-{:016x}", fnv1a(key.as_bytes())))
}

fn make_venv(requirements: &[&str]) -> Result<PathBuf, String> {
    let dir = venv_path(requirements);
    let marker = dir.join(".complete");
    if marker.is_file() {
        return Ok(dir);
    }
    let lock_path = dir.with_extension("lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    // Blocks while another test process builds it; released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!("flock {}: {}", lock_path.display(), io::Error::last_os_error()));
    }
    if marker.is_file() {
        return Ok(dir);
    }
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| format!("removing half-made {}: {e}", dir.display()))?;
    }
    let started = Instant::now();
    run(Command::new(PYTHON).arg("-m").arg("venv").arg(&dir))?;
    let mut pip = Command::new(dir.join("bin/python"));
    pip.args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet"]).args(requirements);
    run(&mut pip)?;
    make_world_readable(&dir).map_err(|e| format!("chmod {}: {e}", dir.display()))?;
    fs::write(&marker, format!("made in {:?}\n", started.elapsed())).map_err(|e| e.to_string())?;
    fs::set_permissions(&marker, fs::Permissions::from_mode(0o644)).map_err(|e| e.to_string())?;
    eprintln!("test virtualenv {} made in {:?}", dir.display(), started.elapsed());
    Ok(dir)
}

/// Runs a command to completion (bounded by INSTALL_TIMEOUT); its output goes into the error.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    run_with_timeout(cmd, INSTALL_TIMEOUT)
}

pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<String, String> {
    let what = format!("{cmd:?}");
    let out_path =
        std::env::temp_dir().join(format!("oxwsgi-venv-cmd-{}-{:?}.log", std::process::id(), thread::current().id()));
    let out = fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill(); // our own child, by pid
                let _ = child.wait();
                let output = fs::read_to_string(&out_path).unwrap_or_default();
                let _ = fs::remove_file(&out_path);
                return Err(format!("{what} took longer than {timeout:?}\n{output}"));
            }
            None => thread::sleep(Duration::from_millis(50)),
        }
    };
    let output = fs::read_to_string(&out_path).unwrap_or_default();
    let _ = fs::remove_file(&out_path);
    if status.success() {
        Ok(output)
    } else {
        Err(format!("{what} failed ({status})\n{output}"))
    }
}

/// chmod a+rX, recursively (symlinks left alone).
pub fn make_world_readable(path: &Path) -> io::Result<()> {
    let md = fs::symlink_metadata(path)?;
    if md.file_type().is_symlink() {
        return Ok(());
    }
    let mode = md.permissions().mode();
    let want = if md.is_dir() || mode & 0o111 != 0 { mode | 0o555 } else { mode | 0o444 };
    if want != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(want))?;
    }
    if md.is_dir() {
        for entry in fs::read_dir(path)? {
            make_world_readable(&entry?.path())?;
        }
    }
    Ok(())
}

/// Copies the directory tree `src` into `dst` (created), world-readable.
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<()> {
    fs::create_dir_all(dst)?;
    fs::set_permissions(dst, fs::Permissions::from_mode(0o755))?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let to = dst.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            if entry.file_name() == "__pycache__" {
                continue;
            }
            copy_tree(&entry.path(), &to)?;
        } else {
            fs::copy(entry.path(), &to)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(0o644))?;
        }
    }
    Ok(())
}

/// A temporary directory under /tmp that Apache's www-data children can reach; removed on drop
/// (kept when the test panics, for inspection).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let p =
            PathBuf::from(format!("/tmp/oxwsgi-{label}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        if p.exists() {
            let _ = fs::remove_dir_all(&p);
        }
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("keeping {} for inspection", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// chown to www-data (uid/gid 33 on Debian), for files Apache's children must write.
pub fn chown_www_data(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let (uid, gid) = www_data_ids();
    let rc = unsafe { libc::chown(c.as_ptr(), uid, gid) };
    assert_eq!(rc, 0, "chown {}: {}", path.display(), io::Error::last_os_error());
}

fn www_data_ids() -> (libc::uid_t, libc::gid_t) {
    let name = std::ffi::CString::new("www-data").unwrap();
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(!pw.is_null(), "no www-data user");
    unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
}
