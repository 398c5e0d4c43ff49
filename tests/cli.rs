//! The `oxwsgi` command, run as a real process: `serve` on a WSGI file and on a
//! `module:callable` (embedded and daemon mode), static files from `--url-alias`, a clean stop
//! on SIGTERM/SIGINT with every Apache process gone, the one-line errors, `module-config` in a
//! real `apache2 -t`, `install-module --destdir`, and `--setup-only`.
//!
//! Every wait is bounded; every process a test starts is killed (by pid, with its /proc
//! descendants) when the test ends, also when it panics.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

mod common;
use common::cli::{
    assert_all_gone, assert_one_line_error, free_port, http_get, kill, run, Serve, TempDir, OXWSGI, STOP,
};
use common::eventually;
use common::procs::{descendants, proc_stat, ProcStat};

const HTTPD: &str = "/usr/sbin/apache2";
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

// ---------------------------------------------------------------------------------------------
// Helpers (the shared ones are in tests/common/cli.rs)

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

    s.stop_cleanly(libc::SIGINT);
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

    let procs = s.stop_cleanly(libc::SIGTERM);
    assert!(procs.iter().any(|p| p.pid == app_pid));
    // --server-root is kept.
    assert!(server_root.path().join("logs/error_log").is_file());
}

/// Embedded mode with two children: each listens on a socket of its own
/// (ListenCoresBucketsRatio), so connections held open at once reach both children rather than
/// all landing in the one whose listener woke first (whose GIL would then serve them all).
#[test]
fn serve_embedded_children_share_the_connections() {
    // Safe: sysconf reads a value.
    if unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) } < 2 {
        eprintln!("skipped: one CPU, so Apache makes one listening bucket");
        return;
    }
    let dir = TempDir::new("buckets");
    dir.example("hello.wsgi");
    let server_root = TempDir::new("buckets-root");
    let root_arg = server_root.path().display().to_string();
    let mut s = Serve::start(
        dir.path(),
        &["hello.wsgi", "--embedded", "--processes", "2", "--threads", "16", "--server-root", &root_arg],
    );
    let conf = fs::read_to_string(server_root.path().join("httpd.conf")).unwrap();
    assert!(conf.contains("ListenCoresBucketsRatio "), "{conf}");
    assert_eq!(s.get("/").0, 200, "{}", s.output());
    // One listening socket per child (SO_REUSEPORT), which the kernel spreads connections over.
    let listening = fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&format!(":{:04X}", s.port)) && f[3] == "0A"
        })
        .count();
    assert_eq!(listening, 2, "listening sockets on port {}", s.port);
    // 16 keep-alive connections open at once, one request each; the pid says which child.
    let mut conns: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(("127.0.0.1", s.port)).unwrap()).collect();
    let mut pids = std::collections::BTreeMap::<u32, usize>::new();
    for c in &mut conns {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        std::io::Write::write_all(c, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("pid:") || !got.ends_with(b"\n") {
            let n = std::io::Read::read(c, &mut buf).unwrap();
            assert!(n > 0, "connection closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        let pid = text.lines().find_map(|l| l.strip_prefix("pid:")).unwrap().trim().parse().unwrap();
        *pids.entry(pid).or_default() += 1;
    }
    assert_eq!(pids.len(), 2, "connections per child: {pids:?}");
    s.stop_cleanly(libc::SIGTERM);
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
    let made = Command::new(common::python::PYTHON)
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .stdin(Stdio::null())
        .output()
        .expect("python -m venv");
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
        s.stop_cleanly(libc::SIGTERM);
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
