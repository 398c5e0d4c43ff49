//! `WSGIHandlerScript` and `WSGIImportScript`: scripts that are not mounted at a URL.
//!
//! A handler script serves every request whose Apache handler is its name (`AddHandler`,
//! `SetHandler`, or a rewrite rule's `H=` flag, as mod_wsgi-express's configuration does); its
//! callable is `handle_request` unless `callable-object=` says otherwise. An import script is run
//! when the process (and interpreter) it names starts, before any request: preloading.

use super::args::{Args, ConfigError};
use super::script_alias::{mount_options, MountOptions};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerScript {
    /// The Apache handler name it serves.
    pub name: String,
    pub script: String,
    pub options: MountOptions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportScript {
    pub script: String,
    /// The daemon group to run in; `None` (or `%{GLOBAL}`) means the Apache children.
    pub process_group: Option<String>,
    /// The interpreter, as written (`%{GLOBAL}`, a name); `None` means `%{GLOBAL}`.
    pub application_group: Option<String>,
}

/// `WSGIAuthUserScript`, `WSGIAuthGroupScript`, `WSGIAccessScript`: a script run in the Apache
/// child, in the interpreter `application-group=` names (default `%{GLOBAL}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthScript {
    pub script: String,
    pub application_group: Option<String>,
}

/// `DIRECTIVE SCRIPT [application-group=A]`.
pub fn parse_auth_script(directive: &str, raw_args: &str) -> Result<AuthScript, ConfigError> {
    let mut args = Args::new(directive, raw_args);
    let script = args
        .word()?
        .filter(|w| !w.is_empty())
        .ok_or(ConfigError::MissingArgument { directive: directive.to_string(), expected: "needs a script file" })?;
    absolute(directive, &script)?;
    let options = mount_options(directive, &mut args, &["application-group"])?;
    Ok(AuthScript { script, application_group: options.application_group })
}

/// The callable a handler script provides, as in mod_wsgi.
pub const HANDLER_CALLABLE: &str = "handle_request";

/// `WSGIHandlerScript NAME SCRIPT [process-group=G] [application-group=A]
/// [callable-object=C] [pass-authorization=On|Off]`.
pub fn parse_handler_script(raw_args: &str) -> Result<HandlerScript, ConfigError> {
    const D: &str = "WSGIHandlerScript";
    let missing = || ConfigError::MissingArgument {
        directive: D.to_string(),
        expected: "needs a handler name and a script file",
    };
    let mut args = Args::new(D, raw_args);
    let name = args.word()?.filter(|w| !w.is_empty()).ok_or_else(missing)?;
    let script = args.word()?.filter(|w| !w.is_empty()).ok_or_else(missing)?;
    absolute(D, &script)?;
    let options =
        mount_options(D, &mut args, &["process-group", "application-group", "callable-object", "pass-authorization"])?;
    Ok(HandlerScript { name, script, options })
}

/// `WSGIImportScript SCRIPT [process-group=G] [application-group=A]`.
pub fn parse_import_script(raw_args: &str) -> Result<ImportScript, ConfigError> {
    const D: &str = "WSGIImportScript";
    let mut args = Args::new(D, raw_args);
    let script = args
        .word()?
        .filter(|w| !w.is_empty())
        .ok_or(ConfigError::MissingArgument { directive: D.to_string(), expected: "needs a script file" })?;
    absolute(D, &script)?;
    let options = mount_options(D, &mut args, &["process-group", "application-group"])?;
    let process_group = options.process_group.filter(|g| g != "%{GLOBAL}");
    Ok(ImportScript { script, process_group, application_group: options.application_group })
}

fn absolute(directive: &str, script: &str) -> Result<(), ConfigError> {
    if script.starts_with('/') {
        return Ok(());
    }
    Err(ConfigError::BadArgument {
        directive: directive.to_string(),
        expected: "the script must be an absolute path".to_string(),
        value: script.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_script_as_mod_wsgi_express_writes_it() {
        let h = parse_handler_script(
            "wsgi-handler '/srv/r/handler.wsgi'     process-group='localhost:8000' application-group=%{GLOBAL}",
        )
        .unwrap();
        assert_eq!(h.name, "wsgi-handler");
        assert_eq!(h.script, "/srv/r/handler.wsgi");
        assert_eq!(h.options.process_group.as_deref(), Some("localhost:8000"));
        assert_eq!(h.options.application_group.as_deref(), Some("%{GLOBAL}"));
    }

    #[test]
    fn import_script_groups() {
        let i =
            parse_import_script("/srv/r/handler.wsgi process-group='%{GLOBAL}' application-group=%{GLOBAL}").unwrap();
        assert_eq!(i.process_group, None);
        let i = parse_import_script("/srv/app.wsgi process-group=site application-group=a").unwrap();
        assert_eq!((i.process_group.as_deref(), i.application_group.as_deref()), (Some("site"), Some("a")));
    }

    #[test]
    fn auth_scripts() {
        let a = parse_auth_script("WSGIAuthUserScript", "/srv/auth.wsgi application-group=auth").unwrap();
        assert_eq!((a.script.as_str(), a.application_group.as_deref()), ("/srv/auth.wsgi", Some("auth")));
        assert!(parse_auth_script("WSGIAccessScript", "/srv/a.wsgi process-group=x").is_err());
        assert!(parse_auth_script("WSGIAccessScript", "a.wsgi").is_err());
    }

    #[test]
    fn bad_lines_are_errors_naming_the_problem() {
        assert!(parse_handler_script("only-a-name").is_err());
        assert!(parse_handler_script("h relative.wsgi").is_err());
        assert!(parse_handler_script("h /x.wsgi bogus=1").unwrap_err().to_string().contains("bogus"));
        assert!(parse_import_script("/x.wsgi callable-object=f").unwrap_err().to_string().contains("callable-object"));
        assert!(parse_import_script("").is_err());
    }
}
