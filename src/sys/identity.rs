//! Users and groups from the system's databases, by name, with the reentrant calls
//! (`getpwnam_r`, `getgrnam_r`, `getgrouplist`): safe on any thread, nothing shared between
//! callers. The one place oxwsgi looks them up: daemon groups' options (resolved once when the
//! configuration is set up), a daemon's `supplementary-groups`, and the `oxwsgi` command's
//! checks. Uses only libc (the `oxwsgi` command includes this file as it is).

use std::ffi::{c_char, c_int, CString};

/// A user's ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    /// The user's primary group.
    pub gid: u32,
}

/// The user named `name`, or None if there is none (or the database cannot be read).
pub fn user(name: &str) -> Option<User> {
    let name = CString::new(name).ok()?;
    with_buffer(|buf| {
        // SAFETY: passwd is a plain C struct; all-zero is a valid value to be overwritten.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found = std::ptr::null_mut();
        // SAFETY: every pointer is live for the call and `buf` is writable for its length.
        let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
        (rc, (!found.is_null()).then_some(User { uid: pw.pw_uid, gid: pw.pw_gid }))
    })
}

/// The gid of the group named `name`, or None if there is none.
pub fn group(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    with_buffer(|buf| {
        // SAFETY: group is a plain C struct; all-zero is a valid value to be overwritten.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut found = std::ptr::null_mut();
        // SAFETY: every pointer is live for the call and `buf` is writable for its length.
        let rc = unsafe { libc::getgrnam_r(name.as_ptr(), &mut gr, buf.as_mut_ptr(), buf.len(), &mut found) };
        (rc, (!found.is_null()).then_some(gr.gr_gid))
    })
}

/// A user given as a name or as `#uid` (then the uid is also the group id), as Apache's `User`
/// directive and mod_wsgi's `user=` take it.
pub fn user_or_id(spec: &str) -> Option<User> {
    match numeric(spec) {
        Some(id) => Some(User { uid: id, gid: id }),
        None => user(spec),
    }
}

/// A group given as a name or as `#gid`.
pub fn group_or_id(spec: &str) -> Option<u32> {
    numeric(spec).or_else(|| group(spec))
}

/// Every group `name` is in: `gid` (its primary group) and those the group database lists it
/// in. Empty if the database cannot be read. (Used by the `oxwsgi` command, which includes
/// this file; the module itself has Apache's `initgroups`.)
#[cfg_attr(not(test), allow(dead_code))]
pub fn group_list(name: &str, gid: u32) -> Vec<u32> {
    let Ok(name) = CString::new(name) else { return Vec::new() };
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut n = groups.len() as c_int;
        // SAFETY: `groups` has room for n entries; getgrouplist writes at most n and sets n to
        // the number it has (or needs).
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(n.max(0) as usize);
            return groups;
        }
        if n as usize <= groups.len() || groups.len() >= MAX_GROUPS {
            return Vec::new();
        }
        groups.resize((n as usize).min(MAX_GROUPS), 0);
    }
}

/// Linux's NGROUPS_MAX.
#[cfg_attr(not(test), allow(dead_code))]
const MAX_GROUPS: usize = 65536;

/// `#123` -> 123.
fn numeric(spec: &str) -> Option<u32> {
    spec.strip_prefix('#').and_then(|n| n.parse().ok())
}

/// Calls a `get*_r` function with a scratch buffer, again with a larger one while it answers
/// ERANGE (up to 1 MiB).
fn with_buffer<T>(mut call: impl FnMut(&mut [c_char]) -> (c_int, Option<T>)) -> Option<T> {
    let mut buf: Vec<c_char> = vec![0; 1024];
    loop {
        match call(&mut buf) {
            (0, found) => return found,
            (libc::EINTR, _) => {}
            (libc::ERANGE, _) if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_unknown_names() {
        assert_eq!(user("root"), Some(User { uid: 0, gid: 0 }));
        assert_eq!(group("root"), Some(0));
        assert_eq!(user("no-such-user-oxwsgi"), None);
        assert_eq!(group("no-such-group-oxwsgi"), None);
        assert_eq!(user("bad\0name"), None);
        assert!(group_list("root", 0).contains(&0));
    }

    #[test]
    fn numeric_forms() {
        assert_eq!(user_or_id("#1234"), Some(User { uid: 1234, gid: 1234 }));
        assert_eq!(group_or_id("#77"), Some(77));
        assert_eq!(user_or_id("root"), Some(User { uid: 0, gid: 0 }));
        assert_eq!(group_or_id("#x"), group("#x"));
        // Without the helper's numeric form, a `#` name is looked up as it is.
        assert_eq!(user("#0"), None);
    }

    #[test]
    fn buffer_grows_on_erange() {
        let mut calls = 0;
        let got = with_buffer(|buf| {
            calls += 1;
            if buf.len() < 4096 {
                (libc::ERANGE, None)
            } else {
                (0, Some(buf.len()))
            }
        });
        assert_eq!((got, calls), (Some(4096), 3));
    }
}
