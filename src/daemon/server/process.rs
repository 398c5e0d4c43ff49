//! The daemon process's life: resetting what it inherited from Apache's parent and becoming
//! its user, its title in ps, the signal thread, and the monitor that decides when it stops
//! (parent death, request-timeout with every thread's Python stack, startup-timeout,
//! restart-interval, inactivity-timeout, the end of a stop).

use super::shared::{Shared, StopKind};
use crate::daemon::group::{Group, GROUPS};
use crate::daemon::protocol::{self, Frame};
use crate::daemon::stop::Stop;
use crate::python::wsgi;
use crate::sys::util::{self, log_server};
use std::ffi::CString;
use std::io::Write;
use std::ptr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub(super) unsafe fn prepare_process(group: &Group) {
    // Signals: defaults everywhere, SIGPIPE ignored; the stop signals are handled by a thread.
    for sig in 1..32 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2] {
        libc::sigaddset(&mut set, sig);
    }
    libc::pthread_sigmask(libc::SIG_SETMASK, &set, ptr::null_mut());
    // Apache's listening sockets belong to Apache.
    crate::sys::ffi::ap_close_listeners();
    // Other groups' sockets are not ours either.
    for g in GROUPS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        if g.listener != group.listener {
            libc::close(g.listener);
        }
    }
    let spec = &group.spec;
    // As in mod_wsgi: without display-name the daemon keeps the Apache parent's name.
    if let Some(title) = spec.title() {
        set_title(&title);
    }
    if let Some(mask) = spec.umask {
        libc::umask(mask as libc::mode_t);
    }
    if let Some(lang) = &spec.lang {
        std::env::set_var("LANG", lang);
    }
    if let Some(locale) = &spec.locale {
        std::env::set_var("LC_ALL", locale);
        if let Ok(c) = CString::new(locale.as_str()) {
            libc::setlocale(libc::LC_ALL, c.as_ptr());
        }
    }
    // Become the group's user (never root: checked when the group was set up).
    super::limits::apply(spec);
    if libc::geteuid() == 0 {
        let user = CString::new(group.user_name.as_str()).unwrap_or_default();
        let extra = match super::limits::supplementary_gids(spec) {
            Ok(g) => g,
            Err(e) => {
                log_server(ptr::null(), util::LOG_EMERG, &format!("oxwsgi: daemon group '{}': {e}", spec.name));
                libc::_exit(1);
            }
        };
        let add_extra = || {
            if extra.is_empty() {
                return true;
            }
            // initgroups set the user's own groups; add the configured ones to them.
            let mut groups = vec![0 as libc::gid_t; 65536];
            let n = libc::getgroups(groups.len() as i32, groups.as_mut_ptr());
            if n < 0 {
                return false;
            }
            groups.truncate(n as usize);
            groups.extend(extra.iter().filter(|g| !groups.contains(g)).copied().collect::<Vec<_>>());
            libc::setgroups(groups.len(), groups.as_ptr()) == 0
        };
        // chroot=: after the groups are looked up (the jail need not have /etc/group), before
        // the last privilege that allows it is gone.
        let jail = || match &spec.chroot {
            None => true,
            Some(root) => {
                let c = CString::new(root.as_str()).unwrap_or_default();
                let ok =
                    libc::chdir(c.as_ptr()) == 0 && libc::chroot(c.as_ptr()) == 0 && libc::chdir(c"/".as_ptr()) == 0;
                if !ok {
                    let e = std::io::Error::last_os_error();
                    log_server(
                        ptr::null(),
                        util::LOG_EMERG,
                        &format!("oxwsgi: daemon group '{}': cannot chroot to '{root}': {e}", spec.name),
                    );
                }
                ok
            }
        };
        if libc::setgid(group.gid) != 0
            || libc::initgroups(user.as_ptr(), group.gid) != 0
            || !add_extra()
            || !jail()
            || libc::setuid(group.uid) != 0
        {
            log_server(
                ptr::null(),
                util::LOG_EMERG,
                &format!("oxwsgi: daemon group '{}': cannot switch to uid {} gid {}", spec.name, group.uid, group.gid),
            );
            libc::_exit(1);
        }
    }
    // Changing credentials clears the parent-death signal: set it now.
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    // As in mod_wsgi: HOME is the user's home directory; the working directory changes only
    // when home= says so.
    let pw = libc::getpwuid(group.uid);
    if !pw.is_null() {
        if let Some(dir) = util::cstr((*pw).pw_dir) {
            std::env::set_var("HOME", dir);
        }
    }
    if let Some(home) = &spec.home {
        let _ = std::env::set_current_dir(home);
    }
}

/// Shows `title` as this process's command line in ps: the kernel reports the memory that held
/// the original argv, so it is overwritten in place (its length is what /proc says it is).
pub(super) unsafe fn set_title(title: &str) {
    let process = (*crate::sys::ffi::ap_server_conf).process;
    let room = std::fs::read("/proc/self/cmdline").map(|c| c.len()).unwrap_or(0);
    if process.is_null() || (*process).argc < 1 || room == 0 {
        return;
    }
    let start = *(*process).argv as *mut u8;
    let bytes = title.as_bytes();
    ptr::write_bytes(start, 0, room);
    ptr::copy_nonoverlapping(bytes.as_ptr(), start, bytes.len().min(room - 1));
    if let Ok(c) = CString::new(&bytes[..bytes.len().min(15)]) {
        libc::prctl(libc::PR_SET_NAME, c.as_ptr());
    }
}

pub(super) fn signals(shared: &Shared) {
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2] {
            libc::sigaddset(&mut set, sig);
        }
    }
    loop {
        let mut sig = 0;
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            continue;
        }
        if sig == libc::SIGHUP || sig == libc::SIGUSR2 {
            // mod_wsgi 6: for the application (mod_wsgi.subscribe_signals), not a stop.
            let name = if sig == libc::SIGHUP { "SIGHUP" } else { "SIGUSR2" };
            crate::python::events::process_signal(name, sig);
        } else if let (libc::SIGUSR1, Some(grace)) = (sig, shared.group.spec.eviction_timeout) {
            // Eviction (mod_wsgi): with eviction-timeout, SIGUSR1 (a graceful restart, or one
            // sent to this process alone) gives it that long to finish its requests.
            shared.begin_stop(StopKind::Graceful, "eviction_signal", grace, "evicted (SIGUSR1 with eviction-timeout)");
        } else if sig == libc::SIGUSR1 {
            // Apache's graceful restart: the next generation takes over the socket at once.
            shared.begin_stop(StopKind::Graceful, "graceful_signal", shared.graceful(), "graceful restart requested");
        } else {
            shared.begin_stop(
                StopKind::Drain,
                "shutdown_signal",
                shared.group.spec.shutdown_timeout,
                "Apache is stopping or restarting",
            );
        }
    }
}

/// A rolling reload: when another process of the group found its WSGI script changed, this
/// one (started before that) restarts too, once no other process is being replaced, so the
/// group's processes restart one at a time and all of them load the new code.
fn reload_turn(shared: &Shared) {
    if shared.stopping() {
        return;
    }
    let Some(baton) = crate::metrics::shm::shared().and_then(|r| r.group(&shared.group.spec.name)) else { return };
    let now = wsgi::now_micros();
    let started = now.saturating_sub(shared.started.elapsed().as_micros() as u64);
    if baton.reload_pending(started) && baton.try_begin_reload(shared.index, now) {
        shared.begin_stop(
            StopKind::Replace,
            "script_reload",
            shared.graceful(),
            "the WSGI script changed (found by another process of the group): restarting to load it",
        );
    }
}

pub(super) fn monitor(shared: &Shared) -> ! {
    let spec = &shared.group.spec;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if unsafe { libc::getppid() } != shared.parent {
            log_server(
                ptr::null(),
                util::LOG_ERR,
                &format!("oxwsgi: daemon group '{}': Apache's parent is gone; exiting", spec.name),
            );
            unsafe { libc::_exit(0) };
        }
        if let Some(limit) = spec.request_timeout {
            check_request_timeouts(shared, limit);
        }
        // startup-timeout: a script that failed to load, and has not loaded since, gets a fresh
        // process (state an import left behind may be what keeps it failing), as in mod_wsgi.
        if let Some(t) = spec.startup_timeout {
            let loads = &wsgi::SCRIPT_LOADS;
            let failed_at = loads.first_failure.load(Ordering::Relaxed);
            if !loads.loaded.load(Ordering::Relaxed)
                && failed_at != 0
                && wsgi::now_micros().saturating_sub(failed_at) >= t.as_micros() as u64
            {
                shared.begin_stop(
                    StopKind::Replace,
                    "startup_timeout",
                    shared.graceful(),
                    &format!("startup-timeout ({}s): the WSGI script has not loaded", t.as_secs()),
                );
            }
        }
        reload_turn(shared);
        if let Some(t) = spec.deadlock_timeout {
            super::deadlock::check(shared, t);
        }
        if let Some(t) = spec.restart_interval {
            if shared.started.elapsed() >= t {
                shared.begin_stop(
                    StopKind::Replace,
                    "restart_interval",
                    shared.graceful(),
                    &format!("restart-interval ({}s) reached", t.as_secs()),
                );
            }
        }
        // Armed by the first request: a fresh process has no application memory to give back,
        // and restarting it would only repeat its start-up every `t` while the group is idle.
        if let (Some(t), true) = (spec.inactivity_timeout, shared.served.load(Ordering::SeqCst) > 0) {
            let idle = {
                let active = shared.active.lock().unwrap();
                active.is_empty() && shared.busy.load(Ordering::SeqCst) == 0
            };
            if idle && shared.last_activity.lock().unwrap().elapsed() >= t {
                shared.begin_stop(
                    StopKind::Replace,
                    "inactivity_timeout",
                    Duration::ZERO,
                    &format!("inactivity-timeout ({}s) reached", t.as_secs()),
                );
            }
        }
        if shared.stopping() {
            shared.close_idle();
            let done = shared.finished();
            let Stop::Stopping { reason, deadline, .. } = shared.stop.get() else { continue };
            let late = Instant::now() >= deadline;
            if done || late {
                if late && !done {
                    log_server(ptr::null(), util::LOG_WARNING, &format!(
                        "oxwsgi: daemon group '{}': requests still running at the shutdown deadline; exiting anyway", spec.name));
                }
                crate::python::events::process_stopping_within(reason, Duration::from_secs(5));
                crate::telemetry::stop(reason, shared.busy.load(Ordering::SeqCst) as u64);
                unsafe { libc::_exit(0) };
            }
        }
    }
}

/// A request past request-timeout is answered 504 (or aborted if its response had started),
/// every thread's Python stack is logged, and the process restarts.
pub(super) fn check_request_timeouts(shared: &Shared, limit: Duration) {
    let spec = &shared.group.spec;
    let mut overdue = Vec::new();
    let mut interrupt = Vec::new();
    {
        let mut active = shared.active.lock().unwrap();
        for (id, a) in active.iter_mut() {
            if a.timed_out || a.started.elapsed() <= limit {
                continue;
            }
            match (spec.interrupt_timeout, a.interrupted) {
                // interrupt-timeout: first raise mod_wsgi.RequestTimeout in the request's thread.
                (Some(_), None) => {
                    a.interrupted = Some(Instant::now());
                    interrupt.push((*id, a.uri.clone(), a.application_group.clone(), a.thread));
                }
                // It did not unwind in time (blocked outside Python, or it swallowed the
                // exception): the process restarts, as without interrupt-timeout.
                (Some(grace), Some(at)) if at.elapsed() < grace => {}
                _ => {
                    a.timed_out = true;
                    overdue.push((a.uri.clone(), a.writer.clone(), a.started.elapsed()));
                }
            }
        }
    }
    for (id, uri, application_group, thread) in interrupt {
        log_server(ptr::null(), util::LOG_ERR, &format!(
            "oxwsgi: request-timeout ({}s) exceeded by request '{uri}' in daemon process {} of group '{}' (pid {}); interrupting it with mod_wsgi.RequestTimeout (interrupt-timeout {}s)",
            limit.as_secs(), shared.index, spec.name, std::process::id(), spec.interrupt_timeout.unwrap_or_default().as_secs()));
        // Raising it needs the interpreter's GIL, which a stuck thread may hold: not on the
        // monitor's thread (deadlock-timeout handles a GIL that is never given up).
        // It is raised only if that request still runs: checked under the map's lock, which
        // the request's thread takes to leave it before it can start another one.
        let shared_active = shared.active.clone();
        let group = spec.name.clone();
        std::thread::spawn(move || {
            let stack = crate::python::interrupt::interrupt(&application_group, thread, |raise| {
                let active = shared_active.lock().unwrap();
                active.get(&id).is_some_and(|a| a.thread == thread) && raise()
            });
            // mod_wsgi 6's lines: the stack where it was interrupted, then that it was.
            if let Some(stack) = stack {
                util::log_server_lines(ptr::null(), util::LOG_INFO, &stack);
                log_server(
                    ptr::null(),
                    util::LOG_INFO,
                    &format!("Injected RequestTimeout into thread {thread} of daemon process '{group}'."),
                );
            }
        });
    }
    if overdue.is_empty() {
        return;
    }
    for (uri, writer, ran) in &overdue {
        log_server(ptr::null(), util::LOG_ERR, &format!(
            "oxwsgi: request-timeout ({}s) exceeded by request '{uri}' after {:.1}s in daemon process {} of group '{}' (pid {}); answering 504 and restarting the process",
            limit.as_secs(), ran.as_secs_f64(), shared.index, spec.name, std::process::id()));
        let mut st = writer.state.lock().unwrap();
        let frame =
            if st.started { Frame::abort("request-timeout") } else { Frame::error(504, "request-timeout exceeded") };
        let mut buf = Vec::new();
        if !st.greeted {
            // HELLO_OK waits in the worker's output buffer until its first flush: Apache
            // expects it before anything else.
            let _ = protocol::encode_frame(&Frame::HelloOk { pid: std::process::id() }, &mut buf);
        }
        let _ = protocol::encode_frame(&frame, &mut buf);
        let _ = st.stream.write_all(&buf);
        let _ = st.stream.shutdown(std::net::Shutdown::Write);
        st.taken_over = true;
    }
    shared.begin_stop(
        StopKind::Abandon,
        "request_timeout",
        shared.graceful().min(Duration::from_secs(5)),
        "request-timeout exceeded",
    );
    // The stacks need the GIL, which the stuck request may never give up: take them on another
    // thread and wait a little, so the monitor itself can never hang.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(crate::python::stacks::all_threads());
    });
    let stacks = rx
        .recv_timeout(Duration::from_secs(2))
        .unwrap_or_else(|_| "(Python stacks unavailable: a thread holds the GIL)".to_string());
    util::log_server_lines(ptr::null(), util::LOG_ERR, &stacks);
}
