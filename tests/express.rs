//! mod_wsgi-express's own configurations, run unchanged but for the LoadModule line.
//!
//! mod_wsgi 6.x comes from PyPI into a cached virtualenv of the Python oxwsgi is built for (see
//! django/venv.rs); `mod_wsgi-express setup-server` writes a server root for an app with each
//! option set below; the test swaps its `LoadModule wsgi_module` line for oxwsgi's module,
//! runs the generated `apachectl configtest` and `apachectl start`, and checks what is served.
//! Apache is stopped by the pid in the server root's httpd.pid, then by its process tree.
//! Where PyPI cannot be reached the tests say so and skip.

mod common;
#[path = "django/venv.rs"]
mod venv;

use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{build_request, descendants, process_alive, Client, Response};
use venv::TempDir;

const APP: &str = r#"
import os

def application(environ, start_response):
    body = "hello from express\nscript_name=%s\npath_info=%s\nmethod=%s\npid=%d\nprocess_group=%s\napplication_group=%s\nurl_scheme=%s\n" % (
        environ["SCRIPT_NAME"], environ["PATH_INFO"], environ["REQUEST_METHOD"], os.getpid(),
        environ["mod_wsgi.process_group"], environ["mod_wsgi.application_group"], environ["wsgi.url_scheme"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
"#;

/// The mod_wsgi venv, or None (with the reason printed) when PyPI cannot be reached.
fn mod_wsgi_venv() -> Option<PathBuf> {
    venv::venv_or_skip(venv::MOD_WSGI_REQUIREMENTS)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A server root written by mod_wsgi-express for `app.wsgi`, running with oxwsgi.
struct Site {
    _dir: TempDir,
    root: PathBuf,
    app: PathBuf,
    port: u16,
    pid: Option<u32>,
}

impl Site {
    fn setup(label: &str, extra: &[&str]) -> Option<Site> {
        let venv = mod_wsgi_venv()?;
        let dir = TempDir::new(&format!("express-{label}"));
        let app = dir.path().join("app.wsgi");
        fs::write(&app, APP).unwrap();
        let root = dir.path().join("root");
        let port = free_port();
        let out = Command::new(venv.join("bin/mod_wsgi-express"))
            .arg("setup-server")
            .arg(&app)
            .arg("--server-root")
            .arg(&root)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--user", "www-data", "--group", "www-data"])
            .args(extra.iter().map(|a| a.replace("{DIR}", dir.path().to_str().unwrap())))
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "setup-server failed: {}", String::from_utf8_lossy(&out.stderr));
        // The one change a site makes to switch: the LoadModule line.
        let conf_path = root.join("httpd.conf");
        let conf = fs::read_to_string(&conf_path).unwrap();
        let module = common::apache::oxwsgi_module();
        let mut swapped = 0;
        let conf: String = conf
            .lines()
            .map(|l| {
                if l.starts_with("LoadModule wsgi_module ") {
                    swapped += 1;
                    format!("LoadModule wsgi_module '{}'", module.display())
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(swapped, 1, "one LoadModule wsgi_module line in {}", conf_path.display());
        fs::write(&conf_path, conf + "\n").unwrap();
        venv::make_world_readable(dir.path()).unwrap();
        Some(Site { _dir: dir, root, app, port, pid: None })
    }

    fn apachectl(&self, what: &str) -> (bool, String) {
        let out = venv::run_with_timeout(
            Command::new(self.root.join("apachectl")).arg(what).env("LANG", "C").env_remove("LC_ALL"),
            Duration::from_secs(60),
        );
        match out {
            Ok(o) => (true, o),
            Err(e) => (false, e),
        }
    }

    fn start(&mut self) {
        let (ok, out) = self.apachectl("configtest");
        assert!(ok && out.contains("Syntax OK"), "configtest failed:\n{out}");
        let (ok, out) = self.apachectl("start");
        assert!(ok, "apachectl start failed:\n{out}\n{}", self.error_log());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(pid) = fs::read_to_string(self.root.join("httpd.pid")).ok().and_then(|p| p.trim().parse().ok())
            {
                self.pid = Some(pid);
                if Client::connect(self.addr()).is_ok() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "Apache did not start:\n{}", self.error_log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn request(&self, method: &str, path: &str) -> Response {
        let mut c = Client::connect(self.addr()).unwrap();
        c.request_raw(&build_request(method, path, "localhost", &[], b""))
    }

    fn get(&self, path: &str) -> Response {
        let r = self.request("GET", path);
        assert_eq!(r.status, 200, "GET {path}: {}\n{}", r.text(), self.error_log());
        r
    }

    fn error_log(&self) -> String {
        fs::read_to_string(self.root.join("error_log")).unwrap_or_default()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let Some(pid) = self.pid else { return };
        let tree: Vec<u32> = descendants(pid).iter().map(|p| p.pid).collect();
        let _ = self.apachectl("stop");
        let deadline = Instant::now() + Duration::from_secs(15);
        while process_alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in std::iter::once(pid).chain(tree) {
            if process_alive(p) {
                unsafe { libc::kill(p as i32, libc::SIGKILL) };
            }
        }
    }
}

fn field(r: &Response, name: &str) -> String {
    let text = r.text();
    let prefix = format!("{name}=");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| panic!("no {name} in {text}")).to_string()
}

#[test]
fn default_setup_serves_through_its_handler_script_in_daemon_mode() {
    let Some(mut site) = Site::setup("default", &[]) else { return };
    site.start();
    let r = site.get("/");
    assert!(r.text().starts_with("hello from express"), "{}", r.text());
    // The handler script mounts the app at '/': SCRIPT_NAME '' and the whole path in PATH_INFO.
    assert_eq!((field(&r, "script_name"), field(&r, "path_info")), ("".into(), "/".into()));
    let r = site.get("/some/deep/path");
    assert_eq!(field(&r, "path_info"), "/some/deep/path");
    // Daemon mode: the group mod_wsgi-express defines, in the main interpreter.
    // (mod_wsgi-express names it after --host and --port.)
    assert_eq!(field(&r, "process_group"), format!("127.0.0.1:{}", site.port));
    assert_eq!(field(&r, "application_group"), "");
    let apache = site.pid.unwrap();
    let daemon: u32 = field(&r, "pid").parse().unwrap();
    assert_ne!(daemon, apache);
    // The handler script was imported at start (WSGIImportScript): one load, in that daemon.
    let head = site.request("HEAD", "/");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let log = site.error_log();
    assert!(!log.contains("Traceback"), "{log}");
    assert!(!log.contains("Invalid command"), "{log}");
}

#[test]
fn processes_and_threads_and_a_url_alias() {
    let Some(mut site) =
        Site::setup("multi", &["--processes", "2", "--threads", "3", "--url-alias", "/static", "{DIR}/static"])
    else {
        return;
    };
    let static_dir = site.app.parent().unwrap().join("static");
    fs::create_dir_all(&static_dir).unwrap();
    fs::write(static_dir.join("hello.txt"), "static hello\n").unwrap();
    venv::make_world_readable(site.app.parent().unwrap()).unwrap();
    site.start();
    assert_eq!(site.get("/static/hello.txt").text(), "static hello\n");
    let pids: std::collections::BTreeSet<String> = (0..40).map(|_| field(&site.get("/x"), "pid")).collect();
    assert!(!pids.is_empty() && pids.len() <= 2, "{pids:?}");
    // processes=2 with display-name='(wsgi:localhost:PORT:0)': two daemons titled so.
    let title = format!("(wsgi:127.0.0.1:{}:0)", site.port);
    let titled = descendants(site.pid.unwrap())
        .iter()
        .filter(|p| fs::read(format!("/proc/{}/cmdline", p.pid)).is_ok_and(|c| c.starts_with(title.as_bytes())))
        .count();
    assert_eq!(titled, 2, "daemon processes titled {title}");
}

#[test]
fn embedded_mode_setup() {
    let Some(mut site) = Site::setup("embedded", &["--embedded-mode"]) else { return };
    site.start();
    let r = site.get("/e");
    assert_eq!(field(&r, "process_group"), "");
    assert_eq!(field(&r, "path_info"), "/e");
}

#[test]
fn reload_on_changes_restarts_the_daemon_with_the_new_code() {
    let Some(mut site) = Site::setup("reload", &["--reload-on-changes"]) else { return };
    site.start();
    let before = field(&site.get("/"), "pid");
    let new_app = APP.replace("hello from express", "hello again");
    fs::write(&site.app, new_app).unwrap();
    // The reloader polls once a second, then the daemon stops and a new one starts.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = site.request("GET", "/");
        if r.status == 200 && r.text().starts_with("hello again") {
            assert_ne!(field(&r, "pid"), before, "a new process serves the new code");
            break;
        }
        assert!(Instant::now() < deadline, "still the old code:\n{}\n{}", r.text(), site.error_log());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn server_status_setup_serves_apaches_status_page_beside_the_app() {
    let Some(mut site) = Site::setup("status", &["--server-status"]) else { return };
    site.start();
    // mod_status answers /server-status (the rewrite to the handler script leaves it alone).
    let r = site.get("/server-status?auto");
    assert!(r.text().contains("BusyWorkers:") && r.text().contains("Total Accesses:"), "{}", r.text());
    let r = site.get("/s");
    assert_eq!(field(&r, "path_info"), "/s");
}

#[test]
fn https_port_with_a_self_signed_certificate() {
    let certs = TempDir::new("express-certs");
    let (crt, key) = common::self_signed_certificate(certs.path(), "localhost");
    let https_port = free_port().to_string();
    let Some(mut site) = Site::setup(
        "https",
        &[
            "--server-name",
            "localhost",
            "--https-port",
            &https_port,
            "--ssl-certificate-file",
            crt.to_str().unwrap(),
            "--ssl-certificate-key-file",
            key.to_str().unwrap(),
        ],
    ) else {
        return;
    };
    site.start();
    // HTTPS on its port, through the handler script, with wsgi.url_scheme https.
    let url = format!("https://localhost:{https_port}/secure");
    let resolve = format!("localhost:{https_port}:127.0.0.1");
    let out = venv::run_with_timeout(
        Command::new("curl").args(["-sS", "--cacert"]).arg(&crt).args(["--resolve", &resolve, &url]),
        Duration::from_secs(30),
    );
    let body = out.unwrap_or_else(|e| panic!("curl {url}: {e}\n{}", site.error_log()));
    assert!(body.contains("hello from express") && body.contains("url_scheme=https\n"), "{body}");
    assert!(body.contains("path_info=/secure\n"), "{body}");
    // Plain HTTP on the other port still serves the same app.
    let r = site.get("/plain");
    assert!(r.text().contains("url_scheme=http\n"), "{}", r.text());
}

#[test]
fn telemetry_service_setup_reports_to_its_socket() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::net::UnixDatagram;
    let sockets = TempDir::new("express-telemetry");
    fs::set_permissions(sockets.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let sock = sockets.path().join("t.sock");
    let rx = UnixDatagram::bind(&sock).unwrap();
    fs::set_permissions(&sock, fs::Permissions::from_mode(0o666)).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let target = format!("unix:{}", sock.display());
    let args = ["--telemetry-service", &target, "--telemetry-interval", "0.5", "--slow-requests", "2"];
    let Some(mut site) = Site::setup("telemetry", &args) else { return };
    site.start();
    assert_eq!(field(&site.get("/t"), "path_info"), "/t");
    // Every process sends mod_wsgi's datagrams: magic "WSGI", version 1, then the kind.
    let mut kinds = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 8192];
    while !kinds.contains(&2) && Instant::now() < deadline {
        let n = rx.recv(&mut buf).expect("a telemetry datagram within 10 s");
        assert!(n >= 24 && &buf[..5] == b"WSGI\x01", "{:?}", &buf[..n.min(24)]);
        kinds.insert(buf[5]);
    }
    assert!(kinds.contains(&5) && kinds.contains(&2), "process_started and a sample, got kinds {kinds:?}");
}
