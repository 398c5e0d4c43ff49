//! Apache's parent process side of daemon mode: one listening socket per process group, the
//! daemon processes forked from the parent, and their supervision through APR's "other child"
//! registry (the MPM tells us when one dies; we start a new one at once).
//!
//! Each group's listening socket is created once per Apache parent and kept across graceful
//! restarts (it is remembered in the process pool, which outlives module reloads). Old daemons
//! stop accepting and finish what they have; the new generation accepts from the same backlog,
//! so no connection is refused while daemons are replaced.

use crate::apache::conf::server_conf;
use crate::config::DaemonProcess;
use crate::daemon::group::{Group, GROUPS};
use crate::sys::util::{self, log_server};
use crate::sys::{ffi, identity};
use std::ffi::{c_void, CStr, CString};
use std::os::fd::RawFd;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One supervised daemon process.
struct Slot {
    group: Arc<Group>,
    index: usize,
    proc_: ffi::apr_proc_t,
    started: Instant,
    pool: *mut ffi::apr_pool_t,
    /// Set before we unregister the slot ourselves, so the UNREGISTER callback that APR makes
    /// during unregistration leaves the slot alone.
    detached: bool,
}

/// Supervisor state that must outlive the module: Apache unloads and reloads its modules at
/// every restart, which resets statics. Allocated once per Apache parent and found again
/// through the process pool (under a key naming this build's layout).
struct Persistent {
    /// Daemons told to stop (of any generation) that have not been seen to exit: (pid,
    /// group, shutdown-timeout). Each new generation takes them over as "retired" other
    /// children, so the MPM hands their deaths to us instead of warning about a "long lost
    /// child"; when Apache exits they are waited for (bounded) like the last generation's.
    stopping: Mutex<Vec<(i32, String, Duration)>>,
    /// How watched daemons ended (see `exit_status`).
    deaths: exit_status::Table,
}

impl Persistent {
    const fn new() -> Self {
        Persistent { stopping: Mutex::new(Vec::new()), deaths: exit_status::Table::new() }
    }
}

static PERSISTENT: AtomicPtr<Persistent> = AtomicPtr::new(ptr::null_mut());
/// Used only if something runs before post_config found the real one.
static FALLBACK: Persistent = Persistent::new();

fn persistent() -> &'static Persistent {
    let p = PERSISTENT.load(Ordering::SeqCst);
    if p.is_null() {
        &FALLBACK
    } else {
        unsafe { &*p }
    }
}

/// Finds (or, in a new Apache parent, creates) the persistent state.
unsafe fn attach_persistent(process_pool: *mut ffi::apr_pool_t) {
    let key =
        CString::new(format!("oxwsgi-supervisor-{}-{}", env!("CARGO_PKG_VERSION"), std::mem::size_of::<Persistent>()))
            .expect("no NUL");
    let mut data: *mut c_void = ptr::null_mut();
    ffi::apr_pool_userdata_get(&mut data, key.as_ptr(), process_pool);
    if data.is_null() {
        data = Box::into_raw(Box::new(Persistent::new())) as *mut c_void;
        ffi::apr_pool_userdata_set(data, key.as_ptr(), None, process_pool);
    }
    PERSISTENT.store(data as *mut Persistent, Ordering::SeqCst);
}

fn stopping() -> std::sync::MutexGuard<'static, Vec<(i32, String, Duration)>> {
    persistent().stopping.lock().unwrap_or_else(|e| e.into_inner())
}

/// An older generation's daemon, finishing its requests after a restart.
struct Retired {
    proc_: ffi::apr_proc_t,
    group: String,
    detached: bool,
}

fn state(what: u32) -> i32 {
    unsafe { ffi::ap_state_query(what as i32) }
}

/// post_config: create the sockets and start the daemon processes of every group.
///
/// # Safety
/// Called by Apache only, in its parent process, with its configuration pool and server.
pub unsafe extern "C" fn post_config(
    pconf: *mut ffi::apr_pool_t,
    _plog: *mut ffi::apr_pool_t,
    _ptemp: *mut ffi::apr_pool_t,
    s: *mut ffi::server_rec,
) -> i32 {
    util::guard("post_config", ffi::HTTP_INTERNAL_SERVER_ERROR as i32, || start_groups(pconf, s))
}

unsafe fn start_groups(pconf: *mut ffi::apr_pool_t, s: *mut ffi::server_rec) -> i32 {
    // Apache reads its configuration twice at start-up; only the second pass runs servers.
    if state(ffi::AP_SQ_MAIN_STATE) == ffi::AP_SQ_MS_CREATE_PRE_CONFIG as i32
        || state(ffi::AP_SQ_RUN_MODE) != ffi::AP_SQ_RM_NORMAL as i32
    {
        return ffi::OK as i32;
    }
    let mut specs: Vec<(DaemonProcess, Option<String>)> = Vec::new();
    let mut server = s;
    while !server.is_null() {
        let scope =
            ((*server).is_virtual != 0).then(|| util::cstr((*server).server_hostname).unwrap_or("").to_string());
        for (d, _) in &server_conf(server).daemons {
            if !specs.iter().any(|(x, _)| x.name == d.name) {
                specs.push((d.clone(), scope.clone()));
            }
        }
        server = (*server).next;
    }
    attach_persistent((*(*s).process).pool);
    apr_cleanup(pconf, ptr::null_mut(), on_config_destroyed);
    adopt_retired(pconf);
    // Only where there are daemons to watch: embedded-only servers keep SIGCHLD untouched.
    if !specs.is_empty() || !stopping().is_empty() {
        exit_status::install();
    }
    if specs.is_empty() {
        GROUPS.lock().unwrap_or_else(|e| e.into_inner()).clear();
        return ffi::OK as i32;
    }
    let process_pool = (*(*s).process).pool;
    let secret = persistent_secret(process_pool);
    let prefix = match &server_conf(s).socket_prefix {
        Some(p) => p.clone(),
        None => util::cstr(ffi::ap_runtime_dir_relative(pconf, c"wsgi".as_ptr())).unwrap_or("/tmp/wsgi").to_string(),
    };
    let mut groups = Vec::new();
    for (spec, scope) in specs {
        let (uid, gid, user_name) = match credentials(&spec) {
            Ok(c) => c,
            Err(e) => {
                log_server(s, util::LOG_EMERG, &format!("WSGIDaemonProcess {}: {e}", spec.name));
                return ffi::HTTP_INTERNAL_SERVER_ERROR as i32;
            }
        };
        let socket_path = format!("{prefix}.{}.{}.sock", std::process::id(), spec.name);
        let owner = match &spec.socket_user {
            Some(u) => match identity::user_or_id(u) {
                Some(user) => user.uid,
                None => {
                    log_server(
                        s,
                        util::LOG_EMERG,
                        &format!("WSGIDaemonProcess {}: unknown socket-user '{u}'", spec.name),
                    );
                    return ffi::HTTP_INTERNAL_SERVER_ERROR as i32;
                }
            },
            None => ffi::ap_unixd_config.user_id,
        };
        let listener = match persistent_listener(process_pool, &spec.name, &socket_path, spec.listen_backlog, owner) {
            Ok(fd) => fd,
            Err(e) => {
                log_server(
                    s,
                    util::LOG_EMERG,
                    &format!("WSGIDaemonProcess {}: cannot listen on {socket_path}: {e}", spec.name),
                );
                return ffi::HTTP_INTERNAL_SERVER_ERROR as i32;
            }
        };
        // send-buffer-size= / receive-buffer-size=: accepted connections inherit them.
        for (size, opt) in [(spec.send_buffer_size, libc::SO_SNDBUF), (spec.receive_buffer_size, libc::SO_RCVBUF)] {
            if size > 0 {
                let v = size as libc::c_int;
                let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
                libc::setsockopt(listener, libc::SOL_SOCKET, opt, &v as *const _ as *const c_void, len);
            }
        }
        let imports = super::handler_script::for_group(&spec.name);
        let script_owner = super::script_owner::resolve(&spec);
        groups.push(Arc::new(Group {
            spec,
            scope,
            socket_path,
            listener,
            secret,
            uid,
            gid,
            user_name,
            imports,
            script_owner,
        }));
    }
    *GROUPS.lock().unwrap_or_else(|e| e.into_inner()) = groups.clone();
    for group in &groups {
        for index in 0..group.spec.processes as usize {
            spawn(pconf, group.clone(), index);
        }
    }
    ffi::OK as i32
}

unsafe fn apr_cleanup(
    pool: *mut ffi::apr_pool_t,
    data: *mut c_void,
    f: unsafe extern "C" fn(*mut c_void) -> ffi::apr_status_t,
) {
    ffi::apr_pool_cleanup_register(pool, data, Some(f), Some(ffi::apr_pool_cleanup_null));
}

/// The configuration is going away (restart or exit). Daemons of this generation were told to
/// stop as their registrations were dropped; on exit, wait for them (bounded) and remove the
/// sockets.
unsafe extern "C" fn on_config_destroyed(_data: *mut c_void) -> ffi::apr_status_t {
    // The module may be unloaded and loaded again at another address: no handler may point
    // into it meanwhile.
    exit_status::uninstall();
    let exiting = state(ffi::AP_SQ_MAIN_STATE) == ffi::AP_SQ_MS_EXITING as i32;
    if !exiting {
        return 0;
    }
    let stopping: Vec<(i32, String, Duration)> = std::mem::take(&mut *stopping());
    let deadline =
        Instant::now() + stopping.iter().map(|(_, _, t)| *t).max().unwrap_or_default() + Duration::from_millis(500);
    let mut alive: Vec<i32> = stopping.iter().map(|(p, _, _)| *p).collect();
    while !alive.is_empty() && Instant::now() < deadline {
        alive.retain(|&pid| libc::waitpid(pid, ptr::null_mut(), libc::WNOHANG) == 0);
        std::thread::sleep(Duration::from_millis(20));
    }
    for pid in alive {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, ptr::null_mut(), 0);
    }
    for g in GROUPS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        libc::close(g.listener);
        let _ = std::fs::remove_file(&g.socket_path);
    }
    0
}

unsafe fn spawn(pconf: *mut ffi::apr_pool_t, group: Arc<Group>, index: usize) {
    let pid = libc::fork();
    if pid < 0 {
        log_server(
            ptr::null(),
            util::LOG_ERR,
            &format!("oxwsgi: cannot fork daemon process for group '{}'", group.spec.name),
        );
        return;
    }
    if pid == 0 {
        crate::daemon::server::run(&group, index, server_python_home(), super::python_start::start_options());
    }
    exit_status::watch(pid);
    log_server(
        ptr::null(),
        util::LOG_INFO,
        &format!("oxwsgi: started daemon process {index} of group '{}' (pid {pid})", group.spec.name),
    );
    let slot = Box::into_raw(Box::new(Slot {
        group,
        index,
        proc_: ffi::apr_proc_t { pid, in_: ptr::null_mut(), out: ptr::null_mut(), err: ptr::null_mut() },
        started: Instant::now(),
        pool: pconf,
        detached: false,
    }));
    ffi::apr_proc_other_child_register(
        &mut (*slot).proc_,
        Some(maintenance),
        slot as *mut c_void,
        ptr::null_mut(),
        pconf,
    );
}

/// The main server's WSGIPythonHome, which a group without python-home= runs.
fn server_python_home() -> Option<String> {
    server_conf(unsafe { ffi::ap_server_conf }).python_home.as_ref().map(|(h, _)| h.clone())
}

/// Called by the MPM (through APR) about one daemon process.
unsafe extern "C" fn maintenance(reason: i32, data: *mut c_void, status: i32) {
    util::guard("supervise", (), || supervise(reason, data, status))
}

unsafe fn supervise(reason: i32, data: *mut c_void, status: i32) {
    let slot = data as *mut Slot;
    if (*slot).detached {
        return;
    }
    let group = Arc::clone(&(&*slot).group);
    let (name, pid, index) = (group.spec.name.clone(), (*slot).proc_.pid, (*slot).index);
    match reason as u32 {
        ffi::APR_OC_REASON_DEATH | ffi::APR_OC_REASON_LOST => {
            // `status` is what apr_proc_wait_all_procs made of the wait status: the exit code
            // or the signal number, without saying which. The SIGCHLD handler may have seen it.
            let seen = exit_status::take(pid);
            let (how, clean) = if reason as u32 == ffi::APR_OC_REASON_LOST {
                ("was lost".to_string(), false)
            } else {
                match seen {
                    Some(exit_status::Ended::Exited(code)) => (format!("exited with status {code}"), code == 0),
                    Some(exit_status::Ended::Killed(sig)) => (format!("was killed by signal {sig}"), false),
                    Some(exit_status::Ended::Dumped(sig)) => {
                        (format!("was killed by signal {sig} (core dumped)"), false)
                    }
                    None => (format!("ended with exit status or signal {status}"), status == 0),
                }
            };
            log_server(
                ptr::null(),
                if clean { util::LOG_INFO } else { util::LOG_ERR },
                &format!(
                    "oxwsgi: daemon process {index} of group '{name}' (pid {pid}) {how} after {:.1}s; starting a new one",
                    (*slot).started.elapsed().as_secs_f64()
                ),
            );
            (*slot).detached = true;
            ffi::apr_proc_other_child_unregister(data);
            // A daemon that ended without having begun to stop crashed (whatever its status).
            if let Some(region) = crate::metrics::shm::region() {
                let stopping = region.end(pid as u32).is_some_and(|(_, stopping)| stopping);
                if !stopping {
                    region.record_restart(&name, "crash");
                }
            }
            let slot = Box::from_raw(slot);
            if state(ffi::AP_SQ_MAIN_STATE) == ffi::AP_SQ_MS_EXITING as i32 {
                return;
            }
            // A daemon that dies as soon as it starts (a broken python-home, an application
            // that kills its process at import) is restarted at most once a second.
            let lived = slot.started.elapsed();
            if lived < Duration::from_secs(1) {
                std::thread::sleep(Duration::from_secs(1) - lived);
            }
            spawn(slot.pool, slot.group.clone(), index);
        }
        ffi::APR_OC_REASON_RESTART | ffi::APR_OC_REASON_UNREGISTER => {
            // Apache restarts or stops: this generation's daemons finish what they have and exit.
            // (Still watched: its end is logged once the next generation has adopted it.)
            // A graceful restart unregisters through the pool cleanup and starts the next
            // generation at once, which takes over the socket: SIGUSR1, stop accepting. A full
            // restart or a stop first reclaims every child (RESTART), starting nothing until
            // Apache's children are gone, which may wait on requests already sent: SIGTERM,
            // answer everything sent so far.
            let graceful = reason as u32 == ffi::APR_OC_REASON_UNREGISTER
                && state(ffi::AP_SQ_MAIN_STATE) != ffi::AP_SQ_MS_EXITING as i32;
            libc::kill(pid, if graceful { libc::SIGUSR1 } else { libc::SIGTERM });
            stopping().push((pid, name.clone(), group.spec.shutdown_timeout));
            (*slot).detached = true;
            if reason as u32 == ffi::APR_OC_REASON_RESTART {
                ffi::apr_proc_other_child_unregister(data);
            }
            drop(Box::from_raw(slot));
        }
        _ => {}
    }
}

/// Registers the daemons still stopping from earlier generations with this configuration's pool.
unsafe fn adopt_retired(pconf: *mut ffi::apr_pool_t) {
    let mut stopping = stopping();
    stopping.retain(|(pid, _, _)| {
        // Alive or an unreaped zombie: still ours to hear about. Gone: reaped meanwhile.
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let ours =
            libc::waitid(libc::P_PID, *pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT)
                == 0;
        if !ours {
            exit_status::take(*pid);
        }
        ours
    });
    for (pid, group, _) in stopping.iter() {
        let retired = Box::into_raw(Box::new(Retired {
            proc_: ffi::apr_proc_t { pid: *pid, in_: ptr::null_mut(), out: ptr::null_mut(), err: ptr::null_mut() },
            group: group.clone(),
            detached: false,
        }));
        ffi::apr_proc_other_child_register(
            &mut (*retired).proc_,
            Some(retired_maintenance),
            retired as *mut c_void,
            ptr::null_mut(),
            pconf,
        );
    }
}

unsafe extern "C" fn retired_maintenance(reason: i32, data: *mut c_void, _status: i32) {
    let retired = data as *mut Retired;
    if (*retired).detached {
        return;
    }
    let pid = (*retired).proc_.pid;
    match reason as u32 {
        ffi::APR_OC_REASON_DEATH | ffi::APR_OC_REASON_LOST => {
            let how = match exit_status::take(pid) {
                Some(exit_status::Ended::Exited(code)) => format!("exited with status {code}"),
                Some(exit_status::Ended::Killed(sig) | exit_status::Ended::Dumped(sig)) => {
                    format!("was killed by signal {sig}")
                }
                None => "exited".to_string(),
            };
            log_server(
                ptr::null(),
                util::LOG_INFO,
                &format!("oxwsgi: retired daemon process of group '{}' (pid {pid}) {how}", (*retired).group),
            );
            stopping().retain(|(p, _, _)| *p != pid);
            if let Some(region) = crate::metrics::shm::region() {
                region.end(pid as u32);
            }
            (*retired).detached = true;
            ffi::apr_proc_other_child_unregister(data);
            drop(Box::from_raw(retired));
        }
        ffi::APR_OC_REASON_RESTART | ffi::APR_OC_REASON_UNREGISTER => {
            // Another restart or the exit: it stays in STOPPING for the next owner.
            (*retired).detached = true;
            if reason as u32 == ffi::APR_OC_REASON_RESTART {
                ffi::apr_proc_other_child_unregister(data);
            }
            drop(Box::from_raw(retired));
        }
        _ => {}
    }
}

/// 16 random bytes shared by Apache's children and the daemons, stable for the life of the
/// Apache parent (so daemons of an older generation still accept its children).
unsafe fn persistent_secret(pool: *mut ffi::apr_pool_t) -> [u8; 16] {
    const KEY: &CStr = c"oxwsgi-daemon-secret";
    let mut data: *mut c_void = ptr::null_mut();
    ffi::apr_pool_userdata_get(&mut data, KEY.as_ptr(), pool);
    if data.is_null() {
        data = ffi::apr_palloc(pool, 16);
        let mut buf = [0u8; 16];
        if ffi::apr_generate_random_bytes(buf.as_mut_ptr(), 16) != 0 {
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
            buf.copy_from_slice(&(t ^ ((std::process::id() as u128) << 64)).to_le_bytes());
        }
        ptr::copy_nonoverlapping(buf.as_ptr(), data as *mut u8, 16);
        ffi::apr_pool_userdata_set(data, KEY.as_ptr(), None, pool);
    }
    let mut out = [0u8; 16];
    ptr::copy_nonoverlapping(data as *const u8, out.as_mut_ptr(), 16);
    out
}

/// The listening socket of a group, created once per Apache parent and reused by every
/// generation (its descriptor is remembered in the process pool).
unsafe fn persistent_listener(
    pool: *mut ffi::apr_pool_t,
    name: &str,
    path: &str,
    backlog: u32,
    owner: u32,
) -> std::io::Result<RawFd> {
    let key = CString::new(format!("oxwsgi-listener-{name}")).expect("no NUL");
    let mut data: *mut c_void = ptr::null_mut();
    ffi::apr_pool_userdata_get(&mut data, key.as_ptr(), pool);
    if !data.is_null() {
        let fd = *(data as *const i32);
        if fd >= 0 && libc::fcntl(fd, libc::F_GETFD) >= 0 && std::path::Path::new(path).exists() {
            return Ok(fd);
        }
    }
    let _ = std::fs::remove_file(path);
    let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut addr: libc::sockaddr_un = std::mem::zeroed();
    addr.sun_family = libc::AF_UNIX as u16;
    if path.len() >= addr.sun_path.len() {
        libc::close(fd);
        return Err(std::io::Error::other("socket path too long; set a shorter WSGISocketPrefix"));
    }
    for (i, b) in path.bytes().enumerate() {
        addr.sun_path[i] = b as libc::c_char;
    }
    let fail = |fd| {
        let e = std::io::Error::last_os_error();
        libc::close(fd);
        Err(e)
    };
    // Only Apache's user may connect: the socket is created 0600 and owned by it.
    let old = libc::umask(0o177);
    let r = libc::bind(fd, &addr as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_un>() as u32);
    libc::umask(old);
    if r != 0 {
        return fail(fd);
    }
    let cpath = CString::new(path).expect("no NUL");
    if libc::chown(cpath.as_ptr(), owner, u32::MAX) != 0 || libc::listen(fd, backlog.max(1) as i32) != 0 {
        return fail(fd);
    }
    let slot = ffi::apr_palloc(pool, std::mem::size_of::<i32>()) as *mut i32;
    *slot = fd;
    ffi::apr_pool_userdata_set(slot as *const c_void, key.as_ptr(), None, pool);
    Ok(fd)
}

/// The user and group a group's daemons run as: its user=/group= options, else Apache's.
unsafe fn credentials(spec: &DaemonProcess) -> Result<(u32, u32, String), String> {
    let (uid, user_gid, user_name) = match &spec.user {
        Some(u) => {
            let user = identity::user_or_id(u).ok_or_else(|| format!("unknown user '{u}'"))?;
            (user.uid, user.gid, u.clone())
        }
        None => (
            ffi::ap_unixd_config.user_id,
            ffi::ap_unixd_config.group_id,
            util::cstr(ffi::ap_unixd_config.user_name).unwrap_or("www-data").to_string(),
        ),
    };
    let gid = match (&spec.group, &spec.user) {
        (Some(g), _) => identity::group_or_id(g).ok_or_else(|| format!("unknown group '{g}'"))?,
        (None, Some(_)) => user_gid,
        (None, None) => ffi::ap_unixd_config.group_id,
    };
    if uid == 0 || gid == 0 {
        return Err("daemon processes may not run as root (set User/Group or user=/group=)".to_string());
    }
    Ok((uid, gid, user_name))
}

/// How daemon processes ended, for the log. The MPM reaps every child of Apache's parent and
/// hands the supervisor only a number that is either an exit code or a signal number. So a
/// SIGCHLD handler in the parent looks at each watched daemon that has ended, with
/// `waitid(WNOWAIT)` (which leaves it for the MPM to reap), and records how it ended.
mod exit_status {
    use std::sync::atomic::{AtomicI32, Ordering};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Ended {
        Exited(i32),
        Killed(i32),
        Dumped(i32),
    }

    const SLOTS: usize = 256;
    const EXITED: i32 = 1 << 8;
    const KILLED: i32 = 2 << 8;
    const DUMPED: i32 = 3 << 8;

    struct Slot {
        pid: AtomicI32,
        how: AtomicI32,
    }

    /// Watched pids and how they ended; lives in the supervisor's persistent state.
    pub struct Table([Slot; SLOTS]);

    impl Table {
        pub const fn new() -> Table {
            #[allow(clippy::declare_interior_mutable_const)]
            const EMPTY: Slot = Slot { pid: AtomicI32::new(0), how: AtomicI32::new(0) };
            Table([EMPTY; SLOTS])
        }
    }

    fn slots() -> &'static [Slot; SLOTS] {
        &super::persistent().deaths.0
    }

    /// Remember `pid` (a daemon just forked). Without a free slot its end is reported vaguely.
    pub fn watch(pid: i32) {
        for slot in slots().iter() {
            if slot.pid.load(Ordering::SeqCst) == pid {
                slot.how.store(0, Ordering::SeqCst);
                return;
            }
        }
        for slot in slots().iter() {
            if slot.pid.load(Ordering::SeqCst) == 0 {
                slot.how.store(0, Ordering::SeqCst);
                if slot.pid.compare_exchange(0, pid, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                    return;
                }
            }
        }
    }

    /// Forget `pid`, returning how it ended if the handler saw it.
    pub fn take(pid: i32) -> Option<Ended> {
        let slot = slots().iter().find(|s| s.pid.load(Ordering::SeqCst) == pid)?;
        // Once more, in case the signal was not handled yet (harmless if already reaped).
        peek(slot);
        let how = slot.how.swap(0, Ordering::SeqCst);
        slot.pid.store(0, Ordering::SeqCst);
        match how & !0xff {
            EXITED => Some(Ended::Exited(how & 0xff)),
            KILLED => Some(Ended::Killed(how & 0xff)),
            DUMPED => Some(Ended::Dumped(how & 0xff)),
            _ => None,
        }
    }

    /// Async-signal-safe: waitid and atomics only.
    fn peek(slot: &Slot) {
        let pid = slot.pid.load(Ordering::SeqCst);
        if pid <= 0 || slot.how.load(Ordering::SeqCst) != 0 {
            return;
        }
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            if libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) != 0 || info.si_pid() != pid {
                return;
            }
            let value = info.si_status() & 0xff;
            let how = match info.si_code {
                libc::CLD_EXITED => EXITED | value,
                libc::CLD_KILLED => KILLED | value,
                libc::CLD_DUMPED => DUMPED | value,
                _ => return,
            };
            slot.how.store(how, Ordering::SeqCst);
        }
    }

    extern "C" fn on_sigchld(_sig: libc::c_int) {
        unsafe {
            let errno = *libc::__errno_location();
            for slot in slots().iter() {
                peek(slot);
            }
            *libc::__errno_location() = errno;
        }
    }

    /// Sets the SIGCHLD handler (Apache's parent leaves SIGCHLD at its default otherwise), and
    /// looks at every watched daemon once.
    pub fn install() {
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigchld as extern "C" fn(libc::c_int) as usize;
            sa.sa_flags = libc::SA_RESTART | libc::SA_NOCLDSTOP;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut());
        }
        // Daemons that ended while no handler was installed (between two configurations) are
        // still unreaped: the MPM reaps only from its main loop, after post_config.
        on_sigchld(libc::SIGCHLD);
    }

    /// Back to the default, if the handler is ours.
    pub fn uninstall() {
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old) == 0
                && old.sa_sigaction == on_sigchld as extern "C" fn(libc::c_int) as usize
            {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGCHLD, &sa, std::ptr::null_mut());
            }
        }
    }
}
