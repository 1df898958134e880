//! The lexical pieces every style shares: optional whitespace, lowercase
//! hex, decimals, sampling priorities, origins.

/// Longest origin accepted (`synthetics-browser` is 18).
pub const MAX_ORIGIN: usize = 128;

/// Optional whitespace around a header value or list member.
pub(super) fn ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

pub(super) fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// Up to 16 lowercase hex digits; uppercase is rejected.
pub(super) fn lower_hex(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    b.iter().try_fold(0u64, |acc, &c| {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        Some((acc << 4) | u64::from(d))
    })
}

/// Exactly 16 lowercase hex digits.
pub(super) fn hex16(s: &str) -> Option<u64> {
    if s.len() == 16 {
        lower_hex(s.as_bytes())
    } else {
        None
    }
}

/// An unsigned decimal: digits only, no sign, fits u64.
pub(super) fn decimal_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A sampling priority: optional `-`, at most 3 digits, fits i8.
pub(super) fn priority(s: &str) -> Option<i8> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Printable ASCII, no surrounding spaces (a header value could not keep
/// them), at most [`MAX_ORIGIN`] bytes.
pub(super) fn valid_origin(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ORIGIN
        && s == s.trim_matches(' ')
        && s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}
