//! Daemon mode's own side: the group definition (`group`), shared by the parent's supervisor,
//! the Apache children that relay to it and the daemon processes; the daemon processes
//! themselves (`server`); and the wire protocol between children and daemons (`protocol`, pure
//! and fuzzed). The Apache side of daemon mode (supervisor, relay) is in `crate::apache`.

pub mod dispatch;
pub mod protocol;
pub mod stop;

// The daemon process runs inside a fork of Apache's parent and uses Apache's log (`crate::sys`).

#[cfg(not(test))]
pub mod group;
#[cfg(not(test))]
#[allow(clippy::not_unsafe_ptr_arg_deref, clippy::missing_safety_doc)]
pub mod server;
