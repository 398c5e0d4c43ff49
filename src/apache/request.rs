//! The content handler both modes share, as a sequence of named steps: plan the request from
//! the configuration (`crate::request_plan`), check the script, build the environ
//! (`environ`), let a `WSGIDispatchScript` change the choices, check what may run where, then
//! run the application in this Apache child (embedded mode) or hand it to a daemon group
//! (`relay`). A step that turns the request away returns a [`Refusal`]: its status and the log
//! line that says why.

use super::body_wait::BeforeApplication;
use super::environ::{folded, Choices, Environ, Paths};
use super::python_start::{ensure_python, mpm_query};
use super::request_note::Route;
use super::request_view::RequestView;
use super::response::ApacheBackend;
use super::response_buffer::Spooled;
use crate::appgroup::{self, NamingContext};
use crate::config::HandlerScript;
use crate::metrics::running::{Phases, Running};
use crate::python::interp;
use crate::python::wsgi::{self, Outcome, Request};
use crate::request_plan::{self, Body, BodyRefusal, DirSettings, Mode, Plan, Target};
use crate::sys::ffi;
use crate::sys::util::{self, cbytes};
use std::path::Path;

pub const HANDLER_NAME: &[u8] = b"wsgi-script";

/// Whether oxwsgi handles this request: our own handler name, or mod_wsgi's MIME-type form
/// (`AddType application/x-httpd-wsgi .wsgi`).
pub unsafe fn is_wsgi_handler(r: *const ffi::request_rec) -> bool {
    let h = cbytes((*r).handler);
    h == HANDLER_NAME || h == b"application/x-httpd-wsgi"
}

/// The content handler for `wsgi-script` (and for `WSGIHandlerScript` names).
pub unsafe extern "C" fn handler(r: *mut ffi::request_rec) -> i32 {
    let handler_script = if is_wsgi_handler(r) {
        None
    } else {
        match super::handler_script::for_request(r) {
            Some(h) => Some(h),
            None => return ffi::DECLINED,
        }
    };
    let req = RequestView::new(r);
    match std::panic::catch_unwind(|| serve(req, handler_script)) {
        Ok(Ok(status)) => status,
        Ok(Err(refusal)) => refusal.answer(req),
        Err(_) => {
            req.log(util::LOG_ERR, "oxwsgi: internal error (panic) while handling the request");
            ffi::HTTP_INTERNAL_SERVER_ERROR as i32
        }
    }
}

/// A request turned away before its application runs.
struct Refusal {
    status: u32,
    /// The log line (and its level) that says why; None where the status says it all.
    log: Option<(u8, String)>,
}

impl Refusal {
    fn error(status: u32, message: String) -> Refusal {
        Refusal { status, log: Some((util::LOG_ERR, message)) }
    }

    fn answer(self, req: RequestView) -> i32 {
        if let Some((level, message)) = &self.log {
            req.log(*level, message);
        }
        self.status as i32
    }
}

impl From<BodyRefusal> for Refusal {
    fn from(why: BodyRefusal) -> Refusal {
        let log = match why {
            BodyRefusal::ChunkedNotAllowed => {
                Some((util::LOG_INFO, "oxwsgi: chunked request body refused (WSGIChunkedRequest Off): 411".to_string()))
            }
            BodyRefusal::BadLength => None,
            // Apache's own line for this (its input filter logs it when a body is read).
            BodyRefusal::TooLarge { length, limit } => Some((
                util::LOG_INFO,
                format!("Requested content-length of {length} is larger than the configured limit of {limit}"),
            )),
        };
        Refusal { status: why.status().into(), log }
    }
}

/// Serves `req` with its WSGI script, or with `handler_script` (WSGIHandlerScript) for the
/// resource the request names; Ok is the handler's status.
fn serve(req: RequestView, handler_script: Option<&HandlerScript>) -> Result<i32, Refusal> {
    let dir = req.dir_conf();
    let route = handler_script.is_none().then(|| route(req)).flatten();
    let plan = plan(req, handler_script, route);
    // SCRIPT_FILENAME: the file the request is for (for a handler script, the resource).
    let resource = req.filename().unwrap_or("");
    let script = handler_script.map_or(resource, |h| h.script.as_str());
    refuse_restricted_embedded(&plan.mode, || format!("refusing '{script}'"))?;
    let mtime = script_mtime(req, handler_script, script)?;
    let body = request_plan::request_body(
        req.header_in(c"Transfer-Encoding"),
        req.header_in(c"Content-Length"),
        dir.chunked_request == Some(true),
        req.limit_req_body(),
    )?;
    // The body arrives before the application runs (WSGIRequestSpoolSize, request-spool-size=).
    if body.content_length() != Some(0) {
        // SAFETY: the request is live for this handler call.
        match unsafe {
            super::body_wait::collect_first(req.raw(), body.content_length(), spool_limit(&plan.mode), handler)
        } {
            BeforeApplication::Run => {}
            BeforeApplication::Suspend => return Ok(ffi::SUSPENDED),
            BeforeApplication::Refuse(status) => return Err(Refusal { status, log: None }),
            BeforeApplication::Answered => return Ok(ffi::AP_FILTER_ERROR),
        }
    }
    let paths = paths(req, route, resource);
    // WSGIMapHEADToGET: the application may be run as for GET (Apache still sends no body).
    let head = req.header_only();
    let as_get = head && dir.map_head_to_get.unwrap_or_default().maps(req.has_content_filters());
    let mut environ = Environ::cgi(req, &paths, plan.pass_authorization, as_get);

    let script_name = String::from_utf8_lossy(paths.script_name);
    let naming = NamingContext { server_name: req.server_name(), port: req.local_port(), script_name: &script_name };
    let application_group = appgroup::resolve(&plan.application_group, &naming, |name| {
        environ.apache_var(name).map(String::from).or_else(|| std::env::var(name).ok())
    });
    // WSGIDispatchScript may choose another group, interpreter or callable for this request.
    let mut choice = super::dispatch::Choice { mode: plan.mode, application_group, callable: plan.callable };
    // SAFETY: the request is live for this handler call.
    unsafe { super::dispatch::apply(req.raw(), environ.pairs(), &naming, &mut choice) }
        .map_err(|status| Refusal { status: status as u32, log: None })?;
    refuse_restricted_embedded(&choice.mode, || "refusing the dispatch script's choice".to_string())?;
    refuse_restricted_process(req, &choice.mode, script)?;

    let reload = dir.script_reloading.unwrap_or(true);
    let choices = Choices {
        mode: &choice.mode,
        application_group: &choice.application_group,
        callable: &choice.callable,
        handler_script: handler_script.map(|h| h.script.as_str()),
        script_reloading: reload,
    };
    environ.add_mod_wsgi_keys(&choices, &paths);
    // SAFETY: as above.
    unsafe { super::metrics::mark(req.raw(), choice.mode.name(), &choice.application_group) };
    let _in_flight = super::telemetry::in_flight(req);
    let app = App { script: Path::new(script), mtime, reload, body, head: head && !as_get };
    match &choice.mode {
        Mode::Daemon(group) => {
            // SAFETY: as above.
            Ok(unsafe {
                super::relay::handle(
                    req.raw(),
                    group,
                    app.script,
                    &mut environ,
                    body.content_length(),
                    dir.error_override == Some(true),
                )
            })
        }
        Mode::Embedded => run_embedded(req, &choice, &environ, app),
    }
}

/// The most bytes of a request body collected before the application runs in `mode`.
fn spool_limit(mode: &Mode) -> u64 {
    match mode {
        // SAFETY: ap_server_conf is the main server, set before any request.
        Mode::Embedded => super::conf::server_conf(unsafe { ffi::ap_server_conf })
            .request_spool_size
            .unwrap_or(crate::config::DEFAULT_SPOOL_SIZE),
        Mode::Daemon(name) => crate::daemon::group::find_group(name).map_or(0, |g| g.spec.request_spool_size),
    }
}

/// What translate_name decided for the request, if it routed it.
fn route<'r>(req: RequestView<'r>) -> Option<&'r Route> {
    // SAFETY: the request is live; its note lives in its pool.
    unsafe { super::request_note::note(req.raw()) }.and_then(|n| n.route.get())
}

/// The process group, callable and application group the configuration chooses.
fn plan(req: RequestView, handler_script: Option<&HandlerScript>, route: Option<&Route>) -> Plan {
    let dir = req.dir_conf();
    // SAFETY: a route's mount is in the server configuration, which outlives every request.
    let mount = route.map(|rt| unsafe { &*rt.mount });
    let target = match handler_script {
        Some(h) => Target::Handler(h),
        None => Target::Script { mount: mount.map(|m| (&m.options, m.application_group.as_ref())) },
    };
    Plan::new(
        target,
        DirSettings {
            process_group: dir.process_group.as_deref(),
            callable_object: dir.callable_object.as_deref(),
            application_group: dir.application_group.as_ref(),
            pass_authorization: dir.pass_authorization,
        },
    )
}

/// SCRIPT_NAME and PATH_INFO: the route's, or for AddHandler/SetHandler, the URI without its
/// PATH_INFO; runs of `/` in either folded into one as mod_wsgi does (they survive Apache
/// with `MergeSlashes Off`).
fn paths<'r>(req: RequestView<'r>, route: Option<&'r Route>, resource: &'r str) -> Paths<'r> {
    let (script_name, path_info) = match route {
        Some(rt) => (&rt.script_name[..], &rt.path_info[..]),
        None => (req.uri_before_path_info(), req.path_info()),
    };
    Paths { script_name: folded(req, script_name), path_info: folded(req, path_info), resource }
}

/// WSGIRestrictEmbedded On: nothing runs in an Apache child.
fn refuse_restricted_embedded(mode: &Mode, what: impl FnOnce() -> String) -> Result<(), Refusal> {
    // SAFETY: ap_server_conf is the main server, set before any request.
    let main = super::conf::server_conf(unsafe { ffi::ap_server_conf });
    if *mode == Mode::Embedded && main.restrict_embedded == Some(true) {
        return Err(Refusal::error(
            500,
            format!("oxwsgi: embedded mode is disabled (WSGIRestrictEmbedded On); {}", what()),
        ));
    }
    Ok(())
}

/// WSGIRestrictProcess: the process groups this directory's applications may run in.
fn refuse_restricted_process(req: RequestView, mode: &Mode, script: &str) -> Result<(), Refusal> {
    if req.dir_conf().restrict_process.as_ref().is_some_and(|allowed| !allowed.allows(mode.name())) {
        let shown = match mode {
            Mode::Embedded => "%{GLOBAL}",
            Mode::Daemon(group) => group,
        };
        return Err(Refusal::error(
            500,
            format!(
                "mod_wsgi (pid={}): Daemon process called '{shown}' cannot be accessed by this WSGI application: \
                 {script} (not listed by WSGIRestrictProcess)",
                std::process::id()
            ),
        ));
    }
    Ok(())
}

/// The script's modification time: the mapped file's, which must exist, or the handler
/// script's.
fn script_mtime(req: RequestView, handler_script: Option<&HandlerScript>, script: &str) -> Result<i64, Refusal> {
    match handler_script {
        None => req.regular_file_mtime().ok_or_else(|| {
            Refusal::error(404, format!("oxwsgi: Target WSGI script not found or unable to stat: {script}"))
        }),
        Some(_) => std::fs::metadata(script)
            .map(|m| interp::mtime_micros(&m))
            .map_err(|e| Refusal::error(500, format!("oxwsgi: WSGI handler script '{script}' cannot be read: {e}"))),
    }
}

/// The application to run and how.
struct App<'a> {
    script: &'a Path,
    mtime: i64,
    reload: bool,
    body: Body,
    /// A HEAD request the application sees as HEAD: the response has no body.
    head: bool,
}

/// Embedded mode: runs the application in this Apache child's interpreter.
fn run_embedded(
    req: RequestView,
    choice: &super::dispatch::Choice,
    environ: &Environ,
    app: App,
) -> Result<i32, Refusal> {
    ensure_python();
    if !interp::is_initialized() {
        return Err(Refusal::error(
            500,
            "oxwsgi: Python is not available in this process (see the start-up errors above)".to_string(),
        ));
    }
    let interp =
        interp::interpreter(&choice.application_group).map_err(|e| Refusal::error(500, format!("oxwsgi: {e}")))?;
    let dir = req.dir_conf();
    let request = Request {
        script: app.script,
        mtime: app.mtime,
        reload: app.reload,
        callable: &choice.callable,
        cgi: environ.pairs(),
        https: environ.https,
        multithread: mpm_query(ffi::AP_MPMQ_IS_THREADED) != ffi::AP_MPMQ_NOT_SUPPORTED as i32,
        multiprocess: mpm_query(ffi::AP_MPMQ_MAX_DAEMONS) > 1,
        content_length: app.body.content_length(),
        head: app.head,
        // Embedded mode reloads a changed script in place, as mod_wsgi does.
        restart_on_change: false,
        apache_request: if dir.pass_apache_request == Some(true) { req.raw().cast() } else { std::ptr::null_mut() },
    };
    // SAFETY: the request is live for this handler call.
    let apache = unsafe { ApacheBackend::new(req.raw()) };
    // What a slow client cannot take yet goes to a temporary file (WSGIResponseSpoolSize), so
    // the application and this worker are free once the body is produced.
    // SAFETY: ap_server_conf is the main server, set before any request.
    let main = super::conf::server_conf(unsafe { ffi::ap_server_conf });
    let mut backend = Spooled::new(apache, main.response_spool_size.unwrap_or(crate::config::DEFAULT_SPOOL_SIZE));
    let threads = mpm_query(ffi::AP_MPMQ_MAX_THREADS).max(1) as u32;
    let phases = Phases { accepted_us: req.request_time().max(0) as u64, ..Phases::default() };
    let _running = Running::begin("", &choice.application_group, threads, phases, wsgi::now_micros());
    Ok(match wsgi::run(&interp, &request, &mut backend) {
        Outcome::Done | Outcome::Aborted | Outcome::Restart => ffi::OK as i32,
        Outcome::Failed(status) => status as i32,
    })
}
