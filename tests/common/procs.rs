//! Process bookkeeping from /proc: who is whose child, is a pid still alive.
//! Never matches processes by name.

use std::fs;

/// The fields of /proc/<pid>/stat the harness needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    pub comm: String,
    /// R, S, D, Z (zombie), X (dead), ...
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    /// Start time in clock ticks since boot: (pid, starttime) names a process even if the pid
    /// is later reused.
    pub starttime: u64,
}

pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

pub fn parse_stat(text: &str) -> Option<ProcStat> {
    // "pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
    //  stime cutime cstime priority nice num_threads itrealvalue starttime ..."
    // comm may contain spaces and parentheses: it ends at the last ')'.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let comm = text[open + 1..close].to_string();
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    Some(ProcStat {
        pid,
        comm,
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        pgrp: rest.get(2)?.parse().ok()?,
        starttime: rest.get(19)?.parse().ok()?,
    })
}

/// Every process currently in /proc.
pub fn all_procs() -> Vec<ProcStat> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(proc_stat)
        .collect()
}

/// All descendants of `pid` (children, grandchildren, ...), zombies included, by following
/// ppid links in /proc. Does not include `pid` itself.
pub fn descendants(pid: u32) -> Vec<ProcStat> {
    let procs = all_procs();
    let mut out: Vec<ProcStat> = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for st in procs.iter().filter(|s| s.ppid == p) {
            if !out.iter().any(|o| o.pid == st.pid) {
                frontier.push(st.pid);
                out.push(st.clone());
            }
        }
    }
    out
}

/// Is this pid a live process (exists and is not a zombie)?
pub fn process_alive(pid: u32) -> bool {
    matches!(proc_stat(pid), Some(st) if st.state != 'Z' && st.state != 'X')
}

/// Is the process that had this (pid, starttime) still alive (not a zombie, pid not reused)?
pub fn same_process_alive(pid: u32, starttime: u64) -> bool {
    matches!(proc_stat(pid), Some(st) if st.starttime == starttime && st.state != 'Z' && st.state != 'X')
}

/// The subset of `pids` that are still alive.
pub fn alive_pids(pids: &[u32]) -> Vec<u32> {
    pids.iter().copied().filter(|&p| process_alive(p)).collect()
}
