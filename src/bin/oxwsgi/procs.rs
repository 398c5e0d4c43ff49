//! Process bookkeeping from /proc: a process tree by ppid links, and signals sent by pid only
//! to processes that are still the ones we saw (same start time). Never by name.

use std::fs;

/// One process as seen in /proc/<pid>/stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// Start time in clock ticks since boot: with the pid, it names a process even after the pid
    /// is reused.
    pub start: u64,
    pub zombie: bool,
}

pub fn stat(pid: u32) -> Option<Proc> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Parses "pid (comm) state ppid pgrp ... starttime(22nd field) ..."; comm may hold spaces and
/// parentheses, so the fields after it are found from the last ')'.
pub fn parse_stat(text: &str) -> Option<Proc> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text[..open].trim().parse().ok()?;
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    Some(Proc {
        pid,
        ppid: rest.get(1)?.parse().ok()?,
        start: rest.get(19)?.parse().ok()?,
        zombie: state == 'Z' || state == 'X',
    })
}

pub fn all() -> Vec<Proc> {
    let Ok(dir) = fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).filter_map(stat).collect()
}

/// Every descendant of `root` (not `root` itself), following ppid links.
pub fn descendants(root: u32) -> Vec<Proc> {
    let procs = all();
    let mut out: Vec<Proc> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in procs.iter().filter(|p| p.ppid == parent && p.pid != root) {
            if !out.iter().any(|o| o.pid == p.pid) {
                frontier.push(p.pid);
                out.push(*p);
            }
        }
    }
    out
}

/// Is the process we saw as `p` still running (not a zombie, pid not reused)?
pub fn alive(p: &Proc) -> bool {
    matches!(stat(p.pid), Some(now) if now.start == p.start && !now.zombie)
}

/// Sends `sig` to `p` if it is still the process we saw.
pub fn signal(p: &Proc, sig: libc::c_int) {
    if alive(p) {
        // SAFETY: plain kill(2) on a pid we just checked.
        unsafe {
            libc::kill(p.pid as libc::pid_t, sig);
        }
    }
}

/// Reaps `pid` if it is our child and has exited; true if it is gone.
pub fn reap(pid: u32) -> bool {
    let mut status = 0;
    // SAFETY: waitpid on a specific pid with WNOHANG.
    let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    r == pid as libc::pid_t || r < 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comm_with_spaces_and_parens() {
        let text = "42 (a (b) c) S 7 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 1000 10";
        let p = parse_stat(text).unwrap();
        assert_eq!((p.pid, p.ppid, p.start, p.zombie), (42, 7, 12345, false));
        assert!(parse_stat("43 (x) Z 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 9").unwrap().zombie);
    }

    #[test]
    fn finds_ourselves() {
        let me = stat(std::process::id()).unwrap();
        assert!(alive(&me));
        assert!(descendants(me.ppid).iter().any(|p| p.pid == me.pid));
    }
}
