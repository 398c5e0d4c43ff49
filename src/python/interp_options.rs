//! What a new interpreter gets from WSGIPythonPath / python-path= and the
//! `<WSGIInterpreterOptions>` blocks that select it (see `config::interpreter_options`): its
//! sys.path layers and a block's switch interval.

use super::obj::{self, Obj, PyResult};
use pyo3::ffi;

/// A `<WSGIInterpreterOptions>` block's WSGISwitchInterval, set when the interpreter is made.
/// Every interpreter shares the GIL on this Python, so a block that selects an application
/// group must not change the interval of all the others: skipped with mod_wsgi's warning.
pub unsafe fn block_switch_interval(name: &str, interval: Option<(std::time::Duration, bool)>) -> PyResult<()> {
    let Some((interval, app_scoped)) = interval else { return Ok(()) };
    if app_scoped && !name.is_empty() {
        super::backend::server_log(
            super::backend::LOG_WARNING,
            &format!(
                "oxwsgi: Skipping per-interpreter switch interval {:.6}s for sub-interpreter '{name}': setting it \
                 would mutate the process-global value because this interpreter does not have its own GIL",
                interval.as_secs_f64()
            ),
        );
        return Ok(());
    }
    let sys = Obj::owned(ffi::PyImport_ImportModule(c"sys".as_ptr()))?;
    sys.getattr(c"setswitchinterval")?.call1(&Obj::owned(ffi::PyFloat_FromDouble(interval.as_secs_f64()))?)?;
    Ok(())
}

/// `WSGIPythonPath`: each directory is added with site.addsitedir (so .pth files work) and the
/// new entries are moved in front of sys.path.
pub unsafe fn add_python_path(paths: &[String]) -> PyResult<()> {
    if paths.is_empty() {
        return Ok(());
    }
    let site = Obj::owned(ffi::PyImport_ImportModule(c"site".as_ptr()))?;
    let sys = Obj::owned(ffi::PyImport_ImportModule(c"sys".as_ptr()))?;
    let sys_path = sys.getattr(c"path")?;
    let before = ffi::PyList_Size(sys_path.as_ptr());
    let addsitedir = site.getattr(c"addsitedir")?;
    for p in paths {
        addsitedir.call1(&obj::text(p)?)?;
    }
    // Rotate the added tail to the front: sys.path[:] = sys.path[before:] + sys.path[:before]
    let after = ffi::PyList_Size(sys_path.as_ptr());
    let head = Obj::owned(ffi::PyList_GetSlice(sys_path.as_ptr(), 0, before))?;
    let tail = Obj::owned(ffi::PyList_GetSlice(sys_path.as_ptr(), before, after))?;
    let joined = Obj::owned(ffi::PySequence_Concat(tail.as_ptr(), head.as_ptr()))?;
    if ffi::PyList_SetSlice(sys_path.as_ptr(), 0, after, joined.as_ptr()) != 0 {
        return Err(obj::PyErrSet);
    }
    Ok(())
}
