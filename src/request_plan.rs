//! What a request will run, decided from the configuration alone: the process group (embedded
//! mode or a daemon group), the callable, the application group and whether the Authorization
//! header is passed on; and what its request body is.
//!
//! Why it is pure: these are precedence rules between three layers of configuration (the
//! options written on a `WSGIHandlerScript` or `WSGIScriptAlias` line, then the directory's
//! `WSGIProcessGroup`/`WSGICallableObject`/`WSGIApplicationGroup`/`WSGIPassAuthorization`,
//! then mod_wsgi's defaults), and each rule is unit-tested here without Apache. The handler
//! (`apache/request.rs`) reads the layers from Apache's config vectors and follows the plan.

use crate::appgroup::GroupSpec;
use crate::config::{HandlerScript, MountOptions, HANDLER_CALLABLE};

/// Where a request's application runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// In this Apache child (`WSGIProcessGroup %{GLOBAL}`, or none configured).
    Embedded,
    /// In the `WSGIDaemonProcess` group of this name.
    Daemon(String),
}

impl Mode {
    /// A configured process group: empty or `%{GLOBAL}` is embedded mode.
    pub fn from_name(name: &str) -> Mode {
        match name {
            "" | "%{GLOBAL}" => Mode::Embedded,
            group => Mode::Daemon(group.to_string()),
        }
    }

    /// The group's name as mod_wsgi shows it in `mod_wsgi.process_group`: empty in embedded
    /// mode.
    pub fn name(&self) -> &str {
        match self {
            Mode::Embedded => "",
            Mode::Daemon(group) => group,
        }
    }
}

/// What serves the request.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// The WSGI script a `WSGIScriptAlias` mount found (with its line's options and its
    /// parsed `application-group=`), or one `AddHandler`/`SetHandler` marked (no mount).
    Script { mount: Option<(&'a MountOptions, Option<&'a GroupSpec>)> },
    /// A `WSGIHandlerScript`, run for the resource the request names.
    Handler(&'a HandlerScript),
}

/// The directory configuration's say, each `None` where nothing is configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct DirSettings<'a> {
    pub process_group: Option<&'a str>,
    pub callable_object: Option<&'a str>,
    pub application_group: Option<&'a GroupSpec>,
    pub pass_authorization: Option<bool>,
}

/// What a request will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub mode: Mode,
    pub callable: String,
    pub application_group: GroupSpec,
    pub pass_authorization: bool,
}

impl Plan {
    /// The line's options first (a handler script's or the mount's), then the directory's, then
    /// mod_wsgi's defaults. A handler script's callable and application group come from its own
    /// line only: its callable defaults to `handle_request`.
    pub fn new(target: Target, dir: DirSettings) -> Plan {
        let line = match target {
            Target::Handler(h) => Some(&h.options),
            Target::Script { mount } => mount.map(|(options, _)| options),
        };
        let mode =
            line.and_then(|o| o.process_group.as_deref()).or(dir.process_group).map_or(Mode::Embedded, Mode::from_name);
        let callable = match target {
            Target::Handler(h) => h.options.callable_object.as_deref().unwrap_or(HANDLER_CALLABLE),
            Target::Script { .. } => {
                line.and_then(|o| o.callable_object.as_deref()).or(dir.callable_object).unwrap_or("application")
            }
        };
        let line_group = match target {
            Target::Handler(h) => h.options.application_group.as_deref().and_then(|g| GroupSpec::parse(g).ok()),
            Target::Script { mount } => mount.and_then(|(_, group)| group.cloned()),
        };
        Plan {
            mode,
            callable: callable.to_string(),
            application_group: line_group.or_else(|| dir.application_group.cloned()).unwrap_or(GroupSpec::Resource),
            pass_authorization: line.and_then(|o| o.pass_authorization).or(dir.pass_authorization).unwrap_or(false),
        }
    }
}

/// A request's body, from its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `Content-Length` bytes (0 when the header is absent).
    Length(u64),
    /// `Transfer-Encoding: chunked`: read to its end.
    Chunked,
}

impl Body {
    /// The declared length; None for a chunked body.
    pub fn content_length(self) -> Option<u64> {
        match self {
            Body::Length(n) => Some(n),
            Body::Chunked => None,
        }
    }
}

/// Why a request body is refused before anything runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRefusal {
    /// A chunked body without `WSGIChunkedRequest On` (apps that trust CONTENT_LENGTH would see
    /// an empty body): 411.
    ChunkedNotAllowed,
    /// A `Content-Length` that is not a number: 400.
    BadLength,
    /// A `Content-Length` over `LimitRequestBody`: 413 before the application runs, as
    /// mod_wsgi does (a chunked body over the limit is Apache's input filter's to refuse).
    TooLarge { length: u64, limit: u64 },
}

impl BodyRefusal {
    pub fn status(self) -> u16 {
        match self {
            BodyRefusal::ChunkedNotAllowed => 411,
            BodyRefusal::BadLength => 400,
            BodyRefusal::TooLarge { .. } => 413,
        }
    }
}

/// The body the headers announce. Any `Transfer-Encoding` means a chunked body (Apache
/// refuses the others before a handler runs). `limit` is `LimitRequestBody` (0: none).
pub fn request_body(
    transfer_encoding: Option<&str>,
    content_length: Option<&str>,
    chunked_allowed: bool,
    limit: u64,
) -> Result<Body, BodyRefusal> {
    if transfer_encoding.is_some() {
        return if chunked_allowed { Ok(Body::Chunked) } else { Err(BodyRefusal::ChunkedNotAllowed) };
    }
    match content_length.map(|v| v.trim().parse::<u64>()) {
        None => Ok(Body::Length(0)),
        Some(Ok(length)) if limit != 0 && length > limit => Err(BodyRefusal::TooLarge { length, limit }),
        Some(Ok(n)) => Ok(Body::Length(n)),
        Some(Err(_)) => Err(BodyRefusal::BadLength),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pg: Option<&str>, ag: Option<&str>, callable: Option<&str>, auth: Option<bool>) -> MountOptions {
        MountOptions {
            process_group: pg.map(String::from),
            application_group: ag.map(String::from),
            callable_object: callable.map(String::from),
            pass_authorization: auth,
        }
    }

    fn handler(o: MountOptions) -> HandlerScript {
        HandlerScript { name: "h".into(), script: "/srv/h.wsgi".into(), options: o }
    }

    #[test]
    fn defaults_are_mod_wsgis() {
        let p = Plan::new(Target::Script { mount: None }, DirSettings::default());
        assert_eq!(
            p,
            Plan {
                mode: Mode::Embedded,
                callable: "application".into(),
                application_group: GroupSpec::Resource,
                pass_authorization: false
            }
        );
    }

    #[test]
    fn the_mounts_line_comes_before_the_directory() {
        let o = options(Some("site"), Some("%{GLOBAL}"), Some("app"), Some(true));
        let spec = GroupSpec::Global;
        let dir_group = GroupSpec::Server;
        let dir = DirSettings {
            process_group: Some("other"),
            callable_object: Some("dir_app"),
            application_group: Some(&dir_group),
            pass_authorization: Some(false),
        };
        let p = Plan::new(Target::Script { mount: Some((&o, Some(&spec))) }, dir);
        assert_eq!(p.mode, Mode::Daemon("site".into()));
        assert_eq!(p.callable, "app");
        assert_eq!(p.application_group, GroupSpec::Global);
        assert!(p.pass_authorization);
    }

    #[test]
    fn the_directory_fills_what_the_line_leaves_out() {
        let o = options(None, None, None, None);
        let dir_group = GroupSpec::Literal("shared".into());
        let dir = DirSettings {
            process_group: Some("site"),
            callable_object: Some("dir_app"),
            application_group: Some(&dir_group),
            pass_authorization: Some(true),
        };
        let p = Plan::new(Target::Script { mount: Some((&o, None)) }, dir);
        assert_eq!(p.mode, Mode::Daemon("site".into()));
        assert_eq!(p.callable, "dir_app");
        assert_eq!(p.application_group, dir_group);
        assert!(p.pass_authorization);
    }

    #[test]
    fn global_process_group_is_embedded_mode_at_either_layer() {
        let o = options(Some("%{GLOBAL}"), None, None, None);
        let dir = DirSettings { process_group: Some("site"), ..Default::default() };
        assert_eq!(Plan::new(Target::Script { mount: Some((&o, None)) }, dir).mode, Mode::Embedded);
        let dir = DirSettings { process_group: Some("%{GLOBAL}"), ..Default::default() };
        assert_eq!(Plan::new(Target::Script { mount: None }, dir).mode, Mode::Embedded);
        assert_eq!(Mode::Embedded.name(), "");
        assert_eq!(Mode::from_name("site").name(), "site");
    }

    #[test]
    fn a_handler_scripts_callable_and_group_come_from_its_own_line() {
        let dir_group = GroupSpec::Server;
        let dir = DirSettings {
            process_group: Some("site"),
            callable_object: Some("dir_app"),
            application_group: Some(&dir_group),
            pass_authorization: None,
        };
        let h = handler(options(None, None, None, None));
        let p = Plan::new(Target::Handler(&h), dir);
        assert_eq!(p.callable, HANDLER_CALLABLE, "the directory's callable is not a handler script's");
        assert_eq!(p.application_group, GroupSpec::Server, "no group on the line: the directory's");
        assert_eq!(p.mode, Mode::Daemon("site".into()));

        let h = handler(options(Some("h-group"), Some("%{GLOBAL}"), Some("serve"), Some(true)));
        let p = Plan::new(Target::Handler(&h), dir);
        assert_eq!(p.mode, Mode::Daemon("h-group".into()));
        assert_eq!(p.callable, "serve");
        assert_eq!(p.application_group, GroupSpec::Global);
        assert!(p.pass_authorization);
    }

    #[test]
    fn a_handler_scripts_unparsable_group_falls_back_to_the_directory() {
        let dir_group = GroupSpec::Literal("d".into());
        let dir = DirSettings { application_group: Some(&dir_group), ..Default::default() };
        let h = handler(options(None, Some("%{NOPE}"), None, None));
        assert_eq!(Plan::new(Target::Handler(&h), dir).application_group, dir_group);
    }

    #[test]
    fn body_policy() {
        assert_eq!(request_body(None, None, false, 0), Ok(Body::Length(0)));
        assert_eq!(request_body(None, Some(" 12 "), false, 0), Ok(Body::Length(12)));
        assert_eq!(request_body(None, Some("12x"), true, 0), Err(BodyRefusal::BadLength));
        assert_eq!(request_body(None, Some("-1"), true, 0), Err(BodyRefusal::BadLength));
        assert_eq!(request_body(Some("chunked"), Some("5"), false, 0), Err(BodyRefusal::ChunkedNotAllowed));
        assert_eq!(request_body(Some("chunked"), Some("oops"), true, 0), Ok(Body::Chunked));
        assert_eq!(Body::Chunked.content_length(), None);
        assert_eq!(Body::Length(3).content_length(), Some(3));
        assert_eq!(BodyRefusal::ChunkedNotAllowed.status(), 411);
        assert_eq!(BodyRefusal::BadLength.status(), 400);
    }

    #[test]
    fn limit_request_body() {
        assert_eq!(request_body(None, Some("10"), false, 10), Ok(Body::Length(10)));
        let over = request_body(None, Some("11"), false, 10);
        assert_eq!(over, Err(BodyRefusal::TooLarge { length: 11, limit: 10 }));
        assert_eq!(over.unwrap_err().status(), 413);
        assert_eq!(
            request_body(None, Some(&u64::MAX.to_string()), false, 0),
            Ok(Body::Length(u64::MAX)),
            "0: no limit"
        );
        assert_eq!(request_body(None, None, false, 1), Ok(Body::Length(0)));
        // A chunked body's size is not known here: Apache's input filter enforces the limit.
        assert_eq!(request_body(Some("chunked"), None, true, 1), Ok(Body::Chunked));
    }
}
