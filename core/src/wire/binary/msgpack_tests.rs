use super::*;
use crate::record::sample::record as sample;
use crate::test_rng::Rng;
use std::collections::BTreeMap;

/// Our bytes are rmp-serde's, and within the bound reserved for them.
fn assert_same(r: &Record) {
    let mut ours = Vec::new();
    write(&mut ours, r);
    let theirs = rmp_serde::encode::to_vec(r).expect("a record serializes");
    assert!(ours == theirs, "differs from rmp-serde for {r:?}");
    assert!(ours.len() <= bound(r), "{} > {}", ours.len(), bound(r));
}

const SOURCES: [StatusSource; 7] = [
    StatusSource::Buffered,
    StatusSource::Upgrade,
    StatusSource::Grpc,
    StatusSource::Unknown,
    StatusSource::Probe,
    StatusSource::ContentRange,
    StatusSource::Aborted,
];

#[test]
fn a_typical_record_is_written_as_rmp_serde_writes_it() {
    let mut r = sample(200);
    assert_same(&r);
    r.origin = "synthetics".into();
    r.propagation_tags = "_dd.p.usr.id=1234".into();
    r.header_tags
        .insert("http.request.headers.x-id".into(), "7".into());
    r.content_length = Some(2);
    assert_same(&r);
}

#[test]
fn every_status_source_option_and_flag_is_written_as_rmp_serde_writes_it() {
    for source in SOURCES {
        for content_length in [None, Some(0), Some(1 << 40)] {
            for grpc_status in [None, Some(0), Some(14), Some(255)] {
                for metrics_sent in [false, true] {
                    for error in [false, true] {
                        let mut r = sample(200);
                        r.status_source = source;
                        r.content_length = content_length;
                        r.grpc_status = grpc_status;
                        r.metrics_sent = metrics_sent;
                        r.error = error;
                        assert_same(&r);
                    }
                }
            }
        }
    }
}

#[test]
fn integers_at_every_width_boundary_are_written_as_rmp_serde_writes_them() {
    let unsigned = [
        0,
        1,
        127,
        128,
        255,
        256,
        65_535,
        65_536,
        u64::from(u32::MAX),
        u64::from(u32::MAX) + 1,
        u64::MAX,
    ];
    // The unsigned boundaries an i64 holds, then the signed ones.
    let signed = unsigned
        .iter()
        .filter_map(|&u| i64::try_from(u).ok())
        .chain([
            i64::MAX,
            -1,
            -32,
            -33,
            -128,
            -129,
            -32_768,
            -32_769,
            i64::from(i32::MIN),
            i64::from(i32::MIN) - 1,
            i64::MIN,
        ]);
    for v in unsigned {
        let mut r = sample(200);
        (r.trace_id_high, r.trace_id, r.span_id, r.parent_id) = (v, v, v, v);
        r.content_length = Some(v);
        r.status = v as u16;
        r.sampling_mechanism = v as u8;
        r.grpc_status = Some(v as u8);
        r.recovered_calls = v as u32;
        r.unread_values = v as u16;
        assert_same(&r);
    }
    for v in signed {
        let mut r = sample(200);
        (r.start_ns, r.duration_ns) = (v, v);
        r.sampling_priority = v as i8;
        assert_same(&r);
    }
    for p in [i8::MIN, -33, -32, -1, 0, 1, 2, i8::MAX] {
        let mut r = sample(200);
        r.sampling_priority = p;
        assert_same(&r);
    }
}

#[test]
fn floats_are_written_as_rmp_serde_writes_them() {
    for rate in [0.0, -0.0, 1.0, 0.1, 0.5, 1e-300, f64::MAX, f64::INFINITY] {
        let mut r = sample(200);
        r.sample_rate = rate;
        assert_same(&r);
    }
}

#[test]
fn strings_at_every_length_boundary_are_written_as_rmp_serde_writes_them() {
    for n in [0, 1, 31, 32, 255, 256, 65_535, 65_536, 70_000] {
        let mut r = sample(200);
        r.user_agent = "x".repeat(n);
        r.path = "/".repeat(n);
        r.header_tags.insert("t".repeat(n), "v".repeat(n));
        assert_same(&r);
    }
    // Lengths count bytes, not characters: 16 two-byte characters are 32.
    for text in [
        "é".repeat(16),
        "日本".repeat(43),
        "🦀".repeat(64),
        "aé日🦀".into(),
    ] {
        let mut r = sample(200);
        r.host = text.clone();
        r.resource = text.clone();
        r.header_tags.insert(text.clone(), text);
        assert_same(&r);
    }
}

#[test]
fn header_tags_at_every_map_size_boundary_are_written_as_rmp_serde_writes_them() {
    for n in [0, 1, 15, 16, 17, 65_535, 65_536] {
        let mut r = sample(200);
        r.header_tags = (0..n)
            .map(|i| (format!("http.request.headers.h{i}"), format!("{i}")))
            .collect();
        assert_same(&r);
    }
}

impl Rng {
    /// A value of a random width, so that each encoded size comes up often.
    fn wide(&mut self) -> u64 {
        let shift = self.next() % 64;
        self.next() >> shift
    }

    /// As [`Rng::wide`], either sign.
    fn signed(&mut self) -> i64 {
        let v = self.wide() as i64;
        if self.next() % 2 == 0 {
            v
        } else {
            v.wrapping_neg()
        }
    }

    fn text(&mut self) -> String {
        const PIECES: [&str; 8] = ["a", "Z", "/", "-", " ", "é", "日", "🦀"];
        let n = match self.next() % 16 {
            0 => 240 + self.next() % 40,
            1 => 25 + self.next() % 10,
            _ => self.next() % 12,
        };
        (0..n).map(|_| PIECES[(self.next() % 8) as usize]).collect()
    }
}

#[test]
fn pseudo_random_records_are_written_as_rmp_serde_writes_them() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let mut r = sample(200);
        for s in r.strings_mut() {
            *s = rng.text();
        }
        r.start_ns = rng.signed();
        r.duration_ns = rng.signed();
        r.status = rng.wide() as u16;
        r.status_source = SOURCES[(rng.next() % 7) as usize];
        r.trace_id_high = rng.wide();
        r.trace_id = rng.wide();
        r.span_id = rng.wide();
        r.parent_id = rng.wide();
        r.sampling_priority = rng.next() as i8;
        r.sampling_mechanism = rng.wide() as u8;
        r.sample_rate = f64::from(rng.next() as u32) / f64::from(u32::MAX);
        r.error = rng.next() % 2 == 0;
        r.header_tags = (0..rng.next() % 20)
            .map(|_| (rng.text(), rng.text()))
            .collect::<BTreeMap<_, _>>();
        r.metrics_sent = rng.next() % 2 == 0;
        r.content_length = (rng.next() % 2 == 0).then(|| rng.wide());
        r.grpc_status = (rng.next() % 2 == 0).then(|| rng.next() as u8);
        r.recovered_calls = rng.wide() as u32;
        r.unread_values = rng.wide() as u16;
        assert_same(&r);
    }
}
