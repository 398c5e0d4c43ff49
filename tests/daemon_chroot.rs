//! `chroot=`: a daemon group's processes run inside the directory, made their root before
//! privileges are dropped. The jail here holds Python's standard library (hard links to
//! /usr/lib/python3.N) and the application at the same path as outside; nothing else, so
//! /etc/passwd, for one, is not there.

mod common;

use common::Apache;
use std::path::{Path, PathBuf};
use std::process::Command;

const APP: &str = r#"
import os, sys

def application(environ, start_response):
    out = 'passwd=%s cwd=%s prefix=%s' % (os.path.exists('/etc/passwd'), os.getcwd(), sys.prefix)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [out.encode()]
"#;

struct Jail(PathBuf);

impl Drop for Jail {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn jail() -> (Jail, PathBuf, PathBuf) {
    let base = PathBuf::from(format!("/var/tmp/oxwsgi-jail-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("root");
    let srv = base.join("srv");
    let inside = root.join(srv.strip_prefix("/").unwrap());
    for d in [&srv, &inside, &root.join("usr/lib")] {
        std::fs::create_dir_all(d).unwrap();
    }
    let out =
        Command::new("cp").arg("-al").arg(common::python::system_stdlib()).arg(root.join("usr/lib")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for dir in [&srv, &inside] {
        std::fs::write(dir.join("app.py"), APP).unwrap();
    }
    Command::new("chmod").args(["-R", "a+rX"]).arg(&base).status().unwrap();
    (Jail(base), root, srv.join("app.py"))
}

#[test]
fn a_chrooted_group_runs_inside_its_directory() {
    let (_jail, root, script) = jail();
    let dir = script.parent().unwrap().display().to_string();
    let apache = Apache::builder()
        .config(&format!(
            "WSGIDaemonProcess jailed threads=1 chroot={}\n\
             WSGIDaemonProcess free threads=1\n\
             WSGIScriptAlias /jailed {script} process-group=jailed\n\
             WSGIScriptAlias /free {script} process-group=free\n\
             <Directory {dir}>\n    Require all granted\n</Directory>",
            root.display(),
            script = script.display()
        ))
        .start();
    let r = apache.get("/jailed");
    r.assert_status(200);
    assert_eq!(r.text(), "passwd=False cwd=/ prefix=/usr", "{}", apache.log_tail(20));
    let r = apache.get("/free");
    r.assert_status(200);
    assert!(r.text().starts_with("passwd=True "), "{}", r.text());
    assert!(!Path::new(&root.join("etc/passwd")).exists());
    let _ = apache.stop();
}

#[test]
fn a_missing_jail_is_logged_and_the_group_does_not_run() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config("WSGIDaemonProcess jailed threads=1 chroot=/nonexistent/jail\nWSGIScriptAlias /j {APPS}/app.py process-group=jailed")
        .start();
    assert!(
        apache.wait_for_log("cannot chroot to '/nonexistent/jail'", std::time::Duration::from_secs(5)),
        "{}",
        apache.log_tail(10)
    );
    let _ = apache.stop();
}
