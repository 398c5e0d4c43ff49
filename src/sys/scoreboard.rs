//! Apache's scoreboard as JSON (for `mod_wsgi.server_metrics()`): the global record, then every
//! process slot with its worker slots, with mod_wsgi's keys and one-character statuses.

use super::ffi;
use serde_json::{json, Value};

/// mod_wsgi's (and mod_status's) letter for each worker state of scoreboard.h.
const STATUS: &[u8; 11] = b".S_RWKLDCGI";

fn text(chars: &[std::os::raw::c_char]) -> String {
    let bytes: Vec<u8> = chars.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn secs(t: ffi::apr_time_t) -> f64 {
    t as f64 / 1e6
}

/// The scoreboard, or None where this process has none (a daemon process forked before Apache
/// made it).
pub fn json() -> Option<String> {
    unsafe {
        if ffi::ap_exists_scoreboard_image() == 0 {
            return None;
        }
        let global = ffi::ap_get_scoreboard_global().as_ref()?;
        let now = ffi::apr_time_now();
        let mut processes = Vec::new();
        for i in 0..global.server_limit {
            let Some(p) = ffi::ap_get_scoreboard_process(i).as_ref() else { continue };
            let mut workers = Vec::new();
            for j in 0..global.thread_limit {
                let Some(w) = ffi::ap_get_scoreboard_worker_from_indexes(i, j).as_ref() else { continue };
                let status = STATUS.get(w.status as usize).copied().unwrap_or(b'?') as char;
                workers.push(json!({
                    "thread_num": w.thread_num,
                    "generation": w.generation,
                    "status": status.to_string(),
                    "access_count": w.access_count,
                    "bytes_served": w.bytes_served,
                    "start_time": secs(w.start_time),
                    "stop_time": secs(w.stop_time),
                    "last_used": secs(w.last_used),
                    "client": text(&w.client),
                    "request": text(&w.request),
                    "vhost": text(&w.vhost),
                }));
            }
            processes.push(json!({
                "process_num": i,
                "pid": p.pid,
                "generation": p.generation,
                "quiescing": p.quiescing != 0,
                "workers": workers,
            }));
        }
        let v: Value = json!({
            "server_limit": global.server_limit,
            "thread_limit": global.thread_limit,
            "running_generation": global.running_generation,
            "restart_time": secs(global.restart_time),
            "current_time": secs(now),
            "running_time": ((now - global.restart_time) / 1_000_000).max(0),
            "processes": processes,
        });
        Some(v.to_string())
    }
}
