//! The `uds` framing (docs/protocol.md, section 4): a 32-byte little-endian header, then the
//! metadata (control frames: a serialized protobuf envelope), then the body (data frames: one
//! Arrow IPC stream).

use std::fmt;

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"QVR1";
/// Bytes in a frame header.
pub const HEADER_SIZE: usize = 32;

/// The kind byte of a frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// One serialized `EngineMessage` / `WorkerMessage` as metadata, no body.
    Control = 1,
    /// One batch: the sequence number in the header, the Arrow IPC stream as body.
    Data = 2,
}

/// The largest metadata and body a receiver accepts (the spec's defaults).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest metadata, in bytes (default 64 MiB).
    pub max_metadata: u64,
    /// Largest body, in bytes (default 2 GiB).
    pub max_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_metadata: 64 << 20,
            max_body: 2 << 30,
        }
    }
}

/// The fields of a header that passed every check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Control or data.
    pub kind: FrameKind,
    /// Data frames: the batch's sequence number; control frames: 0.
    pub sequence: u64,
    /// Bytes of metadata after the header.
    pub metadata_length: u32,
    /// Bytes of body after the metadata.
    pub body_length: u64,
}

/// A header that breaks the framing: the stream has lost its place and cannot be read on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadFrame(pub String);

impl fmt::Display for BadFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadFrame {}

/// Write the 32 header bytes of a frame.
pub fn encode_header(
    kind: FrameKind,
    sequence: u64,
    metadata_length: u32,
    body_length: u64,
) -> [u8; HEADER_SIZE] {
    let mut raw = [0u8; HEADER_SIZE];
    raw[0..4].copy_from_slice(&MAGIC);
    raw[4] = kind as u8;
    raw[8..16].copy_from_slice(&sequence.to_le_bytes());
    raw[16..20].copy_from_slice(&metadata_length.to_le_bytes());
    raw[24..32].copy_from_slice(&body_length.to_le_bytes());
    raw
}

/// Check the 32 header bytes `raw`, saying what is wrong when a check fails.
pub fn parse_header(raw: &[u8; HEADER_SIZE], limits: &Limits) -> Result<FrameHeader, BadFrame> {
    let u16_at = |at: usize| u16::from_le_bytes([raw[at], raw[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
    if raw[0..4] != MAGIC {
        return Err(BadFrame(format!(
            "bad frame magic {:02x?} (expected \"QVR1\"): the peer does not speak the quiver uds \
             framing, or the stream lost its place",
            &raw[0..4]
        )));
    }
    let kind = match raw[4] {
        1 => FrameKind::Control,
        2 => FrameKind::Data,
        other => {
            return Err(BadFrame(format!(
                "unknown frame kind {other} (1 = control, 2 = data)"
            )))
        }
    };
    if raw[5] != 0 {
        return Err(BadFrame(format!(
            "frame flags must be 0, got {:#04x}",
            raw[5]
        )));
    }
    if u16_at(6) != 0 || u32_at(20) != 0 {
        return Err(BadFrame(format!(
            "reserved header fields must be 0, got {:#06x} and {:#010x}",
            u16_at(6),
            u32_at(20)
        )));
    }
    let header = FrameHeader {
        kind,
        sequence: u64_at(8),
        metadata_length: u32_at(16),
        body_length: u64_at(24),
    };
    check_layout(&header)?;
    check_limits(&header, limits)?;
    Ok(header)
}

/// Reject a control frame with a body or a sequence, and a data frame with metadata.
fn check_layout(header: &FrameHeader) -> Result<(), BadFrame> {
    match header.kind {
        FrameKind::Control if header.body_length != 0 => Err(BadFrame(format!(
            "control frame with a body of {} bytes (must be empty)",
            header.body_length
        ))),
        FrameKind::Control if header.sequence != 0 => Err(BadFrame(format!(
            "control frame with sequence {} (must be 0)",
            header.sequence
        ))),
        FrameKind::Data if header.metadata_length != 0 => Err(BadFrame(format!(
            "data frame with {} bytes of metadata (must be empty)",
            header.metadata_length
        ))),
        _ => Ok(()),
    }
}

/// Reject lengths over the receiver's limits.
fn check_limits(header: &FrameHeader, limits: &Limits) -> Result<(), BadFrame> {
    if u64::from(header.metadata_length) > limits.max_metadata {
        return Err(BadFrame(format!(
            "frame metadata of {} bytes is over the limit of {} bytes",
            header.metadata_length, limits.max_metadata
        )));
    }
    if header.body_length > limits.max_body {
        return Err(BadFrame(format!(
            "frame body of {} bytes is over the limit of {} bytes",
            header.body_length, limits.max_body
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: FrameKind, sequence: u64, metadata: u32, body: u64) -> [u8; HEADER_SIZE] {
        encode_header(kind, sequence, metadata, body)
    }

    #[test]
    fn finish_control_frame_matches_the_spec_example() {
        // docs/protocol.md section 4: the control frame of EngineMessage{finish{}}.
        let expected: [u8; 32] = [
            0x51, 0x56, 0x52, 0x31, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(header(FrameKind::Control, 0, 2, 0), expected);
    }

    #[test]
    fn headers_round_trip() {
        let limits = Limits::default();
        let raw = header(FrameKind::Data, 0x0102_0304_0506_0708, 0, 1 << 20);
        let parsed = parse_header(&raw, &limits).unwrap();
        assert_eq!(parsed.kind, FrameKind::Data);
        assert_eq!(parsed.sequence, 0x0102_0304_0506_0708);
        assert_eq!(parsed.body_length, 1 << 20);
        assert_eq!(&raw[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]); // little-endian
    }

    #[test]
    fn every_broken_header_is_rejected_with_its_reason() {
        let limits = Limits::default();
        let cases: Vec<(Box<dyn Fn(&mut [u8; 32])>, &str)> = vec![
            (Box::new(|h| h[0] = b'X'), "bad frame magic"),
            (Box::new(|h| h[4] = 3), "unknown frame kind 3"),
            (Box::new(|h| h[5] = 1), "flags must be 0"),
            (Box::new(|h| h[6] = 1), "reserved header fields"),
            (Box::new(|h| h[20] = 1), "reserved header fields"),
            (Box::new(|h| h[24] = 1), "control frame with a body"),
            (Box::new(|h| h[8] = 1), "control frame with sequence 1"),
            (Box::new(|h| h[19] = 0x10), "over the limit"),
        ];
        for (breaks, reason) in cases {
            let mut raw = header(FrameKind::Control, 0, 2, 0);
            breaks(&mut raw);
            let err = parse_header(&raw, &limits).unwrap_err();
            assert!(err.0.contains(reason), "{err} does not say {reason}");
        }
        let data_with_metadata = header(FrameKind::Data, 1, 4, 8);
        assert!(parse_header(&data_with_metadata, &limits)
            .unwrap_err()
            .0
            .contains("metadata"));
        let huge_body = header(FrameKind::Data, 1, 0, (2 << 30) + 1);
        assert!(parse_header(&huge_body, &limits)
            .unwrap_err()
            .0
            .contains("body of"));
    }
}
