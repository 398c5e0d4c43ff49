//! The directive table and the per-server / per-directory configuration it fills.
//!
//! Parsing is done by the pure `crate::config` module; this file only moves values between
//! Apache's command callbacks and plain Rust structs that live in Apache's configuration pools.

use super::directive::{answer, args, directive_name, global_only, group_spec, one_word, origin, Origin, Result};
use crate::appgroup::GroupSpec;
use crate::config::{self, DaemonProcess, HandlerScript, ImportScript, MountOptions};
use crate::routing::MountTable;
use crate::sys::ffi;
use crate::sys::util::{cstr, module_config, pool_box};
use std::ffi::{c_void, CString};
use std::os::raw::c_char;
use std::ptr;

/// A mount from `WSGIScriptAlias` or `WSGIScriptAliasMatch`.
#[derive(Debug, Clone)]
pub struct Mount {
    pub target: String,
    /// Whether the target is a directory (of scripts) or a file, when it existed at startup;
    /// `None`: looked up on each request.
    pub target_is_dir: Option<bool>,
    pub options: MountOptions,
    pub application_group: Option<GroupSpec>,
}

#[derive(Clone)]
pub struct RegexMount {
    pub regex: *mut ffi::ap_regex_t,
    pub mount: Mount,
}

/// Per-server (main server or virtual host) configuration.
#[derive(Default)]
pub struct ServerConf {
    pub mounts: MountTable<Mount>,
    pub regex_mounts: Vec<RegexMount>,
    pub daemons: Vec<(DaemonProcess, Origin)>,
    pub restrict_unknown_hosts: Option<bool>,
    // Process-wide settings; only meaningful on the main server.
    pub python_home: Option<(String, Origin)>,
    pub python_path: Vec<String>,
    pub restrict_embedded: Option<bool>,
    /// WSGIResponseSpoolSize: the most bytes of one embedded-mode response kept in a temporary
    /// file for a slow client (None: `config::DEFAULT_SPOOL_SIZE`; 0: no file).
    pub response_spool_size: Option<u64>,
    /// WSGIRequestSpoolSize: the most bytes of one embedded-mode request body collected before
    /// the application runs (None: `config::DEFAULT_SPOOL_SIZE`; 0: none).
    pub request_spool_size: Option<u64>,
    /// WSGIMetrics (main server only): None means On.
    pub metrics: Option<bool>,
    pub restrict_signal: Option<bool>,
    pub socket_prefix: Option<String>,
    /// WSGIImportScript lines (main server only: they run when processes start).
    pub import_scripts: Vec<(ImportScript, Origin)>,
    /// WSGIServerMetrics.
    pub server_metrics: Option<bool>,
    /// WSGIPythonWarnings (in order), WSGIDontWriteBytecode, WSGIPythonHashSeed, WSGIPythonEggs.
    pub python_warnings: Vec<String>,
    pub dont_write_bytecode: Option<bool>,
    /// WSGIPythonOptimize: Python's -O level.
    pub python_optimize: Option<u8>,
    /// WSGINewRelicConfigFile, WSGINewRelicEnvironment (mod_wsgi 4.x).
    pub newrelic_config_file: Option<String>,
    pub newrelic_environment: Option<String>,
    /// WSGISlowRequests: requests slower than this are logged.
    pub slow_requests: Option<std::time::Duration>,
    /// WSGICaseSensitivity (None: On, as mod_wsgi on Linux).
    pub case_sensitivity: Option<bool>,
    pub hash_seed: Option<Option<u32>>,
    pub switch_interval: Option<std::time::Duration>,
    pub python_eggs: Option<String>,
    /// `<WSGIInterpreterOptions>` sections in order, WSGIPerInterpreterGIL, WSGIFreeThreading.
    pub interpreter_options: Vec<config::InterpreterOptions>,
    pub per_interpreter_gil: Option<bool>,
    /// WSGIRestrictStdin, WSGIRestrictStdout (None: Off, as in mod_wsgi).
    pub restrict_stdin: Option<bool>,
    pub restrict_stdout: Option<bool>,
    /// WSGITelemetryService (socket path, interval) and WSGITelemetryOptions +CaptureUserAgent.
    pub telemetry: Option<(std::path::PathBuf, std::time::Duration)>,
    pub telemetry_capture_user_agent: bool,
    pub free_threading: Option<bool>,
    /// Process groups named by directives in this server, checked once all are defined.
    pub group_references: Vec<(String, Origin)>,
}

/// Per-directory configuration (also the server's defaults, from directives outside sections).
#[derive(Debug, Default, Clone)]
pub struct DirConf {
    pub application_group: Option<GroupSpec>,
    pub process_group: Option<String>,
    pub callable_object: Option<String>,
    pub pass_authorization: Option<bool>,
    pub script_reloading: Option<bool>,
    pub chunked_request: Option<bool>,
    /// WSGIIgnoreActivity: requests here do not reset a daemon's inactivity-timeout.
    pub ignore_activity: Option<bool>,
    /// WSGIErrorOverride: a daemon's 4xx/5xx answer is replaced by Apache's error document.
    pub error_override: Option<bool>,
    /// WSGIEnableSendfile: shown to the application as `mod_wsgi.enable_sendfile`.
    pub enable_sendfile: Option<bool>,
    /// WSGIPassApacheRequest: `apache.request_rec` in the embedded environ.
    pub pass_apache_request: Option<bool>,
    /// WSGIHandlerScript lines, later ones (and inner sections') first.
    pub handler_scripts: Vec<HandlerScript>,
    pub map_head_to_get: Option<config::MapHeadToGet>,
    /// WSGITrustedProxyHeaders, as environ keys, and WSGITrustedProxies.
    pub trusted_proxy_headers: Option<Vec<&'static str>>,
    pub trusted_proxies: Option<Vec<crate::proxy_headers::Subnet>>,
    /// WSGIAuthUserScript, WSGIAuthGroupScript, WSGIAccessScript.
    pub auth_user_script: Option<config::AuthScript>,
    pub auth_group_script: Option<config::AuthScript>,
    pub access_script: Option<config::AuthScript>,
    /// WSGIDispatchScript.
    pub dispatch_script: Option<config::AuthScript>,
    /// WSGIRestrictProcess.
    pub restrict_process: Option<config::RestrictProcess>,
    /// WSGIXSendfilePath: where files named by an X-Sendfile header may be.
    pub xsendfile_paths: Option<Vec<std::path::PathBuf>>,
}

impl DirConf {
    fn merged(base: &DirConf, new: &DirConf) -> DirConf {
        DirConf {
            application_group: new.application_group.clone().or_else(|| base.application_group.clone()),
            process_group: new.process_group.clone().or_else(|| base.process_group.clone()),
            callable_object: new.callable_object.clone().or_else(|| base.callable_object.clone()),
            pass_authorization: new.pass_authorization.or(base.pass_authorization),
            script_reloading: new.script_reloading.or(base.script_reloading),
            chunked_request: new.chunked_request.or(base.chunked_request),
            ignore_activity: new.ignore_activity.or(base.ignore_activity),
            error_override: new.error_override.or(base.error_override),
            enable_sendfile: new.enable_sendfile.or(base.enable_sendfile),
            pass_apache_request: new.pass_apache_request.or(base.pass_apache_request),
            handler_scripts: new.handler_scripts.iter().chain(&base.handler_scripts).cloned().collect(),
            map_head_to_get: new.map_head_to_get.or(base.map_head_to_get),
            trusted_proxy_headers: new.trusted_proxy_headers.clone().or_else(|| base.trusted_proxy_headers.clone()),
            trusted_proxies: new.trusted_proxies.clone().or_else(|| base.trusted_proxies.clone()),
            auth_user_script: new.auth_user_script.clone().or_else(|| base.auth_user_script.clone()),
            auth_group_script: new.auth_group_script.clone().or_else(|| base.auth_group_script.clone()),
            access_script: new.access_script.clone().or_else(|| base.access_script.clone()),
            dispatch_script: new.dispatch_script.clone().or_else(|| base.dispatch_script.clone()),
            restrict_process: new.restrict_process.clone().or_else(|| base.restrict_process.clone()),
            xsendfile_paths: new.xsendfile_paths.clone().or_else(|| base.xsendfile_paths.clone()),
        }
    }
}

pub unsafe extern "C" fn create_server_config(p: *mut ffi::apr_pool_t, _s: *mut ffi::server_rec) -> *mut c_void {
    pool_box(p, ServerConf::default()) as *mut c_void
}

/// A virtual host sees its own mounts first, then the main server's (as mod_alias does).
pub unsafe extern "C" fn merge_server_config(
    p: *mut ffi::apr_pool_t,
    base: *mut c_void,
    new: *mut c_void,
) -> *mut c_void {
    let (base, new) = (&*(base as *const ServerConf), &*(new as *const ServerConf));
    let mut merged = ServerConf::default();
    for table in [&new.mounts, &base.mounts] {
        for (prefix, m) in table.iter() {
            let _ = merged.mounts.insert(prefix, m.clone());
        }
    }
    merged.regex_mounts = new.regex_mounts.iter().chain(&base.regex_mounts).cloned().collect();
    merged.daemons = new.daemons.clone();
    merged.restrict_unknown_hosts = new.restrict_unknown_hosts.or(base.restrict_unknown_hosts);
    merged.group_references = new.group_references.clone();
    pool_box(p, merged) as *mut c_void
}

pub unsafe extern "C" fn create_dir_config(p: *mut ffi::apr_pool_t, _dir: *mut c_char) -> *mut c_void {
    pool_box(p, DirConf::default()) as *mut c_void
}

pub unsafe extern "C" fn merge_dir_config(p: *mut ffi::apr_pool_t, base: *mut c_void, new: *mut c_void) -> *mut c_void {
    let merged = DirConf::merged(&*(base as *const DirConf), &*(new as *const DirConf));
    pool_box(p, merged) as *mut c_void
}

/// The server configuration a directive callback writes to.
pub unsafe fn server_conf_mut<'a>(cmd: *mut ffi::cmd_parms) -> &'a mut ServerConf {
    &mut *module_config::<ServerConf>((*(*cmd).server).module_config)
}

pub fn server_conf<'a>(s: *const ffi::server_rec) -> &'a ServerConf {
    unsafe { &*module_config::<ServerConf>((*s).module_config) }
}

pub fn dir_conf<'a>(r: *const ffi::request_rec) -> &'a DirConf {
    static EMPTY: DirConf = DirConf {
        application_group: None,
        process_group: None,
        callable_object: None,
        pass_authorization: None,
        script_reloading: None,
        chunked_request: None,
        ignore_activity: None,
        error_override: None,
        enable_sendfile: None,
        pass_apache_request: None,
        handler_scripts: Vec::new(),
        map_head_to_get: None,
        trusted_proxy_headers: None,
        trusted_proxies: None,
        auth_user_script: None,
        auth_group_script: None,
        access_script: None,
        dispatch_script: None,
        restrict_process: None,
        xsendfile_paths: None,
    };
    let p = module_config::<DirConf>(unsafe { (*r).per_dir_config });
    if p.is_null() {
        &EMPTY
    } else {
        unsafe { &*p }
    }
}

pub(super) unsafe extern "C" fn cmd_script_alias(
    cmd: *mut ffi::cmd_parms,
    _m: *mut c_void,
    a: *const c_char,
) -> *const c_char {
    let r = (|| {
        let name = directive_name(cmd);
        let alias = config::parse_script_alias(name, args(a)).map_err(|e| e.to_string())?;
        let application_group = alias.options.application_group.as_deref().map(|v| group_spec(name, v)).transpose()?;
        let origin = origin(cmd);
        let conf = server_conf_mut(cmd);
        if let Some(g) = &alias.options.process_group {
            conf.group_references.push((g.clone(), origin.clone()));
        }
        let target_is_dir = std::fs::metadata(&alias.target).ok().map(|m| m.is_dir());
        let mount = Mount { target: alias.target, target_is_dir, options: alias.options, application_group };
        if name.ends_with("Match") {
            let re = CString::new(alias.url_path.clone()).map_err(|_| "regex contains NUL".to_string())?;
            let regex = ffi::ap_pregcomp((*cmd).pool, re.as_ptr(), 0);
            if regex.is_null() {
                return Err(format!("{name}: invalid regular expression '{}'", alias.url_path));
            }
            conf.regex_mounts.push(RegexMount { regex, mount });
            Ok(())
        } else {
            conf.mounts
                .insert(&alias.url_path, mount)
                .map_err(|prefix| format!("{name}: URL path '{}' is already mounted (as '{prefix}')", alias.url_path))
        }
    })();
    answer(cmd, r)
}

pub(super) unsafe extern "C" fn cmd_daemon_process(
    cmd: *mut ffi::cmd_parms,
    _m: *mut c_void,
    a: *const c_char,
) -> *const c_char {
    let r = (|| {
        let (daemon, warnings) = config::parse_daemon_process(args(a)).map_err(|e| e.to_string())?;
        for w in warnings {
            crate::sys::util::log_server((*cmd).server, crate::sys::util::LOG_WARNING, &w);
        }
        let origin = origin(cmd);
        // Names are process-wide: a second definition anywhere is an error.
        let mut names = DAEMON_NAMES.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, first)) = names.iter().find(|(n, _)| *n == daemon.name) {
            return Err(format!(
                "WSGIDaemonProcess: name '{}' is already defined at {}:{}",
                daemon.name, first.file, first.line
            ));
        }
        names.push((daemon.name.clone(), origin.clone()));
        server_conf_mut(cmd).daemons.push((daemon, origin));
        Ok(())
    })();
    answer(cmd, r)
}

/// Daemon group names defined while reading the configuration; cleared before each read.
pub static DAEMON_NAMES: std::sync::Mutex<Vec<(String, Origin)>> = std::sync::Mutex::new(Vec::new());

macro_rules! dir_setter {
    ($fn_name:ident, |$conf:ident, $name:ident, $raw:ident| $body:expr) => {
        pub(super) unsafe extern "C" fn $fn_name(
            cmd: *mut ffi::cmd_parms,
            m: *mut c_void,
            a: *const c_char,
        ) -> *const c_char {
            let r = (|| -> Result<()> {
                let $conf = &mut *(m as *mut DirConf);
                let $name = directive_name(cmd);
                let $raw = args(a);
                $body
            })();
            answer(cmd, r)
        }
    };
}

/// A per-directory `On|Off` directive that sets `DirConf::$field`.
macro_rules! dir_flag {
    ($fn_name:ident, $field:ident) => {
        dir_setter!($fn_name, |conf, name, raw| {
            conf.$field = Some(config::parse_on_off(name, raw).map_err(|e| e.to_string())?);
            Ok(())
        });
    };
}

dir_setter!(cmd_application_group, |conf, name, raw| {
    conf.application_group = Some(group_spec(name, &one_word(name, raw)?)?);
    Ok(())
});
pub(super) unsafe extern "C" fn cmd_process_group(
    cmd: *mut ffi::cmd_parms,
    m: *mut c_void,
    a: *const c_char,
) -> *const c_char {
    let r = (|| -> Result<()> {
        let name = directive_name(cmd);
        let group = one_word(name, args(a))?;
        if !group.is_empty() && group != "%{GLOBAL}" {
            server_conf_mut(cmd).group_references.push((group.clone(), origin(cmd)));
        }
        (*(m as *mut DirConf)).process_group = Some(if group == "%{GLOBAL}" { String::new() } else { group });
        Ok(())
    })();
    answer(cmd, r)
}
dir_setter!(cmd_callable_object, |conf, name, raw| {
    conf.callable_object = Some(one_word(name, raw)?);
    Ok(())
});
dir_flag!(cmd_pass_authorization, pass_authorization);
dir_flag!(cmd_script_reloading, script_reloading);
dir_flag!(cmd_chunked_request, chunked_request);
dir_flag!(cmd_ignore_activity, ignore_activity);
dir_flag!(cmd_error_override, error_override);
dir_flag!(cmd_enable_sendfile, enable_sendfile);
dir_flag!(cmd_pass_apache_request, pass_apache_request);
// WSGIGroupAuthoritative: mod_wsgi stores it but Apache 2.4 never asks (the authz providers
// decide; `Require wsgi-group` failing is a denial, and `<RequireAny>` combines providers).
dir_setter!(cmd_group_authoritative, |conf, name, raw| {
    let _ = conf;
    config::parse_on_off(name, raw).map_err(|e| e.to_string())?;
    Ok(())
});
dir_setter!(cmd_restrict_process, |conf, name, raw| {
    conf.restrict_process = Some(config::parse_restrict_process(name, raw).map_err(|e| e.to_string())?);
    Ok(())
});
dir_setter!(cmd_map_head_to_get, |conf, name, raw| {
    conf.map_head_to_get = Some(config::parse_map_head_to_get(name, raw).map_err(|e| e.to_string())?);
    Ok(())
});

macro_rules! server_setter {
    ($fn_name:ident, global = $global:expr, |$conf:ident, $cmd:ident, $name:ident, $raw:ident| $body:expr) => {
        pub(super) unsafe extern "C" fn $fn_name(
            $cmd: *mut ffi::cmd_parms,
            _m: *mut c_void,
            a: *const c_char,
        ) -> *const c_char {
            let r = (|| -> Result<()> {
                if $global {
                    global_only($cmd)?;
                }
                let $conf = server_conf_mut($cmd);
                let $name = directive_name($cmd);
                let $raw = args(a);
                $body
            })();
            answer($cmd, r)
        }
    };
}
pub(super) use server_setter;

server_setter!(cmd_python_home, global = true, |conf, cmd, name, raw| {
    let home = one_word(name, raw)?;
    crate::config::check_python_home(&home).map_err(|e| format!("{name}: {e}"))?;
    conf.python_home = Some((home, origin(cmd)));
    Ok(())
});
server_setter!(cmd_restrict_embedded, global = true, |conf, cmd, name, raw| {
    let _ = cmd;
    conf.restrict_embedded = Some(config::parse_on_off(name, raw).map_err(|e| e.to_string())?);
    Ok(())
});
server_setter!(cmd_response_spool_size, global = true, |conf, cmd, name, raw| {
    let _ = cmd;
    conf.response_spool_size = Some(config::parse_spool_size(name, raw).map_err(|e| e.to_string())?);
    Ok(())
});
server_setter!(cmd_request_spool_size, global = true, |conf, cmd, name, raw| {
    let _ = cmd;
    conf.request_spool_size = Some(config::parse_spool_size(name, raw).map_err(|e| e.to_string())?);
    Ok(())
});
server_setter!(cmd_socket_prefix, global = true, |conf, cmd, name, raw| {
    let prefix = one_word(name, raw)?;
    let resolved = ffi::ap_server_root_relative((*cmd).pool, CString::new(prefix.clone()).unwrap_or_default().as_ptr());
    conf.socket_prefix = Some(cstr(resolved).unwrap_or(&prefix).to_string());
    Ok(())
});
server_setter!(cmd_server_metrics, global = true, |conf, cmd, name, raw| {
    let _ = cmd;
    conf.server_metrics = Some(config::parse_on_off(name, raw).map_err(|e| e.to_string())?);
    Ok(())
});
// WSGISocketRotation: mod_wsgi names a new socket per restart unless Off. oxwsgi keeps one
// socket per group for the life of Apache's parent (that is how a graceful restart loses no
// request), which is what Off asks for; On is accepted and means the same.
server_setter!(cmd_socket_rotation, global = true, |conf, cmd, name, raw| {
    let (_, _) = (conf, cmd);
    config::parse_on_off(name, raw).map_err(|e| e.to_string())?;
    Ok(())
});
server_setter!(cmd_metrics, global = true, |conf, cmd, name, raw| {
    let _ = cmd;
    conf.metrics = Some(config::parse_on_off(name, raw).map_err(|e| e.to_string())?);
    Ok(())
});
server_setter!(cmd_restrict_unknown_hosts, global = false, |conf, cmd, name, raw| {
    let _ = cmd;
    conf.restrict_unknown_hosts = Some(config::parse_on_off(name, raw).map_err(|e| e.to_string())?);
    Ok(())
});

/// mod_wsgi directives that oxwsgi accepts so existing configurations keep working, but that
/// have no effect (each logs a warning naming itself).
pub(super) unsafe extern "C" fn cmd_accepted(
    cmd: *mut ffi::cmd_parms,
    _m: *mut c_void,
    _a: *const c_char,
) -> *const c_char {
    crate::sys::util::log_server(
        (*cmd).server,
        crate::sys::util::LOG_WARNING,
        &format!("{} is accepted for mod_wsgi compatibility but has no effect in oxwsgi; ignored", directive_name(cmd)),
    );
    ptr::null()
}
