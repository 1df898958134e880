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

/// The propagation headers' names in Go's spelling, looked up instead of
/// spelled out: the guest writes up to six of them on every request, and
/// canonicalising each one cost it hundreds of wasm operations.
pub fn propagation(name: &str) -> Option<&'static str> {
    use crate::propagation::*;
    Some(match name {
        X_DATADOG_TRACE_ID => "X-Datadog-Trace-Id",
        X_DATADOG_PARENT_ID => "X-Datadog-Parent-Id",
        X_DATADOG_SAMPLING_PRIORITY => "X-Datadog-Sampling-Priority",
        X_DATADOG_ORIGIN => "X-Datadog-Origin",
        X_DATADOG_TAGS => "X-Datadog-Tags",
        TRACEPARENT => "Traceparent",
        TRACESTATE => "Tracestate",
        X_B3_TRACEID => "X-B3-Traceid",
        X_B3_SPANID => "X-B3-Spanid",
        X_B3_PARENTSPANID => "X-B3-Parentspanid",
        X_B3_SAMPLED => "X-B3-Sampled",
        X_B3_FLAGS => "X-B3-Flags",
        B3_SINGLE => "B3",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_propagation_header_has_its_go_spelling() {
        for style in crate::propagation::Style::ALL {
            for name in style.headers() {
                assert_eq!(propagation(name), canon(name).as_deref(), "{name}");
            }
        }
        assert_eq!(propagation("x-other"), None);
    }

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
