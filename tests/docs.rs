//! Keeps the documentation true to the code:
//! - docs/configuration.md describes every directive in the module's table
//!   (`directive(c"Name"` in src/apache/commands.rs) under a `### Name` heading, and has no `WSGI*`
//!   heading for a directive that does not exist;
//! - it lists every `WSGIDaemonProcess` option, the implemented ones and the accepted-but-ignored
//!   ones each in their own table, and no option that `src/config` does not know;
//! - the example configurations in conf/ pass `apache2 -t` with the module loaded, and
//!   conf/oxwsgi.load names the module where `oxwsgi install-module` puts it;
//! - docs/migrating-from-mod_wsgi.md mentions every deliberate difference listed in
//!   configuration.md.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mod_oxwsgi::config::{DAEMON_OPTIONS_ACCEPTED_UNIMPLEMENTED, DAEMON_OPTIONS_IMPLEMENTED};

/// The Python oxwsgi is built for (the one helper the tests share; this file needs no more of
/// the harness).
#[path = "common/python.rs"]
#[allow(dead_code)]
mod python;

const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

fn read(rel: &str) -> String {
    fs::read_to_string(Path::new(MANIFEST).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Directive names from the module's command table: every `c"WSGI..."` literal in the
/// `COMMANDS` array of commands.rs (however rustfmt wraps the `directive(...)` calls).
fn directives() -> BTreeSet<String> {
    let src = read("src/apache/commands.rs");
    let table = &src[src.find("pub static mut COMMANDS").expect("COMMANDS table")..];
    let table = &table[..table.find("];").expect("end of COMMANDS")];
    // Section directives are named with their '<' (`c"<WSGIInterpreterOptions"`).
    let names: BTreeSet<String> = table
        .match_indices("c\"")
        .map(|(at, _)| table[at + 2..].trim_start_matches('<'))
        .filter(|rest| rest.starts_with("WSGI"))
        .map(|rest| rest[..rest.find('"').expect("closing quote")].to_string())
        .collect();
    assert!(names.len() >= 20 && names.contains("WSGIScriptAlias"), "parsed too few directives: {names:?}");
    names
}

/// `(level, text)` of every Markdown heading outside code fences.
fn headings(md: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let level = line.chars().take_while(|&c| c == '#').count();
        if level > 0 && line[level..].starts_with(' ') {
            out.push((level, line[level..].trim().to_string()));
        }
    }
    out
}

/// The lines of the section under the heading `title` (up to the next heading of the same or a
/// higher level).
fn section<'a>(md: &'a str, title: &str) -> Vec<&'a str> {
    let mut lines = md.lines();
    let level = loop {
        let line = lines.next().unwrap_or_else(|| panic!("no heading '{title}'"));
        let level = line.chars().take_while(|&c| c == '#').count();
        if level > 0 && line[level..].trim() == title {
            break level;
        }
    };
    lines
        .take_while(|l| {
            let n = l.chars().take_while(|&c| c == '#').count();
            n == 0 || n > level || !l[n..].starts_with(' ')
        })
        .collect()
}

/// Option names from the rows of the tables in `lines`: "| `name=...` | ...".
fn table_options(lines: &[&str]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('=').map(|(name, _)| name.to_string()))
        .collect()
}

#[test]
fn every_directive_is_documented_and_every_documented_directive_exists() {
    let md = read("docs/configuration.md");
    let known = directives();
    let heads = headings(&md);
    let documented: BTreeSet<String> = heads
        .iter()
        .filter(|(level, _)| *level == 3)
        .map(|(_, t)| t.clone())
        .filter(|t| t.starts_with("WSGI"))
        .collect();
    let missing: Vec<&String> = known.iter().filter(|d| !documented.contains(*d)).collect();
    assert!(missing.is_empty(), "directives without a '### Name' section in docs/configuration.md: {missing:?}");
    // Any heading that names a WSGI* word must name a real directive.
    for (_, text) in &heads {
        let first = text.split_whitespace().next().unwrap_or("");
        if first.starts_with("WSGI") {
            assert!(known.contains(first), "docs/configuration.md has a heading for unknown directive '{first}'");
        }
    }
    // Each directive section says where it may be used.
    for d in &known {
        let body = section(&md, d).join("\n");
        assert!(body.contains("**Context:**"), "section {d} lacks a **Context:** line");
        assert!(body.contains("**Syntax:** `"), "section {d} lacks a **Syntax:** line");
    }
    // And every directive mentioned in backticks anywhere is real (catches typos in prose).
    for (at, _) in md.match_indices("`WSGI") {
        let word: String = md[at + 1..].chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        assert!(known.contains(&word), "docs/configuration.md mentions unknown directive `{word}`");
    }
}

/// Every directive mod_wsgi 4.9.4 and 6.x register on Apache 2.4 with Python 3 (the
/// AP_INIT_* entries of their mod_wsgi.c, without WSGIUserAuthoritative, which exists only
/// without Apache 2.4's authn providers, and WSGIPy3kWarningFlag, Python 2's).
const MOD_WSGI_DIRECTIVES: [&str; 52] = [
    "WSGIAcceptMutex",
    "WSGIAccessScript",
    "WSGIApplicationGroup",
    "WSGIAuthGroupScript",
    "WSGIAuthUserScript",
    "WSGICallableObject",
    "WSGICaseSensitivity",
    "WSGIChunkedRequest",
    "WSGIDaemonProcess",
    "WSGIDestroyInterpreter",
    "WSGIDispatchScript",
    "WSGIDontWriteBytecode",
    "WSGIEnableSendfile",
    "WSGIErrorOverride",
    "WSGIFreeThreading",
    "WSGIGroupAuthoritative",
    "WSGIHandlerScript",
    "WSGIIgnoreActivity",
    "WSGIImportScript",
    "WSGIInterpreterOptions",
    "WSGILazyInitialization",
    "WSGIMapHEADToGET",
    "WSGINewRelicConfigFile",
    "WSGINewRelicEnvironment",
    "WSGIPassApacheRequest",
    "WSGIPassAuthorization",
    "WSGIPerInterpreterGIL",
    "WSGIProcessGroup",
    "WSGIPythonEggs",
    "WSGIPythonHashSeed",
    "WSGIPythonHome",
    "WSGIPythonOptimize",
    "WSGIPythonPath",
    "WSGIPythonWarnings",
    "WSGIRestrictEmbedded",
    "WSGIRestrictProcess",
    "WSGIRestrictSignal",
    "WSGIRestrictStdin",
    "WSGIRestrictStdout",
    "WSGIScriptAlias",
    "WSGIScriptAliasMatch",
    "WSGIScriptReloading",
    "WSGIServerMetrics",
    "WSGISlowRequests",
    "WSGISocketPrefix",
    "WSGISocketRotation",
    "WSGISwitchInterval",
    "WSGITelemetryOptions",
    "WSGITelemetryService",
    "WSGITrustedProxies",
    "WSGITrustedProxyHeaders",
    "WSGIVerboseDebugging",
];

#[test]
fn every_mod_wsgi_directive_is_defined() {
    let known = directives();
    let missing: Vec<&&str> = MOD_WSGI_DIRECTIVES.iter().filter(|d| !known.contains(**d)).collect();
    assert!(missing.is_empty(), "mod_wsgi directives oxwsgi does not define: {missing:?}");
    let ours: Vec<&String> = known.iter().filter(|d| !MOD_WSGI_DIRECTIVES.contains(&d.as_str())).collect();
    assert_eq!(
        ours,
        ["WSGIMetrics", "WSGIRestrictUnknownHosts", "WSGIXSendfilePath"],
        "oxwsgi-only directives (each documented as such in docs/configuration.md)"
    );
}

#[test]
fn every_daemon_option_is_documented_in_the_right_table() {
    let md = read("docs/configuration.md");
    let implemented = table_options(&section(&md, "Options oxwsgi implements"));
    let ignored = table_options(&section(&md, "Options accepted and ignored"));
    let want_implemented: Vec<String> = DAEMON_OPTIONS_IMPLEMENTED.iter().map(|s| s.to_string()).collect();
    let want_ignored: Vec<String> = DAEMON_OPTIONS_ACCEPTED_UNIMPLEMENTED.iter().map(|s| s.to_string()).collect();
    let sorted = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
    assert_eq!(
        sorted(&implemented),
        sorted(&want_implemented),
        "the 'Options oxwsgi implements' table differs from DAEMON_OPTIONS_IMPLEMENTED"
    );
    assert_eq!(
        sorted(&ignored),
        sorted(&want_ignored),
        "the 'Options accepted and ignored' table differs from DAEMON_OPTIONS_ACCEPTED_UNIMPLEMENTED"
    );
    assert_eq!(implemented.len(), sorted(&implemented).len(), "an implemented option is listed twice");
    assert_eq!(ignored.len(), sorted(&ignored).len(), "an ignored option is listed twice");
}

#[test]
fn migration_guide_names_the_differences() {
    let guide = read("docs/migrating-from-mod_wsgi.md");
    for needle in [
        "LoadModule wsgi_module",
        "longest",
        "WSGIScriptAliasMatch",
        "os.environ",
        "WSGIRestrictUnknownHosts",
        "403",
        "repeated",
        "%{RESOURCE}",
        "torn down",
        "apachectl configtest",
        "oxwsgi module-config",
        "python-home=",
    ] {
        assert!(guide.contains(needle), "docs/migrating-from-mod_wsgi.md does not mention {needle:?}");
    }
}

#[test]
fn load_file_names_the_installed_module_and_conflicts_with_mod_wsgi() {
    let load = read("conf/oxwsgi.load");
    assert!(load.lines().any(|l| l == "LoadModule wsgi_module /usr/lib/apache2/modules/mod_oxwsgi.so"), "{load}");
    // a2enmod only reads "# Conflicts:" before the first directive.
    let lines: Vec<&str> = load.lines().collect();
    let conflicts = lines.iter().position(|l| *l == "# Conflicts: wsgi").expect("# Conflicts: wsgi");
    let first = lines.iter().position(|l| !l.trim().is_empty() && !l.starts_with('#')).unwrap();
    assert!(conflicts < first);
}

/// A directory under /tmp, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The module cargo built for this test run.
fn module() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/docs-HASH -> target/<profile>/libmod_oxwsgi.so
    let m = exe.parent().unwrap().parent().unwrap().join("libmod_oxwsgi.so");
    assert!(m.is_file(), "{} not built", m.display());
    m
}

/// Every conf/example-*.conf, with its /srv paths moved into a temporary directory (and a real
/// virtualenv where it wants one), passes `apache2 -t` with oxwsgi loaded.
#[test]
fn example_configurations_pass_configtest() {
    let conf_dir = Path::new(MANIFEST).join("conf");
    let mut examples: Vec<PathBuf> = fs::read_dir(&conf_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("example-"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 4, "expected the example configurations in conf/: {examples:?}");

    let root = TempDir(std::env::temp_dir().join(format!("oxwsgi-docs-{}", std::process::id())));
    let _ = fs::remove_dir_all(&root.0);
    fs::create_dir_all(root.0.join("logs")).unwrap();
    fs::set_permissions(&root.0, fs::Permissions::from_mode(0o755)).unwrap();
    let srv = root.0.join("srv");
    let made = Command::new(python::PYTHON)
        .args(["-m", "venv", "--without-pip"])
        .arg(srv.join("venv"))
        .stdin(Stdio::null())
        .output()
        .expect("python -m venv");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    for sub in ["mysite/mysite", "mysite/static", "site/static", "blog", "shop", "www", "run"] {
        fs::create_dir_all(srv.join(sub)).unwrap();
    }
    let modules = "/usr/lib/apache2/modules";
    let oxwsgi_conf = conf_dir.join("oxwsgi.conf");
    for example in &examples {
        let name = example.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(example).unwrap();
        assert!(text.starts_with('#'), "{name} should start with a comment saying what it shows");
        let body = text
            .replace("/srv/", &format!("{}/", srv.display()))
            .replace("/var/run/apache2/", &format!("{}/run/", srv.display()));
        let r = root.0.display();
        let conf = format!(
            "ServerRoot \"{r}\"\n\
             LoadModule mpm_event_module {modules}/mod_mpm_event.so\n\
             LoadModule authz_core_module {modules}/mod_authz_core.so\n\
             LoadModule authz_host_module {modules}/mod_authz_host.so\n\
             LoadModule alias_module {modules}/mod_alias.so\n\
             LoadModule mime_module {modules}/mod_mime.so\n\
             LoadModule wsgi_module \"{module}\"\n\
             Include \"{include}\"\n\
             User www-data\nGroup www-data\nServerName localhost\n\
             PidFile \"{r}/httpd.pid\"\nDefaultRuntimeDir \"{r}\"\nErrorLog \"{r}/logs/error_log\"\n\
             # ---- {name} ----\n{body}\n",
            module = module().display(),
            include = oxwsgi_conf.display(),
        );
        let path = root.0.join(format!("{name}.httpd.conf"));
        fs::write(&path, &conf).unwrap();
        let out = Command::new("/usr/sbin/apache2")
            .arg("-t")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .expect("apache2 -t");
        assert!(
            out.status.success(),
            "conf/{name} fails apache2 -t:\n{}\n--- configuration ---\n{conf}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
