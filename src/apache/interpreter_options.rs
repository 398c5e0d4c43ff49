//! `<WSGIInterpreterOptions>` sections (mod_wsgi 6) and the two directives that only make sense
//! with them or a newer Python, WSGIPerInterpreterGIL and WSGIFreeThreading. The rules are in
//! `config::interpreter_options`; this file parses the section and finds, for the directives
//! a section may hold, the block they belong to.

use super::conf::{server_conf_mut, server_setter, ServerConf};
use super::directive::{answer, args, directive_name, global_only, one_word, Result};
use crate::config::{self, InterpreterOptions};
use crate::sys::ffi;
use crate::sys::util::{self, cstr};
use std::ffi::c_void;
use std::os::raw::c_char;

const SECTION: &str = "<WSGIInterpreterOptions";

/// The block the directive being read sits in, if it sits in a `<WSGIInterpreterOptions>`.
/// The section stores its block's index (plus one) in its own tree node, as mod_wsgi does.
pub unsafe fn block_of<'a>(cmd: *mut ffi::cmd_parms, conf: &'a mut ServerConf) -> Option<&'a mut InterpreterOptions> {
    let d = (*cmd).directive;
    if d.is_null() || (*d).parent.is_null() {
        return None;
    }
    let parent = (*d).parent;
    if !cstr((*parent).directive).is_some_and(|n| n.eq_ignore_ascii_case(SECTION)) {
        return None;
    }
    let index = ((*parent).data as usize).checked_sub(1)?;
    conf.interpreter_options.get_mut(index)
}

/// `<WSGIInterpreterOptions [process-group=G] [application-group=A]>`: main server only; the
/// directives inside are read with this block as their target.
pub(super) unsafe extern "C" fn cmd_interpreter_options(
    cmd: *mut ffi::cmd_parms,
    _m: *mut c_void,
    a: *const c_char,
) -> *const c_char {
    let r = (|| -> Result<()> {
        global_only(cmd)?;
        let block = config::parse_interpreter_selectors(args(a))?;
        let node = (*cmd).directive;
        // Only the directives mod_wsgi allows here: anything else is an error naming it.
        let mut child = (*node).first_child;
        while !child.is_null() {
            let name = cstr((*child).directive).unwrap_or("");
            if !config::ALLOWED_IN_INTERPRETER_OPTIONS.iter().any(|n| n.eq_ignore_ascii_case(name)) {
                return Err(format!(
                    "{name} is not allowed inside <WSGIInterpreterOptions> (line {}); it takes only {}",
                    (*child).line_num,
                    config::ALLOWED_IN_INTERPRETER_OPTIONS.join(", ")
                ));
            }
            child = (*child).next;
        }
        let conf = server_conf_mut(cmd);
        conf.interpreter_options.push(block);
        (*node).data = conf.interpreter_options.len() as *mut c_void;
        let err = ffi::ap_walk_config((*node).first_child, cmd, (*cmd).context);
        match cstr(err) {
            Some(e) => Err(e.to_string()),
            None => Ok(()),
        }
    })();
    answer(cmd, r)
}

/// What this Python build can do: sub-interpreters with their own GIL came in 3.12 (PEP 684),
/// the free-threaded build in 3.13t (PEP 703). oxwsgi is built for one Python version.
fn python_at_least(minor: u32) -> bool {
    config::PYTHON_VERSION.strip_prefix("3.").and_then(|m| m.parse::<u32>().ok()).is_some_and(|m| m >= minor)
}

fn on_off(name: &str, raw: &str) -> Result<bool> {
    config::parse_on_off(name, raw).map_err(|e| e.to_string())
}

unsafe fn warn(cmd: *mut ffi::cmd_parms, msg: &str) {
    util::log_server((*cmd).server, util::LOG_WARNING, msg);
}

// WSGIPythonPath and WSGIRestrictSignal: the server's, or a block's.
server_setter!(cmd_python_path, global = true, |conf, cmd, name, raw| {
    let dirs = one_word(name, raw)?.split(':').filter(|p| !p.is_empty()).map(String::from).collect();
    match block_of(cmd, conf) {
        Some(block) => block.python_path = dirs,
        None => conf.python_path = dirs,
    }
    Ok(())
});
server_setter!(cmd_restrict_signal, global = true, |conf, cmd, name, raw| {
    let on = Some(config::parse_on_off(name, raw).map_err(|e| e.to_string())?);
    match block_of(cmd, conf) {
        Some(block) => block.restrict_signal = on,
        None => conf.restrict_signal = on,
    }
    Ok(())
});

// `WSGIPerInterpreterGIL On|Off`, at the top level or in a block. With a Python older than
// 3.12 it is accepted with mod_wsgi's warning and has no effect (sub-interpreters share the GIL).
server_setter!(cmd_per_interpreter_gil, global = true, |conf, cmd, name, raw| {
    let on = on_off(name, raw)?;
    match block_of(cmd, conf) {
        Some(b) => b.per_interpreter_gil = Some(on),
        None => conf.per_interpreter_gil = Some(on),
    }
    if on && !python_at_least(12) {
        let v = config::PYTHON_VERSION;
        warn(cmd, &format!("{name} requires Python 3.12 or later; directive has no effect on this build (Python {v})"));
    }
    Ok(())
});

// `WSGIFreeThreading On|Off`, at the top level or in a block without application-group=
// (in such a block it is ignored with a warning, as in mod_wsgi). Python 3.11 has no
// free-threaded build, so On is accepted with mod_wsgi's warning and has no effect.
server_setter!(cmd_free_threading, global = true, |conf, cmd, name, raw| {
    let on = on_off(name, raw)?;
    match block_of(cmd, conf) {
        Some(b) if b.application_group.is_some() => {
            warn(
                cmd,
                &format!(
                    "{name} inside <WSGIInterpreterOptions> with application-group= set is ignored: \
                     free-threading is a process-wide setting and cannot be scoped per application group"
                ),
            );
            return Ok(());
        }
        Some(b) => b.free_threading = Some(on),
        None => conf.free_threading = Some(on),
    }
    if on {
        let v = config::PYTHON_VERSION;
        warn(
            cmd,
            &format!(
                "{name} On has no effect: this Python build (Python {v}) does not support free-threading (PEP 703)"
            ),
        );
    }
    Ok(())
});

// `WSGIRestrictStdin` / `WSGIRestrictStdout On|Off`, at the top level or in a block: with On,
// any use of sys.stdin / sys.stdout raises (mod_wsgi's restricted objects).
server_setter!(cmd_restrict_stdio, global = true, |conf, cmd, name, raw| {
    let on = Some(on_off(name, raw)?);
    let stdin = name.eq_ignore_ascii_case("WSGIRestrictStdin");
    match (block_of(cmd, conf), stdin) {
        (Some(b), true) => b.restrict_stdin = on,
        (Some(b), false) => b.restrict_stdout = on,
        (None, true) => conf.restrict_stdin = on,
        (None, false) => conf.restrict_stdout = on,
    }
    Ok(())
});
