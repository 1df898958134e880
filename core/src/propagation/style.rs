//! Propagation styles and the headers each one reads, writes or removes.

pub const X_DATADOG_TRACE_ID: &str = "x-datadog-trace-id";
pub const X_DATADOG_PARENT_ID: &str = "x-datadog-parent-id";
pub const X_DATADOG_SAMPLING_PRIORITY: &str = "x-datadog-sampling-priority";
pub const X_DATADOG_ORIGIN: &str = "x-datadog-origin";
pub const X_DATADOG_TAGS: &str = "x-datadog-tags";
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
pub const X_B3_TRACEID: &str = "x-b3-traceid";
pub const X_B3_SPANID: &str = "x-b3-spanid";
pub const X_B3_PARENTSPANID: &str = "x-b3-parentspanid";
pub const X_B3_SAMPLED: &str = "x-b3-sampled";
pub const X_B3_FLAGS: &str = "x-b3-flags";
/// B3 single-header form: never read, removed on injection.
pub const B3_SINGLE: &str = "b3";

/// A propagation style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Style {
    /// `x-datadog-*`.
    Datadog,
    /// W3C `traceparent` / `tracestate`.
    TraceContext,
    /// B3 multi-header `x-b3-*`.
    B3,
}

impl Style {
    pub const ALL: [Style; 3] = [Style::Datadog, Style::TraceContext, Style::B3];
    /// dd-trace's default for both extraction and injection.
    pub const DEFAULT: [Style; 2] = [Style::Datadog, Style::TraceContext];

    /// `datadog`, `tracecontext`, `b3` (or dd-trace's `b3multi`), any case.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "datadog" => Some(Self::Datadog),
            "tracecontext" => Some(Self::TraceContext),
            "b3" | "b3multi" => Some(Self::B3),
            _ => None,
        }
    }

    /// The style's position in [`Style::ALL`].
    pub fn index(self) -> usize {
        match self {
            Self::Datadog => 0,
            Self::TraceContext => 1,
            Self::B3 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Datadog => "datadog",
            Self::TraceContext => "tracecontext",
            Self::B3 => "b3",
        }
    }

    /// Every header of the style, read or written or removed.
    pub fn headers(self) -> &'static [&'static str] {
        match self {
            Self::Datadog => &[
                X_DATADOG_TRACE_ID,
                X_DATADOG_PARENT_ID,
                X_DATADOG_SAMPLING_PRIORITY,
                X_DATADOG_ORIGIN,
                X_DATADOG_TAGS,
            ],
            Self::TraceContext => &[TRACEPARENT, TRACESTATE],
            Self::B3 => &[
                X_B3_TRACEID,
                X_B3_SPANID,
                X_B3_PARENTSPANID,
                X_B3_SAMPLED,
                X_B3_FLAGS,
                B3_SINGLE,
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_share_no_header_and_count_thirteen() {
        let mut all: Vec<&str> = Style::ALL
            .iter()
            .flat_map(|s| s.headers())
            .copied()
            .collect();
        assert_eq!(all.len(), 13);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 13);
    }

    #[test]
    fn style_names() {
        assert_eq!(Style::parse(" Datadog "), Some(Style::Datadog));
        assert_eq!(Style::parse("TRACECONTEXT"), Some(Style::TraceContext));
        assert_eq!(Style::parse("b3multi"), Some(Style::B3));
        assert_eq!(Style::parse("b3"), Some(Style::B3));
        assert_eq!(Style::parse("w3c"), None);
        assert_eq!(Style::parse(""), None);
        for (i, s) in Style::ALL.into_iter().enumerate() {
            assert_eq!(Style::parse(s.name()), Some(s));
            assert_eq!(s.index(), i);
        }
    }
}
