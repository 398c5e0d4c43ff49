//! The directive table Apache reads from the module record: every directive's name, callback,
//! where it may be used and its one-line help. docs/configuration.md is checked against it.

use super::auth::{cmd_access_script, cmd_auth_group_script, cmd_auth_user_script};
use super::conf::*;
use super::dispatch::cmd_dispatch_script;
use super::handler_script::{cmd_handler_script, cmd_import_script};
use super::interpreter_options::{
    cmd_free_threading, cmd_interpreter_options, cmd_per_interpreter_gil, cmd_python_path, cmd_restrict_signal,
    cmd_restrict_stdio,
};
use super::proxy::{cmd_trusted_proxies, cmd_trusted_proxy_headers};
use super::python_start::{
    cmd_case_sensitivity, cmd_dont_write_bytecode, cmd_newrelic_config_file, cmd_newrelic_environment, cmd_python_eggs,
    cmd_python_hash_seed, cmd_python_optimize, cmd_python_warnings, cmd_switch_interval,
};
use crate::sys::ffi;
use std::ffi::{c_void, CStr};
use std::os::raw::c_char;
use std::ptr;

type RawFn = unsafe extern "C" fn(*mut ffi::cmd_parms, *mut c_void, *const c_char) -> *const c_char;

/// A help text made with `concat!` (ending in a NUL), as a C string, at compile time.
const fn help(text: &'static str) -> &'static CStr {
    match CStr::from_bytes_with_nul(text.as_bytes()) {
        Ok(c) => c,
        Err(_) => panic!("a help text ends in its only NUL"),
    }
}

const fn directive(name: &'static CStr, f: RawFn, how: u32, help: &'static CStr) -> ffi::command_rec {
    ffi::command_rec {
        name: name.as_ptr(),
        func: ffi::cmd_func { raw_args: Some(f) },
        cmd_data: ptr::null_mut(),
        req_override: how as i32,
        args_how: ffi::cmd_how_RAW_ARGS,
        errmsg: help.as_ptr(),
    }
}

const SERVER: u32 = ffi::RSRC_CONF;
const DIR: u32 = ffi::RSRC_CONF | ffi::ACCESS_CONF;
const DIR_HTACCESS: u32 = ffi::RSRC_CONF | ffi::ACCESS_CONF | ffi::OR_FILEINFO;
/// Where mod_wsgi allows its auth scripts: directory sections and .htaccess with AuthConfig.
const AUTH: u32 = ffi::ACCESS_CONF | ffi::OR_AUTHCFG;

/// Directive names and what they do; docs/configuration.md is checked against this list.
pub static mut COMMANDS: [ffi::command_rec; 58] = [
    directive(
        c"WSGIScriptAlias",
        cmd_script_alias,
        SERVER,
        c"URL-PATH FILE-OR-DIR [options]: mount a WSGI application",
    ),
    directive(
        c"WSGIScriptAliasMatch",
        cmd_script_alias,
        SERVER,
        c"REGEX FILE-OR-DIR [options]: mount by regular expression",
    ),
    directive(c"WSGIDaemonProcess", cmd_daemon_process, SERVER, c"NAME [options]: define a daemon process group"),
    directive(
        c"WSGIApplicationGroup",
        cmd_application_group,
        DIR_HTACCESS,
        c"the Python interpreter (application group) to use",
    ),
    // Not in .htaccess: choosing a daemon group chooses the user scripts run as.
    directive(c"WSGIProcessGroup", cmd_process_group, DIR, c"the daemon process group to delegate requests to"),
    // Not in .htaccess, like WSGIProcessGroup: it limits what the group may be set to there.
    directive(
        c"WSGIRestrictProcess",
        cmd_restrict_process,
        DIR,
        c"GROUP ...: the only process groups (%{GLOBAL}: embedded) requests here may run in",
    ),
    directive(
        c"WSGICallableObject",
        cmd_callable_object,
        DIR_HTACCESS,
        c"name of the WSGI callable in the script (default 'application')",
    ),
    directive(
        c"WSGIPassAuthorization",
        cmd_pass_authorization,
        DIR_HTACCESS,
        c"On|Off: pass the Authorization header as HTTP_AUTHORIZATION",
    ),
    directive(c"WSGIScriptReloading", cmd_script_reloading, DIR_HTACCESS, c"On|Off: reload a changed WSGI script"),
    directive(c"WSGIChunkedRequest", cmd_chunked_request, DIR_HTACCESS, c"On|Off: accept chunked request bodies"),
    directive(
        c"WSGIIgnoreActivity",
        cmd_ignore_activity,
        DIR_HTACCESS,
        c"On|Off: these requests do not reset a daemon's inactivity-timeout",
    ),
    directive(
        c"WSGIErrorOverride",
        cmd_error_override,
        DIR_HTACCESS,
        c"On|Off: a daemon's 4xx/5xx answer gets Apache's error document",
    ),
    directive(
        c"WSGIEnableSendfile",
        cmd_enable_sendfile,
        DIR_HTACCESS,
        c"On|Off: wsgi.file_wrapper files go out with sendfile(2) (default), or mapped and written (Off)",
    ),
    // As in mod_wsgi: not in .htaccess (a raw pointer into Apache is for trusted code only).
    directive(
        c"WSGIPassApacheRequest",
        cmd_pass_apache_request,
        DIR,
        c"On|Off: apache.request_rec (a capsule) in the embedded environ",
    ),
    directive(
        c"WSGIGroupAuthoritative",
        cmd_group_authoritative,
        AUTH,
        c"On|Off: accepted; Apache 2.4's authorization providers decide",
    ),
    directive(c"WSGIPythonHome", cmd_python_home, SERVER, c"Python prefix or virtualenv"),
    directive(c"WSGIPythonPath", cmd_python_path, SERVER, c"':'-separated site directories for sys.path"),
    directive(c"WSGIRestrictEmbedded", cmd_restrict_embedded, SERVER, c"On|Off: refuse embedded-mode requests"),
    directive(c"WSGIRestrictSignal", cmd_restrict_signal, SERVER, c"On|Off: ignore signal.signal() in embedded mode"),
    directive(
        c"WSGIResponseSpoolSize",
        cmd_response_spool_size,
        SERVER,
        c"BYTES: the most of one embedded-mode response kept in a temporary file for a slow client (0: none)",
    ),
    directive(
        c"WSGIRequestSpoolSize",
        cmd_request_spool_size,
        SERVER,
        c"BYTES: the most of one embedded-mode request body collected before the application runs (0: none)",
    ),
    directive(c"WSGISocketPrefix", cmd_socket_prefix, SERVER, c"path prefix of daemon sockets"),
    directive(c"WSGIMetrics", cmd_metrics, SERVER, c"On|Off: count requests for the oxwsgi-metrics handler"),
    directive(
        c"WSGIRestrictUnknownHosts",
        cmd_restrict_unknown_hosts,
        SERVER,
        c"On|Off: refuse requests for host names no virtual host declares",
    ),
    directive(
        c"WSGIHandlerScript",
        cmd_handler_script,
        DIR,
        c"NAME SCRIPT [options]: serve Apache handler NAME with a WSGI script",
    ),
    directive(
        c"WSGIImportScript",
        cmd_import_script,
        SERVER,
        c"SCRIPT [process-group=G] [application-group=A]: run a script when its process starts",
    ),
    directive(
        c"WSGIMapHEADToGET",
        cmd_map_head_to_get,
        DIR_HTACCESS,
        c"On|Off|Auto: run HEAD requests as GET for the application",
    ),
    directive(
        c"WSGITrustedProxyHeaders",
        cmd_trusted_proxy_headers,
        DIR_HTACCESS,
        c"HEADER ...: proxy headers that may set REMOTE_ADDR, HTTP_HOST, the scheme, ...",
    ),
    directive(
        c"WSGIXSendfilePath",
        super::xsendfile::cmd_xsendfile_path,
        DIR,
        c"DIR ...: an X-Sendfile response header may name files in these directories",
    ),
    directive(
        c"WSGITrustedProxies",
        cmd_trusted_proxies,
        DIR_HTACCESS,
        c"ADDRESS-OR-NETWORK ...: the proxies whose headers are believed",
    ),
    directive(
        c"WSGIAuthUserScript",
        cmd_auth_user_script,
        AUTH,
        c"SCRIPT [application-group=A]: check_password() for AuthBasicProvider wsgi",
    ),
    directive(
        c"WSGIAuthGroupScript",
        cmd_auth_group_script,
        AUTH,
        c"SCRIPT [application-group=A]: groups_for_user() for Require wsgi-group",
    ),
    directive(
        c"WSGIAccessScript",
        cmd_access_script,
        AUTH,
        c"SCRIPT [application-group=A]: allow_access() for each request",
    ),
    // Not in .htaccess: choosing a daemon group chooses the user scripts run as.
    directive(
        c"WSGIDispatchScript",
        cmd_dispatch_script,
        DIR,
        c"SCRIPT [application-group=A]: choose group, interpreter and callable per request",
    ),
    directive(c"WSGIPythonWarnings", cmd_python_warnings, SERVER, c"a -W warning filter for Python (repeatable)"),
    directive(c"WSGIDontWriteBytecode", cmd_dont_write_bytecode, SERVER, c"On|Off: do not write .pyc files"),
    directive(c"WSGIPythonHashSeed", cmd_python_hash_seed, SERVER, c"random|N: Python's hash seed"),
    directive(
        c"WSGISwitchInterval",
        cmd_switch_interval,
        SERVER,
        c"SECONDS: sys.setswitchinterval() in Apache's children (daemons: switch-interval=)",
    ),
    directive(c"WSGIPythonEggs", cmd_python_eggs, SERVER, c"DIR: PYTHON_EGG_CACHE in embedded mode"),
    directive(
        c"WSGIServerMetrics",
        cmd_server_metrics,
        SERVER,
        c"On|Off: collect metrics for mod_wsgi.server_metrics()",
    ),
    directive(
        c"WSGISocketRotation",
        cmd_socket_rotation,
        SERVER,
        c"On|Off: accepted; daemon sockets are kept across restarts",
    ),
    directive(c"WSGIPythonOptimize", cmd_python_optimize, SERVER, c"0|1|2: Python's -O level"),
    directive(
        c"WSGINewRelicConfigFile",
        cmd_newrelic_config_file,
        SERVER,
        c"FILE: each interpreter runs newrelic.agent.initialize(FILE) (mod_wsgi 4.x)",
    ),
    directive(
        c"WSGINewRelicEnvironment",
        cmd_newrelic_environment,
        SERVER,
        c"NAME: the environment given to newrelic.agent.initialize()",
    ),
    directive(
        c"WSGISlowRequests",
        super::slow_requests::cmd_slow_requests,
        SERVER,
        c"SECONDS: log WSGI requests that take longer",
    ),
    directive(
        c"WSGITelemetryService",
        super::telemetry::cmd_telemetry_service,
        SERVER,
        c"unix:/PATH [interval=SECONDS]: send mod_wsgi telemetry datagrams to an ingester",
    ),
    directive(
        c"WSGITelemetryOptions",
        super::telemetry::cmd_telemetry_options,
        SERVER,
        c"[+|-]CaptureUserAgent | None | All: what slow-request records carry",
    ),
    directive(
        c"WSGICaseSensitivity",
        cmd_case_sensitivity,
        SERVER,
        c"On|Off: whether script paths differing in case are different files",
    ),
    directive(c"WSGILazyInitialization", cmd_accepted, SERVER, c"accepted for compatibility; no effect"),
    directive(c"WSGIRestrictStdin", cmd_restrict_stdio, SERVER, c"On|Off: any use of sys.stdin raises"),
    directive(c"WSGIRestrictStdout", cmd_restrict_stdio, SERVER, c"On|Off: any use of sys.stdout raises"),
    directive(
        c"<WSGIInterpreterOptions",
        cmd_interpreter_options,
        SERVER,
        c"[process-group=G] [application-group=A]>: per-interpreter WSGIPythonPath, WSGISwitchInterval, ...",
    ),
    directive(
        c"WSGIPerInterpreterGIL",
        cmd_per_interpreter_gil,
        SERVER,
        help(concat!(
            "On|Off: a GIL per sub-interpreter (Python 3.12+; this oxwsgi is built for Python ",
            env!("OXWSGI_BUILD_PYTHON_VERSION"),
            ")\0"
        )),
    ),
    directive(
        c"WSGIFreeThreading",
        cmd_free_threading,
        SERVER,
        help(concat!(
            "On|Off: Python without the GIL (free-threaded 3.13t/3.14t only; no effect in this oxwsgi, built for Python ",
            env!("OXWSGI_BUILD_PYTHON_VERSION"),
            ")\0"
        )),
    ),
    directive(c"WSGIAcceptMutex", cmd_accepted, SERVER, c"accepted for compatibility; no effect"),
    directive(c"WSGIVerboseDebugging", cmd_accepted, SERVER, c"accepted for compatibility; no effect"),
    directive(c"WSGIDestroyInterpreter", cmd_accepted, SERVER, c"accepted for compatibility; no effect"),
    // Terminator.
    ffi::command_rec {
        name: ptr::null(),
        func: ffi::cmd_func { raw_args: None },
        cmd_data: ptr::null_mut(),
        req_override: 0,
        args_how: 0,
        errmsg: ptr::null(),
    },
];
