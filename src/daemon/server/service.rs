//! A service group (`threads=0`, what mod_wsgi-express `--service-script` generates): each
//! process runs the group's `WSGIImportScript` scripts, which usually run for the life of the
//! process, and serves no requests. When they end (returned or raised), the process stops and
//! Apache's parent starts it again, as mod_wsgi's parent restarts a daemon that exited.
//!
//! The scripts run in a thread of their own, so the process keeps its signal thread and monitor:
//! Apache's stop, graceful restart and parent death end it as they end any daemon, and its
//! scripts get mod_wsgi's `process_stopping` event (`mod_wsgi.subscribe_shutdown`) first.

use super::shared::{Shared, StopKind};
use crate::sys::util::{self, log_server};
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

/// Starts the thread that runs the service scripts.
pub(super) fn start(shared: &Arc<Shared>) {
    let s = shared.clone();
    std::thread::Builder::new()
        .name("service".into())
        .spawn(move || {
            let name = &s.group.spec.name;
            if s.group.imports.is_empty() {
                log_server(
                    ptr::null(),
                    util::LOG_WARNING,
                    &format!("oxwsgi: daemon group '{name}' has threads=0 and no WSGIImportScript: it does nothing"),
                );
                return;
            }
            super::import_scripts(&s.group);
            s.begin_stop(StopKind::Replace, "service_exit", Duration::ZERO, "its service script ended");
        })
        .expect("spawn the service thread");
}
