//! What every directive callback shares: where the directive was written, its raw arguments,
//! the server configuration it writes to, and the answer Apache expects (null, or an error that
//! Apache prints with the file and line).

use crate::appgroup::GroupSpec;
use crate::config;
use crate::sys::ffi;
use crate::sys::util::cstr;
use std::ffi::CString;
use std::os::raw::c_char;
use std::ptr;

/// Where a directive was written, for errors found after parsing (e.g. an undefined group).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub file: String,
    pub line: u32,
}

// ---------------------------------------------------------------------------------------------
// Directive callbacks. Each returns null on success or an error string Apache shows with the
// file and line.

pub type Result<T> = std::result::Result<T, String>;

pub unsafe fn origin(cmd: *mut ffi::cmd_parms) -> Origin {
    let d = (*cmd).directive;
    if d.is_null() {
        return Origin::default();
    }
    Origin { file: cstr((*d).filename).unwrap_or("(unknown)").to_string(), line: (*d).line_num as u32 }
}

pub unsafe fn directive_name(cmd: *mut ffi::cmd_parms) -> &'static str {
    cstr((*(*cmd).cmd).name).unwrap_or("WSGI")
}

pub unsafe fn global_only(cmd: *mut ffi::cmd_parms) -> Result<()> {
    let err = ffi::ap_check_cmd_context(cmd, ffi::GLOBAL_ONLY);
    if err.is_null() {
        Ok(())
    } else {
        Err(cstr(err).unwrap_or("directive not allowed here").to_string())
    }
}

/// Turns a Rust result into what Apache expects: null, or an error string in the config pool.
pub unsafe fn answer(cmd: *mut ffi::cmd_parms, r: Result<()>) -> *const c_char {
    match r {
        Ok(()) => ptr::null(),
        Err(msg) => {
            let c = CString::new(msg.replace('\0', " ")).unwrap_or_default();
            ffi::apr_pstrdup((*cmd).pool, c.as_ptr())
        }
    }
}

pub unsafe fn args<'a>(a: *const c_char) -> &'a str {
    cstr(a).unwrap_or("")
}

pub fn one_word(directive: &str, raw: &str) -> Result<String> {
    let words = config::split_args(raw).map_err(|e| e.to_string())?;
    match words.as_slice() {
        [w] => Ok(w.clone()),
        _ => Err(format!("{directive} takes exactly one argument")),
    }
}

/// The interpreter a script that runs without a request (import, auth, access and dispatch
/// scripts) names with `application-group=`: `%{GLOBAL}` (the default) or a literal name.
pub fn fixed_interpreter(directive: &str, application_group: Option<&str>) -> Result<String> {
    match application_group.map(|g| group_spec(directive, g)).transpose()? {
        None | Some(GroupSpec::Global) => Ok(String::new()),
        Some(GroupSpec::Literal(name)) => Ok(name),
        Some(_) => Err(format!(
            "{directive}: application-group must be %{{GLOBAL}} or a name (there is no request to take \
             %{{RESOURCE}}, %{{SERVER}} or %{{ENV:...}} from)"
        )),
    }
}

pub fn group_spec(directive: &str, value: &str) -> Result<GroupSpec> {
    GroupSpec::parse(value).map_err(|e| format!("{directive}: {e}"))
}
