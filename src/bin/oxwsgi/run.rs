//! `oxwsgi serve`: check, write the server root, run Apache in the foreground, stop it cleanly.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::checks::{self, AppTarget, RunAs};
use crate::site::{self, Mode, Site};
use crate::{module, procs, say, warn, Fail, Result, ServeArgs};

/// How long Apache may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// After Apache's parent exits, how long the processes it leaves behind get before SIGKILL.
const ORPHAN_GRACE: Duration = Duration::from_secs(3);

/// The last of SIGINT/SIGTERM/SIGHUP received, and how many.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
    SIGNALS.fetch_add(1, Ordering::SeqCst);
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to atomics (async-signal-safe).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            sa.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// What APP names.
enum App {
    Script(PathBuf),
    Module { module: String, attr: String },
}

fn resolve_app(app: &str, callable: Option<&str>, cwd: &Path) -> Result<App> {
    let path = cwd.join(app);
    if path.is_file() {
        return Ok(App::Script(fs::canonicalize(&path).map_err(|e| Fail(format!("{app}: {e}")))?));
    }
    if path.is_dir() {
        return Err(Fail(format!(
            "{app} is a directory; give the WSGI script file in it (e.g. {app}/wsgi.py) or module:callable"
        )));
    }
    if let Some((module, attr)) = app.split_once(':') {
        if !site::is_dotted_name(module) || !site::is_dotted_name(attr) {
            return Err(Fail(format!(
                "{app} is neither an existing file nor module:callable (e.g. mysite.wsgi:application)"
            )));
        }
        if callable.is_some() {
            return Err(Fail(format!(
                "{app} already names the callable; drop --callable-object or write just the module"
            )));
        }
        return Ok(App::Module { module: module.to_string(), attr: attr.to_string() });
    }
    let looks_like_file = app.contains('/') || app.ends_with(".py") || app.ends_with(".wsgi");
    if !looks_like_file && site::is_dotted_name(app) {
        return Ok(App::Module { module: app.to_string(), attr: callable.unwrap_or("application").to_string() });
    }
    let hint = if app.ends_with(".wsgi") && site::is_dotted_name(app) {
        format!(" (for the module {app}, write {app}:application)")
    } else {
        String::new()
    };
    Err(Fail(format!("{app}: no such file{hint}")))
}

fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    }
}

fn make_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| Fail(format!("cannot create {}: {e}", path.display())))
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    fs::write(path, contents)
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(mode)))
        .map_err(|e| Fail(format!("cannot write {}: {e}", path.display())))
}

/// A fresh private directory under $TMPDIR (mode 0755 so www-data can reach the generated
/// script and the daemon sockets).
fn temp_root() -> Result<PathBuf> {
    let template = std::env::temp_dir().join("oxwsgi-XXXXXX");
    let mut bytes = std::ffi::CString::new(template.as_os_str().as_encoded_bytes())
        .map_err(|_| Fail("bad temporary directory".to_string()))?
        .into_bytes_with_nul();
    // SAFETY: mkdtemp rewrites the XXXXXX in place in a NUL-terminated buffer we own.
    let p = unsafe { libc::mkdtemp(bytes.as_mut_ptr() as *mut libc::c_char) };
    if p.is_null() {
        return Err(Fail(format!(
            "cannot create a temporary directory in {}: {}",
            std::env::temp_dir().display(),
            std::io::Error::last_os_error()
        )));
    }
    bytes.pop();
    let dir = PathBuf::from(String::from_utf8_lossy(&bytes).into_owned());
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| Fail(format!("cannot chmod {}: {e}", dir.display())))?;
    Ok(dir)
}

/// Removes the temporary server root on every exit path unless told to keep it.
struct TempRoot {
    path: Option<PathBuf>,
}

impl TempRoot {
    fn keep(&mut self) -> Option<PathBuf> {
        self.path.take()
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        if let Some(p) = &self.path {
            let _ = fs::remove_dir_all(p);
        }
    }
}

pub fn serve(args: ServeArgs) -> Result<ExitCode> {
    // Apache itself.
    if !args.httpd.is_file() {
        return Err(Fail(format!(
            "Apache httpd is not installed ({} not found); install it with: apt-get install apache2",
            args.httpd.display()
        )));
    }
    let event_mpm = args.apache_modules.join("mod_mpm_event.so");
    if !event_mpm.is_file() {
        return Err(Fail(format!(
            "Apache's modules are missing ({} not found); install Apache with: apt-get install apache2",
            event_mpm.display()
        )));
    }
    let who = RunAs::resolve(&args.user, &args.group)?;
    let cwd = std::env::current_dir()
        .and_then(fs::canonicalize)
        .map_err(|e| Fail(format!("cannot read the current directory: {e}")))?;

    // The application.
    let app = resolve_app(&args.app, args.callable_object.as_deref(), &cwd)?;
    if let Some(c) = &args.callable_object {
        if !site::is_dotted_name(c) || c.contains('.') && matches!(app, App::Script(_)) {
            return Err(Fail(format!("--callable-object '{c}' is not a Python name")));
        }
    }
    // Python.
    let python_home = match &args.python_home {
        Some(h) => {
            let home = absolute(&cwd, h);
            let home = fs::canonicalize(&home).unwrap_or(home);
            Some(home)
        }
        None => module::installed_virtualenv(),
    };
    let home_label = if args.python_home.is_some() { "--python-home" } else { "the virtualenv oxwsgi is installed in" };
    let python = match &python_home {
        Some(home) => checks::check_python_home(home)?,
        None => {
            let p = PathBuf::from(checks::BUILD_PYTHON);
            if !p.is_file() {
                return Err(Fail(format!(
                    "{} (the Python oxwsgi was built with) is not installed; install it with: apt-get install python{}",
                    p.display(),
                    checks::PYTHON_VERSION
                )));
            }
            p
        }
    };
    let mut python_path: Vec<PathBuf> = Vec::new();
    for entry in args.python_path.iter().flat_map(|v| v.split(':')).filter(|e| !e.is_empty()) {
        let p = absolute(&cwd, Path::new(entry));
        if !p.is_dir() {
            return Err(Fail(format!("--python-path {entry}: no such directory")));
        }
        let p = fs::canonicalize(&p).unwrap_or(p);
        if !python_path.contains(&p) {
            python_path.push(p);
        }
    }
    // The application's directory (the daemon's working directory) is on sys.path: the script's
    // directory, so its sibling modules import; for module:callable the first --python-path
    // entry, or the current directory when none is given.
    let app_dir = match &app {
        App::Script(path) => path.parent().unwrap_or(Path::new("/")).to_path_buf(),
        App::Module { .. } => python_path.first().cloned().unwrap_or_else(|| cwd.clone()),
    };
    if !python_path.contains(&app_dir) {
        python_path.push(app_dir.clone());
    }

    // URLs.
    let mount_point = site::normalize_url_path("--mount-point", &args.mount_point)?;
    let mut url_aliases = Vec::new();
    for pair in args.url_alias.chunks(2) {
        let [url, target] = pair else { continue };
        let url = site::normalize_url_path("--url-alias URL", url)?;
        if url == mount_point {
            return Err(Fail(format!("--url-alias {url} would hide the application mounted at {mount_point}")));
        }
        let path = absolute(&cwd, Path::new(target));
        let path = fs::canonicalize(&path)
            .map_err(|_| Fail(format!("--url-alias {url} {target}: no such file or directory")))?;
        url_aliases.push((url, path));
    }
    if !args.log_level.split_whitespace().all(|w| w.chars().all(|c| c.is_ascii_alphanumeric() || c == ':' || c == '_'))
    {
        return Err(Fail(format!("--log-level '{}' is not an Apache LogLevel", args.log_level)));
    }

    // Everything written into the configuration must be expressible there.
    let mut paths: Vec<(&str, &Path)> = vec![("the application directory", &app_dir)];
    if let App::Script(p) = &app {
        paths.push(("the WSGI script", p));
    }
    if let Some(h) = &python_home {
        paths.push((home_label, h));
    }
    for p in &python_path {
        paths.push(("--python-path", p));
    }
    for (_, p) in &url_aliases {
        paths.push(("--url-alias", p));
    }
    for (what, p) in &paths {
        site::conf_safe(what, &p.display().to_string())?;
    }
    for p in &python_path {
        if p.display().to_string().contains(':') {
            return Err(Fail(format!("--python-path {} contains ':', which separates sys.path entries", p.display())));
        }
    }
    site::conf_safe("--user", &args.user)?;
    site::conf_safe("--group", &args.group)?;

    // What Apache's children must be able to read.
    match &app {
        App::Script(p) => checks::require_readable(p, "the WSGI script", &who)?,
        App::Module { .. } => {
            checks::require_readable(&app_dir, "the application directory (on sys.path for module:callable)", &who)?
        }
    }
    if let Some(h) = &python_home {
        checks::require_readable(h, home_label, &who)?;
    }
    for p in &python_path {
        checks::require_readable(p, "--python-path directory", &who)?;
    }
    for (_, p) in &url_aliases {
        checks::require_readable(p, "--url-alias", &who)?;
    }

    if args.setup_only.is_none() {
        checks::check_port(&args.host, args.port)?;
    }

    // Load the application the way Apache will, before Apache starts.
    let target = match &app {
        App::Script(path) => AppTarget::Script {
            path: path.clone(),
            callable: args.callable_object.clone().unwrap_or_else(|| "application".to_string()),
        },
        App::Module { module, attr } => AppTarget::Module { module: module.clone(), attr: attr.clone() },
    };
    checks::check_app(&python, &target, &python_path, &app_dir, &who)?;

    let module = module::find_module()?;
    module::check_loadable(&module)?;

    // The server root.
    let mut temp = TempRoot { path: None };
    let server_root = match (&args.setup_only, &args.server_root) {
        (Some(d), _) | (None, Some(d)) => {
            let d = absolute(&cwd, d);
            make_dir(&d)?;
            fs::canonicalize(&d).unwrap_or(d)
        }
        (None, None) => {
            let d = temp_root()?;
            temp.path = Some(d.clone());
            d
        }
    };
    site::conf_safe("the server root", &server_root.display().to_string())?;
    checks::require_readable(&server_root, "the server root", &who)?;
    for sub in ["logs", "run", "htdocs", "wsgi"] {
        make_dir(&server_root.join(sub))?;
    }
    let (script, callable) = match &app {
        App::Script(p) => (p.clone(), args.callable_object.clone()),
        App::Module { module, attr } => {
            let script = server_root.join("wsgi/application.wsgi");
            write_file(&script, &site::render_module_script(&args.app, module, attr, &python_path), 0o644)?;
            (script, None)
        }
    };
    let mode = if args.embedded {
        Mode::Embedded { processes: args.processes, threads: args.threads }
    } else {
        Mode::Daemon { processes: args.processes, threads: args.threads, request_timeout: args.request_timeout }
    };
    let mime_types = Path::new("/etc/mime.types");
    let site = Site {
        app_label: args.app.clone(),
        server_root: server_root.clone(),
        httpd: args.httpd.clone(),
        apache_modules: args.apache_modules.clone(),
        module,
        host: args.host.clone(),
        port: args.port,
        mode,
        script,
        callable,
        app_dir,
        mount_point,
        python_home,
        python_path,
        url_aliases,
        reload: args.reload_on_changes,
        log_to_terminal: args.log_to_terminal,
        access_log: args.access_log,
        log_level: args.log_level.clone(),
        user: args.user.clone(),
        group: args.group.clone(),
        mime_types: mime_types.is_file().then(|| mime_types.to_path_buf()),
    };
    write_file(&site.config_path(), &site.render_config(), 0o644)?;

    if args.setup_only.is_some() {
        write_file(&site.apachectl_path(), &site.render_apachectl(), 0o755)?;
        say(&format!("oxwsgi: wrote {} and {}", site.config_path().display(), site.apachectl_path().display()));
        say(&format!("  start it with: {} start   (or start-foreground)", site.apachectl_path().display()));
        say(&format!("  URL:       {}", site.url()));
        say(&format!("  mode:      {}", site.mode.describe()));
        say(&format!("  error log: {}", site.error_log().display()));
        say("  the application loads on its first request (no warm-up request in --setup-only mode)");
        return Ok(ExitCode::SUCCESS);
    }

    configtest(&site)?;
    let outcome = run_apache(&site, !args.no_preload, args.request_timeout, Duration::from_secs(args.stop_timeout));
    finish_relays();
    match outcome {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            if let Some(kept) = temp.keep() {
                warn(&format!("kept the server root {} for inspection", kept.display()));
            }
            Err(e)
        }
    }
}

/// `apache2 -t` on the generated configuration: a rejected directive becomes one line.
fn configtest(site: &Site) -> Result<()> {
    let out = apache_command(site)
        .arg("-t")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Fail(format!("cannot run {}: {e}", site.httpd.display())))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    Err(Fail(format!(
        "Apache rejected the generated configuration {}: {}",
        site.config_path().display(),
        first_error(&text).unwrap_or_else(|| format!("apache2 -t failed ({})", out.status))
    )))
}

fn apache_command(site: &Site) -> Command {
    let mut cmd = Command::new(&site.httpd);
    cmd.arg("-f").arg(site.config_path()).current_dir(&site.server_root);
    cmd.env_remove("PYTHONHOME").env_remove("PYTHONPATH");
    cmd
}

/// The most useful line of Apache's start-up output: the first error, without the timestamp
/// and pid prefix.
fn first_error(text: &str) -> Option<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let interesting = |l: &&str| {
        ["emerg]", "alert]", "crit]", "error]", "Syntax error", "AH0"].iter().any(|k| l.contains(k))
            && !l.contains("resuming normal operations")
    };
    let line = lines.iter().find(|l| interesting(l)).or(lines.last())?;
    // "[time] [module:level] [pid N:tid N] AH00072: message" -> "AH00072: message".
    let mut rest: &str = line;
    while let Some(stripped) = rest.strip_prefix('[') {
        match stripped.find("] ") {
            Some(end) => rest = &stripped[end + 2..],
            None => break,
        }
    }
    Some(rest.to_string())
}

fn read_lossy(path: &Path) -> String {
    fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

/// Every process below us: Apache, its children, and (as we are a child subreaper) whatever they
/// orphaned. Remembered so they can be killed even after their parent is gone.
fn remember(known: &mut Vec<procs::Proc>) {
    for p in procs::descendants(std::process::id()) {
        if !known.iter().any(|k| k.pid == p.pid && k.start == p.start) {
            known.push(p);
        }
    }
}

fn spawn_apache(site: &Site) -> Result<Child> {
    let mut cmd = apache_command(site);
    cmd.arg("-DFOREGROUND").stdin(Stdio::null());
    if site.log_to_terminal {
        // Pipes that we copy to our stdout/stderr, rather than our descriptors themselves:
        // Apache reopens /dev/stdout and /dev/stderr, and a reopened regular file (a shell's
        // `> out.log`) would get its own offset and overwrite what we wrote.
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    } else {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(site.apache_output_log())
            .map_err(|e| Fail(format!("cannot write {}: {e}", site.apache_output_log().display())))?;
        let err =
            out.try_clone().map_err(|e| Fail(format!("cannot write {}: {e}", site.apache_output_log().display())))?;
        cmd.stdout(out).stderr(err);
    }
    // Its own process group, so a terminal's Ctrl-C reaches only us and we stop Apache in
    // order; and SIGTERM to Apache if we die without doing so.
    cmd.process_group(0);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| Fail(format!("cannot run {}: {e}", site.httpd.display())))?;
    if let Some(out) = child.stdout.take() {
        relay(out, false);
    }
    if let Some(err) = child.stderr.take() {
        relay(err, true);
    }
    Ok(child)
}

/// Copies Apache's output to ours a line at a time (so it interleaves with our own lines).
fn relay(pipe: impl Read + Send + 'static, to_stderr: bool) {
    let handle = std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match std::io::BufRead::read_until(&mut reader, b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let _ = if to_stderr {
                        std::io::stderr().lock().write_all(&line)
                    } else {
                        let mut out = std::io::stdout().lock();
                        out.write_all(&line).and_then(|()| out.flush())
                    };
                }
            }
        }
    });
    RELAYS.lock().unwrap_or_else(|e| e.into_inner()).push(handle);
}

static RELAYS: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>> = std::sync::Mutex::new(Vec::new());

/// Lets the relays copy Apache's last lines (they end when every Apache process is gone).
fn finish_relays() {
    let deadline = Instant::now() + Duration::from_millis(500);
    let relays = std::mem::take(&mut *RELAYS.lock().unwrap_or_else(|e| e.into_inner()));
    for r in relays {
        while !r.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if r.is_finished() {
            let _ = r.join();
        }
    }
}

fn connect_addrs(site: &Site) -> Vec<SocketAddr> {
    (site.connect_host(), site.port).to_socket_addrs().map(|a| a.collect()).unwrap_or_default()
}

fn why_it_failed(site: &Site) -> String {
    if site.log_to_terminal {
        finish_relays();
        return "see Apache's messages above".to_string();
    }
    let mut text = read_lossy(&site.apache_output_log());
    if !site.log_to_terminal {
        text.push_str(&read_lossy(&site.error_log()));
    }
    first_error(&text).unwrap_or_else(|| "no error message".to_string())
}

fn run_apache(site: &Site, preload: bool, request_timeout: u64, stop_timeout: Duration) -> Result<()> {
    install_signal_handlers();
    // SAFETY: prctl with constant arguments. Makes Apache's orphans our children, so the whole
    // tree stays visible through ppid links after Apache's parent exits.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0);
    }
    let mut child = spawn_apache(site)?;
    let apache_pid = child.id();
    let mut known: Vec<procs::Proc> = Vec::new();
    remember(&mut known);
    let addrs = connect_addrs(site);

    // Wait until it listens.
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().ok().flatten() {
            cleanup_orphans(&mut known, Duration::ZERO);
            return Err(Fail(format!(
                "Apache failed to start ({}): {}; logs in {}",
                describe_status(status),
                why_it_failed(site),
                site.server_root.join("logs").display()
            )));
        }
        if SIGNALS.load(Ordering::SeqCst) > 0 {
            let report = stop(&mut child, stop_timeout, &mut known);
            return Err(Fail(format!(
                "interrupted by {} before Apache was ready; {}",
                signal_name(SIGNAL.load(Ordering::SeqCst)),
                report.describe(apache_pid)
            )));
        }
        if addrs.iter().any(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok()) {
            break;
        }
        if Instant::now() >= deadline {
            let report = stop(&mut child, stop_timeout, &mut known);
            return Err(Fail(format!(
                "Apache did not accept connections on {}:{} within {} s; {}; see {}",
                site.host,
                site.port,
                START_TIMEOUT.as_secs(),
                report.describe(apache_pid),
                site.error_log().display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    remember(&mut known);

    say(&format!("oxwsgi: serving {} with Apache (pid {apache_pid})", site.app_label));
    say(&format!("  URL:        {}", site.url()));
    say(&format!("  mode:       {}", site.mode.describe()));
    for (url, dir) in &site.url_aliases {
        say(&format!("  static:     {url} -> {}", dir.display()));
    }
    say(&format!("  config:     {}", site.config_path().display()));
    say(&format!("  error log:  {}", site.error_log().display()));
    if let Some(access) = site.access_log_path() {
        say(&format!("  access log: {}", access.display()));
    }
    if preload {
        say(&format!("  preload:    a warm-up request (GET {}) loads the application now", site.mount_point));
    }
    say("  Ctrl-C or SIGTERM stops Apache and its daemon processes.");

    if preload {
        let addrs = addrs.clone();
        let host_header = format!("{}:{}", site.connect_host(), site.port);
        let path = site.mount_point.clone();
        let error_log = site.error_log();
        let timeout = Duration::from_secs(if request_timeout == 0 { 300 } else { request_timeout + 10 });
        std::thread::spawn(move || match warm_up(&addrs, &host_header, &path, timeout) {
            Ok((status, line, took)) if status < 500 => say(&format!(
                "oxwsgi: application loaded (warm-up GET {path} -> {line} in {:.2} s)",
                took.as_secs_f64()
            )),
            Ok((_, line, _)) => warn(&format!(
                "warm-up GET {path} -> {line}: the application failed to load or raised; see {}",
                error_log.display()
            )),
            Err(e) => warn(&format!("warm-up GET {path} failed: {e}; see {}", error_log.display())),
        });
    }

    // Serve until told to stop or Apache dies.
    let mut last_scan = Instant::now();
    loop {
        if SIGNALS.load(Ordering::SeqCst) > 0 {
            let sig = SIGNAL.load(Ordering::SeqCst);
            warn(&format!("{}: stopping Apache (pid {apache_pid})", signal_name(sig)));
            let report = stop(&mut child, stop_timeout, &mut known);
            if report.clean() {
                warn("Apache stopped");
                return Ok(());
            }
            return Err(Fail(report.describe(apache_pid)));
        }
        if let Some(status) = child.try_wait().ok().flatten() {
            let leftovers = cleanup_orphans(&mut known, ORPHAN_GRACE);
            let extra = if leftovers.is_empty() {
                String::new()
            } else {
                format!("; killed {} processes it left behind", leftovers.len())
            };
            return Err(Fail(format!(
                "Apache exited unexpectedly ({}): {}{extra}; see {}",
                describe_status(status),
                why_it_failed(site),
                site.error_log().display()
            )));
        }
        if last_scan.elapsed() >= Duration::from_millis(500) {
            remember(&mut known);
            last_scan = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// How a stop went.
struct StopReport {
    /// Apache's parent had to be SIGKILLed after the grace period.
    forced: bool,
    /// Processes still alive after Apache's parent exited, SIGKILLed.
    leftovers: Vec<u32>,
    grace: Duration,
}

impl StopReport {
    fn clean(&self) -> bool {
        !self.forced && self.leftovers.is_empty()
    }

    fn describe(&self, apache_pid: u32) -> String {
        if self.forced {
            format!(
                "Apache (pid {apache_pid}) did not stop within {} s of SIGTERM; killed it and its processes",
                self.grace.as_secs()
            )
        } else if !self.leftovers.is_empty() {
            format!("Apache stopped but left processes behind; killed {:?}", self.leftovers)
        } else {
            "Apache stopped".to_string()
        }
    }
}

/// SIGTERM to Apache's parent (which stops its children and daemon processes), a bounded wait,
/// then SIGKILL for it and every process of its tree that is still there. A second Ctrl-C skips
/// the wait.
fn stop(child: &mut Child, grace: Duration, known: &mut Vec<procs::Proc>) -> StopReport {
    remember(known);
    let signals_before = SIGNALS.load(Ordering::SeqCst);
    let apache = child.id();
    // SAFETY: kill(2) on our own child, which is not reaped yet (so the pid is still it).
    unsafe {
        libc::kill(apache as libc::pid_t, libc::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    let mut forced = false;
    loop {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        if Instant::now() >= deadline || SIGNALS.load(Ordering::SeqCst) > signals_before.max(1) {
            forced = true;
            remember(known);
            // SAFETY: as above.
            unsafe {
                libc::kill(apache as libc::pid_t, libc::SIGKILL);
            }
            for p in known.iter() {
                procs::signal(p, libc::SIGKILL);
            }
            let _ = child.wait();
            break;
        }
        remember(known);
        std::thread::sleep(Duration::from_millis(25));
    }
    let rest = deadline.saturating_duration_since(Instant::now()).min(ORPHAN_GRACE);
    let leftovers = cleanup_orphans(known, if forced { Duration::ZERO } else { rest.max(Duration::from_millis(500)) });
    StopReport { forced, leftovers, grace }
}

/// After Apache's parent has exited: waits up to `grace` for the processes it left (reparented
/// to us) to exit, reaping them, then SIGKILLs what remains. Returns the pids that had to be
/// killed.
fn cleanup_orphans(known: &mut Vec<procs::Proc>, grace: Duration) -> Vec<u32> {
    let me = std::process::id();
    let deadline = Instant::now() + grace;
    let mut killed = Vec::new();
    loop {
        remember(known);
        // Reap the ones that are ours and have exited.
        for p in procs::all().iter().filter(|p| p.ppid == me && p.zombie) {
            procs::reap(p.pid);
        }
        let alive: Vec<procs::Proc> = known.iter().filter(|p| procs::alive(p)).copied().collect();
        if alive.is_empty() {
            return killed;
        }
        if Instant::now() >= deadline {
            for p in &alive {
                procs::signal(p, libc::SIGKILL);
                if !killed.contains(&p.pid) {
                    killed.push(p.pid);
                }
            }
            // Reap them (bounded).
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until && known.iter().any(procs::alive) {
                for p in procs::all().iter().filter(|p| p.ppid == me && p.zombie) {
                    procs::reap(p.pid);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            return killed;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// One GET to load the application: returns the status, the status line's text and how long it
/// took. Reads the response to its end (bounded) so the app is not cut off mid-write.
fn warm_up(
    addrs: &[SocketAddr],
    host: &str,
    path: &str,
    timeout: Duration,
) -> std::result::Result<(u16, String, Duration), String> {
    let started = Instant::now();
    let addr = addrs.first().ok_or("no address to connect to")?;
    let mut stream = TcpStream::connect_timeout(addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: oxwsgi-warm-up\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 8192];
    let mut total = 0usize;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if head.len() < 1024 {
                    head.extend_from_slice(&buf[..n.min(1024)]);
                }
                total += n;
                if total > 64 << 20 {
                    break;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if head.is_empty() => return Err(format!("no response within {} s ({e})", timeout.as_secs())),
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let _version = parts.next();
    let status: u16 =
        parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad response '{status_line}'"))?;
    let reason = parts.next().unwrap_or("").trim();
    Ok((status, format!("{status} {reason}").trim().to_string(), started.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_error_strips_the_log_prefix() {
        let log = "[Sat Nov 21 00:14:29.353816 2026] [mpm_event:notice] [pid 1:tid 1] AH00489: configured -- resuming normal operations\n\
                   [Sat Nov 21 00:14:29 2026] [core:emerg] [pid 22043:tid 22043] (98)Address in use: AH00072: make_sock: could not bind\n";
        assert_eq!(first_error(log).unwrap(), "(98)Address in use: AH00072: make_sock: could not bind");
        assert_eq!(
            first_error("AH00526: Syntax error on line 3 of /x/httpd.conf:\nInvalid command 'Foo'\n").unwrap(),
            "AH00526: Syntax error on line 3 of /x/httpd.conf:"
        );
        assert_eq!(first_error(""), None);
    }

    #[test]
    fn app_resolution() {
        let cwd = std::env::temp_dir();
        assert!(
            matches!(resolve_app("mysite.wsgi:application", None, &cwd), Ok(App::Module { ref module, ref attr }) if module == "mysite.wsgi" && attr == "application")
        );
        assert!(matches!(resolve_app("hello", Some("app"), &cwd), Ok(App::Module { ref attr, .. }) if attr == "app"));
        let e = resolve_app("nope-oxwsgi.wsgi", None, &cwd).err().unwrap().0;
        assert_eq!(e, "nope-oxwsgi.wsgi: no such file");
        let e = resolve_app("mysite.wsgi", None, &cwd).err().unwrap().0;
        assert!(e.contains("write mysite.wsgi:application"), "{e}");
        assert!(resolve_app("a:b", Some("c"), &cwd).is_err());
        assert!(resolve_app("a-b:c", None, &cwd).is_err());
    }
}
