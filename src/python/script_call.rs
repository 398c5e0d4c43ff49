//! Calling one function of a script that is not a WSGI application: the auth, group and access
//! scripts (`check_password(environ, user, password)`, `groups_for_user(environ, user)`,
//! `allow_access(environ, host)`, `get_realm_hash(environ, user, realm)`). The script is loaded
//! as its module (again when it changed, with reloading on), in the interpreter named, and the
//! result is classified for the caller; an exception comes back as its traceback.

use super::interp::{interpreter, mtime_micros};
use super::obj::{self, Obj, Py};
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

/// Why a call gave no value.
#[derive(Debug)]
pub enum CallError {
    /// The script has no such function.
    Missing(String),
    /// It could not be read or loaded, or the function raised: what to log (the traceback).
    Failed(String),
}

impl CallError {
    /// The text to log.
    pub fn message(&self) -> &str {
        match self {
            CallError::Missing(m) | CallError::Failed(m) => m,
        }
    }
}

/// Calls `function(environ, *args)` of `script` in interpreter `group`. Strings are given to
/// Python as latin-1 (as mod_wsgi 6 does).
pub fn call(
    group: &str,
    script: &Path,
    reload: bool,
    function: &CStr,
    environ: &[(&[u8], &[u8])],
    args: &[&[u8]],
    want_list: bool,
) -> Result<Value, CallError> {
    let meta = std::fs::metadata(script)
        .map_err(|e| CallError::Failed(format!("cannot read script '{}': {e}", script.display())))?;
    let mtime = mtime_micros(&meta);
    let interp = interpreter(group).map_err(CallError::Failed)?;
    let at = interp.attach();
    let py = at.py();
    let traceback = || {
        CallError::Failed(match obj::take_error(py) {
            Some(exc) => at.format_exception(&exc),
            None => "unknown Python error".to_string(),
        })
    };
    let module = at.load(script, mtime, reload, false).map_err(|_| traceback())?;
    let Ok(f) = module.getattr(py, function) else {
        unsafe { ffi::PyErr_Clear() };
        return Err(CallError::Missing(format!(
            "script '{}' has no function {}()",
            script.display(),
            function.to_string_lossy()
        )));
    };
    let result = (|| {
        let env = obj::dict(py)?;
        for (k, v) in environ {
            obj::dict_set(py, &env, &obj::latin1(py, k)?, &obj::latin1(py, v)?)?;
        }
        let mut call_args: Vec<Obj> = vec![env];
        for a in args {
            call_args.push(obj::latin1(py, a)?);
        }
        let refs: Vec<&Obj> = call_args.iter().collect();
        f.call(py, &refs)
    })()
    .map_err(|_| traceback())?;
    Ok(classify(py, &result, want_list))
}

/// Like [`call`] for a function the script may leave out: then `Value::None`.
pub fn call_optional(
    group: &str,
    script: &Path,
    reload: bool,
    function: &CStr,
    environ: &[(&[u8], &[u8])],
) -> Result<Value, CallError> {
    match call(group, script, reload, function, environ, &[], false) {
        Err(CallError::Missing(_)) => Ok(Value::None),
        other => other,
    }
}

fn text_of(py: Py<'_>, o: &Obj) -> Option<Vec<u8>> {
    o.as_str(py).map(|s| s.as_bytes().to_vec()).or_else(|| o.as_bytes(py).map(<[u8]>::to_vec))
}

fn classify(py: Py<'_>, o: &Obj, want_list: bool) -> Value {
    let p = o.as_ptr();
    unsafe {
        if p == ffi::Py_True() {
            return Value::True;
        }
        if p == ffi::Py_False() {
            return Value::False;
        }
    }
    if o.is_none(py) {
        return Value::None;
    }
    if let Some(t) = text_of(py, o) {
        return Value::Text(t);
    }
    if want_list {
        let Ok(iter) = (unsafe { Obj::owned(ffi::PyObject_GetIter(p)) }) else {
            unsafe { ffi::PyErr_Clear() };
            return Value::Other(o.type_name(py));
        };
        let mut out = Vec::new();
        loop {
            let item = unsafe { ffi::PyIter_Next(iter.as_ptr()) };
            if item.is_null() {
                if unsafe { !ffi::PyErr_Occurred().is_null() } {
                    unsafe { ffi::PyErr_Clear() };
                    return Value::Other(format!("{} that raised while iterated", o.type_name(py)));
                }
                return Value::Texts(out);
            }
            let Ok(item) = (unsafe { Obj::owned(item) }) else { return Value::Other(o.type_name(py)) };
            match text_of(py, &item) {
                Some(t) => out.push(t),
                None => return Value::Other(format!("{} item in {}", item.type_name(py), o.type_name(py))),
            }
        }
    }
    Value::Other(o.type_name(py))
}
