//! Connections: one request each. Its head is read and checked here, within a time limit,
//! before hyper and the router see it, so that what hyper would answer itself with an empty
//! body (a malformed or oversized head, a bad `Content-Length`) gets a JSON `{error}` like every
//! other answer, and a client that never finishes its head cannot hold a connection open.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Most bytes of a request head (request line and headers); more is answered 431.
pub const MAX_HEAD_BYTES: usize = 16 << 10;
/// Most header lines; more is answered 431.
pub const MAX_HEADERS: usize = 64;
/// Longest request target (path and query); longer is answered 414.
pub const MAX_TARGET_BYTES: usize = 8 << 10;

/// Why a head is not passed on: an answer to write, or nothing to say (the client sent nothing
/// or hung up).
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// Answer with this status and message, then close.
    Answer(u16, String),
    /// Close without a word.
    Silent,
}

/// Checks a complete request head (`head` ends with the blank line).
pub fn check_head(head: &[u8]) -> Result<(), HeadError> {
    let answer = |status: u16, m: String| Err(HeadError::Answer(status, m));
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return answer(400, "the request head is incomplete".into()),
        Err(httparse::Error::TooManyHeaders) => {
            return answer(431, format!("more than {MAX_HEADERS} header lines"));
        }
        Err(e) => return answer(400, format!("malformed request head: {e}")),
    }
    if request.path.is_some_and(|p| p.len() > MAX_TARGET_BYTES) {
        return answer(414, format!("the request target is longer than {MAX_TARGET_BYTES} bytes"));
    }
    let mut length: Option<&[u8]> = None;
    let mut chunked = false;
    for h in request.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = h.value.trim_ascii();
            if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
                return answer(
                    400,
                    format!("Content-Length '{}' is not a whole number of bytes", String::from_utf8_lossy(h.value)),
                );
            }
            if length.is_some_and(|l| l != v) {
                return answer(400, "two different Content-Length headers".into());
            }
            length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if !h.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return answer(
                    400,
                    format!("Transfer-Encoding '{}': only chunked is understood", String::from_utf8_lossy(h.value)),
                );
            }
            chunked = true;
        }
    }
    if chunked && length.is_some() {
        return answer(400, "both Content-Length and Transfer-Encoding".into());
    }
    Ok(())
}

/// Reads a request head from `stream` within `timeout`, checking it; returns every byte read
/// (the head, and the start of the body when it came along).
pub async fn read_head(stream: &mut TcpStream, timeout: Duration) -> Result<Vec<u8>, HeadError> {
    let mut buf: Vec<u8> = Vec::with_capacity(2048);
    let read = async {
        let mut chunk = [0u8; 4096];
        loop {
            // Where the head ends: look only at what arrived since the last look (and 3 bytes back).
            let from = buf.len().saturating_sub(chunk.len() + 3);
            if let Some(end) = buf[from..].windows(4).position(|w| w == b"\r\n\r\n") {
                let end = from + end + 4;
                check_head(&buf[..end])?;
                return Ok(());
            }
            if buf.len() > MAX_HEAD_BYTES {
                return Err(HeadError::Answer(431, format!("the request head is longer than {MAX_HEAD_BYTES} bytes")));
            }
            match stream.read(&mut chunk).await {
                Ok(0) if buf.is_empty() => return Err(HeadError::Silent),
                Ok(0) => return Err(HeadError::Answer(400, "the connection closed inside the request head".into())),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(_) => return Err(HeadError::Silent),
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(())) => Ok(buf),
        Ok(Err(e)) => Err(e),
        Err(_) if buf.is_empty() => Err(HeadError::Silent),
        Err(_) => {
            Err(HeadError::Answer(408, format!("the request head did not arrive within {} ms", timeout.as_millis())))
        }
    }
}

/// Writes a JSON error answer and closes (best effort: the client may be gone).
pub async fn write_error(stream: &mut TcpStream, status: u16, message: &str) {
    let body = serde_json::json!({ "error": message }).to_string();
    let reason = axum::http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}

/// A stream that first gives back bytes already read from it.
pub struct Prefixed {
    prefix: Vec<u8>,
    at: usize,
    inner: TcpStream,
}

impl Prefixed {
    /// `prefix`, then whatever `inner` reads next.
    pub fn new(prefix: Vec<u8>, inner: TcpStream) -> Self {
        Prefixed { prefix, at: 0, inner }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.at < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.at);
            let at = self.at;
            buf.put_slice(&self.prefix[at..at + n]);
            self.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(head: &str) -> Option<u16> {
        match check_head(head.as_bytes()) {
            Ok(()) => None,
            Err(HeadError::Answer(s, _)) => Some(s),
            Err(HeadError::Silent) => Some(0),
        }
    }

    #[test]
    fn heads_hyper_would_refuse_without_a_body_are_told_apart() {
        assert_eq!(status("POST /v1/maps/a/localize HTTP/1.1\r\nContent-Length: 12\r\n\r\n"), None);
        assert_eq!(status("GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"), None);
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n"), Some(400));
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), Some(400));
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"), Some(400));
        assert_eq!(status("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), Some(400));
        assert_eq!(status("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"), Some(400));
        assert_eq!(status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"), Some(400));
        assert_eq!(status("NOT HTTP AT ALL\r\n\r\n"), Some(400));
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_TARGET_BYTES + 1));
        assert_eq!(status(&long), Some(414));
        let many: String = (0..MAX_HEADERS + 1).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(status(&format!("GET / HTTP/1.1\r\n{many}\r\n")), Some(431));
    }
}
