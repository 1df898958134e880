//! Opt-in header-to-tag mapping, like dd-trace's `DD_TRACE_HEADER_TAGS`:
//! `headerTags: ["x-request-id:http.request_id", "content-type"]`. Nothing is
//! tagged by default, so neither auth headers nor cookies ever leave the proxy
//! unless a user names them.

use std::fmt;

/// Longest header value kept in a tag, so a record still fits one atomic
/// pipe write with a handful of header tags.
pub const MAX_VALUE_LEN: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTag {
    /// Lowercased header name.
    pub header: String,
    /// The tag for both request and response, when the user named one.
    pub tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTagError(pub String);

impl fmt::Display for HeaderTagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl HeaderTag {
    /// `header` or `header:tag`.
    pub fn parse(entry: &str) -> Result<Self, HeaderTagError> {
        let (header, tag) = match entry.split_once(':') {
            Some((h, t)) => (h.trim(), Some(t.trim())),
            None => (entry.trim(), None),
        };
        if !is_token(header) {
            return Err(HeaderTagError(format!(
                "{entry:?} does not start with a header name"
            )));
        }
        if tag.is_some_and(|t| t.is_empty() || t.contains([',', ' ', '|'])) {
            return Err(HeaderTagError(format!(
                "{entry:?} has an empty or malformed tag name after ':'"
            )));
        }
        Ok(Self {
            header: header.to_ascii_lowercase(),
            tag: tag.map(str::to_owned),
        })
    }

    /// The tag for this header on the request (`response` false) or the
    /// response: the user's name, else dd-trace's
    /// `http.request.headers.<header>` with the header normalised.
    pub fn tag_for(&self, response: bool) -> String {
        if let Some(t) = &self.tag {
            return t.clone();
        }
        let side = if response { "response" } else { "request" };
        let name: String = self
            .header
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("http.{side}.headers.{name}")
    }
}

/// A header value as a tag value: cut at a char boundary, marked as cut.
pub fn tag_value(value: &str) -> String {
    let mut v = value.to_owned();
    crate::text::cut(&mut v, MAX_VALUE_LEN);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dd_trace_style_entries() {
        let t = HeaderTag::parse("X-Request-ID:http.request_id").expect("valid");
        assert_eq!(
            t,
            HeaderTag {
                header: "x-request-id".into(),
                tag: Some("http.request_id".into())
            }
        );
        assert_eq!(t.tag_for(false), "http.request_id");
        assert_eq!(t.tag_for(true), "http.request_id");
        let t = HeaderTag::parse(" Content-Type ").expect("valid");
        assert_eq!(t.tag_for(false), "http.request.headers.content-type");
        assert_eq!(t.tag_for(true), "http.response.headers.content-type");
        assert_eq!(
            HeaderTag::parse("x.odd_name")
                .expect("valid")
                .tag_for(false),
            "http.request.headers.x_odd_name"
        );
    }

    #[test]
    fn rejects_malformed_entries() {
        assert_eq!(
            HeaderTag::parse(":tag").expect_err("no header").0,
            "\":tag\" does not start with a header name"
        );
        assert_eq!(
            HeaderTag::parse("x-a:").expect_err("no tag").0,
            "\"x-a:\" has an empty or malformed tag name after ':'"
        );
        assert!(HeaderTag::parse("bad header").is_err());
        assert!(HeaderTag::parse("x-a:a b").is_err());
    }

    #[test]
    fn long_values_are_cut_at_a_char_boundary() {
        assert_eq!(tag_value("abc"), "abc");
        let long = "é".repeat(400); // 800 bytes
        let cut = tag_value(&long);
        assert_eq!(cut, format!("{}...", "é".repeat(254)));
    }
}
