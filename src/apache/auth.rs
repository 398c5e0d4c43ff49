//! Authentication, group and access scripts, as mod_wsgi provides them to Apache:
//! `AuthBasicProvider wsgi` / `AuthDigestProvider wsgi` call WSGIAuthUserScript's
//! `check_password(environ, user, password)` / `get_realm_hash(environ, user, realm)`;
//! `Require wsgi-group G...` calls WSGIAuthGroupScript's `groups_for_user(environ, user)`;
//! WSGIAccessScript's `allow_access(environ, host)` runs in the access-check phase. They run in
//! the Apache child, in the interpreter `application-group=` names (the main one by default).
//! An exception (or a result of the wrong type) is a 500 with the traceback in the error log,
//! never a granted request.

use super::conf::{dir_conf, DirConf};
use super::directive::{answer, args, directive_name, fixed_interpreter};
use super::request_view::RequestView;
use crate::config::{self, AuthScript};
use crate::python::script_call::{self, Value};
use crate::sys::ffi;
use crate::sys::util::{self, cbytes, cstr, log_request, pstr, table_entries};
use std::ffi::{c_void, CStr};
use std::os::raw::c_char;
use std::path::Path;
use std::ptr;

macro_rules! script_setter {
    ($fn_name:ident, $field:ident) => {
        pub unsafe extern "C" fn $fn_name(cmd: *mut ffi::cmd_parms, m: *mut c_void, a: *const c_char) -> *const c_char {
            let r = (|| {
                let name = directive_name(cmd);
                let s = config::parse_auth_script(name, args(a)).map_err(|e| e.to_string())?;
                interpreter_of(name, &s)?;
                (*(m as *mut DirConf)).$field = Some(s);
                Ok(())
            })();
            answer(cmd, r)
        }
    };
}
script_setter!(cmd_auth_user_script, auth_user_script);
script_setter!(cmd_auth_group_script, auth_group_script);
script_setter!(cmd_access_script, access_script);

/// The interpreter a script's `application-group=` names.
pub(super) fn interpreter_of(directive: &str, s: &AuthScript) -> Result<String, String> {
    fixed_interpreter(directive, s.application_group.as_deref())
}

/// The environ an auth script sees: the request's CGI variables, without its credentials, and
/// the script's interpreter as `mod_wsgi.application_group`.
unsafe fn auth_environ(r: *mut ffi::request_rec, group: &str) -> Vec<(&[u8], &[u8])> {
    ffi::ap_add_common_vars(r);
    let mut env: Vec<(&[u8], &[u8])> = table_entries((*r).subprocess_env)
        .filter(|(k, _)| *k != b"HTTP_AUTHORIZATION" && *k != b"HTTP_PROXY_AUTHORIZATION")
        .collect();
    env.push((b"REQUEST_METHOD", cbytes((*r).method)));
    env.push((b"REQUEST_URI", cbytes((*r).unparsed_uri)));
    env.push((b"QUERY_STRING", cbytes((*r).args)));
    let (script_name, path_info) = script_name_and_path_info(r);
    env.push((b"SCRIPT_NAME", script_name));
    env.push((b"PATH_INFO", path_info));
    env.push((b"mod_wsgi.process_group", b""));
    env.push((b"mod_wsgi.application_group", group.as_bytes()));
    env
}

/// SCRIPT_NAME and PATH_INFO as mod_wsgi's Auth_environ gives them, so a script can decide by
/// path: the URI up to where its PATH_INFO starts (for an SSI include, the whole URI), with runs
/// of `/` folded as the application will see them (a script that denies `/admin` must not let
/// `//admin` through).
unsafe fn script_name_and_path_info<'a>(r: *mut ffi::request_rec) -> (&'a [u8], &'a [u8]) {
    let req = RequestView::new(r);
    let script_name = if req.protocol() == b"INCLUDED" { req.uri() } else { req.uri_before_path_info() };
    (super::environ::folded(req, script_name), super::environ::folded(req, req.path_info()))
}

/// Runs `function` of the script; logs and returns None on an error.
unsafe fn run(
    r: *mut ffi::request_rec,
    directive: &str,
    s: Option<&AuthScript>,
    function: &CStr,
    args: &[&[u8]],
    want_list: bool,
) -> Option<Value> {
    let Some(s) = s else {
        log_request(
            r,
            util::LOG_ERR,
            &format!("oxwsgi: the wsgi auth provider is used but {directive} is not set here"),
        );
        return None;
    };
    super::python_start::ensure_python();
    let group = interpreter_of(directive, s).ok()?;
    let env = auth_environ(r, &group);
    let reload = dir_conf(r).script_reloading.unwrap_or(true);
    match script_call::call(&group, Path::new(&s.script), reload, function, &env, args, want_list) {
        Ok(v) => Some(v),
        Err(e) => {
            log_request(
                r,
                util::LOG_ERR,
                &format!(
                    "mod_wsgi (pid={}): Exception occurred processing {directive} '{}'.",
                    std::process::id(),
                    s.script
                ),
            );
            util::log_request_lines(r, util::LOG_ERR, e.message());
            None
        }
    }
}

fn wrong_type(r: *mut ffi::request_rec, function: &str, v: &Value) {
    log_request(r, util::LOG_ERR, &format!("oxwsgi: {function}() returned {v:?}, which is not a valid answer"));
}

unsafe extern "C" fn check_password(
    r: *mut ffi::request_rec,
    user: *const c_char,
    password: *const c_char,
) -> ffi::authn_status {
    util::guard("check_password", ffi::authn_status_AUTH_GENERAL_ERROR, || {
        let s = dir_conf(r).auth_user_script.as_ref();
        match run(r, "WSGIAuthUserScript", s, c"check_password", &[cbytes(user), cbytes(password)], false) {
            Some(Value::True) => ffi::authn_status_AUTH_GRANTED,
            Some(Value::False) => ffi::authn_status_AUTH_DENIED,
            Some(Value::None) => ffi::authn_status_AUTH_USER_NOT_FOUND,
            // A user name to use instead of the one the client gave.
            Some(Value::Text(name)) if !name.is_empty() => {
                (*r).user = pstr((*r).pool, &name);
                ffi::authn_status_AUTH_GRANTED
            }
            Some(other) => {
                wrong_type(r, "check_password", &other);
                ffi::authn_status_AUTH_GENERAL_ERROR
            }
            None => ffi::authn_status_AUTH_GENERAL_ERROR,
        }
    })
}

unsafe extern "C" fn get_realm_hash(
    r: *mut ffi::request_rec,
    user: *const c_char,
    realm: *const c_char,
    rethash: *mut *mut c_char,
) -> ffi::authn_status {
    util::guard("get_realm_hash", ffi::authn_status_AUTH_GENERAL_ERROR, || {
        let s = dir_conf(r).auth_user_script.as_ref();
        match run(r, "WSGIAuthUserScript", s, c"get_realm_hash", &[cbytes(user), cbytes(realm)], false) {
            Some(Value::None) => ffi::authn_status_AUTH_USER_NOT_FOUND,
            Some(Value::Text(hash)) if !hash.is_empty() => {
                *rethash = pstr((*r).pool, &hash);
                ffi::authn_status_AUTH_USER_FOUND
            }
            Some(other) => {
                wrong_type(r, "get_realm_hash", &other);
                ffi::authn_status_AUTH_GENERAL_ERROR
            }
            None => ffi::authn_status_AUTH_GENERAL_ERROR,
        }
    })
}

unsafe extern "C" fn check_group(
    r: *mut ffi::request_rec,
    require_line: *const c_char,
    _parsed: *const c_void,
) -> ffi::authz_status {
    util::guard("groups_for_user", ffi::authz_status_AUTHZ_GENERAL_ERROR, || {
        if (*r).user.is_null() {
            return ffi::authz_status_AUTHZ_DENIED_NO_USER;
        }
        let wanted = config::split_args(cstr(require_line).unwrap_or("")).unwrap_or_default();
        let s = dir_conf(r).auth_group_script.as_ref();
        match run(r, "WSGIAuthGroupScript", s, c"groups_for_user", &[cbytes((*r).user)], true) {
            Some(Value::Texts(groups)) => {
                if wanted.iter().any(|w| groups.iter().any(|g| g == w.as_bytes())) {
                    ffi::authz_status_AUTHZ_GRANTED
                } else {
                    ffi::authz_status_AUTHZ_DENIED
                }
            }
            Some(other) => {
                wrong_type(r, "groups_for_user", &other);
                ffi::authz_status_AUTHZ_GENERAL_ERROR
            }
            None => ffi::authz_status_AUTHZ_GENERAL_ERROR,
        }
    })
}

/// access_checker: WSGIAccessScript's `allow_access(environ, host)`.
unsafe extern "C" fn access_check(r: *mut ffi::request_rec) -> i32 {
    util::guard("allow_access", ffi::HTTP_INTERNAL_SERVER_ERROR as i32, || {
        let Some(s) = dir_conf(r).access_script.as_ref() else { return ffi::DECLINED };
        let c = (*r).connection;
        let host = ffi::ap_get_remote_host(c, (*r).per_dir_config as *mut c_void, REMOTE_HOST, ptr::null_mut());
        let host = if host.is_null() { cbytes((*r).useragent_ip) } else { cbytes(host) };
        match run(r, "WSGIAccessScript", Some(s), c"allow_access", &[host], false) {
            Some(Value::True) => ffi::OK as i32,
            Some(Value::None) => ffi::DECLINED,
            Some(Value::False) => {
                // mod_wsgi's line, left out where another module may still grant (Satisfy Any).
                if ffi::ap_satisfies(r) != SATISFY_ANY || ffi::ap_some_auth_required(r) == 0 {
                    let file = String::from_utf8_lossy(cbytes((*r).filename));
                    let pid = std::process::id();
                    let line = format!("mod_wsgi (pid={pid}): Client denied by server configuration: '{file}'.");
                    log_request(r, util::LOG_ERR, &line);
                }
                ffi::HTTP_FORBIDDEN as i32
            }
            Some(other) => {
                wrong_type(r, "allow_access", &other);
                ffi::HTTP_INTERNAL_SERVER_ERROR as i32
            }
            None => ffi::HTTP_INTERNAL_SERVER_ERROR as i32,
        }
    })
}

/// http_core.h: a host name if HostnameLookups allow one, else the address.
const REMOTE_HOST: i32 = 0;
/// http_core.h: `Satisfy Any`.
const SATISFY_ANY: i32 = 1;

static AUTHN: ffi::authn_provider =
    ffi::authn_provider { check_password: Some(check_password), get_realm_hash: Some(get_realm_hash) };
static AUTHZ: ffi::authz_provider =
    ffi::authz_provider { check_authorization: Some(check_group), parse_require_line: None };

/// register_hooks: the `wsgi` authentication provider, the `wsgi-group` authorization
/// provider and the access checker.
pub unsafe fn register(p: *mut ffi::apr_pool_t) {
    let per_conf = ffi::AP_AUTH_INTERNAL_PER_CONF as i32;
    ffi::ap_register_auth_provider(
        p,
        c"authn".as_ptr(),
        c"wsgi".as_ptr(),
        c"0".as_ptr(),
        ptr::addr_of!(AUTHN) as *const c_void,
        per_conf,
    );
    ffi::ap_register_auth_provider(
        p,
        c"authz".as_ptr(),
        c"wsgi-group".as_ptr(),
        c"0".as_ptr(),
        ptr::addr_of!(AUTHZ) as *const c_void,
        per_conf,
    );
    // As mod_wsgi: a per-URI access checker (the script sees the path, so Apache must not skip
    // it for an internal redirect that merely shares the configuration), after mod_ssl and
    // before mod_authz_host. Apache keeps these pointers for the life of the hook table.
    static mut PRE: [*const c_char; 2] = [c"mod_ssl.c".as_ptr(), ptr::null()];
    static mut SUCC: [*const c_char; 2] = [c"mod_authz_host.c".as_ptr(), ptr::null()];
    ffi::ap_hook_access_checker(
        Some(access_check),
        ptr::addr_of!(PRE) as *const _,
        ptr::addr_of!(SUCC) as *const _,
        ffi::APR_HOOK_MIDDLE as i32,
    );
}
