//! Bytes kept for a slow peer: in memory up to a bound, then in an unlinked temporary file
//! (`O_TMPFILE` in the temporary directory, mode 0600, gone with its last descriptor). The
//! Apache child keeps a slow client's response in such a file (`apache/response_buffer.rs`) and
//! collects a request body in a [`Spool`] before the application runs (`collected_body.rs`).
//!
//! Why it is pure: appending and reading back in order, across the memory/file boundary, is
//! unit-tested here without a server.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// An unlinked temporary file.
pub fn temp_file() -> io::Result<OwnedFd> {
    let dir = std::ffi::CString::new(std::env::temp_dir().into_os_string().into_encoded_bytes())
        .map_err(|_| io::Error::other("temporary directory name has a NUL"))?;
    let fd = unsafe { libc::open(dir.as_ptr(), libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC, 0o600) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Writes all of `data` to `fd` at `offset`; on an error, how much was written with it.
pub fn write_at(fd: &OwnedFd, data: &[u8], offset: u64) -> Result<(), (usize, io::Error)> {
    let mut done = 0;
    while done < data.len() {
        let n = unsafe {
            libc::pwrite(
                fd.as_raw_fd(),
                data[done..].as_ptr().cast(),
                data.len() - done,
                (offset + done as u64) as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err((done, e));
        }
        done += n as usize;
    }
    Ok(())
}

/// Copies `src` into the start of `dst`, which may be uninitialised (a body read into the
/// caller's buffer: [`Spool::read`], `Backend::read_body`).
pub fn copy_to_uninit(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    assert!(src.len() <= dst.len());
    // SAFETY: both are valid for src.len() bytes and a &mut cannot overlap a &.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<u8>(), src.len()) };
}

/// Bytes appended once and read back once, in order: the first `memory_max` in memory, the rest
/// in a temporary file made when first needed.
pub struct Spool {
    memory: Vec<u8>,
    memory_max: usize,
    file: Option<OwnedFd>,
    file_len: u64,
    /// How many bytes have been read back.
    read: u64,
}

impl Spool {
    pub fn new(memory_max: usize) -> Spool {
        Spool { memory: Vec::new(), memory_max, file: None, file_len: 0, read: 0 }
    }

    /// Bytes appended.
    pub fn len(&self) -> u64 {
        self.memory.len() as u64 + self.file_len
    }

    /// Bytes appended and not read back yet.
    #[cfg(test)]
    pub fn unread(&self) -> u64 {
        self.len() - self.read
    }

    /// Bytes appended to memory and not read back yet (memory is read first).
    pub fn unread_in_memory(&self) -> u64 {
        (self.memory.len() as u64).saturating_sub(self.read)
    }

    /// Whether bytes were kept in the file.
    pub fn in_file(&self) -> bool {
        self.file.is_some()
    }

    /// Room for up to `max` more bytes in memory, while there is any (and nothing is in the
    /// file yet), to be filled in place and then counted with [`Spool::filled`].
    pub fn memory_room(&mut self, max: usize) -> Option<&mut [MaybeUninit<u8>]> {
        let room = max.min(self.memory_max.saturating_sub(self.memory.len()));
        if self.file.is_some() || room == 0 {
            return None;
        }
        self.memory.reserve(room);
        Some(&mut self.memory.spare_capacity_mut()[..room])
    }

    /// Counts `n` bytes written at the start of the last [`Spool::memory_room`].
    ///
    /// # Safety
    /// Those `n` bytes must have been initialised, and `n` be at most the room's length.
    pub unsafe fn filled(&mut self, n: usize) {
        debug_assert!(n <= self.memory.capacity() - self.memory.len());
        self.memory.set_len(self.memory.len() + n);
    }

    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if self.file.is_none() && self.memory.len() + data.len() <= self.memory_max {
            self.memory.extend_from_slice(data);
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(temp_file()?);
        }
        let file = self.file.as_ref().expect("just made");
        write_at(file, data, self.file_len).map_err(|(_, e)| e)?;
        self.file_len += data.len() as u64;
        Ok(())
    }

    /// Reads the next bytes into the start of `buf` (which may be uninitialised); `Ok(0)` once
    /// everything appended has been read.
    pub fn read(&mut self, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
        let in_memory = self.memory.len() as u64;
        let n = if self.read < in_memory {
            let from = &self.memory[self.read as usize..];
            let n = from.len().min(buf.len());
            copy_to_uninit(buf, &from[..n]);
            n
        } else {
            let Some(file) = &self.file else { return Ok(0) };
            let want = (self.len() - self.read).min(buf.len() as u64) as usize;
            if want == 0 {
                return Ok(0);
            }
            let at = (self.read - in_memory) as libc::off_t;
            let n = unsafe { libc::pread(file.as_raw_fd(), buf.as_mut_ptr().cast(), want, at) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the spool file is shorter than written"));
            }
            n as usize
        };
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(spool: &mut Spool, piece: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![MaybeUninit::<u8>::uninit(); piece];
        loop {
            let n = spool.read(&mut buf).unwrap();
            if n == 0 {
                return out;
            }
            // SAFETY: read initialised the first n bytes.
            out.extend(buf[..n].iter().map(|b| unsafe { b.assume_init() }));
        }
    }

    #[test]
    fn small_bodies_stay_in_memory() {
        let mut s = Spool::new(16);
        s.append(b"hello ").unwrap();
        s.append(b"world").unwrap();
        assert!(!s.in_file());
        assert_eq!((s.len(), s.unread()), (11, 11));
        assert_eq!(read_all(&mut s, 4), b"hello world");
        assert_eq!(s.unread(), 0);
    }

    #[test]
    fn the_rest_goes_to_the_file_and_comes_back_in_order() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for (memory_max, piece) in [(0, 1000), (1000, 333), (4096, 70_000)] {
            let mut s = Spool::new(memory_max);
            for chunk in data.chunks(777) {
                s.append(chunk).unwrap();
            }
            assert!(s.in_file());
            assert_eq!(s.len(), data.len() as u64);
            assert_eq!(read_all(&mut s, piece), data, "memory_max {memory_max}, piece {piece}");
        }
    }

    #[test]
    fn memory_is_filled_in_place_until_it_is_full() {
        let mut s = Spool::new(8);
        let room = s.memory_room(5).unwrap();
        copy_to(room, b"hello");
        unsafe { s.filled(5) };
        let room = s.memory_room(100).unwrap();
        assert_eq!(room.len(), 3, "what is left of memory_max");
        copy_to(room, b" wo");
        unsafe { s.filled(3) };
        assert!(s.memory_room(1).is_none(), "memory is full");
        s.append(b"rld").unwrap();
        assert!(s.in_file() && s.memory_room(1).is_none());
        assert_eq!(read_all(&mut s, 3), b"hello world");
    }

    fn copy_to(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
        for (d, b) in dst.iter_mut().zip(src) {
            d.write(*b);
        }
    }

    #[test]
    fn reading_and_appending_interleave() {
        let mut s = Spool::new(4);
        s.append(b"abc").unwrap();
        assert_eq!(read_all(&mut s, 2), b"abc");
        s.append(b"defgh").unwrap();
        assert_eq!(read_all(&mut s, 2), b"defgh");
        assert_eq!(read_all(&mut s, 2), b"");
    }
}
