//! Accepts HTTP/2 requests whose `:authority` is a whole URL.
//!
//! etcdctl 3.4 dials a per-endpoint client as `passthrough:///http://host:port` for `endpoint
//! status`, `endpoint health`, `endpoint hashkv`, `--cluster` and URL-style `--endpoints`, and then
//! sends `http://host:port` as the HTTP/2 `:authority`. Go's gRPC server tolerates it; the h2
//! crate resets the stream as malformed. This wrapper sits between the client's socket and the
//! gRPC server: it re-encodes every request header block, cutting a `scheme://` prefix off the
//! authority. Every block is decoded with the client's HPACK state and re-encoded with our own,
//! so the server's decoder always follows our encoder; all other frames pass through unchanged.
//!
//! A client uses one authority per connection, so the first header block decides: a connection
//! whose first authority is a plain `host:port` (every other client) gets that block's original
//! bytes and is passed straight through from then on, at no cost. So is a connection that does
//! not open with HTTP/2's preface (HTTP/1.1 on the same port, for `/health` and `/metrics`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADERS: u8 = 0x1;
const FRAME_CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// HTTP/2's default SETTINGS_MAX_FRAME_SIZE, which every peer accepts.
const MAX_FRAME: usize = 16_384;

/// A header block being collected from HEADERS + CONTINUATION frames.
struct Pending {
    stream: u32,
    end_stream: bool,
    priority: Option<[u8; 5]>,
    block: Vec<u8>,
}

/// A client connection with request authorities normalised; see the module docs.
pub struct AuthorityFix<S> {
    inner: S,
    raw: BytesMut,
    out: BytesMut,
    preface_seen: bool,
    decoder: loona_hpack::Decoder<'static>,
    encoder: loona_hpack::Encoder<'static>,
    pending: Option<Pending>,
    mode: Mode,
}

/// What the connection needs, decided by its first header block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Undecided,
    Rewrite,
    PassThrough,
}

impl<S> AuthorityFix<S> {
    /// Wraps an accepted connection.
    pub fn new(inner: S) -> Self {
        AuthorityFix {
            inner,
            raw: BytesMut::new(),
            out: BytesMut::new(),
            preface_seen: false,
            decoder: loona_hpack::Decoder::new(),
            encoder: loona_hpack::Encoder::new(),
            pending: None,
            mode: Mode::Undecided,
        }
    }

    /// The wrapped connection.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Moves every complete frame from `raw` to `out`, rewriting header blocks.
    fn process(&mut self) -> io::Result<()> {
        if !self.preface_seen {
            let n = self.raw.len().min(PREFACE.len());
            if self.raw[..n] != PREFACE[..n] {
                // Not HTTP/2 (an HTTP/1.1 client of /health or /metrics): nothing to rewrite.
                self.mode = Mode::PassThrough;
                self.preface_seen = true;
                let all = self.raw.split();
                self.out.extend_from_slice(&all);
                return Ok(());
            }
            if self.raw.len() < PREFACE.len() {
                return Ok(());
            }
            self.out
                .extend_from_slice(&self.raw.split_to(PREFACE.len()));
            self.preface_seen = true;
        }
        while self.raw.len() >= 9 && self.mode != Mode::PassThrough {
            let len = ((self.raw[0] as usize) << 16)
                | ((self.raw[1] as usize) << 8)
                | self.raw[2] as usize;
            if self.raw.len() < 9 + len {
                break;
            }
            let frame = self.raw.split_to(9 + len);
            let (kind, flags) = (frame[3], frame[4]);
            let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]) & 0x7fff_ffff;
            let payload = &frame[9..];
            match kind {
                FRAME_HEADERS => {
                    let mut p = payload;
                    let mut pad = 0usize;
                    if flags & PADDED != 0 {
                        pad = *p.first().ok_or_else(malformed)? as usize;
                        p = &p[1..];
                    }
                    let mut priority = None;
                    if flags & PRIORITY != 0 {
                        priority = Some(
                            p.get(..5)
                                .ok_or_else(malformed)?
                                .try_into()
                                .expect("5 bytes"),
                        );
                        p = &p[5..];
                    }
                    let block = p
                        .get(..p.len().checked_sub(pad).ok_or_else(malformed)?)
                        .ok_or_else(malformed)?;
                    self.pending = Some(Pending {
                        stream,
                        end_stream: flags & END_STREAM != 0,
                        priority,
                        block: block.to_vec(),
                    });
                    if flags & END_HEADERS != 0 {
                        self.emit()?;
                    }
                }
                FRAME_CONTINUATION if self.pending.as_ref().is_some_and(|p| p.stream == stream) => {
                    self.pending
                        .as_mut()
                        .expect("checked")
                        .block
                        .extend_from_slice(payload);
                    if flags & END_HEADERS != 0 {
                        self.emit()?;
                    }
                }
                _ => self.out.extend_from_slice(&frame),
            }
        }
        Ok(())
    }

    /// Re-encodes the collected header block as HEADERS (+ CONTINUATION) frames.
    fn emit(&mut self) -> io::Result<()> {
        let p = self.pending.take().expect("a header block is pending");
        let mut headers = self
            .decoder
            .decode(&p.block)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("HPACK: {e:?}")))?;
        if self.mode == Mode::Undecided {
            let url = headers
                .iter()
                .any(|(n, v)| n.as_slice() == b":authority" && v.windows(3).any(|w| w == b"://"));
            if !url {
                // Nothing to fix on this connection: forward the block as the client encoded it,
                // so the server's HPACK state stays the client's, and step aside.
                self.mode = Mode::PassThrough;
                self.write_block(&p, &p.block.clone());
                let rest = self.raw.split();
                self.out.extend_from_slice(&rest);
                return Ok(());
            }
            self.mode = Mode::Rewrite;
        }
        for (name, value) in &mut headers {
            if name.as_slice() == b":authority" {
                if let Some(pos) = value.windows(3).position(|w| w == b"://") {
                    value.drain(..pos + 3);
                    while value.last() == Some(&b'/') {
                        value.pop();
                    }
                }
            }
        }
        let block = self
            .encoder
            .encode(headers.iter().map(|(n, v)| (n.as_slice(), v.as_slice())));
        self.write_block(&p, &block);
        Ok(())
    }

    /// Writes a header block as HEADERS (+ CONTINUATION) frames for `p`'s stream.
    fn write_block(&mut self, p: &Pending, block: &[u8]) {
        let mut rest = block;
        let mut first = true;
        loop {
            let room = MAX_FRAME - if first && p.priority.is_some() { 5 } else { 0 };
            let chunk = &rest[..rest.len().min(room)];
            rest = &rest[chunk.len()..];
            let mut flags = if rest.is_empty() { END_HEADERS } else { 0 };
            let kind = if first {
                FRAME_HEADERS
            } else {
                FRAME_CONTINUATION
            };
            let mut len = chunk.len();
            if first {
                if p.end_stream {
                    flags |= END_STREAM;
                }
                if p.priority.is_some() {
                    flags |= PRIORITY;
                    len += 5;
                }
            }
            self.out.put_uint(len as u64, 3);
            self.out.put_u8(kind);
            self.out.put_u8(flags);
            self.out.put_u32(p.stream);
            if first {
                if let Some(prio) = p.priority {
                    self.out.put_slice(&prio);
                }
            }
            self.out.put_slice(chunk);
            first = false;
            if rest.is_empty() {
                return;
            }
        }
    }
}

fn malformed() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "malformed HTTP/2 HEADERS frame")
}

impl<S: AsyncRead + Unpin> AsyncRead for AuthorityFix<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.out.is_empty() {
                let n = this.out.len().min(buf.remaining());
                buf.put_slice(&this.out[..n]);
                this.out.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.mode == Mode::PassThrough {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; 16 * 1024];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                    // End of stream: hand over whatever is left as is.
                    let rest = this.raw.split();
                    this.out.extend_from_slice(&rest);
                    if this.out.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(Ok(())) => {
                    this.raw.extend_from_slice(rb.filled());
                    this.process()?;
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AuthorityFix<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for AuthorityFix<tokio::net::TcpStream> {
    type ConnectInfo = super::net::ConnInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        super::net::ConnInfo {
            remote: self.inner.peer_addr().ok(),
            cert: None,
        }
    }
}

impl tonic::transport::server::Connected
    for AuthorityFix<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>
{
    type ConnectInfo = super::net::ConnInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        let (tcp, tls) = self.inner.get_ref();
        super::net::ConnInfo {
            remote: tcp.peer_addr().ok(),
            cert: tls
                .peer_certificates()
                .and_then(|c| c.first())
                .map(super::tls::rustls::cert_names),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers_frame(stream: u32, flags: u8, block: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.put_uint(block.len() as u64, 3);
        f.put_u8(FRAME_HEADERS);
        f.put_u8(flags);
        f.put_u32(stream);
        f.extend_from_slice(block);
        f
    }

    #[test]
    fn an_http1_connection_passes_through_from_its_first_bytes() {
        let req = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut fix = AuthorityFix::new(());
        // Even fewer bytes than HTTP/2's preface are enough to tell.
        fix.raw.extend_from_slice(&req[..4]);
        fix.process().unwrap();
        assert_eq!(fix.mode, Mode::PassThrough);
        assert_eq!(&fix.out[..], &req[..4]);
        // A prefix of the preface is not decided yet.
        let mut h2 = AuthorityFix::new(());
        h2.raw.extend_from_slice(&PREFACE[..3]);
        h2.process().unwrap();
        assert_eq!(h2.mode, Mode::Undecided);
        assert!(h2.out.is_empty());
    }

    #[test]
    fn rewrites_url_authorities_and_keeps_hpack_state_consistent() {
        let mut client = loona_hpack::Encoder::new();
        let mut fix = AuthorityFix::new(());
        fix.raw.extend_from_slice(PREFACE);
        let url: &[(&[u8], &[u8])] = &[
            (b":method", b"POST"),
            (b":authority", b"http://127.0.0.1:2379"),
            (b":path", b"/etcdserverpb.KV/Range"),
        ];
        let plain: &[(&[u8], &[u8])] = &[
            (b":method", b"POST"),
            (b":authority", b"127.0.0.1:2379"),
            (b":path", b"/x"),
        ];
        let first = client.encode(url.iter().copied());
        let second = client.encode(url.iter().copied()); // now mostly dynamic-table references
        let third = client.encode(plain.iter().copied());
        fix.raw
            .extend_from_slice(&headers_frame(1, END_HEADERS, &first));
        fix.raw
            .extend_from_slice(&[0, 0, 4, 0, 0, 0, 0, 0, 1, b'd', b'a', b't', b'a']); // DATA
                                                                                      // A block split over HEADERS + CONTINUATION.
        let (a, b) = second.split_at(second.len() / 2);
        fix.raw.extend_from_slice(&headers_frame(3, END_STREAM, a));
        let mut cont = Vec::new();
        cont.put_uint(b.len() as u64, 3);
        cont.put_u8(FRAME_CONTINUATION);
        cont.put_u8(END_HEADERS);
        cont.put_u32(3);
        cont.extend_from_slice(b);
        fix.raw.extend_from_slice(&cont);
        fix.raw
            .extend_from_slice(&headers_frame(5, END_HEADERS, &third));
        fix.process().unwrap();
        assert!(fix.raw.is_empty());

        // What the server sees decodes, with one decoder, to the fixed authorities.
        let mut out = fix.out.split().freeze();
        assert_eq!(&out[..PREFACE.len()], PREFACE);
        out.advance(PREFACE.len());
        let mut server = loona_hpack::Decoder::new();
        let mut seen = Vec::new();
        while out.len() >= 9 {
            let len = ((out[0] as usize) << 16) | ((out[1] as usize) << 8) | out[2] as usize;
            let (kind, flags) = (out[3], out[4]);
            let frame = out.split_to(9 + len);
            if kind == FRAME_HEADERS {
                assert!(flags & END_HEADERS != 0);
                let h = server.decode(&frame[9..]).unwrap();
                let auth = h
                    .iter()
                    .find(|(n, _)| n == b":authority")
                    .unwrap()
                    .1
                    .clone();
                seen.push((flags & END_STREAM != 0, String::from_utf8(auth).unwrap()));
            } else {
                assert_eq!(&frame[9..], b"data");
            }
        }
        assert_eq!(
            seen,
            vec![
                (false, "127.0.0.1:2379".to_string()),
                (true, "127.0.0.1:2379".to_string()),
                (false, "127.0.0.1:2379".to_string())
            ]
        );
    }
}

#[cfg(test)]
mod pass_through_tests {
    use super::*;

    #[test]
    fn plain_authorities_are_forwarded_byte_for_byte() {
        let mut client = loona_hpack::Encoder::new();
        let plain: &[(&[u8], &[u8])] = &[(b":method", b"POST"), (b":authority", b"127.0.0.1:2379")];
        let mut input = PREFACE.to_vec();
        for stream in [1u32, 3] {
            let block = client.encode(plain.iter().copied());
            input.put_uint(block.len() as u64, 3);
            input.put_u8(FRAME_HEADERS);
            input.put_u8(END_HEADERS);
            input.put_u32(stream);
            input.extend_from_slice(&block);
        }
        let mut fix = AuthorityFix::new(());
        fix.raw.extend_from_slice(&input);
        fix.process().unwrap();
        assert_eq!(fix.mode, Mode::PassThrough);
        assert_eq!(&fix.out[..], &input[..]);
    }
}
