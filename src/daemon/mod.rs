//! Daemon mode's own side: the group definition (`group`), shared by the parent's supervisor,
//! the Apache children that relay to it and the daemon processes; the daemon processes
//! themselves (`server`); and the wire protocol between children and daemons (`protocol`, pure
//! and fuzzed). The Apache side of daemon mode (supervisor, relay) is in `crate::apache`.

pub(crate) mod dispatch;
pub mod protocol;
pub mod stop;

// The daemon process runs inside a fork of Apache's parent and uses Apache's log (`crate::sys`).

#[cfg(not(test))]
pub(crate) mod group;
#[cfg(not(test))]
pub(crate) mod server;
