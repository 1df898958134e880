//! Status rules: which HTTP statuses and gRPC codes mark a span as an
//! error, and how a status is classified for `error.type` and stats.

use std::fmt;

/// A set of status codes written as `"500-599"` or `"400-499,500-599,999"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet {
    ranges: Vec<(u16, u16)>,
}

/// Why a status set did not parse; the text is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSetError(pub String);

impl fmt::Display for StatusSetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StatusSet {
    /// nginx-datadog's rule: 5xx are errors.
    pub fn server_errors() -> Self {
        Self {
            ranges: vec![(500, 599)],
        }
    }

    pub fn parse(text: &str) -> Result<Self, StatusSetError> {
        let mut ranges = Vec::new();
        for part in text.split(',').map(str::trim) {
            if part.is_empty() {
                return Err(StatusSetError(format!(
                    "{text:?} has an empty item; write ranges like \"500-599\" or \"429,500-599\""
                )));
            }
            let (lo, hi) = match part.split_once('-') {
                Some((lo, hi)) => (parse_code(lo.trim(), text)?, parse_code(hi.trim(), text)?),
                None => {
                    let c = parse_code(part, text)?;
                    (c, c)
                }
            };
            if lo > hi {
                return Err(StatusSetError(format!(
                    "range {part:?} runs backwards; write the lower code first"
                )));
            }
            ranges.push((lo, hi));
        }
        Ok(Self { ranges })
    }

    pub fn contains(&self, status: u16) -> bool {
        self.ranges
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&status))
    }
}

fn parse_code(s: &str, whole: &str) -> Result<u16, StatusSetError> {
    match s.parse::<u16>() {
        Ok(c) if (100..=999).contains(&c) => Ok(c),
        _ => Err(StatusSetError(format!(
            "{s:?} in {whole:?} is not a status code between 100 and 999"
        ))),
    }
}

/// The `error.type` value the old sidecar set: `client_error` for 4xx,
/// `server_error` for 5xx, nothing otherwise.
pub fn error_type(status: u16) -> &'static str {
    match status {
        400..=499 => "client_error",
        500..=599 => "server_error",
        _ => "",
    }
}

/// The gRPC codes a server span marks as an error, as OpenTelemetry's
/// semantic conventions for gRPC servers: UNKNOWN, DEADLINE_EXCEEDED,
/// UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS. Others are the caller's
/// fault or not failures.
pub fn grpc_is_error(code: u8) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}

/// `2xx`, `4xx`, ...; empty for an unknown (0) status.
pub fn status_class(status: u16) -> String {
    if (100..=999).contains(&status) {
        format!("{}xx", status / 100)
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_5xx() {
        let s = StatusSet::server_errors();
        assert!(!s.contains(499));
        assert!(s.contains(500));
        assert!(s.contains(599));
        assert!(!s.contains(600));
    }

    #[test]
    fn parses_lists_and_singles() {
        let s = StatusSet::parse(" 400-499 , 500-599,999").expect("valid set");
        assert_eq!(s.ranges, vec![(400, 499), (500, 599), (999, 999)]);
        assert!(s.contains(404) && s.contains(503) && s.contains(999));
        assert!(!s.contains(399) && !s.contains(600));
    }

    #[test]
    fn rejects_bad_sets_with_explanations() {
        assert_eq!(
            StatusSet::parse("5xx").expect_err("invalid").0,
            "\"5xx\" in \"5xx\" is not a status code between 100 and 999"
        );
        assert_eq!(
            StatusSet::parse("599-500").expect_err("backwards").0,
            "range \"599-500\" runs backwards; write the lower code first"
        );
        assert!(StatusSet::parse("").is_err());
        assert!(StatusSet::parse("500,").is_err());
        assert!(StatusSet::parse("99").is_err());
        assert!(StatusSet::parse("500-1000").is_err());
    }

    #[test]
    fn error_types() {
        assert_eq!(error_type(200), "");
        assert_eq!(error_type(301), "");
        assert_eq!(error_type(404), "client_error");
        assert_eq!(error_type(499), "client_error");
        assert_eq!(error_type(503), "server_error");
        assert_eq!(error_type(0), "");
    }

    #[test]
    fn classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(0), "");
    }
}
