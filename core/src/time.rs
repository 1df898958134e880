//! Wall-clock helpers. Traefik's plain-WASI host fakes the monotonic clock
//! (+1 ms per read), so every timestamp and duration here is taken from the
//! real-time clock in nanoseconds since the Unix epoch.

/// Formats `unix_ns` as RFC 3339 UTC with microseconds, the resolution the
/// host's clock really has: `2026-11-25T14:33:47.123456Z`.
pub fn rfc3339_micros(unix_ns: i64) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let micros = unix_ns.rem_euclid(1_000_000_000) / 1_000;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // Written by hand: `format!` here was the costliest step of the guest's
    // fallback line.
    let mut out = String::with_capacity(27);
    let mut put = |v: i64, width: usize, sep: char| {
        push_padded(&mut out, v, width);
        out.push(sep);
    };
    put(y, 4, '-');
    put(i64::from(m), 2, '-');
    put(i64::from(d), 2, 'T');
    put(sod / 3600, 2, ':');
    put((sod % 3600) / 60, 2, ':');
    put(sod % 60, 2, '.');
    put(micros, 6, 'Z');
    out
}

/// `{v:0width$}` for the date fields (a year before 0 keeps its sign).
fn push_padded(out: &mut String, v: i64, width: usize) {
    if v < 0 {
        out.push('-');
    }
    crate::text::push_u64_padded(out, v.unsigned_abs(), width);
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// algorithm), so no date crate is needed in the guest.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Now, in nanoseconds since the Unix epoch; 0 if the clock is before 1970.
pub fn now_unix_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_epoch() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn formats_a_known_instant_with_micros() {
        // 2026-11-25T14:33:47.123456789Z, truncated to microseconds.
        assert_eq!(
            rfc3339_micros(1_795_617_227_123_456_789),
            "2026-11-25T14:33:47.123456Z"
        );
    }

    #[test]
    fn formats_leap_day_and_year_end() {
        assert_eq!(
            rfc3339_micros(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(
            rfc3339_micros(1_704_067_199_999_999_000),
            "2023-12-31T23:59:59.999999Z"
        );
    }

    #[test]
    fn formats_before_epoch() {
        assert_eq!(rfc3339_micros(-1_000), "1969-12-31T23:59:59.999999Z");
    }

    #[test]
    fn clock_is_after_2020() {
        assert!(
            now_unix_ns() > 1_577_836_800_000_000_000,
            "wall clock looks unset"
        );
    }
}
