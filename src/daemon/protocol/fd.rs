//! File descriptor passing (SENDFILE): frames sent and received with SCM_RIGHTS ancillary
//! data on a UNIX stream socket. The relay receives through [`FdStream`] under a buffered
//! [`FrameReader`] (read-ahead): one descriptor per SENDFILE, none with any other frame, no
//! truncated control data, a bounded number waiting, none left at the end; and
//! [`check_sendfile`] before a descriptor reaches Apache. (`recv_frame_maybe_fd`, one frame
//! without read-ahead over the same `recvmsg`, is kept for the unit tests as the rules' plain
//! statement.)

use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use super::consts::HEADER_LEN;
#[cfg(test)]
use super::decode::decode_owned_payload;
use super::encode::encode_frame;
use super::error::ProtocolError;
#[cfg(test)]
use super::frame::parse_header;
use super::frame::Frame;
use super::frame_type::FrameType;
use super::stream::FrameReader;

/// Control buffer for recvmsg: 64 bytes, aligned for `cmsghdr`. Room for one SCM_RIGHTS
/// message of up to 12 descriptors, so a peer sending too many is detected (`MSG_CTRUNC`).
type ControlBuf = [u64; 8];

/// Sends a SENDFILE frame on a blocking UNIX stream socket with `fd` attached (SCM_RIGHTS) to
/// its first byte, in one `sendmsg` (the rest, if the kernel took only part, follows with
/// `send`). Any other frame type is refused with [`ProtocolError::UnexpectedFd`].
pub fn send_frame_with_fd(sock: impl AsFd, frame: &Frame, fd: impl AsFd) -> Result<(), ProtocolError> {
    if !matches!(frame, Frame::SendFile { .. }) {
        return Err(ProtocolError::UnexpectedFd { frame_type: frame.frame_type() });
    }
    let mut buf = Vec::with_capacity(HEADER_LEN + 16);
    encode_frame(frame, &mut buf)?;
    send_bytes_with_fds(sock.as_fd().as_raw_fd(), &buf, &[fd.as_fd().as_raw_fd()])?;
    Ok(())
}

fn send_bytes_with_fds(sock: RawFd, bytes: &[u8], fds: &[RawFd]) -> io::Result<()> {
    let data_len = std::mem::size_of_val(fds);
    // SAFETY: CMSG_SPACE is pure arithmetic.
    let space = unsafe { libc::CMSG_SPACE(data_len as libc::c_uint) } as usize;
    let mut control = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
    // SAFETY: msghdr is a plain C struct; all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` bytes of suitably aligned, zeroed storage, so
    // CMSG_FIRSTHDR is non-null and the header plus the descriptors fit.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(data_len as libc::c_uint) as _;
        let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
        for (i, fd) in fds.iter().enumerate() {
            std::ptr::write_unaligned(data.add(i), *fd);
        }
    }
    let mut sent = loop {
        // SAFETY: msg and everything it points to are live for the call.
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    while sent < bytes.len() {
        let rest = &bytes[sent..];
        // SAFETY: rest is a live byte slice.
        let n = unsafe { libc::send(sock, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        sent += n as usize;
    }
    Ok(())
}

/// Receives one frame from a blocking UNIX stream socket, together with the file descriptor
/// passed with it. Reads exactly the frame's bytes (header, then payload; no read-ahead), so it
/// can be mixed with plain reads and writes on the same socket. Received descriptors are
/// close-on-exec.
///
/// (The rules as one frame at a time, for the unit tests; the relay reads through [`FdStream`].)
///
/// A SENDFILE frame must come with exactly one descriptor ([`ProtocolError::MissingFd`]
/// otherwise); any other frame with none ([`ProtocolError::UnexpectedFd`]; stray descriptors
/// are closed). `Err(ProtocolError::Closed)` means a clean close between frames.
#[cfg(test)]
pub fn recv_frame_maybe_fd(sock: impl AsFd) -> Result<(Frame, Option<OwnedFd>), ProtocolError> {
    let sock = sock.as_fd().as_raw_fd();
    let mut fds = Vec::new();
    let mut header = [0u8; HEADER_LEN];
    match recv_exact(sock, &mut header, &mut fds)? {
        0 => return Err(ProtocolError::Closed),
        HEADER_LEN => {}
        _ => return Err(ProtocolError::Truncated),
    }
    let (frame_type, len) = parse_header(&header, usize::MAX)?;
    let mut payload = vec![0u8; len];
    if recv_exact(sock, &mut payload, &mut fds)? < len {
        return Err(ProtocolError::Truncated);
    }
    let frame = decode_owned_payload(frame_type, payload)?;
    let fd = match (frame_type == FrameType::SendFile, fds.len()) {
        (true, 1) => fds.pop(),
        (false, 0) => None,
        (true, 0) => return Err(ProtocolError::MissingFd),
        _ => return Err(ProtocolError::UnexpectedFd { frame_type }),
    };
    Ok((frame, fd))
}

/// recvmsg until `out` is full or EOF; returns the number of bytes read. Descriptors received
/// on the way are appended to `fds`.
#[cfg(test)]
fn recv_exact(sock: RawFd, out: &mut [u8], fds: &mut Vec<OwnedFd>) -> Result<usize, ProtocolError> {
    let mut got = 0;
    while got < out.len() {
        match recv_some(sock, &mut out[got..], fds)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

/// One recvmsg (again after EINTR) into `out`; returns the number of bytes read (0: EOF).
/// Descriptors that came with them are appended to `fds` (close-on-exec); control data the
/// kernel had to truncate is [`ProtocolError::ControlTruncated`] (what did arrive is closed).
fn recv_some(sock: RawFd, out: &mut [u8], fds: &mut Vec<OwnedFd>) -> Result<usize, ProtocolError> {
    loop {
        let mut control: ControlBuf = [0; 8];
        let mut iov = libc::iovec { iov_base: out.as_mut_ptr().cast(), iov_len: out.len() };
        // SAFETY: msghdr is a plain C struct; all-zero is a valid (empty) value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of::<ControlBuf>() as _;
        // SAFETY: msg and the buffers it points to are live and writable for the call.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        // SAFETY: the kernel filled msg_control/msg_controllen for this msg.
        unsafe { collect_fds(&msg, fds) };
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            fds.clear();
            return Err(ProtocolError::ControlTruncated);
        }
        return Ok(n as usize);
    }
}

/// A UNIX stream socket as the [`Read`] under a [`FrameReader`] (which reads ahead): the
/// descriptors that arrive (SCM_RIGHTS, close-on-exec) are kept with the stretch of the byte
/// stream they came with, and [`FrameReader::read_frame_fd`] hands each SENDFILE frame its own
/// under the rules of [`recv_frame_maybe_fd`]. Control data the kernel truncated (too many
/// descriptors at once) fails the read: [`ProtocolError::ControlTruncated`].
pub struct FdStream {
    sock: UnixStream,
    /// Bytes received so far.
    received: u64,
    /// Descriptors received and not yet handed out, oldest first.
    batches: VecDeque<FdBatch>,
}

/// The descriptors one recvmsg brought and the stream bytes `from..to` it read. The kernel
/// delivers descriptors with the first byte of the message they were sent with (and never two
/// messages' descriptors at once), so that message starts in `from..to`.
struct FdBatch {
    from: u64,
    to: u64,
    fds: Vec<OwnedFd>,
}

impl FdStream {
    pub fn new(sock: UnixStream) -> Self {
        FdStream { sock, received: 0, batches: VecDeque::new() }
    }
}

/// How many descriptor-carrying messages may wait for their frames. A response has one
/// SENDFILE at a time in flight; a peer that sends descriptors faster than frames (say one
/// per byte of a long DATA frame) is cut off here, before it can exhaust the process's
/// descriptors.
const MAX_PENDING_BATCHES: usize = 8;

impl Read for FdStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let invalid = |e: ProtocolError| io::Error::new(io::ErrorKind::InvalidData, e);
        let mut fds = Vec::new();
        let n = recv_some(self.sock.as_raw_fd(), buf, &mut fds).map_err(|e| match e {
            ProtocolError::Io(e) => e,
            other => invalid(other),
        })?;
        let from = self.received;
        self.received += n as u64;
        if !fds.is_empty() {
            // Each SENDFILE sends exactly one descriptor, in a message of its own.
            if fds.len() > 1 || self.batches.len() >= MAX_PENDING_BATCHES {
                self.batches.clear();
                return Err(invalid(ProtocolError::UnexpectedFd { frame_type: FrameType::SendFile }));
            }
            self.batches.push_back(FdBatch { from, to: self.received, fds });
        }
        Ok(n)
    }
}

/// Whether a SENDFILE's descriptor and range can be handed to Apache as a file: a regular file
/// (not a pipe, socket or device, which a file bucket would read forever or block on) that holds
/// `offset..offset + length`.
pub fn check_sendfile(fd: impl AsFd, offset: u64, length: u64) -> Result<(), ProtocolError> {
    let bad = |reason| ProtocolError::Malformed { frame_type: FrameType::SendFile, reason };
    // SAFETY: fstat writes a stat struct for a descriptor we own; all-zero is a valid start.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_fd().as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error().into());
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return Err(bad("the descriptor is not a regular file"));
    }
    match offset.checked_add(length) {
        Some(end) if end <= st.st_size.max(0) as u64 => Ok(()),
        _ => Err(bad("the range goes past the end of the file")),
    }
}

impl FrameReader<FdStream> {
    /// Reads the next frame and, for a SENDFILE, the descriptor sent with it: exactly one, with
    /// the frame's first byte ([`ProtocolError::MissingFd`] if none; more is
    /// [`ProtocolError::UnexpectedFd`]). Descriptors that came with any other frame are
    /// [`ProtocolError::UnexpectedFd`]. On an error the connection is unusable; dropping the
    /// reader closes what it still holds.
    pub fn read_frame_fd(&mut self) -> Result<(Frame, Option<OwnedFd>), ProtocolError> {
        let start = self.position();
        let frame = self.read_frame().map_err(protocol_error)?;
        let end = self.position();
        let frame_type = frame.frame_type();
        let batches = &mut self.get_mut().batches;
        let fd = if frame_type == FrameType::SendFile {
            match batches.front() {
                Some(b) if b.from <= start && start < b.to => {
                    let mut fds = batches.pop_front().map(|b| b.fds).unwrap_or_default();
                    if fds.len() != 1 {
                        return Err(ProtocolError::UnexpectedFd { frame_type });
                    }
                    fds.pop()
                }
                _ => return Err(ProtocolError::MissingFd),
            }
        } else {
            None
        };
        // Descriptors whose message started no later than this frame's last byte, and that no
        // SENDFILE took, came with a frame that has none.
        if batches.front().is_some_and(|b| b.to <= end) {
            return Err(ProtocolError::UnexpectedFd { frame_type });
        }
        Ok((frame, fd))
    }

    /// At the end of a response: any descriptor still held came with no SENDFILE of it. Such
    /// strays are closed and reported as [`ProtocolError::UnexpectedFd`].
    pub fn check_no_fds_left(&mut self) -> Result<(), ProtocolError> {
        let batches = &mut self.get_mut().batches;
        if batches.is_empty() {
            return Ok(());
        }
        batches.clear();
        Err(ProtocolError::UnexpectedFd { frame_type: FrameType::End })
    }

    /// Stream offset of the next frame: bytes received minus those read ahead.
    fn position(&self) -> u64 {
        self.get_ref().received - self.buffered().len() as u64
    }
}

/// A [`ProtocolError`] that [`FdStream`] had to pass through [`Read`] as an `io::Error`, back
/// in its own shape.
fn protocol_error(e: ProtocolError) -> ProtocolError {
    match e {
        ProtocolError::Io(io) if io.get_ref().is_some_and(|inner| inner.is::<ProtocolError>()) => {
            match io.into_inner().map(|inner| inner.downcast::<ProtocolError>()) {
                Some(Ok(inner)) => *inner,
                _ => ProtocolError::ControlTruncated,
            }
        }
        other => other,
    }
}

/// Takes ownership of every SCM_RIGHTS descriptor in `msg`.
///
/// # Safety
/// `msg` must describe control data just filled in by `recvmsg`.
unsafe fn collect_fds(msg: &libc::msghdr, fds: &mut Vec<OwnedFd>) {
    let int = std::mem::size_of::<libc::c_int>();
    let mut cmsg = libc::CMSG_FIRSTHDR(msg);
    while !cmsg.is_null() {
        if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
            let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
            let data_len = ((*cmsg).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
            for i in 0..data_len / int {
                let fd = std::ptr::read_unaligned(data.add(i));
                fds.push(OwnedFd::from_raw_fd(fd));
            }
        }
        cmsg = libc::CMSG_NXTHDR(msg, cmsg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::protocol::test_support::*;
    use crate::daemon::protocol::write_frame;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    fn temp_file(tag: &str, contents: &[u8]) -> std::fs::File {
        let path = std::env::temp_dir().join(format!(
            "oxwsgi-protocol-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, contents).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    fn read_fd_range(fd: OwnedFd, offset: u64, length: u64) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let mut out = vec![0u8; length as usize];
        std::fs::File::from(fd).read_exact_at(&mut out, offset).unwrap();
        out
    }

    #[test]
    fn sendfile_fd_passing_over_socketpair() {
        let (apache, mut daemon) = UnixStream::pair().unwrap();
        let one = temp_file("one", b"0123456789");
        let two = temp_file("two", b"abcdefghij");
        let big = Frame::Data(vec![5; 300_000]); // bigger than the socket buffer
        let first = Frame::SendFile { offset: 2, length: 5 };
        let second = Frame::SendFile { offset: 7, length: 3 };
        let writer = std::thread::spawn(move || {
            write_frame(&mut daemon, &Frame::Start { status: 200, reason: b"OK".to_vec(), headers: vec![] }).unwrap();
            send_frame_with_fd(&daemon, &first, &one).unwrap();
            write_frame(&mut daemon, &big).unwrap();
            send_frame_with_fd(&daemon, &second, &two).unwrap();
            write_frame(&mut daemon, &Frame::End).unwrap();
            // Refused: descriptors only travel with SENDFILE.
            assert!(matches!(
                send_frame_with_fd(&daemon, &Frame::End, &one),
                Err(ProtocolError::UnexpectedFd { frame_type: FrameType::End })
            ));
        });
        let (frame, fd) = recv_frame_maybe_fd(&apache).unwrap();
        assert!(matches!(frame, Frame::Start { status: 200, .. }) && fd.is_none());
        let (frame, fd) = recv_frame_maybe_fd(&apache).unwrap();
        assert_eq!(frame, Frame::SendFile { offset: 2, length: 5 });
        let fd = fd.expect("fd with SENDFILE");
        // SAFETY: fcntl on a descriptor we own.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert!(flags & libc::FD_CLOEXEC != 0, "received fd must be close-on-exec");
        assert_eq!(read_fd_range(fd, 2, 5), b"23456");
        let (frame, fd) = recv_frame_maybe_fd(&apache).unwrap();
        assert!(matches!(&frame, Frame::Data(d) if d.len() == 300_000) && fd.is_none());
        let (frame, fd) = recv_frame_maybe_fd(&apache).unwrap();
        assert_eq!(frame, Frame::SendFile { offset: 7, length: 3 });
        assert_eq!(read_fd_range(fd.unwrap(), 7, 3), b"hij");
        assert_eq!(recv_frame_maybe_fd(&apache).unwrap().0, Frame::End);
        writer.join().unwrap();
        assert!(matches!(recv_frame_maybe_fd(&apache), Err(ProtocolError::Closed)));
    }

    #[test]
    fn fd_mismatches_are_errors() {
        let file = temp_file("mismatch", b"x");
        // SENDFILE without a descriptor.
        let (a, mut b) = UnixStream::pair().unwrap();
        write_frame(&mut b, &Frame::SendFile { offset: 0, length: 1 }).unwrap();
        assert!(matches!(recv_frame_maybe_fd(&a), Err(ProtocolError::MissingFd)));
        // A descriptor smuggled with a DATA frame.
        let (a, b) = UnixStream::pair().unwrap();
        send_bytes_with_fds(b.as_raw_fd(), &encode(&Frame::Data(b"hi".to_vec())), &[file.as_raw_fd()]).unwrap();
        assert!(matches!(recv_frame_maybe_fd(&a), Err(ProtocolError::UnexpectedFd { frame_type: FrameType::Data })));
        // Truncated frame, then EOF.
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(&[0x85, 4, 0, 0, 0, 1]).unwrap();
        drop(b);
        assert!(matches!(recv_frame_maybe_fd(&a), Err(ProtocolError::Truncated)));
    }

    fn fd_reader(sock: UnixStream) -> FrameReader<FdStream> {
        FrameReader::new(FdStream::new(sock))
    }

    #[test]
    fn fd_stream_hands_each_sendfile_its_descriptor() {
        let (apache, mut daemon) = UnixStream::pair().unwrap();
        let one = temp_file("stream-one", b"0123456789");
        let two = temp_file("stream-two", b"abcdefghij");
        let writer = std::thread::spawn(move || {
            // Small frames back to back, so one read takes several of them, descriptors included.
            write_frame(&mut daemon, &Frame::Start { status: 200, reason: b"OK".to_vec(), headers: vec![] }).unwrap();
            send_frame_with_fd(&daemon, &Frame::SendFile { offset: 1, length: 2 }, &one).unwrap();
            send_frame_with_fd(&daemon, &Frame::SendFile { offset: 3, length: 4 }, &two).unwrap();
            write_frame(&mut daemon, &Frame::Data(vec![5; 300_000])).unwrap();
            send_frame_with_fd(&daemon, &Frame::SendFile { offset: 7, length: 3 }, &one).unwrap();
            write_frame(&mut daemon, &Frame::End).unwrap();
        });
        let mut reader = fd_reader(apache);
        let (frame, fd) = reader.read_frame_fd().unwrap();
        assert!(matches!(frame, Frame::Start { status: 200, .. }) && fd.is_none());
        let (frame, fd) = reader.read_frame_fd().unwrap();
        assert_eq!(frame, Frame::SendFile { offset: 1, length: 2 });
        let fd = fd.expect("fd with SENDFILE");
        // SAFETY: fcntl on a descriptor we own.
        assert!(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) } & libc::FD_CLOEXEC != 0);
        assert_eq!(read_fd_range(fd, 1, 2), b"12");
        let (frame, fd) = reader.read_frame_fd().unwrap();
        assert_eq!(frame, Frame::SendFile { offset: 3, length: 4 });
        assert_eq!(read_fd_range(fd.unwrap(), 3, 4), b"defg");
        let (frame, fd) = reader.read_frame_fd().unwrap();
        assert!(matches!(&frame, Frame::Data(d) if d.len() == 300_000) && fd.is_none());
        let (frame, fd) = reader.read_frame_fd().unwrap();
        assert_eq!(frame, Frame::SendFile { offset: 7, length: 3 });
        assert_eq!(read_fd_range(fd.unwrap(), 7, 3), b"789");
        assert_eq!(reader.read_frame_fd().unwrap().0, Frame::End);
        reader.check_no_fds_left().unwrap();
        writer.join().unwrap();
        assert!(matches!(reader.read_frame_fd(), Err(ProtocolError::Closed)));
    }

    #[test]
    fn fd_stream_refuses_what_recv_frame_maybe_fd_refuses() {
        let file = temp_file("stream-bad", b"x");
        let fd = file.as_raw_fd();
        let start = encode(&Frame::Start { status: 200, reason: b"OK".to_vec(), headers: vec![] });
        let sendfile = encode(&Frame::SendFile { offset: 0, length: 1 });
        let data = encode(&Frame::Data(b"hi".to_vec()));
        let end = encode(&Frame::End);
        // (plain bytes, then bytes with descriptors, then plain bytes), and what the reader says
        // on its first failing frame.
        let cases = vec![
            // A SENDFILE without a descriptor.
            (start.clone(), vec![], vec![], [&sendfile[..], &end].concat(), "missing"),
            // A descriptor with a DATA frame.
            (start.clone(), data.clone(), vec![fd], end.clone(), "unexpected DATA"),
            // A descriptor with a DATA frame, then a SENDFILE without one.
            (start.clone(), data.clone(), vec![fd], [&sendfile[..], &end].concat(), "unexpected DATA"),
            // Two descriptors with one SENDFILE.
            (start.clone(), sendfile.clone(), vec![fd, fd], end.clone(), "unexpected SENDFILE"),
            // More descriptors than the control buffer holds: the kernel truncates them.
            (start.clone(), sendfile.clone(), vec![fd; 13], end.clone(), "truncated"),
        ];
        for (before, with_fds, fds, after, want) in cases {
            let (apache, mut daemon) = UnixStream::pair().unwrap();
            daemon.write_all(&before).unwrap();
            if !fds.is_empty() {
                send_bytes_with_fds(daemon.as_raw_fd(), &with_fds, &fds).unwrap();
            }
            daemon.write_all(&after).unwrap();
            drop(daemon);
            let mut reader = fd_reader(apache);
            let err = loop {
                match reader.read_frame_fd() {
                    Ok((Frame::End, _)) => panic!("{want}: whole response accepted"),
                    Ok(_) => {}
                    Err(e) => break e,
                }
            };
            let got = match err {
                ProtocolError::MissingFd => "missing",
                ProtocolError::UnexpectedFd { frame_type: FrameType::Data } => "unexpected DATA",
                ProtocolError::UnexpectedFd { frame_type: FrameType::SendFile } => "unexpected SENDFILE",
                ProtocolError::ControlTruncated => "truncated",
                other => panic!("{want}: {other:?}"),
            };
            assert_eq!(got, want);
        }
        // The same truncation through the frame-at-a-time reader.
        let (apache, daemon) = UnixStream::pair().unwrap();
        send_bytes_with_fds(daemon.as_raw_fd(), &sendfile, &[fd; 13]).unwrap();
        assert!(matches!(recv_frame_maybe_fd(&apache), Err(ProtocolError::ControlTruncated)));
    }

    #[test]
    fn fd_stream_descriptor_left_at_the_end_of_a_response() {
        // END and one more byte in one message with a descriptor: END itself passes (the
        // message goes on past it), but the descriptor is left over when the response ends.
        let file = temp_file("stream-left", b"x");
        let (apache, daemon) = UnixStream::pair().unwrap();
        let mut bytes = encode(&Frame::End);
        bytes.push(0x86);
        send_bytes_with_fds(daemon.as_raw_fd(), &bytes, &[file.as_raw_fd()]).unwrap();
        let mut reader = fd_reader(apache);
        assert!(matches!(reader.read_frame_fd(), Ok((Frame::End, None))));
        assert!(matches!(reader.check_no_fds_left(), Err(ProtocolError::UnexpectedFd { .. })));
        reader.check_no_fds_left().unwrap(); // closed, not kept
    }

    #[test]
    fn fd_stream_bounds_the_descriptors_waiting_for_their_frame() {
        // A DATA frame sent one byte per message, each message with a descriptor: the reader
        // gives up after MAX_PENDING_BATCHES, long before the process's descriptors run out.
        let file = temp_file("stream-flood", b"x");
        let (apache, daemon) = UnixStream::pair().unwrap();
        let data = encode(&Frame::Data(vec![b'z'; 64]));
        let writer = std::thread::spawn(move || {
            for b in data.chunks(1) {
                if send_bytes_with_fds(daemon.as_raw_fd(), b, &[file.as_raw_fd()]).is_err() {
                    break;
                }
            }
        });
        let mut reader = fd_reader(apache);
        assert!(matches!(reader.read_frame_fd(), Err(ProtocolError::UnexpectedFd { .. })));
        assert!(reader.get_ref().batches.len() <= MAX_PENDING_BATCHES);
        drop(reader);
        writer.join().unwrap();
    }

    #[test]
    fn check_sendfile_takes_regular_files_within_their_size() {
        let file = temp_file("check", b"0123456789");
        check_sendfile(&file, 0, 10).unwrap();
        check_sendfile(&file, 4, 6).unwrap();
        assert!(matches!(check_sendfile(&file, 4, 7), Err(ProtocolError::Malformed { .. })));
        assert!(matches!(check_sendfile(&file, u64::MAX, 2), Err(ProtocolError::Malformed { .. })));
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(matches!(check_sendfile(&a, 0, 0), Err(ProtocolError::Malformed { .. })));
        let dev = std::fs::File::open("/dev/zero").unwrap();
        assert!(matches!(check_sendfile(&dev, 0, 1), Err(ProtocolError::Malformed { .. })));
    }
}
