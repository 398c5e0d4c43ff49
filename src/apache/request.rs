//! Embedded mode: mapping a URL to a WSGI script (translate_name), the content handler, and the
//! [`Backend`] that writes a WSGI response into Apache's output filters.

use super::conf::{dir_conf, server_conf, Mount};
use super::ffi;
use super::util::{self, cbytes, cstr, log_request, pool_box, pstr, set_module_config, table_entries, table_get};
use crate::appgroup::{self, GroupSpec, NamingContext};
use crate::python::interp;
use crate::python::wsgi::{self, Backend, BodyError, Outcome, Request};
use crate::routing::split_first_segment;
use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::os::raw::c_char;
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub const HANDLER_NAME: &[u8] = b"wsgi-script";

/// Whether oxwsgi handles this request: our own handler name, or mod_wsgi's MIME-type form
/// (`AddType application/x-httpd-wsgi .wsgi`).
pub unsafe fn is_wsgi_handler(r: *const ffi::request_rec) -> bool {
    let h = cbytes((*r).handler);
    h == HANDLER_NAME || h == b"application/x-httpd-wsgi"
}

/// What translate_name decided for a request, kept in its request_config.
pub struct Route {
    pub mount: *const Mount,
    pub script: String,
    /// SCRIPT_NAME and PATH_INFO as bytes: a URI need not be UTF-8.
    pub script_name: Vec<u8>,
    pub path_info: Vec<u8>,
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
    set_module_config((*r).request_config, pool_box(pool, route));
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

fn mpm_query(what: u32) -> i32 {
    let mut v = 0;
    unsafe { ffi::ap_mpm_query(what as i32, &mut v) };
    v
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
    if !is_wsgi_handler(r) {
        return ffi::DECLINED;
    }
    match std::panic::catch_unwind(|| handle(r)) {
        Ok(status) => status,
        Err(_) => {
            log_request(r, util::LOG_ERR, "oxwsgi: internal error (panic) while handling the request");
            ffi::HTTP_INTERNAL_SERVER_ERROR as i32
        }
    }
}

unsafe fn handle(r: *mut ffi::request_rec) -> i32 {
    let route = util::module_config::<Route>((*r).request_config);
    let route = route.as_ref();
    let mount = route.map(|rt| &*rt.mount);
    let dir = dir_conf(r);
    let script = cstr((*r).filename).unwrap_or("").to_string();

    let process_group =
        mount.and_then(|m| m.options.process_group.clone()).or_else(|| dir.process_group.clone()).unwrap_or_default();
    let main = server_conf(ffi::ap_server_conf);
    if process_group.is_empty() && main.restrict_embedded == Some(true) {
        log_request(
            r,
            util::LOG_ERR,
            &format!("oxwsgi: embedded mode is disabled (WSGIRestrictEmbedded On); refusing '{script}'"),
        );
        return ffi::HTTP_INTERNAL_SERVER_ERROR as i32;
    }
    if (*r).finfo.filetype != ffi::apr_filetype_e_APR_REG {
        log_request(r, util::LOG_ERR, &format!("oxwsgi: Target WSGI script not found or unable to stat: {script}"));
        return ffi::HTTP_NOT_FOUND as i32;
    }
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
    let callable = mount
        .and_then(|m| m.options.callable_object.clone())
        .or_else(|| dir.callable_object.clone())
        .unwrap_or_else(|| "application".to_string());
    let pass_auth = mount.and_then(|m| m.options.pass_authorization).or(dir.pass_authorization).unwrap_or(false);
    let spec = mount
        .and_then(|m| m.application_group.clone())
        .or_else(|| dir.application_group.clone())
        .unwrap_or(GroupSpec::Resource);

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
    let https = table_get(env, c"HTTPS").is_some_and(|v| v.eq_ignore_ascii_case("on"));
    let mut cgi: Vec<(&[u8], &[u8])> = Vec::with_capacity(48);
    for (k, v) in table_entries(env) {
        match k {
            b"SCRIPT_NAME" | b"PATH_INFO" | b"HTTP_AUTHORIZATION" | b"PATH_TRANSLATED" | b"PATH" | b"HTTPS" => {}
            _ => cgi.push((k, v)),
        }
    }
    let auth = table_get((*r).headers_in, c"Authorization");
    if let (true, Some(a)) = (pass_auth, auth) {
        cgi.push((b"HTTP_AUTHORIZATION", a.as_bytes()));
    }
    let path_translated = [script.as_bytes(), &path_info].concat();
    cgi.push((b"GATEWAY_INTERFACE", b"CGI/1.1"));
    cgi.push((b"SERVER_PROTOCOL", cbytes((*r).protocol)));
    cgi.push((b"REQUEST_METHOD", cbytes((*r).method)));
    cgi.push((b"QUERY_STRING", cbytes((*r).args)));
    cgi.push((b"REQUEST_URI", original_uri(r)));
    cgi.push((b"SCRIPT_NAME", &script_name));
    cgi.push((b"PATH_INFO", &path_info));
    if !path_info.is_empty() {
        cgi.push((b"PATH_TRANSLATED", &path_translated));
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
        (b"mod_wsgi.enable_sendfile", b"0"),
        (b"mod_wsgi.ignore_activity", b"0"),
        (b"mod_wsgi.script_start", start.as_bytes()),
        (b"mod_wsgi.process_group", process_group.as_bytes()),
        (b"mod_wsgi.application_group", group.as_bytes()),
        (b"mod_wsgi.callable_object", callable.as_bytes()),
        (b"mod_wsgi.request_handler", b"wsgi-script"),
        (b"mod_wsgi.handler_script", b""),
        (b"mod_wsgi.script_reloading", if reload { b"1" } else { b"0" }),
        (b"mod_wsgi.listener_host", listener_host.as_bytes()),
        (b"mod_wsgi.listener_port", port_text.as_bytes()),
        (b"mod_wsgi.request_start", start.as_bytes()),
        (b"mod_wsgi.request_id", request_id.as_bytes()),
        (b"mod_wsgi.script_name", &script_name),
        (b"mod_wsgi.path_info", &path_info),
    ];
    cgi.extend_from_slice(&extras);

    if !process_group.is_empty() {
        if https {
            cgi.push((b"HTTPS", b"on"));
        }
        return crate::daemon::client::handle(r, &process_group, &cgi, content_length);
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
        mtime: (*r).finfo.mtime,
        reload,
        callable: &callable,
        cgi: &cgi,
        https,
        multithread: mpm_query(ffi::AP_MPMQ_IS_THREADED) != ffi::AP_MPMQ_NOT_SUPPORTED as i32,
        multiprocess: mpm_query(ffi::AP_MPMQ_MAX_DAEMONS) > 1,
        content_length,
        head: (*r).header_only != 0,
    };
    let mut backend = ApacheBackend::new(r);
    let outcome = wsgi::run(&interp, &request, &mut backend);
    match outcome {
        Outcome::Done => ffi::OK as i32,
        Outcome::Failed(status) => status as i32,
        Outcome::Aborted => ffi::OK as i32,
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

/// Python starts in an Apache child on its first embedded-mode request, so children that only
/// pass requests to daemon processes never carry an interpreter.
fn ensure_python() {
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
        };
        if let Err(e) = interp::initialize(config) {
            util::log_server(ptr::null(), util::LOG_ERR, &format!("oxwsgi: {e}"));
        }
    });
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

/// Embedded mode's [`Backend`]: Apache's input and output filter chains of one request.
pub struct ApacheBackend {
    r: *mut ffi::request_rec,
    /// The response head has been handed to Apache.
    pub started: bool,
    out: *mut ffi::apr_bucket_brigade,
    input: *mut ffi::apr_bucket_brigade,
    buffered: usize,
    input_eos: bool,
}

impl ApacheBackend {
    pub unsafe fn new(r: *mut ffi::request_rec) -> ApacheBackend {
        let c = (*r).connection;
        ApacheBackend {
            r,
            started: false,
            out: ffi::apr_brigade_create((*r).pool, (*c).bucket_alloc),
            input: ptr::null_mut(),
            buffered: 0,
            input_eos: false,
        }
    }

    /// Passes what is in the output brigade down the request's filters.
    unsafe fn pass(&mut self) -> io::Result<()> {
        self.pass_to((*self.r).output_filters)
    }

    unsafe fn pass_to(&mut self, filters: *mut ffi::ap_filter_t) -> io::Result<()> {
        let rv = ffi::ap_pass_brigade(filters, self.out);
        ffi::apr_brigade_cleanup(self.out as *mut _);
        self.buffered = 0;
        if rv != 0 || (*(*self.r).connection).aborted != 0 {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "client connection closed"));
        }
        Ok(())
    }
}

impl Backend for ApacheBackend {
    fn read_body(&mut self, buf: &mut [MaybeUninit<u8>]) -> Result<usize, BodyError> {
        if self.input_eos || buf.is_empty() {
            return Ok(0);
        }
        unsafe {
            let r = self.r;
            if self.input.is_null() {
                self.input = ffi::apr_brigade_create((*r).pool, (*(*r).connection).bucket_alloc);
            }
            loop {
                let rv = ffi::ap_get_brigade(
                    (*r).input_filters,
                    self.input,
                    ffi::ap_input_mode_t_AP_MODE_READBYTES,
                    ffi::apr_read_type_e_APR_BLOCK_READ,
                    buf.len() as i64,
                );
                if rv != 0 {
                    ffi::apr_brigade_cleanup(self.input as *mut _);
                    let mut status = ffi::ap_map_http_request_error(rv, ffi::HTTP_BAD_REQUEST as i32);
                    if !(400..600).contains(&status) {
                        status = ffi::HTTP_BAD_REQUEST as i32;
                    }
                    return Err(BodyError {
                        status: status as u16,
                        message: format!("client sent a malformed or incomplete body (APR status {rv})"),
                    });
                }
                let mut n = 0usize;
                let mut b = ffi::oxwsgi_brigade_first(self.input);
                while b != ffi::oxwsgi_brigade_sentinel(self.input) {
                    let mut err = 0;
                    if ffi::oxwsgi_bucket_is_eos(b) != 0 {
                        self.input_eos = true;
                        break;
                    }
                    if ffi::oxwsgi_bucket_is_error(b, &mut err) != 0 {
                        ffi::apr_brigade_cleanup(self.input as *mut _);
                        return Err(BodyError {
                            status: err as u16,
                            message: "error while reading the request body".into(),
                        });
                    }
                    let mut data: *const c_char = ptr::null();
                    let mut len: usize = 0;
                    let rv = ffi::oxwsgi_bucket_read(b, &mut data, &mut len, 1);
                    if rv != 0 {
                        ffi::apr_brigade_cleanup(self.input as *mut _);
                        return Err(BodyError {
                            status: 400,
                            message: format!("request body read failed (APR status {rv})"),
                        });
                    }
                    let take = len.min(buf.len() - n);
                    wsgi::copy_to_uninit(&mut buf[n..], std::slice::from_raw_parts(data as *const u8, take));
                    n += take;
                    b = ffi::oxwsgi_bucket_next(b);
                }
                ffi::apr_brigade_cleanup(self.input as *mut _);
                if n > 0 || self.input_eos {
                    return Ok(n);
                }
            }
        }
    }

    fn start(&mut self, status: u16, status_line: &str, headers: &[(Vec<u8>, Vec<u8>)]) -> Result<(), String> {
        unsafe {
            let r = self.r;
            let pool = (*r).pool;
            self.started = true;
            (*r).status = status as i32;
            (*r).status_line = pstr(pool, status_line.as_bytes());
            for (name, value) in headers {
                if name.eq_ignore_ascii_case(b"content-type") {
                    ffi::ap_set_content_type(r, pstr(pool, value));
                } else {
                    ffi::apr_table_addn((*r).headers_out, pstr(pool, name), pstr(pool, value));
                }
            }
        }
        Ok(())
    }

    fn write(&mut self, data: &[u8]) {
        unsafe {
            ffi::apr_brigade_write(self.out, None, ptr::null_mut(), data.as_ptr() as *const c_char, data.len());
        }
        self.buffered += data.len();
    }

    fn buffered(&self) -> usize {
        self.buffered
    }

    fn flush(&mut self) -> io::Result<()> {
        unsafe {
            let c = (*self.r).connection;
            ffi::oxwsgi_brigade_append(self.out, ffi::oxwsgi_bucket_flush_create((*c).bucket_alloc));
            self.pass()
        }
    }

    fn write_now(&mut self, data: &[u8]) -> io::Result<()> {
        unsafe {
            // A transient bucket points at the caller's memory; the FLUSH bucket makes Apache
            // write it out (or copy it, in a filter that sets data aside) before pass returns.
            let c = (*self.r).connection;
            let b = ffi::apr_bucket_transient_create(data.as_ptr() as *const c_char, data.len(), (*c).bucket_alloc);
            ffi::oxwsgi_brigade_append(self.out, b);
            ffi::oxwsgi_brigade_append(self.out, ffi::oxwsgi_bucket_flush_create((*c).bucket_alloc));
            self.pass()
        }
    }

    fn send_file(&mut self, fd: RawFd, offset: u64, len: u64) -> io::Result<()> {
        unsafe {
            // Our own descriptor for the file, closed with the request pool (which lives until
            // the response has been written): the application may close its file object as
            // soon as we return. A duplicate, not a reopen, so a file only a daemon's user may
            // open can still be sent by Apache.
            let own = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0);
            if own < 0 {
                return Err(io::Error::last_os_error());
            }
            unsafe extern "C" fn close_fd(data: *mut std::ffi::c_void) -> ffi::apr_status_t {
                libc::close(data as usize as i32);
                0
            }
            let pool = (*self.r).pool;
            ffi::apr_pool_cleanup_register(
                pool,
                own as usize as *const std::ffi::c_void,
                Some(close_fd),
                Some(ffi::apr_pool_cleanup_null),
            );
            let mut file: *mut ffi::apr_file_t = ptr::null_mut();
            let mut os_fd = own;
            let rv = ffi::apr_os_file_put(
                &mut file,
                &mut os_fd,
                (ffi::APR_FOPEN_READ | ffi::APR_FOPEN_SENDFILE_ENABLED) as i32,
                pool,
            );
            if rv != 0 {
                return Err(io::Error::other(format!("cannot hand the file to Apache (APR status {rv})")));
            }
            ffi::apr_brigade_insert_file(self.out, file, offset as i64, len as i64, pool);
        }
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        unsafe {
            let c = (*self.r).connection;
            ffi::oxwsgi_brigade_append(self.out, ffi::oxwsgi_bucket_eos_create((*c).bucket_alloc));
            self.pass()?;
            // Write the response out now rather than after the handler returns. Apache checks
            // for the client's next keep-alive request right after the handler; a small
            // response still held in the core output filter at that point cannot have been
            // answered yet, so the check always fails and the connection goes back through
            // the MPM's listener (two epoll_ctl calls and two thread handoffs per request).
            // Written first, the next request is often already there and this worker serves
            // it at once, as Apache does for static files. Only the connection's filters see
            // this FLUSH, as with the one Apache sends itself, so no content filter (deflate)
            // is made to flush mid-stream.
            ffi::oxwsgi_brigade_append(self.out, ffi::oxwsgi_bucket_flush_create((*c).bucket_alloc));
            self.pass_to((*c).output_filters)
        }
    }

    fn abort(&mut self) {
        unsafe {
            // What was produced still reaches the client (a partial response says more than
            // none), then the connection is dropped so it cannot pass for a complete one.
            if ffi::oxwsgi_brigade_empty(self.out) == 0 {
                let _ = self.flush();
            }
            let c = (*self.r).connection;
            (*c).keepalive = ffi::ap_conn_keepalive_e_AP_CONN_CLOSE;
            (*c).aborted = 1;
        }
    }

    fn log(&mut self, level: u8, msg: &str) {
        log_request(self.r, level, msg);
    }
}
