//! A request Apache hands a hook, seen through a thin safe type: the fields and tables the
//! handler reads, each borrowed for as long as the request lives, so the handler's code does
//! not dereference `request_rec` itself.

use super::conf::{dir_conf, DirConf};
use crate::sys::ffi;
use crate::sys::util::{self, cbytes, table_get};
use std::ffi::CStr;
use std::marker::PhantomData;

/// A request being served (`'r`: the hook call that received it; its pool lives at least as
/// long).
#[derive(Clone, Copy)]
pub struct RequestView<'r> {
    r: *mut ffi::request_rec,
    _request: PhantomData<&'r mut ffi::request_rec>,
}

impl<'r> RequestView<'r> {
    /// # Safety
    /// `r` is the live request Apache passed to the current hook, used only during that call.
    pub unsafe fn new(r: *mut ffi::request_rec) -> RequestView<'r> {
        debug_assert!(!r.is_null());
        RequestView { r, _request: PhantomData }
    }

    /// The raw pointer, for the Apache calls that take one.
    pub fn raw(self) -> *mut ffi::request_rec {
        self.r
    }

    /// One of the request's strings (they live in its pool); null is empty.
    fn bytes(self, p: *const std::os::raw::c_char) -> &'r [u8] {
        // SAFETY: the request's strings live in its pool, which outlives 'r.
        unsafe { cbytes(p) }
    }

    /// One of the request's strings, if set and UTF-8.
    fn text(self, p: *const std::os::raw::c_char) -> Option<&'r str> {
        // SAFETY: as in `bytes`.
        unsafe { util::cstr(p) }
    }

    fn rec(self) -> &'r ffi::request_rec {
        // SAFETY: `new`'s contract: the request outlives 'r.
        unsafe { &*self.r }
    }

    pub fn uri(self) -> &'r [u8] {
        self.bytes(self.rec().uri)
    }

    pub fn path_info(self) -> &'r [u8] {
        self.bytes(self.rec().path_info)
    }

    /// The URI up to where its PATH_INFO starts (Apache's `ap_find_path_info`, which matches
    /// runs of `/` in the URI against the single ones Apache leaves in `path_info`); the whole
    /// URI when there is no PATH_INFO.
    pub fn uri_before_path_info(self) -> &'r [u8] {
        let (uri, rec) = (self.uri(), self.rec());
        if self.path_info().is_empty() {
            return uri;
        }
        // SAFETY: both are NUL-terminated strings of the live request.
        let start = unsafe { ffi::ap_find_path_info(rec.uri, rec.path_info) };
        &uri[..(start.max(0) as usize).min(uri.len())]
    }

    /// The file the request maps to (`r->filename`), if it is UTF-8.
    pub fn filename(self) -> Option<&'r str> {
        self.text(self.rec().filename)
    }

    pub fn method(self) -> &'r [u8] {
        self.bytes(self.rec().method)
    }

    pub fn protocol(self) -> &'r [u8] {
        self.bytes(self.rec().protocol)
    }

    pub fn query_string(self) -> &'r [u8] {
        self.bytes(self.rec().args)
    }

    pub fn handler_name(self) -> &'r [u8] {
        self.bytes(self.rec().handler)
    }

    /// The URI of the request line (as ap_add_cgi_vars gives REQUEST_URI: the original
    /// request's, also after an internal redirect).
    pub fn request_line_uri(self) -> &'r [u8] {
        let line = self.bytes(self.rec().the_request);
        let mut words = line.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty());
        words.next();
        words.next().unwrap_or(b"")
    }

    /// `LimitRequestBody` for this request, in bytes; 0 for no limit.
    pub fn limit_req_body(self) -> u64 {
        // SAFETY: the request is live for the view's lifetime.
        unsafe { ffi::ap_get_limit_req_body(self.r) }.max(0) as u64
    }

    /// Apache's id for the request's log lines, if it made one.
    pub fn log_id(self) -> Option<&'r str> {
        self.text(self.rec().log_id)
    }

    /// When the request arrived, in microseconds since the epoch.
    pub fn request_time(self) -> i64 {
        self.rec().request_time
    }

    /// The host name the client asked for (Host header or absolute URI), if any.
    pub fn hostname(self) -> Option<&'r str> {
        self.text(self.rec().hostname)
    }

    /// The client's address as Apache logs it (`useragent_ip`).
    pub fn useragent_ip(self) -> &'r [u8] {
        self.bytes(self.rec().useragent_ip)
    }

    /// `http` or `https`, as Apache's http_scheme hook says.
    pub fn scheme(self) -> &'r [u8] {
        // SAFETY: a live request, as `new` requires.
        self.bytes(unsafe { ffi::ap_run_http_scheme(self.r) })
    }

    /// The response status Apache has recorded (the final one once the request is logged).
    pub fn status(self) -> i32 {
        self.rec().status
    }

    /// Body bytes sent to the client so far.
    pub fn bytes_sent(self) -> u64 {
        self.rec().bytes_sent.max(0) as u64
    }

    /// The request as the client got it: the last internal redirect made of this one (as `%>s`
    /// logs it), or this one.
    pub fn last(self) -> RequestView<'r> {
        let mut last = self.r;
        // SAFETY: Apache links a request's internal redirects through `next`, all live as long
        // as the original request.
        unsafe {
            while !(*last).next.is_null() {
                last = (*last).next;
            }
        }
        RequestView { r: last, _request: PhantomData }
    }

    /// Microseconds since Apache accepted the request.
    pub fn elapsed_micros(self) -> u64 {
        // SAFETY: apr_time_now only reads the clock.
        (unsafe { ffi::apr_time_now() } - self.request_time()).max(0) as u64
    }

    /// A HEAD request: Apache sends no body.
    pub fn header_only(self) -> bool {
        self.rec().header_only != 0
    }

    /// Whether filters that may change the body (mod_deflate, mod_include) are in the output
    /// chain.
    pub fn has_content_filters(self) -> bool {
        self.rec().output_filters != self.rec().proto_output_filters
    }

    /// The modification time of the file `r->filename` names, when it is a regular file.
    pub fn regular_file_mtime(self) -> Option<i64> {
        let finfo = &self.rec().finfo;
        (finfo.filetype == ffi::apr_filetype_e_APR_REG).then_some(finfo.mtime)
    }

    pub fn header_in(self, name: &CStr) -> Option<&'r str> {
        // SAFETY: the request's tables live in its pool.
        unsafe { table_get(self.rec().headers_in, name) }
    }

    /// A CGI variable Apache has set (`r->subprocess_env`).
    pub fn env_var(self, name: &CStr) -> Option<&'r str> {
        // SAFETY: the request's tables live in its pool.
        unsafe { table_get(self.rec().subprocess_env, name) }
    }

    /// Every CGI variable Apache has set so far, in order.
    pub fn env_entries(self) -> impl Iterator<Item = (&'r [u8], &'r [u8])> {
        // SAFETY: as in env_var; nothing adds to the table while the handler reads it.
        unsafe { util::table_entries(self.rec().subprocess_env) }
    }

    /// The virtual host's `ServerName`.
    pub fn server_name(self) -> &'r str {
        // SAFETY: a request's server record lives as long as the configuration.
        self.text(unsafe { (*self.rec().server).server_hostname }).unwrap_or("localhost")
    }

    /// The port the connection arrived on (never the one a client puts in its Host header).
    pub fn local_port(self) -> u16 {
        // SAFETY: a request's connection outlives it; local_addr is set for every connection.
        unsafe {
            let addr = (*self.rec().connection).local_addr;
            if addr.is_null() {
                0
            } else {
                (*addr).port
            }
        }
    }

    /// The address the connection arrived on.
    pub fn local_ip(self) -> &'r str {
        // SAFETY: as in local_port.
        self.text(unsafe { (*self.rec().connection).local_ip }).unwrap_or("")
    }

    /// oxwsgi's directory configuration for the request.
    pub fn dir_conf(self) -> &'r DirConf {
        dir_conf(self.r)
    }

    /// A copy of `bytes` in the request's pool, living as long as the request.
    pub fn pool_bytes(self, bytes: &[u8]) -> &'r [u8] {
        let copy = util::pstr(self.rec().pool, bytes);
        // SAFETY: pstr copied all of `bytes` (NULs included) into the request's pool.
        unsafe { std::slice::from_raw_parts(copy.cast::<u8>(), bytes.len()) }
    }

    /// Adds Apache's common CGI variables (`ap_add_common_vars`) to `subprocess_env`.
    pub fn add_common_vars(self) {
        // SAFETY: a live request, as `new` requires.
        unsafe { ffi::ap_add_common_vars(self.r) }
    }

    pub fn log(self, level: u8, msg: &str) {
        util::log_request(self.r, level, msg);
    }
}
