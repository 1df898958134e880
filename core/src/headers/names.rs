//! The header names the host lists in one call (`get_header_names`: each
//! name NUL-terminated), split once and asked by name, so that the headers a
//! request does not carry cost the guest no host call.
//!
//! The list is borrowed where it was read (the guest reads it into space on
//! its stack) and split into a fixed table: whatever a client sends, the
//! guest's heap does not grow with the number of headers. A list with more
//! than [`MAX_NAMES`] names is not kept; the guest then asks the host for
//! each header it needs.

/// Names kept in the table. Browsers send about twenty headers, and a
/// proxy chain adds a dozen more; a request with more is answered one host
/// call per needed header instead.
pub const MAX_NAMES: usize = 64;

/// Room for the offsets of [`MAX_NAMES`] names, lent by the caller: the
/// guest keeps it on its stack, so that no table is moved around with the
/// names (a 256-byte copy each time, a wasm loop once lowered).
pub type Table = [(u16, u16); MAX_NAMES];

/// One side's header names.
#[derive(Debug)]
pub struct HeaderNames<'a> {
    bytes: &'a [u8],
    /// Start and end of each name in `bytes`: the list is read into at most
    /// a few KiB, so offsets fit 16 bits.
    spans: &'a [(u16, u16)],
    /// One bit per name, at [`bit`]: most names asked for are absent
    /// (trace headers, stream hints), and a clear bit says so at once.
    bits: u64,
}

/// A byte with its ASCII case bit set: letters of either case fold to
/// lowercase in one OR, where `to_ascii_lowercase` costs the guest a range
/// test per byte. Other bytes that differ only in that bit fold together
/// too (`^` and `~`, the one such pair of header-name characters): such a
/// name may be taken for listed, and the host, asked, answers that it is
/// absent. A listed name is never missed.
fn folded(b: u8) -> u8 {
    b | 0x20
}

/// A name's bit: its length and its first and last bytes, folded.
fn bit(name: &[u8]) -> u64 {
    let first = name.first().map_or(0, |&b| folded(b)) as usize;
    let last = name.last().map_or(0, |&b| folded(b)) as usize;
    1 << ((name.len() * 31 + first * 7 + last) % 64)
}

impl<'a> HeaderNames<'a> {
    /// Splits the host's list into `table`; `None` when it has more than
    /// [`MAX_NAMES`] names or is longer than 64 KiB. Split once: a request
    /// asks for about twenty names, and scanning the whole list for each
    /// cost the guest more than all its other reads. A last name without
    /// its NUL still counts.
    pub fn parse(bytes: &'a [u8], table: &'a mut Table) -> Option<Self> {
        if bytes.len() > usize::from(u16::MAX) {
            return None;
        }
        let (mut len, mut bits) = (0, 0);
        let mut start = 0;
        while start < bytes.len() {
            let end = bytes[start..]
                .iter()
                .position(|&b| b == 0)
                .map_or(bytes.len(), |n| start + n);
            let slot = table.get_mut(len)?;
            // Both below 64 KiB: checked above.
            *slot = (start as u16, end as u16);
            len += 1;
            bits |= bit(&bytes[start..end]);
            start = end + 1;
        }
        Some(Self {
            bytes,
            spans: &table[..len],
            bits,
        })
    }

    /// Whether `name` is listed, in any case (see [`folded`]). The bit test
    /// is inlined: for a constant name it is one AND, and most names asked
    /// for are absent.
    #[inline]
    pub fn has(&self, name: &[u8]) -> bool {
        self.bits & bit(name) != 0 && self.listed(name)
    }

    fn listed(&self, name: &[u8]) -> bool {
        self.spans.iter().any(|&(start, end)| {
            usize::from(end - start) == name.len()
                && self
                    .bytes
                    .get(usize::from(start)..usize::from(end))
                    .is_some_and(|n| n.iter().zip(name).all(|(&a, &b)| folded(a) == folded(b)))
        })
    }

    /// How many names are listed.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: Table = [(0, 0); MAX_NAMES];

    #[test]
    fn listed_names_are_found_in_any_case() {
        let mut t = EMPTY;
        let n = HeaderNames::parse(b"accept\0host\0x-forwarded-proto\0user-agent\0", &mut t)
            .expect("within the table");
        assert_eq!(n.len(), 4);
        for name in [
            &b"Host"[..],
            b"host",
            b"HOST",
            b"X-Forwarded-Proto",
            b"user-agent",
            b"Accept",
        ] {
            assert!(n.has(name), "{}", String::from_utf8_lossy(name));
        }
        for name in [
            &b"Hos"[..],
            b"hostt",
            b"Upgrade",
            b"traceparent",
            b"",
            b"accept\0host",
        ] {
            assert!(!n.has(name), "{}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn only_a_non_letter_differing_in_its_case_bit_is_taken_for_listed() {
        let mut t = EMPTY;
        let n = HeaderNames::parse(b"x~a\0x-b\0", &mut t).expect("two names");
        // The host, asked for `x^a`, answers that it is absent.
        assert!(n.has(b"X^A"));
        for name in [&b"x\x7fa"[..], b"x-c", b"X_B", b"x.b"] {
            assert!(!n.has(name), "{}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn odd_lists_are_read_as_they_are() {
        // No trailing NUL on the last name.
        let mut t = EMPTY;
        let n = HeaderNames::parse(b"a\0bb", &mut t).expect("two names");
        assert_eq!(n.len(), 2);
        assert!(n.has(b"a") && n.has(b"BB"));
        // Empty names (two NULs in a row) are listed but never asked for.
        let mut t = EMPTY;
        let n = HeaderNames::parse(b"\0\0x\0", &mut t).expect("three names");
        assert_eq!(n.len(), 3);
        assert!(n.has(b"x") && n.has(b""));
        let mut t = EMPTY;
        let n = HeaderNames::parse(b"", &mut t).expect("no name");
        assert!(n.is_empty() && !n.has(b"host"));
    }

    #[test]
    fn every_listed_name_is_found_whatever_its_bit() {
        // Names whose bits collide, and a full table: the bit only ever
        // says "absent" for absent names.
        let list: Vec<String> = (0..MAX_NAMES).map(|i| format!("x-h{i}")).collect();
        let bytes: Vec<u8> = list.iter().flat_map(|n| n.bytes().chain([0])).collect();
        let mut t = EMPTY;
        let n = HeaderNames::parse(&bytes, &mut t).expect("64 names fit");
        assert_eq!(n.len(), MAX_NAMES);
        for name in &list {
            assert!(n.has(name.to_uppercase().as_bytes()), "{name}");
        }
        assert!(!n.has(b"x-h64"));
    }

    #[test]
    fn a_list_over_the_table_or_64_kib_is_not_kept() {
        let len = |bytes: &[u8]| HeaderNames::parse(bytes, &mut EMPTY.clone()).map(|n| n.len());
        let over: Vec<u8> = (0..=MAX_NAMES)
            .flat_map(|i| format!("x-h{i}\0").into_bytes())
            .collect();
        assert_eq!(len(&over), None);
        // The last name may lack its NUL: 65 names either way.
        assert_eq!(len(&over[..over.len() - 1]), None);
        assert_eq!(len(&vec![b'a'; usize::from(u16::MAX) + 1]), None);
        assert_eq!(len(&vec![b'a'; usize::from(u16::MAX)]), Some(1));
    }
}
