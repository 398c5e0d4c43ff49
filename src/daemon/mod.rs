//! Daemon mode.
pub mod protocol;
