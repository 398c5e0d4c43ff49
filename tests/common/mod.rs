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
