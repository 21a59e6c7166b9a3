//! The `uds` transport: connect to the engine's Unix socket, say `Hello`, and serve executions
//! over frames until the engine closes the connection or says `Shutdown`.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use arrow_buffer::{Buffer, MutableBuffer};
use prost::Message;

use crate::frame::{self, BadFrame, FrameKind, Limits, HEADER_SIZE};
use crate::machine::{message_of, Machine, Peer, State};
use crate::proto::{self, engine_message::Kind as In, worker_message::Kind as Out};
use crate::registry::Registry;
use crate::shm::ShmChannel;

/// Frames read ahead while looking for a `Cancel`; the engine's in-flight window bounds them anyway.
const MAX_READ_AHEAD: usize = 256;
/// Bytes read from the socket at once; bodies larger than what is left go straight to their buffer.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// One whole frame: control frames carry metadata, data frames a body.
#[derive(Debug)]
pub struct Frame {
    /// Control or data.
    pub kind: FrameKind,
    /// Data frames: the batch's sequence number.
    pub sequence: u64,
    /// Control frames: the serialized `EngineMessage`.
    pub metadata: Vec<u8>,
    /// Data frames: the Arrow IPC stream, in a 64-byte aligned buffer.
    pub body: Buffer,
}

/// Why the connection cannot be read on.
#[derive(Debug)]
pub enum ReadError {
    /// A header broke the framing (answered with a `ProtocolError` before the worker exits).
    Bad(BadFrame),
    /// The connection ended inside a frame, or reading failed.
    Lost(io::Error),
}

/// Reads whole frames from a byte stream, through a buffer.
pub struct FrameReader<R> {
    source: R,
    buffer: Box<[u8]>,
    start: usize,
    end: usize,
    limits: Limits,
}

impl<R: Read> FrameReader<R> {
    /// Read frames from `source`, refusing those over `limits`.
    pub fn new(source: R, limits: Limits) -> Self {
        FrameReader {
            source,
            buffer: vec![0; READ_BUFFER_BYTES].into_boxed_slice(),
            start: 0,
            end: 0,
            limits,
        }
    }

    /// Bytes received but not yet handed out.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// The next frame, or `None` when the stream ends at a frame boundary.
    pub fn read_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        let mut raw = [0u8; HEADER_SIZE];
        let got = self.read_up_to(&mut raw).map_err(ReadError::Lost)?;
        if got == 0 {
            return Ok(None);
        }
        if got < HEADER_SIZE {
            return Err(truncated(format!(
                "in a frame header: expected {HEADER_SIZE} bytes, got {got}"
            )));
        }
        let header = frame::parse_header(&raw, &self.limits).map_err(ReadError::Bad)?;
        let mut metadata = vec![0u8; header.metadata_length as usize];
        self.read_part(&mut metadata, "metadata")?;
        let body_length =
            usize::try_from(header.body_length).map_err(|_| truncated("body too large".into()))?;
        // Arrow's allocations are 64-byte aligned, so the IPC reader slices the body in place.
        let mut body = MutableBuffer::from_len_zeroed(body_length);
        self.read_part(body.as_slice_mut(), "body")?;
        Ok(Some(Frame {
            kind: header.kind,
            sequence: header.sequence,
            metadata,
            body: body.into(),
        }))
    }

    fn read_part(&mut self, target: &mut [u8], what: &str) -> Result<(), ReadError> {
        let got = self.read_up_to(target).map_err(ReadError::Lost)?;
        if got < target.len() {
            return Err(truncated(format!(
                "in a frame {what}: expected {} bytes, got {got}",
                target.len()
            )));
        }
        Ok(())
    }

    /// Fill `target` unless the stream ends first; return the bytes filled.
    fn read_up_to(&mut self, target: &mut [u8]) -> io::Result<usize> {
        let mut got = 0;
        while got < target.len() {
            if self.start < self.end {
                let n = (self.end - self.start).min(target.len() - got);
                target[got..got + n].copy_from_slice(&self.buffer[self.start..self.start + n]);
                self.start += n;
                got += n;
                continue;
            }
            let rest = &mut target[got..];
            let read = if rest.len() >= self.buffer.len() {
                retry(|| self.source.read(rest))?
            } else {
                let n = retry(|| self.source.read(&mut self.buffer))?;
                (self.start, self.end) = (0, n);
                if n == 0 {
                    0
                } else {
                    continue;
                }
            };
            if read == 0 {
                break;
            }
            got += read;
        }
        Ok(got)
    }
}

fn truncated(what: String) -> ReadError {
    ReadError::Lost(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("connection closed {what}"),
    ))
}

/// Repeat a read or write interrupted by a signal.
fn retry<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match op() {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Write every byte of `parts` with vectored writes (one `writev` for a whole frame, usually).
pub fn write_all_parts(out: &mut impl Write, parts: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| IoSlice::new(p))
        .collect();
    let mut pending = &mut slices[..];
    while !pending.is_empty() {
        let written = retry(|| out.write_vectored(pending))?;
        if written == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the engine stopped reading",
            ));
        }
        IoSlice::advance_slices(&mut pending, written);
    }
    Ok(())
}

/// A connected `uds` (or `shm`) socket that speaks quiver frames.
pub struct Connection {
    reader: FrameReader<UnixStream>,
    stream: UnixStream,
    ahead: VecDeque<Frame>,
    eof_ahead: bool,
    /// `shm:` endpoints: the engine's arenas follow `Hello`.
    shared_memory: bool,
    shm: Option<ShmChannel>,
}

impl Connection {
    /// Connect to the engine's listening socket at `endpoint` (`unix:/path` or `shm:/path`).
    pub fn connect(endpoint: &str) -> io::Result<Self> {
        let (path, shared_memory) = match endpoint.strip_prefix("shm:") {
            Some(path) if !path.is_empty() => (path, true),
            _ => (unix_socket_path(endpoint)?, false),
        };
        let stream = UnixStream::connect(path)?;
        Ok(Connection {
            reader: FrameReader::new(stream.try_clone()?, Limits::default()),
            stream,
            ahead: VecDeque::new(),
            eof_ahead: false,
            shared_memory,
            shm: None,
        })
    }

    /// Over `shm` (after `Hello`): take the engine's two arenas and answer `ShmReady`
    /// (docs/protocol.md, section 10). Over `uds`: nothing to do.
    pub fn open_shared_memory(&mut self) -> io::Result<()> {
        if !self.shared_memory {
            return Ok(());
        }
        self.shm = Some(ShmChannel::open(&mut self.stream)?);
        self.send(&message_of(Out::ShmReady(proto::ShmReady {})))
    }

    /// The next frame (one read ahead first), or `None` when the engine closed the connection.
    pub fn receive(&mut self) -> Result<Option<Frame>, ReadError> {
        if let Some(frame) = self.ahead.pop_front() {
            return Ok(Some(frame));
        }
        if self.eof_ahead {
            return Ok(None);
        }
        self.reader.read_frame()
    }

    /// Send one `WorkerMessage` as a control frame.
    pub fn send(&mut self, message: &proto::WorkerMessage) -> io::Result<()> {
        let metadata = message.encode_to_vec();
        let length = u32::try_from(metadata.len()).map_err(io::Error::other)?;
        let header = frame::encode_header(FrameKind::Control, 0, length, 0);
        write_all_parts(&mut self.stream, &[&header, &metadata])
    }

    /// Whether bytes (or the end of the stream) wait to be read, without blocking.
    fn readable_now(&self) -> bool {
        if self.reader.buffered() > 0 {
            return true;
        }
        let mut poll = libc::pollfd {
            fd: self.stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, a zero timeout.
        unsafe { libc::poll(&mut poll, 1, 0) > 0 }
    }

    /// Read the frames that already arrived, and tell whether one of them is a `Cancel`.
    fn cancel_waiting(&mut self) -> bool {
        while !self.eof_ahead && self.ahead.len() < MAX_READ_AHEAD && self.readable_now() {
            match self.reader.read_frame() {
                Ok(Some(frame)) => self.ahead.push_back(frame),
                // The error shows again when the frames before it have been handled.
                Ok(None) | Err(_) => break,
            }
        }
        self.ahead
            .iter()
            .any(|f| f.kind == FrameKind::Control && is_cancel(&f.metadata))
    }
}

impl Peer for Connection {
    fn send_message(&mut self, message: proto::WorkerMessage) -> io::Result<()> {
        self.send(&message)
    }

    fn send_data(&mut self, sequence: u64, body: Vec<u8>) -> io::Result<()> {
        if let Some(region) = self.shm.as_mut().and_then(|shm| shm.write(&body)) {
            let data = proto::ShmData {
                sequence,
                region: Some(region),
            };
            return self.send(&message_of(Out::ShmData(data)));
        }
        let header = frame::encode_header(FrameKind::Data, sequence, 0, body.len() as u64);
        write_all_parts(&mut self.stream, &[&header, &body])
    }

    fn cancel_ahead(&mut self) -> bool {
        self.cancel_waiting()
    }
}

fn is_cancel(metadata: &[u8]) -> bool {
    matches!(
        proto::EngineMessage::decode(metadata),
        Ok(proto::EngineMessage {
            kind: Some(In::Cancel(_))
        })
    )
}

/// The socket path of a `unix:/path` (or `unix:///path`) endpoint.
pub fn unix_socket_path(endpoint: &str) -> io::Result<&str> {
    let usage = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("endpoint '{endpoint}' {why}"),
        )
    };
    let path = endpoint.strip_prefix("unix:").ok_or_else(|| {
        usage("is not a uds endpoint: it should look like unix:/path/to/socket (for gRPC, pass --transport grpc)")
    })?;
    let path = path.strip_prefix("//").unwrap_or(path);
    if path.is_empty() {
        return Err(usage("names no socket path"));
    }
    Ok(path)
}

/// How serving a connection ended.
#[derive(Debug)]
pub enum Ending {
    /// `Shutdown`, or the engine closed the connection at a frame boundary: exit 0.
    Done,
    /// The connection broke or lost its place: exit 1.
    Lost(String),
}

/// Serve executions on `conn` (whose `Hello` was sent) until it ends.
pub fn serve_connection(conn: &mut Connection, registry: Arc<Registry>) -> Ending {
    let mut machine = Machine::new(registry);
    loop {
        let frame = match conn.receive() {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ending::Done,
            Err(ReadError::Bad(bad)) => {
                // The stream has lost its place: say why, then leave (the engine discards us).
                let error = crate::execution::Failure::Protocol(bad.0.clone()).to_proto(None);
                let _ = conn.send(&message_of(Out::Error(error)));
                return Ending::Lost(bad.0);
            }
            Err(ReadError::Lost(err)) => return Ending::Lost(err.to_string()),
        };
        match handle_frame(&mut machine, conn, frame) {
            Ok(true) => {}
            Ok(false) => return Ending::Done,
            Err(err) => return Ending::Lost(err.to_string()),
        }
    }
}

/// Handle one frame; `Ok(false)` when the worker must exit (after `Shutdown`).
fn handle_frame(machine: &mut Machine, conn: &mut Connection, frame: Frame) -> io::Result<bool> {
    if frame.kind == FrameKind::Data {
        machine.on_batch(frame.sequence, frame.body, conn)?;
        return Ok(true);
    }
    let message = match proto::EngineMessage::decode(frame.metadata.as_slice()) {
        Ok(message) => message,
        Err(err) => {
            machine.reject(
                &format!("a control frame does not hold an EngineMessage: {err}"),
                None,
                conn,
            )?;
            return Ok(true);
        }
    };
    match message.kind {
        Some(In::Data(_)) => {
            machine.reject(
                "EngineMessage.data must not be sent over uds; batches travel as data frames",
                None,
                conn,
            )?;
        }
        // Over shm: a batch read in place (the worker's until it answered it), and regions the
        // engine gives back, applied at once without an answer. Over uds the machine refuses both.
        Some(In::ShmData(data)) if conn.shm.is_some() => {
            let body = conn.shm.as_ref().map(|shm| shm.input(&data));
            match body.expect("checked above") {
                Ok(body) => machine.on_batch(data.sequence, body, conn)?,
                Err(why) => machine.reject(&why, Some(data.sequence), conn)?,
            }
        }
        Some(In::ShmRelease(release)) if conn.shm.is_some() => {
            if let Some(shm) = conn.shm.as_mut() {
                shm.release(&release);
            }
        }
        Some(In::Shutdown(shutdown)) => {
            if machine.state() != State::Idle && !shutdown.cancel_running {
                machine.reject(
                    "Shutdown during an execution (set cancel_running to stop it)",
                    None,
                    conn,
                )?;
                return Ok(true);
            }
            conn.send(&message_of(Out::Shutdown(shutdown)))?;
            return Ok(false);
        }
        _ => machine.handle(message, conn)?,
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(message: &proto::EngineMessage) -> Vec<u8> {
        let metadata = message.encode_to_vec();
        let mut bytes =
            frame::encode_header(FrameKind::Control, 0, metadata.len() as u32, 0).to_vec();
        bytes.extend_from_slice(&metadata);
        bytes
    }

    /// A reader that hands out at most `step` bytes per read, as a socket may.
    struct Trickle(Vec<u8>, usize, usize);

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.2.min(out.len()).min(self.0.len() - self.1);
            out[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
            self.1 += n;
            Ok(n)
        }
    }

    #[test]
    fn frames_are_read_whole_from_any_split_of_the_stream() {
        let finish = proto::EngineMessage {
            kind: Some(In::Finish(proto::Finish {})),
        };
        let mut bytes = control(&finish);
        let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        bytes.extend_from_slice(&frame::encode_header(
            FrameKind::Data,
            7,
            0,
            body.len() as u64,
        ));
        bytes.extend_from_slice(&body);
        for step in [1, 7, 32, 4096, 1 << 20] {
            let mut reader = FrameReader::new(Trickle(bytes.clone(), 0, step), Limits::default());
            let first = reader.read_frame().unwrap().unwrap();
            assert_eq!(
                proto::EngineMessage::decode(first.metadata.as_slice()).unwrap(),
                finish
            );
            let second = reader.read_frame().unwrap().unwrap();
            assert_eq!((second.kind, second.sequence), (FrameKind::Data, 7));
            assert_eq!(second.body.as_slice(), body.as_slice());
            assert_eq!(
                second.body.as_ptr() as usize % 64,
                0,
                "bodies are 64-byte aligned"
            );
            assert!(
                reader.read_frame().unwrap().is_none(),
                "EOF at a frame boundary"
            );
        }
    }

    #[test]
    fn a_stream_ending_inside_a_frame_is_truncated() {
        let finish = proto::EngineMessage {
            kind: Some(In::Finish(proto::Finish {})),
        };
        let bytes = control(&finish);
        for cut in [5, HEADER_SIZE, bytes.len() - 1] {
            let mut reader =
                FrameReader::new(Trickle(bytes[..cut].to_vec(), 0, 3), Limits::default());
            match reader.read_frame() {
                Err(ReadError::Lost(err)) => {
                    assert!(err.to_string().contains("connection closed in a frame"))
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_bad_header_is_a_bad_frame() {
        let mut reader = FrameReader::new(
            Trickle(b"GET / HTTP/1.1\r\n".repeat(2), 0, 64),
            Limits::default(),
        );
        assert!(
            matches!(reader.read_frame(), Err(ReadError::Bad(b)) if b.0.contains("bad frame magic"))
        );
    }

    #[test]
    fn vectored_writes_survive_short_writes() {
        struct Short(Vec<u8>);
        impl Write for Short {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let n = buf.len().min(3);
                self.0.extend_from_slice(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut out = Short(Vec::new());
        write_all_parts(&mut out, &[b"header", b"", b"metadata"]).unwrap();
        assert_eq!(out.0, b"headermetadata");
    }

    #[test]
    fn endpoints() {
        assert_eq!(unix_socket_path("unix:/tmp/s").unwrap(), "/tmp/s");
        assert_eq!(unix_socket_path("unix:///tmp/s").unwrap(), "/tmp/s");
        assert!(unix_socket_path("grpc+unix:/tmp/s").is_err());
        assert!(unix_socket_path("unix:").is_err());
    }
}
