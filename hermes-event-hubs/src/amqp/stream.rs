//! A connection's byte stream, between the peer and the endpoint's AMQP
//! library: every frame the library writes goes out complete (see
//! [`complete`]), and the peer's `open` reaches the library with its
//! `max-frame-size` lowered by what completing may add (see [`make_room`]),
//! so that completed frames stay within the peer's limit. Nothing else is
//! touched: protocol headers, SASL frames, and everything the peer sends
//! after its `open` pass as they are.
//!
//! Frames are told apart by their size field; a protocol header by its
//! first four bytes, `AMQP`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::complete::{complete, make_room};

/// The largest frame the peer may send before its `open` (SASL frames and
/// the `open` itself are small): a peer announcing more is refused before
/// anything is held for it.
pub const MAX_FRAME_BEFORE_OPEN: usize = 64 * 1024;

/// Completed bytes the peer has not taken yet, past which a write waits.
const HIGH_WATER: usize = 256 * 1024;

const HEADER: usize = 8;
/// The frame type of AMQP frames (SASL frames are 1).
const AMQP_FRAME: u8 = 0;

fn invalid(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

/// A unit of the byte stream at the start of `bytes`.
enum Unit {
    /// A protocol header, 8 bytes.
    Header,
    /// A frame.
    Frame,
}

impl Unit {
    /// The unit `bytes` starts with, once it is all there; frames larger
    /// than `limit` are an error.
    fn whole(bytes: &[u8], limit: usize) -> io::Result<Option<(Unit, usize)>> {
        if bytes.starts_with(b"AMQP") || (bytes.len() < 4 && b"AMQP".starts_with(bytes)) {
            return Ok((bytes.len() >= HEADER).then_some((Unit::Header, HEADER)));
        }
        let Some(size) = bytes.get(..4) else {
            return Ok(None);
        };
        let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]) as usize;
        if size < HEADER {
            return Err(invalid(format!("an AMQP frame of {size} bytes")));
        }
        if size > limit {
            return Err(invalid(format!(
                "an AMQP frame of {size} bytes before the open (at most {limit})"
            )));
        }
        Ok((bytes.len() >= size).then_some((Unit::Frame, size)))
    }
}

/// `S` with the endpoint's frames completed and the peer's frame limit
/// lowered; see the module's documentation.
pub struct Completing<S> {
    inner: S,
    /// What the library wrote that is not a whole unit yet.
    written: Vec<u8>,
    /// Completed bytes for the peer; those before `sent` went out.
    outgoing: Vec<u8>,
    sent: usize,
    /// What the peer sent before its open that is not a whole unit yet.
    incoming: Vec<u8>,
    /// Bytes for the library; those before `taken` were read.
    ready: Vec<u8>,
    taken: usize,
    /// Whether the peer's first AMQP frame (its open) went by: from then on
    /// its bytes pass as they are.
    opened: bool,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Completing<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completing")
            .field("inner", &self.inner)
            .field("opened", &self.opened)
            .finish_non_exhaustive()
    }
}

impl<S> Completing<S> {
    /// Wraps a connection's stream, from its first byte.
    pub fn new(inner: S) -> Completing<S> {
        Completing {
            inner,
            written: Vec::new(),
            outgoing: Vec::new(),
            sent: 0,
            incoming: Vec::new(),
            ready: Vec::new(),
            taken: 0,
            opened: false,
        }
    }

    /// The stream inside.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Moves what the library wrote, as whole units, to `outgoing`.
    fn take_written(&mut self) -> io::Result<()> {
        let mut at = 0;
        while let Some((unit, len)) = Unit::whole(&self.written[at..], usize::MAX)? {
            let bytes = &self.written[at..at + len];
            match unit {
                Unit::Header => self.outgoing.extend_from_slice(bytes),
                Unit::Frame => match complete(bytes).map_err(invalid)? {
                    Some(done) => self.outgoing.extend_from_slice(&done),
                    None => self.outgoing.extend_from_slice(bytes),
                },
            }
            at += len;
        }
        self.written.drain(..at);
        Ok(())
    }

    /// Moves what the peer sent, as whole units until its open and as it
    /// is after, to `ready`.
    fn take_incoming(&mut self) -> io::Result<()> {
        let mut at = 0;
        while !self.opened {
            let Some((unit, len)) = Unit::whole(&self.incoming[at..], MAX_FRAME_BEFORE_OPEN)?
            else {
                break;
            };
            let bytes = &self.incoming[at..at + len];
            match unit {
                Unit::Header => self.ready.extend_from_slice(bytes),
                Unit::Frame if bytes[5] == AMQP_FRAME => {
                    self.opened = true;
                    match make_room(bytes).map_err(invalid)? {
                        Some(lowered) => self.ready.extend_from_slice(&lowered),
                        None => self.ready.extend_from_slice(bytes),
                    }
                }
                Unit::Frame => self.ready.extend_from_slice(bytes),
            }
            at += len;
        }
        if self.opened {
            self.ready.extend_from_slice(&self.incoming[at..]);
            at = self.incoming.len();
        }
        self.incoming.drain(..at);
        Ok(())
    }
}

impl<S: AsyncWrite + Unpin> Completing<S> {
    /// Writes `outgoing` to the peer, all of it.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.outgoing.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.outgoing[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.outgoing.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Completing<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.outgoing.len() - this.sent >= HIGH_WATER {
            ready!(this.poll_drain(cx))?;
        }
        this.written.extend_from_slice(buf);
        this.take_written()?;
        // Send what can go now; the rest goes at the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Completing<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.taken < this.ready.len() {
                let n = buf.remaining().min(this.ready.len() - this.taken);
                buf.put_slice(&this.ready[this.taken..this.taken + n]);
                this.taken += n;
                if this.taken == this.ready.len() {
                    this.ready.clear();
                    this.taken = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.opened {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            let mut chunk = [0u8; 4096];
            let mut read = ReadBuf::new(&mut chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                // The peer is gone: what it left, then the end.
                this.opened = true;
                this.ready.append(&mut this.incoming);
                if this.ready.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            this.incoming.extend_from_slice(read.filled());
            this.take_incoming()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const AMQP_HEADER: &[u8] = b"AMQP\x00\x01\x00\x00";
    const SASL_HEADER: &[u8] = b"AMQP\x03\x01\x00\x00";

    fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(&[2, kind, 0, 0]);
        out.extend_from_slice(body);
        out
    }

    /// An open with its container id and, if any, its max-frame-size.
    fn open(max_frame_size: Option<u32>) -> Vec<u8> {
        let mut fields = vec![0xa1, 0x01, b'c'];
        let mut count = 1;
        if let Some(size) = max_frame_size {
            fields.push(0x40);
            fields.push(0x70);
            fields.extend_from_slice(&size.to_be_bytes());
            count = 3;
        }
        let mut body = vec![0x00, 0x53, 0x10, 0xc0, (fields.len() + 1) as u8, count];
        body.extend_from_slice(&fields);
        frame(0, &body)
    }

    /// A SASL outcome, code ok.
    fn sasl_outcome() -> Vec<u8> {
        frame(1, &[0x00, 0x53, 0x44, 0xc0, 0x03, 0x01, 0x50, 0x00])
    }

    #[tokio::test]
    async fn frames_written_in_pieces_go_out_whole_and_complete() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut stream = Completing::new(near);
        let bytes = [SASL_HEADER, &sasl_outcome(), AMQP_HEADER, &open(None)].concat();
        // Written a few bytes at a time, as a library may.
        for piece in bytes.chunks(3) {
            stream.write_all(piece).await.expect("write");
        }
        stream.flush().await.expect("flush");
        drop(stream);
        let mut out = Vec::new();
        far.read_to_end(&mut out).await.expect("read");
        let completed = complete(&open(None)).expect("an open").expect("completed");
        assert_eq!(
            out,
            [SASL_HEADER, &sasl_outcome(), AMQP_HEADER, &completed].concat()
        );
    }

    #[tokio::test]
    async fn the_peers_open_reaches_the_library_with_room_then_bytes_pass() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut stream = Completing::new(near);
        // After the open, anything passes untouched, even a short list.
        let begin = frame(0, &[0x00, 0x53, 0x11, 0x45]);
        let sent = [
            SASL_HEADER,
            &sasl_outcome(),
            AMQP_HEADER,
            &open(Some(65536)),
            &begin,
        ]
        .concat();
        for piece in sent.chunks(5) {
            far.write_all(piece).await.expect("write");
        }
        drop(far);
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.expect("read");
        let lowered = make_room(&open(Some(65536)))
            .expect("an open")
            .expect("lowered");
        assert_eq!(
            got,
            [SASL_HEADER, &sasl_outcome(), AMQP_HEADER, &lowered, &begin].concat()
        );
    }

    #[tokio::test]
    async fn a_peer_announcing_a_huge_frame_before_its_open_is_refused() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut stream = Completing::new(near);
        far.write_all(AMQP_HEADER).await.expect("write");
        far.write_all(&(1u32 << 30).to_be_bytes())
            .await
            .expect("write");
        let mut got = Vec::new();
        let error = stream.read_to_end(&mut got).await.expect_err("refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(
            error
                .to_string()
                .contains("1073741824 bytes before the open"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_malformed_frame_from_the_library_is_an_error() {
        let (near, _far) = tokio::io::duplex(1 << 20);
        let mut stream = Completing::new(near);
        let mut bad = open(None);
        bad[11] = 0xff;
        let error = stream.write_all(&bad).await.expect_err("refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
