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
}

/// The groups of the current configuration. Set in the parent by post_config before Apache
/// forks its children, so every child and daemon inherits it.
pub static GROUPS: Mutex<Vec<Arc<Group>>> = Mutex::new(Vec::new());

pub fn find_group(name: &str) -> Option<Arc<Group>> {
    GROUPS.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|g| g.spec.name == name).cloned()
}
