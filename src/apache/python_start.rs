//! Starting Python in an Apache child: once, on the first embedded-mode request or at child start
//! when embedded-mode import scripts need it (never in Apache's parent, which reloads the module),
//! with the main server's WSGIPythonHome, WSGIPythonPath and WSGIRestrictSignal; and the
//! directives that set how Python starts in every process (WSGIPythonWarnings,
//! WSGIDontWriteBytecode, WSGIPythonHashSeed) or in the children (WSGIPythonEggs).

use super::conf::{server_conf, server_conf_mut, server_setter};
use super::directive::{answer, args, directive_name, global_only, one_word, Result};
use crate::config;
use crate::python::interp;
use crate::sys::ffi;
use crate::sys::util;
use std::ffi::c_void;
use std::os::raw::c_char;
use std::ptr;

pub fn mpm_query(what: u32) -> i32 {
    let mut v = 0;
    unsafe { ffi::ap_mpm_query(what as i32, &mut v) };
    v
}

/// Python starts in an Apache child on its first embedded-mode request, so children that only
/// pass requests to daemon processes never carry an interpreter.
pub fn ensure_python() {
    static START: std::sync::Once = std::sync::Once::new();
    START.call_once(|| {
        let conf = server_conf(unsafe { ffi::ap_server_conf });
        let config = interp::RuntimeConfig {
            python_home: conf.python_home.as_ref().map(|(h, _)| h.clone()),
            python_path: conf.python_path.clone(),
            process_group: String::new(),
            restrict_signal: conf.restrict_signal.unwrap_or(true),
            threads_per_process: mpm_query(ffi::AP_MPMQ_MAX_THREADS).max(1) as i64,
            maximum_processes: mpm_query(ffi::AP_MPMQ_MAX_DAEMONS).max(1) as i64,
            start: start_options(),
            newrelic: conf.newrelic_config_file.clone().map(|f| (f, conf.newrelic_environment.clone())),
        };
        // WSGIPythonEggs: embedded mode's egg cache (daemons have python-eggs=).
        if let Some(dir) = &conf.python_eggs {
            std::env::set_var("PYTHON_EGG_CACHE", dir);
        }
        if let Err(e) = crate::python::initialize(config) {
            util::log_server(ptr::null(), util::LOG_ERR, &format!("oxwsgi: {e}"));
        }
    });
}

/// How Python starts, from the main server's configuration (for the children and the daemons).
pub fn start_options() -> interp::StartOptions {
    let conf = server_conf(unsafe { ffi::ap_server_conf });
    interp::StartOptions {
        warnings: conf.python_warnings.clone(),
        dont_write_bytecode: conf.dont_write_bytecode.unwrap_or(false),
        hash_seed: conf.hash_seed.flatten(),
        switch_interval: conf.switch_interval,
        optimize: conf.python_optimize.unwrap_or(0),
        case_sensitive: conf.case_sensitivity.unwrap_or(true),
        interpreter_options: conf.interpreter_options.clone(),
        per_interpreter_gil: conf.per_interpreter_gil.unwrap_or(false),
        restrict_stdin: conf.restrict_stdin.unwrap_or(false),
        restrict_stdout: conf.restrict_stdout.unwrap_or(false),
    }
}

server_setter!(cmd_newrelic_config_file, global = true, |conf, cmd, name, raw| {
    let _ = cmd;
    conf.newrelic_config_file = Some(one_word(name, raw)?);
    Ok(())
});
server_setter!(cmd_newrelic_environment, global = true, |conf, cmd, name, raw| {
    let _ = cmd;
    conf.newrelic_environment = Some(one_word(name, raw)?);
    Ok(())
});
server_setter!(cmd_case_sensitivity, global = true, |conf, cmd, name, raw| {
    let _ = cmd;
    conf.case_sensitivity = Some(config::parse_on_off(name, raw).map_err(|e| e.to_string())?);
    Ok(())
});

server_setter!(cmd_python_optimize, global = true, |conf, cmd, name, raw| {
    let _ = cmd;
    let level = one_word(name, raw)?;
    conf.python_optimize = Some(match level.as_str() {
        "0" => 0,
        "1" => 1,
        "2" => 2,
        _ => return Err(format!("{name} needs 0, 1 or 2 (Python's -O level), not '{level}'")),
    });
    Ok(())
});

server_setter!(cmd_python_warnings, global = true, |conf, cmd, name, raw| {
    let _ = cmd;
    conf.python_warnings.push(one_word(name, raw)?);
    Ok(())
});
server_setter!(cmd_dont_write_bytecode, global = true, |conf, cmd, name, raw| {
    let _ = cmd;
    conf.dont_write_bytecode = Some(config::parse_on_off(name, raw).map_err(|e| e.to_string())?);
    Ok(())
});
server_setter!(cmd_switch_interval, global = true, |conf, cmd, name, raw| {
    let interval = Some(config::parse_switch_interval(name, raw).map_err(|e| e.to_string())?);
    match super::interpreter_options::block_of(cmd, conf) {
        Some(block) => block.switch_interval = interval,
        None => conf.switch_interval = interval,
    }
    Ok(())
});
server_setter!(cmd_python_hash_seed, global = true, |conf, cmd, name, raw| {
    let _ = cmd;
    conf.hash_seed = Some(config::parse_hash_seed(name, raw).map_err(|e| e.to_string())?);
    Ok(())
});
server_setter!(cmd_python_eggs, global = true, |conf, cmd, name, raw| {
    let _ = cmd;
    conf.python_eggs = Some(one_word(name, raw)?);
    Ok(())
});
