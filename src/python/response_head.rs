//! What an application passes to start_response(), converted and checked the way mod_wsgi 6's
//! `wsgi_convert.c` does it, with its exception types: a status or header that is not `str`
//! raises TypeError ("must be str, not int"), text outside latin-1 Python's own
//! UnicodeEncodeError, a header that is not a 2-tuple TypeError or ValueError, and a value
//! [`headers`](super::headers) refuses ValueError.

use super::headers::{check_header_name, check_header_value, check_status};
use super::obj::{raise, Obj, Py, PyErrSet, PyResult};
use pyo3::ffi;

/// A response head as start_response() records it.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub line: String,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub content_length: Option<u64>,
}

/// The status line and the header list (already known to be a list) as a [`Head`].
pub fn convert(py: Py<'_>, status: &Obj, headers: &Obj) -> PyResult<Head> {
    let invalid = |msg: String| value_error(py, msg);
    let line_bytes = latin1_bytes(py, status)?;
    let line = line_bytes.as_bytes(py).unwrap_or_default();
    let status_code = check_status(line).map_err(invalid)?;
    let line = line.iter().map(|&c| c as char).collect();
    let n = unsafe { ffi::PyList_Size(headers.as_ptr()) };
    let mut parsed = Vec::with_capacity(n.max(0) as usize);
    let mut content_length = None;
    for i in 0..n {
        let item = unsafe { Obj::borrowed(ffi::PyList_GetItem(headers.as_ptr(), i)) };
        let (name, value) = unsafe {
            if ffi::PyTuple_Check(item.as_ptr()) == 0 {
                let msg = format!("each header must be a 2-tuple, not {}", item.type_name(py));
                raise(py, ffi::PyExc_TypeError, &msg);
                return Err(PyErrSet);
            }
            let len = ffi::PyTuple_Size(item.as_ptr());
            if len != 2 {
                raise(py, ffi::PyExc_ValueError, &format!("each header must be a 2-tuple, got length {len}"));
                return Err(PyErrSet);
            }
            (
                Obj::borrowed(ffi::PyTuple_GetItem(item.as_ptr(), 0)),
                Obj::borrowed(ffi::PyTuple_GetItem(item.as_ptr(), 1)),
            )
        };
        let name = latin1_bytes(py, &name)?;
        let name = name.as_bytes(py).unwrap_or_default();
        check_header_name(name).map_err(invalid)?;
        let value = latin1_bytes(py, &value)?;
        let value = value.as_bytes(py).unwrap_or_default();
        check_header_value(value).map_err(invalid)?;
        if name.eq_ignore_ascii_case(b"content-length") {
            match std::str::from_utf8(value).ok().and_then(|v| v.trim().parse::<u64>().ok()) {
                Some(v) => content_length = Some(v),
                None => {
                    let msg = format!("invalid Content-Length value {:?}", String::from_utf8_lossy(value));
                    return Err(invalid(msg));
                }
            }
        }
        parsed.push((name.to_vec(), value.to_vec()));
    }
    Ok(Head { status: status_code, line, headers: parsed, content_length })
}

/// A `str` as latin-1 `bytes` (mod_wsgi's `wsgi_convert_string_to_bytes`).
fn latin1_bytes(py: Py<'_>, o: &Obj) -> PyResult<Obj> {
    unsafe {
        if ffi::PyUnicode_Check(o.as_ptr()) == 0 {
            raise(py, ffi::PyExc_TypeError, &format!("must be str, not {}", o.type_name(py)));
            return Err(PyErrSet);
        }
        Obj::owned(ffi::PyUnicode_AsLatin1String(o.as_ptr()))
    }
}

fn value_error(py: Py<'_>, msg: String) -> PyErrSet {
    raise(py, unsafe { ffi::PyExc_ValueError }, &msg);
    PyErrSet
}
