//! Application-group naming: which Python (sub-)interpreter a request runs in.
//!
//! The name is the identity of an interpreter, so it must come out exactly as mod_wsgi 4.9's
//! `wsgi_application_group` builds it: apps that share a name share module state, and code
//! that inspects `mod_wsgi.application_group` sees the same string it did under mod_wsgi.
//! `""` means the main interpreter.

/// A parsed `WSGIApplicationGroup` / `application-group=` value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GroupSpec {
    /// `%{RESOURCE}`, mod_wsgi's default: one interpreter per host, port and mount.
    #[default]
    Resource,
    /// `%{SERVER}`: one interpreter per host and port.
    Server,
    /// `%{GLOBAL}`: the main interpreter.
    Global,
    /// `%{ENV:NAME}`: named by a variable, looked up per request.
    Env(String),
    /// Any other value, used as the name itself.
    Literal(String),
}

impl GroupSpec {
    /// Parses a configured value. A value starting with `%{` must be one of the forms above;
    /// anything else (including `""` and `%` not followed by `{`) is a literal name, as in
    /// mod_wsgi.
    pub fn parse(value: &str) -> Result<GroupSpec, String> {
        let Some(inner) = value.strip_prefix("%{") else {
            return Ok(GroupSpec::Literal(value.to_string()));
        };
        let Some(inner) = inner.strip_suffix('}') else {
            return Err(format!("application group '{value}' has an unterminated %{{...}}"));
        };
        match inner {
            "RESOURCE" => Ok(GroupSpec::Resource),
            "SERVER" => Ok(GroupSpec::Server),
            "GLOBAL" => Ok(GroupSpec::Global),
            "HOST" => Err(format!("application group '{value}' is not supported by oxwsgi; use %{{SERVER}}")),
            _ => match inner.strip_prefix("ENV:") {
                Some(name) if !name.is_empty() && !name.contains(['{', '}']) => Ok(GroupSpec::Env(name.to_string())),
                _ => Err(format!(
                    "application group '{value}' is not one of %{{RESOURCE}}, %{{SERVER}}, \
                     %{{GLOBAL}} or %{{ENV:NAME}}"
                )),
            },
        }
    }
}

/// What a request contributes to its group name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamingContext<'a> {
    /// The virtual host's `ServerName`.
    pub server_name: &'a str,
    /// The server port of the request.
    pub port: u16,
    /// The request's `SCRIPT_NAME` (the mount prefix), `""` for a root mount.
    pub script_name: &'a str,
}

/// `host` for ports 80 and 443, else `host:port`.
pub fn server_key(server_name: &str, port: u16) -> String {
    if port == 80 || port == 443 {
        server_name.to_string()
    } else {
        format!("{server_name}:{port}")
    }
}

/// The interpreter name for `spec` in this request; `""` is the main interpreter.
///
/// - `Resource`: `host[:port]|SCRIPT_NAME`, with runs of `/` in SCRIPT_NAME folded and ASCII
///   letters lower-cased (mod_wsgi 4.x's `wsgi_script_name` does both), so
///   `localhost:8080|/suburl`, or `localhost:8080|` for a root mount.
/// - `Server`: [`server_key`]. `Global`: `""`. `Literal`: itself.
/// - `Env(NAME)`: `env(NAME)` (the caller checks the request environment, then the process
///   environment). As in mod_wsgi, a value that is itself `%{GLOBAL}`, `%{SERVER}` or
///   `%{RESOURCE}` is expanded (once; `%{ENV:...}` and anything else is taken literally), and an
///   unset variable leaves the name as the literal text `%{ENV:NAME}`.
pub fn resolve(spec: &GroupSpec, ctx: &NamingContext, env: impl Fn(&str) -> Option<String>) -> String {
    match spec {
        GroupSpec::Resource => resource_key(ctx),
        GroupSpec::Server => server_key(ctx.server_name, ctx.port),
        GroupSpec::Global => String::new(),
        GroupSpec::Literal(name) => name.clone(),
        GroupSpec::Env(name) => match env(name) {
            None => format!("%{{ENV:{name}}}"),
            Some(value) => match value.as_str() {
                "%{GLOBAL}" => String::new(),
                "%{RESOURCE}" => resource_key(ctx),
                "%{SERVER}" => server_key(ctx.server_name, ctx.port),
                _ => value,
            },
        },
    }
}

fn resource_key(ctx: &NamingContext) -> String {
    let mut key = server_key(ctx.server_name, ctx.port);
    key.push('|');
    for c in ctx.script_name.chars() {
        if !(c == '/' && key.ends_with('/')) {
            key.push(c.to_ascii_lowercase());
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(server_name: &'a str, port: u16, script_name: &'a str) -> NamingContext<'a> {
        NamingContext { server_name, port, script_name }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn parse_known_forms() {
        assert_eq!(GroupSpec::parse("%{RESOURCE}"), Ok(GroupSpec::Resource));
        assert_eq!(GroupSpec::parse("%{SERVER}"), Ok(GroupSpec::Server));
        assert_eq!(GroupSpec::parse("%{GLOBAL}"), Ok(GroupSpec::Global));
        assert_eq!(GroupSpec::parse("%{ENV:APP_GROUP}"), Ok(GroupSpec::Env("APP_GROUP".into())));
        assert_eq!(GroupSpec::default(), GroupSpec::Resource);
    }

    #[test]
    fn parse_literals() {
        for value in ["myapp", "", "%", "%RESOURCE", "app%{GLOBAL}", "a b", "%x{y}"] {
            assert_eq!(GroupSpec::parse(value), Ok(GroupSpec::Literal(value.into())), "{value}");
        }
    }

    #[test]
    fn parse_rejects_malformed_substitutions() {
        for value in ["%{", "%{GLOBAL", "%{ENV:X", "%{ENV:}", "%{FOO}", "%{}", "%{global}", "%{ENV:{X}}"] {
            let err = GroupSpec::parse(value).unwrap_err();
            assert!(err.contains(&format!("'{value}'")), "{value}: {err}");
        }
        assert!(GroupSpec::parse("%{HOST}").unwrap_err().contains("not supported"));
    }

    #[test]
    fn server_key_hides_default_ports() {
        assert_eq!(server_key("example.com", 80), "example.com");
        assert_eq!(server_key("example.com", 443), "example.com");
        assert_eq!(server_key("localhost", 8080), "localhost:8080");
        assert_eq!(server_key("localhost", 8443), "localhost:8443");
    }

    #[test]
    fn resource() {
        let r = |c| resolve(&GroupSpec::Resource, &c, no_env);
        assert_eq!(r(ctx("localhost", 8080, "/suburl")), "localhost:8080|/suburl");
        assert_eq!(r(ctx("localhost", 8080, "")), "localhost:8080|");
        assert_eq!(r(ctx("example.com", 80, "/app")), "example.com|/app");
        assert_eq!(r(ctx("example.com", 443, "")), "example.com|");
        assert_eq!(r(ctx("localhost", 8080, "//a///b")), "localhost:8080|/a/b");
        // mod_wsgi lower-cases the script name (not the host).
        assert_eq!(r(ctx("Example.COM", 8080, "/SubURL")), "Example.COM:8080|/suburl");
        assert_eq!(r(ctx("h", 81, "/Café")), "h:81|/café");
    }

    #[test]
    fn server_global_literal() {
        let c = ctx("localhost", 8080, "/suburl");
        assert_eq!(resolve(&GroupSpec::Server, &c, no_env), "localhost:8080");
        assert_eq!(resolve(&GroupSpec::Global, &c, no_env), "");
        assert_eq!(resolve(&GroupSpec::Literal("shared".into()), &c, no_env), "shared");
        assert_eq!(resolve(&GroupSpec::Literal(String::new()), &c, no_env), "");
    }

    #[test]
    fn env_lookup() {
        let c = ctx("localhost", 8080, "/Sub");
        let spec = GroupSpec::Env("GROUP".into());
        let with = |value: &'static str| move |name: &str| (name == "GROUP").then(|| value.to_string());
        assert_eq!(resolve(&spec, &c, with("tenant-a")), "tenant-a");
        assert_eq!(resolve(&spec, &c, with("")), "");
        assert_eq!(resolve(&spec, &c, with("%{GLOBAL}")), "");
        assert_eq!(resolve(&spec, &c, with("%{SERVER}")), "localhost:8080");
        assert_eq!(resolve(&spec, &c, with("%{RESOURCE}")), "localhost:8080|/sub");
        // No further indirection, and unknown substitutions stay as written.
        assert_eq!(resolve(&spec, &c, with("%{ENV:OTHER}")), "%{ENV:OTHER}");
        assert_eq!(resolve(&spec, &c, with("%{HOST}")), "%{HOST}");
        assert_eq!(resolve(&spec, &c, with("%{FOO}")), "%{FOO}");
    }

    #[test]
    fn env_unset_keeps_the_literal_text() {
        let c = ctx("localhost", 8080, "/suburl");
        let spec = GroupSpec::Env("MISSING".into());
        assert_eq!(resolve(&spec, &c, no_env), "%{ENV:MISSING}");
    }

    #[test]
    fn env_closure_sees_the_variable_name() {
        let c = ctx("h", 80, "");
        let seen = std::cell::RefCell::new(Vec::new());
        resolve(&GroupSpec::Env("X_Y".into()), &c, |n| {
            seen.borrow_mut().push(n.to_string());
            None
        });
        assert_eq!(*seen.borrow(), ["X_Y"]);
    }
}
