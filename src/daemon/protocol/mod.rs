//! Daemon-mode wire protocol: Apache worker threads (the client) talk to WSGI daemon processes
//! (the server) over a UNIX stream socket.
//!
//! This module is pure: it knows nothing of Apache or Python. It encodes and decodes framed
//! messages over byte buffers and offers blocking helpers over [`Read`]/[`Write`] and over raw
//! sockets for file-descriptor passing. The specification is `docs/protocol.md`; the summary:
//!
//! * Every message is a frame: 1 byte type, 4 byte little-endian payload length, payload.
//! * Each frame type has a payload length range ([`FrameType::payload_range`]). It is checked on
//!   the 5 byte header, before anything is allocated, so a hostile length costs nothing.
//! * Decoding is strict and canonical: a byte string decodes to at most one frame and
//!   re-encoding that frame yields the same bytes. Malformed input is a [`ProtocolError`],
//!   never a panic.
//!
//! [`Read`]: std::io::Read
//! [`Write`]: std::io::Write
//!
//! Files: `frame` (frame types, frames, the header, field rules), `error`, `pairs` (name/value
//! lists), `decode`, `encode`, one per payload with its own encoder and decoder (`request`,
//! `start`, `body`), `stream` (blocking I/O over `Read`/`Write`) and `fd` (SENDFILE descriptor
//! passing, received through one checked path). Everything public is re-exported here.

mod body;
mod consts;
mod cursor;
mod decode;
mod encode;
mod error;
mod fd;
mod frame;
mod frame_type;
mod pairs;
mod request;
mod start;
mod stream;
#[cfg(test)]
mod test_support;

pub use body::{encode_data, write_body, write_data};
pub use consts::{
    EAGER_BODY_MAX, HEADER_LEN, MAX_DATA, MAX_FRAME, MAX_HEAD_PAYLOAD, MAX_HELLO_PAYLOAD, MAX_MESSAGE, MAX_PAIRS,
    PROTOCOL_VERSION, SECRET_LEN,
};
pub use decode::{decode_frame, decode_frame_limited, decode_payload, Decoded};
pub use encode::encode_frame;
pub use error::ProtocolError;
#[cfg(test)]
pub use fd::recv_frame_maybe_fd;
pub use fd::{check_sendfile, send_frame_with_fd, FdStream};
pub use frame::{frame_header, parse_header, secrets_equal, Frame};
pub use frame_type::FrameType;
pub use pairs::PairBuf;
pub use request::encode_request;
pub use start::encode_start;
pub use stream::{write_frame, FrameReader};

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn keep_alive_conversation_over_socketpair() {
        // Two requests on one connection: the handshake, an eager body, a pull, then reuse.
        let (apache, daemon) = UnixStream::pair().unwrap();
        let secret = [3u8; SECRET_LEN];
        let server = std::thread::spawn(move || {
            let mut out = &daemon;
            let mut reader = FrameReader::new(&daemon);
            let Frame::Hello { secret: got, .. } = reader.read_frame_limited(MAX_HELLO_PAYLOAD).unwrap() else {
                panic!("expected HELLO")
            };
            assert!(secrets_equal(&got, &secret));
            write_frame(&mut out, &Frame::HelloOk { pid: 7 }).unwrap();
            for _ in 0..2 {
                let Frame::Request { eager_body, body_length, .. } = reader.read_frame().unwrap() else {
                    panic!("expected REQUEST")
                };
                assert_eq!((eager_body, body_length), (true, None));
                let mut body = Vec::new();
                let mut reply = reader.read_frame().unwrap(); // the implicit READ's reply
                loop {
                    match reply {
                        Frame::Body(b) => body.extend(b),
                        Frame::BodyEnd => break,
                        other => panic!("unexpected {other:?}"),
                    }
                    write_frame(&mut out, &Frame::Read { max: 4 }).unwrap();
                    reply = reader.read_frame().unwrap();
                }
                write_frame(&mut out, &Frame::Start { status: 200, reason: b"OK".to_vec(), headers: vec![] }).unwrap();
                write_data(&mut out, &body).unwrap();
                write_frame(&mut out, &Frame::End).unwrap();
            }
            assert!(matches!(reader.read_frame(), Err(ProtocolError::Closed)));
        });
        let mut out = &apache;
        write_frame(&mut out, &Frame::Hello { version: PROTOCOL_VERSION, secret }).unwrap();
        assert_eq!(recv_frame_maybe_fd(&apache).unwrap().0, Frame::HelloOk { pid: 7 });
        for body in [&b"hello world"[..], b"x"] {
            let request = Frame::Request { environ: PairBuf::default(), body_length: None, eager_body: true };
            write_frame(&mut out, &request).unwrap();
            write_frame(&mut out, &Frame::Body(body[..1].to_vec())).unwrap();
            let mut sent = 1;
            let mut response = Vec::new();
            loop {
                match recv_frame_maybe_fd(&apache).unwrap().0 {
                    Frame::Read { max } => {
                        let n = (max as usize).min(body.len() - sent);
                        if n == 0 {
                            write_frame(&mut out, &Frame::BodyEnd).unwrap();
                        } else {
                            write_frame(&mut out, &Frame::Body(body[sent..sent + n].to_vec())).unwrap();
                            sent += n;
                        }
                    }
                    Frame::Start { status, .. } => assert_eq!(status, 200),
                    Frame::Data(d) => response.extend(d),
                    Frame::End => break,
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(response, body);
        }
        drop(apache);
        server.join().unwrap();
    }
}
