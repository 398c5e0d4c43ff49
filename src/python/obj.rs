//! A tiny owned-reference wrapper over `pyo3::ffi`.
//!
//! pyo3's safe API assumes one interpreter per process (its GIL guard, reference pool and type
//! objects are process-wide), so inside sub-interpreters we use the raw C API. `Obj` is the one
//! piece of safety we add: a strong reference that is released exactly once. Every `Obj` lives
//! only while its interpreter's thread state is current (the GIL is held); nothing here is `Send`.
//!
//! Every safe function here that calls the C API takes a [`Py`] token, the proof that the GIL is
//! held: only `Attached::py` (interp.rs) and [`Py::assume`] (in code CPython calls with the GIL
//! held, and where start-up takes it) make one. `Drop` cannot take it: an `Obj` is dropped only
//! where its interpreter's GIL is held.

use pyo3::ffi;
use std::ffi::CStr;
use std::marker::PhantomData;
use std::os::raw::c_char;
use std::ptr::NonNull;

/// Proof that this thread holds an interpreter's GIL (its thread state is current) for `'p`.
/// Zero-sized and `Copy`; neither `Send` nor `Sync`, so it cannot leave the thread that holds
/// the GIL.
#[derive(Clone, Copy)]
pub struct Py<'p>(PhantomData<(&'p (), *mut ffi::PyThreadState)>);

// Passing the token costs nothing.
const _: () = assert!(std::mem::size_of::<Py<'static>>() == 0);

impl Py<'_> {
    /// The token, for code that CPython calls with the GIL held (native functions, capsule
    /// destructors) or that has just taken or created the GIL.
    ///
    /// # Safety
    /// The calling thread must hold the GIL, its thread state current, for as long as the
    /// token (and anything made with it) is used.
    pub unsafe fn assume<'p>() -> Py<'p> {
        Py(PhantomData)
    }
}

/// A strong reference to a Python object, released on drop. Only create, use and drop it with
/// the GIL held by the interpreter that owns the object (a new reference needs [`Obj::clone_ref`]
/// and its token).
pub struct Obj(NonNull<ffi::PyObject>);

/// A Python exception was raised and is set as the current error of the thread state.
#[derive(Debug)]
pub struct PyErrSet;

pub type PyResult<T> = Result<T, PyErrSet>;

impl Obj {
    /// Takes ownership of a new reference; a null pointer means an exception is set.
    ///
    /// # Safety
    /// `ptr` must be a new (owned) reference or null, and the GIL must be held.
    pub unsafe fn owned(ptr: *mut ffi::PyObject) -> PyResult<Obj> {
        NonNull::new(ptr).map(Obj).ok_or(PyErrSet)
    }

    /// Takes a new strong reference to a borrowed pointer.
    ///
    /// # Safety
    /// `ptr` must be a valid, non-null object pointer and the GIL must be held.
    pub unsafe fn borrowed(ptr: *mut ffi::PyObject) -> Obj {
        ffi::Py_INCREF(ptr);
        Obj(NonNull::new_unchecked(ptr))
    }

    pub fn as_ptr(&self) -> *mut ffi::PyObject {
        self.0.as_ptr()
    }

    /// Gives up ownership without releasing the reference (for APIs that steal one).
    pub fn into_ptr(self) -> *mut ffi::PyObject {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    pub fn getattr(&self, _py: Py<'_>, name: &CStr) -> PyResult<Obj> {
        unsafe { Obj::owned(ffi::PyObject_GetAttrString(self.as_ptr(), name.as_ptr())) }
    }

    pub fn call0(&self, _py: Py<'_>) -> PyResult<Obj> {
        unsafe { Obj::owned(ffi::PyObject_CallNoArgs(self.as_ptr())) }
    }

    pub fn call1(&self, _py: Py<'_>, a: &Obj) -> PyResult<Obj> {
        unsafe { Obj::owned(ffi::PyObject_CallOneArg(self.as_ptr(), a.as_ptr())) }
    }

    pub fn call(&self, py: Py<'_>, args: &[&Obj]) -> PyResult<Obj> {
        let tuple = tuple(py, args)?;
        unsafe { Obj::owned(ffi::PyObject_Call(self.as_ptr(), tuple.as_ptr(), std::ptr::null_mut())) }
    }

    /// `self(**kwargs)`.
    pub fn call_kw(&self, py: Py<'_>, kwargs: &Obj) -> PyResult<Obj> {
        let args = tuple(py, &[])?;
        unsafe { Obj::owned(ffi::PyObject_Call(self.as_ptr(), args.as_ptr(), kwargs.as_ptr())) }
    }

    /// Python truth; an error while testing counts as false (and is cleared).
    pub fn is_true(&self, _py: Py<'_>) -> bool {
        match unsafe { ffi::PyObject_IsTrue(self.as_ptr()) } {
            1 => true,
            0 => false,
            _ => {
                unsafe { ffi::PyErr_Clear() };
                false
            }
        }
    }

    pub fn is_callable(&self, _py: Py<'_>) -> bool {
        unsafe { ffi::PyCallable_Check(self.as_ptr()) == 1 }
    }

    pub fn is_none(&self, _py: Py<'_>) -> bool {
        unsafe { self.as_ptr() == ffi::Py_None() }
    }

    /// The bytes of a `bytes` object, or None for any other type.
    pub fn as_bytes(&self, _py: Py<'_>) -> Option<&[u8]> {
        unsafe {
            if ffi::PyBytes_Check(self.as_ptr()) == 0 {
                return None;
            }
            let mut data: *mut c_char = std::ptr::null_mut();
            let mut len: ffi::Py_ssize_t = 0;
            if ffi::PyBytes_AsStringAndSize(self.as_ptr(), &mut data, &mut len) != 0 {
                ffi::PyErr_Clear();
                return None;
            }
            Some(std::slice::from_raw_parts(data as *const u8, len as usize))
        }
    }

    /// The UTF-8 text of a `str` object, or None for any other type (or lone surrogates).
    pub fn as_str(&self, _py: Py<'_>) -> Option<&str> {
        unsafe {
            if ffi::PyUnicode_Check(self.as_ptr()) == 0 {
                return None;
            }
            let mut len: ffi::Py_ssize_t = 0;
            let p = ffi::PyUnicode_AsUTF8AndSize(self.as_ptr(), &mut len);
            if p.is_null() {
                ffi::PyErr_Clear();
                return None;
            }
            std::str::from_utf8(std::slice::from_raw_parts(p as *const u8, len as usize)).ok()
        }
    }

    /// `str(self)` as a Rust string, for messages. Never fails.
    pub fn display(&self, py: Py<'_>) -> String {
        unsafe {
            match Obj::owned(ffi::PyObject_Str(self.as_ptr())) {
                Ok(s) => s.as_str(py).unwrap_or("<unprintable>").to_string(),
                Err(_) => {
                    ffi::PyErr_Clear();
                    "<unprintable>".to_string()
                }
            }
        }
    }

    pub fn type_name(&self, _py: Py<'_>) -> String {
        unsafe {
            let t = ffi::Py_TYPE(self.as_ptr());
            CStr::from_ptr((*t).tp_name).to_string_lossy().into_owned()
        }
    }

    /// A new strong reference to the same object.
    pub fn clone_ref(&self, _py: Py<'_>) -> Obj {
        unsafe { Obj::borrowed(self.as_ptr()) }
    }
}

/// Drop cannot take a token: an `Obj` is dropped only where its interpreter's GIL is held (the
/// rule above, which every owner keeps).
impl Drop for Obj {
    fn drop(&mut self) {
        unsafe { ffi::Py_DECREF(self.0.as_ptr()) }
    }
}

/// `str` decoded from latin-1 bytes, as PEP 3333 wants for every environ value.
pub fn latin1(_py: Py<'_>, bytes: &[u8]) -> PyResult<Obj> {
    unsafe {
        Obj::owned(ffi::PyUnicode_DecodeLatin1(
            bytes.as_ptr() as *const c_char,
            bytes.len() as ffi::Py_ssize_t,
            std::ptr::null(),
        ))
    }
}

pub fn text(_py: Py<'_>, s: &str) -> PyResult<Obj> {
    unsafe { Obj::owned(ffi::PyUnicode_FromStringAndSize(s.as_ptr() as *const c_char, s.len() as ffi::Py_ssize_t)) }
}

/// An interned `str`: made once, its hash computed once, and found by identity in dicts.
pub fn interned(_py: Py<'_>, s: &CStr) -> PyResult<Obj> {
    unsafe { Obj::owned(ffi::PyUnicode_InternFromString(s.as_ptr())) }
}

pub fn bytes(_py: Py<'_>, b: &[u8]) -> PyResult<Obj> {
    unsafe { Obj::owned(ffi::PyBytes_FromStringAndSize(b.as_ptr() as *const c_char, b.len() as ffi::Py_ssize_t)) }
}

extern "C" {
    // Public in CPython's headers (cpython/bytesobject.h) but not re-exported by pyo3-ffi.
    fn _PyBytes_Resize(bytes: *mut *mut ffi::PyObject, newsize: ffi::Py_ssize_t) -> std::os::raw::c_int;
}

/// A new `bytes` object being filled in place (so data read from a socket is copied once,
/// straight into the object Python gets): made at a capacity, written, then cut to length.
/// Nothing else can see the object until [`BytesBuf::finish`] hands it over.
pub struct BytesBuf {
    obj: *mut ffi::PyObject,
    cap: usize,
}

impl BytesBuf {
    pub fn new(_py: Py<'_>, cap: usize) -> PyResult<BytesBuf> {
        let obj = unsafe { ffi::PyBytes_FromStringAndSize(std::ptr::null(), cap as ffi::Py_ssize_t) };
        if obj.is_null() {
            return Err(PyErrSet);
        }
        Ok(BytesBuf { obj, cap })
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The bytes from `from` to the capacity, to be written. Touching them needs no GIL: the
    /// object is still private to its creator.
    pub fn spare(&mut self, _py: Py<'_>, from: usize) -> &mut [std::mem::MaybeUninit<u8>] {
        let from = from.min(self.cap);
        unsafe {
            let data = ffi::PyBytes_AsString(self.obj) as *mut std::mem::MaybeUninit<u8>;
            std::slice::from_raw_parts_mut(data.add(from), self.cap - from)
        }
    }

    /// Changes the capacity, keeping the bytes written so far (GIL held).
    pub fn resize(&mut self, _py: Py<'_>, cap: usize) -> PyResult<()> {
        // On failure _PyBytes_Resize releases the object and sets MemoryError.
        if unsafe { _PyBytes_Resize(&mut self.obj, cap as ffi::Py_ssize_t) } != 0 {
            self.obj = std::ptr::null_mut();
            return Err(PyErrSet);
        }
        self.cap = cap;
        Ok(())
    }

    /// The object, cut to its first `len` bytes, which must all have been written.
    pub fn finish(mut self, py: Py<'_>, len: usize) -> PyResult<Obj> {
        if len < self.cap {
            self.resize(py, len)?;
        }
        let obj = std::mem::replace(&mut self.obj, std::ptr::null_mut());
        unsafe { Obj::owned(obj) }
    }
}

impl Drop for BytesBuf {
    fn drop(&mut self) {
        if !self.obj.is_null() {
            unsafe { ffi::Py_DECREF(self.obj) };
        }
    }
}

pub fn int(_py: Py<'_>, v: i64) -> PyResult<Obj> {
    unsafe { Obj::owned(ffi::PyLong_FromLongLong(v)) }
}

pub fn float(_py: Py<'_>, v: f64) -> PyResult<Obj> {
    unsafe { Obj::owned(ffi::PyFloat_FromDouble(v)) }
}

/// Item `i` of a tuple (a new reference).
pub fn tuple_item(_py: Py<'_>, t: &Obj, i: isize) -> PyResult<Obj> {
    unsafe { Obj::owned(ffi::PySequence_GetItem(t.as_ptr(), i)) }
}

pub fn boolean(_py: Py<'_>, v: bool) -> Obj {
    unsafe { Obj::borrowed(if v { ffi::Py_True() } else { ffi::Py_False() }) }
}

pub fn none(_py: Py<'_>) -> Obj {
    unsafe { Obj::borrowed(ffi::Py_None()) }
}

pub fn tuple(py: Py<'_>, items: &[&Obj]) -> PyResult<Obj> {
    unsafe {
        let t = Obj::owned(ffi::PyTuple_New(items.len() as ffi::Py_ssize_t))?;
        for (i, item) in items.iter().enumerate() {
            // PyTuple_SetItem steals a reference.
            ffi::PyTuple_SetItem(t.as_ptr(), i as ffi::Py_ssize_t, item.clone_ref(py).into_ptr());
        }
        Ok(t)
    }
}

pub fn dict(_py: Py<'_>) -> PyResult<Obj> {
    unsafe { Obj::owned(ffi::PyDict_New()) }
}

pub fn dict_set(_py: Py<'_>, d: &Obj, key: &Obj, value: &Obj) -> PyResult<()> {
    unsafe {
        if ffi::PyDict_SetItem(d.as_ptr(), key.as_ptr(), value.as_ptr()) == 0 {
            Ok(())
        } else {
            Err(PyErrSet)
        }
    }
}

pub fn dict_set_str(_py: Py<'_>, d: &Obj, key: &CStr, value: &Obj) -> PyResult<()> {
    unsafe {
        if ffi::PyDict_SetItemString(d.as_ptr(), key.as_ptr(), value.as_ptr()) == 0 {
            Ok(())
        } else {
            Err(PyErrSet)
        }
    }
}

/// Raises `exc` (e.g. `ffi::PyExc_ValueError`) with a message; returns null for C callers.
/// `exc` is always one of CPython's exception classes, valid for the life of the process.
#[allow(clippy::not_unsafe_ptr_arg_deref)]
pub fn raise(_py: Py<'_>, exc: *mut ffi::PyObject, msg: &str) -> *mut ffi::PyObject {
    let msg = std::ffi::CString::new(msg.replace('\0', "\\0")).unwrap_or_default();
    unsafe { ffi::PyErr_SetString(exc, msg.as_ptr()) };
    std::ptr::null_mut()
}

/// The currently raised exception, taken out of the thread state (None if none is set).
#[cfg(Py_3_12)]
pub fn take_error(_py: Py<'_>) -> Option<Obj> {
    // A new reference to the (always normalized) exception, its traceback on it; null if none.
    unsafe { Obj::owned(ffi::PyErr_GetRaisedException()).ok() }
}

/// The currently raised exception, taken out of the thread state (None if none is set).
#[cfg(not(Py_3_12))]
pub fn take_error(_py: Py<'_>) -> Option<Obj> {
    unsafe {
        let mut t = std::ptr::null_mut();
        let mut v = std::ptr::null_mut();
        let mut tb = std::ptr::null_mut();
        ffi::PyErr_Fetch(&mut t, &mut v, &mut tb);
        if t.is_null() {
            return None;
        }
        ffi::PyErr_NormalizeException(&mut t, &mut v, &mut tb);
        if !tb.is_null() && !v.is_null() {
            ffi::PyException_SetTraceback(v, tb);
        }
        ffi::Py_DECREF(t);
        if !tb.is_null() {
            ffi::Py_DECREF(tb);
        }
        Obj::owned(v).ok()
    }
}

/// Puts an exception object back as the current error.
#[cfg(Py_3_12)]
pub fn restore_error(_py: Py<'_>, exc: Obj) {
    // Steals the reference; the traceback travels on the exception.
    unsafe { ffi::PyErr_SetRaisedException(exc.into_ptr()) };
}

/// Puts an exception object back as the current error.
#[cfg(not(Py_3_12))]
pub fn restore_error(_py: Py<'_>, exc: Obj) {
    unsafe {
        let t = ffi::Py_TYPE(exc.as_ptr()) as *mut ffi::PyObject;
        ffi::Py_INCREF(t);
        let tb = ffi::PyException_GetTraceback(exc.as_ptr());
        ffi::PyErr_Restore(t, exc.into_ptr(), tb);
    }
}
