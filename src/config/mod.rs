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

mod daemon;
mod script_alias;

pub use daemon::{
    parse_daemon_process, DaemonProcess, DAEMON_OPTIONS_ACCEPTED_UNIMPLEMENTED, DAEMON_OPTIONS_IMPLEMENTED,
};
pub use script_alias::{parse_script_alias, MountOptions, ScriptAlias};

/// A configuration mistake. `Display` is one line naming the directive (and option) and the bad
/// value; Apache prefixes the file and line number itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A word opened with `"` or `'` and never closed. `directive` is empty from [`split_args`].
    #[error("{}unterminated {quote} quote in '{text}'", prefix(.directive))]
    UnterminatedQuote { directive: String, quote: char, text: String },
    /// A required positional argument is absent.
    #[error("{directive}: {expected}")]
    MissingArgument { directive: String, expected: &'static str },
    /// A positional argument (or the whole argument of a one-argument directive) is invalid.
    #[error("{directive}: {expected}, not '{value}'")]
    BadArgument { directive: String, expected: String, value: String },
    /// Something where a `name=value` option was expected.
    #[error("{directive}: expected an option of the form name=value, not '{text}'")]
    MalformedOption { directive: String, text: String },
    #[error("{directive}: unknown option '{option}'")]
    UnknownOption { directive: String, option: String },
    #[error("{directive}: option '{option}' needs a value")]
    EmptyValue { directive: String, option: String },
    #[error("{directive}: option '{option}' is given more than once")]
    RepeatedOption { directive: String, option: String },
    /// An option's value is out of range or of the wrong form.
    #[error("{directive}: option '{option}' {expected}, not '{value}'")]
    BadValue { directive: String, option: String, expected: String, value: String },
}

fn prefix(directive: &str) -> String {
    if directive.is_empty() {
        String::new()
    } else {
        format!("{directive}: ")
    }
}

/// Splits directive arguments into words with Apache `ap_getword_conf` semantics.
///
/// Words are separated by whitespace. A word starting with `"` or `'` runs to the matching
/// quote (which may not be followed by whitespace: `"a"b` is two words, as in Apache); inside
/// it a backslash escapes the quote character or another backslash. Outside quotes `\\` becomes
/// `\`. An empty quoted word yields `""`. An unterminated quote is an error (Apache silently
/// accepts it; a typo there is better reported than guessed at).
pub fn split_args(raw: &str) -> Result<Vec<String>, ConfigError> {
    let mut args = Args::new("", raw);
    let mut words = Vec::new();
    while let Some(word) = args.word()? {
        words.push(word);
    }
    Ok(words)
}

/// Parses the argument of an `On|Off` directive (case-insensitive, surrounding whitespace
/// ignored).
pub fn parse_on_off(directive: &str, raw: &str) -> Result<bool, ConfigError> {
    on_off(raw.trim_matches(is_space)).ok_or_else(|| ConfigError::BadArgument {
        directive: directive.to_string(),
        expected: "needs On or Off".to_string(),
        value: raw.to_string(),
    })
}

fn on_off(value: &str) -> Option<bool> {
    if value.eq_ignore_ascii_case("on") {
        Some(true)
    } else if value.eq_ignore_ascii_case("off") {
        Some(false)
    } else {
        None
    }
}

/// C `isspace` in the "C" locale, which is what Apache's `apr_isspace` tests.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// A cursor over one directive's raw arguments: positional words, then `name=value` options.
struct Args<'a> {
    directive: &'a str,
    rest: &'a str,
}

impl<'a> Args<'a> {
    fn new(directive: &'a str, raw: &'a str) -> Self {
        Args { directive, rest: raw.trim_start_matches(is_space) }
    }

    /// The next word (`ap_getword_conf`), or `None` when nothing is left.
    fn word(&mut self) -> Result<Option<String>, ConfigError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let (word, rest) = read_word(self.directive, self.rest)?;
        self.rest = rest.trim_start_matches(is_space);
        Ok(Some(word))
    }

    /// The next `name=value` option (mod_wsgi's `wsgi_parse_option`), or `None` when nothing is
    /// left. The name runs to the first `=`; the value is one word and may be quoted. The value
    /// may come back empty (`name=` or `name=""`); callers decide how to report that.
    fn option(&mut self) -> Result<Option<(String, String)>, ConfigError> {
        let s = self.rest;
        if s.is_empty() {
            return Ok(None);
        }
        let name_end = s.find(|c| c == '=' || is_space(c)).unwrap_or(s.len());
        if name_end == 0 || !s[name_end..].starts_with('=') {
            let text_end = s.find(is_space).unwrap_or(s.len());
            return Err(ConfigError::MalformedOption {
                directive: self.directive.to_string(),
                text: s[..text_end].to_string(),
            });
        }
        let after = &s[name_end + 1..];
        let (value, rest) = if after.is_empty() || after.starts_with(is_space) {
            (String::new(), after)
        } else {
            read_word(self.directive, after)?
        };
        self.rest = rest.trim_start_matches(is_space);
        Ok(Some((s[..name_end].to_string(), value)))
    }
}

/// Reads one word from the start of `s` (non-empty, not starting with whitespace); returns it
/// and the unread remainder.
fn read_word<'s>(directive: &str, s: &'s str) -> Result<(String, &'s str), ConfigError> {
    let quote = match s.chars().next() {
        Some(q @ ('"' | '\'')) => q,
        _ => {
            let end = s.find(is_space).unwrap_or(s.len());
            return Ok((s[..end].replace("\\\\", "\\"), &s[end..]));
        }
    };
    let body = &s[1..];
    let mut word = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return Ok((word, &body[i + 1..]));
        }
        if c == '\\' {
            if let Some(&(_, next)) = chars.peek() {
                if next == quote || next == '\\' {
                    word.push(next);
                    chars.next();
                    continue;
                }
            }
        }
        word.push(c);
    }
    Err(ConfigError::UnterminatedQuote { directive: directive.to_string(), quote, text: s.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(raw: &str) -> Vec<String> {
        split_args(raw).unwrap()
    }

    #[test]
    fn splits_on_any_whitespace() {
        assert_eq!(words("  a\tb \n c\r\x0b\x0cd  "), ["a", "b", "c", "d"]);
        assert!(words("").is_empty());
        assert!(words(" \t ").is_empty());
    }

    #[test]
    fn quotes_group_words_and_are_removed() {
        assert_eq!(words(r#""a b" 'c d' e"#), ["a b", "c d", "e"]);
        assert_eq!(words(r#""it's" 'say "hi"'"#), ["it's", r#"say "hi""#]);
        assert_eq!(words(r#"x "" y"#), ["x", "", "y"]);
    }

    #[test]
    fn backslash_escapes_quote_and_backslash_only() {
        assert_eq!(words(r#""a\"b""#), [r#"a"b"#]);
        assert_eq!(words(r"'a\'b'"), ["a'b"]);
        assert_eq!(words(r#""a\\b""#), [r"a\b"]);
        // Any other escape is kept verbatim, as Apache does.
        assert_eq!(words(r#""a\nb""#), [r"a\nb"]);
        assert_eq!(words(r#"'a\"b'"#), [r#"a\"b"#]);
        // Unquoted: only a doubled backslash collapses.
        assert_eq!(words(r"a\\b c\d"), [r"a\b", r"c\d"]);
    }

    #[test]
    fn quote_only_counts_at_word_start() {
        assert_eq!(words(r#"a"b c"#), [r#"a"b"#, "c"]);
        // A closing quote ends the word even without following whitespace.
        assert_eq!(words(r#""a"b"#), ["a", "b"]);
    }

    #[test]
    fn non_ascii_survives() {
        assert_eq!(words("héllo 'wörld ✓'"), ["héllo", "wörld ✓"]);
    }

    #[test]
    fn unterminated_quote_is_an_error() {
        let err = split_args(r#"a "b c"#).unwrap_err();
        assert_eq!(
            err,
            ConfigError::UnterminatedQuote { directive: String::new(), quote: '"', text: r#""b c"#.to_string() }
        );
        assert_eq!(err.to_string(), r#"unterminated " quote in '"b c'"#);
        assert!(split_args("'abc").is_err());
        // An escaped closing quote does not close.
        assert!(split_args(r#""abc\""#).is_err());
    }

    #[test]
    fn on_off() {
        for on in ["On", "on", "ON", " on "] {
            assert_eq!(parse_on_off("WSGIPassAuthorization", on), Ok(true));
        }
        for off in ["Off", "off", "OFF"] {
            assert_eq!(parse_on_off("WSGIPassAuthorization", off), Ok(false));
        }
        let err = parse_on_off("WSGIPassAuthorization", "yes").unwrap_err();
        assert_eq!(err.to_string(), "WSGIPassAuthorization: needs On or Off, not 'yes'");
        assert!(parse_on_off("X", "").is_err());
    }

    #[test]
    fn options_follow_wsgi_parse_option() {
        let mut args = Args::new("D", r#"a=1 b="x y" c='' d= e=f=g"#);
        assert_eq!(args.option(), Ok(Some(("a".into(), "1".into()))));
        assert_eq!(args.option(), Ok(Some(("b".into(), "x y".into()))));
        assert_eq!(args.option(), Ok(Some(("c".into(), "".into()))));
        assert_eq!(args.option(), Ok(Some(("d".into(), "".into()))));
        assert_eq!(args.option(), Ok(Some(("e".into(), "f=g".into()))));
        assert_eq!(args.option(), Ok(None));
    }

    #[test]
    fn malformed_options() {
        for (raw, text) in [("abc", "abc"), ("=x", "=x"), ("abc def=1", "abc")] {
            let err = Args::new("D", raw).option().unwrap_err();
            assert_eq!(err, ConfigError::MalformedOption { directive: "D".into(), text: text.into() });
        }
        let err = Args::new("D", "k='x").option().unwrap_err();
        assert_eq!(err.to_string(), "D: unterminated ' quote in ''x'");
    }
}

/// `WSGIPythonHome` / `python-home` must name a Python this module can start: a virtualenv
/// (with `pyvenv.cfg`) made from a Python of the version oxwsgi was built with, or a prefix
/// holding that version's standard library. Checked while the configuration is read, so a wrong
/// path is a start-up error (`apache2 -t` fails with it) instead of a child that cannot start
/// Python.
pub fn check_python_home(home: &str) -> Result<(), String> {
    use std::path::Path;
    let path = Path::new(home);
    if !path.is_absolute() {
        return Err(format!("'{home}' is not an absolute path"));
    }
    if !path.is_dir() {
        return Err(format!("'{home}' does not exist or is not a directory"));
    }
    let stdlib = format!("lib/python{PYTHON_VERSION}");
    let has_stdlib = |prefix: &Path| {
        prefix.join(&stdlib).join("os.py").is_file() && prefix.join(&stdlib).join("encodings/__init__.py").is_file()
    };
    let cfg_path = path.join("pyvenv.cfg");
    if cfg_path.is_file() {
        let cfg =
            std::fs::read_to_string(&cfg_path).map_err(|e| format!("cannot read '{}': {e}", cfg_path.display()))?;
        let venv = parse_pyvenv_cfg(&cfg);
        let version = venv.version.as_deref().unwrap_or("");
        let version_ok = version == PYTHON_VERSION || version.starts_with(&format!("{PYTHON_VERSION}."));
        if !version_ok || !path.join(&stdlib).is_dir() {
            let made_with = if version.is_empty() { String::new() } else { format!(" (made with Python {version})") };
            return Err(format!(
                "'{home}' is a virtualenv for another Python version{made_with}; oxwsgi was built for Python {PYTHON_VERSION}"
            ));
        }
        // The base installation the venv was made from provides the standard library.
        if let Some(base) = venv.home.as_deref() {
            let base = Path::new(base);
            if !base.is_dir() || !base.ancestors().any(has_stdlib) {
                return Err(format!(
                    "'{home}' is a virtualenv whose base Python (home = {} in pyvenv.cfg) has no Python {PYTHON_VERSION} \
                     standard library",
                    base.display()
                ));
            }
        }
        return Ok(());
    }
    if !has_stdlib(path) {
        return Err(format!(
            "'{home}' is not a Python {PYTHON_VERSION} installation or virtualenv (no {stdlib}/os.py, no pyvenv.cfg)"
        ));
    }
    Ok(())
}

/// The keys of a virtualenv's `pyvenv.cfg` that matter here.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PyvenvCfg {
    /// `home`: the directory of the Python the venv was made from.
    pub home: Option<String>,
    /// `version` (or `version_info`): that Python's version, e.g. "3.11.2".
    pub version: Option<String>,
}

/// Parses `pyvenv.cfg` the way CPython's getpath does: `key = value` lines, keys compared
/// case-insensitively, anything else ignored.
pub fn parse_pyvenv_cfg(text: &str) -> PyvenvCfg {
    let mut cfg = PyvenvCfg::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else { continue };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim().to_string());
        match key.as_str() {
            "home" => cfg.home = Some(value),
            "version" => cfg.version = Some(value),
            "version_info" if cfg.version.is_none() => {
                cfg.version = Some(value.split('.').take(3).collect::<Vec<_>>().join("."))
            }
            _ => {}
        }
    }
    cfg
}

#[cfg(test)]
mod python_home_tests {
    use super::*;

    #[test]
    fn pyvenv_cfg() {
        let cfg = parse_pyvenv_cfg(
            "home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11.2\n\
             executable = /usr/bin/python3.11\ncommand = /usr/bin/python3.11 -m venv /v\n",
        );
        assert_eq!(cfg, PyvenvCfg { home: Some("/usr/bin".into()), version: Some("3.11.2".into()) });
        let cfg = parse_pyvenv_cfg("Home=/opt/py/bin\nversion_info = 3.12.1.final.0\nnot a line\n");
        assert_eq!(cfg, PyvenvCfg { home: Some("/opt/py/bin".into()), version: Some("3.12.1".into()) });
        assert_eq!(parse_pyvenv_cfg(""), PyvenvCfg::default());
    }

    #[test]
    fn homes() {
        assert!(check_python_home("relative/path").unwrap_err().contains("not an absolute path"));
        assert!(check_python_home("/nonexistent/oxwsgi-home").unwrap_err().contains("does not exist"));
        let tmp = std::env::temp_dir().join(format!("oxwsgi-home-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(tmp.join("lib/python3.11")).unwrap();
        let home = tmp.to_str().unwrap();
        assert!(check_python_home(home).unwrap_err().contains("is not a Python 3.11 installation"));
        std::fs::write(tmp.join("pyvenv.cfg"), "home = /nonexistent/bin\nversion = 3.9.1\n").unwrap();
        let e = check_python_home(home).unwrap_err();
        assert!(e.contains("another Python version (made with Python 3.9.1)"), "{e}");
        std::fs::write(tmp.join("pyvenv.cfg"), "home = /nonexistent/bin\nversion = 3.11.2\n").unwrap();
        let e = check_python_home(home).unwrap_err();
        assert!(e.contains("base Python (home = /nonexistent/bin"), "{e}");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}

/// The Python version oxwsgi links against (major.minor).
pub const PYTHON_VERSION: &str = "3.11";
