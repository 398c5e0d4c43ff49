//! `oxwsgi serve`: check the app and options, write the server root, then run Apache in the
//! foreground (`httpd`) and stop it cleanly.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::checks::{self, AppTarget, RunAs};
use crate::httpd::{configtest, finish_relays, run_apache};
use crate::site::{self, Mode, Site};
use crate::{module, say, warn, Fail, Result, ServeArgs};

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
#[cfg(test)]
mod tests {
    use super::*;

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
