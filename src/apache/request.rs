//! Embedded mode: mapping a URL to a WSGI script (translate_name) and the content handler that
//! runs the app in this Apache child (or hands the request to `relay` for daemon mode).

use super::conf::{dir_conf, server_conf};
use super::python_start::{ensure_python, mpm_query};
use super::request_note::Route;
use super::response::ApacheBackend;
use crate::appgroup::{self, GroupSpec, NamingContext};
use crate::config::{HandlerScript, HANDLER_CALLABLE};
use crate::metrics::running::{Phases, Running};
use crate::python::interp;
use crate::python::wsgi::{self, Outcome, Request};
use crate::routing::split_first_segment;
use crate::sys::ffi;
use crate::sys::util::{self, cbytes, cstr, log_request, pstr, table_entries, table_get};
use std::ffi::CString;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub const HANDLER_NAME: &[u8] = b"wsgi-script";

/// Whether oxwsgi handles this request: our own handler name, or mod_wsgi's MIME-type form
/// (`AddType application/x-httpd-wsgi .wsgi`).
pub unsafe fn is_wsgi_handler(r: *const ffi::request_rec) -> bool {
    let h = cbytes((*r).handler);
    h == HANDLER_NAME || h == b"application/x-httpd-wsgi"
}

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

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(0);

/// This child's pid, recorded by the child_init hook: getpid() is a system call in current
/// glibc, and the request path needs it for every request id.
pub static CHILD_PID: AtomicU32 = AtomicU32::new(0);

fn child_pid() -> u32 {
    match CHILD_PID.load(Ordering::Relaxed) {
        0 => std::process::id(),
        pid => pid,
    }
}

/// The content handler for `wsgi-script`.
pub unsafe extern "C" fn handler(r: *mut ffi::request_rec) -> i32 {
    let handler_script = if is_wsgi_handler(r) {
        None
    } else {
        match super::handler_script::for_request(r) {
            Some(h) => Some(h),
            None => return ffi::DECLINED,
        }
    };
    match std::panic::catch_unwind(|| handle(r, handler_script)) {
        Ok(status) => status,
        Err(_) => {
            log_request(r, util::LOG_ERR, "oxwsgi: internal error (panic) while handling the request");
            ffi::HTTP_INTERNAL_SERVER_ERROR as i32
        }
    }
}

/// Serves `r` with its WSGI script, or with `handler_script` (WSGIHandlerScript) for the
/// resource the request names.
unsafe fn handle(r: *mut ffi::request_rec, handler_script: Option<&HandlerScript>) -> i32 {
    let route = super::request_note::note(r).and_then(|n| n.route.get());
    let route = route.filter(|_| handler_script.is_none());
    let mount = route.map(|rt| &*rt.mount);
    // The options written on the handler script's or the mount's line come first.
    let options = handler_script.map(|h| &h.options).or(mount.map(|m| &m.options));
    let dir = dir_conf(r);
    // SCRIPT_FILENAME: the file the request is for (for a handler script, the resource).
    let resource = cstr((*r).filename).unwrap_or("").to_string();
    let script = handler_script.map_or_else(|| resource.clone(), |h| h.script.clone());

    let process_group = options
        .and_then(|o| o.process_group.clone())
        .map(|g| if g == "%{GLOBAL}" { String::new() } else { g })
        .or_else(|| dir.process_group.clone())
        .unwrap_or_default();
    let main = server_conf(ffi::ap_server_conf);
    if process_group.is_empty() && main.restrict_embedded == Some(true) {
        log_request(
            r,
            util::LOG_ERR,
            &format!("oxwsgi: embedded mode is disabled (WSGIRestrictEmbedded On); refusing '{script}'"),
        );
        return ffi::HTTP_INTERNAL_SERVER_ERROR as i32;
    }
    let mtime = match handler_script {
        None if (*r).finfo.filetype != ffi::apr_filetype_e_APR_REG => {
            log_request(r, util::LOG_ERR, &format!("oxwsgi: Target WSGI script not found or unable to stat: {script}"));
            return ffi::HTTP_NOT_FOUND as i32;
        }
        None => (*r).finfo.mtime,
        Some(_) => match std::fs::metadata(&script) {
            Ok(m) => interp::mtime_micros(&m),
            Err(e) => {
                log_request(r, util::LOG_ERR, &format!("oxwsgi: WSGI handler script '{script}' cannot be read: {e}"));
                return ffi::HTTP_INTERNAL_SERVER_ERROR as i32;
            }
        },
    };
    // A chunked body has no CONTENT_LENGTH: apps that trust it would see an empty body.
    let chunked = table_get((*r).headers_in, c"Transfer-Encoding").is_some();
    if chunked && dir.chunked_request != Some(true) {
        log_request(r, util::LOG_INFO, "oxwsgi: chunked request body refused (WSGIChunkedRequest Off): 411");
        return ffi::HTTP_LENGTH_REQUIRED as i32;
    }
    let content_length = if chunked {
        None
    } else {
        match table_get((*r).headers_in, c"Content-Length").map(|v| v.trim().parse::<u64>()) {
            None => Some(0),
            Some(Ok(n)) => Some(n),
            Some(Err(_)) => return ffi::HTTP_BAD_REQUEST as i32,
        }
    };

    let (script_name, path_info): (Vec<u8>, Vec<u8>) = match route {
        Some(rt) => (rt.script_name.clone(), rt.path_info.clone()),
        None => {
            // AddHandler/SetHandler: SCRIPT_NAME is the URI without its PATH_INFO.
            let uri = cbytes((*r).uri);
            let pi = cbytes((*r).path_info);
            (uri[..uri.len().saturating_sub(pi.len())].to_vec(), pi.to_vec())
        }
    };
    let callable = match handler_script {
        // A handler script's callable is handle_request unless its own line says otherwise.
        Some(h) => h.options.callable_object.clone().unwrap_or_else(|| HANDLER_CALLABLE.to_string()),
        None => options
            .and_then(|o| o.callable_object.clone())
            .or_else(|| dir.callable_object.clone())
            .unwrap_or_else(|| "application".to_string()),
    };
    let pass_auth = options.and_then(|o| o.pass_authorization).or(dir.pass_authorization).unwrap_or(false);
    let spec = match handler_script {
        Some(h) => h.options.application_group.as_deref().and_then(|g| GroupSpec::parse(g).ok()),
        None => mount.and_then(|m| m.application_group.clone()),
    }
    .or_else(|| dir.application_group.clone())
    .unwrap_or(GroupSpec::Resource);
    // WSGIMapHEADToGET: the application may be run as for GET (Apache still sends no body).
    let head = (*r).header_only != 0;
    let as_get = head && dir.map_head_to_get.unwrap_or_default().maps((*r).output_filters != (*r).proto_output_filters);

    // Apache's common CGI variables; the request-line ones are set here rather than with
    // ap_add_cgi_vars, which runs a whole sub-request per request to compute PATH_TRANSLATED.
    ffi::ap_add_common_vars(r);
    let env = (*r).subprocess_env;
    let server_name = cstr((*(*r).server).server_hostname).unwrap_or("localhost");
    let port = local_port(r);
    let script_name_text = String::from_utf8_lossy(&script_name);
    let group =
        appgroup::resolve(&spec, &NamingContext { server_name, port, script_name: &script_name_text }, |name| {
            let c = CString::new(name).ok()?;
            table_get(env, &c).map(String::from).or_else(|| std::env::var(name).ok())
        });

    // The CGI variables as mod_wsgi passes them: SCRIPT_NAME/PATH_INFO from the route,
    // Authorization only as configured, no PATH (Apache's own), HTTPS turned into url_scheme.
    // WSGITrustedProxyHeaders: what a trusted proxy said replaces what Apache saw, and the
    // proxy headers a client could forge are removed.
    let proxy = super::proxy::changes(r, env);
    let proxied = |key: &str| proxy.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_deref());
    let https = match proxied("HTTPS") {
        Some(v) => v.is_some(),
        None => table_get(env, c"HTTPS").is_some_and(|v| v.eq_ignore_ascii_case("on")),
    };
    let mut cgi: Vec<(&[u8], &[u8])> = Vec::with_capacity(48);
    for (k, v) in table_entries(env) {
        match k {
            b"SCRIPT_NAME" | b"PATH_INFO" | b"HTTP_AUTHORIZATION" | b"PATH_TRANSLATED" | b"PATH" | b"HTTPS" => {}
            _ if proxy.iter().any(|(p, _)| p.as_bytes() == k) => {}
            _ => cgi.push((k, v)),
        }
    }
    for (k, v) in &proxy {
        if let (Some(v), false) = (v, matches!(k.as_str(), "HTTPS" | "SCRIPT_NAME")) {
            cgi.push((k.as_bytes(), v.as_bytes()));
        }
    }
    let public_script_name = proxied("SCRIPT_NAME").flatten().map_or(&script_name[..], str::as_bytes);
    let auth = table_get((*r).headers_in, c"Authorization");
    if let (true, Some(a)) = (pass_auth, auth) {
        cgi.push((b"HTTP_AUTHORIZATION", a.as_bytes()));
    }
    let path_translated = [resource.as_bytes(), &path_info].concat();
    cgi.push((b"GATEWAY_INTERFACE", b"CGI/1.1"));
    cgi.push((b"SERVER_PROTOCOL", cbytes((*r).protocol)));
    cgi.push((b"REQUEST_METHOD", if as_get { b"GET" } else { cbytes((*r).method) }));
    cgi.push((b"QUERY_STRING", cbytes((*r).args)));
    cgi.push((b"REQUEST_URI", original_uri(r)));
    cgi.push((b"SCRIPT_NAME", public_script_name));
    cgi.push((b"PATH_INFO", &path_info));
    if !path_info.is_empty() {
        cgi.push((b"PATH_TRANSLATED", &path_translated));
    }
    // WSGIDispatchScript may choose another group, interpreter or callable for this request.
    let mut choice = super::dispatch::Choice { process_group, application_group: group, callable };
    let naming = NamingContext { server_name, port, script_name: &script_name_text };
    if let Err(status) = super::dispatch::apply(r, &cgi, &naming, &mut choice) {
        return status;
    }
    let super::dispatch::Choice { process_group, application_group: group, callable } = choice;
    if process_group.is_empty() && main.restrict_embedded == Some(true) {
        log_request(
            r,
            util::LOG_ERR,
            "oxwsgi: embedded mode is disabled (WSGIRestrictEmbedded On); refusing the dispatch script's choice",
        );
        return ffi::HTTP_INTERNAL_SERVER_ERROR as i32;
    }
    if dir.restrict_process.as_ref().is_some_and(|allowed| !allowed.allows(&process_group)) {
        let shown = if process_group.is_empty() { "%{GLOBAL}" } else { &process_group };
        log_request(
            r,
            util::LOG_ERR,
            &format!(
                "mod_wsgi (pid={}): Daemon process called '{shown}' cannot be accessed by this WSGI application: \
                 {script} (not listed by WSGIRestrictProcess)",
                std::process::id()
            ),
        );
        return ffi::HTTP_INTERNAL_SERVER_ERROR as i32;
    }
    let request_id = match cstr((*r).log_id) {
        Some(id) => id.to_string(),
        None => format!("{:x}-{:x}", child_pid(), REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed)),
    };
    let reload = dir.script_reloading.unwrap_or(true);
    let start = format!("{}", (*r).request_time);
    let port_text = port.to_string();
    let listener_host = cstr((*(*r).connection).local_ip).unwrap_or("").to_string();
    let extras: [(&[u8], &[u8]); 15] = [
        (b"mod_wsgi.enable_sendfile", if dir.enable_sendfile == Some(true) { b"1" } else { b"0" }),
        (b"mod_wsgi.ignore_activity", if dir.ignore_activity == Some(true) { b"1" } else { b"0" }),
        (b"mod_wsgi.script_start", start.as_bytes()),
        (b"mod_wsgi.process_group", process_group.as_bytes()),
        (b"mod_wsgi.application_group", group.as_bytes()),
        (b"mod_wsgi.callable_object", callable.as_bytes()),
        (b"mod_wsgi.request_handler", cbytes((*r).handler)),
        (b"mod_wsgi.handler_script", handler_script.map_or(&b""[..], |h| h.script.as_bytes())),
        (b"mod_wsgi.script_reloading", if reload { b"1" } else { b"0" }),
        (b"mod_wsgi.listener_host", listener_host.as_bytes()),
        (b"mod_wsgi.listener_port", port_text.as_bytes()),
        (b"mod_wsgi.request_start", start.as_bytes()),
        (b"mod_wsgi.request_id", request_id.as_bytes()),
        (b"mod_wsgi.script_name", &script_name),
        (b"mod_wsgi.path_info", &path_info),
    ];
    cgi.extend_from_slice(&extras);

    super::metrics::mark(r, &process_group, &group);
    let _in_flight = super::telemetry::in_flight(r);
    if !process_group.is_empty() {
        if https {
            cgi.push((b"HTTPS", b"on"));
        }
        let script = std::path::Path::new(&script);
        return super::relay::handle(r, &process_group, script, &cgi, content_length, dir.error_override == Some(true));
    }
    ensure_python();
    if !interp::is_initialized() {
        log_request(
            r,
            util::LOG_ERR,
            "oxwsgi: Python is not available in this process (see the start-up errors above)",
        );
        return ffi::HTTP_INTERNAL_SERVER_ERROR as i32;
    }
    let interp = match interp::interpreter(&group) {
        Ok(i) => i,
        Err(e) => {
            log_request(r, util::LOG_ERR, &format!("oxwsgi: {e}"));
            return ffi::HTTP_INTERNAL_SERVER_ERROR as i32;
        }
    };
    let request = Request {
        script: std::path::Path::new(&script),
        mtime,
        reload,
        callable: &callable,
        cgi: &cgi,
        https,
        multithread: mpm_query(ffi::AP_MPMQ_IS_THREADED) != ffi::AP_MPMQ_NOT_SUPPORTED as i32,
        multiprocess: mpm_query(ffi::AP_MPMQ_MAX_DAEMONS) > 1,
        content_length,
        head: head && !as_get,
        // Embedded mode reloads a changed script in place, as mod_wsgi does.
        restart_on_change: false,
        apache_request: if dir.pass_apache_request == Some(true) { r.cast() } else { std::ptr::null_mut() },
    };
    let mut backend = ApacheBackend::new(r);
    let threads = mpm_query(ffi::AP_MPMQ_MAX_THREADS).max(1) as u32;
    let phases = Phases { accepted_us: (*r).request_time.max(0) as u64, ..Phases::default() };
    let _running = Running::begin("", &group, threads, phases, wsgi::now_micros());
    let outcome = wsgi::run(&interp, &request, &mut backend);
    match outcome {
        Outcome::Done => ffi::OK as i32,
        Outcome::Failed(status) => status as i32,
        Outcome::Aborted | Outcome::Restart => ffi::OK as i32,
    }
}

/// The URI of the request line (as ap_add_cgi_vars gives REQUEST_URI: the original request's,
/// also after an internal redirect).
unsafe fn original_uri<'a>(r: *const ffi::request_rec) -> &'a [u8] {
    let line = cbytes((*r).the_request);
    let mut words = line.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty());
    words.next();
    words.next().unwrap_or(b"")
}

/// The port the connection arrived on (never the one a client puts in its Host header).
unsafe fn local_port(r: *const ffi::request_rec) -> u16 {
    let addr = (*(*r).connection).local_addr;
    if addr.is_null() {
        0
    } else {
        (*addr).port
    }
}
