//! A daemon process: forked from Apache's parent, it drops privileges, starts Python, and serves
//! requests that Apache's children send over the group's UNIX socket, with the same WSGI adapter
//! as embedded mode.
//!
//! Threads: `threads` workers take events from one epoll set holding the group's listening
//! socket and every idle connection (each armed one-shot, so an event goes to exactly one
//! worker). A worker that gets a connection serves one request on it and hands it back to the
//! set, so Apache can keep connections open across requests without pinning a thread, and a
//! busy process (no worker waiting) leaves new connections in the shared backlog for an idle
//! one. Only one worker sleeps in `epoll_wait` (see [`worker`]). A monitor enforces
//! request-timeout, maximum-requests, inactivity-timeout, restart-interval, deadlock-timeout
//! and parent death; a signal thread turns SIGTERM/SIGINT/SIGHUP/SIGUSR1 (and SIGUSR2,
//! eviction) into an orderly stop.
//!
//! Stopping: a stopping process ends each response with END_CLOSE and closes its idle
//! connections at once. A request Apache had already written into one of them is then unread,
//! so Apache's read fails with ECONNRESET (or its write with EPIPE) before any answer, which
//! tells it the request never ran and may be sent again on a new connection.

mod backend;
mod conn;
mod deadlock;
mod limits;
mod process;
mod serve;
mod service;
mod shared;

use super::dispatch::{Events, LeaderFollowers};
use super::group::Group;
use crate::python::interp::{RuntimeConfig, StartOptions};
use crate::sys::util::{self, log_server};
use shared::{Shared, LISTENER};
use std::collections::{HashMap, HashSet};
use std::os::fd::RawFd;
use std::ptr;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Runs a daemon process; never returns. `server_python_home` is the server's WSGIPythonHome,
/// used when the group has no python-home= (as in mod_wsgi).
pub fn run(group: &Group, index: usize, server_python_home: Option<String>, start: StartOptions) -> ! {
    let parent = unsafe { libc::getppid() };
    unsafe { process::prepare_process(group) };
    // Counted among the group's processes (and threads) from now until it ends.
    crate::metrics::shm::this_process(&group.spec.name, group.spec.threads as u32, crate::python::wsgi::now_micros());
    crate::python::set_server_log(|level, msg| log_server(ptr::null(), level, msg));
    if group.spec.server_metrics {
        crate::python::set_server_metrics_source(crate::sys::scoreboard::json);
    }
    let spec = &group.spec;
    let config = RuntimeConfig {
        python_home: spec.python_home.clone().or(server_python_home),
        python_path: spec.python_path.clone(),
        process_group: spec.name.clone(),
        restrict_signal: false,
        threads_per_process: spec.threads as i64,
        maximum_processes: spec.processes as i64,
        // WSGISwitchInterval is for Apache's children; a daemon takes its own option.
        start: StartOptions { switch_interval: spec.switch_interval, ..start },
        newrelic: spec.newrelic_config_file.clone().map(|f| (f, spec.newrelic_environment.clone())),
    };
    if let Err(e) = crate::python::initialize(config) {
        log_server(ptr::null(), util::LOG_ERR, &format!("oxwsgi: daemon process of group '{}': {e}", spec.name));
        std::thread::sleep(Duration::from_secs(1));
        unsafe { libc::_exit(1) };
    }
    // threads=0 (mod_wsgi-express --service-script): the process runs its scripts and serves
    // no requests.
    let service = spec.threads == 0;
    // WSGIImportScript (and WSGIScriptAlias with process-group= and application-group=):
    // preloaded before the first request is taken; a service group's run in their own thread.
    if !service {
        import_scripts(group);
        // WSGITelemetryService: this process' reporter (before the first request, as in
        // mod_wsgi, which starts none for a service group: it has no requests to report).
        if let Err(e) = crate::telemetry::start(&spec.name, spec.threads as u64, &crate::python::version()) {
            log_server(ptr::null(), util::LOG_WARNING, &format!("oxwsgi: daemon group '{}': {e}", spec.name));
        }
    }
    // Ready: if this process replaces one that restarted for a changed script, the next
    // process of the group may now do the same (see serve::reload_turn).
    if let Some(baton) = crate::metrics::shm::shared().and_then(|r| r.group(&spec.name)) {
        baton.end_reload(index);
    }
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epoll < 0 {
        log_server(ptr::null(), util::LOG_ERR, "oxwsgi: daemon process cannot create its epoll set");
        unsafe { libc::_exit(1) };
    }
    unsafe {
        // Every daemon of the group waits for the shared socket; a non-blocking accept lets the
        // ones that lose the race go back to waiting.
        let flags = libc::fcntl(group.listener, libc::F_GETFL);
        libc::fcntl(group.listener, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let shared = Arc::new(Shared {
        group: group.clone(),
        index,
        parent,
        started: Instant::now(),
        epoll,
        stop: Default::default(),
        busy: AtomicUsize::new(0),
        events: AtomicU64::new(0),
        idle: Mutex::new(HashSet::new()),
        dispatch: LeaderFollowers::new(),
        active: Arc::new(Mutex::new(HashMap::new())),
        next_id: AtomicU64::new(1),
        served: AtomicU64::new(0),
        last_activity: Mutex::new(Instant::now()),
    });
    if service {
        service::start(&shared);
    } else {
        shared.arm(libc::EPOLL_CTL_ADD, group.listener, LISTENER);
    }
    let stack_size = if spec.stack_size > 0 { spec.stack_size as usize } else { 8 << 20 };
    for _ in 0..spec.threads {
        let s = shared.clone();
        std::thread::Builder::new().stack_size(stack_size).spawn(move || worker(&s)).expect("spawn worker thread");
    }
    {
        let s = shared.clone();
        std::thread::spawn(move || process::signals(&s));
    }
    if spec.deadlock_timeout.is_some() {
        deadlock::start();
    }
    log_server(
        ptr::null(),
        util::LOG_INFO,
        &format!(
            "oxwsgi: daemon process {index} of group '{}' ready (pid {}, {} threads)",
            spec.name,
            std::process::id(),
            spec.threads
        ),
    );
    process::monitor(&shared);
}

/// Runs the group's WSGIImportScript scripts, logging what fails.
fn import_scripts(group: &Group) {
    for (script, interpreter) in &group.imports {
        if let Err(e) = crate::python::wsgi::preload(interpreter, std::path::Path::new(script)) {
            util::log_server_lines(ptr::null(), util::LOG_ERR, &e);
        }
    }
}

/// The epoll set as the workers' event source: ready events first, then a bounded wait (so a
/// leader sees a stop within 250 ms).
struct Epoll(RawFd);

impl Events for Epoll {
    fn take_ready(&self) -> Option<u64> {
        self.poll(0)
    }
    fn wait(&self) -> Option<u64> {
        self.poll(250)
    }
}

impl Epoll {
    fn poll(&self, timeout_ms: i32) -> Option<u64> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        (unsafe { libc::epoll_wait(self.0, &mut ev, 1, timeout_ms) } == 1).then_some(ev.u64)
    }
}

/// A worker thread: takes events (see `crate::daemon::dispatch`) and handles each.
fn worker(shared: &Arc<Shared>) {
    let events = Epoll(shared.epoll);
    loop {
        let token = shared.dispatch.next(&events);
        serve::handle_event(shared, token);
    }
}
