//! oxwsgi's Python package, `_oxwsgi` (the files in `src/python/_oxwsgi/`), in each
//! interpreter: the module `_oxwsgi_native` with the host's native functions, then the package
//! executed from the copy embedded in this module, then one call of its `setup(**kwargs)`,
//! whose answer ([`Exports`]) is all the native side keeps of it.
//!
//! Every interpreter executes its own copy, so no Python object or type is shared between
//! interpreters. Outside Apache the package imports normally (tests/python, with a fake
//! `_oxwsgi_native`).

use super::obj::{self, Obj, Py, PyResult};
use pyo3::ffi;
use std::ffi::{CStr, CString};

/// Puts the host's native functions into the dictionary of the module `_oxwsgi_native`
/// (its names are listed in `_oxwsgi/__init__.py`).
pub type InstallNatives = fn(Py<'_>, &Obj) -> PyResult<()>;

/// The package's modules, each after every module it imports; the package itself last.
const MODULES: &[(&str, &str)] = &[
    ("streams", include_str!("_oxwsgi/streams.py")),
    ("wsgi_input", include_str!("_oxwsgi/wsgi_input.py")),
    ("file_wrapper", include_str!("_oxwsgi/file_wrapper.py")),
    ("scripts", include_str!("_oxwsgi/scripts.py")),
    ("events", include_str!("_oxwsgi/events.py")),
    ("metrics_api", include_str!("_oxwsgi/metrics_api.py")),
    ("gc_telemetry", include_str!("_oxwsgi/gc_telemetry.py")),
    ("environ_isolation", include_str!("_oxwsgi/environ_isolation.py")),
    ("signals", include_str!("_oxwsgi/signals.py")),
    ("newrelic_agent", include_str!("_oxwsgi/newrelic_agent.py")),
    ("module", include_str!("_oxwsgi/module.py")),
    (PACKAGE_INIT, include_str!("_oxwsgi/__init__.py")),
];

const PACKAGE_INIT: &str = "__init__";

/// What `_oxwsgi.setup()` is told, one keyword argument each (documented in its docstring).
pub struct SetupArgs<'a> {
    /// `''` in embedded mode, else the daemon group's name.
    pub process_group: &'a str,
    pub application_group: &'a str,
    /// `mod_wsgi.version`.
    pub version: &'a Obj,
    pub threads_per_process: i64,
    pub maximum_processes: i64,
    pub case_sensitive: bool,
    pub restrict_stdin: bool,
    pub restrict_stdout: bool,
    pub restrict_signal: bool,
    /// The process environment before any application ran: the interpreter's own os.environ.
    pub environ: &'a [(String, String)],
    /// WSGINewRelicConfigFile and its environment.
    pub newrelic: Option<&'a (String, Option<String>)>,
}

impl SetupArgs<'_> {
    fn kwargs(&self, py: Py<'_>) -> PyResult<Obj> {
        let kw = obj::dict(py)?;
        let set = |name: &CStr, value: &Obj| obj::dict_set_str(py, &kw, name, value);
        let text_or_none = |s: Option<&str>| s.map_or(Ok(obj::none(py)), |s| obj::text(py, s));
        set(c"process_group", &obj::text(py, self.process_group)?)?;
        set(c"application_group", &obj::text(py, self.application_group)?)?;
        set(c"version", self.version)?;
        set(c"threads_per_process", &obj::int(py, self.threads_per_process)?)?;
        set(c"maximum_processes", &obj::int(py, self.maximum_processes)?)?;
        set(c"case_sensitive", &obj::boolean(py, self.case_sensitive))?;
        set(c"restrict_stdin", &obj::boolean(py, self.restrict_stdin))?;
        set(c"restrict_stdout", &obj::boolean(py, self.restrict_stdout))?;
        set(c"restrict_signal", &obj::boolean(py, self.restrict_signal))?;
        let environ = obj::dict(py)?;
        for (k, v) in self.environ {
            obj::dict_set(py, &environ, &obj::text(py, k)?, &obj::text(py, v)?)?;
        }
        set(c"environ", &environ)?;
        set(c"newrelic_config_file", &text_or_none(self.newrelic.map(|n| n.0.as_str()))?)?;
        set(c"newrelic_environment", &text_or_none(self.newrelic.and_then(|n| n.1.as_deref()))?)?;
        Ok(kw)
    }
}

macro_rules! exports {
    ($($(#[$doc:meta])* $field:ident = $name:literal,)*) => {
        /// What `_oxwsgi.setup()` returns: the per-interpreter Python objects the native side
        /// uses (each the attribute of its name in the namespace `setup()` returns).
        pub struct Exports {
            $($(#[$doc])* pub $field: Obj,)*
        }

        impl Exports {
            fn read(py: Py<'_>, namespace: &Obj) -> PyResult<Exports> {
                Ok(Exports { $($field: namespace.getattr(py, $name)?,)* })
            }
        }
    };
}

exports! {
    /// wsgi.input's class, called with the request's capsule.
    input_cls = c"Input",
    /// `errors_stream(capsule)`: a request's wsgi.errors, and `give_back(stream)`, which keeps
    /// an ended request's for the next one when nothing else refers to it.
    errors_stream = c"errors_stream",
    give_back = c"give_back",
    /// wsgi.file_wrapper (an exact instance of it is sent as a file).
    file_wrapper_cls = c"FileWrapper",
    /// `load_script(path, mtime, reload, force)`: a WSGI script's module.
    load_script = c"load_script",
    /// `format_exception(exc)`: the traceback as Python prints it.
    format_exception = c"format_exception",
    /// `exception_header(exc, script)`: mod_wsgi 6's log line before a script's traceback.
    exception_header = c"exception_header",
    /// The set of streams holding a partial log line, and `flush_pending()`, which logs them.
    pending_streams = c"pending",
    flush_pending = c"flush_pending",
    /// `process_stopping(reason)` and `process_signal(signame, signum)`: the
    /// `subscribe_shutdown`/`subscribe_events` and `subscribe_signals` callbacks.
    process_stopping = c"process_stopping",
    process_signal = c"process_signal",
    /// `mod_wsgi.event_callbacks`, and `request_started`/`request_finished`, which publish the
    /// request events to them (called only when there are subscribers).
    event_callbacks = c"event_callbacks",
    request_started = c"request_started",
    request_finished = c"request_finished",
    /// mod_wsgi.RequestTimeout (interrupt-timeout), and a Python function that does nothing
    /// (calling it lets a pending one fire).
    request_timeout = c"RequestTimeout",
    request_timeout_drain = c"drain_async_exception",
    /// `thread_stack(ident)`: that thread's Python stack, as logged before RequestTimeout is
    /// raised in it.
    thread_stack = c"thread_stack",
}

/// Runs the package in the current interpreter (GIL held, its thread state current) and calls
/// its `setup`.
///
/// # Safety
/// The GIL must be held by a thread state of the interpreter being set up.
pub unsafe fn run(py: Py<'_>, natives: InstallNatives, args: &SetupArgs) -> PyResult<Exports> {
    let modules = Obj::borrowed(ffi::PyImport_GetModuleDict());
    let builtins = Obj::borrowed(ffi::PyEval_GetBuiltins());
    let native = Obj::owned(ffi::PyModule_New(c"_oxwsgi_native".as_ptr()))?;
    natives(py, &Obj::borrowed(ffi::PyModule_GetDict(native.as_ptr())))?;
    obj::dict_set_str(py, &modules, c"_oxwsgi_native", &native)?;

    let package = Obj::owned(ffi::PyModule_New(c"_oxwsgi".as_ptr()))?;
    let package_dict = Obj::borrowed(ffi::PyModule_GetDict(package.as_ptr()));
    obj::dict_set_str(py, &package_dict, c"__path__", &Obj::owned(ffi::PyList_New(0))?)?;
    obj::dict_set_str(py, &package_dict, c"__package__", &obj::text(py, "_oxwsgi")?)?;
    obj::dict_set_str(py, &package_dict, c"__builtins__", &builtins)?;
    obj::dict_set_str(py, &modules, c"_oxwsgi", &package)?;
    for (name, source) in MODULES {
        if *name == PACKAGE_INIT {
            exec(source, name, &package_dict)?;
            continue;
        }
        let qualified = CString::new(format!("_oxwsgi.{name}")).expect("no NUL");
        let module = Obj::owned(ffi::PyModule_New(qualified.as_ptr()))?;
        let dict = Obj::borrowed(ffi::PyModule_GetDict(module.as_ptr()));
        obj::dict_set_str(py, &dict, c"__package__", &obj::text(py, "_oxwsgi")?)?;
        obj::dict_set_str(py, &dict, c"__builtins__", &builtins)?;
        obj::dict_set_str(py, &modules, &qualified, &module)?;
        exec(source, name, &dict)?;
        let attr = CString::new(*name).expect("no NUL");
        if ffi::PyObject_SetAttrString(package.as_ptr(), attr.as_ptr(), module.as_ptr()) != 0 {
            return Err(obj::PyErrSet);
        }
    }
    let namespace = package.getattr(py, c"setup")?.call_kw(py, &args.kwargs(py)?)?;
    Exports::read(py, &namespace)
}

/// Executes one file of the package in `globals`; tracebacks name it `<oxwsgi _oxwsgi/NAME.py>`.
unsafe fn exec(source: &str, name: &str, globals: &Obj) -> PyResult<()> {
    let src = CString::new(source).expect("no NUL in the package's sources");
    let file = CString::new(format!("<oxwsgi _oxwsgi/{name}.py>")).expect("no NUL");
    let code = Obj::owned(ffi::Py_CompileString(src.as_ptr(), file.as_ptr(), ffi::Py_file_input))?;
    Obj::owned(ffi::PyEval_EvalCode(code.as_ptr(), globals.as_ptr(), globals.as_ptr())).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The modules of the package named in one file's `from _oxwsgi...` imports.
    fn imports(source: &str) -> Vec<&str> {
        let mut found = Vec::new();
        let mut lines = source.lines();
        while let Some(line) = lines.next() {
            if !line.starts_with("from _oxwsgi") || line.starts_with("from _oxwsgi_native") {
                continue;
            }
            let mut statement = line.to_string();
            if line.contains('(') {
                for more in lines.by_ref() {
                    statement.push_str(more);
                    if more.contains(')') {
                        break;
                    }
                }
            }
            let words = statement.split(|c: char| !(c.is_alphanumeric() || c == '_'));
            found.extend(words.filter_map(|w| MODULES.iter().map(|m| m.0).find(|m| *m == w && *m != PACKAGE_INIT)));
        }
        found
    }

    #[test]
    fn each_module_comes_after_the_ones_it_imports() {
        for (i, (name, source)) in MODULES.iter().enumerate() {
            for imported in imports(source) {
                let at = MODULES.iter().position(|m| m.0 == imported).unwrap();
                assert!(at < i, "_oxwsgi/{name}.py imports {imported}, which comes after it in MODULES");
            }
        }
        assert_eq!(imports("from _oxwsgi import (events,\n    streams)\n"), ["events", "streams"]);
        assert_eq!(imports("from _oxwsgi.scripts import x\nfrom _oxwsgi_native import log\n"), ["scripts"]);
    }

    #[test]
    fn every_file_of_the_package_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/python/_oxwsgi");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter_map(|f| f.strip_suffix(".py").map(str::to_string))
            .collect();
        files.sort();
        let mut embedded: Vec<String> = MODULES.iter().map(|m| m.0.to_string()).collect();
        embedded.sort();
        assert_eq!(files, embedded);
        assert_eq!(MODULES.last().unwrap().0, PACKAGE_INIT);
    }
}
