//! Keeps the documentation true to the code:
//! - docs/configuration.md describes every directive in the module's table
//!   (`directive(c"Name"` in src/apache/commands.rs) under a `### Name` heading, and has no `WSGI*`
//!   heading for a directive that does not exist;
//! - its two tables of `WSGIDaemonProcess` options (implemented, accepted-but-ignored) are the
//!   options `src/config/daemon/options.rs` defines, row by row: the same options in the same
//!   order, each with the code's default and meaning, and no option the code does not define;
//! - the example configurations in conf/ pass `apache2 -t` with the module loaded, and
//!   conf/oxwsgi.load names the module where `oxwsgi install-module` puts it;
//! - docs/migrating-from-mod_wsgi.md mentions every deliberate difference listed in
//!   configuration.md.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mod_oxwsgi::config::{DaemonOption, DAEMON_OPTIONS};

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

/// The cells of the table rows in `lines` ("| `name=...` | ... |"), `\|` read as `|`.
fn table_rows(lines: &[&str]) -> Vec<Vec<String>> {
    lines
        .iter()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let inner = l.trim_end().trim_start_matches("| ").trim_end_matches(" |");
            inner.replace("\\|", "\u{0}").split(" | ").map(|c| c.replace('\u{0}', "|")).collect()
        })
        .collect()
}

/// A daemon option's row as the code defines it: syntax, then (implemented options) the default,
/// then the meaning.
fn defined_row(option: &DaemonOption) -> Vec<String> {
    let mut row = vec![format!("`{}`", option.syntax)];
    row.extend(option.default_shown());
    row.push(option.doc.to_string());
    row
}

/// The differences between a docs table and the options the code defines for it, one line each.
fn table_differences(title: &str, documented: &[Vec<String>], defined: &[Vec<String>]) -> Vec<String> {
    let name = |row: &Vec<String>| row[0].trim_matches('`').split('=').next().unwrap().to_string();
    let documented_names: Vec<String> = documented.iter().map(name).collect();
    let defined_names: Vec<String> = defined.iter().map(name).collect();
    let mut out = Vec::new();
    for (row, option) in defined.iter().zip(&defined_names) {
        match documented.iter().find(|d| name(d) == *option) {
            None => out.push(format!("'{title}' lacks option '{option}'")),
            Some(doc) if doc.len() != row.len() => {
                out.push(format!("'{title}': row of '{option}' has {} cells", doc.len()))
            }
            Some(doc) => {
                let columns =
                    if row.len() == 3 { &["syntax", "default", "meaning"][..] } else { &["syntax", "meaning"][..] };
                for ((column, written), wanted) in columns.iter().zip(doc).zip(row) {
                    if written != wanted {
                        out.push(format!(
                            "'{title}': {column} of '{option}' is\n    {written}\n  where the code has\n    {wanted}"
                        ));
                    }
                }
            }
        }
    }
    for option in documented_names.iter().filter(|d| !defined_names.contains(d)) {
        out.push(format!("'{title}' names option '{option}', which the code does not define (or not in this table)"));
    }
    let mut unique = documented_names.clone();
    unique.sort();
    unique.dedup();
    if unique.len() != documented_names.len() {
        out.push(format!("'{title}' lists an option twice: {documented_names:?}"));
    } else if out.is_empty() && documented_names != defined_names {
        out.push(format!("'{title}' lists the options in another order than the code: {documented_names:?}"));
    }
    out
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
        [
            "WSGIMetrics",
            "WSGIRequestSpoolSize",
            "WSGIResponseSpoolSize",
            "WSGIRestrictUnknownHosts",
            "WSGIXSendfilePath"
        ],
        "oxwsgi-only directives (each documented as such in docs/configuration.md)"
    );
}

#[test]
fn daemon_option_tables_are_the_options_the_code_defines() {
    let md = read("docs/configuration.md");
    let (implemented, ignored): (Vec<&DaemonOption>, Vec<&DaemonOption>) =
        DAEMON_OPTIONS.iter().partition(|o| o.is_implemented());
    let mut differences = Vec::new();
    let mut expected = String::new();
    for (title, options) in [("Options oxwsgi implements", implemented), ("Options accepted and ignored", ignored)] {
        let defined: Vec<Vec<String>> = options.into_iter().map(defined_row).collect();
        differences.extend(table_differences(title, &table_rows(&section(&md, title)), &defined));
        expected += &format!("\n### {title}\n\n");
        for row in &defined {
            let cells: Vec<String> = row.iter().map(|cell| cell.replace('|', "\\|")).collect();
            expected += &format!("| {} |\n", cells.join(" | "));
        }
    }
    assert!(
        differences.is_empty(),
        "docs/configuration.md's daemon option tables differ from src/config/daemon/options.rs:\n{}\n\n\
         The rows as the code defines them:\n{expected}",
        differences.join("\n")
    );
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
