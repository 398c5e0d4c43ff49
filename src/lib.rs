//! oxwsgi: an Apache httpd 2.4 module that hosts Python WSGI applications.
//!
//! Data flows one way: Apache hook -> request view -> route -> interpreter -> WSGI adapter ->
//! Apache output. The pure layers (`config`, `routing`, `appgroup`, `daemon::protocol`) know
//! nothing of Apache or Python, so unit tests cover them without a server. Everything that
//! calls into Apache is in `apache` and is left out of unit-test builds (Apache's symbols exist
//! only inside the httpd process).

// Only `config` and `daemon::protocol` are the library's public face (integration tests and the
// fuzzer use them); everything else is crate-private, so the compiler flags dead code. Unit-test
// builds leave `apache` and most of `sys` out (Apache's symbols exist only inside httpd), which
// leaves what only they use unused there: the module build is the one that tells dead code.
#![cfg_attr(test, allow(dead_code, unused_imports))]

pub(crate) mod appgroup;
pub(crate) mod collected_body;
pub mod config;
pub mod daemon;
pub(crate) mod metrics;
pub(crate) mod proxy_headers;
pub(crate) mod python;
pub(crate) mod request_plan;
pub(crate) mod routing;
pub(crate) mod spool;
pub(crate) mod telemetry;
pub(crate) mod xsendfile;

#[cfg(not(test))]
pub(crate) mod apache;
pub(crate) mod sys;

#[cfg(not(test))]
pub use module::wsgi_module;

#[cfg(not(test))]
mod module {
    use crate::apache::{commands, conf, hooks};
    use crate::sys::{ffi, util};
    use std::ptr;

    /// The module record Apache finds with `LoadModule wsgi_module ...`. Its name is mod_wsgi's,
    /// so `<IfModule mod_wsgi.c>` sections keep working. Apache writes into it (index, links).
    #[no_mangle]
    pub static mut wsgi_module: ffi::module = ffi::module {
        version: ffi::MODULE_MAGIC_NUMBER_MAJOR as i32,
        minor_version: ffi::MODULE_MAGIC_NUMBER_MINOR as i32,
        module_index: -1,
        name: c"mod_wsgi.c".as_ptr(),
        dynamic_load_handle: ptr::null_mut(),
        next: ptr::null_mut(),
        magic: ffi::MODULE_MAGIC_COOKIE as u64,
        rewrite_args: None,
        create_dir_config: Some(conf::create_dir_config),
        merge_dir_config: Some(conf::merge_dir_config),
        create_server_config: Some(conf::create_server_config),
        merge_server_config: Some(conf::merge_server_config),
        cmds: ptr::addr_of!(commands::COMMANDS) as *const ffi::command_rec,
        register_hooks: Some(register_hooks),
        flags: ffi::AP_MODULE_FLAG_NONE as i32,
    };

    /// Apache calls this as it adds the module, before any configuration callback: the helpers
    /// in `sys::util` learn the record (for its module index) here, so no layer below this file
    /// needs to know where it is defined.
    unsafe extern "C" fn register_hooks(p: *mut ffi::apr_pool_t) {
        util::set_module(ptr::addr_of_mut!(wsgi_module));
        hooks::register_hooks(p)
    }
}
