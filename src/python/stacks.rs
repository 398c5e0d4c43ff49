//! Every thread's Python stack as text, for the log of a daemon process whose request ran past
//! request-timeout (mod_wsgi logs the same).
//!
//! `sys._current_frames()` is asked in every interpreter of the process, not only the main one:
//! up to Python 3.13 it lists the threads of all interpreters, from 3.14 only those of the
//! interpreter it is called in (a request in a sub-interpreter, the usual case, was missing
//! from a dump taken in the main interpreter). A thread seen with the same stack in several
//! interpreters (3.11 to 3.13) is listed once; the thread taking the dump is left out.

use super::obj::{self, Obj};
use pyo3::ffi;
use std::ffi::CString;

/// Each thread's block, "Python stack of thread <id> (<name>):\n<frames>", separated by NULs.
const CODE: &str = "def _oxwsgi_stacks():
    import sys, threading, traceback
    names = {t.ident: t.name for t in threading.enumerate()}
    me = threading.get_ident()
    out = []
    for ident, frame in sys._current_frames().items():
        if ident == me:
            continue
        lines = ['Python stack of thread %s (%s):' % (ident, names.get(ident, 'request thread'))]
        lines.extend(l.rstrip() for l in traceback.format_stack(frame))
        out.append('\\n'.join(lines))
    return '\\0'.join(out)
";

/// Every thread's Python stack, as text (asked of each interpreter in turn).
pub fn all_threads() -> String {
    if !super::own_gil::current_frames_is_safe() {
        return super::own_gil::NO_STACKS.to_string();
    }
    let mut interps = super::interp::interpreters();
    // The main interpreter ("") first, then the application groups by name.
    interps.sort_by(|a, b| a.name.cmp(&b.name));
    // Taken on a thread of its own (the daemon's request-timeout monitor waits for it with a
    // timeout), which ends after this.
    let dumps: Vec<Option<String>> = interps.iter().map(|interp| interp.attach_once(|at| dump(at.py()))).collect();
    merge(&dumps)
}

/// This interpreter's threads, or None when Python failed.
fn dump(py: obj::Py) -> Option<String> {
    // Safe: the GIL is held (`py`); each pointer is checked by `owned` or comes from a dict
    // that was just filled.
    let result = (|| unsafe {
        let globals = obj::dict(py)?;
        obj::dict_set_str(py, &globals, c"__builtins__", &Obj::borrowed(ffi::PyEval_GetBuiltins()))?;
        let src = CString::new(CODE).expect("no NUL");
        Obj::owned(ffi::PyRun_String(src.as_ptr(), ffi::Py_file_input, globals.as_ptr(), globals.as_ptr()))?;
        let f = Obj::borrowed(ffi::PyDict_GetItemString(globals.as_ptr(), c"_oxwsgi_stacks".as_ptr()));
        f.call0(py)
    })();
    match result {
        Ok(text) => Some(text.as_str(py).unwrap_or("").to_string()),
        Err(_) => {
            unsafe { ffi::PyErr_Clear() };
            None
        }
    }
}

/// The interpreters' dumps as one text: each (thread, stack) once, in the order first seen.
fn merge(dumps: &[Option<String>]) -> String {
    if !dumps.is_empty() && dumps.iter().all(Option::is_none) {
        return String::from("(Python stacks unavailable)");
    }
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<&str> = Vec::new();
    for block in dumps.iter().flatten().flat_map(|d| d.split('\0')).filter(|b| !b.is_empty()) {
        // "Python stack of thread <id> (<name>):\n<frames>": the name may differ per interpreter.
        let (head, frames) = block.split_once('\n').unwrap_or((block, ""));
        let ident = head.split(' ').nth(4).unwrap_or(head);
        if seen.insert((ident, frames)) {
            out.push(block);
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::merge;

    #[test]
    fn each_threads_stack_once_in_the_order_first_seen() {
        let main = "Python stack of thread 1 (request thread):\n  File \"a.py\"\0Python stack of thread 2 (MainThread):\n  File \"m.py\"";
        let group = "Python stack of thread 1 (worker):\n  File \"a.py\"\0Python stack of thread 3 (request thread):\n  File \"b.py\"";
        assert_eq!(
            merge(&[Some(main.into()), Some(group.into())]),
            "Python stack of thread 1 (request thread):\n  File \"a.py\"\n\
             Python stack of thread 2 (MainThread):\n  File \"m.py\"\n\
             Python stack of thread 3 (request thread):\n  File \"b.py\""
        );
    }

    #[test]
    fn a_thread_with_other_frames_in_another_interpreter_is_listed_again() {
        let a = "Python stack of thread 1 (request thread):\n  File \"a.py\"";
        let b = "Python stack of thread 1 (request thread):\n  File \"b.py\"";
        assert_eq!(merge(&[Some(a.into()), Some(b.into())]), format!("{a}\n{b}"));
    }

    #[test]
    fn failures_and_empty_dumps() {
        assert_eq!(merge(&[None, None]), "(Python stacks unavailable)");
        assert_eq!(merge(&[None, Some(String::new())]), "");
        let a = "Python stack of thread 1 (request thread):\n  File \"a.py\"";
        assert_eq!(merge(&[None, Some(a.into())]), a);
    }
}
