//! `WSGIDaemonProcess NAME [option=value ...]`: one daemon process group, with mod_wsgi's
//! defaults.
//!
//! Every option mod_wsgi knows is accepted so an existing config keeps loading; the ones oxwsgi
//! does not act on yet come back as warnings (one line each) rather than being dropped silently,
//! and anything mod_wsgi does not know is an error. Defaults and meanings follow mod_wsgi 4.x's
//! `wsgi_add_daemon_process`; where mod_wsgi uses 0 for "off", the field is an `Option` and 0
//! gives `None`.

use std::time::Duration;

use super::args::{Args, ConfigError};

const DIRECTIVE: &str = "WSGIDaemonProcess";

/// Options parsed into typed [`DaemonProcess`] fields.
pub const DAEMON_OPTIONS_IMPLEMENTED: &[&str] = &[
    "processes",
    "threads",
    "display-name",
    "home",
    "python-home",
    "python-path",
    "user",
    "group",
    "umask",
    "lang",
    "locale",
    "maximum-requests",
    "inactivity-timeout",
    "request-timeout",
    "graceful-timeout",
    "shutdown-timeout",
    "startup-timeout",
    "connect-timeout",
    "socket-timeout",
    "queue-timeout",
    "restart-interval",
    "listen-backlog",
    "socket-user",
    "python-eggs",
    "supplementary-groups",
    "cpu-time-limit",
    "cpu-priority",
    "memory-limit",
    "virtual-memory-limit",
    "stack-size",
    "send-buffer-size",
    "receive-buffer-size",
    "server-metrics",
    "switch-interval",
    "response-spool-size",
    "script-user",
    "script-group",
    "header-buffer-size",
    "response-socket-timeout",
    "deadlock-timeout",
    "eviction-timeout",
    "newrelic-config-file",
    "newrelic-environment",
    "chroot",
    "interrupt-timeout",
];

/// Options whose value may be empty, as mod_wsgi allows (`python-path=''` in the configs
/// mod_wsgi-express writes means "nothing to add").
const EMPTY_ALLOWED: &[&str] = &["python-path", "python-eggs"];

/// mod_wsgi options that are accepted (so configs load) but ignored, each with a warning.
pub const DAEMON_OPTIONS_ACCEPTED_UNIMPLEMENTED: &[&str] = &["response-buffer-size", "response-flush-delay"];

/// mod_wsgi keeps seconds in a C `int`.
const MAX_SECONDS: u64 = i32::MAX as u64;

/// One `WSGIDaemonProcess` definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonProcess {
    pub name: String,
    /// Default 1.
    pub processes: u32,
    /// `wsgi.multiprocess`: true iff `processes=` was given, even `processes=1` (mod_wsgi's rule,
    /// so load-balanced single-process groups can say so).
    pub multiprocess: bool,
    /// Request threads per process. Default 15.
    pub threads: u32,
    /// As written, `%{GROUP}` kept literally; see [`DaemonProcess::title`].
    pub display_name: Option<String>,
    /// Initial working directory; always absolute.
    pub home: Option<String>,
    pub python_home: Option<String>,
    /// `python-path` split on `:`, empty entries dropped.
    pub python_path: Vec<String>,
    /// `None` means Apache's `User`. Never root.
    pub user: Option<String>,
    /// `None` means Apache's `Group`. Never root.
    pub group: Option<String>,
    pub umask: Option<u32>,
    pub lang: Option<String>,
    pub locale: Option<String>,
    /// Requests per process before a restart; 0 = unlimited.
    pub maximum_requests: u64,
    pub inactivity_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub graceful_timeout: Option<Duration>,
    /// Default 5 s; 0 is allowed (no grace before the kill).
    pub shutdown_timeout: Duration,
    pub startup_timeout: Option<Duration>,
    /// Default 15 s.
    pub connect_timeout: Duration,
    /// Default 60 s (mod_wsgi's default is Apache's `Timeout`, itself 60 s by default).
    pub socket_timeout: Duration,
    pub queue_timeout: Option<Duration>,
    pub restart_interval: Option<Duration>,
    /// Default 100.
    pub listen_backlog: u32,
    pub socket_user: Option<String>,
    /// `PYTHON_EGG_CACHE` for the daemon (mod_wsgi sets it the same way).
    pub python_eggs: Option<String>,
    /// Groups the daemon belongs to besides its user's own.
    pub supplementary_groups: Vec<String>,
    /// RLIMIT_CPU in seconds (the process is killed past it and replaced); 0 = none.
    pub cpu_time_limit: u64,
    /// setpriority() niceness, -20..=19.
    pub cpu_priority: Option<i32>,
    /// `switch-interval=`: `sys.setswitchinterval()` in the daemon processes.
    pub switch_interval: Option<Duration>,
    /// RLIMIT_DATA and RLIMIT_AS in bytes; 0 = none.
    pub memory_limit: u64,
    pub virtual_memory_limit: u64,
    /// Request threads' stack size in bytes; 0 = oxwsgi's default (8 MiB).
    pub stack_size: u64,
    /// SO_SNDBUF / SO_RCVBUF of the group's socket in bytes; 0 = the system's default.
    pub send_buffer_size: u32,
    pub receive_buffer_size: u32,
    /// Whether `mod_wsgi.server_metrics()` reports for this group.
    pub server_metrics: bool,
    /// `response-spool-size=` (oxwsgi): most bytes of one response an Apache child keeps in a
    /// temporary file for a client that reads slower than the daemon writes (see
    /// `apache::response_buffer`); 0 turns spooling off (a slow client then holds the daemon's
    /// thread, as in mod_wsgi).
    pub response_spool_size: u64,
    /// `script-user=` / `script-group=` (name or `#id`; at most one): who must own the WSGI
    /// scripts this group runs, and their directories (see `apache::script_owner`).
    pub script_user: Option<String>,
    pub script_group: Option<String>,
    /// `header-buffer-size=`: the longest response header (name, ": ", value) the application
    /// may send; a longer one is a 500.
    pub header_buffer_size: usize,
    /// `response-socket-timeout=`: timeout of writes to the client while relaying a response;
    /// None: Apache's Timeout.
    pub response_socket_timeout: Option<Duration>,
    /// `deadlock-timeout=`: restart a process whose GIL has not been free for this long
    /// (mod_wsgi's default 300 s; 0: never).
    pub deadlock_timeout: Option<Duration>,
    /// `eviction-timeout=`: the grace of a process told to go with SIGUSR1.
    pub eviction_timeout: Option<Duration>,
    /// `interrupt-timeout=` (mod_wsgi 6): past request-timeout, a request is first interrupted
    /// (mod_wsgi.RequestTimeout raised in its thread) and has this long to unwind.
    pub interrupt_timeout: Option<Duration>,
    /// `newrelic-config-file=` / `newrelic-environment=` (mod_wsgi 4.x): the New Relic agent
    /// each of the group's interpreters initialises at start.
    pub newrelic_config_file: Option<String>,
    pub newrelic_environment: Option<String>,
    /// `chroot=`: the directory the group's processes make their root before dropping
    /// privileges (Python's standard library and the application must be inside it).
    pub chroot: Option<String>,
}

impl DaemonProcess {
    /// A group with every option at mod_wsgi's default.
    pub fn new(name: &str) -> Self {
        DaemonProcess {
            name: name.to_string(),
            processes: 1,
            multiprocess: false,
            threads: 15,
            display_name: None,
            home: None,
            python_home: None,
            python_path: Vec::new(),
            user: None,
            group: None,
            umask: None,
            lang: None,
            locale: None,
            maximum_requests: 0,
            inactivity_timeout: None,
            request_timeout: None,
            graceful_timeout: None,
            shutdown_timeout: Duration::from_secs(5),
            startup_timeout: None,
            connect_timeout: Duration::from_secs(15),
            socket_timeout: Duration::from_secs(60),
            queue_timeout: None,
            restart_interval: None,
            listen_backlog: 100,
            socket_user: None,
            python_eggs: None,
            supplementary_groups: Vec::new(),
            cpu_time_limit: 0,
            cpu_priority: None,
            switch_interval: None,
            memory_limit: 0,
            virtual_memory_limit: 0,
            stack_size: 0,
            send_buffer_size: 0,
            receive_buffer_size: 0,
            server_metrics: false,
            response_spool_size: 1 << 30,
            script_user: None,
            script_group: None,
            header_buffer_size: 32768,
            response_socket_timeout: None,
            deadlock_timeout: Some(Duration::from_secs(300)),
            eviction_timeout: None,
            interrupt_timeout: None,
            newrelic_config_file: None,
            newrelic_environment: None,
            chroot: None,
        }
    }

    /// The process title to show in `ps`, or `None` to leave it alone. As in mod_wsgi, a
    /// display-name of exactly `%{GROUP}` becomes `(wsgi:NAME)`; any other value is used as is.
    pub fn title(&self) -> Option<String> {
        let name = self.display_name.as_deref()?;
        if name == "%{GROUP}" {
            Some(format!("(wsgi:{})", self.name))
        } else {
            Some(name.to_string())
        }
    }
}

/// Parses `WSGIDaemonProcess NAME [option=value ...]`. Returns the group and one warning per
/// accepted-but-unimplemented option.
pub fn parse_daemon_process(raw_args: &str) -> Result<(DaemonProcess, Vec<String>), ConfigError> {
    let mut args = Args::new(DIRECTIVE, raw_args);
    let name = args.word()?.ok_or(ConfigError::MissingArgument {
        directive: DIRECTIVE.to_string(),
        expected: "needs a daemon process group name",
    })?;
    if name.is_empty() || name.contains(|c: char| c == '/' || c == '=' || c.is_whitespace()) {
        return Err(ConfigError::BadArgument {
            directive: DIRECTIVE.to_string(),
            expected: "the first argument must be the group name: non-empty, with no '/', '=' \
                       or whitespace"
                .to_string(),
            value: name,
        });
    }

    let mut daemon = DaemonProcess::new(&name);
    let mut warnings = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    while let Some((option, value)) = args.option()? {
        let implemented = DAEMON_OPTIONS_IMPLEMENTED.contains(&option.as_str());
        if !implemented && !DAEMON_OPTIONS_ACCEPTED_UNIMPLEMENTED.contains(&option.as_str()) {
            return Err(ConfigError::UnknownOption { directive: DIRECTIVE.to_string(), option });
        }
        if value.is_empty() && !EMPTY_ALLOWED.contains(&option.as_str()) {
            return Err(ConfigError::EmptyValue { directive: DIRECTIVE.to_string(), option });
        }
        if seen.contains(&option) {
            return Err(ConfigError::RepeatedOption { directive: DIRECTIVE.to_string(), option });
        }
        if implemented {
            apply(&mut daemon, &option, value)?;
        } else if value != "0" {
            // 0 is "off" for every one of them: what oxwsgi does anyway, so nothing to warn about
            // (mod_wsgi-express writes several such options as 0).
            warnings.push(format!("{DIRECTIVE}: option '{option}' is accepted but not implemented by oxwsgi; ignored"));
        }
        seen.push(option);
    }
    if daemon.script_user.is_some() && daemon.script_group.is_some() {
        return Err(ConfigError::BadArgument {
            directive: DIRECTIVE.to_string(),
            expected: "only one of script-user= and script-group= (as in mod_wsgi)".to_string(),
            value: name,
        });
    }
    Ok((daemon, warnings))
}

/// Sets one implemented option on `d`, validating its value.
fn apply(d: &mut DaemonProcess, option: &str, value: String) -> Result<(), ConfigError> {
    let bad = |expected: &str| ConfigError::BadValue {
        directive: DIRECTIVE.to_string(),
        option: option.to_string(),
        expected: expected.to_string(),
        value: value.clone(),
    };
    let number = |min: u64, max: u64, expected: &str| {
        whole_number(&value).filter(|n| (min..=max).contains(n)).ok_or_else(|| bad(expected))
    };
    let seconds = |min: u64| {
        let expected =
            if min == 0 { "needs a whole number of seconds" } else { "needs a whole number of seconds, at least 1" };
        number(min, MAX_SECONDS, expected).map(Duration::from_secs)
    };
    // mod_wsgi's "0 means off".
    let optional_seconds = || seconds(0).map(|t| Some(t).filter(|t| !t.is_zero()));

    match option {
        "processes" => {
            d.processes = number(1, 1000, "needs a whole number from 1 to 1000")? as u32;
            d.multiprocess = true;
        }
        "threads" => d.threads = number(1, 1000, "needs a whole number from 1 to 1000")? as u32,
        "maximum-requests" => d.maximum_requests = number(0, u64::MAX, "needs a whole number (0 = unlimited)")?,
        "listen-backlog" => d.listen_backlog = number(0, i32::MAX as u64, "needs a whole number")? as u32,
        "inactivity-timeout" => d.inactivity_timeout = optional_seconds()?,
        "request-timeout" => d.request_timeout = optional_seconds()?,
        "graceful-timeout" => d.graceful_timeout = optional_seconds()?,
        "startup-timeout" => d.startup_timeout = optional_seconds()?,
        "queue-timeout" => d.queue_timeout = optional_seconds()?,
        "restart-interval" => d.restart_interval = optional_seconds()?,
        "shutdown-timeout" => d.shutdown_timeout = seconds(0)?,
        "connect-timeout" => d.connect_timeout = seconds(1)?,
        "socket-timeout" => d.socket_timeout = seconds(1)?,
        "umask" => {
            let octal = value.bytes().all(|b| (b'0'..=b'7').contains(&b));
            let mask = u32::from_str_radix(&value, 8).ok().filter(|m| octal && *m <= 0o777);
            d.umask = Some(mask.ok_or_else(|| bad("needs an octal number from 0 to 0777"))?);
        }
        "user" | "group" => {
            let digits = value.strip_prefix('#').unwrap_or(&value);
            let is_root = value == "root" || whole_number(digits) == Some(0);
            if is_root {
                return Err(bad(if option == "user" {
                    "must not be root: daemon processes never run as root"
                } else {
                    "must not be the root group: daemon processes never run as root"
                }));
            }
            if option == "user" {
                d.user = Some(value);
            } else {
                d.group = Some(value);
            }
        }
        "home" => {
            if !value.starts_with('/') {
                return Err(bad("needs an absolute directory path"));
            }
            d.home = Some(value);
        }
        "python-path" => d.python_path = value.split(':').filter(|p| !p.is_empty()).map(str::to_string).collect(),
        "display-name" => d.display_name = Some(value),
        "python-home" => d.python_home = Some(value),
        "lang" => d.lang = Some(value),
        "locale" => d.locale = Some(value),
        "socket-user" => d.socket_user = Some(value),
        "header-buffer-size" => {
            // mod_wsgi's rule: at least 8192, or 0 for the default.
            let n = number(0, 1 << 30, "needs a number of bytes, at least 8192 (0: the default, 32768)")?;
            if n != 0 && n < 8192 {
                return Err(bad("needs a number of bytes, at least 8192 (0: the default, 32768)"));
            }
            d.header_buffer_size = if n == 0 { 32768 } else { n as usize };
        }
        "response-socket-timeout" => d.response_socket_timeout = Some(seconds(0)?).filter(|t| !t.is_zero()),
        "deadlock-timeout" => d.deadlock_timeout = Some(seconds(0)?).filter(|t| !t.is_zero()),
        "eviction-timeout" => d.eviction_timeout = Some(seconds(0)?).filter(|t| !t.is_zero()),
        "interrupt-timeout" => d.interrupt_timeout = Some(seconds(0)?).filter(|t| !t.is_zero()),
        "chroot" => {
            if !value.starts_with('/') {
                return Err(bad("needs an absolute directory path"));
            }
            d.chroot = Some(value);
        }
        "newrelic-config-file" => d.newrelic_config_file = Some(value),
        "newrelic-environment" => d.newrelic_environment = Some(value),
        "script-user" => d.script_user = Some(value),
        "script-group" => d.script_group = Some(value),
        "python-eggs" => d.python_eggs = Some(value).filter(|v| !v.is_empty()),
        "supplementary-groups" => {
            d.supplementary_groups =
                value.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect()
        }
        "cpu-time-limit" => d.cpu_time_limit = number(0, MAX_SECONDS, "needs a whole number of seconds (0 = none)")?,
        "switch-interval" => {
            d.switch_interval = Some(
                super::python_options::parse_switch_interval(DIRECTIVE, &value)
                    .map_err(|_| bad("needs a number of seconds above 0 (Python's default is 0.005)"))?,
            )
        }
        "cpu-priority" => {
            let n: Option<i32> = value.parse().ok().filter(|n| (-20..=19).contains(n));
            d.cpu_priority = Some(n.ok_or_else(|| bad("needs a whole number from -20 to 19"))?);
        }
        "memory-limit" => d.memory_limit = number(0, u64::MAX, "needs a number of bytes (0 = none)")?,
        "virtual-memory-limit" => d.virtual_memory_limit = number(0, u64::MAX, "needs a number of bytes (0 = none)")?,
        "stack-size" => {
            let n = number(0, 1 << 32, "needs a number of bytes, at least 65536 (0 = the default)")?;
            if n != 0 && n < 65536 {
                return Err(bad("needs a number of bytes, at least 65536 (0 = the default)"));
            }
            d.stack_size = n;
        }
        "send-buffer-size" | "receive-buffer-size" => {
            // mod_wsgi's lower bound for a size that is set.
            let n = number(0, i32::MAX as u64, "needs a number of bytes, 0 or at least 512")?;
            if n != 0 && n < 512 {
                return Err(bad("needs a number of bytes, 0 or at least 512"));
            }
            if option == "send-buffer-size" {
                d.send_buffer_size = n as u32;
            } else {
                d.receive_buffer_size = n as u32;
            }
        }
        "response-spool-size" => {
            d.response_spool_size = number(0, u64::MAX, "needs a number of bytes (0: no spooling)")?
        }
        "server-metrics" => d.server_metrics = super::args::on_off(&value).ok_or_else(|| bad("needs On or Off"))?,
        other => unreachable!("option '{other}' is listed as implemented but not handled"),
    }
    Ok(())
}

/// Digits only (no sign, no spaces), fitting a u64. Stricter than mod_wsgi's `atoi`, which reads
/// "12abc" as 12.
fn whole_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> DaemonProcess {
        let (d, warnings) = parse_daemon_process(raw).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        d
    }

    fn err(raw: &str) -> String {
        parse_daemon_process(raw).unwrap_err().to_string()
    }

    #[test]
    fn defaults_match_mod_wsgi() {
        let d = parse("example");
        assert_eq!(d, DaemonProcess::new("example"));
        assert_eq!(d.name, "example");
        assert_eq!((d.processes, d.multiprocess, d.threads), (1, false, 15));
        assert_eq!(d.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(d.connect_timeout, Duration::from_secs(15));
        assert_eq!(d.socket_timeout, Duration::from_secs(60));
        assert_eq!(d.listen_backlog, 100);
        assert_eq!(d.maximum_requests, 0);
        assert_eq!(d.graceful_timeout, None);
        assert_eq!(d.request_timeout, None);
        assert_eq!(d.display_name, None);
        assert_eq!(d.title(), None);
        assert!(d.python_path.is_empty());
    }

    #[test]
    fn every_implemented_option() {
        let d = parse(
            "site processes=3 threads=25 display-name=%{GROUP} home=/srv/site \
             python-home=/srv/venv python-path=/srv/site:/srv/lib user=www group=www \
             umask=0027 lang=en_US.UTF-8 locale=C.UTF-8 maximum-requests=10000 \
             inactivity-timeout=300 request-timeout=60 graceful-timeout=15 \
             shutdown-timeout=10 startup-timeout=15 connect-timeout=20 socket-timeout=90 \
             queue-timeout=45 restart-interval=3600 listen-backlog=500 socket-user=apache \
             python-eggs=/srv/eggs supplementary-groups=adm,staff cpu-time-limit=600 \
             cpu-priority=-5 memory-limit=1000000000 virtual-memory-limit=2000000000 \
             stack-size=524288 send-buffer-size=65536 receive-buffer-size=131072 server-metrics=On \
             switch-interval=0.01",
        );
        let secs = Duration::from_secs;
        let expected = DaemonProcess {
            name: "site".into(),
            processes: 3,
            multiprocess: true,
            threads: 25,
            display_name: Some("%{GROUP}".into()),
            home: Some("/srv/site".into()),
            python_home: Some("/srv/venv".into()),
            python_path: vec!["/srv/site".into(), "/srv/lib".into()],
            user: Some("www".into()),
            group: Some("www".into()),
            umask: Some(0o027),
            lang: Some("en_US.UTF-8".into()),
            locale: Some("C.UTF-8".into()),
            maximum_requests: 10000,
            inactivity_timeout: Some(secs(300)),
            request_timeout: Some(secs(60)),
            graceful_timeout: Some(secs(15)),
            shutdown_timeout: secs(10),
            startup_timeout: Some(secs(15)),
            connect_timeout: secs(20),
            socket_timeout: secs(90),
            queue_timeout: Some(secs(45)),
            restart_interval: Some(secs(3600)),
            listen_backlog: 500,
            socket_user: Some("apache".into()),
            python_eggs: Some("/srv/eggs".into()),
            supplementary_groups: vec!["adm".into(), "staff".into()],
            cpu_time_limit: 600,
            cpu_priority: Some(-5),
            switch_interval: Some(Duration::from_millis(10)),
            memory_limit: 1_000_000_000,
            virtual_memory_limit: 2_000_000_000,
            stack_size: 524288,
            send_buffer_size: 65536,
            receive_buffer_size: 131072,
            server_metrics: true,
            response_spool_size: 1 << 30,
            script_user: None,
            script_group: None,
            header_buffer_size: 32768,
            response_socket_timeout: None,
            deadlock_timeout: Some(Duration::from_secs(300)),
            eviction_timeout: None,
            interrupt_timeout: None,
            newrelic_config_file: None,
            newrelic_environment: None,
            chroot: None,
        };
        assert_eq!(d, expected);
        assert_eq!(d.title().as_deref(), Some("(wsgi:site)"));
    }

    #[test]
    fn empty_values_where_mod_wsgi_takes_them() {
        // What mod_wsgi-express writes for a site without --python-path.
        let d = parse("site python-path='' python-eggs='' threads=5");
        assert!(d.python_path.is_empty() && d.python_eggs.is_none());
        assert!(matches!(parse_daemon_process("site home=''"), Err(ConfigError::EmptyValue { .. })));
        assert!(parse_daemon_process("site script-user=a script-group=b").is_err());
        assert_eq!(parse("g header-buffer-size=0").header_buffer_size, 32768);
        assert!(parse_daemon_process("g header-buffer-size=100").is_err());
        for bad in ["cpu-priority=20", "stack-size=100", "send-buffer-size=10", "server-metrics=maybe"] {
            assert!(parse_daemon_process(&format!("g {bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn implemented_list_is_exactly_what_apply_handles() {
        // Each implemented option parses with some valid value and no warning.
        for option in DAEMON_OPTIONS_IMPLEMENTED {
            let value = match *option {
                "home" | "python-home" | "python-path" | "chroot" => "/x",
                "user"
                | "group"
                | "socket-user"
                | "script-user"
                | "script-group"
                | "newrelic-config-file"
                | "newrelic-environment"
                | "display-name"
                | "lang"
                | "locale"
                | "python-eggs"
                | "supplementary-groups" => "x",
                "server-metrics" => "On",
                "stack-size" => "65536",
                "send-buffer-size" | "receive-buffer-size" => "512",
                "header-buffer-size" => "8192",
                _ => "1",
            };
            let (_, warnings) =
                parse_daemon_process(&format!("g {option}={value}")).unwrap_or_else(|e| panic!("{option}: {e}"));
            assert!(warnings.is_empty(), "{option}");
        }
        for option in DAEMON_OPTIONS_ACCEPTED_UNIMPLEMENTED {
            assert!(!DAEMON_OPTIONS_IMPLEMENTED.contains(option), "{option} in both lists");
        }
    }

    #[test]
    fn processes_one_is_still_multiprocess() {
        let d = parse("g processes=1");
        assert_eq!((d.processes, d.multiprocess), (1, true));
    }

    #[test]
    fn title_only_expands_exact_group_token() {
        let mut d = DaemonProcess::new("site");
        d.display_name = Some("my-site".into());
        assert_eq!(d.title().as_deref(), Some("my-site"));
        // mod_wsgi compares the whole value with %{GROUP}; it is not a substitution.
        d.display_name = Some("x %{GROUP}".into());
        assert_eq!(d.title().as_deref(), Some("x %{GROUP}"));
        let quoted = parse("site display-name='%{GROUP}'");
        assert_eq!(quoted.title().as_deref(), Some("(wsgi:site)"));
    }

    #[test]
    fn zero_turns_optional_timeouts_off() {
        let d = parse(
            "g inactivity-timeout=0 request-timeout=0 graceful-timeout=0 startup-timeout=0 \
             queue-timeout=0 restart-interval=0 shutdown-timeout=0 maximum-requests=0",
        );
        assert_eq!(d.inactivity_timeout, None);
        assert_eq!(d.request_timeout, None);
        assert_eq!(d.graceful_timeout, None);
        assert_eq!(d.startup_timeout, None);
        assert_eq!(d.queue_timeout, None);
        assert_eq!(d.restart_interval, None);
        assert_eq!(d.shutdown_timeout, Duration::ZERO);
        assert_eq!(d.maximum_requests, 0);
    }

    #[test]
    fn bad_numbers() {
        assert_eq!(
            err("g threads=abc"),
            "WSGIDaemonProcess: option 'threads' needs a whole number from 1 to 1000, not 'abc'"
        );
        for raw in ["threads=0", "threads=1001", "threads=-1", "threads=+2", "threads=2x"] {
            assert!(parse_daemon_process(&format!("g {raw}")).is_err(), "{raw}");
        }
        assert_eq!(
            err("g processes=0"),
            "WSGIDaemonProcess: option 'processes' needs a whole number from 1 to 1000, not '0'"
        );
        assert_eq!(
            err("g request-timeout=1.5"),
            "WSGIDaemonProcess: option 'request-timeout' needs a whole number of seconds, \
             not '1.5'"
        );
        assert_eq!(
            err("g socket-timeout=0"),
            "WSGIDaemonProcess: option 'socket-timeout' needs a whole number of seconds, \
             at least 1, not '0'"
        );
        assert!(parse_daemon_process("g connect-timeout=0").is_err());
        assert!(parse_daemon_process("g request-timeout=99999999999").is_err());
        assert!(parse_daemon_process("g maximum-requests=-5").is_err());
        assert!(parse_daemon_process("g listen-backlog=3000000000").is_err());
        assert_eq!(parse("g maximum-requests=18446744073709551615").maximum_requests, u64::MAX);
    }

    #[test]
    fn umask_is_octal() {
        assert_eq!(parse("g umask=022").umask, Some(0o22));
        assert_eq!(parse("g umask=0").umask, Some(0));
        assert_eq!(parse("g umask=777").umask, Some(0o777));
        for bad in ["8", "0o22", "1000", "-1", "abc"] {
            assert_eq!(
                err(&format!("g umask={bad}")),
                format!(
                    "WSGIDaemonProcess: option 'umask' needs an octal number from 0 to 0777, \
                     not '{bad}'"
                )
            );
        }
    }

    #[test]
    fn root_is_refused() {
        for raw in ["user=root", "user=0", "user=#0", "group=root", "group=0", "group=#00"] {
            let msg = err(&format!("g {raw}"));
            assert!(msg.contains("never run as root"), "{raw}: {msg}");
        }
        assert_eq!(
            err("g user=root"),
            "WSGIDaemonProcess: option 'user' must not be root: daemon processes never run as \
             root, not 'root'"
        );
        // Other numeric ids are fine.
        assert_eq!(parse("g user=#1000").user.as_deref(), Some("#1000"));
        assert_eq!(parse("g group=33").group.as_deref(), Some("33"));
        assert_eq!(parse("g user=rooter").user.as_deref(), Some("rooter"));
    }

    #[test]
    fn home_must_be_absolute() {
        assert_eq!(err("g home=srv"), "WSGIDaemonProcess: option 'home' needs an absolute directory path, not 'srv'");
    }

    #[test]
    fn python_path_splits_on_colons() {
        assert_eq!(parse("g python-path=/a::/b:").python_path, ["/a", "/b"]);
        assert_eq!(parse("g python-path=/only").python_path, ["/only"]);
        assert_eq!(parse(r#"g python-path="/with space:/b""#).python_path, ["/with space", "/b"]);
    }

    #[test]
    fn unimplemented_options_set_to_0_do_not_warn() {
        let (_, warnings) = parse_daemon_process("g response-flush-delay=0 response-buffer-size=0").unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn unimplemented_options_warn_once_each() {
        let (d, warnings) =
            parse_daemon_process("g response-buffer-size=65536 threads=4 response-flush-delay=5 interrupt-timeout=10")
                .unwrap();
        assert_eq!((d.threads, d.interrupt_timeout), (4, Some(Duration::from_secs(10))));
        assert_eq!(
            warnings,
            [
                "WSGIDaemonProcess: option 'response-buffer-size' is accepted but not implemented by oxwsgi; ignored",
                "WSGIDaemonProcess: option 'response-flush-delay' is accepted but not implemented by oxwsgi; ignored",
            ]
        );
        let (d, _) = parse_daemon_process("g deadlock-timeout=0 eviction-timeout=7").unwrap();
        assert_eq!((d.deadlock_timeout, d.eviction_timeout), (None, Some(Duration::from_secs(7))));
        assert_eq!(DaemonProcess::new("g").deadlock_timeout, Some(Duration::from_secs(300)), "mod_wsgi's default");
    }

    #[test]
    fn option_errors() {
        assert_eq!(err("g bogus=1"), "WSGIDaemonProcess: unknown option 'bogus'");
        assert_eq!(err("g bogus="), "WSGIDaemonProcess: unknown option 'bogus'");
        assert_eq!(err("g threads="), "WSGIDaemonProcess: option 'threads' needs a value");
        assert_eq!(err("g lang=''"), "WSGIDaemonProcess: option 'lang' needs a value");
        assert_eq!(err("g threads=2 threads=3"), "WSGIDaemonProcess: option 'threads' is given more than once");
        assert_eq!(err("g chroot=/a chroot=/b"), "WSGIDaemonProcess: option 'chroot' is given more than once");
        assert_eq!(err("g threads"), "WSGIDaemonProcess: expected an option of the form name=value, not 'threads'");
        assert_eq!(err("g display-name='x"), "WSGIDaemonProcess: unterminated ' quote in ''x'");
    }

    #[test]
    fn name_rules() {
        assert_eq!(err(""), "WSGIDaemonProcess: needs a daemon process group name");
        assert_eq!(err("  "), "WSGIDaemonProcess: needs a daemon process group name");
        for name in [r#""""#, "a/b", r#""a b""#, "threads=5"] {
            assert!(err(name).starts_with("WSGIDaemonProcess: the first argument must be the group name"), "{name}");
        }
        assert_eq!(parse("www.example.com").name, "www.example.com");
        assert_eq!(parse("'quoted-name' threads=2").name, "quoted-name");
    }

    #[test]
    fn quoted_values() {
        let d = parse(r#"g display-name="my app" lang='en_US.UTF-8'"#);
        assert_eq!(d.display_name.as_deref(), Some("my app"));
        assert_eq!(d.title().as_deref(), Some("my app"));
        assert_eq!(d.lang.as_deref(), Some("en_US.UTF-8"));
    }
}
