//! Bounds on the DogStatsD tag values that clients choose.
//!
//! The resource is the request's Host by default and the method is whatever
//! the client sent, so on a catch-all router every random Host or made-up
//! method would become a new metric series: unbounded custom metrics in
//! Datadog and unbounded memory in the aggregating relay. Two bounds apply
//! to the request metrics' tags only (spans keep their real values; the
//! trace agent bounds its own stats):
//!
//! - methods outside the standard set ([`STANDARD_METHODS`], case-sensitive
//!   as HTTP methods are) are tagged `http.method:other`;
//! - per metrics interval, the first `max` distinct resource values keep
//!   their own series; every later new value is tagged `resource:other` and
//!   counted ([`ResourceCap::take_folded`]). Values are compared as the tag
//!   would show them (cut to [`MAX_TAG_LEN`] bytes), so the cap's memory is
//!   at most `max` short strings.

use std::collections::HashSet;

/// Datadog keeps at most 200 characters of a tag (`key:value`).
pub const MAX_TAG_LEN: usize = 200;

/// Distinct resources per metrics interval unless configured otherwise.
pub const DEFAULT_MAX_RESOURCES: usize = 1000;

/// The tag value that stands for every folded resource or odd method.
pub const OTHER: &str = "other";

/// The methods of RFC 9110 and RFC 5789 (PATCH).
pub const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The method as a metric tag: itself if standard, else [`OTHER`].
pub fn method_tag(method: &str) -> &str {
    if STANDARD_METHODS.contains(&method) {
        method
    } else {
        OTHER
    }
}

/// The first [`MAX_TAG_LEN`] bytes of `v`, cut at a character boundary.
fn tag_prefix(v: &str) -> &str {
    if v.len() <= MAX_TAG_LEN {
        return v;
    }
    let mut end = MAX_TAG_LEN;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    &v[..end]
}

/// The distinct resources admitted in the current interval.
#[derive(Debug)]
pub struct ResourceCap {
    max: usize,
    seen: HashSet<String>,
    folded: u64,
}

impl ResourceCap {
    /// `max` is at least 1.
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            seen: HashSet::new(),
            folded: 0,
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// The resource tag value for `resource`: itself while it is one of the
    /// first `max` distinct values of the interval, else [`OTHER`].
    pub fn admit<'a>(&mut self, resource: &'a str) -> &'a str {
        // No value, no tag: nothing to bound.
        if resource.is_empty() {
            return resource;
        }
        let key = tag_prefix(resource);
        if self.seen.contains(key) {
            return resource;
        }
        if self.seen.len() < self.max {
            self.seen.insert(key.to_owned());
            return resource;
        }
        self.folded += 1;
        OTHER
    }

    /// Distinct values admitted in this interval.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Starts a new interval: every value may be admitted again.
    pub fn reset(&mut self) {
        self.seen.clear();
    }

    /// Records folded into [`OTHER`] since the last call.
    pub fn take_folded(&mut self) -> u64 {
        std::mem::take(&mut self.folded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_methods_pass_the_rest_is_other() {
        for m in STANDARD_METHODS {
            assert_eq!(method_tag(m), m);
        }
        for m in ["get", "PROPFIND", "", "G ET", "BREW", "GETX"] {
            assert_eq!(method_tag(m), "other", "{m:?}");
        }
    }

    #[test]
    fn the_first_max_distinct_values_keep_their_own_tag() {
        let mut cap = ResourceCap::new(2);
        assert_eq!(cap.admit("a.example"), "a.example");
        assert_eq!(cap.admit("b.example"), "b.example");
        assert_eq!(cap.admit("c.example"), "other");
        assert_eq!(
            cap.admit("a.example"),
            "a.example",
            "admitted stays admitted"
        );
        assert_eq!(cap.admit("d.example"), "other");
        assert_eq!(cap.admit("c.example"), "other");
        assert_eq!(cap.admit(""), "", "no value: not counted");
        assert_eq!((cap.len(), cap.take_folded()), (2, 3));
        assert_eq!(cap.take_folded(), 0);
        cap.reset();
        assert_eq!(cap.admit("c.example"), "c.example", "a new interval");
        assert_eq!(cap.len(), 1);
    }

    #[test]
    fn values_equal_as_tags_count_once() {
        let mut cap = ResourceCap::new(1);
        let long = "h".repeat(MAX_TAG_LEN);
        let a = format!("{long}.a");
        let b = format!("{long}.b");
        assert_eq!(cap.admit(&a), a);
        assert_eq!(cap.admit(&b), b, "same first 200 bytes: same tag");
        assert_eq!(cap.take_folded(), 0);
        // Cut at a character boundary, never inside one.
        let wide = "é".repeat(MAX_TAG_LEN);
        assert_eq!(tag_prefix(&wide).len(), MAX_TAG_LEN);
        let odd = format!("x{wide}");
        assert_eq!(tag_prefix(&odd).len(), MAX_TAG_LEN - 1);
    }

    #[test]
    fn memory_is_bounded_by_max() {
        let mut cap = ResourceCap::new(1000);
        for i in 0..100_000 {
            let _ = cap.admit(&format!("h{i}.example"));
        }
        assert_eq!(cap.len(), 1000);
        assert_eq!(cap.take_folded(), 99_000);
        assert_eq!(ResourceCap::new(0).max(), 1);
    }
}
