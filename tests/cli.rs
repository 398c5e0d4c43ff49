//! The `oxwsgi` command, run as a real process: `serve` on a WSGI file and on a
//! `module:callable` (embedded and daemon mode), static files from `--url-alias`, a clean stop
//! on SIGTERM/SIGINT with every Apache process gone, the one-line errors, `module-config` in a
//! real `apache2 -t`, `install-module --destdir`, and `--setup-only`.
//!
//! Every wait is bounded; every process a test starts is killed (by pid, with its /proc
//! descendants) when the test ends, also when it panics.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

mod common;
use common::eventually;
use common::procs::{descendants, proc_stat, same_process_alive, ProcStat};

const OXWSGI: &str = env!("CARGO_BIN_EXE_oxwsgi");
const HTTPD: &str = "/usr/sbin/apache2";
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
/// How long `serve` may take to print its banner (it imports the app, configtests, starts Apache).
const START: Duration = Duration::from_secs(60);
/// How long `serve` may take to exit after SIGTERM (its own stop timeout is 10 s).
const STOP: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Helpers

/// A directory under /tmp (mode 0755, readable by www-data), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "oxwsgi-cli-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `rel` (mode 0644, parent directories 0755).
    fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(rel);
        let parent = path.parent().unwrap();
        fs::create_dir_all(parent).unwrap();
        let mut dir = parent.to_path_buf();
        while dir.starts_with(&self.0) {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
            if !dir.pop() {
                break;
            }
        }
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    /// Copies a file from examples/ (the checkout may not be readable by www-data).
    fn example(&self, name: &str) -> PathBuf {
        let src = Path::new(MANIFEST).join("examples").join(name);
        self.write(name, fs::read(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Is the process `p` names (its pid and start time, so a reused pid does not count) alive?
fn alive(p: &ProcStat) -> bool {
    same_process_alive(p.pid, p.starttime)
}

fn kill(p: &ProcStat, sig: i32) {
    if alive(p) {
        unsafe {
            libc::kill(p.pid as i32, sig);
        }
    }
}

/// Collects a pipe's lines in a background thread.
fn collect(pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            match line {
                Ok(l) => sink.lock().unwrap().push(l),
                Err(_) => break,
            }
        }
    });
    lines
}

/// A running `oxwsgi serve`; on drop (also on panic) it and every process below it are killed.
struct Serve {
    child: Child,
    me: ProcStat,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Every process seen below oxwsgi, for cleanup.
    seen: Vec<ProcStat>,
    status: Option<ExitStatus>,
    port: u16,
}

impl Serve {
    /// `oxwsgi serve ARGS... --port <free>` in `cwd`.
    fn start(cwd: &Path, args: &[&str]) -> Serve {
        let port = free_port();
        let mut cmd = Command::new(OXWSGI);
        cmd.arg("serve").args(args).args(["--port", &port.to_string()]);
        cmd.current_dir(cwd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.env_remove("VIRTUAL_ENV");
        let mut child = cmd.spawn().expect("run oxwsgi");
        let me = proc_stat(child.id()).expect("oxwsgi in /proc");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        let mut s = Serve { child, me, stdout, stderr, seen: Vec::new(), status: None, port };
        let ready = eventually(START, || {
            s.remember();
            s.has_exited() || s.stdout_text().contains("Ctrl-C or SIGTERM stops")
        });
        assert!(ready, "oxwsgi printed no banner within {START:?}\n{}", s.output());
        assert!(!s.has_exited(), "oxwsgi exited during start-up ({:?})\n{}", s.status, s.output());
        s
    }

    fn stdout_text(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    fn output(&self) -> String {
        format!("--- stdout ---\n{}\n--- stderr ---\n{}", self.stdout_text(), self.stderr_text())
    }

    fn has_exited(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status.is_some()
    }

    fn remember(&mut self) {
        for p in descendants(self.me.pid) {
            if !self.seen.iter().any(|s| s.pid == p.pid && s.starttime == p.starttime) {
                self.seen.push(p);
            }
        }
    }

    /// The banner line starting with `label` (e.g. "config:"), its value.
    fn banner(&self, label: &str) -> String {
        let text = self.stdout_text();
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no '{label}' line in the banner\n{}", self.output()));
        line.trim().to_string()
    }

    /// Apache's pid, from "oxwsgi: serving APP with Apache (pid N)".
    fn apache_pid(&self) -> u32 {
        let text = self.stdout_text();
        let at = text.find("(pid ").unwrap_or_else(|| panic!("no pid in the banner\n{}", self.output()));
        text[at + 5..].split(')').next().unwrap().parse().unwrap()
    }

    fn get(&self, path: &str) -> (u16, String) {
        http_get(self.port, path)
    }

    /// Sends `sig` to oxwsgi and waits (bounded) for it to exit; returns its status and every
    /// process that was below it just before.
    fn stop_with(&mut self, sig: i32) -> (ExitStatus, Vec<ProcStat>) {
        self.remember();
        let before = self.seen.clone();
        unsafe {
            libc::kill(self.me.pid as i32, sig);
        }
        let exited = eventually(STOP, || self.has_exited());
        assert!(exited, "oxwsgi did not exit within {STOP:?} of signal {sig}\n{}", self.output());
        (self.status.unwrap(), before)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if !self.has_exited() {
            self.remember();
            kill(&self.me, libc::SIGTERM);
            if !eventually(STOP, || self.has_exited()) {
                self.remember();
                kill(&self.me, libc::SIGKILL);
                let _ = self.child.wait();
            }
        }
        // Whatever is left of the tree (also after a clean exit, in case a test failed on it).
        self.remember();
        for p in &self.seen {
            kill(p, libc::SIGKILL);
        }
    }
}

/// A one-shot HTTP/1.0 GET with timeouts: (status, body).
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut last_err = String::new();
    for _ in 0..3 {
        match try_http_get(port, path) {
            Ok(r) => return r,
            Err(e) => {
                last_err = e.to_string();
                thread::sleep(Duration::from_millis(200));
            }
        }
    }
    panic!("GET {path} on port {port} failed: {last_err}");
}

fn try_http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let addr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad response: {head:?}")))?;
    Ok((status, body.to_string()))
}

fn assert_all_gone(procs: &[ProcStat], output: &str) {
    let ok = eventually(Duration::from_secs(5), || procs.iter().all(|p| !alive(p)));
    let left: Vec<&ProcStat> = procs.iter().filter(|p| alive(p)).collect();
    assert!(ok, "processes still alive after oxwsgi exited: {left:?}\n{output}");
}

/// Runs `oxwsgi ARGS` to completion (bounded) in `cwd`.
fn run(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(OXWSGI);
    cmd.args(args).current_dir(cwd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.env_remove("VIRTUAL_ENV");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run oxwsgi");
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = read_all(Box::new(child.stdout.take().unwrap()));
    let err = read_all(Box::new(child.stderr.take().unwrap()));
    let me = proc_stat(child.id());
    let mut status = None;
    let finished = eventually(START, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if !finished {
        if let Some(me) = me {
            for p in descendants(me.pid) {
                kill(&p, libc::SIGKILL);
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("oxwsgi {args:?} did not finish within {START:?}");
    }
    // The readers finish at EOF; oxwsgi leaves no process holding its pipes.
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    Output { status: status.unwrap(), stdout, stderr }
}

/// Asserts a user error: exit status 1, nothing on stdout, exactly one stderr line
/// `oxwsgi: ...` containing every `needle`.
#[track_caller]
fn assert_one_line_error(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line on stderr, got:\n{stderr}");
    assert!(lines[0].starts_with("oxwsgi: "), "{stderr}");
    for n in needles {
        assert!(lines[0].contains(n), "stderr line lacks {n:?}: {stderr}");
    }
    assert!(stdout.trim().is_empty(), "unexpected stdout:\n{stdout}");
    lines[0].to_string()
}

fn configtest(conf: &Path) -> Output {
    Command::new(HTTPD).arg("-t").arg("-f").arg(conf).stdin(Stdio::null()).output().expect("run apache2 -t")
}

/// A minimal Apache configuration around `snippet`, in `dir`.
fn minimal_config(dir: &TempDir, snippet: &str) -> PathBuf {
    let d = dir.path().display();
    let port = free_port();
    fs::create_dir_all(dir.path().join("logs")).unwrap();
    dir.write(
        "httpd.conf",
        format!(
            "ServerRoot \"{d}\"\n\
             LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n\
             LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so\n\
             User www-data\nGroup www-data\n\
             ServerName 127.0.0.1\nListen 127.0.0.1:{port}\n\
             PidFile \"{d}/httpd.pid\"\nDefaultRuntimeDir \"{d}\"\nErrorLog \"{d}/logs/error_log\"\n\
             {snippet}\n"
        ),
    )
}

const HELLO_TXT: &str = "a static file, served by Apache (mod_alias), not by Python\n";

// ---------------------------------------------------------------------------------------------
// serve

#[test]
fn serve_script_embedded_with_static_files_and_sigterm() {
    let dir = TempDir::new("embedded");
    dir.example("hello.wsgi");
    dir.example("static/hello.txt");
    let mut s = Serve::start(dir.path(), &["hello.wsgi", "--embedded", "--url-alias", "/static", "static"]);
    let banner = s.stdout_text();
    assert!(s.banner("URL:").starts_with(&format!("http://127.0.0.1:{}/", s.port)), "{banner}");
    assert!(s.banner("mode:").starts_with("embedded (1 process × 5 threads"), "{banner}");
    let config = PathBuf::from(s.banner("config:"));
    let error_log = PathBuf::from(s.banner("error log:"));
    assert!(config.is_file() && error_log.starts_with(config.parent().unwrap()), "{banner}");

    let (status, body) = s.get("/some/path");
    assert_eq!(status, 200, "{body}\n{}", s.output());
    assert!(body.contains("Hello from oxwsgi!") && body.contains("path:          /some/path"), "{body}");
    assert!(body.contains("process group: (embedded)"), "{body}");
    let (status, body) = s.get("/static/hello.txt");
    assert_eq!((status, body.as_str()), (200, HELLO_TXT));
    let (status, _) = s.get("/static/missing.txt");
    assert_eq!(status, 404);
    assert!(
        eventually(Duration::from_secs(10), || s.stdout_text().contains("application loaded (warm-up GET / -> 200 OK")),
        "{}",
        s.output()
    );

    let apache = s.apache_pid();
    let (status, procs) = s.stop_with(libc::SIGTERM);
    assert!(procs.iter().any(|p| p.pid == apache), "Apache {apache} not below oxwsgi: {procs:?}");
    assert!(procs.len() >= 2, "expected Apache and at least one child: {procs:?}");
    assert_eq!(status.code(), Some(0), "{}", s.output());
    assert_all_gone(&procs, &s.output());
    assert!(s.stderr_text().contains("Apache stopped"), "{}", s.output());
    // The temporary server root is removed.
    assert!(!config.parent().unwrap().exists(), "{} left behind", config.display());
}

#[test]
fn serve_module_callable_embedded_and_sigint() {
    let dir = TempDir::new("module");
    dir.example("hello_app.py");
    let mut s = Serve::start(
        dir.path(),
        &["hello_app:app", "--embedded", "--mount-point", "/api/", "--threads", "3", "--no-preload"],
    );
    assert!(s.banner("mode:").starts_with("embedded (1 process × 3 threads"), "{}", s.output());
    assert!(s.banner("URL:").ends_with("/api/"), "{}", s.output());
    assert!(!s.stdout_text().contains("preload:"), "{}", s.output());
    let (status, body) = s.get("/api/x/y?q=1");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"script_name\": \"/api\"") && body.contains("\"path_info\": \"/x/y\""), "{body}");
    assert!(body.contains("\"query\": \"q=1\""), "{body}");
    // The generated script lives in the server root.
    let root = PathBuf::from(s.banner("config:")).parent().unwrap().to_path_buf();
    let script = fs::read_to_string(root.join("wsgi/application.wsgi")).unwrap();
    assert!(script.contains("import_module('hello_app')"), "{script}");
    // Nothing outside the mount point.
    assert_eq!(s.get("/other").0, 404);

    let (status, procs) = s.stop_with(libc::SIGINT);
    assert_eq!(status.code(), Some(0), "{}", s.output());
    assert_all_gone(&procs, &s.output());
}

/// The default: a daemon process group, preloaded by a warm-up request.
#[test]
fn serve_daemon_mode_by_default() {
    let dir = TempDir::new("daemon");
    dir.example("hello.wsgi");
    dir.example("static/hello.txt");
    let server_root = TempDir::new("daemon-root");
    let root_arg = server_root.path().display().to_string();
    let mut s = Serve::start(
        dir.path(),
        &[
            "hello.wsgi",
            "--processes",
            "2",
            "--threads",
            "2",
            "--server-root",
            &root_arg,
            "--url-alias",
            "/static",
            "static",
        ],
    );
    assert!(s.banner("mode:").starts_with("daemon (2 processes × 2 threads, request-timeout 60 s)"), "{}", s.output());
    assert!(
        eventually(Duration::from_secs(20), || s.stdout_text().contains("application loaded (warm-up GET / -> 200 OK")),
        "{}",
        s.output()
    );
    let conf = fs::read_to_string(server_root.path().join("httpd.conf")).unwrap();
    assert!(conf.contains("WSGIDaemonProcess oxwsgi processes=2 threads=2 request-timeout=60"), "{conf}");
    assert!(conf.contains("process-group=oxwsgi application-group=%{GLOBAL}"), "{conf}");

    let (status, body) = s.get("/");
    assert_eq!(status, 200, "{body}\n{}", s.output());
    assert!(body.contains("process group: oxwsgi"), "{body}");
    let app_pid: u32 = body.lines().find_map(|l| l.strip_prefix("pid:")).unwrap().trim().parse().unwrap();
    let apache = s.apache_pid();
    // The application runs in a daemon process below Apache's parent, not in Apache's parent.
    s.remember();
    assert_ne!(app_pid, apache);
    assert!(descendants(apache).iter().any(|p| p.pid == app_pid), "daemon {app_pid} not below Apache {apache}");
    assert_eq!(s.get("/static/hello.txt"), (200, HELLO_TXT.to_string()));

    let (status, procs) = s.stop_with(libc::SIGTERM);
    assert!(procs.iter().any(|p| p.pid == app_pid));
    assert_eq!(status.code(), Some(0), "{}", s.output());
    assert_all_gone(&procs, &s.output());
    // --server-root is kept.
    assert!(server_root.path().join("logs/error_log").is_file());
}

// ---------------------------------------------------------------------------------------------
// Errors: one line, exit status 1, and no Apache.

#[test]
fn missing_app_file() {
    let dir = TempDir::new("err-missing");
    let out = run(dir.path(), &["serve", "nope.wsgi", "--embedded"], &[]);
    assert_one_line_error(&out, &["nope.wsgi: no such file"]);
    let out = run(dir.path(), &["serve", "sub/app.py"], &[]);
    assert_one_line_error(&out, &["sub/app.py: no such file"]);
}

#[test]
fn app_without_the_callable() {
    let dir = TempDir::new("err-callable");
    dir.write("noapp.wsgi", "def app(environ, start_response):\n    pass\n");
    let out = run(dir.path(), &["serve", "noapp.wsgi", "--embedded"], &[]);
    assert_one_line_error(&out, &["noapp.wsgi has no callable named 'application'", "--callable-object"]);
    // ... which --callable-object fixes up to the port check: use setup-only to stop there.
    let setup = TempDir::new("err-callable-setup");
    let out = run(
        dir.path(),
        &["serve", "noapp.wsgi", "--callable-object", "app", "--setup-only", &setup.path().display().to_string()],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    dir.write("broken.wsgi", "import no_such_module_here\n");
    let out = run(dir.path(), &["serve", "broken.wsgi"], &[]);
    assert_one_line_error(&out, &["broken.wsgi raised ModuleNotFoundError", "line 1"]);

    dir.write("mod.py", "application = None\nother = 1\n");
    let out = run(dir.path(), &["serve", "mod:missing"], &[]);
    assert_one_line_error(&out, &["module mod has no attribute 'missing'"]);
    let out = run(dir.path(), &["serve", "mod:other"], &[]);
    assert_one_line_error(&out, &["mod:other is not callable"]);
    let out = run(dir.path(), &["serve", "no_such_pkg.wsgi:application"], &[]);
    assert_one_line_error(&out, &["no module named 'no_such_pkg.wsgi'", "--python-path"]);
}

#[test]
fn port_in_use() {
    let dir = TempDir::new("err-port");
    dir.example("hello.wsgi");
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    let out = run(dir.path(), &["serve", "hello.wsgi", "--port", &port], &[]);
    assert_one_line_error(&out, &[&format!("port {port} on 127.0.0.1 is already in use"), "--port"]);
    drop(holder);
}

#[test]
fn bad_python_home() {
    let dir = TempDir::new("err-home");
    dir.example("hello.wsgi");
    let out = run(dir.path(), &["serve", "hello.wsgi", "--python-home", "/no/such/dir"], &[]);
    assert_one_line_error(&out, &["--python-home /no/such/dir: no such directory"]);
    let not_python = dir.write("notpython/README", "not a Python\n");
    let home = not_python.parent().unwrap().display().to_string();
    let out = run(dir.path(), &["serve", "hello.wsgi", "--python-home", &home], &[]);
    assert_one_line_error(&out, &[&format!("--python-home {home} is not a Python installation or virtualenv")]);
}

#[test]
fn apache_not_installed() {
    let dir = TempDir::new("err-httpd");
    dir.example("hello.wsgi");
    let out = run(dir.path(), &["serve", "hello.wsgi"], &[("OXWSGI_HTTPD", "/nonexistent/apache2")]);
    assert_one_line_error(&out, &["Apache httpd is not installed", "apt-get install apache2"]);
}

#[test]
fn unreadable_app_is_refused() {
    // A directory only root can enter, as /root is.
    let dir = TempDir::new("err-perm");
    let private = dir.path().join("private");
    fs::create_dir(&private).unwrap();
    fs::write(private.join("app.wsgi"), "def application(e, s):\n    pass\n").unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
    let out = run(dir.path(), &["serve", "private/app.wsgi", "--embedded"], &[]);
    assert_one_line_error(&out, &["is not readable by user www-data", "private"]);
}

#[test]
fn usage_errors_exit_2() {
    let out = run(Path::new(MANIFEST), &["serve"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(Path::new(MANIFEST), &["serve", "x.wsgi", "--port", "notaport"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

// ---------------------------------------------------------------------------------------------
// module-config, install-module, --setup-only

#[test]
fn module_config_passes_configtest() {
    let dir = TempDir::new("modconf");
    let out = run(dir.path(), &["module-config"], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].starts_with("LoadModule wsgi_module \"/") && lines[0].ends_with("libmod_oxwsgi.so\""), "{stdout}");
    let app = dir.example("hello.wsgi");
    let conf = minimal_config(&dir, &format!("{stdout}\nWSGIScriptAlias / \"{}\"\n", app.display()));
    let t = configtest(&conf);
    assert!(t.status.success(), "apache2 -t failed:\n{}", String::from_utf8_lossy(&t.stderr));
    assert!(String::from_utf8_lossy(&t.stderr).contains("Syntax OK"));
}

#[test]
fn module_config_in_a_virtualenv_adds_python_home() {
    let dir = TempDir::new("venv");
    let venv = dir.path().join("venv");
    let made = Command::new("/usr/bin/python3.11")
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .stdin(Stdio::null())
        .output()
        .expect("python3.11 -m venv");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let out = run(dir.path(), &["module-config"], &[("VIRTUAL_ENV", &venv.display().to_string())]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[1], format!("WSGIPythonHome \"{}\"", venv.display()));
    let conf = minimal_config(&dir, &stdout);
    let t = configtest(&conf);
    assert!(t.status.success(), "apache2 -t failed:\n{}", String::from_utf8_lossy(&t.stderr));

    // The same virtualenv is a good --python-home for serve (checked up to the config).
    dir.example("hello.wsgi");
    let setup = dir.path().join("site");
    let out = run(
        dir.path(),
        &[
            "serve",
            "hello.wsgi",
            "--python-home",
            &venv.display().to_string(),
            "--setup-only",
            &setup.display().to_string(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let conf = fs::read_to_string(setup.join("httpd.conf")).unwrap();
    assert!(conf.contains(&format!("WSGIPythonHome \"{}\"", venv.display())), "{conf}");
    let t = configtest(&setup.join("httpd.conf"));
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));

    // And the application really runs in it, in both modes.
    let home = venv.display().to_string();
    for (extra, group) in [(None, "oxwsgi"), (Some("--embedded"), "(embedded)")] {
        let mut args = vec!["hello.wsgi", "--python-home", home.as_str()];
        args.extend(extra);
        let mut s = Serve::start(dir.path(), &args);
        let (status, body) = s.get("/");
        assert_eq!(status, 200, "{body}\n{}", s.output());
        assert!(body.contains(&format!("prefix:        {home}\n")), "{body}");
        assert!(body.contains(&format!("process group: {group}\n")), "{body}");
        let (status, procs) = s.stop_with(libc::SIGTERM);
        assert_eq!(status.code(), Some(0), "{}", s.output());
        assert_all_gone(&procs, &s.output());
    }
}

#[test]
fn install_module_into_a_destdir() {
    let dest = TempDir::new("install");
    let d = dest.path().display().to_string();
    let args = ["install-module", "--destdir", &d, "--modules-dir", "/usr/lib/apache2/modules"];
    let built = Path::new(OXWSGI).parent().unwrap().join("libmod_oxwsgi.so");
    let mtime = || fs::metadata(&built).and_then(|m| m.modified()).ok();
    let built_at = mtime();
    let out = run(dest.path(), &args, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let module = dest.path().join("usr/lib/apache2/modules/mod_oxwsgi.so");
    // A copy of the module next to the executable (unless cargo rebuilt it meanwhile).
    if mtime() == built_at {
        assert!(
            fs::read(&module).unwrap() == fs::read(&built).unwrap(),
            "installed module differs from {}",
            built.display()
        );
    }
    assert_eq!(fs::metadata(&module).unwrap().permissions().mode() & 0o777, 0o644);
    let avail = dest.path().join("etc/apache2/mods-available");
    let load = fs::read_to_string(avail.join("oxwsgi.load")).unwrap();
    assert!(load.contains("# Conflicts: wsgi\n"), "{load}");
    assert!(load.contains("\nLoadModule wsgi_module /usr/lib/apache2/modules/mod_oxwsgi.so\n"), "{load}");
    let conf = fs::read_to_string(avail.join("oxwsgi.conf")).unwrap();
    assert_eq!(conf, fs::read_to_string(Path::new(MANIFEST).join("conf/oxwsgi.conf")).unwrap());

    // An edited oxwsgi.conf is kept unless --force.
    fs::write(avail.join("oxwsgi.conf"), "# mine\n").unwrap();
    let out = run(dest.path(), &args, &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("kept"));
    assert_eq!(fs::read_to_string(avail.join("oxwsgi.conf")).unwrap(), "# mine\n");
    let mut forced = args.to_vec();
    forced.push("--force");
    assert!(run(dest.path(), &forced, &[]).status.success());
    assert_eq!(fs::read_to_string(avail.join("oxwsgi.conf")).unwrap(), conf);

    // The staged files make a valid configuration (with the staged module path).
    let cfg = TempDir::new("install-cfg");
    let snippet = format!(
        "{}\nInclude \"{}\"\n",
        load.replace("/usr/lib/apache2/modules/mod_oxwsgi.so", &format!("\"{}\"", module.display())),
        avail.join("oxwsgi.conf").display()
    );
    let t = configtest(&minimal_config(&cfg, &snippet));
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));
}

#[test]
fn setup_only_writes_a_config_and_a_start_script() {
    let dir = TempDir::new("setup");
    dir.example("hello.wsgi");
    let site = dir.path().join("site");
    let port = free_port().to_string();
    let out = run(
        dir.path(),
        &["serve", "hello.wsgi", "--embedded", "--port", &port, "--setup-only", &site.display().to_string()],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("apachectl start"), "{stdout}");
    let ctl = site.join("apachectl");
    assert_eq!(fs::metadata(&ctl).unwrap().permissions().mode() & 0o777, 0o755);
    let t = Command::new(&ctl).arg("configtest").output().unwrap();
    assert!(t.status.success(), "{}", String::from_utf8_lossy(&t.stderr));

    // start-foreground execs Apache: its pid is Apache's.
    let mut apache = Command::new(&ctl)
        .arg("start-foreground")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let me = proc_stat(apache.id()).unwrap();
    struct Guard(ProcStat);
    impl Drop for Guard {
        fn drop(&mut self) {
            for p in descendants(self.0.pid) {
                kill(&p, libc::SIGKILL);
            }
            kill(&self.0, libc::SIGKILL);
        }
    }
    let guard = Guard(me.clone());
    let port: u16 = port.parse().unwrap();
    let up = eventually(Duration::from_secs(20), || TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(up, "Apache from apachectl did not listen on {port}");
    let (status, body) = http_get(port, "/");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello from oxwsgi!"));
    let tree = descendants(me.pid);
    unsafe {
        libc::kill(me.pid as i32, libc::SIGTERM);
    }
    let stopped = eventually(STOP, || apache.try_wait().unwrap().is_some());
    assert!(stopped, "Apache did not stop on SIGTERM");
    assert_all_gone(&tree, "");
    drop(guard);
}
