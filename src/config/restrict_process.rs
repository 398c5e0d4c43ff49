//! `WSGIRestrictProcess GROUP ...`: the daemon process groups a location's requests may be
//! delegated to, checked once the group is final (after `WSGIDispatchScript`). `%{GLOBAL}` in
//! the list allows embedded mode (the "" group). Without the directive any group is allowed.

use super::args::{split_args, ConfigError};

/// The groups a `WSGIRestrictProcess` line allows; embedded mode (`%{GLOBAL}`) is `""`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestrictProcess {
    groups: Vec<String>,
}

pub fn parse_restrict_process(directive: &str, raw: &str) -> Result<RestrictProcess, ConfigError> {
    let words = split_args(raw)?;
    if words.is_empty() {
        return Err(ConfigError::MissingArgument { directive: directive.to_string(), expected: "GROUP ..." });
    }
    let groups = words.into_iter().map(|w| if w == "%{GLOBAL}" { String::new() } else { w }).collect();
    Ok(RestrictProcess { groups })
}

impl RestrictProcess {
    /// Whether a request may run in `group` ("" is embedded mode).
    pub fn allows(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitelist() {
        let r = parse_restrict_process("WSGIRestrictProcess", "one 'two' %{GLOBAL}").unwrap();
        assert!(r.allows("one") && r.allows("two") && r.allows(""));
        assert!(!r.allows("three") && !r.allows("ONE"));
        let daemons_only = parse_restrict_process("WSGIRestrictProcess", "one").unwrap();
        assert!(!daemons_only.allows(""), "embedded mode needs %{{GLOBAL}}");
        let e = parse_restrict_process("WSGIRestrictProcess", "  ").unwrap_err().to_string();
        assert!(e.contains("WSGIRestrictProcess"), "{e}");
    }
}
