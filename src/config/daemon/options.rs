//! Every `WSGIDaemonProcess` option, each defined once, in `daemon_options!` below: its name and
//! value as the docs write them, its default, how its value is read into its [`DaemonProcess`]
//! field, and what it means. The struct's fields, the defaults, the list of names and the parse
//! dispatch are all made from that one table, so adding an option is adding one entry to it.
//! docs/configuration.md's tables of daemon options are this table's text (tests/docs.rs
//! checks them row by row, in this order).
//!
//! Defaults and meanings follow mod_wsgi 4.x's `wsgi_add_daemon_process`; where mod_wsgi uses 0
//! for "off", the field is an `Option` and 0 gives `None`.

use std::time::Duration;

use super::values::{Value, DIRECTIVE, MAX_SECONDS};
use crate::config::args::ConfigError;
use crate::config::python_options::parse_switch_interval;
use Initial::{Unset, Written, WrittenNote};

/// One option as defined below.
pub struct DaemonOption {
    /// The option as the docs show it: `threads=N`.
    pub syntax: &'static str,
    /// What it does (for an ignored option: what it does in mod_wsgi, and why oxwsgi need not).
    pub doc: &'static str,
    pub(super) kind: Kind,
}

pub(super) enum Kind {
    /// Read into the [`DaemonProcess`] field of the same name (`_` for `-`).
    Implemented {
        default: Initial,
        /// Whether an empty value (`python-path=''`) is taken (mod_wsgi-express writes some).
        empty_allowed: bool,
        apply: fn(&mut DaemonProcess, Value) -> Result<(), ConfigError>,
    },
    /// One of mod_wsgi's that oxwsgi accepts, so configurations keep loading, and ignores: with a
    /// warning, unless the value is 0 (off, which is what oxwsgi does).
    Ignored,
}

/// Where an option's field starts when the option is not given.
pub(super) enum Initial {
    /// As if the option were written with this value; the docs show the value.
    Written(&'static str),
    /// The same; the docs show the value and the note in parentheses: `0 (unlimited)`.
    WrittenNote(&'static str, &'static str),
    /// At its type's zero (`None`, empty, 0, false); the docs say what that means.
    Unset(&'static str),
}

impl DaemonOption {
    /// The name written before `=`.
    pub fn name(&self) -> &'static str {
        self.syntax.split_once('=').map_or(self.syntax, |(name, _)| name)
    }

    /// Whether oxwsgi acts on it (else it is accepted and ignored).
    pub fn is_implemented(&self) -> bool {
        matches!(self.kind, Kind::Implemented { .. })
    }

    /// The default as the docs show it; `None` for an ignored option.
    pub fn default_shown(&self) -> Option<String> {
        match self.kind {
            Kind::Implemented { default: Written(raw), .. } => Some(raw.to_string()),
            Kind::Implemented { default: WrittenNote(raw, note), .. } => Some(format!("{raw} ({note})")),
            Kind::Implemented { default: Unset(shown), .. } => Some(shown.to_string()),
            Kind::Ignored => None,
        }
    }

    pub(super) fn empty_allowed(&self) -> bool {
        matches!(self.kind, Kind::Implemented { empty_allowed: true, .. })
    }
}

impl DaemonProcess {
    /// A group with every option at its default.
    pub fn new(name: &str) -> Self {
        let mut daemon = DaemonProcess::zero(name);
        for option in DAEMON_OPTIONS {
            if let Kind::Implemented { default: Written(raw) | WrittenNote(raw, _), apply, .. } = option.kind {
                let value = Value { option: option.name(), raw };
                apply(&mut daemon, value).expect("written defaults are valid values (unit-tested)");
            }
        }
        daemon
    }
}

/// `parse(value)`, typed for the closures of the table below.
fn read<'a, T>(value: Value<'a>, parse: impl FnOnce(Value<'a>) -> Result<T, ConfigError>) -> Result<T, ConfigError> {
    parse(value)
}

/// Makes, from the table below, [`DaemonProcess`] (a field per implemented option, after `name`
/// and `multiprocess`), `DaemonProcess::zero` and [`DAEMON_OPTIONS`].
macro_rules! daemon_options {
    (
        ignored {
            $({ syntax: $ignored_syntax:literal, doc: $ignored_doc:literal, })*
        }
        $(
            $(#[$note:meta])*
            $field:ident: $ty:ty {
                syntax: $syntax:literal,
                default: $default:expr,
                $(empty_allowed: $empty_allowed:literal,)?
                parse: $parse:expr,
                doc: $doc:literal,
            }
        )*
    ) => {
        /// One `WSGIDaemonProcess` definition.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct DaemonProcess {
            pub name: String,
            /// `wsgi.multiprocess`: true iff `processes=` was given, even `processes=1` (mod_wsgi's
            /// rule, so load-balanced single-process groups can say so).
            pub multiprocess: bool,
            $(
                #[doc = concat!("`", $syntax, "`: ", $doc)]
                #[doc = ""]
                $(#[$note])*
                pub $field: $ty,
            )*
        }

        impl DaemonProcess {
            /// Every option's field at its type's zero, before the defaults are written in.
            fn zero(name: &str) -> Self {
                DaemonProcess { name: name.to_string(), multiprocess: false, $($field: <$ty>::default(),)* }
            }
        }

        /// Every option, in the order of docs/configuration.md's tables.
        pub static DAEMON_OPTIONS: &[DaemonOption] = &[
            $(DaemonOption {
                syntax: $syntax,
                doc: $doc,
                kind: Kind::Implemented {
                    default: $default,
                    empty_allowed: daemon_options!(@flag $($empty_allowed)?),
                    apply: |daemon, value| {
                        daemon.$field = read(value, $parse)?;
                        Ok(())
                    },
                },
            },)*
            $(DaemonOption { syntax: $ignored_syntax, doc: $ignored_doc, kind: Kind::Ignored },)*
        ];

        /// The field of each implemented option, in table order.
        #[cfg(test)]
        pub(super) const FIELDS: &[&str] = &[$(stringify!($field)),*];
    };
    (@flag) => { false };
    (@flag $flag:literal) => { $flag };
}

daemon_options! {
    // mod_wsgi's options that oxwsgi accepts and ignores (docs: "Options accepted and ignored").
    ignored {
        {
            syntax: "response-buffer-size=BYTES",
            doc: "How much of a response the Apache child buffers before it blocks the daemon. In oxwsgi the child \
                keeps at most Apache's own `FlushMaxThreshold` (64 KiB) of a response in memory for a slow client \
                and puts the rest in a temporary file (`response-spool-size=`).",
        }
        {
            syntax: "response-flush-delay=MS",
            doc: "mod_wsgi 6: how long daemon output may wait before it is flushed to Apache (oxwsgi flushes at the \
                end of each block the application yields).",
        }
    }

    // The options oxwsgi implements (docs: "Options oxwsgi implements").
    processes: u32 {
        syntax: "processes=N",
        default: Written("1"),
        parse: |v| v.number(1, 1000, "needs a whole number from 1 to 1000").map(|n| n as u32),
        doc: "Number of daemon processes (1–1000). Giving the option at all, even `processes=1`, makes \
            `wsgi.multiprocess` true (mod_wsgi's rule, for load-balanced single-process groups).",
    }
    threads: u32 {
        syntax: "threads=N",
        default: Written("15"),
        parse: |v| v.number(0, 1000, "needs a whole number from 0 to 1000").map(|n| n as u32),
        doc: "Request threads per process (0–1000). A process accepts a connection only while one of its threads is \
            free; the others wait in the group's shared backlog for any process. `threads=0` (mod_wsgi-express \
            `--service-script`) makes a service group: each process runs the group's `WSGIImportScript` scripts \
            and serves no requests (a request sent there is answered `503`); when the scripts end, the process \
            exits and is started again.",
    }
    /// As written, `%{GROUP}` kept literally; see [`DaemonProcess::title`].
    display_name: Option<String> {
        syntax: "display-name=NAME",
        default: Unset("none"),
        parse: Value::any,
        doc: "The process title shown by `ps`. `%{GROUP}` gives `(wsgi:NAME)`; without the option the daemon keeps \
            the Apache parent's command line.",
    }
    /// Always absolute.
    home: Option<String> {
        syntax: "home=DIR",
        default: Unset("Apache's working directory"),
        parse: Value::absolute_path,
        doc: "Working directory of the daemon processes (`HOME` is the user's home directory either way). Not \
            added to `sys.path` (use `python-path=`).",
    }
    python_home: Option<String> {
        syntax: "python-home=DIR",
        default: Unset("`WSGIPythonHome`, else the Python oxwsgi was built with"),
        parse: Value::any,
        doc: "The Python prefix or virtualenv the group runs.",
    }
    /// Split on `:`, empty entries dropped.
    python_path: Vec<String> {
        syntax: "python-path=DIR[:DIR...]",
        default: Unset("none"),
        empty_allowed: true,
        parse: Value::path_list,
        doc: "Directories added in front of `sys.path` with `site.addsitedir`, as `WSGIPythonPath` does for embedded \
            mode.",
    }
    /// `None` means Apache's `User`.
    user: Option<String> {
        syntax: "user=NAME",
        default: Unset("Apache's `User`"),
        parse: |v| v.not_root("root"),
        doc: "The user the processes run as (`#uid` accepted). Never root.",
    }
    /// `None` means Apache's `Group`.
    group: Option<String> {
        syntax: "group=NAME",
        default: Unset("the user's primary group with `user=`, else Apache's `Group`"),
        parse: |v| v.not_root("the root group"),
        doc: "The group the processes run as. Never root.",
    }
    umask: Option<u32> {
        syntax: "umask=OCTAL",
        default: Unset("inherited from Apache"),
        parse: Value::umask,
        doc: "File-creation mask of the processes (0–0777).",
    }
    lang: Option<String> {
        syntax: "lang=VALUE",
        default: Unset("inherited"),
        parse: Value::any,
        doc: "Sets `LANG` in the processes.",
    }
    locale: Option<String> {
        syntax: "locale=VALUE",
        default: Unset("inherited"),
        parse: Value::any,
        doc: "Sets `LC_ALL` and the C locale (`setlocale`) in the processes.",
    }
    maximum_requests: u64 {
        syntax: "maximum-requests=N",
        default: WrittenNote("0", "unlimited"),
        parse: |v| v.number(0, u64::MAX, "needs a whole number (0 = unlimited)"),
        doc: "After N requests a process stops accepting, finishes what it has (within `graceful-timeout`, else \
            `shutdown-timeout`) and is replaced.",
    }
    inactivity_timeout: Option<Duration> {
        syntax: "inactivity-timeout=S",
        default: Unset("off"),
        parse: Value::optional_seconds,
        doc: "A process that has had no request for S seconds exits and is replaced (memory back to the system).",
    }
    request_timeout: Option<Duration> {
        syntax: "request-timeout=S",
        default: Unset("off"),
        parse: Value::optional_seconds,
        doc: "A request running longer than S seconds is answered `504` (or cut off if its response has begun), the \
            Python stack of every thread is written to the error log, and the process is restarted.",
    }
    graceful_timeout: Option<Duration> {
        syntax: "graceful-timeout=S",
        default: Unset("off"),
        parse: Value::optional_seconds,
        doc: "How long a process being recycled (`maximum-requests`, `restart-interval`, Apache graceful restart) \
            may finish its requests; without it, `shutdown-timeout` applies.",
    }
    shutdown_timeout: Duration {
        syntax: "shutdown-timeout=S",
        default: Written("5"),
        parse: |v| v.seconds(0),
        doc: "How long a stopping process waits for running requests before exiting anyway. 0 exits at once.",
    }
    startup_timeout: Option<Duration> {
        syntax: "startup-timeout=S",
        default: Unset("off"),
        parse: Value::optional_seconds,
        doc: "When a WSGI script failed to load and has not loaded successfully within S seconds of that failure, \
            the process is replaced (a fresh interpreter may succeed where one left in a bad state by a failed \
            import does not).",
    }
    connect_timeout: Duration {
        syntax: "connect-timeout=S",
        default: Written("15"),
        parse: |v| v.seconds(1),
        doc: "How long an Apache worker keeps trying to reach the group's socket (while daemons start or restart) \
            before answering `503`. At least 1.",
    }
    /// mod_wsgi's default is Apache's `Timeout`, itself 60 s by default.
    socket_timeout: Duration {
        syntax: "socket-timeout=S",
        default: Written("60"),
        parse: |v| v.seconds(1),
        doc: "Read and write timeout on the connection between an Apache worker and a daemon; a daemon that goes \
            silent for longer gets `504` (or a cut-off response). At least 1.",
    }
    queue_timeout: Option<Duration> {
        syntax: "queue-timeout=S",
        default: Unset("off"),
        parse: Value::optional_seconds,
        doc: "A request that no daemon thread has taken within S seconds of Apache sending it (once Apache has collected its body, see `request-spool-size=`: an upload is not queueing) is answered `504` as \
            soon as that time runs out (mod_wsgi answers only once a thread is free), with mod_wsgi's line `Queue \
            timeout expired for WSGI daemon process 'NAME'.`; the daemon never runs it later.",
    }
    restart_interval: Option<Duration> {
        syntax: "restart-interval=S",
        default: Unset("off"),
        parse: Value::optional_seconds,
        doc: "Each process is recycled (as for `maximum-requests`) after running S seconds.",
    }
    listen_backlog: u32 {
        syntax: "listen-backlog=N",
        default: Written("100"),
        parse: |v| v.number(0, i32::MAX as u64, "needs a whole number").map(|n| n as u32),
        doc: "Backlog of the group's listening socket.",
    }
    socket_user: Option<String> {
        syntax: "socket-user=NAME",
        default: Unset("Apache's `User`"),
        parse: Value::any,
        doc: "Owner of the group's socket, for an Apache whose children run as another user.",
    }
    python_eggs: Option<String> {
        syntax: "python-eggs=DIR",
        default: Unset("none"),
        empty_allowed: true,
        parse: |v| Ok(Some(v.raw.to_string()).filter(|s| !s.is_empty())),
        doc: "Sets `PYTHON_EGG_CACHE` in the processes. An empty value (`python-eggs=''`) sets nothing.",
    }
    supplementary_groups: Vec<String> {
        syntax: "supplementary-groups=G1,G2",
        default: Unset("none"),
        parse: Value::name_list,
        doc: "Groups (names or `#gid`) the processes belong to besides their user's own (`initgroups`). An unknown \
            group stops the process with an error line.",
    }
    cpu_time_limit: u64 {
        syntax: "cpu-time-limit=S",
        default: WrittenNote("0", "none"),
        parse: |v| v.number(0, MAX_SECONDS, "needs a whole number of seconds (0 = none)"),
        doc: "`RLIMIT_CPU`: past S seconds of CPU time the kernel ends the process (SIGXCPU, then SIGKILL a second \
            later) and a new one starts.",
    }
    cpu_priority: Option<i32> {
        syntax: "cpu-priority=N",
        default: Unset("inherited from Apache"),
        parse: Value::niceness,
        doc: "Niceness of the processes (−20 to 19; lowering it needs Apache to start as root).",
    }
    switch_interval: Option<Duration> {
        syntax: "switch-interval=S",
        default: Unset("Python's (0.005)"),
        parse: |v| {
            let interval = parse_switch_interval(DIRECTIVE, v.raw);
            interval.map(Some).map_err(|_| v.bad("needs a number of seconds above 0 (Python's default is 0.005)"))
        },
        doc: "`sys.setswitchinterval(S)` in the daemon processes (seconds, above 0). `WSGISwitchInterval` does not \
            apply to daemons.",
    }
    memory_limit: u64 {
        syntax: "memory-limit=BYTES",
        default: WrittenNote("0", "none"),
        parse: |v| v.number(0, u64::MAX, "needs a number of bytes (0 = none)"),
        doc: "`RLIMIT_DATA` of the processes: an allocation past it fails (`MemoryError` in Python).",
    }
    virtual_memory_limit: u64 {
        syntax: "virtual-memory-limit=BYTES",
        default: WrittenNote("0", "none"),
        parse: |v| v.number(0, u64::MAX, "needs a number of bytes (0 = none)"),
        doc: "`RLIMIT_AS` of the processes.",
    }
    /// 0: oxwsgi's default.
    stack_size: u64 {
        syntax: "stack-size=BYTES",
        default: Unset("8 MiB"),
        parse: |v| v.zero_or_at_least(65536, 1 << 32, "needs a number of bytes, at least 65536 (0 = the default)"),
        doc: "Stack size of each request thread (at least 65536).",
    }
    /// 0: the system's default.
    send_buffer_size: u32 {
        syntax: "send-buffer-size=BYTES",
        default: Unset("the system's"),
        parse: |v| {
            v.zero_or_at_least(512, i32::MAX as u64, "needs a number of bytes, 0 or at least 512").map(|n| n as u32)
        },
        doc: "`SO_SNDBUF` of the group's socket (0, or at least 512).",
    }
    /// 0: the system's default.
    receive_buffer_size: u32 {
        syntax: "receive-buffer-size=BYTES",
        default: Unset("the system's"),
        parse: |v| {
            v.zero_or_at_least(512, i32::MAX as u64, "needs a number of bytes, 0 or at least 512").map(|n| n as u32)
        },
        doc: "`SO_RCVBUF` of the group's socket (0, or at least 512).",
    }
    server_metrics: bool {
        syntax: "server-metrics=On|Off",
        default: Written("Off"),
        parse: Value::on_off,
        doc: "`mod_wsgi.server_metrics()` in the group's processes returns Apache's scoreboard (as \
            `WSGIServerMetrics` does for embedded mode), where the process has it: daemon processes forked at \
            Apache's first start, before Apache makes its scoreboard, return `None` (as under mod_wsgi); those \
            started after a graceful restart have it.",
    }
    interrupt_timeout: Option<Duration> {
        syntax: "interrupt-timeout=S",
        default: WrittenNote("0", "off"),
        parse: Value::optional_seconds,
        doc: "As in mod_wsgi 6: when `request-timeout` fires, `mod_wsgi.RequestTimeout` (a `BaseException`, so \
            `except Exception:` does not swallow it) is first raised in that request's thread alone, its Python \
            stack and `Injected RequestTimeout into thread ...` logged. If the request unwinds within S seconds it \
            is answered `504` (or cut off if its response has begun), logged `Request interrupted by RequestTimeout; \
            thread recovered.` without a traceback, and the process goes on serving. If it does not (blocked outside \
            Python, say in a socket read), the process restarts as with `request-timeout` alone.",
    }
    deadlock_timeout: Option<Duration> {
        syntax: "deadlock-timeout=S",
        default: Written("300"),
        parse: Value::optional_seconds,
        doc: "A thread of each process takes the GIL once a second; when it has not got it for S seconds (a C \
            extension that never releases it, a deadlock with the GIL), the process is replaced at once, logged. 0: \
            never.",
    }
    eviction_timeout: Option<Duration> {
        syntax: "eviction-timeout=S",
        default: Unset("none"),
        parse: Value::optional_seconds,
        doc: "As in mod_wsgi: with it, SIGUSR1 to a daemon process (Apache's graceful restart, or `kill -USR1` on \
            one process to evict it) makes it stop taking requests and finish its own within S seconds instead of \
            `graceful-timeout`. (SIGHUP and SIGUSR2 are the application's: `mod_wsgi.subscribe_signals`.)",
    }
    header_buffer_size: usize {
        syntax: "header-buffer-size=BYTES",
        default: Written("32768"),
        parse: |v| {
            let expected = "needs a number of bytes, at least 8192 (0: the default, 32768)";
            v.zero_or_at_least(8192, 1 << 30, expected).map(|n| if n == 0 { 32768 } else { n as usize })
        },
        doc: "The longest response header (name, `: `, value) an application of the group may send; a longer one \
            makes the response a `500`, logged. At least 8192, or 0 for the default (mod_wsgi's rule).",
    }
    /// `None`: Apache's `Timeout`.
    response_socket_timeout: Option<Duration> {
        syntax: "response-socket-timeout=S",
        default: Unset("Apache's `Timeout`"),
        parse: Value::optional_seconds,
        doc: "Timeout of each write to the client while a response of the group is relayed (0: Apache's `Timeout`). \
            With spooling (`response-spool-size=`) a slow client rarely makes a write wait; without it, this is how \
            long a stalled client may hold a daemon thread.",
    }
    chroot: Option<String> {
        syntax: "chroot=DIR",
        default: Unset("none"),
        parse: Value::absolute_path,
        doc: "The group's processes make DIR their root directory (and `/` their working directory) before they drop \
            privileges, so Python's standard library (`DIR/usr/lib/python3.11`), the WSGI scripts (at the same path \
            as outside, which is where Apache names them) and everything the application opens must be inside it. A \
            directory that cannot be entered is logged and the process exits (and is retried once a second).",
    }
    newrelic_config_file: Option<String> {
        syntax: "newrelic-config-file=FILE",
        default: Unset("none"),
        parse: Value::any,
        doc: "mod_wsgi 4.x: each interpreter of the group calls `newrelic.agent.initialize(FILE, ENVIRONMENT)` when \
            it is made (the `newrelic` package must be importable there; if it is not, that is logged and the site \
            runs without it).",
    }
    newrelic_environment: Option<String> {
        syntax: "newrelic-environment=NAME",
        default: Unset("none"),
        parse: Value::any,
        doc: "The environment passed with it (else `None`).",
    }
    /// Name or `#id`; checked by `apache::script_owner`.
    script_user: Option<String> {
        syntax: "script-user=NAME",
        default: Unset("none"),
        parse: Value::any,
        doc: "The group runs only WSGI scripts owned by this user (name or `#uid`), in a directory owned by it, \
            neither writable by group or others; any other script is refused with `403` and the reason logged \
            (checked by the Apache child before the request is sent). At most one of `script-user=` and \
            `script-group=`.",
    }
    script_group: Option<String> {
        syntax: "script-group=NAME",
        default: Unset("none"),
        parse: Value::any,
        doc: "The same for a group: script and directory of that group, not writable by everyone.",
    }
    /// Used by `apache::response_buffer`.
    response_spool_size: u64 {
        syntax: "response-spool-size=BYTES",
        default: WrittenNote("33554432", "32 MiB"),
        parse: |v| v.number(0, u64::MAX, crate::config::spool::SPOOL_SIZE_EXPECTED),
        doc: "**oxwsgi only.** A client that reads slower than the daemon writes gets the rest of its response from \
            a temporary file of the Apache child, so the daemon's thread is free as soon as the application has \
            produced its body (see [operations](operations.md#slow-clients)); this is the most bytes of one \
            response kept there. Past them the Apache child waits for the client (and the daemon for the child), as \
            mod_wsgi always does. `0` turns the file off.",
    }
    /// Used by `apache::body_wait` (through `apache::request`).
    request_spool_size: u64 {
        syntax: "request-spool-size=BYTES",
        default: WrittenNote("33554432", "32 MiB"),
        parse: |v| v.number(0, u64::MAX, crate::config::spool::SPOOL_SIZE_EXPECTED),
        doc: "**oxwsgi only.** A request body is collected by the Apache child (64 KiB in memory, the rest in a \
            temporary file) and the request is sent to the group only once it has arrived, so no daemon thread \
            waits on a slow upload (nor, on the event MPM, an Apache thread: see [operations](operations.md#slow-clients)); this is the most bytes of one \
            body collected first. A longer body's first BYTES are collected, and the application reads the rest \
            from the client as in mod_wsgi. A body that fails on the way (a client that gives up, \
            `mod_reqtimeout`, `LimitRequestBody`) is answered by Apache (400, 408, 413) and the application is \
            not called. `0` turns collecting off.",
    }
}
