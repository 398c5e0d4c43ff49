//! `WSGIScriptAlias` / `WSGIScriptAliasMatch`: where a WSGI script is mounted, plus the
//! per-mount options mod_wsgi allows on the same line.
//!
//! Option values are kept as written (e.g. `application-group=%{GLOBAL}` stays `%{GLOBAL}`):
//! substitutions are resolved per request by `crate::appgroup`, not here.

use super::args::{on_off, Args, ConfigError};

/// Options given on a script-alias line; `None` means "not given, inherit".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    pub process_group: Option<String>,
    pub application_group: Option<String>,
    pub callable_object: Option<String>,
    pub pass_authorization: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptAlias {
    /// The URL path (`WSGIScriptAlias`) or the regular expression (`WSGIScriptAliasMatch`),
    /// exactly as written.
    pub url_path: String,
    /// The script file or directory; for the Match form it may hold `$1`-style references.
    pub target: String,
    pub options: MountOptions,
}

const OPTIONS: &[&str] = &["process-group", "application-group", "callable-object", "pass-authorization"];

/// Parses `WSGIScriptAlias URL-PATH FILE-OR-DIR [options]` or
/// `WSGIScriptAliasMatch REGEX TARGET [options]`; `directive` is the name used in errors and
/// picks the form (`WSGIScriptAliasMatch` is the regex form, anything else the path form).
///
/// Options are `process-group=G`, `application-group=A`, `callable-object=NAME` and
/// `pass-authorization=On|Off` (case-insensitive). An unknown option, a missing `=`, an empty
/// value, a repeated option or a bad On/Off is an error naming it. The path form's URL path must
/// start with `/`; the Match form's regex is not validated here.
pub fn parse_script_alias(directive: &str, raw_args: &str) -> Result<ScriptAlias, ConfigError> {
    let is_match = directive.eq_ignore_ascii_case("WSGIScriptAliasMatch");
    let expected = if is_match {
        "needs a regular expression and a target file or directory"
    } else {
        "needs a URL path and a target file or directory"
    };
    let missing = || ConfigError::MissingArgument { directive: directive.to_string(), expected };

    let mut args = Args::new(directive, raw_args);
    let url_path = args.word()?.filter(|w| !w.is_empty()).ok_or_else(missing)?;
    let target = args.word()?.filter(|w| !w.is_empty()).ok_or_else(missing)?;
    if !is_match && !url_path.starts_with('/') {
        return Err(ConfigError::BadArgument {
            directive: directive.to_string(),
            expected: "the URL path must start with '/'".to_string(),
            value: url_path,
        });
    }

    let options = mount_options(directive, &mut args, OPTIONS)?;
    Ok(ScriptAlias { url_path, target, options })
}

/// The `name=value` options after a script's arguments, from the ones `allowed`: the values are
/// kept as written. An unknown option, an empty value, a repeat or a bad On/Off is an error.
pub(super) fn mount_options(directive: &str, args: &mut Args, allowed: &[&str]) -> Result<MountOptions, ConfigError> {
    let mut options = MountOptions::default();
    while let Some((option, value)) = args.option()? {
        let directive = directive.to_string();
        if !allowed.contains(&option.as_str()) {
            return Err(ConfigError::UnknownOption { directive, option });
        }
        if value.is_empty() {
            return Err(ConfigError::EmptyValue { directive, option });
        }
        let already_set = match option.as_str() {
            "process-group" => options.process_group.replace(value).is_some(),
            "application-group" => options.application_group.replace(value).is_some(),
            "callable-object" => options.callable_object.replace(value).is_some(),
            _ => match on_off(&value) {
                Some(flag) => options.pass_authorization.replace(flag).is_some(),
                None => {
                    let expected = "needs On or Off".to_string();
                    return Err(ConfigError::BadValue { directive, option, expected, value });
                }
            },
        };
        if already_set {
            return Err(ConfigError::RepeatedOption { directive, option });
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALIAS: &str = "WSGIScriptAlias";
    const MATCH: &str = "WSGIScriptAliasMatch";

    #[test]
    fn plain_alias() {
        let a = parse_script_alias(ALIAS, "/suburl /srv/app/hello.wsgi").unwrap();
        assert_eq!(
            a,
            ScriptAlias {
                url_path: "/suburl".into(),
                target: "/srv/app/hello.wsgi".into(),
                options: MountOptions::default(),
            }
        );
        let root = parse_script_alias(ALIAS, "  /   /srv/app/  ").unwrap();
        assert_eq!((root.url_path.as_str(), root.target.as_str()), ("/", "/srv/app/"));
    }

    #[test]
    fn quoted_arguments() {
        let a = parse_script_alias(ALIAS, r#""/my app" '/srv/my app/x.wsgi'"#).unwrap();
        assert_eq!(a.url_path, "/my app");
        assert_eq!(a.target, "/srv/my app/x.wsgi");
    }

    #[test]
    fn all_options() {
        let a = parse_script_alias(
            ALIAS,
            "/ /srv/a.wsgi process-group=grp application-group=%{GLOBAL} \
             callable-object=app pass-authorization=oN",
        )
        .unwrap();
        assert_eq!(
            a.options,
            MountOptions {
                process_group: Some("grp".into()),
                application_group: Some("%{GLOBAL}".into()),
                callable_object: Some("app".into()),
                pass_authorization: Some(true),
            }
        );
        let off = parse_script_alias(ALIAS, "/ /a pass-authorization=OFF").unwrap();
        assert_eq!(off.options.pass_authorization, Some(false));
    }

    #[test]
    fn quoted_option_values() {
        let a = parse_script_alias(ALIAS, r#"/ /a application-group="my group" process-group='p'"#).unwrap();
        assert_eq!(a.options.application_group.as_deref(), Some("my group"));
        assert_eq!(a.options.process_group.as_deref(), Some("p"));
    }

    #[test]
    fn match_form_keeps_regex_verbatim() {
        let a = parse_script_alias(MATCH, r"^/wsgi/([^/]+) /srv/wsgi/$1.wsgi process-group=g").unwrap();
        assert_eq!(a.url_path, r"^/wsgi/([^/]+)");
        assert_eq!(a.target, "/srv/wsgi/$1.wsgi");
        assert_eq!(a.options.process_group.as_deref(), Some("g"));
        // No leading '/' needed for a regex.
        assert!(parse_script_alias(MATCH, "(.*) /srv/x").is_ok());
    }

    #[test]
    fn missing_arguments() {
        for raw in ["", "   ", "/only", r#""" /x"#, r#"/x """#] {
            let err = parse_script_alias(ALIAS, raw).unwrap_err();
            assert_eq!(err.to_string(), "WSGIScriptAlias: needs a URL path and a target file or directory", "{raw:?}");
        }
        let err = parse_script_alias(MATCH, "^/x").unwrap_err();
        assert_eq!(err.to_string(), "WSGIScriptAliasMatch: needs a regular expression and a target file or directory");
    }

    #[test]
    fn url_path_must_be_absolute() {
        let err = parse_script_alias(ALIAS, "suburl /srv/a.wsgi").unwrap_err();
        assert_eq!(err.to_string(), "WSGIScriptAlias: the URL path must start with '/', not 'suburl'");
    }

    #[test]
    fn option_errors_name_the_option() {
        let cases = [
            ("/ /a threads=3", "WSGIScriptAlias: unknown option 'threads'"),
            ("/ /a extra", "WSGIScriptAlias: expected an option of the form name=value, not 'extra'"),
            ("/ /a =x", "WSGIScriptAlias: expected an option of the form name=value, not '=x'"),
            ("/ /a process-group=", "WSGIScriptAlias: option 'process-group' needs a value"),
            ("/ /a callable-object=''", "WSGIScriptAlias: option 'callable-object' needs a value"),
            ("/ /a process-group=a process-group=b", "WSGIScriptAlias: option 'process-group' is given more than once"),
            (
                "/ /a pass-authorization=On pass-authorization=On",
                "WSGIScriptAlias: option 'pass-authorization' is given more than once",
            ),
            ("/ /a pass-authorization=yes", "WSGIScriptAlias: option 'pass-authorization' needs On or Off, not 'yes'"),
            ("/ /a process-group=\"x", "WSGIScriptAlias: unterminated \" quote in '\"x'"),
            // Option names are case-sensitive, as in mod_wsgi.
            ("/ /a Process-Group=x", "WSGIScriptAlias: unknown option 'Process-Group'"),
        ];
        for (raw, msg) in cases {
            assert_eq!(parse_script_alias(ALIAS, raw).unwrap_err().to_string(), msg, "{raw}");
        }
    }

    #[test]
    fn unknown_option_wins_over_empty_value() {
        let err = parse_script_alias(ALIAS, "/ /a bogus=").unwrap_err();
        assert_eq!(err, ConfigError::UnknownOption { directive: ALIAS.into(), option: "bogus".into() });
    }
}
