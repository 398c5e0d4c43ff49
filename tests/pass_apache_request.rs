//! WSGIPassApacheRequest: `apache.request_rec`, an unnamed capsule holding Apache's
//! request_rec, in the embedded environ where it is On; never in daemon mode or elsewhere.

mod common;

use common::Apache;

const APP: &str = r#"
import ctypes

get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
get_pointer.restype = ctypes.c_void_p
get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]

def application(environ, start_response):
    rec = environ.get('apache.request_rec')
    if rec is None:
        out = 'none'
    else:
        out = '%s %s' % (type(rec).__name__, 'nonnull' if get_pointer(rec, None) else 'null')
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [out.encode()]
"#;

#[test]
fn the_request_rec_is_passed_only_where_asked_and_only_in_embedded_mode() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess d threads=1\n\
             WSGIScriptAlias /on {APPS}/app.py\n\
             WSGIScriptAlias /off {APPS}/app.py\n\
             WSGIScriptAlias /daemon {APPS}/app.py process-group=d\n\
             <Location /on>\n  WSGIPassApacheRequest On\n</Location>\n\
             <Location /daemon>\n  WSGIPassApacheRequest On\n</Location>",
        )
        .start();
    for (path, want) in
        [("/on", "PyCapsule nonnull"), ("/off", "none"), ("/daemon", "none"), ("/on", "PyCapsule nonnull")]
    {
        let r = apache.get(path);
        r.assert_status(200);
        assert_eq!(r.text(), want, "{path}");
    }
}
