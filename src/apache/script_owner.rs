//! `script-user=` / `script-group=` of WSGIDaemonProcess, checked by the Apache child before a
//! request is sent to the group (as mod_wsgi does): the WSGI script and the directory holding
//! it must belong to that user (and be writable by no one else) or to that group (and not be
//! writable by everyone), else the request is refused with 403 and the reason is logged. A
//! group running as a trusted user thus runs only code that user vouches for.

use crate::config::DaemonProcess;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Why `script` may not run in the group `spec`, or Ok.
pub fn check(spec: &DaemonProcess, script: &Path) -> Result<(), String> {
    let parent = script.parent().unwrap_or(Path::new("/"));
    let meta = |p: &Path| std::fs::metadata(p).map_err(|e| format!("cannot stat '{}': {e}", p.display()));
    if let Some(user) = &spec.script_user {
        let (uid, _) =
            super::supervisor::lookup_user(user).ok_or_else(|| format!("script-user '{user}' does not exist"))?;
        for (what, path) in [("WSGI script file", script), ("parent directory of the WSGI script file", parent)] {
            let m = meta(path)?;
            if m.uid() != uid {
                return Err(format!(
                    "{what} '{}' is owned by uid {}, not by script-user '{user}'",
                    path.display(),
                    m.uid()
                ));
            }
            if m.mode() & 0o022 != 0 {
                return Err(format!("{what} '{}' is writable by its group or by everyone", path.display()));
            }
        }
    }
    if let Some(group) = &spec.script_group {
        let gid =
            super::supervisor::lookup_group(group).ok_or_else(|| format!("script-group '{group}' does not exist"))?;
        for (what, path) in [("WSGI script file", script), ("parent directory of the WSGI script file", parent)] {
            let m = meta(path)?;
            if m.gid() != gid {
                return Err(format!("{what} '{}' has gid {}, not script-group '{group}'", path.display(), m.gid()));
            }
            if m.mode() & 0o002 != 0 {
                return Err(format!("{what} '{}' is writable by everyone", path.display()));
            }
        }
    }
    Ok(())
}
