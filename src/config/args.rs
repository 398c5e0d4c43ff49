//! The words and `name=value` options of one directive's raw arguments, split the way Apache's
//! `ap_getword_conf` and mod_wsgi's `wsgi_parse_option` do, and the error every parser returns.

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

pub(super) fn on_off(value: &str) -> Option<bool> {
    if value.eq_ignore_ascii_case("on") {
        Some(true)
    } else if value.eq_ignore_ascii_case("off") {
        Some(false)
    } else {
        None
    }
}

/// C `isspace` in the "C" locale, which is what Apache's `apr_isspace` tests.
pub(super) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

/// A cursor over one directive's raw arguments: positional words, then `name=value` options.
pub(super) struct Args<'a> {
    directive: &'a str,
    rest: &'a str,
}

impl<'a> Args<'a> {
    pub(super) fn new(directive: &'a str, raw: &'a str) -> Self {
        Args { directive, rest: raw.trim_start_matches(is_space) }
    }

    /// The next word (`ap_getword_conf`), or `None` when nothing is left.
    pub(super) fn word(&mut self) -> Result<Option<String>, ConfigError> {
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
    pub(super) fn option(&mut self) -> Result<Option<(String, String)>, ConfigError> {
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
