//! The Python unit tests of the `_oxwsgi` package (src/python/_oxwsgi/), in tests/python: plain
//! `unittest`, run outside Apache with a fake of the native module `_oxwsgi_native`. They run
//! with the Python the crate is built for (`PYO3_PYTHON`, set in .cargo/config.toml), and
//! without writing `__pycache__` into the source tree.

use std::path::Path;
use std::process::Command;

/// The Python the crate links against: `PYO3_PYTHON` (at run time, else as built), else
/// Debian's 3.11 (www-data cannot read the one under /root; the tests do not care, but the
/// package must work with the Python Apache runs).
fn python() -> String {
    std::env::var("PYO3_PYTHON")
        .ok()
        .or_else(|| option_env!("PYO3_PYTHON").map(str::to_string))
        .unwrap_or_else(|| "/usr/bin/python3.11".to_string())
}

#[test]
fn python_unit_tests_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(python())
        .args(["-B", "-m", "unittest", "discover", "-v", "-s", "tests/python", "-t", "tests/python"])
        .current_dir(root)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // unittest reports on stderr.
    let report = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{report}");
    assert!(out.status.success(), "Python unit tests failed (see above)");
    let ran = report.lines().find_map(|l| l.strip_prefix("Ran ")?.split(' ').next()?.parse::<u32>().ok());
    assert!(ran.is_some_and(|n| n > 0), "no Python unit test ran");
}
