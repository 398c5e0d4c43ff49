//! The Python runtime of one process: start-up, the registry of interpreters (one per
//! application group) and the thread states of each worker thread.
//!
//! Rules that keep many worker threads and many interpreters free of deadlock:
//! - each interpreter is created once, under the registry lock, by the first thread that needs it;
//! - each (thread, interpreter) pair has its own `PyThreadState`, made once and kept;
//! - a thread never waits for the registry lock while it holds the GIL (lookups happen before
//!   the GIL is taken, creation takes the GIL only inside the lock).

use super::bootstrap::{self, Exports, InstallNatives, SetupArgs};
use super::environ_strings::{EnvironStrings, FastMap};
use super::interp_options;
use super::obj::{self, Obj, Py, PyResult};
use super::own_gil::{self, Gil};
use pyo3::ffi;
use std::cell::{RefCell, UnsafeCell};
use std::collections::HashMap;

use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// The Apache httpd version the module was built against (from ap_release.h, via build.rs).
pub const APACHE_VERSION: (i64, i64, i64) =
    (parse_i64(env!("OXWSGI_AP_MAJOR")), parse_i64(env!("OXWSGI_AP_MINOR")), parse_i64(env!("OXWSGI_AP_PATCH")));

const fn parse_i64(s: &str) -> i64 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut v = 0;
    while i < b.len() {
        v = v * 10 + (b[i] - b'0') as i64;
        i += 1;
    }
    v
}

/// The emulated mod_wsgi API level, reported as `mod_wsgi.version`.
pub const MOD_WSGI_VERSION: (i64, i64, i64) = (4, 9, 4);

/// How this process's Python is set up; fixed at start-up.
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// `WSGIPythonHome` / `python-home`: a prefix or a virtualenv.
    pub python_home: Option<String>,
    /// `WSGIPythonPath` / `python-path`: site directories put in front of sys.path.
    pub python_path: Vec<String>,
    /// `''` in embedded mode, the daemon group's name in daemon mode.
    pub process_group: String,
    /// `WSGIRestrictSignal`: apps may not install signal handlers (embedded mode).
    pub restrict_signal: bool,
    /// `mod_wsgi.threads_per_process` and `mod_wsgi.maximum_processes`.
    pub threads_per_process: i64,
    pub maximum_processes: i64,
    pub start: StartOptions,
    /// WSGINewRelicConfigFile / newrelic-config-file= and the environment: every interpreter
    /// calls `newrelic.agent.initialize(file, environment)` when it is made (mod_wsgi 4.x).
    pub newrelic: Option<(String, Option<String>)>,
}

/// How Python itself starts in this process (WSGIPythonWarnings, WSGIDontWriteBytecode,
/// WSGIPythonHashSeed): the same for Apache's children and every daemon process.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// `-W` options, in order.
    pub warnings: Vec<String>,
    pub dont_write_bytecode: bool,
    /// None: Python's default (random).
    pub hash_seed: Option<u32>,
    /// `sys.setswitchinterval()` (WSGISwitchInterval; `switch-interval=` in a daemon).
    pub switch_interval: Option<std::time::Duration>,
    /// `-O` level (WSGIPythonOptimize): 0, 1 or 2.
    pub optimize: u8,
    /// WSGICaseSensitivity: with false, script paths are lower-cased for module names.
    pub case_sensitive: bool,
    /// `<WSGIInterpreterOptions>` blocks and the top-level WSGIPerInterpreterGIL.
    pub interpreter_options: Vec<crate::config::InterpreterOptions>,
    pub per_interpreter_gil: bool,
    /// WSGIRestrictStdin / WSGIRestrictStdout: sys.stdin / sys.stdout raise on any use.
    pub restrict_stdin: bool,
    pub restrict_stdout: bool,
}

struct Runtime {
    config: RuntimeConfig,
    /// The process environment as it was before any application ran.
    environ: Vec<(String, String)>,
    natives: InstallNatives,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static REGISTRY: Mutex<Option<HashMap<String, Arc<Interp>>>> = Mutex::new(None);
/// Application groups whose interpreter could not be set up, with the reason.
static FAILED: Mutex<Option<HashMap<String, String>>> = Mutex::new(None);

thread_local! {
    /// This thread's thread state for each interpreter, keyed by interpreter address.
    static THREAD_STATES: RefCell<FastMap<usize, *mut ffi::PyThreadState>> = RefCell::new(FastMap::default());
}

/// One Python interpreter (an application group) and what oxwsgi keeps for it.
pub struct Interp {
    pub name: String,
    /// Whether it shares the process's GIL or has its own (WSGIPerInterpreterGIL).
    pub gil: Gil,
    state: *mut ffi::PyInterpreterState,
    data: UnsafeCell<Option<InterpData>>,
}

// The raw pointers are only used with the GIL held by a thread state of this interpreter.
unsafe impl Send for Interp {}
unsafe impl Sync for Interp {}

/// The loaded WSGI applications by "script path\0callable name".
pub type LoadedApps = FastMap<Box<[u8]>, LoadedApp>;

/// A WSGI script's callable, with what decides whether the script is loaded again.
pub struct LoadedApp {
    pub app: Obj,
    /// The script module's `__dict__`: its `__mtime__` is compared with the file's (as mod_wsgi
    /// does; a module without one is loaded again).
    module_dict: Obj,
    /// The module's `reload_required(resource)`, if it has one.
    check: Option<Obj>,
}

/// Per-interpreter Python objects. Only touched with the interpreter's GIL held. Derefs to
/// what the `_oxwsgi` package's `setup()` returned (`data.input_cls`, ...).
pub struct InterpData {
    pub py: Exports,
    pub wsgi_version: Obj,
    pub mod_wsgi_version: Obj,
    /// `apache.version`: the httpd this module was built against.
    pub apache_version: Obj,
    pub true_: Obj,
    pub false_: Obj,
    /// Strings every request uses, made once.
    pub names: Names,
    pub apps: RefCell<LoadedApps>,
    pub environ_strings: RefCell<EnvironStrings>,
}

impl std::ops::Deref for InterpData {
    type Target = Exports;

    fn deref(&self) -> &Exports {
        &self.py
    }
}

macro_rules! names {
    ($($field:ident = $text:literal),* $(,)?) => {
        /// Interned strings for the environ keys and attribute names of every request: each
        /// is made (and hashed) once per interpreter instead of once per request.
        pub struct Names {
            $(pub $field: Obj,)*
        }

        impl Names {
            fn new(py: Py<'_>) -> PyResult<Names> {
                Ok(Names { $($field: obj::interned(py, $text)?,)* })
            }
        }
    };
}

names! {
    wsgi_version = c"wsgi.version",
    wsgi_url_scheme = c"wsgi.url_scheme",
    wsgi_input = c"wsgi.input",
    wsgi_errors = c"wsgi.errors",
    wsgi_multithread = c"wsgi.multithread",
    wsgi_multiprocess = c"wsgi.multiprocess",
    wsgi_run_once = c"wsgi.run_once",
    wsgi_input_terminated = c"wsgi.input_terminated",
    wsgi_file_wrapper = c"wsgi.file_wrapper",
    mod_wsgi_version = c"mod_wsgi.version",
    apache_version = c"apache.version",
    thread_id = c"mod_wsgi.thread_id",
    thread_requests = c"mod_wsgi.thread_requests",
    total_requests = c"mod_wsgi.total_requests",
    http = c"http",
    https = c"https",
    close = c"close",
    mtime = c"__mtime__",
}

/// Starts Python in this process (once): call it in the process that will run applications (an
/// Apache child or a daemon process), never in Apache's parent. `natives` is called in every
/// interpreter it sets up.
pub fn initialize(config: RuntimeConfig, natives: InstallNatives) -> Result<(), String> {
    if RUNTIME.get().is_some() {
        return Ok(());
    }
    let environ =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();
    unsafe { start_python(config.python_home.as_deref(), &config.start)? };
    let _ = RUNTIME.set(Runtime { config, environ, natives });
    // The main interpreter ('%{GLOBAL}') is first-class: set it up like any other.
    let main = Arc::new(Interp {
        name: String::new(),
        gil: Gil::Shared,
        state: unsafe { ffi::PyInterpreterState_Main() },
        data: UnsafeCell::new(None),
    });
    let setup = unsafe { setup_interpreter(&main) };
    let tstate = unsafe { ffi::PyEval_SaveThread() };
    remember_thread_state(&main, tstate);
    setup?;
    REGISTRY.lock().unwrap().get_or_insert_with(HashMap::new).insert(String::new(), main);
    Ok(())
}

pub fn is_initialized() -> bool {
    RUNTIME.get().is_some()
}

/// Py_InitializeFromConfig with Apache-friendly settings. A virtualenv home is found by Python's
/// own start-up through pyvenv.cfg next to its "executable" (so sys.prefix is the venv and the
/// base install provides the standard library); any other home is used as PYTHONHOME.
unsafe fn start_python(home: Option<&str>, start: &StartOptions) -> Result<(), String> {
    let mut config: ffi::PyConfig = std::mem::zeroed();
    ffi::PyConfig_InitPythonConfig(&mut config);
    // Signals belong to Apache; Python must not install handlers.
    config.install_signal_handlers = 0;
    config.parse_argv = 0;
    if start.dont_write_bytecode {
        config.write_bytecode = 0;
    }
    config.optimization_level = start.optimize as _;
    if let Some(seed) = start.hash_seed {
        config.use_hash_seed = 1;
        config.hash_seed = seed as _;
    }
    for w in &start.warnings {
        let c = CString::new(w.as_str()).map_err(|_| format!("invalid warning option {w:?}"))?;
        let wide = ffi::Py_DecodeLocale(c.as_ptr(), std::ptr::null_mut());
        if wide.is_null() {
            return Err(format!("cannot use warning option {w:?}"));
        }
        let status = ffi::PyWideStringList_Append(&mut config.warnoptions, wide);
        ffi::PyMem_RawFree(wide as *mut std::ffi::c_void);
        if ffi::PyStatus_Exception(status) != 0 {
            return Err(format!("cannot use warning option {w:?}"));
        }
    }
    let cfg: *mut ffi::PyConfig = &mut config;
    if let Some(home) = home {
        if PathBuf::from(home).join("pyvenv.cfg").exists() {
            set_config(cfg, std::ptr::addr_of_mut!((*cfg).program_name), &format!("{home}/bin/python"))?;
        } else {
            set_config(cfg, std::ptr::addr_of_mut!((*cfg).home), home)?;
        }
    }
    let status = ffi::Py_InitializeFromConfig(&config);
    ffi::PyConfig_Clear(&mut config);
    if ffi::PyStatus_Exception(status) != 0 {
        let msg = if status.err_msg.is_null() {
            "unknown error".to_string()
        } else {
            CStr::from_ptr(status.err_msg).to_string_lossy().into_owned()
        };
        return Err(match home {
            Some(home) => {
                format!("Python failed to start with Python home '{home}' (WSGIPythonHome / python-home): {msg}")
            }
            None => format!("Python failed to start: {msg}"),
        });
    }
    if let Some(interval) = start.switch_interval {
        // One GIL for every interpreter: set once, in the main one, as mod_wsgi does.
        let code =
            CString::new(format!("import sys\nsys.setswitchinterval({})\n", interval.as_secs_f64())).expect("no NUL");
        if ffi::PyRun_SimpleString(code.as_ptr()) != 0 {
            return Err(format!("cannot set the switch interval to {}s", interval.as_secs_f64()));
        }
    }
    Ok(())
}

unsafe fn set_config(cfg: *mut ffi::PyConfig, field: *mut *mut libc::wchar_t, value: &str) -> Result<(), String> {
    let c = CString::new(value).map_err(|_| format!("invalid path {value:?}"))?;
    if ffi::PyStatus_Exception(ffi::PyConfig_SetBytesString(cfg, field, c.as_ptr())) != 0 {
        return Err(format!("cannot use {value:?} in Python's configuration"));
    }
    Ok(())
}

fn remember_thread_state(interp: &Interp, tstate: *mut ffi::PyThreadState) {
    THREAD_STATES.with(|m| m.borrow_mut().insert(interp.state as usize, tstate));
}

fn thread_state(interp: &Interp) -> *mut ffi::PyThreadState {
    THREAD_STATES.with(|m| {
        *m.borrow_mut().entry(interp.state as usize).or_insert_with(|| unsafe { ffi::PyThreadState_New(interp.state) })
    })
}

/// The interpreter for an application group, created on first use.
pub fn interpreter(name: &str) -> Result<Arc<Interp>, String> {
    // Interpreters are never destroyed, so each thread may remember the ones it has used and
    // skip the registry lock on the request path.
    thread_local! {
        static SEEN: RefCell<FastMap<String, Arc<Interp>>> = RefCell::new(FastMap::default());
    }
    if let Some(interp) = SEEN.with(|m| m.borrow().get(name).cloned()) {
        return Ok(interp);
    }
    let interp = lookup_or_create(name)?;
    SEEN.with(|m| m.borrow_mut().insert(name.to_string(), interp.clone()));
    Ok(interp)
}

fn lookup_or_create(name: &str) -> Result<Arc<Interp>, String> {
    let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let map = registry.as_mut().ok_or("Python is not initialized in this process")?;
    if let Some(interp) = map.get(name) {
        return Ok(interp.clone());
    }
    if let Some(e) = FAILED.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|f| f.get(name)) {
        return Err(e.clone());
    }
    let main = map.get("").cloned().ok_or("main interpreter missing")?;
    let gil = Gil::for_option(resolved_options(RUNTIME.get().expect("runtime"), name).per_interpreter_gil, false);
    unsafe {
        ffi::PyEval_RestoreThread(thread_state(&main));
        let tstate = match own_gil::new_interpreter(gil) {
            Ok(tstate) => tstate,
            Err(e) => {
                ffi::PyEval_SaveThread();
                return Err(format!("cannot create Python sub-interpreter for application group '{name}': {e}"));
            }
        };
        let interp = Arc::new(Interp {
            name: name.to_string(),
            gil,
            state: ffi::PyThreadState_GetInterpreter(tstate),
            data: UnsafeCell::new(None),
        });
        let setup = setup_interpreter(&interp);
        remember_thread_state(&interp, tstate);
        ffi::PyEval_SaveThread();
        if let Err(e) = setup {
            // Remembered, so a broken group does not create a new interpreter per request.
            FAILED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_or_insert_with(HashMap::new)
                .insert(name.to_string(), e.clone());
            return Err(e);
        }
        map.insert(name.to_string(), interp.clone());
        Ok(interp)
    }
}

/// The GIL, held by this thread's thread state for one interpreter. Released on drop.
pub struct Attached<'a> {
    pub interp: &'a Interp,
    /// The GIL belongs to this thread: an Attached must not move to another one.
    _thread_bound: std::marker::PhantomData<*mut ffi::PyThreadState>,
}

impl Interp {
    /// Takes the GIL with this thread's thread state for this interpreter.
    pub fn attach(&self) -> Attached<'_> {
        let tstate = thread_state(self);
        unsafe { ffi::PyEval_RestoreThread(tstate) };
        Attached { interp: self, _thread_bound: std::marker::PhantomData }
    }

    /// `f` with the GIL, on a thread that attaches once and then ends (a helper thread): its
    /// thread state is deleted afterwards instead of staying in the interpreter's list.
    pub fn attach_once<R>(&self, f: impl FnOnce(&Attached) -> R) -> R {
        let at = self.attach();
        let r = f(&at);
        std::mem::forget(at);
        THREAD_STATES.with(|m| m.borrow_mut().remove(&(self.state as usize)));
        unsafe {
            ffi::PyThreadState_Clear(ffi::PyThreadState_Get());
            ffi::PyThreadState_DeleteCurrent();
        }
        r
    }
}

impl Attached<'_> {
    /// The proof that this thread holds the GIL, for as long as `self` is borrowed.
    pub fn py(&self) -> Py<'_> {
        // SAFETY: an Attached holds its interpreter's GIL on this thread until it is dropped.
        unsafe { Py::assume() }
    }

    /// The interpreter's Python objects (shared: what changes is behind RefCells).
    pub fn data(&self) -> &InterpData {
        // Safe: the GIL of this interpreter is held for as long as `self` lives, and the data
        // was set once, when the interpreter was created.
        unsafe { (*self.interp.data.get()).as_ref().expect("interpreter set up") }
    }

    /// The callable `name` of the WSGI script at `path`, (re)loaded as mod_wsgi 6 decides when
    /// `reload` is set: the module's `__mtime__` is not `mtime` (or is gone), or its own
    /// `reload_required(resource)` (`resource`: SCRIPT_FILENAME) says so; one that raises keeps
    /// the script (reloading each request would be a restart loop in daemon mode), its
    /// exception given to `check_failed`. With `restart_on_change` (daemon mode) a script that
    /// would be loaded again is `LoadError::Stale`: the process restarts, so that every module
    /// the script imported is fresh too.
    #[allow(clippy::too_many_arguments)]
    pub fn application(
        &self,
        path: &std::path::Path,
        mtime: i64,
        reload: bool,
        name: &str,
        resource: impl FnOnce() -> String,
        restart_on_change: bool,
        check_failed: impl FnOnce(Option<Obj>),
    ) -> Result<Obj, LoadError> {
        let (py, data) = (self.py(), self.data());
        // "script path\0callable": a byte key hashes in a few word operations (a Path hashes
        // component by component), and neither part can contain a NUL.
        use std::os::unix::ffi::OsStrExt;
        let key: Box<[u8]> = [path.as_os_str().as_bytes(), b"\0", name.as_bytes()].concat().into();
        let loaded = data
            .apps
            .borrow()
            .get(&key)
            .map(|l| (l.app.clone_ref(py), l.module_dict.clone_ref(py), l.check.as_ref().map(|c| c.clone_ref(py))));
        // Loaded again even if the script cache holds this mtime (a changed one reloads once).
        let mut force = false;
        if let Some((app, module_dict, check)) = loaded {
            if !reload {
                return Ok(app);
            }
            match self.module_mtime(&module_dict) {
                None => force = true,
                Some(m) if m != mtime => {}
                Some(_) => {
                    let Some(check) = check else { return Ok(app) };
                    match obj::text(py, &resource()).and_then(|r| check.call1(py, &r)) {
                        Ok(answer) if answer.is_true(py) => force = true,
                        Ok(_) => return Ok(app),
                        Err(_) => {
                            check_failed(obj::take_error(py));
                            return Ok(app);
                        }
                    }
                }
            }
            if restart_on_change {
                return Err(LoadError::Stale);
            }
        }
        let module = self.load(path, mtime, reload, force).map_err(|_| LoadError::Exception(obj::take_error(py)))?;
        let cname = CString::new(name).map_err(|_| LoadError::NoCallable)?;
        let app = module.getattr(py, &cname).map_err(|_| {
            unsafe { ffi::PyErr_Clear() };
            LoadError::NoCallable
        })?;
        let check = module.getattr(py, c"reload_required").ok().filter(|f| f.is_callable(py));
        if check.is_none() {
            unsafe { ffi::PyErr_Clear() };
        }
        // Safe: a module's __dict__ (borrowed; `borrowed` takes a reference), or NULL for an
        // object that is not a module, which `load_script` never returns.
        let module_dict = unsafe { Obj::borrowed(ffi::PyModule_GetDict(module.as_ptr())) };
        data.apps.borrow_mut().insert(key, LoadedApp { app: app.clone_ref(py), module_dict, check });
        Ok(app)
    }

    /// A script module's `__mtime__`, if it has one that is an int.
    fn module_mtime(&self, module_dict: &Obj) -> Option<i64> {
        // Safe: a dict and a str; a borrowed reference or NULL, no exception set.
        let v = unsafe { ffi::PyDict_GetItem(module_dict.as_ptr(), self.data().names.mtime.as_ptr()) };
        if v.is_null() {
            return None;
        }
        let n = unsafe { ffi::PyLong_AsLongLong(v) };
        if n == -1 && unsafe { !ffi::PyErr_Occurred().is_null() } {
            unsafe { ffi::PyErr_Clear() };
            return None;
        }
        Some(n)
    }

    /// Runs the script at `path` as its module now (WSGIImportScript), so the first request
    /// for it finds it loaded. The error is the traceback.
    pub fn preload(&self, path: &std::path::Path, mtime: i64) -> Result<(), String> {
        match self.load(path, mtime, false, false) {
            Ok(_) => Ok(()),
            Err(_) => Err(match obj::take_error(self.py()) {
                Some(exc) => self.format_exception(&exc),
                None => "the script could not be loaded".to_string(),
            }),
        }
    }

    pub fn load(&self, path: &std::path::Path, mtime: i64, reload: bool, force: bool) -> PyResult<Obj> {
        let py = self.py();
        let p = obj::text(py, &path.to_string_lossy())?;
        let (mtime, reload, force) = (obj::int(py, mtime)?, obj::boolean(py, reload), obj::boolean(py, force));
        self.data().load_script.call(py, &[&p, &mtime, &reload, &force])
    }

    /// The traceback of an exception, as Python prints it.
    pub fn format_exception(&self, exc: &Obj) -> String {
        let py = self.py();
        match self.data().format_exception.call1(py, exc) {
            Ok(s) => s.as_str(py).unwrap_or("").to_string(),
            Err(_) => {
                unsafe { ffi::PyErr_Clear() };
                format!("{}: {}", exc.type_name(py), exc.display(py))
            }
        }
    }
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        unsafe { ffi::PyEval_SaveThread() };
    }
}

/// Every interpreter made so far in this process.
pub fn interpreters() -> Vec<Arc<Interp>> {
    match REGISTRY.lock() {
        Ok(registry) => registry.as_ref().map(|r| r.values().cloned().collect()).unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// A file's modification time as the script cache keeps it: microseconds (APR's `finfo.mtime`).
pub fn mtime_micros(meta: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime() * 1_000_000 + meta.mtime_nsec() / 1000
}

pub enum LoadError {
    /// The script changed since it was loaded and the caller asked not to reload in place.
    Stale,
    /// The script raised while loading (or could not be read); the exception if one was set.
    Exception(Option<Obj>),
    /// The script has no attribute with the callable's name.
    NoCallable,
}

/// Sets up a freshly created interpreter (GIL held, its thread state current): its python-path
/// and switch interval, then the `_oxwsgi` package (`bootstrap`), and records its objects.
unsafe fn setup_interpreter(interp: &Interp) -> Result<(), String> {
    // SAFETY: the caller holds the GIL with the new interpreter's thread state (see above).
    let py = Py::assume();
    let rt = RUNTIME.get().expect("runtime");
    let start = &rt.config.start;
    let options = resolved_options(rt, &interp.name);
    let result: PyResult<InterpData> = (|| {
        // python-path= / WSGIPythonPath, then each matching block's, the most specific in front.
        interp_options::add_python_path(py, &rt.config.python_path)?;
        for layer in &options.python_path_layers {
            interp_options::add_python_path(py, layer)?;
        }
        interp_options::switch_interval(py, &interp.name, interp.gil, options.switch_interval, start.switch_interval)?;
        let (a, b, c) = MOD_WSGI_VERSION;
        let mod_wsgi_version = obj::tuple(py, &[&obj::int(py, a)?, &obj::int(py, b)?, &obj::int(py, c)?])?;
        let exports = bootstrap::run(
            py,
            rt.natives,
            &SetupArgs {
                process_group: &rt.config.process_group,
                application_group: &interp.name,
                version: &mod_wsgi_version,
                threads_per_process: rt.config.threads_per_process,
                maximum_processes: rt.config.maximum_processes,
                case_sensitive: start.case_sensitive,
                restrict_stdin: options.restrict_stdin,
                restrict_stdout: options.restrict_stdout,
                restrict_signal: options.restrict_signal,
                environ: &rt.environ,
                newrelic: rt.config.newrelic.as_ref(),
            },
        )?;
        Ok(InterpData {
            py: exports,
            wsgi_version: obj::tuple(py, &[&obj::int(py, 1)?, &obj::int(py, 0)?])?,
            mod_wsgi_version,
            apache_version: obj::tuple(
                py,
                &[&obj::int(py, APACHE_VERSION.0)?, &obj::int(py, APACHE_VERSION.1)?, &obj::int(py, APACHE_VERSION.2)?],
            )?,
            true_: obj::boolean(py, true),
            false_: obj::boolean(py, false),
            names: Names::new(py)?,
            apps: RefCell::new(FastMap::default()),
            environ_strings: RefCell::default(),
        })
    })();
    match result {
        Ok(data) => {
            *interp.data.get() = Some(data);
            Ok(())
        }
        Err(_) => {
            let msg =
                obj::take_error(py).map(|e| format!("{}: {}", e.type_name(py), e.display(py))).unwrap_or_default();
            Err(format!("cannot set up Python interpreter '{}': {msg}", interp.name))
        }
    }
}

/// What the `<WSGIInterpreterOptions>` blocks and the top-level directives say for the
/// interpreter of application group `name` in this process.
fn resolved_options(rt: &Runtime, name: &str) -> crate::config::ResolvedInterpreterOptions {
    let start = &rt.config.start;
    let top = crate::config::ResolvedInterpreterOptions {
        per_interpreter_gil: start.per_interpreter_gil,
        restrict_signal: rt.config.restrict_signal,
        restrict_stdin: start.restrict_stdin,
        restrict_stdout: start.restrict_stdout,
        ..Default::default()
    };
    crate::config::resolve_interpreter_options(&start.interpreter_options, &rt.config.process_group, name, top)
}

/// Runs `f` with the current thread state's GIL released (`_py`: it is held now), and takes it
/// back when `f` returns or panics (a panic then unwinds with the GIL held, as the code above
/// expects).
///
/// # Safety
/// `f` must not call Python's C API or use a token or an `Obj` it captured: the GIL is not held
/// while it runs (a `Py` is `Copy`, so the compiler cannot see such a capture).
pub unsafe fn without_gil<R>(_py: Py<'_>, f: impl FnOnce() -> R) -> R {
    /// Takes the GIL back on drop (unwinding included).
    struct Reattach(*mut ffi::PyThreadState);
    impl Drop for Reattach {
        fn drop(&mut self) {
            if super::request_stats::measuring_gil() {
                let t = std::time::Instant::now();
                unsafe { ffi::PyEval_RestoreThread(self.0) };
                super::request_stats::gil_waited(t.elapsed());
            } else {
                unsafe { ffi::PyEval_RestoreThread(self.0) };
            }
        }
    }
    let _reattach = Reattach(ffi::PyEval_SaveThread());
    f()
}
