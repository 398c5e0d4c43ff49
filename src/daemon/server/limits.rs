//! What `WSGIDaemonProcess` options set on the daemon process itself, as mod_wsgi does:
//! `cpu-time-limit` (RLIMIT_CPU: past it the kernel kills the process and the supervisor starts
//! a new one), `memory-limit` (RLIMIT_DATA), `virtual-memory-limit` (RLIMIT_AS), `cpu-priority`
//! (niceness), `supplementary-groups`, and `python-eggs` (`PYTHON_EGG_CACHE`).

use crate::config::DaemonProcess;
use crate::sys::identity;
use crate::sys::util::{self, log_server};
use std::ptr;

/// Resource limits, priority and environment; before Python starts.
pub(super) unsafe fn apply(spec: &DaemonProcess) {
    let limit = |resource, soft: u64, hard: u64, what: &str| {
        let l = libc::rlimit { rlim_cur: soft, rlim_max: hard };
        if libc::setrlimit(resource, &l) != 0 {
            log_server(
                ptr::null(),
                util::LOG_WARNING,
                &format!(
                    "oxwsgi: daemon group '{}': cannot set {what}: {}",
                    spec.name,
                    std::io::Error::last_os_error()
                ),
            );
        }
    };
    if spec.cpu_time_limit > 0 {
        // SIGXCPU at the soft limit, SIGKILL one second later (mod_wsgi's hard limit).
        limit(libc::RLIMIT_CPU, spec.cpu_time_limit, spec.cpu_time_limit + 1, "cpu-time-limit");
    }
    if spec.memory_limit > 0 {
        limit(libc::RLIMIT_DATA, spec.memory_limit, spec.memory_limit, "memory-limit");
    }
    if spec.virtual_memory_limit > 0 {
        limit(libc::RLIMIT_AS, spec.virtual_memory_limit, spec.virtual_memory_limit, "virtual-memory-limit");
    }
    if let Some(nice) = spec.cpu_priority {
        if libc::setpriority(libc::PRIO_PROCESS, 0, nice) != 0 {
            log_server(
                ptr::null(),
                util::LOG_WARNING,
                &format!("oxwsgi: daemon group '{}': cannot set cpu-priority {nice}", spec.name),
            );
        }
    }
    if let Some(dir) = &spec.python_eggs {
        std::env::set_var("PYTHON_EGG_CACHE", dir);
    }
}

/// The gids of `supplementary-groups` (names or `#gid`); an unknown group is an error.
pub(super) fn supplementary_gids(spec: &DaemonProcess) -> Result<Vec<libc::gid_t>, String> {
    spec.supplementary_groups
        .iter()
        .map(|g| identity::group_or_id(g).ok_or_else(|| format!("supplementary-groups: no group named '{g}'")))
        .collect()
}
