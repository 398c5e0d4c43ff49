//! The default-virtual-host deny fallback (`WSGIRestrictUnknownHosts`, On by default).
//!
//! When several name-based virtual hosts share an address and port, Apache hands a request
//! whose Host header matches none of their `ServerName`/`ServerAlias` names (or that has no Host
//! header at all) to the first of them. A WSGI application there then answers for host names it
//! was never meant to serve (see mod_wsgi's author on "the default virtual host"). oxwsgi
//! refuses such a request with 403 before any application runs, and logs the host asked for at
//! info level.
//!
//! What counts as "a name that virtual host declares" is what Apache itself matches in
//! `check_hostalias` (server/vhost.c): the `ServerName`, each `ServerAlias` (wildcards with
//! `ap_strcasecmp_match`), and the literal address of the `<VirtualHost>` line. The candidate
//! hosts come from `ap_vhost_iterate_given_conn`, which walks exactly the name-based virtual
//! hosts Apache considered for this connection's address and port (and reports just the one
//! server when the address is not shared: then nothing is refused).
//!
//! It runs as a `fixups` hook (after mod_mime's `AddHandler` and core's `SetHandler`, just
//! before the handler), for requests whose handler is oxwsgi's: static files and other
//! handlers keep Apache's behaviour.

use super::conf::server_conf;
use super::request::is_wsgi_handler;
use crate::sys::ffi;
use crate::sys::util::{self, cstr, log_request};
use std::ffi::{c_void, CStr};
use std::os::raw::{c_char, c_int};

/// What the walk over the connection's virtual hosts found.
struct Scan {
    /// The host name asked for (lower-cased, port stripped by Apache); None without a Host.
    host: *const c_char,
    /// The port the connection arrived on.
    port: ffi::apr_port_t,
    /// Distinct virtual hosts that serve this address and port.
    sites: usize,
    /// One of them declares `host`.
    matched: bool,
}

/// fixups: 403 for a request that only reached this virtual host by Apache's default-vhost
/// fallback, when it would run a WSGI application.
///
/// # Safety
/// Called by Apache with a live request.
pub unsafe extern "C" fn fixups(r: *mut ffi::request_rec) -> c_int {
    crate::sys::util::guard("deny_unknown_hosts", ffi::DECLINED, || deny_unknown_hosts(r))
}

unsafe fn deny_unknown_hosts(r: *mut ffi::request_rec) -> c_int {
    if !is_wsgi_handler(r) {
        return ffi::DECLINED;
    }
    if server_conf((*r).server).restrict_unknown_hosts == Some(false) {
        return ffi::DECLINED;
    }
    if is_known_host(r) {
        return ffi::DECLINED;
    }
    let s = (*r).server;
    let asked = match cstr((*r).hostname) {
        Some(h) => format!("unknown host '{h}'"),
        None => "a request without a Host header".to_string(),
    };
    log_request(
        r,
        util::LOG_INFO,
        &format!(
            "oxwsgi: refusing {asked} for '{}': no ServerName or ServerAlias of the virtual hosts sharing this \
             address and port matches it, and Apache would have handed it to the default virtual host \
             '{}' ({}:{}); add the name to a ServerAlias, or set WSGIRestrictUnknownHosts Off",
            cstr((*r).uri).unwrap_or(""),
            cstr((*s).server_hostname).unwrap_or(""),
            cstr((*s).defn_name).unwrap_or("main server"),
            (*s).defn_line_number,
        ),
    );
    ffi::HTTP_FORBIDDEN as c_int
}

/// Is the request's host declared by a virtual host on its address, or is there only one site
/// there (so no fallback can have happened)?
unsafe fn is_known_host(r: *mut ffi::request_rec) -> bool {
    let c = (*r).connection;
    let port = if (*c).local_addr.is_null() { 0 } else { (*(*c).local_addr).port };
    let mut scan = Scan { host: (*r).hostname, port, sites: 0, matched: false };
    ffi::ap_vhost_iterate_given_conn(c, Some(visit), &mut scan as *mut Scan as *mut c_void);
    if scan.sites < 2 || scan.matched {
        return true;
    }
    // Without a Host header Apache picks a virtual host by its ServerPath, if one matches.
    scan.host.is_null() && server_path_matches((*r).server, (*r).uri)
}

unsafe extern "C" fn visit(baton: *mut c_void, _c: *mut ffi::conn_rec, s: *mut ffi::server_rec) -> c_int {
    let scan = &mut *(baton as *mut Scan);
    scan.sites += 1;
    if !scan.host.is_null() && declares(s, CStr::from_ptr(scan.host), scan.port) {
        scan.matched = true;
    }
    0 // keep going: the count of sites matters too
}

/// Apache's `matches_aliases`, plus the `<VirtualHost>` address literal `check_hostalias` also
/// accepts.
unsafe fn declares(s: *const ffi::server_rec, host: &CStr, port: ffi::apr_port_t) -> bool {
    let same =
        |name: *const c_char| !name.is_null() && CStr::from_ptr(name).to_bytes().eq_ignore_ascii_case(host.to_bytes());
    if same((*s).server_hostname) {
        return true;
    }
    if array_strings((*s).names).any(same) {
        return true;
    }
    if array_strings((*s).wild_names).any(|n| ffi::ap_strcasecmp_match(host.as_ptr(), n) == 0) {
        return true;
    }
    let mut sar = (*s).addrs;
    while !sar.is_null() {
        if ((*sar).host_port == 0 || (*sar).host_port == port) && same((*sar).virthost) {
            return true;
        }
        sar = (*sar).next;
    }
    false
}

/// The non-null `char *` elements of an APR array (null array: none).
unsafe fn array_strings(a: *const ffi::apr_array_header_t) -> impl Iterator<Item = *const c_char> {
    let (elts, n) = if a.is_null() {
        (std::ptr::null(), 0)
    } else {
        ((*a).elts as *const *const c_char, (*a).nelts.max(0) as usize)
    };
    (0..n).map(move |i| *elts.add(i)).filter(|p| !p.is_null())
}

/// Apache's `check_serverpath` test for one server.
unsafe fn server_path_matches(s: *const ffi::server_rec, uri: *const c_char) -> bool {
    if (*s).path.is_null() || uri.is_null() || (*s).pathlen <= 0 {
        return false;
    }
    let path = CStr::from_ptr((*s).path).to_bytes();
    let uri = CStr::from_ptr(uri).to_bytes();
    uri.starts_with(path) && (path.ends_with(b"/") || matches!(uri.get(path.len()), None | Some(b'/')))
}
