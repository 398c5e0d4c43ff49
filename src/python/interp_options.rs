//! What a new interpreter gets from WSGIPythonPath / python-path= and the
//! `<WSGIInterpreterOptions>` blocks that select it (see `config::interpreter_options`): its
//! sys.path layers and its switch interval.

use super::obj::{self, Obj, Py, PyResult};
use super::own_gil::Gil;
use pyo3::ffi;
use std::time::Duration;

/// The switch interval of a new interpreter: a `<WSGIInterpreterOptions>` block's
/// WSGISwitchInterval (`block`, and whether that block selected an application group), set
/// when the interpreter is made. With the GIL every interpreter shares, a block that selects
/// an application group must not change the interval of all the others: skipped with
/// mod_wsgi's warning. An interpreter with its own GIL has its own interval: the block's, or
/// else the process's (WSGISwitchInterval / switch-interval=, `process`), which Python set in
/// the main interpreter's GIL only.
pub fn switch_interval(
    py: Py<'_>,
    name: &str,
    gil: Gil,
    block: Option<(Duration, bool)>,
    process: Option<Duration>,
) -> PyResult<()> {
    let interval = match (block, gil) {
        (Some((interval, true)), Gil::Shared) if !name.is_empty() => {
            super::backend::server_log(
                super::backend::LOG_WARNING,
                &format!(
                    "oxwsgi: Skipping per-interpreter switch interval {:.6}s for sub-interpreter '{name}': setting \
                     it would mutate the process-global value because this interpreter does not have its own GIL",
                    interval.as_secs_f64()
                ),
            );
            return Ok(());
        }
        (Some((interval, _)), _) => interval,
        (None, Gil::Own) => match process {
            Some(interval) => interval,
            None => return Ok(()),
        },
        (None, Gil::Shared) => return Ok(()),
    };
    // Safe: a new reference or NULL with an exception set, which owned() turns into Err.
    let sys = unsafe { Obj::owned(ffi::PyImport_ImportModule(c"sys".as_ptr()))? };
    sys.getattr(py, c"setswitchinterval")?.call1(py, &obj::float(py, interval.as_secs_f64())?)?;
    Ok(())
}

/// `WSGIPythonPath`: each directory is added with site.addsitedir (so .pth files work) and the
/// new entries are moved in front of sys.path.
pub fn add_python_path(py: Py<'_>, paths: &[String]) -> PyResult<()> {
    if paths.is_empty() {
        return Ok(());
    }
    // Safe: the GIL is held (`py`), every pointer passed is a live object, and every new
    // reference goes to owned().
    unsafe {
        let site = Obj::owned(ffi::PyImport_ImportModule(c"site".as_ptr()))?;
        let sys = Obj::owned(ffi::PyImport_ImportModule(c"sys".as_ptr()))?;
        let sys_path = sys.getattr(py, c"path")?;
        let before = ffi::PyList_Size(sys_path.as_ptr());
        let addsitedir = site.getattr(py, c"addsitedir")?;
        for p in paths {
            addsitedir.call1(py, &obj::text(py, p)?)?;
        }
        // Rotate the added tail to the front: sys.path[:] = sys.path[before:] + sys.path[:before]
        let after = ffi::PyList_Size(sys_path.as_ptr());
        let head = Obj::owned(ffi::PyList_GetSlice(sys_path.as_ptr(), 0, before))?;
        let tail = Obj::owned(ffi::PyList_GetSlice(sys_path.as_ptr(), before, after))?;
        let joined = Obj::owned(ffi::PySequence_Concat(tail.as_ptr(), head.as_ptr()))?;
        if ffi::PyList_SetSlice(sys_path.as_ptr(), 0, after, joined.as_ptr()) != 0 {
            return Err(obj::PyErrSet);
        }
    }
    Ok(())
}
