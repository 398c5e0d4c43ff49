//! A daemon process group as this generation sees it: defined by the parent's supervisor
//! (`crate::apache::supervisor`) before Apache forks, and read by the Apache children that relay
//! requests to it and by the daemon processes that serve them.

use crate::config::DaemonProcess;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};

/// A daemon process group as the children and daemons of this generation see it.
#[derive(Debug, Clone)]
pub struct Group {
    pub spec: DaemonProcess,
    /// The ServerName of the virtual host that defines the group (only it may use the group),
    /// or None for a group defined at server level (any host may use it), as in mod_wsgi.
    pub scope: Option<String>,
    pub socket_path: String,
    pub listener: RawFd,
    pub secret: [u8; 16],
    pub uid: u32,
    pub gid: u32,
    pub user_name: String,
    /// WSGIImportScript lines for this group: (script, interpreter name), run at start.
    pub imports: Vec<(String, String)>,
    /// `script-user=` / `script-group=`, resolved when the group was set up.
    pub script_owner: ScriptOwner,
}

/// Whose WSGI scripts a group runs (`script-user=` / `script-group=`, at most one of them), with
/// the name resolved once, before Apache forks, so a request compares ids only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptOwner {
    /// Neither option: any script.
    Anyone,
    /// Scripts owned by this user; `uid` is None when there is no such user (none may run).
    User { name: String, uid: Option<u32> },
    /// Scripts of this group; `gid` is None when there is no such group (none may run).
    Group { name: String, gid: Option<u32> },
}

/// The groups of the current configuration. Set in the parent by post_config before Apache
/// forks its children, so every child and daemon inherits it.
pub static GROUPS: Mutex<Vec<Arc<Group>>> = Mutex::new(Vec::new());

/// mod_wsgi's line for a request no daemon thread of group `name` took within `queue-timeout=`,
/// logged by whichever side notices first (the relaying Apache child, or the daemon).
pub fn queue_timeout_line(name: &str) -> String {
    format!("mod_wsgi (pid={}): Queue timeout expired for WSGI daemon process '{name}'.", std::process::id())
}

pub fn find_group(name: &str) -> Option<Arc<Group>> {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|g| g.spec.name == name).cloned()
}
