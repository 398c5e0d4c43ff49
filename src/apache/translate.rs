//! Mapping a URL to a WSGI script (the translate_name hook): the longest `WSGIScriptAlias`
//! mount for the URI, or the first `WSGIScriptAliasMatch` that matches. The route is kept in the
//! request's note for the handler.

use super::conf::server_conf;
use super::request::HANDLER_NAME;
use super::request_note::Route;
use crate::routing::split_first_segment;
use crate::sys::ffi;
use crate::sys::util::{self, cbytes, cstr, pstr};
use std::ffi::CString;

/// translate_name: the longest WSGIScriptAlias mount (or a WSGIScriptAliasMatch) for the URI.
pub unsafe extern "C" fn translate_name(r: *mut ffi::request_rec) -> i32 {
    util::guard("translate_name", ffi::DECLINED, || translate(r))
}

unsafe fn translate(r: *mut ffi::request_rec) -> i32 {
    let raw = cbytes((*r).uri);
    if !raw.starts_with(b"/") {
        return ffi::DECLINED;
    }
    // Routing works on text; a URI that is not UTF-8 is routed as latin-1 (one char per byte),
    // so its bytes come back exactly.
    let (uri, latin1): (std::borrow::Cow<str>, bool) = match std::str::from_utf8(raw) {
        Ok(s) => (s.into(), false),
        Err(_) => (raw.iter().map(|&b| b as char).collect::<String>().into(), true),
    };
    let bytes = |s: &str| -> Vec<u8> {
        if latin1 {
            s.chars().map(|c| c as u8).collect()
        } else {
            s.as_bytes().to_vec()
        }
    };
    let conf = server_conf((*r).server);
    let route = match_regex(r, conf, raw).or_else(|| {
        let m = conf.mounts.resolve(&uri)?;
        let mount = m.payload;
        let target = std::path::Path::new(&mount.target);
        if mount.target_is_dir.unwrap_or_else(|| target.is_dir()) {
            // A directory target: the next path segment names the script file.
            let (segment, rest) = split_first_segment(&m.path_info)?;
            Some(Route {
                mount,
                script: target.join(segment).to_string_lossy().into_owned(),
                script_name: bytes(&format!("{}/{segment}", m.script_name)),
                path_info: bytes(rest),
            })
        } else {
            Some(Route {
                mount,
                script: mount.target.clone(),
                script_name: bytes(&m.script_name),
                path_info: bytes(&m.path_info),
            })
        }
    });
    let Some(route) = route else { return ffi::DECLINED };
    let pool = (*r).pool;
    (*r).filename = pstr(pool, route.script.as_bytes());
    (*r).path_info = pstr(pool, &route.path_info);
    (*r).handler = pstr(pool, HANDLER_NAME);
    // A second translate_name pass of the same request keeps the first route.
    let _ = super::request_note::note_or_new(r).route.set(route);
    ffi::OK as i32
}

unsafe fn match_regex(r: *mut ffi::request_rec, conf: &super::conf::ServerConf, uri: &[u8]) -> Option<Route> {
    const N: usize = 10;
    for rm in &conf.regex_mounts {
        let mut m: [ffi::ap_regmatch_t; N] = std::mem::zeroed();
        if ffi::ap_regexec(rm.regex, (*r).uri, N, m.as_mut_ptr(), 0) != 0 {
            continue;
        }
        let target = CString::new(rm.mount.target.clone()).ok()?;
        let script = cstr(ffi::ap_pregsub((*r).pool, target.as_ptr(), (*r).uri, N, m.as_mut_ptr()))?.to_string();
        let end = m[0].rm_eo.max(0) as usize;
        return Some(Route {
            mount: &rm.mount,
            script,
            script_name: {
                let mut sn = uri[..end.min(uri.len())].to_vec();
                while sn.last() == Some(&b'/') {
                    sn.pop();
                }
                sn
            },
            path_info: uri[end.min(uri.len())..].to_vec(),
        });
    }
    None
}
