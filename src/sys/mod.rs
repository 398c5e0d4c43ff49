//! Apache's C API as every layer that runs inside httpd uses it: the raw bindings (`ffi`) and
//! thin safe helpers over them (`util`: logging, pools, tables, strings). Nothing here knows
//! oxwsgi's configuration, requests or Python.
#![allow(clippy::not_unsafe_ptr_arg_deref, clippy::missing_safety_doc)]
pub mod ffi;
pub mod scoreboard;
pub mod util;
