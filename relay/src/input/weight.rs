//! What a queued record costs in memory, for the input queue's byte bound
//! (`--queue-bytes`). An estimate, but the same one when a record enters
//! the queue and when it leaves, so the `queue_bytes` gauge returns to 0.

use super::Envelope;
use std::mem::size_of;

/// The envelope itself plus the bytes its strings and header tags hold.
pub fn weight(e: &Envelope) -> u64 {
    let r = &e.record;
    let strings: usize = r.strings().iter().map(|s| s.len()).sum::<usize>()
        + e.host.router_name.len()
        + e.host.entrypoint_name.len();
    let tags: usize = r
        .header_tags
        .iter()
        .map(|(k, v)| k.len() + v.len() + 2 * size_of::<String>())
        .sum();
    (size_of::<Envelope>() + strings + tags) as u64
}

/// The weight of a batch.
pub fn total(batch: &[Envelope]) -> u64 {
    batch.iter().map(weight).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::tests::record;

    #[test]
    fn counts_every_string_and_tag() {
        let mut e = Envelope::bare(record(200));
        let base = weight(&e);
        e.record.user_agent.push_str(&"x".repeat(1000));
        e.host.router_name = "r@file".into();
        e.record
            .header_tags
            .insert("http.request.headers.x".into(), "v".into());
        let tag = 22 + 1 + 2 * size_of::<String>() as u64;
        assert_eq!(weight(&e), base + 1000 + 6 + tag);
        assert!(base > size_of::<Envelope>() as u64);
        assert_eq!(total(&[e.clone(), e.clone()]), 2 * weight(&e));
    }

    #[test]
    fn a_typical_record_weighs_about_half_a_kib() {
        // So the default --queue-bytes (16 MiB) holds ~30,000 of them and
        // --queue-size (10,000) bounds first for ordinary traffic.
        let w = weight(&Envelope::bare(record(200)));
        assert!((300..800).contains(&w), "{w}");
    }
}
