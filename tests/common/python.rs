//! The Python the crate was built for (chosen at build time, `make build PYTHON=...`; build.rs
//! records it): tests make their virtualenvs with it and find its files by its version.

use std::path::{Path, PathBuf};

/// Its executable, the versioned binary (e.g. `/usr/bin/python3.11`): readable by www-data,
/// unlike a `python3` on PATH that may live under /root.
pub const PYTHON: &str = env!("OXWSGI_BUILD_PYTHON");

/// Its major.minor version, e.g. "3.11".
pub const PYTHON_VERSION: &str = env!("OXWSGI_BUILD_PYTHON_VERSION");

/// `lib/python3.N`, relative to a prefix or virtualenv.
pub fn lib_dir() -> String {
    format!("lib/python{PYTHON_VERSION}")
}

/// `<prefix>/lib/python3.N/site-packages`.
pub fn site_packages(prefix: impl AsRef<Path>) -> PathBuf {
    prefix.as_ref().join(lib_dir()).join("site-packages")
}

/// The system's standard library, e.g. `/usr/lib/python3.11`.
pub fn system_stdlib() -> PathBuf {
    Path::new("/usr").join(lib_dir())
}

/// The CPython tag of wheels and extension modules for it, e.g. "cp311".
pub fn cp_tag() -> String {
    format!("cp{}", PYTHON_VERSION.replace('.', ""))
}
