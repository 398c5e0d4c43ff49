//! What `serve` checks before Apache starts, so that a user's mistake is one clear line instead
//! of an Apache error log: the Python home, the application (imported in a child Python, as the
//! user Apache will run it as), file permissions, the port.

use std::io::{ErrorKind, Read};
use std::net::{TcpListener, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::identity;
use crate::{Fail, Result};

use crate::python_home::HomeError;
/// The Python oxwsgi is built for, its version, and where a home keeps its executable: the
/// rules the module's `WSGIPythonHome` check uses (src/config/python_home.rs).
pub use crate::python_home::{python_in, BUILD_PYTHON, PYTHON_VERSION};

/// How long importing the application in the check child may take.
pub const IMPORT_TIMEOUT: Duration = Duration::from_secs(120);

/// The user and group Apache's children (and the daemon processes) run as.
#[derive(Debug, Clone)]
pub struct RunAs {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    /// Every group the user is in (primary, the configured group, supplementary).
    pub groups: Vec<u32>,
    /// False when oxwsgi itself is not root: Apache then cannot switch users and runs
    /// everything as the current user.
    pub switch: bool,
}

impl RunAs {
    pub fn resolve(user: &str, group: &str) -> Result<RunAs> {
        if user.contains('\0') {
            return Err(Fail(format!("bad user name '{user}'")));
        }
        if group.contains('\0') {
            return Err(Fail(format!("bad group name '{group}'")));
        }
        let identity::User { uid, gid: user_gid } =
            identity::user(user).ok_or_else(|| Fail(format!("no such user '{user}' (--user)")))?;
        let gid = identity::group(group).ok_or_else(|| Fail(format!("no such group '{group}' (--group)")))?;
        let is_root = unsafe { libc::geteuid() } == 0;
        if is_root && (uid == 0 || gid == 0) {
            return Err(Fail("Apache refuses to run its children as root: choose another --user/--group".to_string()));
        }
        let mut groups = vec![gid, user_gid];
        groups.extend(identity::group_list(user, user_gid));
        Ok(RunAs { user: user.to_string(), uid, gid, groups, switch: is_root })
    }

    /// Runs `cmd` as this user (when oxwsgi is root).
    pub fn apply(&self, cmd: &mut Command) {
        if self.switch {
            cmd.uid(self.uid).gid(self.gid);
        }
    }
}

/// The first path component that keeps `who` from reading `path` (searching every directory on
/// the way, reading the file or listing the directory), or None if it can read it. Checks mode
/// bits only (no ACLs), which is what a default Debian system uses.
pub fn unreadable_part(path: &Path, who: &RunAs) -> Option<PathBuf> {
    if !who.switch || who.uid == 0 {
        return None;
    }
    let allows = |meta: &std::fs::Metadata, bits: u32| {
        let mode = meta.mode();
        let granted = if meta.uid() == who.uid {
            (mode >> 6) & 7
        } else if who.groups.contains(&meta.gid()) {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        granted & bits == bits
    };
    let mut current = PathBuf::new();
    let components: Vec<Component> = path.components().collect();
    for (i, c) in components.iter().enumerate() {
        current.push(c);
        let Ok(meta) = std::fs::metadata(&current) else { return Some(current) };
        let last = i + 1 == components.len();
        let need = match (last, meta.is_dir()) {
            (false, _) => 1,    // search
            (true, true) => 5,  // list and search
            (true, false) => 4, // read
        };
        if !allows(&meta, need) {
            return Some(current);
        }
    }
    None
}

/// Fails unless `who` can read `path`; `what` names it for the message.
pub fn require_readable(path: &Path, what: &str, who: &RunAs) -> Result<()> {
    match unreadable_part(path, who) {
        None => Ok(()),
        Some(blocker) => Err(Fail(format!(
            "{what} {} is not readable by user {} (Apache runs the application as {}; {} blocks it): \
             move it somewhere {} can read, such as /srv or /var/www, or fix the permissions",
            path.display(),
            who.user,
            who.user,
            blocker.display(),
            who.user
        ))),
    }
}

/// Validates `--python-home` the way the module's `WSGIPythonHome` check will, and returns its
/// Python executable (which runs the application's check before Apache starts).
pub fn check_python_home(home: &Path) -> Result<PathBuf> {
    let shown = home.display();
    let verdict = crate::python_home::check(home);
    if verdict == Err(HomeError::NotADirectory) {
        return Err(Fail(format!("--python-home {shown}: no such directory")));
    }
    let Some(python) = python_in(home) else {
        return Err(Fail(format!(
            "--python-home {shown} is not a Python installation or virtualenv (no bin/python in it)"
        )));
    };
    match verdict {
        Ok(()) => Ok(python),
        // Say which version it is when that is the reason.
        Err(HomeError::NotPython | HomeError::OtherVersion { .. })
            if python_version(&python).is_some_and(|v| v != PYTHON_VERSION) =>
        {
            let version = python_version(&python).unwrap_or_default();
            Err(Fail(format!(
                "--python-home {shown} is Python {version}, but oxwsgi was built for Python {PYTHON_VERSION}; \
                 use a Python {PYTHON_VERSION} installation or a virtualenv made with {BUILD_PYTHON} -m venv"
            )))
        }
        Err(e) => Err(Fail(format!("--python-home {shown} {e}"))),
    }
}

fn python_version(python: &Path) -> Option<String> {
    let out = Command::new(python)
        .args(["-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// What the check child is asked to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppTarget {
    /// A WSGI script file, executed like the module does it; the callable is looked up in it.
    Script { path: PathBuf, callable: String },
    /// `module:attr.path`, imported with importlib.
    Module { module: String, attr: String },
}

/// Runs in the check child: `python -I -c CHECK_PY KIND TARGET CALLABLE VERSION [PATH...]`.
/// Prints exactly one result line on the original stdout: `ok` or `fail <message>`. The
/// application's own output goes to stderr (fd 1 is redirected), and is discarded.
const CHECK_PY: &str = r#"
import os, sys, types
_out = os.fdopen(os.dup(1), 'w')
os.dup2(2, 1)
sys.stdout = sys.stderr
kind, target, attr, want = sys.argv[1:5]
for p in reversed(sys.argv[5:]):
    sys.path.insert(0, p)

def done(line):
    _out.write(line.replace('\n', ' ') + '\n')
    _out.flush()
    os._exit(0)

def where(exc, preferred):
    import traceback
    frames = traceback.extract_tb(exc.__traceback__)
    for f in reversed(frames):
        if f.filename == preferred:
            return ' (%s, line %s)' % (f.filename, f.lineno)
    for f in reversed(frames):
        if not f.filename.startswith('<') and '/lib/python' not in f.filename:
            return ' (%s, line %s)' % (f.filename, f.lineno)
    return ''

def describe(exc):
    text = str(exc).strip().splitlines()
    return type(exc).__name__ + (': ' + text[0] if text else '')

have = '%d.%d' % sys.version_info[:2]
if have != want:
    done('fail version %s' % have)

m = types.ModuleType('mod_wsgi')
m.version = (4, 9, 4)
m.process_group = ''
m.application_group = ''
m.oxwsgi = True
sys.modules['mod_wsgi'] = m

if kind == 'script':
    try:
        with open(target, 'rb') as f:
            source = f.read()
    except OSError as e:
        done('fail cannot read %s: %s' % (target, e.strerror))
    try:
        code = compile(source, target, 'exec', dont_inherit=True)
    except SyntaxError as e:
        done('fail %s has a syntax error on line %s: %s' % (target, e.lineno, e.msg))
    module = types.ModuleType('_oxwsgi_check')
    module.__file__ = target
    try:
        exec(code, module.__dict__)
    except SystemExit as e:
        done('fail %s called sys.exit(%s) while loading' % (target, e.code))
    except BaseException as e:
        done('fail %s raised %s while loading%s' % (target, describe(e), where(e, target)))
    app = module.__dict__.get(attr)
    if app is None:
        done('fail %s has no callable named %r (the WSGI entry point; name another with --callable-object NAME)' % (target, attr))
    if not callable(app):
        done('fail %r in %s is not callable (it is a %s)' % (attr, target, type(app).__name__))
    done('ok')
else:
    import importlib
    try:
        obj = importlib.import_module(target)
    except ModuleNotFoundError as e:
        if e.name and (target == e.name or target.startswith(e.name + '.')):
            done('fail no module named %r on the Python path (%s); add its directory with --python-path' % (target, ':'.join(sys.path[:len(sys.argv) - 5] or ['(none)'])))
        done('fail importing %s raised %s%s' % (target, describe(e), where(e, None)))
    except SystemExit as e:
        done('fail importing %s called sys.exit(%s)' % (target, e.code))
    except BaseException as e:
        done('fail importing %s raised %s%s' % (target, describe(e), where(e, None)))
    for part in attr.split('.'):
        if not hasattr(obj, part):
            done('fail module %s has no attribute %r (the WSGI callable in %s:%s)' % (target, attr, target, attr))
        obj = getattr(obj, part)
    if not callable(obj):
        done('fail %s:%s is not callable (it is a %s)' % (target, attr, type(obj).__name__))
    done('ok')
"#;

/// Loads the application in a child Python exactly as Apache will see it (same interpreter
/// prefix, same sys.path, same user), and reports why it cannot be served.
pub fn check_app(python: &Path, target: &AppTarget, python_path: &[PathBuf], cwd: &Path, who: &RunAs) -> Result<()> {
    let mut cmd = Command::new(python);
    cmd.arg("-I").arg("-c").arg(CHECK_PY);
    match target {
        AppTarget::Script { path, callable } => cmd.arg("script").arg(path).arg(callable),
        AppTarget::Module { module, attr } => cmd.arg("module").arg(module).arg(attr),
    };
    cmd.arg(PYTHON_VERSION).args(python_path);
    cmd.current_dir(cwd)
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONPATH")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    who.apply(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == ErrorKind::PermissionDenied && who.switch {
            Fail(format!("cannot run {} as user {}: {e}", python.display(), who.user))
        } else {
            Fail(format!("cannot run {}: {e}", python.display()))
        }
    })?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + IMPORT_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Fail(format!(
                    "loading the application took longer than {} s (checked in {} before starting Apache)",
                    IMPORT_TIMEOUT.as_secs(),
                    python.display()
                )));
            }
        }
    };
    let text = reader.join().unwrap_or_default();
    let line = text.lines().last().unwrap_or("").trim();
    if line == "ok" {
        return Ok(());
    }
    if let Some(have) = line.strip_prefix("fail version ") {
        return Err(Fail(format!(
            "{} is Python {have}, but oxwsgi was built for Python {PYTHON_VERSION}",
            python.display()
        )));
    }
    if let Some(msg) = line.strip_prefix("fail ") {
        return Err(Fail(format!("cannot serve the application: {msg}")));
    }
    Err(Fail(format!(
        "checking the application with {} failed ({status}); run it by hand to see why",
        python.display()
    )))
}

/// Fails if nothing can listen on host:port now (in use, not a local address, not allowed).
pub fn check_port(host: &str, port: u16) -> Result<()> {
    let addrs: Vec<_> =
        (host, port).to_socket_addrs().map_err(|e| Fail(format!("cannot resolve --host {host}: {e}")))?.collect();
    if addrs.is_empty() {
        return Err(Fail(format!("--host {host} resolves to no address")));
    }
    for addr in addrs {
        if let Err(e) = TcpListener::bind(addr) {
            return Err(Fail(match e.kind() {
                ErrorKind::AddrInUse => {
                    format!("port {port} on {host} is already in use; choose another with --port")
                }
                ErrorKind::AddrNotAvailable => format!("cannot listen on {host}: not an address of this machine"),
                ErrorKind::PermissionDenied => {
                    format!("not allowed to listen on port {port} (ports below 1024 need root)")
                }
                _ => format!("cannot listen on {host}:{port}: {e}"),
            }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn www() -> RunAs {
        RunAs { user: "nobody".into(), uid: 65534, gid: 65534, groups: vec![65534], switch: true }
    }

    #[test]
    fn root_only_dirs_are_unreadable() {
        let dir = std::env::temp_dir().join(format!("oxwsgi-check-{}", std::process::id()));
        let inner = dir.join("inner");
        std::fs::create_dir_all(&inner).unwrap();
        let file = inner.join("app.wsgi");
        std::fs::write(&file, "x").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let owner_is_other = std::fs::metadata(&inner).unwrap().uid() != 65534;
        if owner_is_other {
            assert_eq!(unreadable_part(&file, &www()), Some(inner.clone()));
            std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o711)).unwrap();
            assert_eq!(unreadable_part(&file, &www()), None);
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
            assert_eq!(unreadable_part(&file, &www()), Some(file.clone()));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
