//! Apache's side of daemon mode: a worker thread of an Apache child sends one request to its
//! daemon process group and streams the answer back to the client through the same
//! [`ApacheBackend`] embedded mode uses, so both modes answer alike.

use super::protocol::{self, Frame, FrameReader, EAGER_BODY_MAX, PROTOCOL_VERSION};
use super::supervisor::{find_group, Group};
use crate::apache::ffi;
use crate::apache::request::ApacheBackend;
use crate::apache::util::{self, log_request};
use crate::python::wsgi::Backend;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// Runs a request in daemon process group `name`; returns the handler's status.
pub unsafe fn handle(
    r: *mut ffi::request_rec,
    name: &str,
    cgi: &[(&[u8], &[u8])],
    content_length: Option<u64>,
) -> i32 {
    let Some(group) = find_group(name) else {
        log_request(r, util::LOG_ERR, &format!("oxwsgi: daemon process group '{name}' is not running in this Apache"));
        return ffi::HTTP_SERVICE_UNAVAILABLE as i32;
    };
    let stream = match connect(&group) {
        Ok(s) => s,
        Err(e) => {
            log_request(r, util::LOG_ERR, &format!(
                "oxwsgi: cannot connect to daemon process group '{name}' at {} within connect-timeout ({}s): {e}",
                group.socket_path, group.spec.connect_timeout.as_secs()));
            return ffi::HTTP_SERVICE_UNAVAILABLE as i32;
        }
    };
    let mut backend = ApacheBackend::new(r);
    match relay(r, &group, stream, cgi, content_length, &mut backend) {
        Ok(status) => status,
        Err(failure) => {
            let (status, what) = match &failure {
                Failure::Timeout => (ffi::HTTP_GATEWAY_TIME_OUT, "timed out (socket-timeout) waiting for".to_string()),
                Failure::Broken(e) => (ffi::HTTP_BAD_GATEWAY, format!("lost the connection ({e}) to")),
            };
            log_request(r, util::LOG_ERR, &format!("oxwsgi: {what} daemon process group '{name}' while serving '{}'", util::cstr((*r).uri).unwrap_or("")));
            if backend.started {
                backend.abort();
                ffi::OK as i32
            } else {
                status as i32
            }
        }
    }
}

enum Failure {
    Timeout,
    Broken(String),
}

impl From<protocol::ProtocolError> for Failure {
    fn from(e: protocol::ProtocolError) -> Failure {
        match e {
            protocol::ProtocolError::Io(io) if matches!(io.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Failure::Timeout,
            other => Failure::Broken(other.to_string()),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        protocol::ProtocolError::Io(e).into()
    }
}

/// Connects to the group's socket, retrying while its daemons (re)start, up to connect-timeout.
fn connect(group: &Group) -> io::Result<UnixStream> {
    let deadline = Instant::now() + group.spec.connect_timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        match UnixStream::connect(&group.socket_path) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
        }
    }
}

unsafe fn relay(
    r: *mut ffi::request_rec,
    group: &Group,
    stream: UnixStream,
    cgi: &[(&[u8], &[u8])],
    content_length: Option<u64>,
    backend: &mut ApacheBackend,
) -> Result<i32, Failure> {
    let timeout = Some(group.spec.socket_timeout);
    stream.set_read_timeout(timeout)?;
    stream.set_write_timeout(timeout)?;
    let mut writer = stream.try_clone()?;

    // HELLO and REQUEST go out together (the daemon checks HELLO before reading on), with the
    // first piece of the body when one is expected.
    let expects_continue = util::table_get((*r).headers_in, c"Expect").is_some();
    let eager_body = content_length != Some(0) && !expects_continue;
    let mut out = Vec::with_capacity(4096);
    protocol::encode_frame(&Frame::Hello { version: PROTOCOL_VERSION, secret: group.secret }, &mut out)?;
    let environ = cgi.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
    protocol::encode_frame(&Frame::Request { environ, body_length: content_length, eager_body }, &mut out)?;
    if eager_body {
        body_reply(backend, EAGER_BODY_MAX, &mut out)?;
    }
    writer.write_all(&out)?;

    let mut reader = FrameReader::new(FdReader { fd: stream.as_raw_fd(), fds: VecDeque::new(), _stream: stream });
    match reader.read_frame()? {
        Frame::HelloOk => {}
        Frame::HelloReject { message, .. } => {
            log_request(r, util::LOG_ERR, &format!("oxwsgi: daemon process group '{}' refused the connection: {message}", group.spec.name));
            return Ok(ffi::HTTP_INTERNAL_SERVER_ERROR as i32);
        }
        other => return Err(Failure::Broken(format!("unexpected {} frame", other.frame_type()))),
    }
    loop {
        match reader.read_frame()? {
            Frame::Read { max } => {
                out.clear();
                body_reply(backend, max as usize, &mut out)?;
                writer.write_all(&out)?;
            }
            Frame::Start { status, reason, headers } => {
                let line = format!("{status} {}", String::from_utf8_lossy(&reason));
                if let Err(e) = backend.start(status, &line, &headers) {
                    return Err(Failure::Broken(e));
                }
            }
            Frame::Data(data) => {
                // A large block goes out from the frame's own buffer, without another copy.
                let sent = if data.len() >= 64 * 1024 {
                    backend.write_now(&data)
                } else {
                    backend.write(&data);
                    // Push to the client whenever the daemon has nothing more queued right now.
                    if reader.buffered().is_empty() { backend.flush() } else { Ok(()) }
                };
                if sent.is_err() {
                    backend.abort();
                    return Ok(ffi::OK as i32);
                }
            }
            Frame::SendFile { offset, length } => {
                let Some(fd) = reader.get_mut().fds.pop_front() else {
                    return Err(Failure::Broken("SENDFILE without a file descriptor".into()));
                };
                if let Err(e) = backend.send_file(fd.as_raw_fd(), offset, length) {
                    log_request(r, util::LOG_ERR, &format!("oxwsgi: cannot send the file passed by daemon process group '{}': {e}", group.spec.name));
                    backend.abort();
                    return Ok(ffi::OK as i32);
                }
            }
            Frame::End => {
                if backend.finish().is_err() {
                    backend.abort();
                }
                return Ok(ffi::OK as i32);
            }
            Frame::Abort { message } => {
                log_request(r, util::LOG_ERR, &format!("oxwsgi: daemon process group '{}' aborted the response: {message}", group.spec.name));
                backend.abort();
                return Ok(ffi::OK as i32);
            }
            Frame::Error { status, message } => {
                if backend.started {
                    backend.abort();
                    return Ok(ffi::OK as i32);
                }
                if status != 504 {
                    log_request(r, util::LOG_INFO, &format!("oxwsgi: daemon answered {status}: {message}"));
                }
                return Ok(status as i32);
            }
            other => return Err(Failure::Broken(format!("unexpected {} frame", other.frame_type()))),
        }
    }
}

/// Reads up to `max` bytes of the client's body and encodes the reply to a READ.
fn body_reply(backend: &mut ApacheBackend, max: usize, out: &mut Vec<u8>) -> Result<(), Failure> {
    let mut buf = vec![0u8; max.clamp(1, protocol::MAX_DATA)];
    let frame = match backend.read_body(&mut buf) {
        Ok(0) => Frame::BodyEnd,
        Ok(n) => {
            buf.truncate(n);
            Frame::Body(buf)
        }
        Err(e) => Frame::BodyError { status: e.status.clamp(400, 599) },
    };
    protocol::encode_frame(&frame, out)?;
    Ok(())
}

/// A socket reader that keeps any file descriptors that arrive (SCM_RIGHTS) in order, so a
/// buffered frame reader can be used on a socket that carries SENDFILE frames.
struct FdReader {
    fd: RawFd,
    fds: VecDeque<OwnedFd>,
    _stream: UnixStream,
}

impl Read for FdReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut control = [0u64; 16];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control) as _;
        let n = loop {
            let n = unsafe { libc::recvmsg(self.fd, &mut msg, libc::MSG_CMSG_CLOEXEC) };
            if n >= 0 {
                break n as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(cmsg) as *const libc::c_int;
                    let count = ((*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<libc::c_int>();
                    for i in 0..count {
                        self.fds.push_back(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        Ok(n)
    }
}
