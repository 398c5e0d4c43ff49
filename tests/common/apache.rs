//! Start a real Apache httpd 2.4 (Debian's /usr/sbin/apache2) with a generated configuration in
//! its own temporary directory, on its own loopback port, and stop everything it started.
//!
//! Processes are only ever signalled by pid (the Apache parent we spawned, its descendants found
//! through /proc ppid links, and its process group): never by name.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::http::{self, Client, Response};
use super::procs;

/// The Apache binary.
pub const HTTPD: &str = "/usr/sbin/apache2";
/// Where Debian keeps Apache's loadable modules (the `{MODULES}` placeholder).
pub const MODULES_DIR: &str = "/usr/lib/apache2/modules";
/// Debian's mod_wsgi (4.9.4), for comparison tests: `.module(DEBIAN_MOD_WSGI)`.
pub const DEBIAN_MOD_WSGI: &str = "/usr/lib/apache2/modules/mod_wsgi.so";
/// Apache refuses to run its children as root.
pub const RUN_USER: &str = "www-data";
pub const RUN_GROUP: &str = "www-data";

/// Logged (at notice level, which `LogLevel` does not filter out) each time Apache has (re)read
/// its configuration and is about to serve: "AH00489: Apache/2.4.x (Debian) configured --
/// resuming normal operations". The AH number differs per MPM (event AH00489, worker AH00292,
/// prefork AH00163), the text does not.
pub const READY_MARKER: &str = "configured -- resuming normal operations";

/// How long `start()` waits for Apache to listen, unless changed with `start_timeout`.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long `stop()` waits after SIGTERM before SIGKILLing the process tree. Apache's own
/// escalation for a child that ignores its SIGTERM (re-sends at ~3, 5, 7 s, SIGKILL at ~9 s)
/// finishes within this, so `forced` means the parent itself was stuck. (Debian's mod_wsgi
/// 4.9.4 under event/worker hits that path after any embedded-mode request: the child hangs in
/// Python finalization and Apache SIGKILLs it ~9 s after SIGTERM.)
pub const STOP_GRACE: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mpm {
    Event,
    Worker,
    Prefork,
}

impl Mpm {
    pub const ALL: [Mpm; 3] = [Mpm::Event, Mpm::Worker, Mpm::Prefork];

    pub fn name(self) -> &'static str {
        match self {
            Mpm::Event => "event",
            Mpm::Worker => "worker",
            Mpm::Prefork => "prefork",
        }
    }

    /// Small, predictable settings: one child process at start, at most 16 request workers.
    /// Test snippets come later in the file, so they can override any of these (except
    /// ServerLimit/ThreadLimit, which only raise ceilings).
    fn config(self) -> String {
        let name = self.name();
        let load = format!("LoadModule mpm_{name}_module {MODULES_DIR}/mod_mpm_{name}.so\n");
        let settings = match self {
            Mpm::Event | Mpm::Worker => {
                "StartServers 1\n\
                 ServerLimit 8\n\
                 ThreadLimit 32\n\
                 ThreadsPerChild 8\n\
                 MinSpareThreads 1\n\
                 MaxSpareThreads 16\n\
                 MaxRequestWorkers 16\n\
                 MaxConnectionsPerChild 0\n"
            }
            Mpm::Prefork => {
                "StartServers 1\n\
                 MinSpareServers 1\n\
                 MaxSpareServers 4\n\
                 ServerLimit 16\n\
                 MaxRequestWorkers 16\n\
                 MaxConnectionsPerChild 0\n"
            }
        };
        load + settings
    }
}

#[derive(Clone, Debug)]
enum ModuleChoice {
    /// target/<profile>/libmod_oxwsgi.so next to the running test executable.
    Oxwsgi,
    Path(PathBuf),
    None,
}

/// Builder for an Apache instance: `Apache::builder().app(..).config(..).start()`.
#[derive(Clone, Debug)]
#[must_use]
pub struct ApacheBuilder {
    mpm: Mpm,
    module: ModuleChoice,
    apache_modules: Vec<String>,
    files: Vec<(PathBuf, Vec<u8>, u32)>,
    config: Vec<String>,
    log_level: String,
    env: Vec<(String, String)>,
    start_timeout: Duration,
    stop_grace: Duration,
    /// Listen on this port rather than a free one (to stand in for an instance that stopped).
    port: Option<u16>,
}

impl Default for ApacheBuilder {
    fn default() -> Self {
        ApacheBuilder {
            mpm: Mpm::Event,
            module: ModuleChoice::Oxwsgi,
            apache_modules: Vec::new(),
            files: Vec::new(),
            config: Vec::new(),
            log_level: "info".into(),
            env: Vec::new(),
            start_timeout: DEFAULT_START_TIMEOUT,
            stop_grace: STOP_GRACE,
            port: None,
        }
    }
}

impl ApacheBuilder {
    pub fn mpm(mut self, mpm: Mpm) -> Self {
        self.mpm = mpm;
        self
    }

    /// `LoadModule wsgi_module <path>` (default: the oxwsgi module cargo built for this run).
    pub fn module(mut self, path: impl Into<PathBuf>) -> Self {
        self.module = ModuleChoice::Path(path.into());
        self
    }

    /// Plain Apache: no wsgi module at all.
    pub fn no_wsgi_module(mut self) -> Self {
        self.module = ModuleChoice::None;
        self
    }

    /// Also load a stock Apache module: `apache_module("headers")` ->
    /// `LoadModule headers_module /usr/lib/apache2/modules/mod_headers.so`.
    pub fn apache_module(mut self, name: &str) -> Self {
        self.apache_modules.push(name.to_string());
        self
    }

    /// Write `<root>/apps/<name>` (mode 0644; `name` may contain subdirectories).
    pub fn app(self, name: &str, contents: impl AsRef<[u8]>) -> Self {
        self.file(&format!("apps/{name}"), contents)
    }

    /// Copy `src` to `<root>/apps/<name>` (the checkout may not be readable by www-data).
    pub fn app_file(self, name: &str, src: impl AsRef<Path>) -> Self {
        let src = src.as_ref();
        let contents = fs::read(src).unwrap_or_else(|e| panic!("cannot read app file {}: {e}", src.display()));
        self.app(name, contents)
    }

    /// Write `<root>/htdocs/<name>` (the DocumentRoot), mode 0644.
    pub fn doc(self, name: &str, contents: impl AsRef<[u8]>) -> Self {
        self.file(&format!("htdocs/{name}"), contents)
    }

    /// Write `<root>/<rel>` with mode 0644.
    pub fn file(self, rel: &str, contents: impl AsRef<[u8]>) -> Self {
        self.file_with_mode(rel, contents, 0o644)
    }

    /// Write `<root>/<rel>` with the given mode (e.g. 0o755 for a CGI script).
    pub fn file_with_mode(mut self, rel: &str, contents: impl AsRef<[u8]>, mode: u32) -> Self {
        let rel = PathBuf::from(rel);
        assert!(
            rel.is_relative() && !rel.components().any(|c| matches!(c, std::path::Component::ParentDir)),
            "harness file path must be relative and stay inside the temp dir: {}",
            rel.display()
        );
        self.files.push((rel, contents.as_ref().to_vec(), mode));
        self
    }

    /// Append a configuration snippet to httpd.conf. Placeholders: `{ROOT}` (temp dir),
    /// `{APPS}` (`{ROOT}/apps`), `{DOCROOT}` (`{ROOT}/htdocs`), `{PORT}`, `{MODULES}`
    /// (/usr/lib/apache2/modules).
    pub fn config(mut self, snippet: &str) -> Self {
        self.config.push(snippet.to_string());
        self
    }

    /// `LogLevel` value, default "info" (e.g. "info wsgi:debug").
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = level.to_string();
        self
    }

    /// Environment variable for the apache2 process (and so its children). The environment is
    /// otherwise minimal: PATH, LANG=C, and RUST_BACKTRACE / RUST_LOG / LLVM_PROFILE_FILE /
    /// OXWSGI_* passed through from the test process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// How long to wait for Apache to accept connections (default 15 s).
    /// Listen on `port` (no retry elsewhere if it is taken).
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// How long `stop()` waits after SIGTERM before SIGKILLing everything (default 15 s).
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// Start Apache and wait until it accepts connections. Panics with the error log if it
    /// exits or never listens. Retries on a fresh port if the chosen one was taken meanwhile.
    #[track_caller]
    pub fn start(self) -> Apache {
        let module = match &self.module {
            ModuleChoice::Oxwsgi => Some(oxwsgi_module()),
            ModuleChoice::Path(p) => {
                assert!(p.is_file(), "wsgi module {} does not exist", p.display());
                Some(p.clone())
            }
            ModuleChoice::None => None,
        };
        let mut clashes = Vec::new();
        for _attempt in 0..5 {
            let port = self.port.unwrap_or_else(free_port);
            let root = make_root_dir();
            let conf = self.prepare(&root, port, module.as_deref());
            let mut apache = spawn_apache(&root, port, self.mpm, &self.env);
            apache.stop_grace = self.stop_grace;
            match apache.wait_ready(self.start_timeout) {
                Ok(()) => return apache,
                Err(failure) => {
                    let report = apache.shutdown();
                    let logs = apache.startup_logs();
                    if failure == StartFailure::Exited && is_port_clash(&logs) && self.port.is_none() {
                        clashes.push(format!("port {port}: {}", logs.trim()));
                        drop(apache); // removes its directory
                        continue;
                    }
                    let why = match failure {
                        StartFailure::Exited => format!("Apache exited during startup ({:?})", report.status),
                        StartFailure::Timeout => format!(
                            "Apache did not accept connections on 127.0.0.1:{port} within {:?} (killed: {report:?})",
                            self.start_timeout
                        ),
                    };
                    // `apache` is dropped while panicking: its directory is kept for inspection.
                    panic!(
                        "{why}\nroot: {}\n{logs}\n--- {}/httpd.conf ---\n{}",
                        root.display(),
                        root.display(),
                        numbered(&conf)
                    );
                }
            }
        }
        panic!("could not start Apache on a free port after 5 attempts:\n{}", clashes.join("\n"));
    }

    /// Create the directory layout, write the files and httpd.conf; returns the config text.
    fn prepare(&self, root: &Path, port: u16, module: Option<&Path>) -> String {
        for sub in ["apps", "htdocs", "logs", "run", "conf.d"] {
            make_dir(&root.join(sub));
        }
        for (rel, contents, mode) in &self.files {
            write_file(root, rel, contents, *mode);
        }
        let conf = self.render_config(root, port, module);
        write_file(root, Path::new("httpd.conf"), conf.as_bytes(), 0o644);
        conf
    }

    fn render_config(&self, root: &Path, port: u16, module: Option<&Path>) -> String {
        let r = root.display();
        let mut c = String::new();
        c.push_str("# Generated by the oxwsgi integration-test harness (tests/common/apache.rs)\n");
        c.push_str(&format!("ServerRoot \"{r}\"\n"));
        c.push_str(&self.mpm.config());
        for m in ["authz_core", "alias", "mime", "env", "dir", "setenvif"] {
            c.push_str(&format!("LoadModule {m}_module {MODULES_DIR}/mod_{m}.so\n"));
        }
        for m in &self.apache_modules {
            c.push_str(&format!("LoadModule {m}_module {MODULES_DIR}/mod_{m}.so\n"));
        }
        if let Some(m) = module {
            c.push_str(&format!("LoadModule wsgi_module \"{}\"\n", m.display()));
        }
        c.push_str(&format!(
            "User {RUN_USER}\n\
             Group {RUN_GROUP}\n\
             ServerName 127.0.0.1\n\
             Listen 127.0.0.1:{port}\n\
             PidFile \"{r}/run/apache2.pid\"\n\
             DefaultRuntimeDir \"{r}/run\"\n\
             Mutex file:{r}/run default\n\
             ErrorLog \"{r}/logs/error.log\"\n\
             LogLevel {level}\n\
             LogFormat \"%h %{{remote}}p keepalive=%k pid=%P \\\"%r\\\" %>s %b %D\" harness\n\
             CustomLog \"{r}/logs/access.log\" harness\n\
             TypesConfig /etc/mime.types\n\
             Timeout 30\n\
             KeepAlive On\n\
             MaxKeepAliveRequests 100\n\
             KeepAliveTimeout 5\n\
             DocumentRoot \"{r}/htdocs\"\n\
             DirectoryIndex index.html\n\
             <Directory />\n    \
                 AllowOverride None\n    \
                 Require all denied\n\
             </Directory>\n\
             <Directory \"{r}/htdocs\">\n    \
                 Require all granted\n\
             </Directory>\n\
             <Directory \"{r}/apps\">\n    \
                 Require all granted\n\
             </Directory>\n",
            level = self.log_level
        ));
        c.push_str("# ---- test configuration ----\n");
        for snippet in &self.config {
            c.push_str(&substitute(snippet, root, port));
            c.push('\n');
        }
        c.push_str(&format!("IncludeOptional \"{r}/conf.d/*.conf\"\n"));
        c
    }
}

#[derive(Debug, PartialEq, Eq)]
enum StartFailure {
    Exited,
    Timeout,
}

/// What `stop()`/`shutdown()` found.
#[derive(Debug, Clone, Default)]
pub struct StopReport {
    /// Exit status of the Apache parent (None if it was already reaped).
    pub status: Option<ExitStatus>,
    /// The parent did not exit within the grace period after SIGTERM and was SIGKILLed.
    pub forced: bool,
    /// Processes of this Apache (its process group or recorded descendants) still alive after
    /// the parent exited; they were SIGKILLed. Empty for a clean shutdown.
    pub leftovers: Vec<u32>,
}

/// A running Apache. Stopped by `stop()`, `shutdown()` or Drop (also when the test panics).
pub struct Apache {
    pub port: u16,
    /// The temp dir: httpd.conf, apps/, htdocs/, logs/, run/, conf.d/.
    pub root: PathBuf,
    pub apps: PathBuf,
    pub docroot: PathBuf,
    pub mpm: Mpm,
    pid: u32,
    child: Option<Child>,
    /// Every descendant seen so far, as (pid, starttime), for cleanup.
    seen: Mutex<Vec<(u32, u64)>>,
    report: Option<StopReport>,
    stop_grace: Duration,
}

impl Apache {
    pub fn builder() -> ApacheBuilder {
        ApacheBuilder::default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// `<root>/apps/<name>`.
    pub fn app_path(&self, name: &str) -> PathBuf {
        self.apps.join(name)
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("httpd.conf")
    }

    pub fn error_log_path(&self) -> PathBuf {
        self.root.join("logs/error.log")
    }

    /// The whole error log so far.
    pub fn error_log(&self) -> String {
        read_lossy(&self.error_log_path())
    }

    /// The whole access log so far. Format:
    /// `%h %{remote}p keepalive=%k pid=%P "%r" %>s %b %D`.
    pub fn access_log(&self) -> String {
        read_lossy(&self.root.join("logs/access.log"))
    }

    /// What apache2 wrote to stdout/stderr before its error log was open (config errors).
    pub fn stderr_log(&self) -> String {
        read_lossy(&self.root.join("logs/stderr.log"))
    }

    /// Number of occurrences of `needle` in the error log.
    pub fn count_in_log(&self, needle: &str) -> usize {
        self.error_log().matches(needle).count()
    }

    /// Poll the error log until it contains `needle` (true) or `timeout` passes (false).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.error_log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Open a keep-alive connection (10 s timeouts). Panics if it cannot connect.
    #[track_caller]
    pub fn connect(&self) -> Client {
        Client::connect(self.addr()).unwrap_or_else(|e| panic!("{e}\n{}", self.log_tail(30)))
    }

    pub fn try_connect(&self) -> io::Result<Client> {
        Client::connect(self.addr())
    }

    /// One request on a new connection, with `Connection: close` unless `headers` has a
    /// Connection header. Panics on connect failure / no status line.
    #[track_caller]
    pub fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        match self.try_send(method, path, headers, body) {
            Ok(r) => r,
            Err(e) => panic!("{method} {path} failed: {e}\n{}", self.log_tail(30)),
        }
    }

    pub fn try_send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> io::Result<Response> {
        let mut client = self.try_connect()?;
        let mut hs: Vec<(&str, &str)> = headers.to_vec();
        if !hs.iter().any(|(n, _)| n.eq_ignore_ascii_case("Connection")) {
            hs.push(("Connection", "close"));
        }
        client.try_send(method, path, &hs, body)
    }

    #[track_caller]
    pub fn get(&self, path: &str) -> Response {
        self.send("GET", path, &[], b"")
    }

    pub fn try_get(&self, path: &str) -> io::Result<Response> {
        self.try_send("GET", path, &[], b"")
    }

    #[track_caller]
    pub fn head(&self, path: &str) -> Response {
        self.send("HEAD", path, &[], b"")
    }

    #[track_caller]
    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Response {
        self.send("POST", path, &[("Content-Type", content_type)], body)
    }

    /// Send raw bytes on a new connection and read one response (no body if the request
    /// starts with "HEAD "). Nothing is added to the request.
    #[track_caller]
    pub fn request(&self, raw: &[u8]) -> Response {
        match self.try_request(raw) {
            Ok(r) => r,
            Err(e) => panic!("raw request {:?} failed: {e}\n{}", http::preview(raw), self.log_tail(30)),
        }
    }

    pub fn try_request(&self, raw: &[u8]) -> io::Result<Response> {
        self.try_connect()?.try_request_raw(raw)
    }

    /// Write `<root>/conf.d/<name>.conf` (placeholders substituted); httpd.conf includes
    /// conf.d/*.conf last, so this takes effect at the next `graceful()` / `restart()`.
    pub fn write_conf(&self, name: &str, snippet: &str) {
        let text = substitute(snippet, &self.root, self.port);
        write_file(&self.root, &Path::new("conf.d").join(format!("{name}.conf")), text.as_bytes(), 0o644);
    }

    /// Pid of the Apache parent process.
    pub fn parent_pid(&self) -> u32 {
        self.pid
    }

    /// Pids of all live descendants of the Apache parent (its children, daemon processes, and
    /// their children), found via /proc ppid links. Zombies are left out.
    pub fn child_pids(&self) -> Vec<u32> {
        let desc = procs::descendants(self.pid);
        self.remember(&desc);
        desc.iter().filter(|s| s.state != 'Z' && s.state != 'X').map(|s| s.pid).collect()
    }

    /// Parent plus live descendants.
    pub fn all_pids(&self) -> Vec<u32> {
        let mut v = vec![self.pid];
        v.extend(self.child_pids());
        v
    }

    /// Wait until at least `n` live descendants exist (bounded); returns them.
    pub fn wait_for_children(&self, n: usize, timeout: Duration) -> Vec<u32> {
        let deadline = Instant::now() + timeout;
        loop {
            let pids = self.child_pids();
            if pids.len() >= n || Instant::now() >= deadline {
                return pids;
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// Is the Apache parent still running?
    pub fn is_running(&self) -> bool {
        self.child.is_some() && !self.has_exited()
    }

    /// Send a signal to the Apache parent.
    pub fn signal(&self, sig: libc::c_int) {
        assert!(self.child.is_some(), "Apache already stopped");
        unsafe {
            libc::kill(self.pid as libc::pid_t, sig);
        }
    }

    /// Graceful restart (SIGUSR1); returns once Apache has re-read its configuration
    /// ("resuming normal operations" logged again). Panics if Apache dies.
    #[track_caller]
    pub fn graceful(&self) {
        self.restart_with(libc::SIGUSR1, "graceful restart (SIGUSR1)");
    }

    /// Restart (SIGHUP: children are killed and replaced); returns once Apache has re-read its
    /// configuration. Panics if Apache dies.
    #[track_caller]
    pub fn restart(&self) {
        self.restart_with(libc::SIGHUP, "restart (SIGHUP)");
    }

    #[track_caller]
    fn restart_with(&self, sig: libc::c_int, what: &str) {
        let before = self.count_in_log(READY_MARKER);
        self.remember(&procs::descendants(self.pid));
        self.signal(sig);
        let deadline = Instant::now() + DEFAULT_START_TIMEOUT;
        loop {
            if self.count_in_log(READY_MARKER) > before {
                return;
            }
            if self.has_exited() {
                panic!("Apache exited during {what}\n{}", self.log_tail(60));
            }
            if Instant::now() >= deadline {
                panic!("Apache did not finish {what} within {DEFAULT_START_TIMEOUT:?}\n{}", self.log_tail(60));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop Apache (see `shutdown`) and remove its directory.
    pub fn stop(mut self) -> StopReport {
        self.shutdown()
    }

    /// Stop Apache but keep the struct (logs stay readable until it is dropped):
    /// SIGTERM the parent, wait up to 15 s (`stop_grace`), else SIGKILL it; then SIGKILL whatever of its
    /// process group / recorded process tree is still alive (reported as `leftovers`).
    /// Idempotent.
    pub fn shutdown(&mut self) -> StopReport {
        if let Some(r) = &self.report {
            return r.clone();
        }
        let Some(mut child) = self.child.take() else {
            return StopReport::default();
        };
        let pid = self.pid;
        let ipid = pid as libc::pid_t;
        self.remember(&procs::descendants(pid));
        let mut forced = false;
        if !exited_nowait(ipid) {
            unsafe { libc::kill(ipid, libc::SIGTERM) };
            let deadline = Instant::now() + self.stop_grace;
            while !exited_nowait(ipid) {
                self.remember(&procs::descendants(pid));
                if Instant::now() >= deadline {
                    forced = true;
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        if forced {
            self.remember(&procs::descendants(pid));
            unsafe { libc::kill(ipid, libc::SIGKILL) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while !exited_nowait(ipid) && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
        }
        // The parent is now a zombie we have not reaped, so its pid (= its process group id)
        // cannot have been reused: signalling the group is safe.
        let mut leftovers: Vec<u32> = procs::all_procs()
            .into_iter()
            .filter(|s| s.pgrp == pid && s.pid != pid && s.state != 'Z' && s.state != 'X')
            .map(|s| s.pid)
            .collect();
        for &(p, start) in self.seen.lock().unwrap().iter() {
            if !leftovers.contains(&p) && procs::same_process_alive(p, start) {
                leftovers.push(p);
            }
        }
        if !leftovers.is_empty() {
            unsafe { libc::kill(-ipid, libc::SIGKILL) };
            for &p in &leftovers {
                unsafe { libc::kill(p as libc::pid_t, libc::SIGKILL) };
            }
        }
        let status = child.wait().ok();
        // Orphans were re-parented to this test process (a child subreaper): reap them.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            for &p in &leftovers {
                unsafe { libc::waitpid(p as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG) };
            }
            if leftovers.iter().all(|&p| !procs::process_alive(p)) || Instant::now() >= deadline {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let report = StopReport { status, forced, leftovers };
        self.report = Some(report.clone());
        report
    }

    /// The report of the shutdown, if it happened.
    pub fn stop_report(&self) -> Option<&StopReport> {
        self.report.as_ref()
    }

    /// Last `n` lines of the error log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.error_log();
        let lines: Vec<&str> = log.lines().collect();
        let start = lines.len().saturating_sub(n);
        format!("--- {} (last {n} lines) ---\n{}", self.error_log_path().display(), lines[start..].join("\n"))
    }

    fn startup_logs(&self) -> String {
        format!(
            "--- apache2 stdout/stderr ---\n{}\n--- {} ---\n{}",
            self.stderr_log().trim_end(),
            self.error_log_path().display(),
            self.error_log().trim_end()
        )
    }

    fn remember(&self, desc: &[procs::ProcStat]) {
        let mut seen = self.seen.lock().unwrap();
        for s in desc {
            if s.state != 'Z' && !seen.contains(&(s.pid, s.starttime)) {
                seen.push((s.pid, s.starttime));
            }
        }
    }

    fn has_exited(&self) -> bool {
        self.child.is_none() || exited_nowait(self.pid as libc::pid_t)
    }

    fn read_pidfile(&self) -> Option<u32> {
        fs::read_to_string(self.root.join("run/apache2.pid")).ok()?.trim().parse().ok()
    }

    /// Ready = the parent is alive, has written its pid file (done after binding the
    /// listener), the port accepts a connection, and the parent has logged READY_MARKER
    /// (written just after the pid file; notice level, so always logged). If a test redirected
    /// `ErrorLog` elsewhere the marker never shows up here: then 3 s after the port first
    /// answered count as ready.
    fn wait_ready(&mut self, timeout: Duration) -> Result<(), StartFailure> {
        let deadline = Instant::now() + timeout;
        let mut listening_since: Option<Instant> = None;
        loop {
            if self.has_exited() {
                return Err(StartFailure::Exited);
            }
            if listening_since.is_none()
                && self.read_pidfile() == Some(self.pid)
                && TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500)).is_ok()
            {
                listening_since = Some(Instant::now());
            }
            if let Some(t) = listening_since {
                if self.error_log().contains(READY_MARKER) || t.elapsed() >= Duration::from_secs(3) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(StartFailure::Timeout);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl std::fmt::Debug for Apache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apache")
            .field("port", &self.port)
            .field("root", &self.root)
            .field("mpm", &self.mpm)
            .field("pid", &self.pid)
            .field("running", &self.is_running())
            .finish()
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        let report = self.shutdown();
        if report.forced || !report.leftovers.is_empty() {
            eprintln!("oxwsgi harness: Apache (pid {}) did not stop cleanly: {report:?}", self.pid);
        }
        let keep = thread::panicking() || std::env::var_os("OXWSGI_KEEP_TEST_DIRS").is_some();
        if keep {
            eprintln!("oxwsgi harness: keeping {} for inspection\n{}", self.root.display(), self.log_tail(40));
        } else {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

/// Path of the oxwsgi module cargo built for this test run. The test executable is
/// target/<profile>/deps/<test>-<hash>; `cargo test` builds the package's cdylib as
/// target/<profile>/deps/libmod_oxwsgi.so but (unlike `cargo build`) does NOT copy it up to
/// target/<profile>/libmod_oxwsgi.so, which may therefore be stale. So: the deps/ copy if it
/// exists, else target/<profile>/libmod_oxwsgi.so.
pub fn default_module_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let exe_dir = exe.parent().expect("test executable has a parent dir");
    let in_deps = exe_dir.join("libmod_oxwsgi.so");
    if in_deps.is_file() {
        return in_deps;
    }
    let profile_dir = if exe_dir.file_name().map_or(false, |n| n == "deps") {
        exe_dir.parent().expect("deps has a parent dir")
    } else {
        exe_dir
    };
    profile_dir.join("libmod_oxwsgi.so")
}

/// `default_module_path()`, panicking with a clear message if it was not built.
#[track_caller]
pub fn oxwsgi_module() -> PathBuf {
    let p = default_module_path();
    assert!(
        p.is_file(),
        "the oxwsgi Apache module was not found at {} (nor in the deps/ dir of the test \
         executable). `cargo test` builds it as the package's cdylib; run `cargo build` if it \
         is missing.",
        p.display()
    );
    p
}

// ---------------------------------------------------------------------------------------------

fn substitute(snippet: &str, root: &Path, port: u16) -> String {
    let root_s = root.display().to_string();
    snippet
        .replace("{ROOT}", &root_s)
        .replace("{APPS}", &format!("{root_s}/apps"))
        .replace("{DOCROOT}", &format!("{root_s}/htdocs"))
        .replace("{PORT}", &port.to_string())
        .replace("{MODULES}", MODULES_DIR)
}

fn numbered(text: &str) -> String {
    text.lines().enumerate().map(|(i, l)| format!("{:4} {l}\n", i + 1)).collect()
}

fn is_port_clash(logs: &str) -> bool {
    logs.contains("could not bind to address") || logs.contains("Address already in use")
}

fn read_lossy(path: &Path) -> String {
    match fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    }
}

/// A loopback port nobody listens on right now, never handed out twice by this process.
fn free_port() -> u16 {
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(|| Mutex::new(HashSet::new()));
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().unwrap().port();
        drop(l);
        if given.lock().unwrap().insert(port) {
            return port;
        }
    }
    panic!("no free loopback port found");
}

fn make_dir(path: &Path) {
    fs::DirBuilder::new().mode(0o755).create(path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// Write `root/rel` with `mode`, creating missing parent directories (0755) inside `root`.
fn write_file(root: &Path, rel: &Path, contents: &[u8], mode: u32) {
    let path = root.join(rel);
    let mut dir = root.to_path_buf();
    if let Some(parent) = rel.parent() {
        for comp in parent.components() {
            dir.push(comp);
            if !dir.is_dir() {
                make_dir(&dir);
            }
        }
    }
    fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A fresh 0755 directory under the system temp dir. www-data must be able to reach it.
fn make_root_dir() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = std::env::temp_dir();
    for anc in base.ancestors() {
        if let Ok(md) = fs::metadata(anc) {
            assert!(
                md.permissions().mode() & 0o001 != 0,
                "{} is not searchable by others, so Apache's www-data children could not reach \
                 the test directory under {}; point TMPDIR somewhere else (e.g. /tmp)",
                anc.display(),
                base.display()
            );
        }
    }
    let root = base.join(format!("oxwsgi-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    if root.exists() {
        let _ = fs::remove_dir_all(&root); // left by an earlier process with the same pid
    }
    make_dir(&root);
    root
}

/// waitid(WNOWAIT): has `pid` (our child) exited? Does not reap it.
fn exited_nowait(pid: libc::pid_t) -> bool {
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT);
        if r != 0 {
            return true; // ECHILD: already reaped
        }
        info.si_pid() != 0
    }
}

type SpawnJob = Box<dyn FnOnce() + Send>;

/// Apache is spawned from one long-lived thread with PR_SET_PDEATHSIG = SIGTERM, so if the test
/// process dies without running Drop (SIGKILL, Ctrl-C, abort), the Apache parent gets SIGTERM and
/// shuts down normally, children included. (Apache runs in its own process group, so a
/// terminal's Ctrl-C does not reach it directly. The death signal fires when the spawning
/// *thread* exits, which is why it is not a test thread: an instance shared between tests
/// would be killed when the test that started it finished.) The process is also made a child
/// subreaper so Apache processes orphaned by a SIGKILLed parent come to us and can be reaped:
/// pid 1 on this machine does not reap orphans, they would stay zombies.
fn spawn_from_spawner_thread(cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0);
        }
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        thread::Builder::new()
            .name("oxwsgi-apache-spawner".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("spawn the Apache spawner thread");
        Mutex::new(tx)
    });
    let (rtx, rrx) = mpsc::channel();
    let mut cmd = cmd;
    tx.lock()
        .unwrap()
        .send(Box::new(move || {
            let _ = rtx.send(cmd.spawn());
        }))
        .expect("Apache spawner thread is gone");
    rrx.recv().expect("Apache spawner thread is gone")
}

fn spawn_apache(root: &Path, port: u16, mpm: Mpm, extra_env: &[(String, String)]) -> Apache {
    let logs = root.join("logs");
    let out = fs::File::create(logs.join("stderr.log")).expect("create stderr.log");
    let err = out.try_clone().unwrap();
    let mut cmd = Command::new(HTTPD);
    cmd.arg("-f")
        .arg(root.join("httpd.conf"))
        .arg("-DFOREGROUND")
        .current_dir(root)
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .process_group(0);
    for (k, v) in std::env::vars_os() {
        let Some(name) = k.to_str() else { continue };
        if matches!(name, "RUST_BACKTRACE" | "RUST_LIB_BACKTRACE" | "RUST_LOG" | "LLVM_PROFILE_FILE")
            || name.starts_with("OXWSGI_")
        {
            cmd.env(&k, &v);
        }
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = spawn_from_spawner_thread(cmd).unwrap_or_else(|e| panic!("cannot run {HTTPD}: {e}"));
    Apache {
        port,
        root: root.to_path_buf(),
        apps: root.join("apps"),
        docroot: root.join("htdocs"),
        mpm,
        pid: child.id(),
        child: Some(child),
        seen: Mutex::new(Vec::new()),
        report: None,
        stop_grace: STOP_GRACE,
    }
}

#[allow(unused)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<Apache>();
}
