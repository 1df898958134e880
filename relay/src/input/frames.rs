//! Frames out of a byte stream: the FIFO and the spool carry the plugin's
//! binary frames back to back (`tdp_core::wire::binary`).

use tdp_core::record::Record;
use tdp_core::wire::binary::{BinaryError, decode_frame, resync};

/// Splits a byte stream into binary frames. Garbage is skipped up to the
/// next `TD` magic and counted once per run of garbage; a frame whose body
/// does not decode is treated as garbage too (its length field may be part
/// of the garbage, so the frames after it are not skipped with it).
#[derive(Debug, Default)]
pub struct FrameReader {
    pending: Vec<u8>,
    in_garbage: bool,
}

impl FrameReader {
    pub fn feed(&mut self, data: &[u8], mut out: impl FnMut(Result<Record, BinaryError>)) {
        self.pending.extend_from_slice(data);
        let mut off = 0;
        while let Some(rest) = self.pending.get(off..).filter(|r| !r.is_empty()) {
            let (n, result) = decode_frame(rest);
            match result {
                Ok(r) => {
                    off += n;
                    self.in_garbage = false;
                    out(Ok(r));
                }
                Err(BinaryError::Incomplete) => break,
                // A newer writer's frame right after a good one: its length
                // is trustworthy. After garbage it is not.
                Err(BinaryError::UnsupportedVersion(v)) if !self.in_garbage => {
                    off += n.max(1);
                    self.in_garbage = false;
                    out(Err(BinaryError::UnsupportedVersion(v)));
                }
                Err(e) => {
                    off += resync(rest);
                    if !self.in_garbage {
                        self.in_garbage = true;
                        out(Err(e));
                    }
                }
            }
        }
        self.pending.drain(..off.min(self.pending.len()));
    }

    /// Bytes held back as the start of an incomplete frame.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::input::tests::record;
    use tdp_core::wire::binary::encode;

    fn frame(status: u16) -> Vec<u8> {
        encode(&record(status)).expect("fits")
    }

    pub(in crate::input) fn run_reader(chunks: &[&[u8]]) -> (Vec<u16>, usize, usize) {
        let mut r = FrameReader::default();
        let (mut ok, mut bad) = (Vec::new(), 0);
        for c in chunks {
            r.feed(c, |x| match x {
                Ok(rec) => ok.push(rec.status),
                Err(_) => bad += 1,
            });
        }
        (ok, bad, r.pending())
    }

    #[test]
    fn frames_split_across_reads() {
        let mut s = frame(200);
        s.extend(frame(404));
        s.extend(frame(503));
        let (a, b) = s.split_at(100);
        let (b, c) = b.split_at(200);
        assert_eq!(run_reader(&[a, b, c]), (vec![200, 404, 503], 0, 0));
        let one_by_one: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(run_reader(&one_by_one), (vec![200, 404, 503], 0, 0));
    }

    #[test]
    fn garbage_counts_once_per_run_and_loses_no_frame() {
        let mut s = b"garbage\xff\x00TDT".to_vec();
        s.extend(frame(200));
        s.extend(b"more junk");
        s.extend(frame(503));
        // A fake header claiming a long body, then a real frame inside it.
        s.extend(b"TD\x01\x00\x40\x00");
        s.extend(frame(404));
        s.extend(vec![0u8; 64]);
        s.extend(frame(201));
        assert_eq!(run_reader(&[&s]), (vec![200, 503, 404, 201], 4, 0));
    }

    #[test]
    fn future_versions_are_skipped_by_length() {
        let mut v2 = frame(200);
        v2[2] = 2;
        let mut s = v2;
        s.extend(frame(404));
        assert_eq!(run_reader(&[&s]), (vec![404], 1, 0));
    }
}
