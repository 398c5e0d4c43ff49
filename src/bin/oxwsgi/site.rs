//! The site `oxwsgi serve` runs, resolved from the command line, and the files it generates:
//! httpd.conf, the `apachectl` start script, and the WSGI script for a `module:callable` app.
//! Rendering is pure (no I/O) so it is unit-tested without Apache.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::{Fail, Result};

/// The daemon process group `serve` defines.
pub const GROUP: &str = "oxwsgi";

/// Apache worker threads per child in daemon mode (they only relay requests to the daemons).
const RELAY_THREADS: u32 = 25;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `WSGIDaemonProcess` with `processes` × `threads`.
    Daemon { processes: u32, threads: u32, request_timeout: u64 },
    /// The application runs in Apache's event-MPM children: `processes` × `threads`.
    Embedded { processes: u32, threads: u32 },
}

impl Mode {
    pub fn describe(&self) -> String {
        let plural = |n: u32, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        match self {
            Mode::Daemon { processes, threads, request_timeout } => format!(
                "daemon ({} × {}, request-timeout {})",
                plural(*processes, "process", "processes"),
                plural(*threads, "thread", "threads"),
                if *request_timeout == 0 { "off".to_string() } else { format!("{request_timeout} s") }
            ),
            Mode::Embedded { processes, threads } => format!(
                "embedded ({} × {} in Apache's event MPM)",
                plural(*processes, "process", "processes"),
                plural(*threads, "thread", "threads")
            ),
        }
    }
}

/// Everything the generated configuration depends on. Paths are absolute.
#[derive(Debug, Clone)]
pub struct Site {
    /// What the user asked to serve, for comments and the banner.
    pub app_label: String,
    pub server_root: PathBuf,
    pub httpd: PathBuf,
    /// Apache's stock modules (mod_mpm_event.so, ...).
    pub apache_modules: PathBuf,
    /// libmod_oxwsgi.so.
    pub module: PathBuf,
    pub host: String,
    pub port: u16,
    pub mode: Mode,
    /// The WSGI script Apache mounts (the user's file, or the generated one for module:callable).
    pub script: PathBuf,
    /// `callable-object=` for the mount (None: `application`).
    pub callable: Option<String>,
    /// The application's directory: the daemon's working directory (`home=`).
    pub app_dir: PathBuf,
    pub mount_point: String,
    pub python_home: Option<PathBuf>,
    pub python_path: Vec<PathBuf>,
    pub url_aliases: Vec<(String, PathBuf)>,
    pub reload: bool,
    pub log_to_terminal: bool,
    pub access_log: bool,
    pub log_level: String,
    pub user: String,
    pub group: String,
    pub mime_types: Option<PathBuf>,
}

impl Site {
    pub fn config_path(&self) -> PathBuf {
        self.server_root.join("httpd.conf")
    }

    pub fn apachectl_path(&self) -> PathBuf {
        self.server_root.join("apachectl")
    }

    pub fn error_log(&self) -> PathBuf {
        if self.log_to_terminal {
            PathBuf::from("/dev/stderr")
        } else {
            self.server_root.join("logs/error_log")
        }
    }

    pub fn access_log_path(&self) -> Option<PathBuf> {
        match (self.access_log, self.log_to_terminal) {
            (false, _) => None,
            (true, true) => Some(PathBuf::from("/dev/stdout")),
            (true, false) => Some(self.server_root.join("logs/access_log")),
        }
    }

    /// Where Apache's own stdout/stderr go when not logging to the terminal.
    pub fn apache_output_log(&self) -> PathBuf {
        self.server_root.join("logs/apache2.out")
    }

    pub fn pid_file(&self) -> PathBuf {
        self.server_root.join("run/httpd.pid")
    }

    /// The host for URLs and for connecting to the server ourselves.
    pub fn connect_host(&self) -> &str {
        match self.host.as_str() {
            "0.0.0.0" | "" => "127.0.0.1",
            "::" | "[::]" => "::1",
            h => h,
        }
    }

    pub fn url(&self) -> String {
        let host = self.connect_host();
        let host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
        let path = if self.mount_point == "/" { "/".to_string() } else { format!("{}/", self.mount_point) };
        format!("http://{host}:{}{path}", self.port)
    }

    fn listen(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    fn server_name(&self) -> String {
        match self.host.as_str() {
            "0.0.0.0" | "::" | "[::]" | "" => "localhost".to_string(),
            h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
            h => h.to_string(),
        }
    }

    /// MPM limits: small and fixed, for a 2-core machine. In embedded mode the Apache threads
    /// are the application's threads, so they follow --processes/--threads exactly; in daemon
    /// mode they only relay requests, and there are enough of them for every daemon thread plus
    /// static files.
    fn mpm(&self) -> (u32, u32, u32) {
        match self.mode {
            Mode::Embedded { processes, threads } => (processes, processes, threads),
            Mode::Daemon { processes, threads, .. } => {
                let wanted = processes * threads + 10;
                let servers = wanted.div_ceil(RELAY_THREADS).clamp(2, 16);
                (1, servers, RELAY_THREADS)
            }
        }
    }

    /// The whole httpd.conf.
    pub fn render_config(&self) -> String {
        let root = self.server_root.display().to_string();
        let mods = self.apache_modules.display().to_string();
        let mut c = String::new();
        let _ = writeln!(c, "# Generated by `oxwsgi serve {}`.", self.app_label);
        c.push_str("# Rewritten at every start: change the oxwsgi command line rather than this file.\n");
        c.push_str("# Every directive is described in docs/configuration.md.\n\n");
        let _ = writeln!(c, "ServerRoot {}", q(&root));
        let _ = writeln!(c, "DefaultRuntimeDir {}", q(&format!("{root}/run")));
        let _ = writeln!(c, "PidFile {}", q(&self.pid_file().display().to_string()));
        let _ = writeln!(c, "Mutex {} default", q(&format!("file:{root}/run")));
        c.push('\n');
        for m in ["mpm_event", "authz_core", "alias", "mime", "dir"] {
            let _ = writeln!(c, "LoadModule {m}_module {}", q(&format!("{mods}/mod_{m}.so")));
        }
        let _ = writeln!(c, "LoadModule wsgi_module {}", q(&self.module.display().to_string()));
        c.push('\n');

        let (start, servers, threads) = self.mpm();
        c.push_str("<IfModule mpm_event_module>\n");
        let _ = writeln!(c, "    StartServers {start}");
        let _ = writeln!(c, "    ServerLimit {servers}");
        let _ = writeln!(c, "    ThreadLimit {threads}");
        let _ = writeln!(c, "    ThreadsPerChild {threads}");
        let _ = writeln!(c, "    MinSpareThreads {threads}");
        let _ = writeln!(c, "    MaxSpareThreads {}", (servers + 1) * threads);
        let _ = writeln!(c, "    MaxRequestWorkers {}", servers * threads);
        c.push_str("    MaxConnectionsPerChild 0\n");
        c.push_str("</IfModule>\n\n");

        let _ = writeln!(c, "User {}", q(&self.user));
        let _ = writeln!(c, "Group {}", q(&self.group));
        if let Mode::Embedded { processes, .. } = self.mode {
            if let Some(ratio) = listen_buckets_ratio(processes, online_cpus()) {
                let _ = writeln!(c, "ListenCoresBucketsRatio {ratio}");
            }
        }
        let _ = writeln!(c, "Listen {}", self.listen());
        let _ = writeln!(c, "ServerName {}:{}", self.server_name(), self.port);
        c.push_str("Timeout 60\nKeepAlive On\nMaxKeepAliveRequests 100\nKeepAliveTimeout 5\n");
        if let Some(types) = &self.mime_types {
            let _ = writeln!(c, "TypesConfig {}", q(&types.display().to_string()));
        }
        c.push('\n');
        let _ = writeln!(c, "ErrorLog {}", q(&self.error_log().display().to_string()));
        let _ = writeln!(c, "LogLevel {}", self.log_level);
        if let Some(access) = self.access_log_path() {
            c.push_str(
                "LogFormat \"%h %l %u %t \\\"%r\\\" %>s %b \\\"%{Referer}i\\\" \\\"%{User-Agent}i\\\" %D\" oxwsgi\n",
            );
            let _ = writeln!(c, "CustomLog {} oxwsgi", q(&access.display().to_string()));
        }
        c.push('\n');

        c.push_str("# Nothing is served from the file system unless granted below.\n");
        let _ = writeln!(c, "DocumentRoot {}", q(&format!("{root}/htdocs")));
        c.push_str("<Directory />\n    AllowOverride None\n    Options None\n    Require all denied\n</Directory>\n");
        let _ = writeln!(c, "<Directory {}>\n    Require all granted\n</Directory>", q(&format!("{root}/htdocs")));
        c.push('\n');

        c.push_str("# The application.\n");
        if let Some(home) = &self.python_home {
            let _ = writeln!(c, "WSGIPythonHome {}", q(&home.display().to_string()));
        }
        let python_path = self.python_path.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":");
        let _ = writeln!(c, "WSGIScriptReloading {}", if self.reload { "On" } else { "Off" });
        let mut mount_options = String::new();
        match &self.mode {
            Mode::Embedded { .. } => {
                if !python_path.is_empty() {
                    let _ = writeln!(c, "WSGIPythonPath {}", q(&python_path));
                }
            }
            Mode::Daemon { processes, threads, request_timeout } => {
                let _ = writeln!(c, "WSGISocketPrefix {}", q(&format!("{root}/run/wsgi")));
                let _ = write!(c, "WSGIDaemonProcess {GROUP}");
                // processes= makes wsgi.multiprocess true even for 1 (mod_wsgi's rule): only
                // say it when there really are several.
                if *processes > 1 {
                    let _ = write!(c, " processes={processes}");
                }
                let _ = write!(c, " threads={threads} request-timeout={request_timeout}");
                let _ = write!(c, " display-name=%{{GROUP}}");
                let _ = write!(c, " home={}", q(&self.app_dir.display().to_string()));
                // Daemon groups take their Python from python-home=, not WSGIPythonHome.
                if let Some(home) = &self.python_home {
                    let _ = write!(c, " python-home={}", q(&home.display().to_string()));
                }
                if !python_path.is_empty() {
                    let _ = write!(c, " python-path={}", q(&python_path));
                }
                c.push('\n');
                let _ = write!(mount_options, " process-group={GROUP}");
            }
        }
        mount_options.push_str(" application-group=%{GLOBAL}");
        if let Some(callable) = &self.callable {
            let _ = write!(mount_options, " callable-object={}", q(callable));
        }
        let script_dir = self.script.parent().unwrap_or(Path::new("/")).display().to_string();
        let script_name = self.script.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = writeln!(
            c,
            "<Directory {}>\n    <Files {}>\n        Require all granted\n    </Files>\n</Directory>",
            q(&script_dir),
            q(&script_name)
        );
        let _ = writeln!(
            c,
            "WSGIScriptAlias {} {}{mount_options}",
            q(&self.mount_point),
            q(&self.script.display().to_string())
        );

        if !self.url_aliases.is_empty() {
            c.push_str("\n# Static files, served by Apache (--url-alias).\n");
        }
        for (url, target) in &self.url_aliases {
            let target_s = target.display().to_string();
            let _ = writeln!(c, "Alias {} {}", q(url), q(&target_s));
            if target.is_dir() {
                let _ = writeln!(c, "<Directory {}>\n    Require all granted\n</Directory>", q(&target_s));
            } else {
                let dir = target.parent().unwrap_or(Path::new("/")).display().to_string();
                let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let _ = writeln!(
                    c,
                    "<Directory {}>\n    <Files {}>\n        Require all granted\n    </Files>\n</Directory>",
                    q(&dir),
                    q(&name)
                );
            }
        }
        c
    }

    /// An `apachectl`-style script for `--setup-only`.
    pub fn render_apachectl(&self) -> String {
        let httpd = sh(&self.httpd.display().to_string());
        let conf = sh(&self.config_path().display().to_string());
        format!(
            "#!/bin/sh\n\
             # Generated by `oxwsgi serve --setup-only` for {label}.\n\
             # Controls the Apache configured in this directory ({conf_plain}).\n\
             #   {me} start              start Apache in the background\n\
             #   {me} start-foreground   run it in the foreground (Ctrl-C stops it)\n\
             #   {me} stop | graceful-stop | restart | graceful | configtest\n\
             # No warm-up request is sent: the application loads on its first request.\n\
             HTTPD={httpd}\n\
             CONF={conf}\n\
             unset PYTHONHOME PYTHONPATH\n\
             case \"${{1:-start}}\" in\n  \
               start|stop|restart|graceful|graceful-stop)\n    \
                 exec \"$HTTPD\" -f \"$CONF\" -k \"${{1:-start}}\" ;;\n  \
               start-foreground|foreground)\n    \
                 exec \"$HTTPD\" -f \"$CONF\" -DFOREGROUND ;;\n  \
               configtest|-t)\n    \
                 exec \"$HTTPD\" -f \"$CONF\" -t ;;\n  \
               *)\n    \
                 echo \"usage: $0 start|start-foreground|stop|graceful-stop|restart|graceful|configtest\" >&2\n    \
                 exit 2 ;;\n\
             esac\n",
            label = self.app_label.replace('\n', " "),
            conf_plain = self.config_path().display(),
            me = self.apachectl_path().display(),
        )
    }
}

/// `ListenCoresBucketsRatio` for `processes` embedded children on `cpus` online CPUs: each
/// child then listens on a socket of its own (SO_REUSEPORT buckets, Apache makes `cpus / ratio`
/// of them), so the kernel spreads the connections over the children. Otherwise one child's
/// listener may take most keep-alive connections, and the application runs on that child's GIL
/// while the others idle. None when fewer than two buckets would come of it.
fn listen_buckets_ratio(processes: u32, cpus: u32) -> Option<u32> {
    let ratio = cpus.div_ceil(processes.max(1));
    (processes >= 2 && ratio >= 1 && cpus / ratio >= 2).then_some(ratio)
}

/// The online CPUs, as Apache counts them for `ListenCoresBucketsRatio`.
fn online_cpus() -> u32 {
    // Safe: sysconf reads a value, no pointers.
    u32::try_from(unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }).unwrap_or(1)
}

/// The WSGI script generated for a `module:callable` application.
pub fn render_module_script(app_label: &str, module: &str, attr: &str, python_path: &[PathBuf]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Generated by oxwsgi serve for {app_label}; rewritten at every start.");
    s.push_str("# It imports the module and exposes its callable as `application`.\n");
    s.push_str("import importlib\nimport sys\n\n");
    s.push_str("for _path in reversed([\n");
    for p in python_path {
        let _ = writeln!(s, "    {},", py_str(&p.display().to_string()));
    }
    s.push_str("]):\n    if _path not in sys.path:\n        sys.path.insert(0, _path)\n\n");
    let _ = writeln!(s, "application = importlib.import_module({})", py_str(module));
    for part in attr.split('.') {
        let _ = writeln!(s, "application = getattr(application, {})", py_str(part));
    }
    s
}

/// A double-quoted Apache argument. The values were checked with [`conf_safe`].
pub fn q(s: &str) -> String {
    format!("\"{s}\"")
}

/// A single-quoted shell word.
pub fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A Python string literal.
pub fn py_str(s: &str) -> String {
    let mut out = String::from("'");
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// Fails if `value` cannot be written into an Apache configuration as a quoted argument.
pub fn conf_safe(what: &str, value: &str) -> Result<()> {
    let bad = value.chars().find(|c| matches!(c, '"' | '\\' | '\n' | '\r' | '\0'));
    if let Some(c) = bad {
        return Err(Fail(format!(
            "{what} '{}' contains {c:?}, which oxwsgi cannot put into an Apache configuration",
            value.escape_debug()
        )));
    }
    if value.contains("${") {
        return Err(Fail(format!("{what} '{value}' contains '${{', which Apache would read as a variable")));
    }
    Ok(())
}

/// Is `s` a dotted Python name (`a`, `a.b_c`)?
pub fn is_dotted_name(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
                && chars.all(|c| c == '_' || c.is_alphanumeric())
        })
}

/// `/`, or the path without a trailing `/`, runs of `/` folded; must start with `/`.
pub fn normalize_url_path(what: &str, url: &str) -> Result<String> {
    if !url.starts_with('/') {
        return Err(Fail(format!("{what} '{url}' must start with '/'")));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Fail(format!("{what} '{}' must not contain spaces or control characters", url.escape_debug())));
    }
    conf_safe(what, url)?;
    let mut out = String::new();
    for c in url.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    while out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(mode: Mode) -> Site {
        Site {
            app_label: "hello.wsgi".into(),
            server_root: "/tmp/oxwsgi-abc".into(),
            httpd: "/usr/sbin/apache2".into(),
            apache_modules: "/usr/lib/apache2/modules".into(),
            module: "/work/target/debug/libmod_oxwsgi.so".into(),
            host: "127.0.0.1".into(),
            port: 8000,
            mode,
            script: "/srv/app/hello.wsgi".into(),
            callable: None,
            app_dir: "/srv/app".into(),
            mount_point: "/".into(),
            python_home: None,
            python_path: vec!["/srv/app".into()],
            url_aliases: vec![("/static".into(), "/srv/app".into())],
            reload: false,
            log_to_terminal: false,
            access_log: false,
            log_level: "warn".into(),
            user: "www-data".into(),
            group: "www-data".into(),
            mime_types: Some("/etc/mime.types".into()),
        }
    }

    #[test]
    fn daemon_config() {
        let c = site(Mode::Daemon { processes: 1, threads: 5, request_timeout: 60 }).render_config();
        assert!(c.contains(
            "WSGIDaemonProcess oxwsgi threads=5 request-timeout=60 display-name=%{GROUP} home=\"/srv/app\" python-path=\"/srv/app\"\n"
        ), "{c}");
        assert!(
            c.contains(
                "WSGIScriptAlias \"/\" \"/srv/app/hello.wsgi\" process-group=oxwsgi application-group=%{GLOBAL}\n"
            ),
            "{c}"
        );
        assert!(c.contains("WSGISocketPrefix \"/tmp/oxwsgi-abc/run/wsgi\"\n"));
        assert!(c.contains("WSGIScriptReloading Off\n"));
        assert!(c.contains("Listen 127.0.0.1:8000\n"));
        assert!(c.contains("ServerLimit 2\n") && c.contains("MaxRequestWorkers 50\n"), "{c}");
        assert!(!c.contains("CustomLog"));
        assert!(!c.contains("WSGIPythonPath"));
        let c = site(Mode::Daemon { processes: 3, threads: 20, request_timeout: 0 }).render_config();
        assert!(c.contains("WSGIDaemonProcess oxwsgi processes=3 threads=20 request-timeout=0 "), "{c}");
        assert!(c.contains("ServerLimit 3\n"), "{c}");
    }

    #[test]
    fn embedded_config() {
        let mut s = site(Mode::Embedded { processes: 2, threads: 4 });
        s.callable = Some("app".into());
        s.access_log = true;
        s.log_to_terminal = true;
        s.reload = true;
        s.python_home = Some("/srv/venv".into());
        let c = s.render_config();
        let mut d = s.clone();
        d.mode = Mode::Daemon { processes: 1, threads: 5, request_timeout: 60 };
        assert!(d.render_config().contains(" home=\"/srv/app\" python-home=\"/srv/venv\" python-path="));
        assert!(!c.contains("WSGIDaemonProcess") && !c.contains("process-group"), "{c}");
        assert!(
            c.contains(
                "WSGIScriptAlias \"/\" \"/srv/app/hello.wsgi\" application-group=%{GLOBAL} callable-object=\"app\"\n"
            ),
            "{c}"
        );
        assert!(c.contains("WSGIPythonPath \"/srv/app\"\n"));
        assert!(c.contains("WSGIPythonHome \"/srv/venv\"\n"));
        assert!(
            c.contains("ServerLimit 2\n") && c.contains("ThreadsPerChild 4\n") && c.contains("MaxRequestWorkers 8\n"),
            "{c}"
        );
        assert!(c.contains("ErrorLog \"/dev/stderr\"\n") && c.contains("CustomLog \"/dev/stdout\" oxwsgi\n"));
        assert!(c.contains("WSGIScriptReloading On\n"));
        assert!(c.contains("Alias \"/static\" \"/srv/app\"\n"));
    }

    #[test]
    fn embedded_children_listen_on_sockets_of_their_own() {
        // Apache makes cpus / ratio buckets: never more than the children, at least two.
        assert_eq!(listen_buckets_ratio(2, 2), Some(1));
        assert_eq!(listen_buckets_ratio(2, 8), Some(4));
        assert_eq!(listen_buckets_ratio(4, 8), Some(2));
        assert_eq!(listen_buckets_ratio(3, 8), Some(3));
        assert_eq!(listen_buckets_ratio(8, 2), Some(1));
        assert_eq!(listen_buckets_ratio(1, 8), None);
        assert_eq!(listen_buckets_ratio(2, 1), None);
        assert_eq!(listen_buckets_ratio(2, 3), None);
        let embedded = site(Mode::Embedded { processes: 2, threads: 4 }).render_config();
        let one = site(Mode::Embedded { processes: 1, threads: 4 }).render_config();
        let daemon = site(Mode::Daemon { processes: 2, threads: 5, request_timeout: 60 }).render_config();
        assert_eq!(embedded.contains("ListenCoresBucketsRatio "), online_cpus() >= 2, "{embedded}");
        assert!(!one.contains("ListenCoresBucketsRatio") && !daemon.contains("ListenCoresBucketsRatio"));
    }

    #[test]
    fn urls() {
        let mut s = site(Mode::Embedded { processes: 1, threads: 1 });
        assert_eq!(s.url(), "http://127.0.0.1:8000/");
        s.mount_point = "/app".into();
        s.host = "0.0.0.0".into();
        assert_eq!(s.url(), "http://127.0.0.1:8000/app/");
        s.host = "::1".into();
        assert_eq!(s.url(), "http://[::1]:8000/app/");
        assert_eq!(s.listen(), "[::1]:8000");
    }

    #[test]
    fn module_script_is_python() {
        let s = render_module_script("pkg.mod:app", "pkg.mod", "app.inner", &["/x/it's".into()]);
        assert!(s.contains("    '/x/it\\'s',\n"), "{s}");
        assert!(s.contains("application = importlib.import_module('pkg.mod')\n"));
        assert!(s.contains("application = getattr(application, 'inner')\n"));
    }

    #[test]
    fn names_and_paths() {
        assert!(is_dotted_name("mysite.wsgi") && is_dotted_name("_a.b2") && is_dotted_name("app"));
        assert!(!is_dotted_name("") && !is_dotted_name("a..b") && !is_dotted_name("2a") && !is_dotted_name("a-b"));
        assert_eq!(normalize_url_path("m", "/").unwrap(), "/");
        assert_eq!(normalize_url_path("m", "//app//").unwrap(), "/app");
        assert!(normalize_url_path("m", "app").is_err());
        assert!(normalize_url_path("m", "/a b").is_err());
        assert!(
            conf_safe("p", "/a\"b").is_err() && conf_safe("p", "/a${X}").is_err() && conf_safe("p", "/a b").is_ok()
        );
        assert_eq!(sh("it's"), "'it'\\''s'");
        assert_eq!(py_str("a\nb"), "'a\\x0ab'");
    }
}
