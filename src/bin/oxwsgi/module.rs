//! Finding the oxwsgi module (`libmod_oxwsgi.so`), `oxwsgi module-config` and
//! `oxwsgi install-module`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::checks;
use crate::{say, warn, Fail, InstallArgs, Result};

/// The file cargo builds for the `mod_oxwsgi` cdylib.
pub const MODULE_FILE: &str = "libmod_oxwsgi.so";
/// The name `install-module` gives it in Apache's module directory.
pub const INSTALLED_FILE: &str = "mod_oxwsgi.so";
/// Debian's directory of Apache modules.
pub const DEBIAN_MODULES_DIR: &str = "/usr/lib/apache2/modules";
/// Debian's directory of a2enmod-able module configurations.
pub const MODS_AVAILABLE: &str = "/etc/apache2/mods-available";
/// The checkout this binary was built from.
const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// conf/oxwsgi.load, with the module path as it is on a Debian system.
const LOAD_TEMPLATE: &str = include_str!("../../../conf/oxwsgi.load");
/// conf/oxwsgi.conf.
const CONF_TEMPLATE: &str = include_str!("../../../conf/oxwsgi.conf");

/// The candidates, in the order they are tried: `$OXWSGI_MODULE` (an explicit choice wins), next
/// to this executable (target/<profile>/ when run from a cargo build), then the checkout's
/// target/release and target/debug.
pub fn module_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(p) = std::env::var_os("OXWSGI_MODULE").filter(|p| !p.is_empty()) {
        out.push(PathBuf::from(p));
    }
    if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        out.push(dir.join(MODULE_FILE));
    }
    let manifest = Path::new(MANIFEST_DIR);
    out.push(manifest.join("target/release").join(MODULE_FILE));
    out.push(manifest.join("target/debug").join(MODULE_FILE));
    out
}

/// The module to load, built with `cargo build --release --lib` in the checkout if none exists
/// yet (so `cargo install --path .` gives a working `oxwsgi`).
pub fn find_module() -> Result<PathBuf> {
    let candidates = module_candidates();
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return absolute(found);
    }
    let manifest = Path::new(MANIFEST_DIR);
    if manifest.join("Cargo.toml").is_file() {
        warn(&format!("the oxwsgi module is not built yet; running `cargo build --release --lib` in {MANIFEST_DIR}"));
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(["build", "--release", "--lib"])
            .current_dir(manifest)
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .map_err(|e| Fail(format!("cannot run cargo to build the oxwsgi module: {e}")))?;
        let built = manifest.join("target/release").join(MODULE_FILE);
        if status.success() && built.is_file() {
            return Ok(built);
        }
        return Err(Fail(format!(
            "building the oxwsgi module failed (cargo build --release --lib in {MANIFEST_DIR}: {status})"
        )));
    }
    let tried: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    Err(Fail(format!(
        "cannot find the oxwsgi module {MODULE_FILE} (looked at {}); build it with `cargo build --release` \
         or set OXWSGI_MODULE to its path",
        tried.join(", ")
    )))
}

fn absolute(p: &Path) -> Result<PathBuf> {
    fs::canonicalize(p).map_err(|e| Fail(format!("cannot resolve {}: {e}", p.display())))
}

/// What the dynamic linker cannot find for `module` (libraries, symbol versions), as `ldd`
/// reports it; empty when it finds everything, or when ldd is not installed.
pub fn unresolved_libraries(module: &Path) -> Vec<String> {
    let Ok(out) = Command::new("ldd").arg(module).stdin(Stdio::null()).output() else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    parse_ldd_unresolved(&text)
}

/// `libpython3.11.so.1.0` from "\tlibpython3.11.so.1.0 => not found", and `GLIBC_2.99 (libc.so.6)`
/// from "x.so: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.99' not found (required by x.so)".
fn parse_ldd_unresolved(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(lib) = line.strip_suffix("=> not found") {
            out.push(lib.trim().to_string());
        } else if let Some((head, rest)) = line.split_once(": version `") {
            let version = rest.split('\'').next().unwrap_or(rest);
            let lib = head.rsplit(": ").next().unwrap_or(head);
            let lib = lib.rsplit('/').next().unwrap_or(lib);
            out.push(format!("{version} ({lib})"));
        }
    }
    out
}

/// Fails, naming what is missing, when Apache could not load `module` on this system (a wheel
/// installed where the libpython it was built for is not, say): one clear line instead of
/// Apache's start-up failure.
pub fn check_loadable(module: &Path) -> Result<()> {
    let missing = unresolved_libraries(module);
    if missing.is_empty() {
        return Ok(());
    }
    Err(Fail(format!(
        "the oxwsgi module {} cannot be loaded on this system: the dynamic linker does not find {} \
         (oxwsgi is built for Apache {}.{} and Python {}; on Debian: apt-get install apache2 libpython{})",
        module.display(),
        missing.join(", "),
        env!("OXWSGI_AP_MAJOR"),
        env!("OXWSGI_AP_MINOR"),
        checks::PYTHON_VERSION,
        checks::PYTHON_VERSION
    )))
}

fn warn_if_unloadable(module: &Path) {
    if let Err(Fail(msg)) = check_loadable(module) {
        warn(&format!("warning: {msg}"));
    }
}

/// The virtualenv the `oxwsgi` command is installed in: the one of the Python that the wheel's
/// launcher runs in (it sets `$OXWSGI_PYTHON`, see python/oxwsgi/__init__.py), or `<venv>` for
/// an executable at `<venv>/bin/oxwsgi`. `serve` runs applications in it by default.
pub fn installed_virtualenv() -> Option<PathBuf> {
    if let Some(python) = std::env::var_os("OXWSGI_PYTHON").filter(|p| !p.is_empty()) {
        return virtualenv_of(Path::new(&python));
    }
    let exe = std::env::current_exe().ok()?;
    let venv = exe.parent()?.parent()?;
    if !venv.join("pyvenv.cfg").is_file() {
        return None;
    }
    virtualenv_of(&checks::python_in(venv)?)
}

/// The virtualenv `module-config` should name in `WSGIPythonHome`: the one oxwsgi is installed
/// in, else `$VIRTUAL_ENV`.
fn active_virtualenv() -> Option<PathBuf> {
    if let Some(venv) = installed_virtualenv() {
        return Some(venv);
    }
    let venv = PathBuf::from(std::env::var_os("VIRTUAL_ENV").filter(|v| !v.is_empty())?);
    virtualenv_of(&checks::python_in(&venv)?)
}

/// `sys.prefix` of `python` when it runs in a virtualenv (`sys.prefix != sys.base_prefix`) of
/// the Python version oxwsgi is built for (with a warning when it is another version).
fn virtualenv_of(python: &Path) -> Option<PathBuf> {
    let out = Command::new(python)
        .args([
            "-I",
            "-c",
            "import sys; print(sys.prefix); print(sys.base_prefix); print('%d.%d' % sys.version_info[:2])",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = text.lines();
    let (prefix, base, version) = (lines.next()?, lines.next()?, lines.next()?);
    if !out.status.success() || prefix == base {
        return None;
    }
    if version != checks::PYTHON_VERSION {
        warn(&format!(
            "warning: the virtualenv {prefix} is Python {version}, but oxwsgi was built for Python {}; \
             not using it as the Python home",
            checks::PYTHON_VERSION
        ));
        return None;
    }
    Some(PathBuf::from(prefix))
}

/// `oxwsgi module-config`.
pub fn module_config() -> Result<()> {
    let module = find_module()?;
    warn_if_unloadable(&module);
    say(&format!("LoadModule wsgi_module \"{}\"", module.display()));
    if let Some(venv) = active_virtualenv() {
        say(&format!("WSGIPythonHome \"{}\"", venv.display()));
    }
    Ok(())
}

/// Apache's module directory: `apxs -q LIBEXECDIR` if apxs is installed, else Debian's.
fn apache_libexecdir() -> PathBuf {
    for apxs in ["apxs", "apxs2"] {
        let out = Command::new(apxs).args(["-q", "LIBEXECDIR"]).stdin(Stdio::null()).stderr(Stdio::null()).output();
        if let Ok(out) = out {
            let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && dir.starts_with('/') {
                return PathBuf::from(dir);
            }
        }
    }
    PathBuf::from(DEBIAN_MODULES_DIR)
}

/// `dest` re-rooted under `destdir` (if any).
fn staged(destdir: Option<&Path>, dest: &Path) -> PathBuf {
    match destdir {
        Some(root) => root.join(dest.strip_prefix("/").unwrap_or(dest)),
        None => dest.to_path_buf(),
    }
}

/// The text of oxwsgi.load for a module installed at `module`.
pub fn load_file_text(module: &Path) -> String {
    LOAD_TEMPLATE.replace(&format!("{DEBIAN_MODULES_DIR}/{INSTALLED_FILE}"), &module.display().to_string())
}

fn make_dirs(dir: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| Fail(format!("cannot create {}: {}{}", dir.display(), e, root_hint(&e))))
}

fn root_hint(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        " (run as root, or stage the files with --destdir DIR)"
    } else {
        ""
    }
}

/// Writes `contents` to `dest` through a temporary file in the same directory and a rename, so
/// a running Apache that has the old file mapped never sees a half-written one.
fn write_atomically(dest: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("/"));
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.oxwsgi-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
        fs::rename(&tmp, dest)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Fail(format!("cannot write {}: {}{}", dest.display(), e, root_hint(&e)))
    })
}

/// `oxwsgi install-module`.
pub fn install_module(args: &InstallArgs) -> Result<()> {
    let source = find_module()?;
    warn_if_unloadable(&source);
    let destdir = args.destdir.as_deref();
    if let Some(d) = destdir {
        if !d.is_absolute() {
            return Err(Fail(format!("--destdir {} must be an absolute path", d.display())));
        }
    }
    let libexec = args.modules_dir.clone().unwrap_or_else(apache_libexecdir);
    if !libexec.is_absolute() {
        return Err(Fail(format!("--modules-dir {} must be an absolute path", libexec.display())));
    }
    let final_module = libexec.join(INSTALLED_FILE);
    let module_dest = staged(destdir, &final_module);
    let bytes = fs::read(&source).map_err(|e| Fail(format!("cannot read {}: {e}", source.display())))?;
    make_dirs(module_dest.parent().unwrap_or(Path::new("/")))?;
    write_atomically(&module_dest, &bytes, 0o644)?;
    say(&format!("installed {}", module_dest.display()));

    let mods_available = staged(destdir, Path::new(MODS_AVAILABLE));
    if destdir.is_none() && !mods_available.is_dir() {
        say(&format!(
            "{MODS_AVAILABLE} does not exist (not a Debian-style Apache); load the module with:\n    \
             LoadModule wsgi_module {}",
            final_module.display()
        ));
        return Ok(());
    }
    make_dirs(&mods_available)?;
    let load = mods_available.join("oxwsgi.load");
    write_atomically(&load, load_file_text(&final_module).as_bytes(), 0o644)?;
    say(&format!("wrote {}", load.display()));
    let conf = mods_available.join("oxwsgi.conf");
    if conf.exists() && !args.force {
        say(&format!("kept {} (it exists; --force replaces it)", conf.display()));
    } else {
        write_atomically(&conf, CONF_TEMPLATE.as_bytes(), 0o644)?;
        say(&format!("wrote {}", conf.display()));
    }
    if destdir.is_none() {
        say("enable it with: a2dismod wsgi (if mod_wsgi is enabled); a2enmod oxwsgi; systemctl restart apache2");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_file_names_the_final_path_and_conflicts_with_mod_wsgi() {
        let text = load_file_text(Path::new("/opt/apache/modules/mod_oxwsgi.so"));
        assert!(text.contains("LoadModule wsgi_module /opt/apache/modules/mod_oxwsgi.so\n"), "{text}");
        // a2enmod reads "# Conflicts:" only before the first non-comment line.
        let conflicts = text.lines().position(|l| l.starts_with("# Conflicts: wsgi")).unwrap();
        let first_directive = text.lines().position(|l| !l.trim().is_empty() && !l.starts_with('#')).unwrap();
        assert!(conflicts < first_directive);
    }

    #[test]
    fn ldd_reports_what_is_not_found() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibpython3.11.so.1.0 => not found\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                    /tmp/m.so: /lib/x86_64-linux-gnu/libc.so.6: version `GLIBC_2.99' not found (required by /tmp/m.so)\n";
        assert_eq!(parse_ldd_unresolved(text), ["libpython3.11.so.1.0", "GLIBC_2.99 (libc.so.6)"]);
        assert!(parse_ldd_unresolved("\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n").is_empty());
    }

    #[test]
    fn staging() {
        assert_eq!(staged(Some(Path::new("/tmp/d")), Path::new("/usr/lib/x.so")), PathBuf::from("/tmp/d/usr/lib/x.so"));
        assert_eq!(staged(None, Path::new("/usr/lib/x.so")), PathBuf::from("/usr/lib/x.so"));
    }
}
