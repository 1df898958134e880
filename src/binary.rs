//! The compact binary form of a record, for the pipe and network transports.
//!
//! A frame is a 6-byte header — magic `TD`, format version, flags, body
//! length (u16 little-endian) — then the record as a MessagePack array in
//! field order. The length lets a stream reader (the FIFO is a byte stream)
//! split frames, skip a frame it cannot read, and resynchronise on the magic
//! after garbage. Decoding never panics on foreign bytes.

use crate::record::Record;
use std::fmt;

pub const MAGIC: [u8; 2] = *b"TD";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 6;
/// The largest frame: one atomic write to a pipe (PIPE_BUF) must hold it.
pub const MAX_FRAME: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryError {
    /// Not enough bytes yet for a whole frame; read more.
    Incomplete,
    BadMagic,
    UnsupportedVersion(u8),
    TooLong(usize),
    Body(String),
}

impl fmt::Display for BinaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Incomplete => f.write_str("frame is incomplete"),
            Self::BadMagic => f.write_str("frame does not start with the TD magic"),
            Self::UnsupportedVersion(v) => write!(f, "frame format version {v} is not supported"),
            Self::TooLong(n) => write!(f, "record of {n} bytes exceeds {MAX_FRAME}"),
            Self::Body(e) => write!(f, "record body does not decode: {e}"),
        }
    }
}

impl std::error::Error for BinaryError {}

/// Encodes one frame. A record too large for one atomic write (a huge user
/// agent or path) is refused rather than split.
pub fn encode(r: &Record) -> Result<Vec<u8>, BinaryError> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, 0, 0, 0]);
    // Writing plain fields into a Vec cannot fail.
    let _ = rmp_serde::encode::write(&mut out, r);
    if out.len() > MAX_FRAME {
        return Err(BinaryError::TooLong(out.len()));
    }
    let body = (out.len() - HEADER_LEN) as u16;
    out[4..6].copy_from_slice(&body.to_le_bytes());
    Ok(out)
}

/// Reads the frame at the start of `buf`. Returns how many bytes it spans
/// (to consume even when the record is rejected) and the record.
/// `Err(Incomplete)` consumes nothing; `BadMagic` means "skip to the next
/// `TD`" (see [`resync`]).
pub fn decode_frame(buf: &[u8]) -> (usize, Result<Record, BinaryError>) {
    if buf.len() < HEADER_LEN {
        return (0, Err(BinaryError::Incomplete));
    }
    if buf[..2] != MAGIC {
        return (0, Err(BinaryError::BadMagic));
    }
    let len = HEADER_LEN + usize::from(u16::from_le_bytes([buf[4], buf[5]]));
    if len > MAX_FRAME {
        return (0, Err(BinaryError::BadMagic));
    }
    if buf.len() < len {
        return (0, Err(BinaryError::Incomplete));
    }
    if buf[2] != VERSION {
        return (len, Err(BinaryError::UnsupportedVersion(buf[2])));
    }
    let mut body = &buf[HEADER_LEN..len];
    let result = rmp_serde::decode::from_read::<_, Record>(&mut body)
        .map_err(|e| BinaryError::Body(e.to_string()))
        .and_then(|r| {
            if body.is_empty() {
                Ok(r)
            } else {
                Err(BinaryError::Body(format!("{} trailing bytes", body.len())))
            }
        });
    (len, result)
}

/// Where the next candidate frame starts after garbage at `buf[0]`: the
/// next `TD` past the first byte, or the end.
pub fn resync(buf: &[u8]) -> usize {
    buf.windows(2)
        .skip(1)
        .position(|w| w == MAGIC)
        .map_or(buf.len().saturating_sub(1).max(1).min(buf.len()), |p| p + 1)
}

/// Decodes a buffer that must hold exactly one frame (a datagram).
pub fn decode(bytes: &[u8]) -> Result<Record, BinaryError> {
    match decode_frame(bytes) {
        (n, Ok(r)) if n == bytes.len() => Ok(r),
        (n, Ok(_)) => Err(BinaryError::Body(format!(
            "{} trailing bytes",
            bytes.len() - n
        ))),
        (_, Err(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::sample;

    fn frame(status: u16) -> Vec<u8> {
        encode(&sample(status)).expect("sample fits")
    }

    #[test]
    fn round_trips_and_is_smaller_than_the_line() {
        let r = sample(503);
        let bytes = frame(503);
        assert_eq!(&bytes[..4], b"TD\x01\x00");
        assert_eq!(
            usize::from(u16::from_le_bytes([bytes[4], bytes[5]])),
            bytes.len() - 6
        );
        assert_eq!(decode(&bytes).expect("own bytes decode"), r);
        let line = crate::fallback::encode(&r);
        assert!(
            bytes.len() * 2 < line.len(),
            "{} vs {}",
            bytes.len(),
            line.len()
        );
    }

    #[test]
    fn exact_size_of_the_sample() {
        // 170 before the three propagation strings, each empty: one byte;
        // then one for the empty header-tag map.
        assert_eq!(frame(200).len(), 174);
    }

    #[test]
    fn round_trips_propagation_fields() {
        let mut r = sample(200);
        r.origin = "synthetics".into();
        r.propagation_error = "decoding_error".into();
        r.propagation_tags = "_dd.p.usr.id=a=b".into();
        r.header_tags
            .insert("http.request_id".into(), "abc,def".into());
        assert_eq!(decode(&encode(&r).expect("fits")).expect("decodes"), r);
    }

    #[test]
    fn reads_frames_written_before_the_propagation_fields() {
        // The record array had 24 elements (array16 header `dc 00 18`); the
        // three empty strings at its end are `a0 a0 a0`.
        let new = frame(200);
        assert_eq!(&new[6..9], &[0xdc, 0x00, 28]);
        assert_eq!(&new[new.len() - 4..], &[0xa0, 0xa0, 0xa0, 0x80]);
        let mut old = new[..new.len() - 4].to_vec();
        old[8] = 24;
        let body = (old.len() - HEADER_LEN) as u16;
        old[4..6].copy_from_slice(&body.to_le_bytes());
        assert_eq!(decode(&old).expect("old frame decodes"), sample(200));
    }

    #[test]
    fn refuses_records_larger_than_one_atomic_write() {
        let mut r = sample(200);
        r.user_agent = "x".repeat(5000);
        assert!(matches!(encode(&r), Err(BinaryError::TooLong(n)) if n > 5000));
    }

    #[test]
    fn splits_a_stream_of_frames() {
        let mut stream = frame(200);
        stream.extend(frame(503));
        let (n1, r1) = decode_frame(&stream);
        assert_eq!(r1.expect("first").status, 200);
        let (n2, r2) = decode_frame(&stream[n1..]);
        assert_eq!(r2.expect("second").status, 503);
        assert_eq!(n1 + n2, stream.len());
        assert_eq!(
            decode_frame(&stream[..n1 - 1]),
            (0, Err(BinaryError::Incomplete))
        );
    }

    #[test]
    fn resyncs_after_garbage() {
        let mut stream = b"garbageT".to_vec();
        stream.extend(frame(404));
        assert_eq!(decode_frame(&stream).1, Err(BinaryError::BadMagic));
        let skip = resync(&stream);
        assert_eq!(skip, 8);
        assert_eq!(
            decode_frame(&stream[skip..])
                .1
                .expect("frame after garbage")
                .status,
            404
        );
        assert_eq!(resync(b"xyz"), 2);
        assert_eq!(resync(b"x"), 1);
    }

    #[test]
    fn rejects_foreign_bytes_without_panicking() {
        assert_eq!(decode(b"TD"), Err(BinaryError::Incomplete));
        assert_eq!(
            decode(b"XX\x01\x00\x01\x00\x90"),
            Err(BinaryError::BadMagic)
        );
        assert_eq!(
            decode(b"TD\x09\x00\x01\x00\x90"),
            Err(BinaryError::UnsupportedVersion(9))
        );
        assert!(matches!(
            decode(b"TD\x01\x00\x01\x00\x90"),
            Err(BinaryError::Body(_))
        ));
        let mut bytes = frame(200);
        bytes.push(0);
        assert_eq!(
            decode(&bytes),
            Err(BinaryError::Body("1 trailing bytes".into()))
        );
        let full = frame(200);
        for cut in 0..full.len() {
            assert!(
                decode(&full[..cut]).is_err(),
                "truncated at {cut} must fail"
            );
        }
        // A body that lies about its length by one byte.
        let mut short = frame(200);
        short[4] -= 1;
        assert!(decode(&short).is_err());
    }
}
