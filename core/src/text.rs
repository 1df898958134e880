//! String helpers shared by the tag, span and propagation code.
//!
//! The number writers exist because `format!` costs the guest a few hundred
//! instructions per call through `core::fmt`, and the injected headers need
//! six numbers per request; under Traefik's wasm compiler that was measured
//! in microseconds per request.

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `v` as exactly 16 lowercase hex digits (`{:016x}`).
pub fn push_hex16(out: &mut String, v: u64) {
    let mut digits = [0u8; 16];
    for (i, d) in digits.iter_mut().enumerate() {
        *d = HEX[((v >> ((15 - i) * 4)) & 0xf) as usize];
    }
    push_ascii(out, &digits);
}

/// Appends bytes known to be ASCII digits in one copy.
fn push_ascii(out: &mut String, digits: &[u8]) {
    debug_assert!(digits.is_ascii());
    // SAFETY: every caller passes ASCII digits (from `HEX`, `DIGIT_PAIRS`
    // or `b'0' + d`), which are UTF-8. Validating them again cost the guest
    // more than writing them, on every id it injects.
    unsafe { out.as_mut_vec() }.extend_from_slice(digits);
}

/// `v` as the 16 lowercase hex digits of `{:016x}`.
pub fn hex16(v: u64) -> String {
    let mut s = String::with_capacity(16);
    push_hex16(&mut s, v);
    s
}

/// Appends `v` in decimal (`{}`).
pub fn push_u64(out: &mut String, v: u64) {
    push_u64_padded(out, v, 1);
}

/// Appends `v` in decimal, zero-padded to `width` digits (`{:0width$}`).
pub fn push_u64_padded(out: &mut String, mut v: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    // Two digits per division: half the divisions of one at a time.
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        i -= 2;
        digits[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        digits[i] = b'0' + v as u8;
    }
    for _ in digits.len() - i..width {
        out.push('0');
    }
    push_ascii(out, &digits[i..]);
}

/// "00" to "99".
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends `v` in decimal with its sign (`{}`).
pub fn push_i64(out: &mut String, v: i64) {
    if v < 0 {
        out.push('-');
    }
    push_u64(out, v.unsigned_abs());
}

/// `v` in decimal, as `v.to_string()` gives it.
pub fn u64_string(v: u64) -> String {
    let mut s = String::with_capacity(20);
    push_u64(&mut s, v);
    s
}

/// ASCII case-insensitive substring test without lowercasing a copy, on
/// bytes as the host gave them: the guest runs it on every request's
/// Accept header. Windows whose first byte differs are passed over before
/// the whole window is compared.
pub fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    let Some(first) = needle.first().map(u8::to_ascii_lowercase) else {
        return true;
    };
    haystack
        .windows(needle.len())
        .any(|w| w[0].to_ascii_lowercase() == first && w.eq_ignore_ascii_case(needle))
}

/// `s` cut to at most `max` bytes at a char boundary.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Ends every value that was cut.
pub const MARKER: &str = "...";

/// Cuts `s` to at most `max` bytes at a char boundary, the last bytes being
/// [`MARKER`]. True if it was cut. Kept out of line: it has a dozen
/// callers in the guest, where each inlined copy costs module size.
#[inline(never)]
pub fn cut(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut end = max.saturating_sub(MARKER.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(&MARKER[..MARKER.len().min(max)]);
    true
}

/// Raw bytes from the host as text of at most `max` bytes: invalid UTF-8
/// becomes U+FFFD, and only the first `max + 4` bytes are converted, so a
/// megabyte header is never copied whole. Equal to converting everything
/// and then [`cut`]ting: every input byte gives at least one output byte,
/// and only the last (at most 3-byte) sequence of the prefix may decode
/// differently, past the cut.
pub fn decode(bytes: &[u8], max: usize) -> String {
    let head = &bytes[..bytes.len().min(max.saturating_add(4))];
    // Valid text (nearly every value) is copied as it is: the lossy
    // conversion's chunk-by-chunk walk cost the guest several times more.
    let mut s = match std::str::from_utf8(head) {
        Ok(valid) => valid.to_owned(),
        Err(_) => String::from_utf8_lossy(head).into_owned(),
    };
    cut(&mut s, max);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_writers_match_core_fmt() {
        for v in [
            0,
            1,
            9,
            10,
            255,
            4096,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut hex = String::new();
            push_hex16(&mut hex, v);
            assert_eq!(hex, format!("{v:016x}"));
            assert_eq!(hex16(v), hex);
            let mut padded = String::new();
            push_u64_padded(&mut padded, v, 6);
            assert_eq!(padded, format!("{v:06}"));
            assert_eq!(u64_string(v), v.to_string());
        }
        // Every digit count, at both of its ends.
        for exp in 0..20 {
            let p = 10u64.pow(exp);
            for v in [
                p - 1,
                p,
                p + 1,
                p.checked_mul(10).map_or(u64::MAX, |q| q - 1),
            ] {
                assert_eq!(u64_string(v), v.to_string());
                let mut padded = String::new();
                push_u64_padded(&mut padded, v, 21);
                assert_eq!(padded, format!("{v:021}"));
            }
        }
        for v in [i64::MIN, -128, -1, 0, 1, 2, i64::MAX] {
            let mut s = String::new();
            push_i64(&mut s, v);
            assert_eq!(s, v.to_string());
        }
    }

    #[test]
    fn finds_needles_in_any_case() {
        assert!(contains_ignore_case(
            b"Text/Event-Stream, */*",
            b"text/event-stream"
        ));
        assert!(contains_ignore_case(b"keep-alive, Upgrade", b"upgrade"));
        assert!(contains_ignore_case(b"x", b""));
        assert!(!contains_ignore_case(b"text/event", b"text/event-stream"));
        assert!(!contains_ignore_case(b"", b"x"));
        assert!(contains_ignore_case(b"\xff\xfeUPGRADE", b"upgrade"));
    }

    #[test]
    fn cuts_at_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abc", 2), "ab");
        assert_eq!(truncate("éé", 3), "é");
        assert_eq!(truncate("éé", 0), "");
    }
}
