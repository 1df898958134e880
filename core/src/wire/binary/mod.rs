//! The compact binary form of a record, for the pipe and network transports.
//!
//! A frame is a 6-byte header — magic `TD`, format version, flags, body
//! length (u16 little-endian) — then the record as a MessagePack array in
//! field order. The length lets a stream reader (the FIFO is a byte stream)
//! split frames, skip a frame it cannot read, and resynchronise on the magic
//! after garbage. Decoding never panics on foreign bytes.
//!
//! Flags: [`FLAG_CHECKSUM`] appends a CRC-32 of header and body after the
//! body (not counted in the length), for datagrams that Traefik's socket
//! extension may corrupt. [`FLAG_AFTER_STRAY_PROBE`] changes nothing in the
//! layout: it tells the receiver that the empty probe sent just before this
//! frame went out carrying another instance's bytes. [`FLAG_MAC`] puts a
//! 16-byte keyed MAC ([`crate::wire::mac`]) of header and body after the body:
//! the relay's `--udp-secret` input accepts only frames whose MAC its key
//! reproduces. Readers without a key skip the MAC.
//!
//! Layout: header, body, [MAC if `FLAG_MAC`], [CRC-32 if `FLAG_CHECKSUM`].
//! The CRC covers everything before it, MAC included, so bytes the host
//! race changed anywhere fail the checksum (`corrupted`), and a frame that
//! passes it with a wrong MAC was made without the secret (`unauthenticated`).

use crate::record::Record;
use crate::wire::mac::{MAC_LEN, MacKey};
use std::fmt;

/// The body's encoder; readers decode it with rmp-serde.
mod msgpack;

/// A bound on a record's frame body, never below its encoded size.
pub use msgpack::bound as encoded_upper_bound;

pub const MAGIC: [u8; 2] = *b"TD";
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 6;
/// The largest frame: one atomic write to a pipe (PIPE_BUF) must hold it.
pub const MAX_FRAME: usize = 4096;
pub const FLAG_CHECKSUM: u8 = 0x01;
/// The sender's probe datagram, meant to be empty, carried a sibling's bytes
/// (the host race of traefik#11629): the receiver saw one stray datagram
/// that stands for no lost record.
pub const FLAG_AFTER_STRAY_PROBE: u8 = 0x02;
/// A keyed MAC follows the checksum (see [`encode_sealed`]).
pub const FLAG_MAC: u8 = 0x04;
pub const CHECKSUM_LEN: usize = 4;

/// Bytes after the body that `flags` call for.
fn trailer_len(flags: u8) -> usize {
    (if flags & FLAG_CHECKSUM != 0 {
        CHECKSUM_LEN
    } else {
        0
    }) + if flags & FLAG_MAC != 0 { MAC_LEN } else { 0 }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BinaryError {
    /// Not enough bytes yet for a whole frame; read more.
    Incomplete,
    BadMagic,
    UnsupportedVersion(u8),
    TooLong(usize),
    Body(String),
    /// The CRC-32 does not match: the bytes changed on the way.
    Checksum,
    /// The reader holds a key and the frame carries no MAC.
    MissingMac,
    /// The frame's MAC is not the one the reader's key gives: made without
    /// the secret, or with another one.
    BadMac,
}

impl fmt::Display for BinaryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Incomplete => f.write_str("frame is incomplete"),
            Self::BadMagic => f.write_str("frame does not start with the TD magic"),
            Self::UnsupportedVersion(v) => write!(f, "frame format version {v} is not supported"),
            Self::TooLong(n) => write!(f, "record of {n} bytes exceeds {MAX_FRAME}"),
            Self::Body(e) => write!(f, "record body does not decode: {e}"),
            Self::Checksum => f.write_str("frame checksum does not match its bytes"),
            Self::MissingMac => f.write_str("frame carries no MAC and a secret is configured"),
            Self::BadMac => f.write_str("frame MAC does not match the configured secret"),
        }
    }
}

impl std::error::Error for BinaryError {}

/// Encodes one frame. A record too large for one atomic write (a huge user
/// agent or path) is refused rather than split.
pub fn encode(r: &Record) -> Result<Vec<u8>, BinaryError> {
    encode_with(r, 0)
}

/// Encodes one frame with `flags`; [`FLAG_CHECKSUM`] appends the CRC.
/// [`FLAG_MAC`] needs a key: see [`encode_sealed`]; here it is ignored.
pub fn encode_with(r: &Record, flags: u8) -> Result<Vec<u8>, BinaryError> {
    encode_keyed(r, flags & !FLAG_MAC, None)
}

/// Encodes one frame with `flags` and a MAC under `key` ([`FLAG_MAC`]).
pub fn encode_sealed(r: &Record, flags: u8, key: &MacKey) -> Result<Vec<u8>, BinaryError> {
    encode_keyed(r, flags | FLAG_MAC, Some(key))
}

fn encode_keyed(r: &Record, flags: u8, key: Option<&MacKey>) -> Result<Vec<u8>, BinaryError> {
    let mut out = Vec::with_capacity(HEADER_LEN + msgpack::bound(r) + trailer_len(flags));
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, flags, 0, 0]);
    msgpack::write(&mut out, r);
    let total = out.len() + trailer_len(flags);
    if total > MAX_FRAME {
        return Err(BinaryError::TooLong(total));
    }
    let body = (out.len() - HEADER_LEN) as u16;
    out[4..6].copy_from_slice(&body.to_le_bytes());
    if let Some(key) = key {
        let mac = key.mac(&out);
        out.extend_from_slice(&mac);
    }
    if flags & FLAG_CHECKSUM != 0 {
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
    }
    Ok(out)
}

/// Where the body ends, if `frame` is one whole frame.
fn body_end(frame: &[u8]) -> Option<usize> {
    if frame.len() < HEADER_LEN || frame[..2] != MAGIC {
        return None;
    }
    let end = HEADER_LEN + usize::from(u16::from_le_bytes([frame[4], frame[5]]));
    (end + trailer_len(frame[3]) == frame.len()).then_some(end)
}

/// Sets `flag` on an encoded frame in place, keeping its checksum valid
/// (a MAC is not: see [`set_flag_sealed`]). Bytes that are not one whole
/// frame are left alone.
pub fn set_flag(frame: &mut [u8], flag: u8) {
    set_flag_keyed(frame, flag, None);
}

/// As [`set_flag`] on a frame made by [`encode_sealed`], renewing its MAC.
pub fn set_flag_sealed(frame: &mut [u8], flag: u8, key: &MacKey) {
    set_flag_keyed(frame, flag, Some(key));
}

fn set_flag_keyed(frame: &mut [u8], flag: u8, key: Option<&MacKey>) {
    let Some(end) = body_end(frame) else {
        return;
    };
    // Only flags that leave the layout as it is.
    frame[3] |= flag & !(FLAG_CHECKSUM | FLAG_MAC);
    if let Some(key) = key.filter(|_| frame[3] & FLAG_MAC != 0) {
        let mac = key.mac(&frame[..end]);
        frame[end..end + MAC_LEN].copy_from_slice(&mac);
    }
    if frame[3] & FLAG_CHECKSUM != 0 {
        let at = frame.len() - CHECKSUM_LEN;
        let crc = crc32(&frame[..at]);
        frame[at..].copy_from_slice(&crc.to_le_bytes());
    }
}

/// CRC-32 (IEEE 802.3, as zlib), a byte per step through a 1 KiB table
/// built at compile time (linked into the socket build only). Bit by bit it
/// cost ~1 us per frame, paid on Traefik's threads by the guest and again by
/// the relay; this is about half. Four bytes per step would halve it again,
/// but its 4 KiB of tables moved the guest's heap start enough to cost each
/// instance ~350 KiB more of Traefik's memory (measured: a c=256 burst left
/// Traefik at 321-327 MiB instead of 221-249).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in bytes {
        crc = CRC_TABLE[usize::from(crc as u8 ^ *b)] ^ (crc >> 8);
    }
    !crc
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = (c >> 1) ^ (0xedb8_8320 & (c & 1).wrapping_neg());
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

/// Reads the frame at the start of `buf`. Returns how many bytes it spans
/// (to consume even when the record is rejected) and the record.
/// `Err(Incomplete)` consumes nothing; `BadMagic` means "skip to the next
/// `TD`" (see [`resync`]).
pub fn decode_frame(buf: &[u8]) -> (usize, Result<Record, BinaryError>) {
    let (n, r) = decode_frame_flags(buf);
    (n, r.map(|(r, _)| r))
}

/// As [`decode_frame`], with the frame's flags; a checksummed frame is
/// verified, a MAC is skipped.
pub fn decode_frame_flags(buf: &[u8]) -> (usize, Result<(Record, u8), BinaryError>) {
    decode_frame_keyed(buf, None)
}

/// As [`decode_frame_flags`]; with a key, a frame is read only if it
/// carries a MAC and that MAC is right (checked after the checksum, so
/// bytes changed on the way still count as [`BinaryError::Checksum`], and
/// before the body is parsed).
pub fn decode_frame_keyed(
    buf: &[u8],
    key: Option<&MacKey>,
) -> (usize, Result<(Record, u8), BinaryError>) {
    if buf.len() < HEADER_LEN {
        return (0, Err(BinaryError::Incomplete));
    }
    if buf[..2] != MAGIC {
        return (0, Err(BinaryError::BadMagic));
    }
    let flags = buf[3];
    let body_end = HEADER_LEN + usize::from(u16::from_le_bytes([buf[4], buf[5]]));
    let len = body_end + trailer_len(flags);
    if len > MAX_FRAME {
        return (0, Err(BinaryError::BadMagic));
    }
    if buf.len() < len {
        return (0, Err(BinaryError::Incomplete));
    }
    if buf[2] != VERSION {
        return (len, Err(BinaryError::UnsupportedVersion(buf[2])));
    }
    if flags & FLAG_CHECKSUM != 0 {
        let at = len - CHECKSUM_LEN;
        let mut want = [0u8; CHECKSUM_LEN];
        want.copy_from_slice(&buf[at..len]);
        if crc32(&buf[..at]) != u32::from_le_bytes(want) {
            return (len, Err(BinaryError::Checksum));
        }
    }
    if let Some(key) = key {
        if flags & FLAG_MAC == 0 {
            return (len, Err(BinaryError::MissingMac));
        }
        if !key.verify(&buf[..body_end], &buf[body_end..body_end + MAC_LEN]) {
            return (len, Err(BinaryError::BadMac));
        }
    }
    let mut body = &buf[HEADER_LEN..body_end];
    let result = rmp_serde::decode::from_read::<_, Record>(&mut body)
        .map_err(|e| BinaryError::Body(e.to_string()))
        .and_then(|r| {
            if body.is_empty() {
                Ok((r, flags))
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
    decode_flags(bytes).map(|(r, _)| r)
}

/// As [`decode`], with the frame's flags.
pub fn decode_flags(bytes: &[u8]) -> Result<(Record, u8), BinaryError> {
    decode_verified(bytes, None)
}

/// As [`decode_flags`]; with a key, only a frame with the right MAC.
pub fn decode_verified(bytes: &[u8], key: Option<&MacKey>) -> Result<(Record, u8), BinaryError> {
    match decode_frame_keyed(bytes, key) {
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
    use crate::record::sample::record as sample;

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
        let line = crate::wire::fallback::encode(&r);
        assert!(
            bytes.len() * 2 < line.len(),
            "{} vs {}",
            bytes.len(),
            line.len()
        );
    }

    #[test]
    fn crc32_known_values() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b"a"), 0xe8b7_be43);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414f_a339
        );
        assert_eq!((CRC_TABLE[1], CRC_TABLE[255]), (0x7707_3096, 0x2d02_ef8d));
        // Agrees with the bitwise definition at every length.
        let data: Vec<u8> = (0..40u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..=data.len() {
            assert_eq!(crc32(&data[..n]), bitwise_crc32(&data[..n]), "length {n}");
        }
    }

    fn bitwise_crc32(bytes: &[u8]) -> u32 {
        let mut crc = !0u32;
        for b in bytes {
            crc ^= u32::from(*b);
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
            }
        }
        !crc
    }

    #[test]
    fn checksummed_frames_round_trip_and_catch_every_flipped_bit() {
        let r = sample(503);
        let f = encode_with(&r, FLAG_CHECKSUM).expect("fits");
        assert_eq!(f.len(), frame(503).len() + 4);
        assert_eq!(f[3], 0x01);
        assert_eq!(decode_flags(&f), Ok((r.clone(), 0x01)));
        for i in 0..f.len() {
            for bit in 0..8 {
                let mut bad = f.clone();
                bad[i] ^= 1 << bit;
                // A flipped bit is caught by the checksum, or breaks the
                // header so the frame is not read at all.
                assert_ne!(
                    decode_flags(&bad).map(|(r, _)| r),
                    Ok(r.clone()),
                    "byte {i} bit {bit}"
                );
            }
        }
        // A sibling's bytes in our datagram: the checksum no longer matches.
        let mut spliced = f.clone();
        let other = encode_with(&sample(200), FLAG_CHECKSUM).expect("fits");
        let at = (HEADER_LEN..f.len())
            .find(|i| f[*i] != other[*i])
            .expect("the samples differ");
        spliced[at..at + 2].copy_from_slice(&other[at..at + 2]);
        assert_eq!(decode_flags(&spliced), Err(BinaryError::Checksum));
    }

    #[test]
    fn a_flag_set_in_place_keeps_the_checksum_valid() {
        let r = sample(503);
        let mut f = encode_with(&r, FLAG_CHECKSUM).expect("fits");
        let len = f.len();
        set_flag(&mut f, FLAG_AFTER_STRAY_PROBE);
        assert_eq!(f.len(), len);
        assert_eq!(f[3], FLAG_CHECKSUM | FLAG_AFTER_STRAY_PROBE);
        assert_eq!(
            decode_flags(&f),
            Ok((r.clone(), FLAG_CHECKSUM | FLAG_AFTER_STRAY_PROBE))
        );
        let mut plain = frame(503);
        set_flag(&mut plain, FLAG_AFTER_STRAY_PROBE);
        assert_eq!(decode_flags(&plain), Ok((r, FLAG_AFTER_STRAY_PROBE)));
        // Not a frame: untouched.
        let mut junk = *b"xy\x01\x00\x00\x00";
        set_flag(&mut junk, FLAG_AFTER_STRAY_PROBE);
        assert_eq!(&junk, b"xy\x01\x00\x00\x00");
        let mut empty: [u8; 0] = [];
        set_flag(&mut empty, FLAG_AFTER_STRAY_PROBE);
    }

    fn key(secret_char: char) -> MacKey {
        MacKey::from_secret(&secret_char.to_string().repeat(32)).expect("valid secret")
    }

    #[test]
    fn sealed_frames_need_the_right_key() {
        let r = sample(503);
        let k = key('k');
        let f = encode_sealed(&r, FLAG_CHECKSUM, &k).expect("fits");
        let plain = encode_with(&r, FLAG_CHECKSUM).expect("fits");
        assert_eq!(f.len(), plain.len() + MAC_LEN);
        assert_eq!(f[3], FLAG_CHECKSUM | FLAG_MAC);
        let flags = FLAG_CHECKSUM | FLAG_MAC;
        assert_eq!(decode_verified(&f, Some(&k)), Ok((r.clone(), flags)));
        // Without a key the MAC is skipped: old readers' behaviour.
        assert_eq!(decode_flags(&f), Ok((r.clone(), flags)));
        assert_eq!(
            decode_verified(&f, Some(&key('x'))),
            Err(BinaryError::BadMac)
        );
        assert_eq!(
            decode_verified(&plain, Some(&k)),
            Err(BinaryError::MissingMac)
        );
        // A forger who sets the flag, puts 16 bytes of its choice and a
        // correct checksum.
        let mut forged = plain[..plain.len() - CHECKSUM_LEN].to_vec();
        forged[3] |= FLAG_MAC;
        forged.extend_from_slice(&[0u8; MAC_LEN]);
        let crc = crc32(&forged);
        forged.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_verified(&forged, Some(&k)), Err(BinaryError::BadMac));
        // A changed byte anywhere, MAC included: the checksum sees it first
        // (corruption on the way, not a forgery).
        for i in [
            10,
            f.len() - CHECKSUM_LEN - 1,
            f.len() - CHECKSUM_LEN - MAC_LEN,
        ] {
            let mut bad = f.clone();
            bad[i] ^= 0x20;
            assert_eq!(
                decode_verified(&bad, Some(&k)),
                Err(BinaryError::Checksum),
                "{i}"
            );
        }
        // Every MAC byte counts once the checksum is right.
        let mac_at = f.len() - CHECKSUM_LEN - MAC_LEN;
        for i in mac_at..mac_at + MAC_LEN {
            let mut bad = f[..f.len() - CHECKSUM_LEN].to_vec();
            bad[i] ^= 0x01;
            let crc = crc32(&bad);
            bad.extend_from_slice(&crc.to_le_bytes());
            assert_eq!(decode_verified(&bad, Some(&k)), Err(BinaryError::BadMac));
        }
        // Without a checksum too.
        let bare = encode_sealed(&r, 0, &k).expect("fits");
        assert_eq!(decode_verified(&bare, Some(&k)), Ok((r.clone(), FLAG_MAC)));
        assert!(decode_verified(&bare[..bare.len() - 1], Some(&k)).is_err());
        assert_eq!(
            encode_with(&r, FLAG_MAC).expect("fits"),
            encode(&r).expect("fits"),
            "no key, no MAC"
        );
    }

    #[test]
    fn any_flags_any_cut_never_panics_and_never_verifies() {
        let k = key('k');
        let r = sample(200);
        let f = encode_sealed(&r, FLAG_CHECKSUM, &k).expect("fits");
        for flags in 0..=255u8 {
            let mut g = f.clone();
            g[3] = flags;
            for cut in [g.len(), g.len() - 1, g.len() - 4, g.len() - MAC_LEN - 4] {
                let _ = decode_flags(&g[..cut]);
                let _ = decode_frame(&g[..cut]);
                let got = decode_verified(&g[..cut], Some(&k));
                // Only the frame as sealed (and flags that change no byte it covers) passes.
                assert!(
                    got.is_err() || (flags == f[3] && cut == g.len()),
                    "flags {flags:#x} cut {cut}"
                );
            }
        }
        // Pseudo-random bytes behind a valid-looking header.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for n in 0..2000usize {
            let mut g = b"TD\x01".to_vec();
            for _ in 0..(n % 300) + 3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                g.push(x as u8);
            }
            assert!(decode_verified(&g, Some(&k)).is_err());
            let _ = decode_flags(&g);
        }
    }

    #[test]
    fn a_flag_set_on_a_sealed_frame_renews_the_mac() {
        let r = sample(200);
        let k = key('k');
        let mut f = encode_sealed(&r, FLAG_CHECKSUM, &k).expect("fits");
        let mut unsealed = f.clone();
        set_flag_sealed(&mut f, FLAG_AFTER_STRAY_PROBE, &k);
        let all = FLAG_CHECKSUM | FLAG_MAC | FLAG_AFTER_STRAY_PROBE;
        assert_eq!(decode_verified(&f, Some(&k)), Ok((r.clone(), all)));
        // set_flag alone keeps the checksum but not the MAC.
        set_flag(&mut unsealed, FLAG_AFTER_STRAY_PROBE);
        assert_eq!(decode_flags(&unsealed), Ok((r, all)));
        assert_eq!(
            decode_verified(&unsealed, Some(&k)),
            Err(BinaryError::BadMac)
        );
        // Layout flags cannot be set in place.
        let mut plain = frame(200);
        set_flag(&mut plain, FLAG_MAC | FLAG_CHECKSUM);
        assert_eq!(plain[3], 0);
    }

    #[test]
    fn a_stream_reader_skips_sealed_frames_whole() {
        let k = key('k');
        let mut stream = encode_sealed(&sample(200), FLAG_CHECKSUM, &k).expect("fits");
        stream.extend(frame(404));
        let (n, r) = decode_frame(&stream);
        assert_eq!(r.expect("sealed").status, 200);
        assert_eq!(decode_frame(&stream[n..]).1.expect("next").status, 404);
    }

    #[test]
    fn exact_size_of_the_sample() {
        // 170 before the three propagation strings, each empty: one byte;
        // then one for the empty header-tag map and one for metrics_sent,
        // then a nil each for the unknown size and gRPC status, then one
        // each for no recovered call and no unread value, then one for the
        // empty map of tags.
        assert_eq!(frame(200).len(), 180);
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
        // three empty strings at its end are `a0 a0 a0`; the fields after
        // them are an empty map, false, two nils and two zeros.
        let new = frame(200);
        assert_eq!(&new[6..9], &[0xdc, 0x00, 34]);
        assert_eq!(
            &new[new.len() - 10..],
            &[0xa0, 0xa0, 0xa0, 0x80, 0xc2, 0xc0, 0xc0, 0x00, 0x00, 0x80]
        );
        let mut old = new[..new.len() - 10].to_vec();
        old[8] = 24;
        let body = (old.len() - HEADER_LEN) as u16;
        old[4..6].copy_from_slice(&body.to_le_bytes());
        assert_eq!(decode(&old).expect("old frame decodes"), sample(200));
    }

    #[test]
    fn reads_frames_written_before_the_guest_counts() {
        // 31 elements: no recovered calls, no unread values, no tags.
        let mut old = frame(200);
        old.truncate(old.len() - 3);
        old[8] = 31;
        let body = (old.len() - HEADER_LEN) as u16;
        old[4..6].copy_from_slice(&body.to_le_bytes());
        assert_eq!(decode(&old).expect("old frame decodes"), sample(200));
    }

    #[test]
    fn reads_frames_written_before_the_tags() {
        // 33 elements: the frame as it was before `tags`.
        let mut old = frame(200);
        old.truncate(old.len() - 1);
        old[8] = 33;
        let body = (old.len() - HEADER_LEN) as u16;
        old[4..6].copy_from_slice(&body.to_le_bytes());
        assert_eq!(decode(&old).expect("old frame decodes"), sample(200));
    }

    #[test]
    fn carries_the_tags() {
        let mut r = sample(200);
        r.tags.insert("team".into(), "edge".into());
        r.tags.insert("region".into(), "eu-west-1".into());
        let f = encode(&r).expect("fits");
        // The map ends the body: fixmap of 2, the keys in order.
        assert!(f.ends_with(b"\x82\xa6region\xa9eu-west-1\xa4team\xa4edge"));
        assert_eq!(decode(&f).expect("decodes"), r);
        assert_eq!(f.len(), frame(200).len() + 27);
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
