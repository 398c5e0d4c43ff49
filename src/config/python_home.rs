//! What a `WSGIPythonHome` / `python-home` / `oxwsgi serve --python-home` must be to start the
//! Python oxwsgi links against: the rules, in one place for the Apache module (while it reads
//! its configuration) and the `oxwsgi` command (which includes this file as its own module, so
//! it must stay free of the crate's other modules).

use std::fmt;
use std::path::{Path, PathBuf};

/// The Python oxwsgi is built for, as build.rs found it: its executable (the versioned binary,
/// e.g. `/usr/bin/python3.11`), chosen once at build time (`make build PYTHON=...`).
pub const BUILD_PYTHON: &str = env!("OXWSGI_BUILD_PYTHON");

/// Its major.minor version, e.g. "3.11": a Python home or virtualenv must be this version.
pub const PYTHON_VERSION: &str = env!("OXWSGI_BUILD_PYTHON_VERSION");

/// Why a directory is no Python home for oxwsgi. Displayed as what follows the home's name:
/// "'/srv/venv' {error}".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomeError {
    NotAbsolute,
    NotADirectory,
    /// It has a `pyvenv.cfg` that cannot be read.
    UnreadableCfg {
        error: String,
    },
    /// Neither a virtualenv nor a prefix with the standard library.
    NotPython,
    /// A virtualenv of another version (`made_with`: the version its `pyvenv.cfg` names).
    OtherVersion {
        made_with: Option<String>,
    },
    /// A virtualenv whose base installation (`home` in `pyvenv.cfg`) has no standard library.
    NoBaseStdlib {
        base: String,
    },
}

impl fmt::Display for HomeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = PYTHON_VERSION;
        match self {
            HomeError::NotAbsolute => write!(f, "is not an absolute path"),
            HomeError::NotADirectory => write!(f, "does not exist or is not a directory"),
            HomeError::UnreadableCfg { error } => write!(f, "has a pyvenv.cfg that cannot be read: {error}"),
            HomeError::NotPython => {
                write!(f, "is not a Python {v} installation or virtualenv (no {}/os.py, no pyvenv.cfg)", stdlib_dir())
            }
            HomeError::OtherVersion { made_with } => {
                let made_with = made_with.as_ref().map(|m| format!(" (made with Python {m})")).unwrap_or_default();
                write!(
                    f,
                    "is a virtualenv for another Python version{made_with}; oxwsgi was built for Python {v} \
                     (make one with {BUILD_PYTHON} -m venv)"
                )
            }
            HomeError::NoBaseStdlib { base } => write!(
                f,
                "is a virtualenv whose base Python (home = {base} in pyvenv.cfg) has no Python {v} standard library"
            ),
        }
    }
}

/// `lib/python3.N`: where a prefix or virtualenv of the built-for version keeps its library.
pub fn stdlib_dir() -> String {
    format!("lib/python{PYTHON_VERSION}")
}

/// A Python home must name a Python this module can start: a virtualenv (with `pyvenv.cfg`)
/// made from a Python of the version oxwsgi was built with, or a prefix holding that version's
/// standard library. The module checks it while the configuration is read, so a wrong path is
/// a start-up error (`apache2 -t` fails with it) instead of a child that cannot start Python;
/// `oxwsgi serve` checks the same before it starts Apache.
pub fn check(home: &Path) -> Result<(), HomeError> {
    if !home.is_absolute() {
        return Err(HomeError::NotAbsolute);
    }
    if !home.is_dir() {
        return Err(HomeError::NotADirectory);
    }
    let stdlib = stdlib_dir();
    let has_stdlib = |prefix: &Path| {
        prefix.join(&stdlib).join("os.py").is_file() && prefix.join(&stdlib).join("encodings/__init__.py").is_file()
    };
    let cfg_path = home.join("pyvenv.cfg");
    if !cfg_path.is_file() {
        return if has_stdlib(home) { Ok(()) } else { Err(HomeError::NotPython) };
    }
    let cfg = std::fs::read_to_string(&cfg_path).map_err(|e| HomeError::UnreadableCfg { error: e.to_string() })?;
    let venv = parse_pyvenv_cfg(&cfg);
    let version = venv.version.as_deref().unwrap_or("");
    let version_ok = version == PYTHON_VERSION || version.starts_with(&format!("{PYTHON_VERSION}."));
    if !version_ok || !home.join(&stdlib).is_dir() {
        return Err(HomeError::OtherVersion { made_with: venv.version.filter(|v| !v.is_empty()) });
    }
    // The base installation the venv was made from provides the standard library.
    if let Some(base) = venv.home.as_deref() {
        let base_path = Path::new(base);
        if !base_path.is_dir() || !base_path.ancestors().any(has_stdlib) {
            return Err(HomeError::NoBaseStdlib { base: base.to_string() });
        }
    }
    Ok(())
}

/// `check` with the home named in front of the reason, as the module's directives report it.
pub fn check_python_home(home: &str) -> Result<(), String> {
    check(Path::new(home)).map_err(|e| format!("'{home}' {e}"))
}

/// The Python executable of a prefix or virtualenv: bin/python, bin/python3 or bin/python3.N.
pub fn python_in(home: &Path) -> Option<PathBuf> {
    ["python", "python3", &format!("python{PYTHON_VERSION}")]
        .iter()
        .map(|name| home.join("bin").join(name))
        .find(|p| p.is_file())
}

/// The keys of a virtualenv's `pyvenv.cfg` that matter here.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PyvenvCfg {
    /// `home`: the directory of the Python the venv was made from.
    pub home: Option<String>,
    /// `version` (or `version_info`): that Python's version, e.g. "3.11.2".
    pub version: Option<String>,
}

/// Parses `pyvenv.cfg` the way CPython's getpath does: `key = value` lines, keys compared
/// case-insensitively, anything else ignored.
pub fn parse_pyvenv_cfg(text: &str) -> PyvenvCfg {
    let mut cfg = PyvenvCfg::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else { continue };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim().to_string());
        match key.as_str() {
            "home" => cfg.home = Some(value),
            "version" => cfg.version = Some(value),
            "version_info" if cfg.version.is_none() => {
                cfg.version = Some(value.split('.').take(3).collect::<Vec<_>>().join("."))
            }
            _ => {}
        }
    }
    cfg
}

#[cfg(test)]
mod python_home_tests {
    use super::*;

    #[test]
    fn pyvenv_cfg() {
        let cfg = parse_pyvenv_cfg(
            "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n\
             executable = /usr/bin/python3.11\ncommand = /usr/bin/python3.11 -m venv /v\n",
        );
        assert_eq!(cfg, PyvenvCfg { home: Some("/usr/bin".into()), version: Some("3.11.2".into()) });
        let cfg = parse_pyvenv_cfg("Home=/opt/py/bin\nversion_info = 3.12.1.final.0\nnot a line\n");
        assert_eq!(cfg, PyvenvCfg { home: Some("/opt/py/bin".into()), version: Some("3.12.1".into()) });
        assert_eq!(parse_pyvenv_cfg(""), PyvenvCfg::default());
    }

    #[test]
    fn homes() {
        assert!(check_python_home("relative/path").unwrap_err().contains("not an absolute path"));
        assert!(check_python_home("/nonexistent/oxwsgi-home").unwrap_err().contains("does not exist"));
        let tmp = std::env::temp_dir().join(format!("oxwsgi-home-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join(stdlib_dir())).unwrap();
        let home = tmp.to_str().unwrap();
        let e = check_python_home(home).unwrap_err();
        assert!(e.contains(&format!("is not a Python {PYTHON_VERSION} installation")), "{e}");
        std::fs::write(tmp.join("pyvenv.cfg"), "home = /nonexistent/bin\nversion = 3.9.1\n").unwrap();
        let e = check_python_home(home).unwrap_err();
        assert!(e.contains("another Python version (made with Python 3.9.1)"), "{e}");
        std::fs::write(tmp.join("pyvenv.cfg"), format!("home = /nonexistent/bin\nversion = {PYTHON_VERSION}.2\n"))
            .unwrap();
        let e = check_python_home(home).unwrap_err();
        assert!(e.contains("base Python (home = /nonexistent/bin"), "{e}");
        // A prefix with the standard library's landmarks, and a virtualenv made from it.
        let prefix = tmp.join("prefix");
        std::fs::create_dir_all(prefix.join(stdlib_dir()).join("encodings")).unwrap();
        std::fs::write(prefix.join(stdlib_dir()).join("os.py"), "").unwrap();
        std::fs::write(prefix.join(stdlib_dir()).join("encodings/__init__.py"), "").unwrap();
        assert_eq!(check(&prefix), Ok(()));
        std::fs::create_dir_all(prefix.join("bin")).unwrap();
        let cfg = format!("home = {}\nversion = {PYTHON_VERSION}.0\n", prefix.join("bin").display());
        std::fs::write(tmp.join("pyvenv.cfg"), cfg).unwrap();
        assert_eq!(check(&tmp), Ok(()));
        assert_eq!(python_in(&tmp), None);
        std::fs::create_dir_all(tmp.join("bin")).unwrap();
        std::fs::write(tmp.join("bin/python3"), "").unwrap();
        assert_eq!(python_in(&tmp), Some(tmp.join("bin/python3")));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
