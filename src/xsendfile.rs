//! X-Sendfile: an application answers with a response header `X-Sendfile: /path/to/file` and
//! Apache sends that file as the body (whatever body the application wrote is dropped), as
//! mod_xsendfile does. Off unless `WSGIXSendfilePath` names the directories such files may be
//! in; a path outside them (after resolving `..` and symbolic links) is refused, so an
//! application that echoes a user's input into the header cannot be made to send /etc/shadow.
//!
//! Pure: the path rules, on the file system only.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Whether a response header is the X-Sendfile header (any case, as mod_xsendfile).
pub fn is_header(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"x-sendfile")
}

/// The file `value` names, if it is a regular file inside one of `allowed` (absolute
/// directories); the error says why not.
pub fn resolve(value: &[u8], allowed: &[PathBuf]) -> Result<PathBuf, String> {
    let path = Path::new(OsStr::from_bytes(value.trim_ascii()));
    let shown = path.display();
    if !path.is_absolute() {
        return Err(format!("X-Sendfile path '{shown}' is not absolute"));
    }
    let real = path.canonicalize().map_err(|e| format!("X-Sendfile file '{shown}': {e}"))?;
    let inside = allowed.iter().any(|dir| dir.canonicalize().is_ok_and(|d| real.starts_with(d)));
    if !inside {
        return Err(format!(
            "X-Sendfile file '{shown}' ({}) is not inside a WSGIXSendfilePath directory",
            real.display()
        ));
    }
    if !real.is_file() {
        return Err(format!("X-Sendfile path '{shown}' is not a regular file"));
    }
    Ok(real)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn only_files_inside_the_allowed_directories() {
        let base = std::env::temp_dir().join(format!("oxwsgi-xsendfile-{}", std::process::id()));
        let files = base.join("files");
        fs::create_dir_all(files.join("sub")).unwrap();
        fs::write(files.join("sub/a.txt"), b"a").unwrap();
        fs::write(base.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(base.join("secret"), files.join("link")).unwrap();
        let allowed = [files.clone()];
        let ok = |p: &Path| resolve(p.as_os_str().as_bytes(), &allowed);
        assert_eq!(ok(&files.join("sub/a.txt")).unwrap(), files.join("sub/a.txt").canonicalize().unwrap());
        assert!(ok(&files.join("sub/../sub/a.txt")).is_ok());
        assert!(ok(&files.join("../secret")).unwrap_err().contains("not inside"));
        assert!(ok(&files.join("link")).unwrap_err().contains("not inside"), "a symlink out of the directory");
        assert!(ok(&files.join("sub")).unwrap_err().contains("not a regular file"));
        assert!(ok(&files.join("missing")).is_err());
        assert!(resolve(b"relative/a.txt", &allowed).unwrap_err().contains("not absolute"));
        // A directory whose name merely starts like the allowed one is not inside it.
        fs::create_dir_all(base.join("files2")).unwrap();
        fs::write(base.join("files2/b"), b"b").unwrap();
        assert!(ok(&base.join("files2/b")).is_err());
        assert!(resolve(files.join("sub/a.txt").as_os_str().as_bytes(), &[]).is_err());
        fs::remove_dir_all(&base).unwrap();
    }
}
