//! The part of a request's body collected before its application runs: 64 KiB in memory, the
//! rest in a temporary file (`crate::spool`), up to a limit (`WSGIRequestSpoolSize`,
//! `request-spool-size=`), read back in order. Apache's side (reading the client without
//! blocking, and parking the request in the MPM meanwhile) is `apache/request_body.rs` and
//! `apache/body_wait.rs`. A body of up to 64 KiB that has all come with the request is not
//! collected at all ([`Collected::arrived`]): it stays in Apache's input filters, one copy fewer.
//!
//! Why it is pure: when collecting stops (the end of the body, the limit, a file that cannot be
//! written) and what is handed on afterwards is unit-tested here without a server.

use crate::spool::{copy_to_uninit, Spool};
use std::io;
use std::mem::MaybeUninit;

/// Bytes of a body kept in memory before the rest goes to the file.
const IN_MEMORY: usize = 64 << 10;

/// Bytes read from the client at a time (once memory is full).
const PIECE: usize = 64 << 10;

/// Bytes of memory the first read of a collected body may fill.
const FIRST: usize = 16 << 10;

/// What one read of the body gave.
#[derive(Debug, PartialEq)]
pub enum Chunk {
    /// Bytes at the start of the buffer.
    Bytes(usize),
    /// The last bytes of the body, at the start of the buffer.
    Last(usize),
    /// The body has ended.
    End,
    /// Nothing yet (a non-blocking read): the client has not sent more.
    Again,
}

/// The part of a request's body collected before its application runs.
pub struct Collected {
    spool: Spool,
    /// A piece read from the client that the file could not take (a full disk): handed on after
    /// the spool's bytes, before the client's.
    held: Vec<u8>,
    /// The client's body ended within what was collected.
    complete: bool,
    /// Collecting has stopped: the body ended, the limit was reached, or the file failed.
    stopped: bool,
    /// The most bytes collected.
    limit: u64,
    /// Bytes of the body that had all come before the application ran and were left where the
    /// client's reads come from (Apache's input filters), not yet read: reads of them need no
    /// waiting ([`Collected::arrived`]).
    arrived: u64,
}

impl Collected {
    /// Nothing yet; at most `limit` bytes will be collected.
    pub fn new(limit: u64) -> Collected {
        Collected {
            spool: Spool::new(IN_MEMORY),
            held: Vec::new(),
            complete: false,
            stopped: limit == 0,
            limit,
            arrived: 0,
        }
    }

    /// Whether a body of `len` bytes that has all come may stay where it is instead of being
    /// collected: it is no more than collecting would keep in memory, nor than `limit`.
    pub fn may_stay(len: u64, limit: u64) -> bool {
        len <= limit.min(IN_MEMORY as u64)
    }

    /// The whole body, `len` bytes, has come with the request and stays where the client's
    /// reads take it from: nothing is collected or copied, and reading it needs no waiting.
    pub fn arrived(len: u64) -> Collected {
        Collected { spool: Spool::new(0), held: Vec::new(), complete: false, stopped: true, limit: 0, arrived: len }
    }

    /// `n` bytes were read from the client, past what was collected.
    pub fn read_from_client(&mut self, n: usize) {
        self.arrived = self.arrived.saturating_sub(n as u64);
    }

    /// Collecting has stopped: the application can run.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The body was collected whole or in part: the daemon can have its first piece with the
    /// request without making the client send it (`Expect: 100-continue`).
    pub fn any(&self) -> bool {
        self.complete || self.spool.len() > 0 || self.arrived > 0
    }

    /// The next `want` bytes the application reads (`u64::MAX`: to the end) come from memory
    /// and need no I/O: they are in memory, or the whole body is and `want` goes to its end.
    pub fn in_memory(&self, want: u64) -> bool {
        let unread = self.spool.unread_in_memory() + self.arrived;
        want <= unread || (self.complete && self.held.is_empty() && !self.spool.in_file())
    }

    /// Reads with `read` until the body ends, the limit is reached, or `read` has nothing more
    /// for now ([`Chunk::Again`]: call again when the client has sent more). A file that cannot
    /// be written stops collecting (logged with `log`); the application reads the rest from the
    /// client.
    pub fn fill<E>(
        &mut self,
        mut read: impl FnMut(&mut [MaybeUninit<u8>]) -> Result<Chunk, E>,
        log: impl FnOnce(&str),
    ) -> Result<(), E> {
        // Read in place while the body fits in memory, through `buf` once it goes to the file.
        let mut buf: Vec<u8> = Vec::new();
        while !self.stopped {
            if self.spool.len() >= self.limit {
                self.stopped = true;
                break;
            }
            let max = (self.limit - self.spool.len()).min(PIECE as u64) as usize;
            // The first read takes up to 16 KiB, the next ones the rest of memory: a parked
            // upload that has sent little holds little.
            let in_memory = if self.spool.len() == 0 { max.min(FIRST) } else { max };
            if let Some(room) = self.spool.memory_room(in_memory) {
                match read(room)? {
                    // SAFETY: read initialised the first n bytes of the room.
                    Chunk::Bytes(n) => unsafe { self.spool.filled(n) },
                    Chunk::Last(n) => {
                        // SAFETY: as above.
                        unsafe { self.spool.filled(n) };
                        self.end();
                    }
                    Chunk::End => self.end(),
                    Chunk::Again => return Ok(()),
                }
                continue;
            }
            buf.reserve(PIECE);
            match read(&mut buf.spare_capacity_mut()[..max])? {
                // SAFETY: read initialised the first n bytes of the spare capacity.
                Chunk::Bytes(n) => unsafe { buf.set_len(n) },
                Chunk::Last(n) => {
                    // SAFETY: as above.
                    unsafe { buf.set_len(n) };
                    self.end();
                }
                Chunk::End => {
                    self.end();
                    break;
                }
                Chunk::Again => return Ok(()),
            }
            if let Err(e) = self.spool.append(&buf) {
                log(&format!(
                    "oxwsgi: cannot keep a request body in a temporary file ({e}); the application reads the rest \
                     from the client"
                ));
                self.held = std::mem::take(&mut buf);
                self.stopped = true;
                break;
            }
            buf.clear();
        }
        Ok(())
    }

    fn end(&mut self) {
        self.complete = true;
        self.stopped = true;
    }

    /// The next collected bytes into the start of `buf`: `Some(0)` at the end of a body
    /// collected whole, `None` once the client has the rest.
    pub fn read(&mut self, buf: &mut [MaybeUninit<u8>]) -> io::Result<Option<usize>> {
        let n = self.spool.read(buf)?;
        if n > 0 {
            return Ok(Some(n));
        }
        if !self.held.is_empty() {
            let n = self.held.len().min(buf.len());
            copy_to_uninit(buf, &self.held[..n]);
            self.held.drain(..n);
            return Ok(Some(n));
        }
        Ok(self.complete.then_some(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read's error in these tests.
    #[derive(Debug)]
    struct Failed(u16);

    /// A client that sends `pieces`, with `None` for "nothing yet".
    fn client<'a>(
        pieces: &'a mut Vec<Option<&'static [u8]>>,
    ) -> impl FnMut(&mut [MaybeUninit<u8>]) -> Result<Chunk, Failed> + 'a {
        move |buf| {
            if pieces.is_empty() {
                return Ok(Chunk::End);
            }
            match pieces[0] {
                None => {
                    pieces.remove(0);
                    Ok(Chunk::Again)
                }
                Some(data) => {
                    let n = data.len().min(buf.len());
                    copy_to_uninit(buf, &data[..n]);
                    if n == data.len() {
                        pieces.remove(0);
                    } else {
                        pieces[0] = Some(&data[n..]);
                    }
                    Ok(Chunk::Bytes(n))
                }
            }
        }
    }

    fn read_back(c: &mut Collected) -> (Vec<u8>, Option<usize>) {
        let mut out = Vec::new();
        let mut buf = vec![MaybeUninit::<u8>::uninit(); 7];
        loop {
            match c.read(&mut buf).unwrap() {
                Some(0) => return (out, Some(0)),
                None => return (out, None),
                // SAFETY: read initialised the first n bytes.
                Some(n) => out.extend(buf[..n].iter().map(|b| unsafe { b.assume_init() })),
            }
        }
    }

    #[test]
    fn a_body_that_comes_in_pieces_is_collected_whole() {
        let mut pieces = vec![Some(&b"hello "[..]), None, Some(&b"world"[..]), None];
        let mut c = Collected::new(1 << 20);
        c.fill(client(&mut pieces), |_| panic!()).unwrap();
        assert!(!c.stopped() && c.any());
        c.fill(client(&mut pieces), |_| panic!()).unwrap();
        assert!(!c.stopped());
        c.fill(client(&mut pieces), |_| panic!()).unwrap();
        assert!(c.stopped());
        assert_eq!(read_back(&mut c), (b"hello world".to_vec(), Some(0)));
    }

    #[test]
    fn only_reads_of_what_memory_holds_are_in_memory() {
        // Whole, in memory: any read, to the end too, needs no I/O.
        let mut pieces = vec![Some(&b"hello world"[..])];
        let mut c = Collected::new(1 << 20);
        c.fill(client(&mut pieces), |_| panic!()).unwrap();
        assert!(c.stopped() && c.in_memory(11) && c.in_memory(u64::MAX));
        read_back(&mut c);
        assert!(c.in_memory(u64::MAX), "the end is known");
        // Cut at the limit: what memory holds, but not past it (the rest is the client's).
        let mut pieces = vec![Some(&b"0123456789"[..])];
        let mut c = Collected::new(4);
        c.fill(client(&mut pieces), |_| panic!()).unwrap();
        assert!(c.in_memory(4) && !c.in_memory(5) && !c.in_memory(u64::MAX));
        // Not all here yet.
        let mut pieces = vec![Some(&b"hel"[..]), None];
        let mut c = Collected::new(1 << 20);
        c.fill(client(&mut pieces), |_| panic!()).unwrap();
        assert!(!c.stopped() && c.in_memory(3) && !c.in_memory(4));
    }

    #[test]
    fn a_body_that_has_all_come_is_read_from_the_client_without_waiting() {
        assert!(Collected::may_stay(64 << 10, u64::MAX) && !Collected::may_stay((64 << 10) + 1, u64::MAX));
        assert!(Collected::may_stay(10, 10) && !Collected::may_stay(11, 10), "never past the limit");
        let mut c = Collected::arrived(10);
        assert!(c.stopped() && c.any(), "the application runs, and the daemon gets the body at once");
        assert!(c.in_memory(10) && !c.in_memory(11));
        assert_eq!(read_back(&mut c), (Vec::new(), None), "nothing kept: the reads are the client's");
        c.read_from_client(4);
        assert!(c.in_memory(6) && !c.in_memory(7));
        c.read_from_client(6);
        assert!(!c.any() && !c.in_memory(1) && c.in_memory(0));
    }

    #[test]
    fn past_the_limit_the_rest_is_the_clients() {
        let mut pieces = vec![Some(&b"0123456789"[..])];
        let mut c = Collected::new(4);
        c.fill(client(&mut pieces), |_| panic!()).unwrap();
        assert!(c.stopped());
        assert_eq!(read_back(&mut c), (b"0123".to_vec(), None));
        assert_eq!(pieces, vec![Some(&b"456789"[..])], "not read from the client");
    }

    #[test]
    fn bytes_that_end_the_body_end_collecting() {
        let mut c = Collected::new(1 << 20);
        let mut calls = 0;
        c.fill(
            |buf| -> Result<Chunk, Failed> {
                calls += 1;
                copy_to_uninit(buf, b"all");
                Ok(Chunk::Last(3))
            },
            |_| panic!(),
        )
        .unwrap();
        assert!(c.stopped());
        assert_eq!(calls, 1, "no read after the last bytes");
        assert_eq!(read_back(&mut c), (b"all".to_vec(), Some(0)));
    }

    #[test]
    fn nothing_collected_with_a_limit_of_zero() {
        let mut c = Collected::new(0);
        assert!(c.stopped() && !c.any());
        c.fill(|_| -> Result<Chunk, Failed> { panic!("not read") }, |_| panic!()).unwrap();
        assert_eq!(read_back(&mut c), (Vec::new(), None));
    }

    #[test]
    fn an_error_on_the_way_is_the_callers() {
        let mut c = Collected::new(100);
        let e = c.fill(|_| Err(Failed(408)), |_| ()).unwrap_err();
        assert_eq!(e.0, 408);
    }

    #[test]
    fn bodies_past_memory_go_to_the_file_and_come_back_in_order() {
        let data: &'static [u8] =
            Box::leak((0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>().into_boxed_slice());
        let mut pieces = vec![Some(data)];
        let mut c = Collected::new(u64::MAX);
        c.fill(client(&mut pieces), |_| panic!()).unwrap();
        assert!(c.stopped());
        assert_eq!(read_back(&mut c), (data.to_vec(), Some(0)));
    }
}
