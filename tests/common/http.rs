//! A small hand-written HTTP/1.1 client on `std::net::TcpStream`, made for tests: every socket
//! has connect/read/write timeouts, responses are parsed strictly enough to check what a server
//! really sent (every header line in order, repeats kept, the raw head), and a body that stops
//! early is reported (`complete == false`) instead of panicking.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// Connect, read and write timeout of every client socket unless changed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Refuse response heads larger than this (a runaway server should not eat the test's memory).
const MAX_HEAD: usize = 1 << 20;

/// One HTTP response as received.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// "HTTP/1.1" or "HTTP/1.0".
    pub version: String,
    pub status: u16,
    /// Reason phrase, possibly empty.
    pub reason: String,
    /// Every header line in order, repeats kept, names as sent (not case-folded).
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked if it was sent chunked. Empty for HEAD/1xx/204/304.
    pub body: Vec<u8>,
    /// The response head exactly as received: status line and header lines, including the
    /// terminating empty line ("...\r\n\r\n").
    pub raw_head: String,
    /// True when the body ended where its framing said it would: all Content-Length bytes, the
    /// terminating 0-chunk (and trailer section) of a chunked body, or EOF for a body delimited
    /// by connection close. False on early EOF, a read error or timeout, or a malformed chunk.
    pub complete: bool,
    /// Why `complete` is false (None when complete).
    pub error: Option<String>,
    /// The body was sent with `Transfer-Encoding: chunked`.
    pub chunked: bool,
    /// Trailer fields after the last chunk of a chunked body.
    pub trailers: Vec<(String, String)>,
    /// Statuses of interim 1xx responses (e.g. 100 Continue) that preceded this one.
    pub interim: Vec<u16>,
}

impl Response {
    /// First header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Every header with this name (case-insensitive), in order.
    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
    }

    /// First trailer with this name (case-insensitive).
    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body's `key=value` lines (what the test apps report), after checking the status is 200.
    #[track_caller]
    pub fn fields(&self) -> std::collections::BTreeMap<String, String> {
        self.assert_status(200);
        self.text().lines().filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect()
    }

    /// Panic with the whole response unless the status is `status`.
    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "unexpected status; response head:\n{}body ({} bytes):\n{}",
            self.raw_head,
            self.body.len(),
            preview(&self.body)
        );
        self
    }
}

/// First 2000 bytes of a body, lossy, for failure messages.
pub fn preview(body: &[u8]) -> String {
    let n = body.len().min(2000);
    let mut s = String::from_utf8_lossy(&body[..n]).into_owned();
    if body.len() > n {
        s.push_str(&format!("... ({} more bytes)", body.len() - n));
    }
    s
}

/// Does this raw request start with the method HEAD? (Decides whether a body is to be read.)
pub fn is_head_request(raw: &[u8]) -> bool {
    raw.starts_with(b"HEAD ")
}

/// Build an HTTP/1.1 request. Adds `Host` unless given, and `Content-Length` when there is a body
/// (or the method is POST/PUT/PATCH) unless `Content-Length`/`Transfer-Encoding` is given.
/// Headers are written verbatim, in order.
pub fn build_request(method: &str, path: &str, host: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !has("Host") {
        req.push_str(&format!("Host: {host}\r\n"));
    }
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    let wants_length = !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH");
    if wants_length && !has("Content-Length") && !has("Transfer-Encoding") {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// One client connection. Requests sent with `send` keep the connection open (HTTP/1.1
/// keep-alive), so several requests can go over the same socket; bytes the server sent past one
/// response are kept for the next (pipelining works).
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
    host: String,
    eof: bool,
}

impl Client {
    /// Connect with the default 10 s connect/read/write timeouts.
    pub fn connect(addr: SocketAddr) -> io::Result<Client> {
        Client::connect_timeout(addr, DEFAULT_TIMEOUT)
    }

    pub fn connect_timeout(addr: SocketAddr, timeout: Duration) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot connect to {addr}: {e}")))?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let _ = stream.set_nodelay(true);
        Ok(Client { stream, buf: Vec::new(), host: addr.to_string(), eof: false })
    }

    /// Change the read and write timeouts of this connection.
    pub fn set_timeout(&self, timeout: Duration) {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        self.stream.set_write_timeout(Some(timeout)).unwrap();
    }

    /// The underlying socket (for tests that need something unusual).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }

    /// Value of the Host header added to requests ("127.0.0.1:PORT").
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Send one request (see `build_request`) and read its response. Panics on connection
    /// failure or when no status line arrives; a short body gives `complete == false`.
    #[track_caller]
    pub fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        match self.try_send(method, path, headers, body) {
            Ok(r) => r,
            Err(e) => panic!("{method} {path} failed: {e}"),
        }
    }

    pub fn try_send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        let req = build_request(method, path, &self.host, headers, body);
        self.write_raw(&req)?;
        self.read_response(method == "HEAD")
    }

    #[track_caller]
    pub fn get(&mut self, path: &str) -> Response {
        self.send("GET", path, &[], b"")
    }

    #[track_caller]
    pub fn head(&mut self, path: &str) -> Response {
        self.send("HEAD", path, &[], b"")
    }

    #[track_caller]
    pub fn post(&mut self, path: &str, content_type: &str, body: &[u8]) -> Response {
        self.send("POST", path, &[("Content-Type", content_type)], body)
    }

    /// Write raw bytes (a whole request, or part of one).
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Write a raw request and read one response (no body is read if it starts with "HEAD ").
    #[track_caller]
    pub fn request_raw(&mut self, raw: &[u8]) -> Response {
        match self.try_request_raw(raw) {
            Ok(r) => r,
            Err(e) => panic!("raw request {:?} failed: {e}", preview(raw)),
        }
    }

    pub fn try_request_raw(&mut self, raw: &[u8]) -> io::Result<Response> {
        self.write_raw(raw)?;
        self.read_response(is_head_request(raw))
    }

    /// Close our sending side (the server sees EOF on the request stream).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Has the server closed the connection? Waits up to `wait` for either EOF (true) or data
    /// or silence (false). Data read here is kept for the next response.
    pub fn is_closed(&mut self, wait: Duration) -> bool {
        if self.eof {
            return true;
        }
        if !self.buf.is_empty() {
            return false;
        }
        let old = self.stream.read_timeout().ok().flatten();
        let _ = self.stream.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        let r = self.fill();
        let _ = self.stream.set_read_timeout(old);
        match r {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if is_timeout(&e) => false,
            Err(_) => true, // reset etc.
        }
    }

    /// Read more bytes into the buffer. Ok(0) means EOF.
    fn fill(&mut self) -> io::Result<usize> {
        if self.eof {
            return Ok(0);
        }
        let mut chunk = [0u8; 65536];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(0);
                }
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Read one line ending in "\n" (returned without "\r\n"). Ok(None) on EOF first.
    fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(line));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
            if self.fill()? == 0 {
                return Ok(None);
            }
        }
    }

    /// Read one response. `head_request`: the request was HEAD, so there is no body.
    /// Err when no (valid) status line arrives; body problems give `complete == false`.
    pub fn read_response(&mut self, head_request: bool) -> io::Result<Response> {
        let mut interim = Vec::new();
        loop {
            let mut resp = self.read_head()?;
            if (100..200).contains(&resp.status) && resp.status != 101 {
                interim.push(resp.status);
                continue;
            }
            resp.interim = interim;
            self.read_body(&mut resp, head_request);
            return Ok(resp);
        }
    }

    fn read_head(&mut self) -> io::Result<Response> {
        let end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("response head longer than {MAX_HEAD} bytes"),
                ));
            }
            match self.fill() {
                Ok(0) if self.buf.is_empty() => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed by the server before a status line arrived",
                    ))
                }
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "connection closed by the server in the middle of the response head: {:?}",
                            String::from_utf8_lossy(&self.buf)
                        ),
                    ))
                }
                Ok(_) => {}
                Err(e) => {
                    let what = if is_timeout(&e) { "timed out waiting for" } else { "error reading" };
                    return Err(io::Error::new(
                        e.kind(),
                        format!(
                            "{what} the response head ({e}); received so far: {:?}",
                            String::from_utf8_lossy(&self.buf)
                        ),
                    ));
                }
            }
        };
        let head: Vec<u8> = self.buf.drain(..end).collect();
        let raw_head = String::from_utf8_lossy(&head).into_owned();
        let mut lines = raw_head[..raw_head.len() - 4].split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let bad = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("not an HTTP status line: {status_line:?} (head: {raw_head:?})"),
            )
        };
        if !status_line.starts_with("HTTP/") {
            return Err(bad());
        }
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("").to_string();
        let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let reason = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        for line in lines {
            match line.split_once(':') {
                Some((n, v)) => headers.push((n.to_string(), v.trim().to_string())),
                None => headers.push((line.to_string(), String::new())),
            }
        }
        Ok(Response { version, status, reason, headers, raw_head, complete: true, ..Default::default() })
    }

    fn read_body(&mut self, resp: &mut Response, head_request: bool) {
        if head_request || resp.status == 204 || resp.status == 304 || resp.status < 200 {
            return;
        }
        let te = resp.headers_named("Transfer-Encoding").join(",");
        if !te.is_empty() {
            let last = te.rsplit(',').next().unwrap_or("").trim().to_ascii_lowercase();
            if last == "chunked" {
                resp.chunked = true;
                if let Err(e) = self.read_chunked(resp) {
                    resp.complete = false;
                    resp.error = Some(e);
                }
                return;
            }
            self.read_to_close(resp);
            return;
        }
        if let Some(cl) = resp.header("Content-Length") {
            match cl.trim().parse::<usize>() {
                Ok(n) => {
                    if let Err(e) = self.read_exact_body(&mut resp.body, n) {
                        resp.complete = false;
                        resp.error = Some(format!("Content-Length {n} but only {} bytes: {e}", resp.body.len()));
                    }
                }
                Err(_) => {
                    resp.error = Some(format!("invalid Content-Length {cl:?}; read to close"));
                    self.read_to_close(resp);
                    resp.complete = false;
                }
            }
            return;
        }
        self.read_to_close(resp);
    }

    fn read_exact_body(&mut self, out: &mut Vec<u8>, n: usize) -> Result<(), String> {
        let want = out.len() + n;
        while out.len() < want {
            if self.buf.is_empty() {
                match self.fill() {
                    Ok(0) => return Err("connection closed early".into()),
                    Ok(_) => {}
                    Err(e) => return Err(describe(&e)),
                }
            }
            let take = (want - out.len()).min(self.buf.len());
            out.extend(self.buf.drain(..take));
        }
        Ok(())
    }

    fn read_chunked(&mut self, resp: &mut Response) -> Result<(), String> {
        loop {
            let line = match self.read_line() {
                Ok(Some(l)) => l,
                Ok(None) => return Err("connection closed before the terminating 0-chunk".into()),
                Err(e) => return Err(describe(&e)),
            };
            let line = String::from_utf8_lossy(&line).into_owned();
            let size_str = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_str, 16).map_err(|_| format!("bad chunk-size line {line:?}"))?;
            if size == 0 {
                // Trailer section, ends with an empty line.
                loop {
                    match self.read_line() {
                        Ok(Some(l)) if l.is_empty() => return Ok(()),
                        Ok(Some(l)) => {
                            let l = String::from_utf8_lossy(&l).into_owned();
                            match l.split_once(':') {
                                Some((n, v)) => resp.trailers.push((n.to_string(), v.trim().to_string())),
                                None => resp.trailers.push((l, String::new())),
                            }
                        }
                        Ok(None) => return Err("connection closed inside the trailer section".into()),
                        Err(e) => return Err(describe(&e)),
                    }
                }
            }
            self.read_exact_body(&mut resp.body, size).map_err(|e| format!("inside a {size}-byte chunk: {e}"))?;
            match self.read_line() {
                Ok(Some(l)) if l.is_empty() => {}
                Ok(Some(l)) => return Err(format!("chunk not followed by CRLF: {:?}", String::from_utf8_lossy(&l))),
                Ok(None) => return Err("connection closed after chunk data".into()),
                Err(e) => return Err(describe(&e)),
            }
        }
    }

    fn read_to_close(&mut self, resp: &mut Response) {
        loop {
            resp.body.append(&mut self.buf);
            match self.fill() {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) => {
                    resp.body.append(&mut self.buf);
                    resp.complete = false;
                    resp.error = Some(format!("reading body until close: {}", describe(&e)));
                    return;
                }
            }
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn describe(e: &io::Error) -> String {
    if is_timeout(e) {
        format!("timed out ({e})")
    } else {
        e.to_string()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
