//! Shared pieces of the daemon-mode integration tests (tests/daemon_*.rs): the test application
//! (app.py, dispatched on PATH_INFO), readers for what it reports, /proc helpers and a
//! configuration test (`apache2 -t`) on a hand-written config.
//!
//! Include with `mod common;` and `#[path = "apps/daemon/mod.rs"] mod daemon_apps;`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::common::{self, Apache, Response};

/// The daemon-mode test application (see app.py for its routes).
pub const APP: &str = include_str!("app.py");

/// The `key=value` lines of /facts, parsed.
#[track_caller]
pub fn facts(r: &Response) -> BTreeMap<String, String> {
    r.assert_status(200);
    let out: BTreeMap<String, String> =
        r.text().lines().filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect();
    assert!(out.contains_key("pid"), "not a /facts report:\n{}", r.text());
    out
}

/// The pid that served a /facts request.
#[track_caller]
pub fn pid_of(r: &Response) -> u32 {
    facts(r)["pid"].parse().expect("pid is a number")
}

/// GET `<mount>/facts` and return the serving process's pid.
#[track_caller]
pub fn daemon_pid(apache: &Apache, mount: &str) -> u32 {
    pid_of(&apache.get(&format!("{mount}/facts")))
}

/// The `key<TAB>value` lines of /dump.
#[track_caller]
pub fn dump(r: &Response) -> BTreeMap<String, String> {
    r.assert_status(200);
    r.text().lines().filter_map(|l| l.split_once('\t').map(|(k, v)| (k.to_string(), v.to_string()))).collect()
}

pub use crate::common::eventually;

/// /proc/<pid>/cmdline with NULs shown as spaces, trailing ones trimmed ("" if gone).
pub fn cmdline(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw).replace('\0', " ").trim_end().to_string()
}

/// Real uid of a process (from /proc/<pid>/status).
pub fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Live descendants of Apache whose command line is the given daemon title.
pub fn titled(apache: &Apache, title: &str) -> Vec<u32> {
    let mut v: Vec<u32> = apache.child_pids().into_iter().filter(|&p| cmdline(p) == title).collect();
    v.sort();
    v
}

/// Wait (bounded) until `n` live processes carry `title`; returns them.
pub fn wait_titled(apache: &Apache, title: &str, n: usize) -> Vec<u32> {
    let mut found = Vec::new();
    eventually(Duration::from_secs(10), || {
        found = titled(apache, title);
        found.len() >= n
    });
    found
}

/// Pids of every daemon process Apache's parent logged as started ("started daemon process N of
/// group 'G' (pid P)"), of `group` or of any group (`None`), in order.
pub fn started_daemons(apache: &Apache, group: Option<&str>) -> Vec<u32> {
    apache
        .error_log()
        .lines()
        .filter(|l| l.contains("oxwsgi: started daemon process "))
        .filter(|l| group.map_or(true, |g| l.contains(&format!("of group '{g}' "))))
        .filter_map(|l| l.rsplit("(pid ").next()?.trim_end().trim_end_matches(')').parse().ok())
        .collect()
}

/// Apache's own children (MPM processes): live descendants that are not daemon processes.
pub fn apache_children(apache: &Apache) -> Vec<u32> {
    let daemons = started_daemons(apache, None);
    apache.child_pids().into_iter().filter(|p| !daemons.contains(p)).collect()
}

/// The `pid=%P` field (the Apache child that served it) of access-log lines for `path`.
pub fn access_log_pids(apache: &Apache, path: &str) -> Vec<u32> {
    let needle = format!("\"GET {path} HTTP/1.1\"");
    apache
        .access_log()
        .lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("pid=")).and_then(|p| p.parse().ok()))
        .collect()
}

/// Deterministic pseudo-random bytes (every byte value occurs).
pub fn payload(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(12345) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

/// Result of `apache2 -t` on a configuration.
#[derive(Debug)]
pub struct ConfigTest {
    pub ok: bool,
    /// stdout + stderr.
    pub output: String,
    /// The configuration file tested.
    pub path: String,
    /// Line of the first line of `snippet` in that file.
    pub snippet_line: usize,
}

/// Runs `apache2 -t` on a minimal configuration that loads the oxwsgi module, followed by
/// `snippet` (placeholder `{DIR}`: the config's directory). The directory is removed.
pub fn config_test(snippet: &str) -> ConfigTest {
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "oxwsgi-configtest-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.display().to_string();
    let head = format!(
        "ServerRoot \"{d}\"\n\
         LoadModule mpm_event_module {m}/mod_mpm_event.so\n\
         LoadModule authz_core_module {m}/mod_authz_core.so\n\
         LoadModule alias_module {m}/mod_alias.so\n\
         LoadModule wsgi_module \"{module}\"\n\
         User www-data\n\
         Group www-data\n\
         ServerName 127.0.0.1\n\
         Listen 127.0.0.1:9\n\
         PidFile \"{d}/apache2.pid\"\n\
         DefaultRuntimeDir \"{d}\"\n\
         ErrorLog \"{d}/error.log\"\n\
         LogLevel info\n\
         # ---- snippet ----\n",
        m = common::MODULES_DIR,
        module = common::oxwsgi_module().display(),
    );
    let snippet_line = head.lines().count() + 1;
    let path = dir.join("httpd.conf");
    std::fs::write(&path, format!("{head}{}\n", snippet.replace("{DIR}", &d))).unwrap();
    let out = Command::new("/usr/sbin/apache2")
        .arg("-t")
        .arg("-f")
        .arg(&path)
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C")
        .output()
        .expect("run apache2 -t");
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    output.push_str(&std::fs::read_to_string(dir.join("error.log")).unwrap_or_default());
    let _ = std::fs::remove_dir_all(&dir);
    ConfigTest { ok: out.status.success(), output, path: path.display().to_string(), snippet_line }
}
