//! Every thread's Python stack as text, for the log of a daemon process whose request ran past
//! request-timeout (mod_wsgi logs the same).

use super::obj::{self, Obj};
use pyo3::ffi;
use std::ffi::CString;

/// Every thread's Python stack, as text (taken in the main interpreter).
pub fn all_threads() -> String {
    const CODE: &str = "def _oxwsgi_stacks():\n    import sys, threading, traceback\n    names = {t.ident: t.name for t in threading.enumerate()}\n    out = []\n    for ident, frame in sys._current_frames().items():\n        out.append('Python stack of thread %s (%s):' % (ident, names.get(ident, 'request thread')))\n        out.extend(l.rstrip() for l in traceback.format_stack(frame))\n    return '\\n'.join(out)\n";
    let Ok(main) = super::interp::interpreter("") else { return String::new() };
    // Taken on a thread of its own (the daemon's request-timeout monitor waits for it with a
    // timeout), which ends after this.
    main.attach_once(|at| unsafe {
        let py = at.py();
        let result = (|| {
            let globals = obj::dict(py)?;
            obj::dict_set_str(py, &globals, c"__builtins__", &Obj::borrowed(ffi::PyEval_GetBuiltins()))?;
            let src = CString::new(CODE).expect("no NUL");
            Obj::owned(ffi::PyRun_String(src.as_ptr(), ffi::Py_file_input, globals.as_ptr(), globals.as_ptr()))?;
            let f = Obj::borrowed(ffi::PyDict_GetItemString(globals.as_ptr(), c"_oxwsgi_stacks".as_ptr()));
            f.call0(py)
        })();
        match result {
            Ok(text) => text.as_str(py).unwrap_or("").to_string(),
            Err(_) => {
                ffi::PyErr_Clear();
                String::from("(Python stacks unavailable)")
            }
        }
    })
}
