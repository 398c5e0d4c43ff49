//! `oxwsgi`: from a WSGI file to a running Apache site in one command, like
//! `mod_wsgi-express start-server app.wsgi`.
//!
//! - `oxwsgi serve APP` writes an Apache configuration into a private server root and runs
//!   `/usr/sbin/apache2 -DFOREGROUND` with the oxwsgi module until Ctrl-C or SIGTERM.
//! - `oxwsgi module-config` prints the `LoadModule` line (and `WSGIPythonHome` in a virtualenv).
//! - `oxwsgi install-module` copies the module into Apache's module directory and writes
//!   Debian's `oxwsgi.load` / `oxwsgi.conf` so `a2enmod oxwsgi` works.
//!
//! Mistakes a user will make end in one `oxwsgi: ...` line on stderr and exit status 1; usage
//! errors exit with 2. `serve` exits 0 only if Apache ran and stopped cleanly when asked to.

#[path = "oxwsgi/checks.rs"]
mod checks;
#[path = "oxwsgi/httpd.rs"]
mod httpd;
/// The library's user and group lookups (libc only), shared as source.
#[path = "../sys/identity.rs"]
#[allow(dead_code)] // the `#id` forms are for daemon options
mod identity;
#[path = "oxwsgi/module.rs"]
mod module;
#[path = "oxwsgi/procs.rs"]
mod procs;
/// The Python-home rules and the built-for Python, shared with the module (a pure file).
#[path = "../config/python_home.rs"]
#[allow(dead_code)]
mod python_home;
#[path = "oxwsgi/run.rs"]
mod run;
#[path = "oxwsgi/site.rs"]
mod site;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// A failure to report: one line, no backtrace.
#[derive(Debug)]
pub struct Fail(pub String);

impl<T: Into<String>> From<T> for Fail {
    fn from(msg: T) -> Fail {
        Fail(msg.into())
    }
}

pub type Result<T, E = Fail> = std::result::Result<T, E>;

/// Writes a line to stdout, ignoring a closed pipe (`oxwsgi serve | head` must not panic).
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Writes `oxwsgi: line` to stderr.
pub fn warn(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "oxwsgi: {line}");
}

#[derive(Parser, Debug)]
#[command(
    name = "oxwsgi",
    version,
    about = "Run Python WSGI applications in Apache httpd with the oxwsgi module (mod_wsgi rebuilt in Rust)",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve a WSGI application with a private Apache (like `mod_wsgi-express start-server`).
    Serve(ServeArgs),
    /// Print the configuration lines that load oxwsgi into an existing Apache.
    ModuleConfig,
    /// Copy the module into Apache's module directory and write oxwsgi.load / oxwsgi.conf.
    InstallModule(InstallArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// A WSGI script file (e.g. app.wsgi, wsgi.py) or `module:callable` (e.g. mysite.wsgi:application).
    #[arg(value_name = "APP")]
    pub app: String,
    /// TCP port to listen on.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Address to listen on (0.0.0.0 for every IPv4 interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Daemon processes (with --embedded: Apache child processes).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub processes: u32,
    /// Request threads per process.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
    /// Run the application inside Apache's own worker processes instead of a daemon group.
    #[arg(long)]
    pub embedded: bool,
    /// Python installation or virtualenv to run the application with (WSGIPythonHome).
    #[arg(long, value_name = "DIR")]
    pub python_home: Option<PathBuf>,
    /// Directory to put in front of sys.path; repeat or separate with ':'.
    #[arg(long, value_name = "DIR")]
    pub python_path: Vec<String>,
    /// URL path to mount the application at.
    #[arg(long, default_value = "/", value_name = "URL")]
    pub mount_point: String,
    /// Serve the files of DIR (or the single file) at URL with Apache itself; repeatable.
    #[arg(long, num_args = 2, value_names = ["URL", "DIR"], action = clap::ArgAction::Append)]
    pub url_alias: Vec<String>,
    /// Name of the WSGI callable in the script (default `application`).
    #[arg(long, value_name = "NAME")]
    pub callable_object: Option<String>,
    /// Re-execute the WSGI script when its file changes (WSGIScriptReloading On).
    #[arg(long)]
    pub reload_on_changes: bool,
    /// Send the error log to stderr and the access log to stdout instead of files.
    #[arg(long)]
    pub log_to_terminal: bool,
    /// Write an access log (combined format plus the request time in microseconds).
    #[arg(long)]
    pub access_log: bool,
    /// Apache LogLevel.
    #[arg(long, default_value = "warn", value_name = "LEVEL")]
    pub log_level: String,
    /// User that Apache's children and the daemon processes run as.
    #[arg(long, default_value = "www-data")]
    pub user: String,
    /// Group that Apache's children and the daemon processes run as.
    #[arg(long, default_value = "www-data")]
    pub group: String,
    /// Seconds a daemon-mode request may run before its process is restarted (0 = no limit).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    pub request_timeout: u64,
    /// Do not send the warm-up request that loads the application before the first real one.
    #[arg(long)]
    pub no_preload: bool,
    /// Keep the configuration and logs in DIR (default: a temporary directory, removed at exit).
    #[arg(long, value_name = "DIR", conflicts_with = "setup_only")]
    pub server_root: Option<PathBuf>,
    /// Write the configuration and an `apachectl` start script into DIR; do not start Apache.
    #[arg(long, value_name = "DIR")]
    pub setup_only: Option<PathBuf>,
    /// Seconds to wait for Apache to stop after SIGTERM before killing it and its children.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub stop_timeout: u64,
    /// The Apache httpd binary.
    #[arg(long, env = "OXWSGI_HTTPD", default_value = "/usr/sbin/apache2", value_name = "PATH")]
    pub httpd: PathBuf,
    /// Directory holding Apache's stock modules (mod_mpm_event.so, mod_alias.so, ...).
    #[arg(long, env = "OXWSGI_APACHE_MODULES", default_value = module::DEBIAN_MODULES_DIR, value_name = "DIR")]
    pub apache_modules: PathBuf,
}

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// Stage the installation under DIR (like make's DESTDIR): files go to DIR/usr/lib/...,
    /// DIR/etc/apache2/..., while the LoadModule line names the final path.
    #[arg(long, value_name = "DIR")]
    pub destdir: Option<PathBuf>,
    /// Apache's module directory (default: `apxs -q LIBEXECDIR`, else /usr/lib/apache2/modules).
    #[arg(long, value_name = "DIR")]
    pub modules_dir: Option<PathBuf>,
    /// Overwrite an existing oxwsgi.conf (oxwsgi.load and the module are always replaced).
    #[arg(long)]
    pub force: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => run::serve(args),
        Command::ModuleConfig => module::module_config().map(|()| ExitCode::SUCCESS),
        Command::InstallModule(args) => module::install_module(&args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(Fail(msg)) => {
            warn(&msg);
            ExitCode::FAILURE
        }
    }
}
