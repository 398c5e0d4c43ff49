//! `WSGIHandlerScript` and `WSGIImportScript` on the Apache side: their directives, finding the
//! handler script of a request (by its Apache handler name), and running import scripts when
//! an Apache child starts. Parsing is in `crate::config::scripts`; a daemon runs its own import
//! scripts (`crate::daemon::server`), handed over with its group.

use super::conf::{dir_conf, server_conf, server_conf_mut, DirConf};
use super::directive::{answer, args, fixed_interpreter, global_only, group_spec, origin};
use crate::config::{self, HandlerScript, ImportScript};
use crate::sys::ffi;
use crate::sys::util::{self, cbytes};
use std::ffi::c_void;
use std::os::raw::c_char;
use std::path::Path;
use std::ptr;

const GLOBAL: &str = "%{GLOBAL}";

pub unsafe extern "C" fn cmd_handler_script(
    cmd: *mut ffi::cmd_parms,
    m: *mut c_void,
    a: *const c_char,
) -> *const c_char {
    let r = (|| {
        let h = config::parse_handler_script(args(a)).map_err(|e| e.to_string())?;
        if let Some(g) = &h.options.application_group {
            group_spec("WSGIHandlerScript", g)?;
        }
        if let Some(g) = h.options.process_group.as_ref().filter(|g| !g.is_empty() && *g != GLOBAL) {
            server_conf_mut(cmd).group_references.push((g.clone(), origin(cmd)));
        }
        let conf = &mut *(m as *mut DirConf);
        conf.handler_scripts.retain(|old| old.name != h.name);
        conf.handler_scripts.insert(0, h);
        Ok(())
    })();
    answer(cmd, r)
}

pub unsafe extern "C" fn cmd_import_script(
    cmd: *mut ffi::cmd_parms,
    _m: *mut c_void,
    a: *const c_char,
) -> *const c_char {
    let r = (|| {
        global_only(cmd)?;
        let i = config::parse_import_script(args(a)).map_err(|e| e.to_string())?;
        interpreter_name(&i)?;
        if let Some(g) = &i.process_group {
            server_conf_mut(cmd).group_references.push((g.clone(), origin(cmd)));
        }
        server_conf_mut(cmd).import_scripts.push((i, origin(cmd)));
        Ok(())
    })();
    answer(cmd, r)
}

/// The interpreter an import script runs in.
fn interpreter_name(i: &ImportScript) -> Result<String, String> {
    fixed_interpreter("WSGIImportScript", i.application_group.as_deref())
}

/// The handler script for this request's Apache handler, if one is configured for it.
pub unsafe fn for_request<'a>(r: *const ffi::request_rec) -> Option<&'a HandlerScript> {
    let name = cbytes((*r).handler);
    if name.is_empty() {
        return None;
    }
    dir_conf(r).handler_scripts.iter().find(|h| h.name.as_bytes() == name)
}

/// Scripts the daemon group `group` loads when a process starts, before it takes a request:
/// (script, interpreter name). Its WSGIImportScript lines, then, as in mod_wsgi, each
/// WSGIScriptAlias script delegated to it with both `process-group=` and a fixed
/// `application-group=` (so a new process is ready when it takes its first request).
pub fn for_group(group: &str) -> Vec<(String, String)> {
    let main = server_conf(unsafe { ffi::ap_server_conf });
    let mut scripts: Vec<(String, String)> = main
        .import_scripts
        .iter()
        .filter(|(i, _)| i.process_group.as_deref() == Some(group))
        .filter_map(|(i, _)| Some((i.script.clone(), interpreter_name(i).ok()?)))
        .collect();
    let mut server = unsafe { ffi::ap_server_conf };
    while !server.is_null() {
        for (_, mount) in server_conf(server).mounts.iter() {
            let o = &mount.options;
            if o.process_group.as_deref() != Some(group) || mount.target_is_dir != Some(false) {
                continue;
            }
            let Some(name) = o.application_group.as_deref().and_then(|g| fixed_interpreter("", Some(g)).ok()) else {
                continue;
            };
            let entry = (mount.target.clone(), name);
            if !scripts.contains(&entry) {
                scripts.push(entry);
            }
        }
        server = unsafe { (*server).next };
    }
    scripts
}

/// child_init: an Apache child with embedded-mode import scripts starts Python now and runs
/// them, so its first request finds them loaded.
pub fn run_embedded_imports() {
    let main = server_conf(unsafe { ffi::ap_server_conf });
    let embedded: Vec<&ImportScript> =
        main.import_scripts.iter().map(|(i, _)| i).filter(|i| i.process_group.is_none()).collect();
    if embedded.is_empty() {
        return;
    }
    super::python_start::ensure_python();
    for i in embedded {
        let Ok(name) = interpreter_name(i) else { continue };
        if let Err(e) = crate::python::wsgi::preload(&name, Path::new(&i.script)) {
            util::log_server_lines(ptr::null(), util::LOG_ERR, &e);
        }
    }
}
