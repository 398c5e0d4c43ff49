//! `script-user=` / `script-group=` of WSGIDaemonProcess, checked by the Apache child before a
//! request is sent to the group (as mod_wsgi does): the WSGI script and the directory holding
//! it must belong to that user (and be writable by no one else) or to that group (and not be
//! writable by everyone), else the request is refused with 403 and the reason is logged. A
//! group running as a trusted user thus runs only code that user vouches for.
//!
//! The name is resolved once, when the supervisor sets up the group ([`resolve`]); a request
//! compares ids only.

use crate::config::DaemonProcess;
use crate::daemon::group::ScriptOwner;
use crate::sys::identity;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The group's script owner, its name looked up (in Apache's parent, before it forks).
pub fn resolve(spec: &DaemonProcess) -> ScriptOwner {
    match (&spec.script_user, &spec.script_group) {
        (Some(name), _) => ScriptOwner::User { name: name.clone(), uid: identity::user_or_id(name).map(|u| u.uid) },
        (None, Some(name)) => ScriptOwner::Group { name: name.clone(), gid: identity::group_or_id(name) },
        (None, None) => ScriptOwner::Anyone,
    }
}

/// Why `script` may not run in a group whose scripts belong to `owner`, or Ok.
pub fn check(owner: &ScriptOwner, script: &Path) -> Result<(), String> {
    let parent = script.parent().unwrap_or(Path::new("/"));
    let meta = |p: &Path| std::fs::metadata(p).map_err(|e| format!("cannot stat '{}': {e}", p.display()));
    match owner {
        ScriptOwner::Anyone => {}
        ScriptOwner::User { name, uid } => {
            let uid = uid.ok_or_else(|| format!("script-user '{name}' does not exist"))?;
            for (what, path) in [("WSGI script file", script), ("parent directory of the WSGI script file", parent)] {
                let m = meta(path)?;
                if m.uid() != uid {
                    return Err(format!(
                        "{what} '{}' is owned by uid {}, not by script-user '{name}'",
                        path.display(),
                        m.uid()
                    ));
                }
                if m.mode() & 0o022 != 0 {
                    return Err(format!("{what} '{}' is writable by its group or by everyone", path.display()));
                }
            }
        }
        ScriptOwner::Group { name, gid } => {
            let gid = gid.ok_or_else(|| format!("script-group '{name}' does not exist"))?;
            for (what, path) in [("WSGI script file", script), ("parent directory of the WSGI script file", parent)] {
                let m = meta(path)?;
                if m.gid() != gid {
                    return Err(format!("{what} '{}' has gid {}, not script-group '{name}'", path.display(), m.gid()));
                }
                if m.mode() & 0o002 != 0 {
                    return Err(format!("{what} '{}' is writable by everyone", path.display()));
                }
            }
        }
    }
    Ok(())
}
