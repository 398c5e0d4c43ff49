//! A request's WSGI environ as Apache's side builds it, once, for both modes (mod_wsgi's
//! `wsgi_build_environment`): Apache's CGI variables with mod_wsgi's changes, then the
//! `mod_wsgi.*` keys once the process group, interpreter and callable are settled, then, for a
//! daemon, what the daemon cannot know itself. Embedded mode hands the pairs to the WSGI
//! adapter; the relay encodes them for the daemon. Every value lives in the request's pool.

use super::request_view::RequestView;
use crate::request_plan::Mode;
use std::ffi::CString;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// What the request is for, as routing found it.
pub struct Paths<'r> {
    /// `SCRIPT_NAME` as Apache saw it (a trusted proxy may publish another one).
    pub script_name: &'r [u8],
    pub path_info: &'r [u8],
    /// `SCRIPT_FILENAME`: the file the request maps to.
    pub resource: &'r str,
}

/// SCRIPT_NAME or PATH_INFO as the application (and an auth or access script) sees it: runs of
/// `/` folded into one, as mod_wsgi 6 does whatever `MergeSlashes` says.
pub fn folded<'r>(req: RequestView<'r>, path: &'r [u8]) -> &'r [u8] {
    crate::routing::collapse_slashes(path).map_or(path, |c| req.pool_bytes(&c))
}

/// What the `mod_wsgi.*` keys report: the choices made for the request.
pub struct Choices<'a> {
    pub mode: &'a Mode,
    pub application_group: &'a str,
    pub callable: &'a str,
    /// The `WSGIHandlerScript` that serves the request, if one does.
    pub handler_script: Option<&'a str>,
    pub script_reloading: bool,
}

/// The environ's (key, value) pairs, in the order the application sees them.
pub struct Environ<'r> {
    req: RequestView<'r>,
    pairs: Vec<(&'r [u8], &'r [u8])>,
    /// HTTPS is on (after a trusted proxy's say): `wsgi.url_scheme` is `https`.
    pub https: bool,
}

impl<'r> Environ<'r> {
    /// The CGI variables as mod_wsgi passes them: Apache's common ones (`ap_add_common_vars`),
    /// the request-line ones set here rather than with `ap_add_cgi_vars` (which runs a whole
    /// sub-request per request to compute PATH_TRANSLATED), SCRIPT_NAME/PATH_INFO from the
    /// route, Authorization only with `pass_authorization`, no PATH (Apache's own), and HTTPS
    /// kept aside for `wsgi.url_scheme`. With `WSGITrustedProxyHeaders`, what a trusted proxy
    /// said replaces what Apache saw, and the proxy headers a client could forge are removed.
    /// A HEAD request `as_get` (WSGIMapHEADToGET) shows the application a GET.
    pub fn cgi(req: RequestView<'r>, paths: &Paths<'r>, pass_authorization: bool, as_get: bool) -> Environ<'r> {
        req.add_common_vars();
        let proxy = super::proxy::changes(req);
        let proxied = |key: &str| proxy.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_deref());
        let https = match proxied("HTTPS") {
            Some(v) => v.is_some(),
            None => req.env_var(c"HTTPS").is_some_and(|v| v.eq_ignore_ascii_case("on")),
        };
        let mut pairs: Vec<(&'r [u8], &'r [u8])> = Vec::with_capacity(48);
        for (k, v) in req.env_entries() {
            match k {
                b"SCRIPT_NAME" | b"PATH_INFO" | b"HTTP_AUTHORIZATION" | b"PATH_TRANSLATED" | b"PATH" | b"HTTPS" => {}
                _ if proxy.iter().any(|(p, _)| p.as_bytes() == k) => {}
                _ => pairs.push((k, v)),
            }
        }
        for (k, v) in &proxy {
            if let (Some(v), false) = (v, matches!(k.as_str(), "HTTPS" | "SCRIPT_NAME")) {
                pairs.push((req.pool_bytes(k.as_bytes()), req.pool_bytes(v.as_bytes())));
            }
        }
        let script_name = match proxied("SCRIPT_NAME").flatten() {
            Some(published) => req.pool_bytes(published.as_bytes()),
            None => paths.script_name,
        };
        if let (true, Some(a)) = (pass_authorization, req.header_in(c"Authorization")) {
            pairs.push((b"HTTP_AUTHORIZATION", a.as_bytes()));
        }
        pairs.push((b"GATEWAY_INTERFACE", b"CGI/1.1"));
        pairs.push((b"SERVER_PROTOCOL", req.protocol()));
        pairs.push((b"REQUEST_METHOD", if as_get { b"GET" } else { req.method() }));
        pairs.push((b"QUERY_STRING", req.query_string()));
        pairs.push((b"REQUEST_URI", req.request_line_uri()));
        pairs.push((b"SCRIPT_NAME", script_name));
        pairs.push((b"PATH_INFO", paths.path_info));
        if !paths.path_info.is_empty() {
            let translated = [paths.resource.as_bytes(), paths.path_info].concat();
            pairs.push((b"PATH_TRANSLATED", req.pool_bytes(&translated)));
        }
        Environ { req, pairs, https }
    }

    /// A CGI variable Apache set (`%{ENV:NAME}` in an application group's name).
    pub fn apache_var(&self, name: &str) -> Option<&'r str> {
        let c = CString::new(name).ok()?;
        self.req.env_var(&c)
    }

    pub fn pairs(&self) -> &[(&'r [u8], &'r [u8])] {
        &self.pairs
    }

    /// The `mod_wsgi.*` keys, as mod_wsgi sets them, once the choices are final.
    pub fn add_mod_wsgi_keys(&mut self, choices: &Choices, paths: &Paths<'r>) {
        let req = self.req;
        let dir = req.dir_conf();
        let flag = |on: Option<bool>| -> &'static [u8] {
            if on == Some(true) {
                b"1"
            } else {
                b"0"
            }
        };
        let text = |s: &str| req.pool_bytes(s.as_bytes());
        let start = text(&req.request_time().to_string());
        let request_id = match req.log_id() {
            Some(id) => id.as_bytes(),
            None => text(&format!("{:x}-{:x}", child_pid(), REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed))),
        };
        self.pairs.extend_from_slice(&[
            (b"mod_wsgi.enable_sendfile", flag(dir.enable_sendfile)),
            (b"mod_wsgi.ignore_activity", flag(dir.ignore_activity)),
            (b"mod_wsgi.script_start", start),
            (b"mod_wsgi.process_group", text(choices.mode.name())),
            (b"mod_wsgi.application_group", text(choices.application_group)),
            (b"mod_wsgi.callable_object", text(choices.callable)),
            (b"mod_wsgi.request_handler", req.handler_name()),
            (b"mod_wsgi.handler_script", text(choices.handler_script.unwrap_or(""))),
            (b"mod_wsgi.script_reloading", flag(Some(choices.script_reloading))),
            (b"mod_wsgi.listener_host", req.local_ip().as_bytes()),
            (b"mod_wsgi.listener_port", text(&req.local_port().to_string())),
            (b"mod_wsgi.request_start", start),
            (b"mod_wsgi.request_id", request_id),
            (b"mod_wsgi.script_name", paths.script_name),
            (b"mod_wsgi.path_info", paths.path_info),
        ]);
    }

    /// What a daemon cannot know itself: whether the request came over HTTPS (it becomes
    /// `wsgi.url_scheme` there, as in embedded mode) and when it was queued for the group
    /// (`queued_us`, microseconds since the epoch: once its body has been collected, so that
    /// queue-timeout and the queue-time metrics do not count the upload).
    pub fn add_daemon_keys(&mut self, queued_us: u64) {
        if self.https {
            self.pairs.push((b"HTTPS", b"on"));
        }
        let queued = self.req.pool_bytes(queued_us.to_string().as_bytes());
        self.pairs.push((b"mod_wsgi.queue_start", queued));
    }
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
