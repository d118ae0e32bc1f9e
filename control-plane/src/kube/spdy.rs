//! SPDY/3.1, the multiplexing protocol kubectl's port-forward speaks (and exec's fallback):
//! the frame codec ([`FrameDecoder`], [`FrameEncoder`]) and a server-side session
//! ([`serve`]) that hands each stream the client opens to the caller.
//!
//! The wire format is the SPDY/3 draft's, as moby/spdystream (kubectl's and the kubelet's
//! implementation) writes it: 8-byte frame headers, name/value header blocks compressed
//! with zlib and SPDY/3's fixed dictionary in one context per direction for the whole
//! connection. Every size the peer controls is bounded: a frame's length, a header block's
//! decompressed size, the streams open at once, and the bytes buffered for the caller.
//!
//! Flow control: SPDY/3.1 windows are parsed but not enforced in either direction.
//! spdystream implements none (it never sends WINDOW_UPDATE), so holding kubectl to a
//! 64 KiB window would stall every transfer; backpressure comes from the transport instead
//! (the session stops reading while the caller's buffers are full).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

use axum::body::Bytes;
use bytes::{Buf, BufMut, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

/// The protocol version in every control frame.
pub const VERSION: u16 = 3;
/// The HTTP header a SPDY upgrade's request offers its stream protocols in, and its
/// answer names the one chosen (port-forward's, or exec's remote-command version).
pub const PROTOCOL_HEADER: &str = "x-stream-protocol-version";
/// A frame's payload above this is refused (SPDY allows 16 MiB; kubectl writes 32 KiB).
pub const MAX_FRAME_BYTES: usize = 2 << 20;
/// A header block may decompress to at most this many bytes.
pub const MAX_HEADER_BLOCK_BYTES: usize = 64 << 10;
/// Streams open at once on one connection (a forwarded TCP connection takes two).
pub const MAX_STREAMS: usize = 512;
/// Received data waiting for the caller, over all streams of one connection.
pub const MAX_BUFFERED_BYTES: usize = 8 << 20;
/// The largest DATA frame this side writes.
const MAX_DATA_CHUNK: usize = 64 << 10;

const FLAG_FIN: u8 = 0x01;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes (SPDY/3 section 2.6.3).
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const INVALID_STREAM: u32 = 2;
    pub const REFUSED_STREAM: u32 = 3;
    pub const CANCEL: u32 = 5;
    pub const INTERNAL_ERROR: u32 = 6;
    pub const FRAME_TOO_LARGE: u32 = 11;
}

/// GOAWAY status codes.
pub mod goaway {
    pub const OK: u32 = 0;
    pub const PROTOCOL_ERROR: u32 = 1;
}

/// SPDY/3's zlib dictionary for header blocks (draft 3, section 2.6.10.1): common header
/// names and values, each as a 4-byte big-endian length and its bytes, then a run of
/// common value fragments.
static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
    const WORDS: &[&str] = &[
        "options",
        "head",
        "post",
        "put",
        "delete",
        "trace",
        "accept",
        "accept-charset",
        "accept-encoding",
        "accept-language",
        "accept-ranges",
        "age",
        "allow",
        "authorization",
        "cache-control",
        "connection",
        "content-base",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-md5",
        "content-range",
        "content-type",
        "date",
        "etag",
        "expect",
        "expires",
        "from",
        "host",
        "if-match",
        "if-modified-since",
        "if-none-match",
        "if-range",
        "if-unmodified-since",
        "last-modified",
        "location",
        "max-forwards",
        "pragma",
        "proxy-authenticate",
        "proxy-authorization",
        "range",
        "referer",
        "retry-after",
        "server",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "vary",
        "via",
        "warning",
        "www-authenticate",
        "method",
        "get",
        "status",
        "200 OK",
        "version",
        "HTTP/1.1",
        "url",
        "public",
        "set-cookie",
        "keep-alive",
        "origin",
    ];
    const TAIL: &str = concat!(
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
        "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
        "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
        "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
        "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
        "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,",
        "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
    );
    let mut dictionary = Vec::with_capacity(1423);
    for word in WORDS {
        dictionary.extend_from_slice(&(word.len() as u32).to_be_bytes());
        dictionary.extend_from_slice(word.as_bytes());
    }
    dictionary.extend_from_slice(TAIL.as_bytes());
    dictionary
});

#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("spdy frame of {0} bytes is over the {MAX_FRAME_BYTES}-byte limit")]
    FrameTooLarge(usize),
    #[error("spdy version {0} is not supported (only 3)")]
    Version(u16),
    #[error("malformed spdy {frame} frame: {reason}")]
    Malformed {
        frame: &'static str,
        reason: &'static str,
    },
    #[error("spdy header block: {0}")]
    HeaderBlock(String),
    #[error("spdy header block decompresses to more than {MAX_HEADER_BLOCK_BYTES} bytes")]
    HeaderBlockTooLarge,
    #[error("spdy transport: {0}")]
    Io(#[from] std::io::Error),
}

fn malformed(frame: &'static str, reason: &'static str) -> SpdyError {
    SpdyError::Malformed { frame, reason }
}

/// A header block: lowercase names, each with its value (several values are joined by NUL,
/// as on the wire).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The value of `name` (compared without case, as Go's http.Header does).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One frame, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream: u32,
        associated: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream: u32,
        status: u32,
    },
    /// (flags, id, value) of each setting.
    Settings {
        flags: u8,
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good: u32,
        status: u32,
    },
    Headers {
        stream: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream: u32,
        delta: u32,
    },
    Data {
        stream: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame of a type SPDY/3.1 does not define: the spec says to ignore it.
    Unknown {
        kind: u16,
    },
}

const STREAM_ID_MASK: u32 = 0x7fff_ffff;

/// Reads frames, keeping the connection's inflate context for header blocks.
pub struct FrameDecoder {
    inflate: Decompress,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder {
            inflate: Decompress::new(true),
        }
    }
}

impl FrameDecoder {
    /// The next whole frame at the front of `buf` (removed from it), or `None` until more
    /// bytes arrive. An error leaves the connection unusable: the header context may be
    /// out of step.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let length = u32::from_be_bytes([0, buf[5], buf[6], buf[7]]) as usize;
        if length > MAX_FRAME_BYTES {
            return Err(SpdyError::FrameTooLarge(length));
        }
        if buf.len() < 8 + length {
            buf.reserve(8 + length - buf.len());
            return Ok(None);
        }
        let first = buf.get_u32();
        let flags = buf.get_u8();
        buf.advance(3);
        let mut payload = buf.split_to(length).freeze();
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream: first & STREAM_ID_MASK,
                flags,
                data: payload,
            }));
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = (first & 0xffff) as u16;
        let frame = match kind {
            TYPE_SYN_STREAM => {
                if payload.len() < 10 {
                    return Err(malformed("SYN_STREAM", "shorter than 10 bytes"));
                }
                let stream = payload.get_u32() & STREAM_ID_MASK;
                let associated = payload.get_u32() & STREAM_ID_MASK;
                let priority = payload.get_u8() >> 5;
                payload.advance(1); // the slot, unused since SPDY/3.1
                Frame::SynStream {
                    stream,
                    associated,
                    priority,
                    flags,
                    headers: self.header_block(&payload)?,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                if payload.len() < 4 {
                    return Err(malformed("SYN_REPLY", "shorter than 4 bytes"));
                }
                let stream = payload.get_u32() & STREAM_ID_MASK;
                let headers = self.header_block(&payload)?;
                if kind == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream,
                        flags,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM => {
                let [stream, status] = words(&payload, "RST_STREAM")?;
                Frame::RstStream {
                    stream: stream & STREAM_ID_MASK,
                    status,
                }
            }
            TYPE_SETTINGS => {
                if payload.len() < 4 {
                    return Err(malformed("SETTINGS", "shorter than 4 bytes"));
                }
                let count = payload.get_u32() as usize;
                if payload.len() != count.saturating_mul(8) {
                    return Err(malformed("SETTINGS", "length does not match its count"));
                }
                let entries = (0..count)
                    .map(|_| {
                        let flag_id = payload.get_u32();
                        (
                            (flag_id >> 24) as u8,
                            flag_id & 0xff_ffff,
                            payload.get_u32(),
                        )
                    })
                    .collect();
                Frame::Settings { flags, entries }
            }
            TYPE_PING => {
                if payload.len() != 4 {
                    return Err(malformed("PING", "length is not 4"));
                }
                Frame::Ping {
                    id: payload.get_u32(),
                }
            }
            TYPE_GOAWAY => {
                let [last_good, status] = words(&payload, "GOAWAY")?;
                Frame::GoAway {
                    last_good: last_good & STREAM_ID_MASK,
                    status,
                }
            }
            TYPE_WINDOW_UPDATE => {
                let [stream, delta] = words(&payload, "WINDOW_UPDATE")?;
                Frame::WindowUpdate {
                    stream: stream & STREAM_ID_MASK,
                    delta: delta & STREAM_ID_MASK,
                }
            }
            kind => Frame::Unknown { kind },
        };
        Ok(Some(frame))
    }

    /// Inflates one header block (the connection's stream continues from the last one)
    /// and parses it.
    fn header_block(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        // One byte over the limit tells a block at the limit from one over it.
        let cap = MAX_HEADER_BLOCK_BYTES + 1;
        let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).clamp(256, cap));
        let mut used = 0;
        loop {
            let (before_in, before_out) = (self.inflate.total_in(), self.inflate.total_out());
            let result =
                self.inflate
                    .decompress_vec(&compressed[used..], &mut out, FlushDecompress::Sync);
            used += (self.inflate.total_in() - before_in) as usize;
            let progressed =
                self.inflate.total_in() != before_in || self.inflate.total_out() != before_out;
            match result {
                Ok(Status::StreamEnd) => {
                    return Err(SpdyError::HeaderBlock("the zlib stream ended".into()));
                }
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(&DICTIONARY)
                        .map_err(|e| SpdyError::HeaderBlock(e.to_string()))?;
                    continue;
                }
                Err(e) => return Err(SpdyError::HeaderBlock(e.to_string())),
            }
            if out.len() > MAX_HEADER_BLOCK_BYTES {
                return Err(SpdyError::HeaderBlockTooLarge);
            }
            if out.len() == out.capacity() {
                out.reserve((out.capacity() * 2).min(cap) - out.len());
                continue;
            }
            if used == compressed.len() {
                break;
            }
            if !progressed {
                return Err(SpdyError::HeaderBlock(
                    "the compressed block is cut short".into(),
                ));
            }
        }
        parse_header_block(&out)
    }
}

fn words(payload: &[u8], frame: &'static str) -> Result<[u32; 2], SpdyError> {
    match payload {
        [a, b, c, d, e, f, g, h] => Ok([
            u32::from_be_bytes([*a, *b, *c, *d]),
            u32::from_be_bytes([*e, *f, *g, *h]),
        ]),
        _ => Err(malformed(frame, "length is not 8")),
    }
}

fn parse_header_block(mut block: &[u8]) -> Result<Headers, SpdyError> {
    fn field<'a>(block: &mut &'a [u8]) -> Result<&'a [u8], SpdyError> {
        if block.len() < 4 {
            return Err(SpdyError::HeaderBlock("a length is cut short".into()));
        }
        let length = block.get_u32() as usize;
        if block.len() < length {
            return Err(SpdyError::HeaderBlock(
                "a name or value is cut short".into(),
            ));
        }
        let (value, rest) = block.split_at(length);
        *block = rest;
        Ok(value)
    }
    if block.len() < 4 {
        return Err(SpdyError::HeaderBlock("the count is cut short".into()));
    }
    let count = block.get_u32();
    let mut headers = Vec::new();
    for _ in 0..count {
        let name = field(&mut block)?;
        let value = field(&mut block)?;
        if name.is_empty() {
            return Err(SpdyError::HeaderBlock("a header name is empty".into()));
        }
        let text = |bytes: &[u8]| {
            String::from_utf8(bytes.to_vec())
                .map_err(|_| SpdyError::HeaderBlock("a header is not UTF-8".into()))
        };
        headers.push((text(name)?.to_ascii_lowercase(), text(value)?));
    }
    if !block.is_empty() {
        return Err(SpdyError::HeaderBlock(
            "bytes follow the last header".into(),
        ));
    }
    Ok(Headers(headers))
}

/// Writes frames, keeping the connection's deflate context for header blocks.
pub struct FrameEncoder {
    deflate: Compress,
}

impl Default for FrameEncoder {
    fn default() -> Self {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(&DICTIONARY)
            .expect("a fresh deflate stream takes a dictionary");
        FrameEncoder { deflate }
    }
}

impl FrameEncoder {
    /// Appends `frame` to `out`. Data longer than a frame may carry is the caller's to
    /// split; a stream id over 31 bits is masked.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), SpdyError> {
        let control = |out: &mut BytesMut, kind: u16, flags: u8, payload: &[u8]| {
            out.put_u16(0x8000 | VERSION);
            out.put_u16(kind);
            out.put_u32((u32::from(flags) << 24) | payload.len() as u32);
            out.put_slice(payload);
        };
        let mut payload = BytesMut::new();
        match frame {
            Frame::Data {
                stream,
                flags,
                data,
            } => {
                if data.len() > MAX_FRAME_BYTES {
                    return Err(SpdyError::FrameTooLarge(data.len()));
                }
                out.put_u32(stream & STREAM_ID_MASK);
                out.put_u32((u32::from(*flags) << 24) | data.len() as u32);
                out.put_slice(data);
            }
            Frame::SynStream {
                stream,
                associated,
                priority,
                flags,
                headers,
            } => {
                payload.put_u32(stream & STREAM_ID_MASK);
                payload.put_u32(associated & STREAM_ID_MASK);
                payload.put_u8((priority & 0x7) << 5);
                payload.put_u8(0);
                self.header_block(headers, &mut payload)?;
                control(out, TYPE_SYN_STREAM, *flags, &payload);
            }
            Frame::SynReply {
                stream,
                flags,
                headers,
            }
            | Frame::Headers {
                stream,
                flags,
                headers,
            } => {
                payload.put_u32(stream & STREAM_ID_MASK);
                self.header_block(headers, &mut payload)?;
                let kind = match frame {
                    Frame::SynReply { .. } => TYPE_SYN_REPLY,
                    _ => TYPE_HEADERS,
                };
                control(out, kind, *flags, &payload);
            }
            Frame::RstStream { stream, status } => {
                payload.put_u32(stream & STREAM_ID_MASK);
                payload.put_u32(*status);
                control(out, TYPE_RST_STREAM, 0, &payload);
            }
            Frame::Settings { flags, entries } => {
                payload.put_u32(entries.len() as u32);
                for (flag, id, value) in entries {
                    payload.put_u32((u32::from(*flag) << 24) | (id & 0xff_ffff));
                    payload.put_u32(*value);
                }
                control(out, TYPE_SETTINGS, *flags, &payload);
            }
            Frame::Ping { id } => control(out, TYPE_PING, 0, &id.to_be_bytes()),
            Frame::GoAway { last_good, status } => {
                payload.put_u32(last_good & STREAM_ID_MASK);
                payload.put_u32(*status);
                control(out, TYPE_GOAWAY, 0, &payload);
            }
            Frame::WindowUpdate { stream, delta } => {
                payload.put_u32(stream & STREAM_ID_MASK);
                payload.put_u32(delta & STREAM_ID_MASK);
                control(out, TYPE_WINDOW_UPDATE, 0, &payload);
            }
            Frame::Unknown { kind } => control(out, *kind, 0, &[]),
        }
        Ok(())
    }

    /// Deflates a header block onto `out`, ending with a sync flush so the peer can inflate
    /// it whole.
    fn header_block(&mut self, headers: &Headers, out: &mut BytesMut) -> Result<(), SpdyError> {
        let mut block = Vec::new();
        block.put_u32(headers.0.len() as u32);
        for (name, value) in &headers.0 {
            let name = name.to_ascii_lowercase();
            block.put_u32(name.len() as u32);
            block.put_slice(name.as_bytes());
            block.put_u32(value.len() as u32);
            block.put_slice(value.as_bytes());
        }
        if block.len() > MAX_HEADER_BLOCK_BYTES {
            return Err(SpdyError::HeaderBlockTooLarge);
        }
        let mut compressed = Vec::with_capacity(block.len() + 64);
        let mut used = 0;
        loop {
            let before = self.deflate.total_in();
            self.deflate
                .compress_vec(&block[used..], &mut compressed, FlushCompress::Sync)
                .map_err(|e| SpdyError::HeaderBlock(e.to_string()))?;
            used += (self.deflate.total_in() - before) as usize;
            // Done when every byte went in and the flush had room to finish.
            if used == block.len() && compressed.len() < compressed.capacity() {
                break;
            }
            compressed.reserve(compressed.capacity().max(64));
        }
        out.put_slice(&compressed);
        Ok(())
    }
}

/// Where a session reads the client's bytes from: a raw upgraded connection, or the
/// binary messages of a WebSocket tunnelling SPDY.
pub trait ByteSource: Send {
    /// Appends what arrives next to `buf`; `Ok(0)` at the end of the connection.
    fn read_into(
        &mut self,
        buf: &mut BytesMut,
    ) -> impl Future<Output = std::io::Result<usize>> + Send;
}

/// Where a session writes its frames.
pub trait ByteSink: Send {
    fn write(&mut self, bytes: Bytes) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Ends the connection's sending side.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

impl<T: tokio::io::AsyncRead + Send + Unpin> ByteSource for tokio::io::ReadHalf<T> {
    async fn read_into(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        use tokio::io::AsyncReadExt;
        buf.reserve(16 << 10);
        self.read_buf(buf).await
    }
}

impl<T: tokio::io::AsyncWrite + Send + Unpin> ByteSink for tokio::io::WriteHalf<T> {
    async fn write(&mut self, bytes: Bytes) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.write_all(&bytes).await?;
        self.flush().await
    }

    async fn close(&mut self) {
        use tokio::io::AsyncWriteExt;
        let _ = self.shutdown().await;
    }
}

/// A stream the client opened: its headers, what it sends, and a handle to answer on.
pub struct Stream {
    pub id: u32,
    pub headers: Headers,
    pub reader: StreamReader,
    pub writer: StreamWriter,
}

/// What the client sends on one stream; ends at its FIN or reset.
pub struct StreamReader {
    data: mpsc::Receiver<(Bytes, OwnedSemaphorePermit)>,
}

impl StreamReader {
    /// The next bytes, or `None` once the client finished (or reset) the stream.
    pub async fn recv(&mut self) -> Option<Bytes> {
        // The permit goes here: those bytes no longer count against the connection.
        self.data.recv().await.map(|(bytes, _permit)| bytes)
    }
}

/// State a stream's writer and the session share.
struct Shared {
    /// The client reset the stream (or the session ended): write nothing more on it.
    reset: AtomicBool,
    /// This side sent its FIN (or a reset).
    finished: AtomicBool,
}

/// Writes on one stream. Cloning shares the stream.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    frames: mpsc::Sender<Frame>,
    shared: Arc<Shared>,
    closed: watch::Receiver<bool>,
}

/// Writing on a stream the client reset or a connection that ended.
#[derive(Debug, thiserror::Error)]
#[error("the spdy stream is closed")]
pub struct Closed;

impl StreamWriter {
    fn usable(&self) -> Result<(), Closed> {
        match self.shared.reset.load(Ordering::Acquire) || *self.closed.borrow() {
            true => Err(Closed),
            false => Ok(()),
        }
    }

    /// Accepts the stream (SYN_REPLY): before anything else is written on it.
    pub async fn reply(&self) -> Result<(), Closed> {
        self.usable()?;
        let reply = Frame::SynReply {
            stream: self.id,
            flags: 0,
            headers: Headers::default(),
        };
        self.frames.send(reply).await.map_err(|_| Closed)
    }

    /// Sends `data` in frames of at most 64 KiB.
    pub async fn write(&self, data: Bytes) -> Result<(), Closed> {
        let mut data = data;
        while !data.is_empty() {
            self.usable()?;
            if self.shared.finished.load(Ordering::Acquire) {
                return Err(Closed);
            }
            let chunk = data.split_to(data.len().min(MAX_DATA_CHUNK));
            let frame = Frame::Data {
                stream: self.id,
                flags: 0,
                data: chunk,
            };
            self.frames.send(frame).await.map_err(|_| Closed)?;
        }
        Ok(())
    }

    /// Half-closes the stream: an empty DATA frame with FIN, once.
    pub async fn finish(&self) {
        if self.usable().is_err() || self.shared.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        let fin = Frame::Data {
            stream: self.id,
            flags: FLAG_FIN,
            data: Bytes::new(),
        };
        let _ = self.frames.send(fin).await;
    }

    /// Resets the stream with `status` (one of [`rst`]), refusing or abandoning it.
    pub async fn reset(&self, status: u32) {
        if self.usable().is_err() {
            return;
        }
        self.shared.finished.store(true, Ordering::Release);
        self.shared.reset.store(true, Ordering::Release);
        let frame = Frame::RstStream {
            stream: self.id,
            status,
        };
        let _ = self.frames.send(frame).await;
    }

    /// Resolves when the connection ends.
    pub async fn connection_closed(&self) {
        let mut closed = self.closed.clone();
        let _ = closed.wait_for(|c| *c).await;
    }
}

/// What the session keeps per open stream.
struct Entry {
    /// Until the client's FIN: where its data goes.
    data: Option<mpsc::Sender<(Bytes, OwnedSemaphorePermit)>>,
    shared: Arc<Shared>,
}

/// Serves one SPDY connection as its server side until the client goes away or breaks
/// the protocol: each stream the client opens goes to `streams` (unanswered: the caller
/// replies or resets it). Pings are answered here.
pub async fn serve(
    mut source: impl ByteSource,
    sink: impl ByteSink + 'static,
    streams: mpsc::Sender<Stream>,
) -> Result<(), SpdyError> {
    let (frames_tx, frames_rx) = mpsc::channel::<Frame>(64);
    let (closed_tx, closed_rx) = watch::channel(false);
    let writer = tokio::spawn(write_frames(sink, frames_rx));
    // `streams` goes with the reader: the caller sees it end with the connection.
    let result = read_frames(&mut source, &frames_tx, &closed_rx, streams).await;
    if let Err(e) = &result {
        tracing::debug!("spdy connection: {e}");
        let status = match e {
            SpdyError::Io(_) => None,
            _ => Some(goaway::PROTOCOL_ERROR),
        };
        if let Some(status) = status {
            let _ = frames_tx
                .send(Frame::GoAway {
                    last_good: 0,
                    status,
                })
                .await;
        }
    }
    // Streams still open learn the connection ended; the writer stops once every
    // stream's writer is gone, or at once when its transport fails.
    let _ = closed_tx.send(true);
    drop(frames_tx);
    let _ = writer.await;
    result
}

async fn write_frames(mut sink: impl ByteSink, mut frames: mpsc::Receiver<Frame>) {
    let mut encoder = FrameEncoder::default();
    let mut out = BytesMut::new();
    while let Some(frame) = frames.recv().await {
        let mut next = Some(frame);
        // Frames queued together go out in one write (one WebSocket message).
        while let Some(frame) = next.take() {
            if let Err(e) = encoder.encode(&frame, &mut out) {
                tracing::debug!("spdy frame not written: {e}");
                sink.close().await;
                return;
            }
            if out.len() < MAX_DATA_CHUNK {
                next = frames.try_recv().ok();
            }
        }
        if sink.write(out.split().freeze()).await.is_err() {
            return;
        }
    }
    sink.close().await;
}

async fn read_frames(
    source: &mut impl ByteSource,
    frames: &mpsc::Sender<Frame>,
    closed: &watch::Receiver<bool>,
    streams: mpsc::Sender<Stream>,
) -> Result<(), SpdyError> {
    let mut decoder = FrameDecoder::default();
    let mut buf = BytesMut::with_capacity(16 << 10);
    let mut open: HashMap<u32, Entry> = HashMap::new();
    let budget = Arc::new(Semaphore::new(MAX_BUFFERED_BYTES));
    let mut last_client_stream = 0u32;
    let result = loop {
        let frame = match decoder.decode(&mut buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => match source.read_into(&mut buf).await {
                Ok(0) => break Ok(()),
                Ok(_) => continue,
                Err(e) => break Err(e.into()),
            },
            Err(e) => break Err(e),
        };
        match frame {
            Frame::SynStream {
                stream,
                flags,
                headers,
                ..
            } => {
                // Client streams are odd and rise: anything else is a protocol error.
                if stream % 2 == 0 || stream <= last_client_stream {
                    let _ = frames
                        .send(Frame::RstStream {
                            stream,
                            status: rst::PROTOCOL_ERROR,
                        })
                        .await;
                    continue;
                }
                last_client_stream = stream;
                // Streams both sides finished with are forgotten first.
                open.retain(|_, e| e.data.is_some() || Arc::strong_count(&e.shared) > 1);
                if open.len() >= MAX_STREAMS {
                    let _ = frames
                        .send(Frame::RstStream {
                            stream,
                            status: rst::REFUSED_STREAM,
                        })
                        .await;
                    continue;
                }
                let (data_tx, data_rx) = mpsc::channel(64);
                let shared = Arc::new(Shared {
                    reset: AtomicBool::new(false),
                    finished: AtomicBool::new(false),
                });
                let fin = flags & FLAG_FIN != 0;
                open.insert(
                    stream,
                    Entry {
                        data: (!fin).then_some(data_tx),
                        shared: shared.clone(),
                    },
                );
                let handed = Stream {
                    id: stream,
                    headers,
                    reader: StreamReader { data: data_rx },
                    writer: StreamWriter {
                        id: stream,
                        frames: frames.clone(),
                        shared,
                        closed: closed.clone(),
                    },
                };
                if streams.send(handed).await.is_err() {
                    break Ok(());
                }
            }
            Frame::Data {
                stream,
                flags,
                data,
            } => {
                // Data on a stream that is gone (reset, or finished by the client) is
                // dropped, as spdystream does.
                let Some(entry) = open.get_mut(&stream) else {
                    continue;
                };
                if let Some(sender) = entry.data.as_ref().filter(|_| !data.is_empty()) {
                    // Waits while the connection's buffers are full: the client is read
                    // no faster than the streams are drained.
                    let permit = budget
                        .clone()
                        .acquire_many_owned(data.len() as u32)
                        .await
                        .expect("the budget is never closed");
                    if sender.send((data, permit)).await.is_err() {
                        entry.data = None;
                    }
                }
                if flags & FLAG_FIN != 0 {
                    entry.data = None;
                }
            }
            Frame::RstStream { stream, .. } => {
                if let Some(entry) = open.remove(&stream) {
                    entry.shared.reset.store(true, Ordering::Release);
                }
            }
            Frame::Ping { id } => {
                // The client's pings (odd) are echoed; this side sends none.
                if id % 2 == 1 {
                    let _ = frames.send(Frame::Ping { id }).await;
                }
            }
            Frame::GoAway { .. } => break Ok(()),
            // Settings and window updates: see the module's note on flow control. This
            // side opens no streams, so a SYN_REPLY answers nothing; HEADERS carry nothing
            // port-forward or exec use.
            Frame::Settings { .. }
            | Frame::WindowUpdate { .. }
            | Frame::SynReply { .. }
            | Frame::Headers { .. }
            | Frame::Unknown { .. } => {}
        }
    };
    for entry in open.values() {
        entry.shared.reset.store(true, Ordering::Release);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> BytesMut {
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect();
        BytesMut::from(&bytes[..])
    }

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_dictionary_is_spdy3s_whose_adler32_every_header_block_names() {
        assert_eq!(DICTIONARY.len(), 1423);
        // The FDICT id in the zlib header of every SPDY/3 header block (0xe3c6a7c2).
        let mut a: u32 = 1;
        let mut b: u32 = 0;
        for byte in DICTIONARY.iter() {
            a = (a + u32::from(*byte)) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    /// Two SYN_STREAMs as kubectl opens a forwarded connection's error and data streams,
    /// their header blocks compressed by C zlib with the SPDY/3 dictionary in one context
    /// (the second block refers back to the first).
    #[test]
    fn syn_streams_compressed_by_zlib_with_the_dictionary_decode_in_one_context() {
        let mut buf = hex(concat!(
            "800300010000003d0000000100000000000078f9e3c6a7c202253a703a2b294a4dcc851625aca9",
            "a0808614cb45e01c6061606100a4398b20d198094ade8c0600000000ffff",
            "800300010000001800000003000000000000c2aa19540e2512d60b000000ffff",
        ));
        let mut decoder = FrameDecoder::default();
        let first = decoder.decode(&mut buf).unwrap().unwrap();
        assert_eq!(
            first,
            Frame::SynStream {
                stream: 1,
                associated: 0,
                priority: 0,
                flags: 0,
                headers: headers(&[
                    ("streamtype", "error"),
                    ("port", "8080"),
                    ("requestid", "0")
                ]),
            }
        );
        let second = decoder.decode(&mut buf).unwrap().unwrap();
        let Frame::SynStream {
            stream, headers, ..
        } = second
        else {
            panic!("{second:?}")
        };
        assert_eq!(stream, 3);
        assert_eq!(headers.get("streamType"), Some("data"));
        assert_eq!(headers.get("requestID"), Some("0"));
        assert!(buf.is_empty());
        assert!(decoder.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn every_frame_encodes_and_decodes_to_itself_with_header_blocks_sharing_a_context() {
        let frames = vec![
            Frame::SynStream {
                stream: 5,
                associated: 0,
                priority: 3,
                flags: FLAG_FIN,
                headers: headers(&[("streamtype", "data"), ("port", "80")]),
            },
            Frame::SynReply {
                stream: 5,
                flags: 0,
                headers: Headers::default(),
            },
            Frame::Headers {
                stream: 5,
                flags: 0,
                headers: headers(&[("streamtype", "data"), ("x", "a\0b")]),
            },
            Frame::Data {
                stream: 5,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hello"),
            },
            Frame::RstStream {
                stream: 5,
                status: rst::CANCEL,
            },
            Frame::Settings {
                flags: 0,
                entries: vec![(0, 7, 65536), (1, 4, 100)],
            },
            Frame::Ping { id: 7 },
            Frame::GoAway {
                last_good: 5,
                status: goaway::OK,
            },
            Frame::WindowUpdate {
                stream: 0,
                delta: 1 << 20,
            },
            Frame::Unknown { kind: 77 },
        ];
        let mut encoder = FrameEncoder::default();
        let mut buf = BytesMut::new();
        for frame in &frames {
            encoder.encode(frame, &mut buf).unwrap();
        }
        let mut decoder = FrameDecoder::default();
        for frame in &frames {
            assert_eq!(&decoder.decode(&mut buf).unwrap().unwrap(), frame);
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn a_frame_arriving_a_byte_at_a_time_decodes_once_whole() {
        let mut encoder = FrameEncoder::default();
        let mut whole = BytesMut::new();
        let frame = Frame::SynStream {
            stream: 1,
            associated: 0,
            priority: 0,
            flags: 0,
            headers: headers(&[("port", "8080")]),
        };
        encoder.encode(&frame, &mut whole).unwrap();
        let mut decoder = FrameDecoder::default();
        let mut buf = BytesMut::new();
        for (i, byte) in whole.iter().enumerate() {
            buf.put_u8(*byte);
            let decoded = decoder.decode(&mut buf).unwrap();
            assert_eq!(decoded.is_some(), i == whole.len() - 1);
        }
    }

    #[test]
    fn a_frame_longer_than_the_limit_is_refused_before_it_is_read() {
        let mut buf = BytesMut::new();
        buf.put_u32(1);
        buf.put_u32(0x00ff_ffff);
        let err = FrameDecoder::default().decode(&mut buf).unwrap_err();
        assert!(
            matches!(err, SpdyError::FrameTooLarge(0x00ff_ffff)),
            "{err}"
        );
    }

    #[test]
    fn a_header_block_inflating_past_the_limit_is_refused() {
        // A single value of 1 MiB of zeros deflates to about a kilobyte.
        let big = "0".repeat(1 << 20);
        let mut block = Vec::new();
        block.put_u32(1);
        block.put_u32(1);
        block.put_slice(b"x");
        block.put_u32(big.len() as u32);
        block.put_slice(big.as_bytes());
        let mut deflate = Compress::new(Compression::default(), true);
        deflate.set_dictionary(&DICTIONARY).unwrap();
        let mut compressed = Vec::with_capacity(1 << 16);
        deflate
            .compress_vec(&block, &mut compressed, FlushCompress::Sync)
            .unwrap();
        assert!(compressed.len() < 1 << 16);
        let mut buf = BytesMut::new();
        buf.put_u16(0x8003);
        buf.put_u16(TYPE_SYN_STREAM);
        buf.put_u32(10 + compressed.len() as u32);
        buf.put_u32(1);
        buf.put_u32(0);
        buf.put_u16(0);
        buf.put_slice(&compressed);
        let err = FrameDecoder::default().decode(&mut buf).unwrap_err();
        assert!(matches!(err, SpdyError::HeaderBlockTooLarge), "{err}");
    }

    #[test]
    fn malformed_frames_are_named_never_a_panic() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            // PING of 3 bytes.
            (vec![0x80, 3, 0, 6, 0, 0, 0, 3, 1, 2, 3], "PING"),
            // RST_STREAM of 4.
            (vec![0x80, 3, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1], "RST_STREAM"),
            // SETTINGS claiming 2^32-1 entries.
            (
                vec![0x80, 3, 0, 4, 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff],
                "SETTINGS",
            ),
            // SYN_STREAM with garbage for a header block.
            (
                vec![
                    0x80, 3, 0, 1, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2,
                ],
                "header block",
            ),
            // SPDY/2.
            (vec![0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1], "version"),
        ];
        for (bytes, named) in cases {
            let mut buf = BytesMut::from(&bytes[..]);
            let err = FrameDecoder::default().decode(&mut buf).unwrap_err();
            assert!(err.to_string().contains(named), "{named}: {err}");
        }
    }

    /// A client on an in-memory connection: frames in, frames out.
    struct Client {
        encoder: FrameEncoder,
        decoder: FrameDecoder,
        io: tokio::io::DuplexStream,
        buf: BytesMut,
    }

    impl Client {
        async fn send(&mut self, frame: Frame) {
            use tokio::io::AsyncWriteExt;
            let mut out = BytesMut::new();
            self.encoder.encode(&frame, &mut out).unwrap();
            self.io.write_all(&out).await.unwrap();
        }

        async fn next(&mut self) -> Option<Frame> {
            use tokio::io::AsyncReadExt;
            loop {
                if let Some(frame) = self.decoder.decode(&mut self.buf).unwrap() {
                    return Some(frame);
                }
                if self.io.read_buf(&mut self.buf).await.unwrap() == 0 {
                    return None;
                }
            }
        }
    }

    fn session() -> (Client, mpsc::Receiver<Stream>) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (read, write) = tokio::io::split(server);
        let (tx, rx) = mpsc::channel(8);
        tokio::spawn(serve(read, write, tx));
        let client = Client {
            encoder: FrameEncoder::default(),
            decoder: FrameDecoder::default(),
            io: client,
            buf: BytesMut::new(),
        };
        (client, rx)
    }

    fn syn(stream: u32, flags: u8) -> Frame {
        Frame::SynStream {
            stream,
            associated: 0,
            priority: 0,
            flags,
            headers: headers(&[("streamtype", "data")]),
        }
    }

    #[tokio::test]
    async fn a_session_hands_over_streams_echoes_pings_and_carries_data_both_ways() {
        let (mut client, mut streams) = session();
        client.send(syn(1, 0)).await;
        let mut stream = streams.recv().await.unwrap();
        assert_eq!(stream.id, 1);
        assert_eq!(stream.headers.get("streamType"), Some("data"));
        stream.writer.reply().await.unwrap();
        assert!(matches!(
            client.next().await,
            Some(Frame::SynReply { stream: 1, .. })
        ));
        client.send(Frame::Ping { id: 1 }).await;
        assert_eq!(client.next().await, Some(Frame::Ping { id: 1 }));
        client
            .send(Frame::Data {
                stream: 1,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"ping"),
            })
            .await;
        assert_eq!(stream.reader.recv().await.unwrap(), &b"ping"[..]);
        assert!(stream.reader.recv().await.is_none(), "FIN ends the reader");
        stream
            .writer
            .write(Bytes::from_static(b"pong"))
            .await
            .unwrap();
        stream.writer.finish().await;
        assert_eq!(
            client.next().await,
            Some(Frame::Data {
                stream: 1,
                flags: 0,
                data: Bytes::from_static(b"pong")
            })
        );
        assert_eq!(
            client.next().await,
            Some(Frame::Data {
                stream: 1,
                flags: FLAG_FIN,
                data: Bytes::new()
            })
        );
    }

    #[tokio::test]
    async fn streams_out_of_order_are_refused_and_a_reset_stream_takes_no_more_writes() {
        let (mut client, mut streams) = session();
        client.send(syn(3, 0)).await;
        let stream = streams.recv().await.unwrap();
        client.send(syn(1, 0)).await;
        assert_eq!(
            client.next().await,
            Some(Frame::RstStream {
                stream: 1,
                status: rst::PROTOCOL_ERROR
            })
        );
        client.send(syn(4, 0)).await;
        assert_eq!(
            client.next().await,
            Some(Frame::RstStream {
                stream: 4,
                status: rst::PROTOCOL_ERROR
            })
        );
        client
            .send(Frame::RstStream {
                stream: 3,
                status: rst::CANCEL,
            })
            .await;
        // The reset is seen once the session read it: a ping answered comes after it.
        client.send(Frame::Ping { id: 9 }).await;
        assert_eq!(client.next().await, Some(Frame::Ping { id: 9 }));
        assert!(stream.writer.write(Bytes::from_static(b"x")).await.is_err());
    }

    #[tokio::test]
    async fn a_protocol_error_ends_the_session_with_goaway() {
        let (mut client, mut streams) = session();
        use tokio::io::AsyncWriteExt;
        client
            .io
            .write_all(&[0x80, 3, 0, 6, 0, 0, 0, 3, 1, 2, 3])
            .await
            .unwrap();
        assert_eq!(
            client.next().await,
            Some(Frame::GoAway {
                last_good: 0,
                status: goaway::PROTOCOL_ERROR
            })
        );
        assert!(client.next().await.is_none());
        assert!(streams.recv().await.is_none());
    }
}
