//! Generates Rust bindings for Apache httpd 2.4 and APR from the installed headers, and compiles
//! the small C shim (include/shim.h, src/shim.c) for what bindgen cannot express, and records
//! the Python pyo3 links against (see `python`).

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn query(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run `{cmd}` ({e}): install the apache2-dev package (apt-get install apache2-dev)")
    });
    assert!(out.status.success(), "`{cmd} {}` failed", args.join(" "));
    String::from_utf8(out.stdout).expect("utf-8 output").trim().to_string()
}

/// The Python chosen at build time (`PYO3_PYTHON`, as `make build PYTHON=...` passes it; the
/// default is in .cargo/config.toml), as pyo3's build configuration found it. The crate, its
/// command and its tests read it with `env!`:
/// - `OXWSGI_BUILD_PYTHON`: its executable, resolved to the versioned binary (`/usr/bin/python3.11`);
/// - `OXWSGI_BUILD_PYTHON_VERSION`: its major.minor version (`3.11`);
/// - and pyo3's `Py_3_N` cfgs (`#[cfg(Py_3_12)]`: built for 3.12 or later).
fn python() {
    let config = pyo3_build_config::get();
    pyo3_build_config::use_pyo3_cfgs();
    let version = format!("{}.{}", config.version().major, config.version().minor);
    let executable = config.executable().expect("pyo3's build configuration names no Python executable");
    let executable = std::fs::canonicalize(executable).unwrap_or_else(|_| PathBuf::from(executable));
    println!("cargo:rustc-env=OXWSGI_BUILD_PYTHON={}", executable.display());
    println!("cargo:rustc-env=OXWSGI_BUILD_PYTHON_VERSION={version}");
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}

fn main() {
    python();
    let apxs = env::var("APXS").unwrap_or_else(|_| "apxs".into());
    let apr_config = env::var("APR_CONFIG").unwrap_or_else(|_| "apr-1-config".into());
    let mut includes: Vec<String> = vec![query(&apxs, &["-q", "INCLUDEDIR"])];
    for flag in query(&apr_config, &["--includes"]).split_whitespace() {
        if let Some(dir) = flag.strip_prefix("-I") {
            includes.push(dir.to_string());
        }
    }
    // The httpd version for `apache.version` in the environ, as mod_wsgi reports it.
    let release = std::fs::read_to_string(format!("{}/ap_release.h", includes[0])).unwrap_or_default();
    for (name, var) in [
        ("AP_SERVER_MAJORVERSION_NUMBER", "OXWSGI_AP_MAJOR"),
        ("AP_SERVER_MINORVERSION_NUMBER", "OXWSGI_AP_MINOR"),
        ("AP_SERVER_PATCHLEVEL_NUMBER", "OXWSGI_AP_PATCH"),
    ] {
        let value = release
            .lines()
            .find_map(|l| l.strip_prefix("#define ")?.strip_prefix(name)?.trim().parse::<u32>().ok())
            .unwrap_or(0);
        println!("cargo:rustc-env={var}={value}");
    }
    let cppflags = query(&apr_config, &["--cppflags"]);
    let defines: Vec<&str> = cppflags.split_whitespace().filter(|f| f.starts_with("-D")).collect();

    println!("cargo:rerun-if-changed=include/wrapper.h");
    println!("cargo:rerun-if-changed=include/shim.h");
    println!("cargo:rerun-if-changed=src/shim.c");
    println!("cargo:rerun-if-env-changed=APXS");
    println!("cargo:rerun-if-env-changed=APR_CONFIG");

    let mut shim = cc::Build::new();
    shim.file("src/shim.c").include("include").warnings(true);
    for dir in &includes {
        shim.include(dir);
    }
    for d in &defines {
        let d = &d[2..];
        match d.split_once('=') {
            Some((k, v)) => shim.define(k, Some(v)),
            None => shim.define(d, None),
        };
    }
    shim.compile("oxwsgi_shim");

    let mut builder = bindgen::Builder::default()
        .header("include/wrapper.h")
        .clang_arg("-Iinclude")
        .allowlist_function("ap_.*|apr_.*|oxwsgi_.*|unixd_.*")
        .allowlist_type("request_rec|server_rec|conn_rec|module|command_rec|cmd_parms|process_rec|ap_.*|apr_.*|authn_.*|authz_.*")
        .allowlist_var("AP_.*|APR_.*|OK|DECLINED|DONE|HTTP_.*|M_.*|MODULE_MAGIC_.*|OR_.*|RSRC_CONF|ACCESS_CONF|REQUEST_.*|APLOG_.*|NOT_IN_.*|GLOBAL_ONLY|APEXIT_.*|ap_server_conf|ap_unixd_config|ap_my_generation|ap_scoreboard_image|ap_extended_status|SERVER_BUSY_READ|SERVER_BUSY_WRITE|SUSPENDED")
        .blocklist_function("ap_log_.*error_|ap_log_perror_|apr_.*printf.*|ap_.*printf.*|ap_log_data_|ap_log_cserror_|ap_log_cerror_")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for dir in &includes {
        builder = builder.clang_arg(format!("-I{dir}"));
    }
    for d in &defines {
        builder = builder.clang_arg(*d);
    }
    let bindings = builder.generate().expect("bindgen failed on include/wrapper.h");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("apache_bindings.rs");
    bindings.write_to_file(out).expect("write bindings");
}
