//! The `oxwsgi` command as a real process, for the tests that run it (tests/cli.rs, and
//! tests/wheel.rs on the command installed from the wheel): `Serve` (a running `oxwsgi serve`,
//! killed with every process below it when dropped), `run` (to completion, bounded), a one-shot
//! HTTP GET, and `TempDir` (readable by Apache's www-data children).
//!
//! Every wait is bounded; every process is stopped by its pid (with its /proc descendants).

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

use super::eventually;
use super::procs::{descendants, proc_stat, same_process_alive, ProcStat};

/// The `oxwsgi` command cargo built for the tests.
pub const OXWSGI: &str = env!("CARGO_BIN_EXE_oxwsgi");
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
/// How long `serve` may take to print its banner (it imports the app, configtests, starts Apache).
pub const START: Duration = Duration::from_secs(60);
/// How long `serve` may take to exit after SIGTERM (its own stop timeout is 10 s).
pub const STOP: Duration = Duration::from_secs(30);

/// A directory under /tmp (mode 0755, readable by www-data), removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
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

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `rel` (mode 0644, parent directories 0755).
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
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
    pub fn example(&self, name: &str) -> PathBuf {
        let src = Path::new(MANIFEST).join("examples").join(name);
        self.write(name, fs::read(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Is the process `p` names (its pid and start time, so a reused pid does not count) alive?
pub fn alive(p: &ProcStat) -> bool {
    same_process_alive(p.pid, p.starttime)
}

pub fn kill(p: &ProcStat, sig: i32) {
    if alive(p) {
        unsafe {
            libc::kill(p.pid as i32, sig);
        }
    }
}

/// Collects a pipe's lines in a background thread.
pub fn collect(pipe: impl Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
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
pub struct Serve {
    child: Child,
    pub me: ProcStat,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Every process seen below oxwsgi, for cleanup.
    seen: Vec<ProcStat>,
    pub status: Option<ExitStatus>,
    pub port: u16,
}

impl Serve {
    /// `oxwsgi serve ARGS... --port <free>` in `cwd`.
    pub fn start(cwd: &Path, args: &[&str]) -> Serve {
        Serve::start_command(Command::new(OXWSGI), cwd, args)
    }

    /// `CMD serve ARGS... --port <free>` in `cwd`, where `cmd` runs some `oxwsgi` (e.g.
    /// `python -m oxwsgi`).
    pub fn start_command(mut cmd: Command, cwd: &Path, args: &[&str]) -> Serve {
        let port = free_port();
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

    pub fn stdout_text(&self) -> String {
        self.stdout.lock().unwrap().join("\n")
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub fn output(&self) -> String {
        format!("--- stdout ---\n{}\n--- stderr ---\n{}", self.stdout_text(), self.stderr_text())
    }

    pub fn has_exited(&mut self) -> bool {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status.is_some()
    }

    pub fn remember(&mut self) {
        for p in descendants(self.me.pid) {
            if !self.seen.iter().any(|s| s.pid == p.pid && s.starttime == p.starttime) {
                self.seen.push(p);
            }
        }
    }

    /// The banner line starting with `label` (e.g. "config:"), its value.
    pub fn banner(&self, label: &str) -> String {
        let text = self.stdout_text();
        let line = text
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no '{label}' line in the banner\n{}", self.output()));
        line.trim().to_string()
    }

    /// Apache's pid, from "oxwsgi: serving APP with Apache (pid N)".
    pub fn apache_pid(&self) -> u32 {
        let text = self.stdout_text();
        let at = text.find("(pid ").unwrap_or_else(|| panic!("no pid in the banner\n{}", self.output()));
        text[at + 5..].split(')').next().unwrap().parse().unwrap()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.port, path)
    }

    /// Sends `sig` to oxwsgi and waits (bounded) for it to exit; returns its status and every
    /// process that was below it just before.
    pub fn stop_with(&mut self, sig: i32) -> (ExitStatus, Vec<ProcStat>) {
        self.remember();
        let before = self.seen.clone();
        unsafe {
            libc::kill(self.me.pid as i32, sig);
        }
        let exited = eventually(STOP, || self.has_exited());
        assert!(exited, "oxwsgi did not exit within {STOP:?} of signal {sig}\n{}", self.output());
        (self.status.unwrap(), before)
    }

    /// Stops oxwsgi with `sig` and asserts a clean stop: exit status 0 and every process that
    /// was below it gone. Returns those processes.
    pub fn stop_cleanly(&mut self, sig: i32) -> Vec<ProcStat> {
        let (status, procs) = self.stop_with(sig);
        assert_eq!(status.code(), Some(0), "{}", self.output());
        assert_all_gone(&procs, &self.output());
        procs
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
pub fn http_get(port: u16, path: &str) -> (u16, String) {
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

pub fn try_http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
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

pub fn assert_all_gone(procs: &[ProcStat], output: &str) {
    let ok = eventually(Duration::from_secs(5), || procs.iter().all(|p| !alive(p)));
    let left: Vec<&ProcStat> = procs.iter().filter(|p| alive(p)).collect();
    assert!(ok, "processes still alive after oxwsgi exited: {left:?}\n{output}");
}

/// Runs `oxwsgi ARGS` to completion (bounded) in `cwd`.
pub fn run(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    run_command(Command::new(OXWSGI), cwd, args, env)
}

/// Runs `CMD ARGS` to completion (bounded) in `cwd`, where `cmd` runs some `oxwsgi`.
pub fn run_command(mut cmd: Command, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
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
        panic!("{:?} {args:?} did not finish within {START:?}", cmd.get_program());
    }
    // The readers finish at EOF; oxwsgi leaves no process holding its pipes.
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    Output { status: status.unwrap(), stdout, stderr }
}

/// Asserts a user error: exit status 1, nothing on stdout, exactly one stderr line
/// `oxwsgi: ...` containing every `needle`.
#[track_caller]
pub fn assert_one_line_error(out: &Output, needles: &[&str]) -> String {
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
