//! Per-interpreter caches on the request path: the environ's CGI key and value strings, and the
//! fast hash the interpreter's small maps use.

use super::obj::{self, Obj, Py, PyResult};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A word-at-a-time multiplicative hash (FxHash's scheme): the per-request maps here (environ
/// keys, this thread's interpreters and thread states, loaded scripts) have small keys and
/// bounded contents, and both SipHash and a byte-at-a-time FNV showed in profiles of the
/// request path. Not DoS-resistant: every map it serves is bounded or keyed by configuration.
#[derive(Default)]
pub struct FastHash(u64);

impl FastHash {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for FastHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(last));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHash>>;

/// How many environ key strings an interpreter keeps for reuse.
const ENVIRON_KEY_CACHE: usize = 256;

/// The longest CGI value kept for the next request (most that repeat are short: the server's
/// name, address and port, the method, protocol, Host, Accept, User-Agent, the script's path).
const VALUE_CACHE_MAX: usize = 128;

/// The environ's CGI key strings, made once per interpreter, and each position's last value.
/// Requests list their CGI variables in much the same order (Apache's fixed ones, then the
/// client's headers), so each position first checks the key the previous request had there (a
/// byte comparison, no hashing); the map by name catches the rest. Clients choose header names,
/// so both stay bounded. A value equal to the one the previous request had at that position
/// under the same key is the same `str` again (immutable, so no application can tell), which
/// saves making, decoding and freeing most of an environ's strings.
#[derive(Default)]
pub struct EnvironStrings {
    by_name: FastMap<Box<[u8]>, Obj>,
    last: Vec<Position>,
}

/// What the previous request had at one position of its CGI variables.
struct Position {
    name: Box<[u8]>,
    key: Obj,
    /// Its value, kept while at most [`VALUE_CACHE_MAX`] bytes (its buffer is reused).
    value: Vec<u8>,
    value_str: Option<Obj>,
}

impl Position {
    fn keep(&mut self, py: Py<'_>, value: &[u8], obj: &Obj) {
        self.value.clear();
        self.value_str = None;
        if value.len() <= VALUE_CACHE_MAX {
            self.value.extend_from_slice(value);
            self.value_str = Some(obj.clone_ref(py));
        }
    }
}

impl EnvironStrings {
    /// The key and value strings of the CGI variable `name=value` at `position`.
    pub fn item(&mut self, py: Py<'_>, position: usize, name: &[u8], value: &[u8]) -> PyResult<(Obj, Obj)> {
        if let Some(last) = self.last.get_mut(position) {
            if *last.name == *name {
                let value = match &last.value_str {
                    Some(obj) if *last.value == *value => obj.clone_ref(py),
                    _ => {
                        let obj = obj::latin1(py, value)?;
                        last.keep(py, value, &obj);
                        obj
                    }
                };
                return Ok((last.key.clone_ref(py), value));
            }
        }
        let key = match self.by_name.get(name) {
            Some(key) => key.clone_ref(py),
            None => {
                let key = obj::latin1(py, name)?;
                if self.by_name.len() < ENVIRON_KEY_CACHE {
                    self.by_name.insert(name.into(), key.clone_ref(py));
                }
                key
            }
        };
        let obj = obj::latin1(py, value)?;
        let mut last = Position { name: name.into(), key: key.clone_ref(py), value: Vec::new(), value_str: None };
        last.keep(py, value, &obj);
        if position < self.last.len() {
            self.last[position] = last;
        } else if position == self.last.len() && position < ENVIRON_KEY_CACHE {
            self.last.push(last);
        }
        Ok((key, obj))
    }
}
