//! The header names the host lists in one call (`get_header_names`: each
//! name NUL-terminated), split once and asked by name, so that the headers a
//! request does not carry cost the guest no host call.

/// One side's header names.
#[derive(Debug, Default)]
pub struct HeaderNames {
    bytes: Vec<u8>,
    /// Start and end of each name in `bytes`.
    spans: Vec<(usize, usize)>,
    /// One bit per name, at [`bit`]: most names asked for are absent
    /// (trace headers, stream hints), and a clear bit says so at once.
    bits: u64,
}

/// A name's bit: its length and its first and last letters, in any case.
fn bit(name: &[u8]) -> u64 {
    let first = name.first().map_or(0, u8::to_ascii_lowercase) as usize;
    let last = name.last().map_or(0, u8::to_ascii_lowercase) as usize;
    1 << ((name.len() * 31 + first * 7 + last) % 64)
}

impl HeaderNames {
    /// Splits the host's list. Split once: a request asks for about twenty
    /// names, and scanning the whole list for each cost the guest more than
    /// all its other reads. A last name without its NUL still counts.
    pub fn parse(bytes: Vec<u8>) -> Self {
        let mut spans = Vec::with_capacity(16);
        let mut bits = 0;
        let mut start = 0;
        while let Some(len) = bytes
            .get(start..)
            .and_then(|rest| rest.iter().position(|&b| b == 0))
        {
            let end = start + len;
            spans.push((start, end));
            bits |= bit(&bytes[start..end]);
            start = end + 1;
        }
        if start < bytes.len() {
            spans.push((start, bytes.len()));
            bits |= bit(&bytes[start..]);
        }
        Self { bytes, spans, bits }
    }

    /// Whether `name` is listed, in any case.
    pub fn has(&self, name: &[u8]) -> bool {
        self.bits & bit(name) != 0
            && self.spans.iter().any(|&(start, end)| {
                end - start == name.len()
                    && self
                        .bytes
                        .get(start..end)
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
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

    fn names(list: &[u8]) -> HeaderNames {
        HeaderNames::parse(list.to_vec())
    }

    #[test]
    fn listed_names_are_found_in_any_case() {
        let n = names(b"accept\0host\0x-forwarded-proto\0user-agent\0");
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
    fn odd_lists_are_read_as_they_are() {
        // No trailing NUL on the last name.
        let n = names(b"a\0bb");
        assert_eq!(n.len(), 2);
        assert!(n.has(b"a") && n.has(b"BB"));
        // Empty names (two NULs in a row) are listed but never asked for.
        let n = names(b"\0\0x\0");
        assert_eq!(n.len(), 3);
        assert!(n.has(b"x") && n.has(b""));
        let n = names(b"");
        assert!(n.is_empty() && !n.has(b"host"));
    }

    #[test]
    fn every_listed_name_is_found_whatever_its_bit() {
        // Names whose bits collide, and many names: the bit only ever
        // says "absent" for absent names.
        let list: Vec<String> = (0..300).map(|i| format!("x-h{i}")).collect();
        let bytes: Vec<u8> = list.iter().flat_map(|n| n.bytes().chain([0])).collect();
        let n = HeaderNames::parse(bytes);
        assert_eq!(n.len(), 300);
        for name in &list {
            assert!(n.has(name.to_uppercase().as_bytes()), "{name}");
        }
        assert!(!n.has(b"x-h300"));
    }
}
