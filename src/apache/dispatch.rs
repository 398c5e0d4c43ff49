//! `WSGIDispatchScript`: a script that chooses, per request, the daemon process group, the
//! interpreter and the callable (its optional `process_group(environ)`,
//! `application_group(environ)` and `callable_object(environ)`, called in that order; `None`
//! keeps what the configuration chose). It runs in the Apache child, in the interpreter its
//! `application-group=` names. An exception or a wrong type is a 500 with the traceback logged.

use super::conf::{dir_conf, DirConf};
use super::directive::{answer, args, directive_name};
use crate::appgroup::{self, GroupSpec, NamingContext};
use crate::config;
use crate::python::script_call::{self, Value};
use crate::request_plan::Mode;
use crate::sys::ffi;
use crate::sys::util::{self, log_request};
use std::ffi::{c_void, CStr};
use std::os::raw::c_char;
use std::path::Path;

pub unsafe extern "C" fn cmd_dispatch_script(
    cmd: *mut ffi::cmd_parms,
    m: *mut c_void,
    a: *const c_char,
) -> *const c_char {
    let r = (|| {
        let name = directive_name(cmd);
        let s = config::parse_auth_script(name, args(a)).map_err(|e| e.to_string())?;
        super::auth::interpreter_of(name, &s)?;
        (*(m as *mut DirConf)).dispatch_script = Some(s);
        Ok(())
    })();
    answer(cmd, r)
}

/// What the dispatch script may change, as the handler chose it.
pub struct Choice {
    pub mode: Mode,
    pub application_group: String,
    pub callable: String,
}

/// Runs the dispatch script configured for `r`, if any, on `environ`; Err is the status to
/// answer.
pub unsafe fn apply(
    r: *mut ffi::request_rec,
    environ: &[(&[u8], &[u8])],
    naming: &NamingContext,
    choice: &mut Choice,
) -> Result<(), i32> {
    let Some(s) = dir_conf(r).dispatch_script.as_ref() else { return Ok(()) };
    super::python_start::ensure_python();
    let interpreter =
        super::auth::interpreter_of("WSGIDispatchScript", s).map_err(|_| ffi::HTTP_INTERNAL_SERVER_ERROR as i32)?;
    let reload = dir_conf(r).script_reloading.unwrap_or(true);
    let steps: [(&CStr, &str); 3] = [
        (c"process_group", "process_group"),
        (c"application_group", "application_group"),
        (c"callable_object", "callable_object"),
    ];
    for (function, name) in steps {
        let value = match script_call::call_optional(&interpreter, Path::new(&s.script), reload, function, environ) {
            Ok(v) => v,
            Err(e) => {
                log_request(
                    r,
                    util::LOG_ERR,
                    &format!(
                        "mod_wsgi (pid={}): Exception occurred processing WSGI dispatch script '{}'.",
                        std::process::id(),
                        s.script
                    ),
                );
                util::log_request_lines(r, util::LOG_ERR, e.message());
                return Err(ffi::HTTP_INTERNAL_SERVER_ERROR as i32);
            }
        };
        let text = match value {
            Value::None => continue,
            Value::Text(t) => String::from_utf8_lossy(&t).into_owned(),
            other => {
                log_request(
                    r,
                    util::LOG_ERR,
                    &format!("oxwsgi: dispatch script {name}() returned {other:?}, not a string or None"),
                );
                return Err(ffi::HTTP_INTERNAL_SERVER_ERROR as i32);
            }
        };
        match name {
            "process_group" => choice.mode = Mode::from_name(&text),
            "application_group" => {
                let spec = GroupSpec::parse(&text).map_err(|e| {
                    log_request(r, util::LOG_ERR, &format!("oxwsgi: dispatch script application_group(): {e}"));
                    ffi::HTTP_INTERNAL_SERVER_ERROR as i32
                })?;
                choice.application_group = appgroup::resolve(&spec, naming, |var| std::env::var(var).ok());
            }
            _ => choice.callable = text,
        }
    }
    Ok(())
}
