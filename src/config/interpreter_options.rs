//! `<WSGIInterpreterOptions [process-group=NAME] [application-group=NAME]>` (mod_wsgi 6): a
//! section that scopes WSGIPerInterpreterGIL, WSGIFreeThreading, WSGISwitchInterval,
//! WSGIPythonPath and WSGIRestrictStdin/Stdout/Signal to the interpreters it selects.
//!
//! The rules are mod_wsgi 6's (wsgi_resolve_interpreter_options): a block matches when each
//! selector it has equals the interpreter's process group (`""` for embedded mode) and
//! application group (`""` for the main interpreter); `%{GLOBAL}` means `""` on both. For a
//! scalar the most specific matching block wins (specificity = number of selectors; later wins
//! a tie), over the top-level value. WSGIPythonPath is additive instead: every matching block's
//! directories are added, least specific first, each layer in front of the one before.
//! WSGIFreeThreading is per process, so blocks with `application-group=` do not count for it.

use std::time::Duration;

/// The directives a block may hold; anything else inside one is a configuration error.
pub const ALLOWED_IN_BLOCK: &[&str] = &[
    "WSGIPerInterpreterGIL",
    "WSGIFreeThreading",
    "WSGISwitchInterval",
    "WSGIPythonPath",
    "WSGIRestrictStdin",
    "WSGIRestrictStdout",
    "WSGIRestrictSignal",
];

/// One `<WSGIInterpreterOptions>` section: its selectors and what it sets (None: not set here).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Block {
    pub process_group: Option<String>,
    pub application_group: Option<String>,
    pub per_interpreter_gil: Option<bool>,
    pub free_threading: Option<bool>,
    pub switch_interval: Option<Duration>,
    pub restrict_stdin: Option<bool>,
    pub restrict_stdout: Option<bool>,
    pub restrict_signal: Option<bool>,
    pub python_path: Vec<String>,
}

/// The opening tag's arguments, with or without the closing `>`: `process-group=NAME` and
/// `application-group=NAME`, each at most once, in any order.
pub fn parse_selectors(raw: &str) -> Result<Block, String> {
    const TAG: &str = "<WSGIInterpreterOptions>";
    let inner = raw.trim().strip_suffix('>').ok_or(format!("{TAG} directive missing closing '>'"))?;
    let mut block = Block::default();
    for word in super::args::split_args(inner).map_err(|e| e.to_string())? {
        let (key, value) =
            word.split_once('=').ok_or(format!("{TAG}: argument '{word}' is not of the form key=value"))?;
        let value = if value == "%{GLOBAL}" { String::new() } else { value.to_string() };
        let slot = match key.to_ascii_lowercase().as_str() {
            "process-group" => &mut block.process_group,
            "application-group" => &mut block.application_group,
            _ => return Err(format!("{TAG}: unknown selector '{key}', expected process-group or application-group")),
        };
        if slot.replace(value).is_some() {
            return Err(format!("{TAG}: {key} given more than once"));
        }
    }
    Ok(block)
}

impl Block {
    /// How specific this block is for the interpreter, or None when it does not select it.
    fn specificity(&self, process_group: &str, application_group: &str) -> Option<u8> {
        let mut n = 0;
        for (selector, actual) in [(&self.process_group, process_group), (&self.application_group, application_group)] {
            if let Some(want) = selector {
                if want != actual {
                    return None;
                }
                n += 1;
            }
        }
        Some(n)
    }
}

/// What the blocks say for one interpreter, over the top-level values the caller started from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    pub per_interpreter_gil: bool,
    /// A block's switch interval, and whether that block selected an application group (then
    /// it may not change the interval every interpreter of a shared GIL sees).
    pub switch_interval: Option<(Duration, bool)>,
    pub restrict_signal: bool,
    pub restrict_stdin: bool,
    pub restrict_stdout: bool,
    /// Directory lists to add to sys.path after the base one, least specific first.
    pub python_path_layers: Vec<Vec<String>>,
}

/// Takes `value` when this block (of specificity `s`) is at least as specific as the one
/// that set it so far (`by`): the most specific wins, the later of equal ones.
fn take<T>(slot: &mut T, by: &mut Option<u8>, s: u8, value: Option<T>) {
    if let Some(v) = value {
        if by.map_or(true, |b| s >= b) {
            *slot = v;
            *by = Some(s);
        }
    }
}

/// Resolves the blocks for the interpreter `application_group` in `process_group`, over
/// `top` (the top-level WSGIPerInterpreterGIL and WSGIRestrict* values).
pub fn resolve(blocks: &[Block], process_group: &str, application_group: &str, top: Resolved) -> Resolved {
    let mut out = Resolved { switch_interval: None, python_path_layers: Vec::new(), ..top };
    // The specificity of the block each value came from so far.
    let mut by: [Option<u8>; 5] = [None; 5];
    let mut layers: Vec<(u8, usize, &Vec<String>)> = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let Some(s) = b.specificity(process_group, application_group) else { continue };
        take(&mut out.per_interpreter_gil, &mut by[0], s, b.per_interpreter_gil);
        take(&mut out.restrict_signal, &mut by[1], s, b.restrict_signal);
        take(&mut out.restrict_stdin, &mut by[2], s, b.restrict_stdin);
        take(&mut out.restrict_stdout, &mut by[3], s, b.restrict_stdout);
        let interval = b.switch_interval.map(|v| Some((v, b.application_group.is_some())));
        take(&mut out.switch_interval, &mut by[4], s, interval);
        if !b.python_path.is_empty() {
            layers.push((s, i, &b.python_path));
        }
    }
    layers.sort_by_key(|&(s, i, _)| (s, i));
    out.python_path_layers = layers.into_iter().map(|(_, _, p)| p.clone()).collect();
    out
}

/// WSGIFreeThreading for the process `process_group`, over the top-level value.
pub fn resolve_free_threading(blocks: &[Block], process_group: &str, top: bool) -> bool {
    let (mut out, mut by) = (top, None);
    for b in blocks.iter().filter(|b| b.application_group.is_none()) {
        if let Some(s) = b.specificity(process_group, "") {
            take(&mut out, &mut by, s, b.free_threading);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn top(per_interpreter_gil: bool, restrict_signal: bool) -> Resolved {
        Resolved { per_interpreter_gil, restrict_signal, ..Resolved::default() }
    }

    fn block(pg: Option<&str>, ag: Option<&str>) -> Block {
        Block { process_group: pg.map(String::from), application_group: ag.map(String::from), ..Block::default() }
    }

    #[test]
    fn selectors() {
        assert_eq!(parse_selectors(">").unwrap(), Block::default());
        let b = parse_selectors("process-group=d1 application-group=%{GLOBAL}>").unwrap();
        assert_eq!(b, block(Some("d1"), Some("")));
        assert_eq!(parse_selectors("Process-Group=a>").unwrap().process_group.as_deref(), Some("a"));
        for (bad, says) in [
            ("process-group=a", "missing closing '>'"),
            ("pg>", "not of the form key=value"),
            ("user=a>", "unknown selector 'user'"),
            ("process-group=a process-group=b>", "given more than once"),
        ] {
            let e = parse_selectors(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn most_specific_wins_and_later_breaks_ties() {
        let mut any = block(None, None);
        any.per_interpreter_gil = Some(true);
        any.restrict_signal = Some(false);
        let mut app = block(None, Some("app1"));
        app.per_interpreter_gil = Some(false);
        let mut both = block(Some("d1"), Some("app1"));
        both.restrict_signal = Some(true);
        let mut tie = block(Some("d1"), None);
        tie.per_interpreter_gil = Some(true);
        let blocks = [both.clone(), any, app, tie];
        let r = resolve(&blocks, "d1", "app1", top(false, false));
        // app (1) and tie (1) match with the same specificity: the later one, tie, wins.
        assert!(r.per_interpreter_gil);
        assert!(r.restrict_signal, "the two-selector block beats the empty one");
        let r = resolve(&blocks, "", "app1", top(false, true));
        assert!(!r.per_interpreter_gil, "app beats any for another process group");
        assert!(!r.restrict_signal);
        let r = resolve(&blocks, "", "other", top(false, true));
        assert!(r.per_interpreter_gil && !r.restrict_signal);
        assert_eq!(
            resolve(&[], "d1", "", top(true, true)),
            Resolved { per_interpreter_gil: true, restrict_signal: true, ..Default::default() }
        );
    }

    #[test]
    fn stdin_and_stdout_restrictions_resolve_like_the_others() {
        let mut app = block(None, Some("a"));
        app.restrict_stdout = Some(true);
        let r = resolve(&[app], "", "a", Resolved { restrict_stdin: true, ..Resolved::default() });
        assert!(r.restrict_stdin && r.restrict_stdout);
        let r = resolve(&[], "", "b", Resolved::default());
        assert!(!r.restrict_stdin && !r.restrict_stdout);
    }

    #[test]
    fn python_path_layers_go_least_specific_first() {
        let mut both = block(Some("d1"), Some("app1"));
        both.python_path = vec!["/both".into()];
        let mut any = block(None, None);
        any.python_path = vec!["/any".into()];
        let mut pg = block(Some("d1"), None);
        pg.python_path = vec!["/pg1".into(), "/pg2".into()];
        let mut other = block(Some("d2"), None);
        other.python_path = vec!["/other".into()];
        let r = resolve(&[both, other, pg, any], "d1", "app1", top(false, false));
        assert_eq!(
            r.python_path_layers,
            vec![vec!["/any".to_string()], vec!["/pg1".into(), "/pg2".into()], vec!["/both".into()]]
        );
    }

    #[test]
    fn switch_interval_remembers_whether_it_is_app_scoped() {
        let mut pg = block(Some(""), None);
        pg.switch_interval = Some(Duration::from_millis(2));
        let mut app = block(None, Some("a"));
        app.switch_interval = Some(Duration::from_millis(1));
        let blocks = [pg, app];
        assert_eq!(
            resolve(&blocks, "", "b", top(false, false)).switch_interval,
            Some((Duration::from_millis(2), false))
        );
        assert_eq!(
            resolve(&blocks, "", "a", top(false, false)).switch_interval,
            Some((Duration::from_millis(1), true))
        );
        assert_eq!(resolve(&blocks, "d", "b", top(false, false)).switch_interval, None);
    }

    #[test]
    fn free_threading_is_per_process() {
        let mut embedded = block(Some(""), None);
        embedded.free_threading = Some(true);
        let mut app = block(None, Some("a"));
        app.free_threading = Some(false);
        let mut any = block(None, None);
        any.free_threading = Some(false);
        let blocks = [embedded, app, any];
        assert!(resolve_free_threading(&blocks, "", false), "the process-group block beats the empty one");
        assert!(!resolve_free_threading(&blocks, "d1", true), "the empty block beats the top level");
        assert!(resolve_free_threading(&[], "d1", true));
    }
}
