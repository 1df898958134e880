//! Header names as Go's header map keys them. Traefik's host canonicalises
//! every name the guest hands it (`x-datadog-trace-id` becomes
//! `X-Datadog-Trace-Id`), allocating a new string each time unless the name
//! already has that spelling; names written that way cost the host nothing.

/// Longest name given its canonical spelling; longer ones go as they are.
pub const MAX_CANONICAL: usize = 64;

/// `name` in Go's canonical spelling (`textproto.CanonicalMIMEHeaderKey`),
/// written into `out`; `None` if it does not fit or holds a byte other than
/// a letter, digit or `-` (such a name goes as it is, and the host spells it
/// as it always did).
pub fn canonical<'a>(name: &[u8], out: &'a mut [u8; MAX_CANONICAL]) -> Option<&'a [u8]> {
    let dst = out.get_mut(..name.len())?;
    let mut upper = true;
    for (d, &c) in dst.iter_mut().zip(name) {
        if !(c.is_ascii_alphanumeric() || c == b'-') {
            return None;
        }
        *d = if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        };
        upper = c == b'-';
    }
    Some(dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(name: &str) -> Option<String> {
        let mut buf = [0u8; MAX_CANONICAL];
        canonical(name.as_bytes(), &mut buf).map(|b| String::from_utf8_lossy(b).into_owned())
    }

    #[test]
    fn spelling_is_gos() {
        assert_eq!(
            canon("x-datadog-trace-id").as_deref(),
            Some("X-Datadog-Trace-Id")
        );
        assert_eq!(canon("x-datadog-tags").as_deref(), Some("X-Datadog-Tags"));
        assert_eq!(canon("traceparent").as_deref(), Some("Traceparent"));
        assert_eq!(canon("X-B3-SPANID").as_deref(), Some("X-B3-Spanid"));
        assert_eq!(canon("a--b").as_deref(), Some("A--B"));
        assert_eq!(canon("").as_deref(), Some(""));
    }

    #[test]
    fn names_go_keeps_as_they_are_stay_so() {
        assert_eq!(canon("x_datadog"), None);
        assert_eq!(canon("x datadog"), None);
        assert_eq!(canon("é"), None);
        assert_eq!(canon(&"a".repeat(MAX_CANONICAL + 1)), None);
        assert_eq!(
            canon(&"a".repeat(MAX_CANONICAL)).map(|s| s.len()),
            Some(MAX_CANONICAL)
        );
    }
}
