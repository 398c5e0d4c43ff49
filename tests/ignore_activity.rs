//! WSGIIgnoreActivity: requests where it is On (health checks, say) do not keep a daemon
//! process with inactivity-timeout alive; other requests do.

mod common;
#[path = "apps/daemon/mod.rs"]
mod daemon_apps;

use std::collections::BTreeSet;
use std::thread;
use std::time::Duration;

use common::Apache;
use daemon_apps::{daemon_pid, APP};

#[test]
fn ignored_requests_do_not_reset_the_inactivity_timeout() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess ign processes=1 threads=1 inactivity-timeout=1\n\
             WSGIDaemonProcess busy processes=1 threads=1 inactivity-timeout=1\n\
             WSGIScriptAlias /ign {APPS}/app.py process-group=ign\n\
             WSGIScriptAlias /busy {APPS}/app.py process-group=busy\n\
             <Location /ign>\n\
               WSGIIgnoreActivity On\n\
             </Location>",
        )
        .start();
    let mut ign = BTreeSet::new();
    let mut busy = BTreeSet::new();
    // Requests 0.3 s apart for 3 s: activity for `busy`, none for `ign`.
    for _ in 0..10 {
        ign.insert(daemon_pid(&apache, "/ign"));
        busy.insert(daemon_pid(&apache, "/busy"));
        thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(busy.len(), 1, "requests every 0.3 s did not keep the process: {busy:?}\n{}", apache.log_tail(30));
    assert!(ign.len() >= 2, "ignored requests kept the process alive: {ign:?}\n{}", apache.log_tail(30));
    assert!(apache.wait_for_log("of group 'ign'", Duration::from_secs(1)));
    assert!(apache.wait_for_log("inactivity-timeout (1s) reached", Duration::from_secs(1)));
}

#[test]
fn the_directives_take_on_or_off_only() {
    for directive in ["WSGIIgnoreActivity", "WSGIGroupAuthoritative"] {
        let bad = daemon_apps::config_test(&format!("<Location /x>\n{directive} Sometimes\n</Location>"));
        assert!(!bad.ok && bad.output.contains(directive), "{directive} Sometimes was accepted: {}", bad.output);
        let ok = daemon_apps::config_test(&format!("<Location /x>\n{directive} Off\n</Location>"));
        assert!(ok.ok, "{directive} Off: {}", ok.output);
    }
}
