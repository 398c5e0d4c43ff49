//! `WSGITrustedProxyHeaders` and `WSGITrustedProxies` on the Apache side: their directives and
//! the environ changes for one request (the rules are in `crate::proxy_headers`).

use super::conf::DirConf;
use super::directive::{answer, args};
use super::request_view::RequestView;
use crate::config;
use crate::proxy_headers::{self, Changes, Subnet};
use crate::sys::ffi;
use std::ffi::{c_void, CString};
use std::os::raw::c_char;

/// `WSGITrustedProxyHeaders Header-Name ...`: repeated lines add to the list.
pub unsafe extern "C" fn cmd_trusted_proxy_headers(
    cmd: *mut ffi::cmd_parms,
    m: *mut c_void,
    a: *const c_char,
) -> *const c_char {
    let r = (|| {
        let list = (*(m as *mut DirConf)).trusted_proxy_headers.get_or_insert_with(Vec::new);
        for w in words(args(a), "WSGITrustedProxyHeaders needs at least one header name")? {
            // Stricter than mod_wsgi, which ignores a name it does not know: a typo would
            // silently leave the site trusting nothing (or, worse, believing it does).
            let key = proxy_headers::header_key(&w).ok_or_else(|| {
                format!(
                    "WSGITrustedProxyHeaders: '{w}' is not a proxy header mod_wsgi knows (X-Forwarded-For, X-Client-IP, \
                     X-Real-IP, X-Forwarded-Host, X-Host, X-Forwarded-Server, X-Forwarded-Port, X-Script-Name, \
                     X-Forwarded-Script-Name, X-Forwarded-Proto, X-Forwarded-Scheme, X-Scheme, X-Forwarded-HTTPS, \
                     X-Forwarded-SSL, X-HTTPS)"
                )
            })?;
            if !list.contains(&key) {
                list.push(key);
            }
        }
        Ok(())
    })();
    answer(cmd, r)
}

/// `WSGITrustedProxies ADDRESS-OR-NETWORK ...`: repeated lines add to the list.
pub unsafe extern "C" fn cmd_trusted_proxies(
    cmd: *mut ffi::cmd_parms,
    m: *mut c_void,
    a: *const c_char,
) -> *const c_char {
    let r = (|| {
        let list = (*(m as *mut DirConf)).trusted_proxies.get_or_insert_with(Vec::new);
        for w in words(args(a), "WSGITrustedProxies needs at least one address or network")? {
            list.push(Subnet::parse(&w).map_err(|e| format!("WSGITrustedProxies: {e}"))?);
        }
        Ok(())
    })();
    answer(cmd, r)
}

/// The directive's words; at least one.
fn words(raw: &str, none: &str) -> Result<Vec<String>, String> {
    let words = config::split_args(raw).map_err(|e| e.to_string())?;
    if words.is_empty() {
        return Err(none.to_string());
    }
    Ok(words)
}

/// What the configured proxy headers change in this request's environ (the CGI variables
/// Apache built).
pub fn changes(req: RequestView) -> Changes {
    let dir = req.dir_conf();
    let Some(headers) = dir.trusted_proxy_headers.as_deref() else { return Vec::new() };
    let peer = req.env_var(c"REMOTE_ADDR").unwrap_or("");
    proxy_headers::rewrite(headers, dir.trusted_proxies.as_deref(), peer, |key| {
        let c = CString::new(key).ok()?;
        req.env_var(&c).map(str::to_string)
    })
}
