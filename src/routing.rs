//! Longest-prefix `WSGIScriptAlias` routing: which mount serves a URI, and how the URI splits
//! into `SCRIPT_NAME` and `PATH_INFO`.
//!
//! Why our own table: mounts are matched on whole path segments whatever order they were
//! configured in (so `/` never shadows `/suburl`, and `/sub` never claims `/subway`), runs of
//! `/` count as one like Apache's alias matching, and the lookup runs on every request, so it
//! walks bytes in a pre-sorted list and allocates only the two result strings.

/// Folds runs of `/` and drops a trailing `/`; `"/"` and `""` become `""` (the root mount).
pub fn normalize_mount(url_path: &str) -> String {
    let mut out = String::with_capacity(url_path.len());
    for c in url_path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    if out.ends_with('/') {
        out.pop();
    }
    out
}

/// Mounts keyed by normalized URL prefix, looked up longest-first.
#[derive(Debug, Clone)]
pub struct MountTable<T> {
    /// Sorted by prefix length, longest first, so the first match is the longest.
    mounts: Vec<(String, T)>,
}

/// The result of [`MountTable::resolve`].
#[derive(Debug, PartialEq, Eq)]
pub struct Match<'a, T> {
    pub payload: &'a T,
    /// The normalized mount prefix; `""` for the root mount.
    pub script_name: String,
    /// The rest of the URI after the matched part, verbatim: empty or starting with `/`.
    pub path_info: String,
}

impl<T> Default for MountTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> MountTable<T> {
    pub fn new() -> Self {
        MountTable { mounts: Vec::new() }
    }

    /// Mounts `payload` at `url_path` (normalized with [`normalize_mount`]; expected to start
    /// with `/`, since URIs do). `Err` carries the existing normalized prefix if it is already
    /// mounted, e.g. `/app` and `/app/` collide.
    pub fn insert(&mut self, url_path: &str, payload: T) -> Result<(), String> {
        let prefix = normalize_mount(url_path);
        if self.mounts.iter().any(|(p, _)| *p == prefix) {
            return Err(prefix);
        }
        let at = self.mounts.partition_point(|(p, _)| p.len() >= prefix.len());
        self.mounts.insert(at, (prefix, payload));
        Ok(())
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.mounts.len()
    }

    /// The longest mount matching `uri` on a path-segment boundary, whatever the insert order.
    ///
    /// Runs of `/` in `uri` match as one: mount `/sub` matches `/sub`, `/sub/`, `/sub/x` and
    /// `//sub//x`, but never `/subway`. The root mount `""` matches every URI starting with `/`;
    /// a URI not starting with `/` (e.g. `*`) matches nothing.
    /// Every (normalized prefix, payload), longest prefix first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T)> {
        self.mounts.iter().map(|(p, t)| (p.as_str(), t))
    }

    pub fn resolve(&self, uri: &str) -> Option<Match<'_, T>> {
        if !uri.starts_with('/') {
            return None;
        }
        self.mounts.iter().find_map(|(prefix, payload)| {
            let end = matched_len(prefix.as_bytes(), uri.as_bytes())?;
            Some(Match { payload, script_name: prefix.clone(), path_info: uri[end..].to_string() })
        })
    }
}

/// If normalized `prefix` matches the start of `uri` on a segment boundary, the byte length of
/// the matched part of `uri` (which may be longer than `prefix` when `uri` has runs of `/`).
fn matched_len(prefix: &[u8], uri: &[u8]) -> Option<usize> {
    let mut i = 0;
    for &p in prefix {
        if p == b'/' {
            if uri.get(i) != Some(&b'/') {
                return None;
            }
            while uri.get(i) == Some(&b'/') {
                i += 1;
            }
        } else if uri.get(i) == Some(&p) {
            i += 1;
        } else {
            return None;
        }
    }
    // `i` always lands on a char boundary: it only ever stops after a full byte-for-byte match
    // of `prefix`'s bytes or after ASCII '/'.
    match uri.get(i) {
        None | Some(b'/') => Some(i),
        _ => None,
    }
}

/// For a mount whose target is a directory: the next path segment names the script.
///
/// `"/hello/x/y"` gives `("hello", "/x/y")`, `"/hello"` gives `("hello", "")`; `""` and `"/"`
/// give `None`. Leading runs of `/` are skipped; the rest is returned verbatim.
pub fn split_first_segment(path_info: &str) -> Option<(&str, &str)> {
    let trimmed = path_info.trim_start_matches('/');
    let end = trimmed.find('/').unwrap_or(trimmed.len());
    if end == 0 {
        return None;
    }
    Some((&trimmed[..end], &trimmed[end..]))
}

/// Runs of `/` folded into one, as mod_wsgi does to SCRIPT_NAME and PATH_INFO before the
/// application sees them (Apache's `ap_no2slash`), even with `MergeSlashes Off`. None when
/// there is nothing to fold.
pub fn collapse_slashes(path: &[u8]) -> Option<Vec<u8>> {
    if !path.windows(2).any(|w| w == b"//") {
        return None;
    }
    let mut out = Vec::with_capacity(path.len());
    for &b in path {
        if !(b == b'/' && out.last() == Some(&b'/')) {
            out.push(b);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(prefixes: &[&'static str]) -> MountTable<&'static str> {
        let mut t = MountTable::new();
        for p in prefixes {
            t.insert(p, *p).unwrap();
        }
        t
    }

    fn route(t: &MountTable<&'static str>, uri: &str) -> Option<(&'static str, String, String)> {
        t.resolve(uri).map(|m| (*m.payload, m.script_name, m.path_info))
    }

    fn hit(payload: &'static str, script: &str, path: &str) -> Option<(&'static str, String, String)> {
        Some((payload, script.to_string(), path.to_string()))
    }

    #[test]
    fn normalize() {
        assert_eq!(normalize_mount("/"), "");
        assert_eq!(normalize_mount(""), "");
        assert_eq!(normalize_mount("///"), "");
        assert_eq!(normalize_mount("/suburl"), "/suburl");
        assert_eq!(normalize_mount("/suburl/"), "/suburl");
        assert_eq!(normalize_mount("//a///b//"), "/a/b");
        assert_eq!(normalize_mount("/é/ü"), "/é/ü");
    }

    #[test]
    fn longest_prefix_wins_in_either_insert_order() {
        for order in [["/", "/suburl"], ["/suburl", "/"]] {
            let t = table(&order);
            assert_eq!(route(&t, "/suburl/x"), hit("/suburl", "/suburl", "/x"));
            assert_eq!(route(&t, "/suburl"), hit("/suburl", "/suburl", ""));
            assert_eq!(route(&t, "/suburl/"), hit("/suburl", "/suburl", "/"));
            assert_eq!(route(&t, "/suburlx"), hit("/", "", "/suburlx"));
            assert_eq!(route(&t, "/"), hit("/", "", "/"));
            assert_eq!(route(&t, "/other/y"), hit("/", "", "/other/y"));
        }
    }

    #[test]
    fn nested_mounts_in_any_order() {
        let orders: [[&'static str; 3]; 3] =
            [["/a", "/a/b", "/a/b/c"], ["/a/b/c", "/a", "/a/b"], ["/a/b", "/a/b/c", "/a"]];
        for order in orders {
            let t = table(&order);
            assert_eq!(route(&t, "/a/b/c/d"), hit("/a/b/c", "/a/b/c", "/d"));
            assert_eq!(route(&t, "/a/b/cd"), hit("/a/b", "/a/b", "/cd"));
            assert_eq!(route(&t, "/a/bc"), hit("/a", "/a", "/bc"));
            assert_eq!(route(&t, "/ab"), None);
        }
    }

    #[test]
    fn runs_of_slashes() {
        let t = table(&["/", "/sub", "/a/b"]);
        assert_eq!(route(&t, "//sub//x"), hit("/sub", "/sub", "//x"));
        assert_eq!(route(&t, "/sub//"), hit("/sub", "/sub", "//"));
        assert_eq!(route(&t, "///a//b"), hit("/a/b", "/a/b", ""));
        assert_eq!(route(&t, "/a///b/c"), hit("/a/b", "/a/b", "/c"));
        assert_eq!(route(&t, "//subway"), hit("/", "", "//subway"));
        assert_eq!(route(&t, "//"), hit("/", "", "//"));
    }

    #[test]
    fn collapsing_slashes() {
        let c = |p: &str| collapse_slashes(p.as_bytes()).map(|v| String::from_utf8(v).unwrap());
        assert_eq!(c("/a/b"), None);
        assert_eq!(c(""), None);
        assert_eq!(c("/"), None);
        assert_eq!(c("/a//b").as_deref(), Some("/a/b"));
        assert_eq!(c("//a/b").as_deref(), Some("/a/b"));
        assert_eq!(c("/a///b///c").as_deref(), Some("/a/b/c"));
        assert_eq!(c("/a//").as_deref(), Some("/a/"));
        assert_eq!(c("//").as_deref(), Some("/"));
        assert_eq!(c("/é//x").as_deref(), Some("/é/x"));
    }

    #[test]
    fn mount_given_with_extra_slashes() {
        let t = table(&["//sub//"]);
        assert_eq!(route(&t, "/sub/x"), hit("//sub//", "/sub", "/x"));
    }

    #[test]
    fn never_matches_inside_a_segment() {
        let t = table(&["/sub"]);
        assert_eq!(route(&t, "/subway"), None);
        assert_eq!(route(&t, "/su"), None);
        assert_eq!(route(&t, "/Sub"), None);
        assert_eq!(route(&t, "/sub"), hit("/sub", "/sub", ""));
    }

    #[test]
    fn no_root_mount_means_no_fallback() {
        let t = table(&["/suburl"]);
        assert_eq!(route(&t, "/"), None);
        assert_eq!(route(&t, "/other"), None);
        assert_eq!(route(&t, ""), None);
    }

    #[test]
    fn uri_must_start_with_slash() {
        let t = table(&["/"]);
        assert_eq!(route(&t, "*"), None);
        assert_eq!(route(&t, ""), None);
        assert_eq!(route(&t, "sub"), None);
    }

    #[test]
    fn empty_table() {
        let t: MountTable<()> = MountTable::new();
        assert!(t.is_empty());
        assert_eq!(t.len(), 0);
        assert!(t.resolve("/").is_none());
    }

    #[test]
    fn duplicates_are_rejected_after_normalizing() {
        let mut t = MountTable::new();
        assert_eq!(t.insert("/app", 1), Ok(()));
        assert_eq!(t.insert("/app/", 2), Err("/app".to_string()));
        assert_eq!(t.insert("//app", 3), Err("/app".to_string()));
        assert_eq!(t.insert("/", 4), Ok(()));
        assert_eq!(t.insert("", 5), Err(String::new()));
        assert_eq!(t.len(), 2);
        assert!(!t.is_empty());
        // The first insert is kept.
        assert_eq!(*t.resolve("/app").unwrap().payload, 1);
    }

    #[test]
    fn non_ascii_paths() {
        let t = table(&["/", "/café"]);
        assert_eq!(route(&t, "/café/menü"), hit("/café", "/café", "/menü"));
        assert_eq!(route(&t, "/caféx"), hit("/", "", "/caféx"));
        assert_eq!(route(&t, "/caf"), hit("/", "", "/caf"));
    }

    #[test]
    fn match_struct() {
        let mut t = MountTable::new();
        t.insert("/x", 7u8).unwrap();
        assert_eq!(t.resolve("/x/y"), Some(Match { payload: &7u8, script_name: "/x".into(), path_info: "/y".into() }));
    }

    #[test]
    fn first_segment() {
        assert_eq!(split_first_segment("/hello/x/y"), Some(("hello", "/x/y")));
        assert_eq!(split_first_segment("/hello"), Some(("hello", "")));
        assert_eq!(split_first_segment("/hello/"), Some(("hello", "/")));
        assert_eq!(split_first_segment("//hello//x"), Some(("hello", "//x")));
        assert_eq!(split_first_segment("hello/x"), Some(("hello", "/x")));
        assert_eq!(split_first_segment(""), None);
        assert_eq!(split_first_segment("/"), None);
        assert_eq!(split_first_segment("///"), None);
    }
}
