//! `WSGIXSendfilePath DIR ...` and the Apache side of X-Sendfile (the rules are in
//! `crate::xsendfile`): where an application's `X-Sendfile` header names an allowed file, the
//! response body is that file, sent by Apache like a static file (in both modes, with the
//! event MPM's write completion), and the body the application wrote is dropped.

use super::conf::{dir_conf, DirConf};
use super::directive::{answer, args};
use crate::sys::ffi;
use std::ffi::c_void;
use std::fs::File;
use std::os::raw::c_char;
use std::path::PathBuf;

/// `WSGIXSendfilePath DIR ...`: repeated lines add to the list.
pub unsafe extern "C" fn cmd_xsendfile_path(
    cmd: *mut ffi::cmd_parms,
    m: *mut c_void,
    a: *const c_char,
) -> *const c_char {
    let r = (|| {
        let words = crate::config::split_args(args(a)).map_err(|e| e.to_string())?;
        if words.is_empty() {
            return Err("WSGIXSendfilePath needs at least one directory".to_string());
        }
        let list = (*(m as *mut DirConf)).xsendfile_paths.get_or_insert_with(Vec::new);
        for w in words {
            let dir = PathBuf::from(&w);
            if !dir.is_absolute() {
                return Err(format!("WSGIXSendfilePath: '{w}' is not an absolute directory"));
            }
            list.push(dir);
        }
        Ok(())
    })();
    answer(cmd, r)
}

/// What a response's X-Sendfile header comes to.
pub enum Replacement {
    /// Send this file (its size) instead of the application's body.
    File(File, u64),
    /// The header named a file that may not be sent: answer 500 (the reason is logged).
    Refused(String),
}

/// Checks `headers` of a response with `status` for X-Sendfile, where WSGIXSendfilePath
/// applies to `r`. None: no header, or X-Sendfile is not configured here (then the header is
/// an ordinary one).
pub unsafe fn replacement(
    r: *const ffi::request_rec,
    status: u16,
    headers: &[(Vec<u8>, Vec<u8>)],
) -> Option<Replacement> {
    let dirs = dir_conf(r).xsendfile_paths.as_deref()?;
    let (_, value) = headers.iter().find(|(n, _)| crate::xsendfile::is_header(n))?;
    if !(200..300).contains(&status) {
        return Some(Replacement::Refused(format!("X-Sendfile on a {status} response")));
    }
    let opened = crate::xsendfile::resolve(value, dirs).and_then(|path| {
        let file = File::open(&path).map_err(|e| format!("X-Sendfile file '{}': {e}", path.display()))?;
        let size = file.metadata().map_err(|e| format!("X-Sendfile file '{}': {e}", path.display()))?.len();
        Ok((file, size))
    });
    Some(match opened {
        Ok((file, size)) => Replacement::File(file, size),
        Err(e) => Replacement::Refused(e),
    })
}
