//! Calling one function of a script that is not a WSGI application: the auth, group and access
//! scripts (`check_password(environ, user, password)`, `groups_for_user(environ, user)`,
//! `allow_access(environ, host)`, `get_realm_hash(environ, user, realm)`). The script is loaded
//! as its module (again when it changed, with reloading on), in the interpreter named, and the
//! result is classified for the caller; an exception comes back as its traceback.

use super::interp::interpreter;
use super::obj::{self, Obj};
use pyo3::ffi;
use std::ffi::CStr;
use std::path::Path;

/// What the function returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Value {
    True,
    False,
    None,
    /// A `str` (as UTF-8) or `bytes`.
    Text(Vec<u8>),
    /// An iterable of `str`/`bytes` (for `groups_for_user`).
    Texts(Vec<Vec<u8>>),
    /// Anything else: its type's name.
    Other(String),
}

/// Calls `function(environ, *args)` of `script` in interpreter `group`. Strings are given to
/// Python as latin-1 (as mod_wsgi 6 does). Err is what to log: a traceback or what was missing.
pub fn call(
    group: &str,
    script: &Path,
    reload: bool,
    function: &CStr,
    environ: &[(&[u8], &[u8])],
    args: &[&[u8]],
    want_list: bool,
) -> Result<Value, String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(script).map_err(|e| format!("cannot read script '{}': {e}", script.display()))?;
    let mtime = meta.mtime() * 1_000_000 + meta.mtime_nsec() / 1000;
    let interp = interpreter(group)?;
    let at = interp.attach();
    let traceback = || match obj::take_error() {
        Some(exc) => at.format_exception(&exc),
        None => "unknown Python error".to_string(),
    };
    let module = at.load(script, mtime, reload, false).map_err(|_| traceback())?;
    let Ok(f) = module.getattr(function) else {
        unsafe { ffi::PyErr_Clear() };
        return Err(format!("script '{}': {}{MISSING}", script.display(), function.to_string_lossy()));
    };
    let result = (|| {
        let env = obj::dict()?;
        for (k, v) in environ {
            obj::dict_set(&env, &obj::latin1(k)?, &obj::latin1(v)?)?;
        }
        let mut call_args: Vec<Obj> = vec![env];
        for a in args {
            call_args.push(obj::latin1(a)?);
        }
        let refs: Vec<&Obj> = call_args.iter().collect();
        f.call(&refs)
    })()
    .map_err(|_| traceback())?;
    Ok(classify(&result, want_list))
}

/// Like [`call`] for a function the script may leave out: then `Value::None`.
pub fn call_optional(
    group: &str,
    script: &Path,
    reload: bool,
    function: &CStr,
    environ: &[(&[u8], &[u8])],
) -> Result<Value, String> {
    match call(group, script, reload, function, environ, &[], false) {
        Err(e) if e.ends_with(MISSING) => Ok(Value::None),
        other => other,
    }
}

const MISSING: &str = "(): not defined";

fn text_of(o: &Obj) -> Option<Vec<u8>> {
    o.as_str().map(|s| s.as_bytes().to_vec()).or_else(|| o.as_bytes().map(<[u8]>::to_vec))
}

fn classify(o: &Obj, want_list: bool) -> Value {
    let p = o.as_ptr();
    unsafe {
        if p == ffi::Py_True() {
            return Value::True;
        }
        if p == ffi::Py_False() {
            return Value::False;
        }
    }
    if o.is_none() {
        return Value::None;
    }
    if let Some(t) = text_of(o) {
        return Value::Text(t);
    }
    if want_list {
        let Ok(iter) = (unsafe { Obj::owned(ffi::PyObject_GetIter(p)) }) else {
            unsafe { ffi::PyErr_Clear() };
            return Value::Other(o.type_name());
        };
        let mut out = Vec::new();
        loop {
            let item = unsafe { ffi::PyIter_Next(iter.as_ptr()) };
            if item.is_null() {
                if unsafe { !ffi::PyErr_Occurred().is_null() } {
                    unsafe { ffi::PyErr_Clear() };
                    return Value::Other(format!("{} that raised while iterated", o.type_name()));
                }
                return Value::Texts(out);
            }
            let Ok(item) = (unsafe { Obj::owned(item) }) else { return Value::Other(o.type_name()) };
            match text_of(&item) {
                Some(t) => out.push(t),
                None => return Value::Other(format!("{} item in {}", item.type_name(), o.type_name())),
            }
        }
    }
    Value::Other(o.type_name())
}
