//! File descriptor passing (SENDFILE): frames sent and received with SCM_RIGHTS ancillary
//! data on a UNIX stream socket.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::consts::HEADER_LEN;
use super::decode::decode_owned_payload;
use super::encode::encode_frame;
use super::error::ProtocolError;
use super::frame::{parse_header, Frame};
use super::frame_type::FrameType;

/// Control buffer for recvmsg/sendmsg: 64 bytes, aligned for `cmsghdr`. Room for one SCM_RIGHTS
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
    send_bytes_with_fd(sock.as_fd().as_raw_fd(), &buf, fd.as_fd().as_raw_fd())?;
    Ok(())
}

fn send_bytes_with_fd(sock: RawFd, bytes: &[u8], fd: RawFd) -> io::Result<()> {
    let mut control: ControlBuf = [0; 8];
    // SAFETY: CMSG_SPACE is pure arithmetic.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as libc::c_uint) };
    debug_assert!(space as usize <= std::mem::size_of::<ControlBuf>());
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
    // SAFETY: msghdr is a plain C struct; all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` bytes of suitably aligned, zeroed storage, so
    // CMSG_FIRSTHDR is non-null and the header plus one int fit.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as libc::c_uint) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd);
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
/// A SENDFILE frame must come with exactly one descriptor ([`ProtocolError::MissingFd`]
/// otherwise); any other frame with none ([`ProtocolError::UnexpectedFd`]; stray descriptors
/// are closed). `Err(ProtocolError::Closed)` means a clean close between frames.
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
fn recv_exact(sock: RawFd, out: &mut [u8], fds: &mut Vec<OwnedFd>) -> Result<usize, ProtocolError> {
    let mut got = 0;
    while got < out.len() {
        let mut control: ControlBuf = [0; 8];
        let rest = &mut out[got..];
        let mut iov = libc::iovec { iov_base: rest.as_mut_ptr().cast(), iov_len: rest.len() };
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
            return Err(ProtocolError::ControlTruncated);
        }
        if n == 0 {
            break;
        }
        got += n as usize;
    }
    Ok(got)
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
        send_bytes_with_fd(b.as_raw_fd(), &encode(&Frame::Data(b"hi".to_vec())), file.as_raw_fd()).unwrap();
        assert!(matches!(recv_frame_maybe_fd(&a), Err(ProtocolError::UnexpectedFd { frame_type: FrameType::Data })));
        // Truncated frame, then EOF.
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(&[0x85, 4, 0, 0, 0, 1]).unwrap();
        drop(b);
        assert!(matches!(recv_frame_maybe_fd(&a), Err(ProtocolError::Truncated)));
    }
}
