//! What a `WSGIPythonHome` / `python-home` must be to start the Python oxwsgi links against.

/// `WSGIPythonHome` / `python-home` must name a Python this module can start: a virtualenv
/// (with `pyvenv.cfg`) made from a Python of the version oxwsgi was built with, or a prefix
/// holding that version's standard library. Checked while the configuration is read, so a wrong
/// path is a start-up error (`apache2 -t` fails with it) instead of a child that cannot start
/// Python.
pub fn check_python_home(home: &str) -> Result<(), String> {
    use std::path::Path;
    let path = Path::new(home);
    if !path.is_absolute() {
        return Err(format!("'{home}' is not an absolute path"));
    }
    if !path.is_dir() {
        return Err(format!("'{home}' does not exist or is not a directory"));
    }
    let stdlib = format!("lib/python{PYTHON_VERSION}");
    let has_stdlib = |prefix: &Path| {
        prefix.join(&stdlib).join("os.py").is_file() && prefix.join(&stdlib).join("encodings/__init__.py").is_file()
    };
    let cfg_path = path.join("pyvenv.cfg");
    if cfg_path.is_file() {
        let cfg =
            std::fs::read_to_string(&cfg_path).map_err(|e| format!("cannot read '{}': {e}", cfg_path.display()))?;
        let venv = parse_pyvenv_cfg(&cfg);
        let version = venv.version.as_deref().unwrap_or("");
        let version_ok = version == PYTHON_VERSION || version.starts_with(&format!("{PYTHON_VERSION}."));
        if !version_ok || !path.join(&stdlib).is_dir() {
            let made_with = if version.is_empty() { String::new() } else { format!(" (made with Python {version})") };
            return Err(format!(
                "'{home}' is a virtualenv for another Python version{made_with}; oxwsgi was built for Python {PYTHON_VERSION}"
            ));
        }
        // The base installation the venv was made from provides the standard library.
        if let Some(base) = venv.home.as_deref() {
            let base = Path::new(base);
            if !base.is_dir() || !base.ancestors().any(has_stdlib) {
                return Err(format!(
                    "'{home}' is a virtualenv whose base Python (home = {} in pyvenv.cfg) has no Python {PYTHON_VERSION} \
                     standard library",
                    base.display()
                ));
            }
        }
        return Ok(());
    }
    if !has_stdlib(path) {
        return Err(format!(
            "'{home}' is not a Python {PYTHON_VERSION} installation or virtualenv (no {stdlib}/os.py, no pyvenv.cfg)"
        ));
    }
    Ok(())
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
        std::fs::create_dir_all(tmp.join("lib/python3.11")).unwrap();
        let home = tmp.to_str().unwrap();
        assert!(check_python_home(home).unwrap_err().contains("is not a Python 3.11 installation"));
        std::fs::write(tmp.join("pyvenv.cfg"), "home = /nonexistent/bin\nversion = 3.9.1\n").unwrap();
        let e = check_python_home(home).unwrap_err();
        assert!(e.contains("another Python version (made with Python 3.9.1)"), "{e}");
        std::fs::write(tmp.join("pyvenv.cfg"), "home = /nonexistent/bin\nversion = 3.11.2\n").unwrap();
        let e = check_python_home(home).unwrap_err();
        assert!(e.contains("base Python (home = /nonexistent/bin"), "{e}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}

/// The Python version oxwsgi links against (major.minor).
pub const PYTHON_VERSION: &str = "3.11";
