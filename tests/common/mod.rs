//! Integration-test harness shared by every test file (`mod common;`): starts a real Apache
//! httpd 2.4 with a generated configuration, talks HTTP to it over loopback, and stops what it
//! started.
//!
//! ```ignore
//! mod common;
//! use common::{Apache, Mpm};
//!
//! let apache = Apache::builder()
//!     .mpm(Mpm::Event)
//!     .app("hello.wsgi", "def application(environ, start_response): ...")
//!     .config("WSGIScriptAlias /hello {APPS}/hello.wsgi")
//!     .start();
//! let r = apache.get("/hello");
//! assert_eq!(r.status, 200);
//! ```
#![allow(dead_code, unused_imports)]

pub mod apache;
pub mod cli;
pub mod http;
pub mod procs;
pub mod python;

pub use apache::{
    default_module_path, oxwsgi_module, Apache, ApacheBuilder, Mpm, StopReport, DEBIAN_MOD_WSGI, MODULES_DIR,
    READY_MARKER,
};
pub use http::{build_request, Client, Response, DEFAULT_TIMEOUT};
pub use procs::{alive_pids, descendants, process_alive};

use std::time::{Duration, Instant};

/// Poll `f` (bounded) until it returns true.
#[allow(dead_code)]
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A self-signed certificate for `cn` made with `openssl req` in `dir`: (certificate, key).
pub fn self_signed_certificate(dir: &std::path::Path, cn: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (crt, key) = (dir.join("site.crt"), dir.join("site.key"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &format!("/CN={cn}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    (crt, key)
}
