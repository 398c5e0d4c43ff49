//! Everything that runs Apache's hooks: the directive table, the hooks, embedded mode's request
//! handling, the response sink both modes write to, the Apache-child relay of daemon mode and
//! the parent's supervisor of daemon processes. The bindings and thin helpers they share are
//! in `crate::sys`.
//!
//! The raw pointers these functions take (request_rec, server_rec, cmd_parms, pools) come from
//! Apache and are valid for the duration of the hook or callback that passes them on; the
//! functions are the thin wrappers that keep that assumption in one place.

pub mod auth;
pub mod body_wait;
pub mod commands;
pub mod conf;
pub mod directive;
pub mod dispatch;
pub mod environ;
pub mod handler_script;
pub mod hooks;
pub mod interpreter_options;
pub mod metrics;
pub mod proxy;
pub mod python_start;
pub mod relay;
pub mod request;
pub mod request_body;
pub mod request_note;
pub mod request_view;
pub mod response;
pub mod response_buffer;
pub mod script_owner;
pub mod slow_requests;
pub mod supervisor;
pub mod telemetry;
pub mod translate;
pub mod vhost;
pub mod xsendfile;
