//! Directive argument parsing: the raw text Apache hands a `RAW_ARGS` directive, turned into
//! plain, validated Rust values.
//!
//! Why it is pure: `cmd_parms` and pools stay in `src/apache`, so every rule here (quoting,
//! `name=value` options, ranges, defaults) is unit-tested without a server, and a bad config
//! fails at startup with one line naming the directive, the option and the bad value, instead of
//! misbehaving at request time.
//!
//! Words are split the way Apache's `ap_getword_conf` does and options the way mod_wsgi's
//! `wsgi_parse_option` does, so existing mod_wsgi configs mean the same thing here.

mod args;
mod daemon;
mod head_to_get;
mod interpreter_options;
mod python_home;
mod python_options;
mod restrict_process;
mod script_alias;
mod scripts;
pub(crate) mod spool;
mod telemetry;

pub use args::{parse_on_off, split_args, ConfigError};
pub use head_to_get::{parse_map_head_to_get, MapHeadToGet};
pub use interpreter_options::{
    parse_selectors as parse_interpreter_selectors, resolve as resolve_interpreter_options, resolve_free_threading,
    Block as InterpreterOptions, Resolved as ResolvedInterpreterOptions,
    ALLOWED_IN_BLOCK as ALLOWED_IN_INTERPRETER_OPTIONS,
};
pub use python_home::{
    check as check_python_home_dir, check_python_home, parse_pyvenv_cfg, python_in, HomeError, PyvenvCfg, BUILD_PYTHON,
    PYTHON_VERSION,
};
pub use python_options::{parse_hash_seed, parse_switch_interval};
pub use restrict_process::{parse_restrict_process, RestrictProcess};
pub use spool::{parse_spool_size, DEFAULT_SPOOL_SIZE};
pub use telemetry::{parse_telemetry_options, parse_telemetry_service};

pub use daemon::{parse_daemon_process, DaemonOption, DaemonProcess, DAEMON_OPTIONS};
pub use script_alias::{parse_script_alias, MountOptions, ScriptAlias};
pub use scripts::{
    parse_auth_script, parse_handler_script, parse_import_script, AuthScript, HandlerScript, ImportScript,
    HANDLER_CALLABLE,
};
