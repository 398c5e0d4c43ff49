//! `WSGIDaemonProcess NAME [option=value ...]`: one daemon process group.
//!
//! Every option mod_wsgi knows is accepted so an existing config keeps loading; the ones oxwsgi
//! does not act on yet come back as warnings (one line each) rather than being dropped silently,
//! and anything mod_wsgi does not know is an error. The options are defined, each once, in
//! `options.rs`; the kinds of value they take in `values.rs`.

mod options;
pub(super) mod values;

use super::args::{Args, ConfigError};
use options::Kind;
pub use options::{DaemonOption, DaemonProcess, DAEMON_OPTIONS};
use values::{Value, DIRECTIVE};

impl DaemonProcess {
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
    while let Some((option, raw)) = args.option()? {
        let Some(definition) = DAEMON_OPTIONS.iter().find(|o| o.name() == option) else {
            return Err(ConfigError::UnknownOption { directive: DIRECTIVE.to_string(), option });
        };
        if raw.is_empty() && !definition.empty_allowed() {
            return Err(ConfigError::EmptyValue { directive: DIRECTIVE.to_string(), option });
        }
        if seen.contains(&option) {
            return Err(ConfigError::RepeatedOption { directive: DIRECTIVE.to_string(), option });
        }
        match definition.kind {
            Kind::Implemented { apply, .. } => apply(&mut daemon, Value { option: &option, raw: &raw })?,
            // 0 is "off" for every one of them: what oxwsgi does anyway, so nothing to warn about
            // (mod_wsgi-express writes several such options as 0).
            Kind::Ignored if raw == "0" => {}
            Kind::Ignored => warnings
                .push(format!("{DIRECTIVE}: option '{option}' is accepted but not implemented by oxwsgi; ignored")),
        }
        seen.push(option);
    }
    // mod_wsgi's rule: giving processes= at all, even processes=1, makes the group multiprocess.
    daemon.multiprocess = seen.iter().any(|option| option == "processes");
    if daemon.script_user.is_some() && daemon.script_group.is_some() {
        return Err(ConfigError::BadArgument {
            directive: DIRECTIVE.to_string(),
            expected: "only one of script-user= and script-group= (as in mod_wsgi)".to_string(),
            value: name,
        });
    }
    Ok((daemon, warnings))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
            response_spool_size: crate::config::DEFAULT_SPOOL_SIZE,
            request_spool_size: crate::config::DEFAULT_SPOOL_SIZE,
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
    fn every_implemented_option_parses_without_a_warning() {
        // Each implemented option parses with some valid value and no warning.
        for option in DAEMON_OPTIONS.iter().filter(|o| o.is_implemented()).map(DaemonOption::name) {
            let value = match option {
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
    }

    #[test]
    fn each_option_is_defined_once_and_fills_the_field_of_its_name() {
        let mut names: Vec<&str> = DAEMON_OPTIONS.iter().map(DaemonOption::name).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "an option is defined twice");
        let implemented: Vec<String> =
            DAEMON_OPTIONS.iter().filter(|o| o.is_implemented()).map(|o| o.name().replace('-', "_")).collect();
        assert_eq!(implemented, options::FIELDS);
        let ignored: Vec<&str> =
            DAEMON_OPTIONS.iter().filter(|o| !o.is_implemented()).map(DaemonOption::name).collect();
        assert_eq!(ignored, ["response-buffer-size", "response-flush-delay"]);
    }

    #[test]
    fn defaults_are_shown_as_written() {
        let shown = |name: &str| DAEMON_OPTIONS.iter().find(|o| o.name() == name).unwrap().default_shown();
        assert_eq!(shown("threads").as_deref(), Some("15"));
        assert_eq!(shown("maximum-requests").as_deref(), Some("0 (unlimited)"));
        assert_eq!(shown("home").as_deref(), Some("Apache's working directory"));
        assert_eq!(shown("response-buffer-size"), None);
        // A written default is what parsing it gives, and unset ones are their type's zero.
        let d = DaemonProcess::new("g");
        assert_eq!(d, parse("g threads=15 maximum-requests=0 deadlock-timeout=300 server-metrics=Off"));
        assert_eq!((d.home, d.cpu_priority, d.stack_size, d.send_buffer_size), (None, None, 0, 0));
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
            "WSGIDaemonProcess: option 'threads' needs a whole number from 0 to 1000, not 'abc'"
        );
        // threads=0: a service group (mod_wsgi-express --service-script).
        assert_eq!(parse_daemon_process("g threads=0").unwrap().0.threads, 0);
        for raw in ["threads=1001", "threads=-1", "threads=+2", "threads=2x"] {
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
