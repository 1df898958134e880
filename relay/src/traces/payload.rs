//! The `/v0.4/traces` body: a msgpack array of traces, each an array of span
//! maps with named keys (service, name, resource, trace_id, span_id,
//! parent_id, start, duration, error, meta, metrics, type). Every record is
//! its own trace of one span.
//!
//! A span is written field by field with rmp's encoders, byte for byte what
//! `rmp_serde::encode::write_named` writes for [`Span`] (the tests compare
//! the two): serde's generic walk cost ~5,000 instructions a span, an eighth
//! of the relay's whole cost per record from the FIFO.

use std::collections::BTreeMap;
use tdp_core::record::span::Span;

/// Why a span could not be written (a Vec never refuses bytes; a length
/// over what msgpack can say is the only failure).
pub type EncodeError = rmp::encode::ValueWriteError;

/// msgpack `array 32` marker; its 4-byte length is filled in at the end, so
/// spans are encoded once, straight into the body.
const ARRAY32: u8 = 0xdd;
/// msgpack `fixarray` of one element: a trace holding one span.
const ONE_SPAN_TRACE: u8 = 0x91;

/// An encoded body and how many traces it holds (`X-Datadog-Trace-Count`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub body: Vec<u8>,
    pub traces: usize,
}

#[derive(Debug)]
pub struct PayloadBuilder {
    body: Vec<u8>,
    traces: usize,
}

impl Default for PayloadBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// The smallest body a builder starts with.
const MIN_CAPACITY: usize = 64 * 1024;

impl PayloadBuilder {
    pub fn new() -> Self {
        Self::with_capacity(MIN_CAPACITY)
    }

    /// A builder whose body has room for `bytes` (at least [`MIN_CAPACITY`]),
    /// so a payload the size of the previous one never grows by doubling
    /// (each step a copy of the body and fresh pages to fault in).
    pub fn with_capacity(bytes: usize) -> Self {
        let mut body = Vec::with_capacity(bytes.max(MIN_CAPACITY));
        body.extend_from_slice(&[ARRAY32, 0, 0, 0, 0]);
        Self { body, traces: 0 }
    }

    /// Appends one trace of one span. On error the body is unchanged.
    pub fn push(&mut self, span: &Span) -> Result<(), EncodeError> {
        let mark = self.body.len();
        self.body.push(ONE_SPAN_TRACE);
        if let Err(e) = write_span(&mut self.body, span) {
            self.body.truncate(mark);
            return Err(e);
        }
        self.traces += 1;
        Ok(())
    }

    pub fn traces(&self) -> usize {
        self.traces
    }

    pub fn bytes(&self) -> usize {
        self.body.len()
    }

    /// Bytes the body holds before it must grow.
    #[cfg(test)]
    pub fn room(&self) -> usize {
        self.body.capacity()
    }

    pub fn finish(mut self) -> Payload {
        let n = u32::try_from(self.traces).unwrap_or(u32::MAX);
        self.body[1..5].copy_from_slice(&n.to_be_bytes());
        // The body grew by doubling: a 600 KB payload sits in 1 MiB. Payloads
        // wait in the buffer by their length (--max-buffered-bytes), so give
        // the rest back, or an agent outage holds nearly twice the cap.
        self.body.shrink_to_fit();
        Payload {
            body: self.body,
            traces: self.traces,
        }
    }
}

/// A length as msgpack writes it (32 bits at most).
fn len32(n: usize) -> Result<u32, EncodeError> {
    u32::try_from(n).map_err(|_| {
        rmp::encode::ValueWriteError::InvalidMarkerWrite(std::io::Error::other(
            "more than 2^32 entries",
        ))
    })
}

fn write_meta(out: &mut Vec<u8>, m: &BTreeMap<String, String>) -> Result<(), EncodeError> {
    rmp::encode::write_map_len(out, len32(m.len())?)?;
    for (k, v) in m {
        rmp::encode::write_str(out, k)?;
        rmp::encode::write_str(out, v)?;
    }
    Ok(())
}

fn write_metrics(out: &mut Vec<u8>, m: &BTreeMap<String, f64>) -> Result<(), EncodeError> {
    rmp::encode::write_map_len(out, len32(m.len())?)?;
    for (k, v) in m {
        rmp::encode::write_str(out, k)?;
        rmp::encode::write_f64(out, *v)?;
    }
    Ok(())
}

/// The span as a map of its 12 fields in declaration order, as serde would.
/// The destructuring names every field: one added to `Span` fails to build
/// here instead of going missing from the payload.
fn write_span(out: &mut Vec<u8>, s: &Span) -> Result<(), EncodeError> {
    use rmp::encode::{write_sint, write_str, write_uint};
    let Span {
        service,
        name,
        resource,
        trace_id,
        span_id,
        parent_id,
        start,
        duration,
        error,
        meta,
        metrics,
        span_type,
    } = s;
    rmp::encode::write_map_len(out, 12)?;
    for (key, value) in [("service", service), ("name", name), ("resource", resource)] {
        write_str(out, key)?;
        write_str(out, value)?;
    }
    for (key, value) in [
        ("trace_id", trace_id),
        ("span_id", span_id),
        ("parent_id", parent_id),
    ] {
        write_str(out, key)?;
        write_uint(out, *value)?;
    }
    write_str(out, "start")?;
    write_sint(out, *start)?;
    write_str(out, "duration")?;
    write_sint(out, *duration)?;
    write_str(out, "error")?;
    write_sint(out, i64::from(*error))?;
    write_str(out, "meta")?;
    write_meta(out, meta)?;
    write_str(out, "metrics")?;
    write_metrics(out, metrics)?;
    write_str(out, "type")?;
    write_str(out, span_type)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::tests::record;
    use std::collections::BTreeMap;

    #[test]
    fn body_decodes_as_v04_traces() {
        let mut b = PayloadBuilder::new();
        let spans = [
            Span::from_record(&record(200)),
            Span::from_record(&record(503)),
        ];
        for s in &spans {
            b.push(s).expect("encodes");
        }
        let p = b.finish();
        assert_eq!(p.traces, 2);
        assert_eq!(&p.body[..5], &[0xdd, 0, 0, 0, 2]);
        // Held by its length in the buffer: no spare capacity behind it.
        assert_eq!(p.body.capacity(), p.body.len());
        let back: Vec<Vec<Span>> = rmp_serde::from_slice(&p.body).expect("decodes");
        assert_eq!(back, vec![vec![spans[0].clone()], vec![spans[1].clone()]]);
    }

    #[test]
    fn spans_are_maps_with_the_agents_keys() {
        let mut b = PayloadBuilder::new();
        b.push(&Span::from_record(&record(200))).expect("encodes");
        let p = b.finish();
        // Decode generically: the agent reads maps keyed by these names.
        let v: Vec<Vec<BTreeMap<String, rmpv_like::Value>>> =
            rmp_serde::from_slice(&p.body).expect("maps");
        let keys: Vec<&str> = v[0][0].keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            vec![
                "duration",
                "error",
                "meta",
                "metrics",
                "name",
                "parent_id",
                "resource",
                "service",
                "span_id",
                "start",
                "trace_id",
                "type"
            ]
        );
        // The first key written is `service` (struct order), as a fixstr.
        assert_eq!(p.body[5], 0x91);
        assert_eq!(p.body[6], 0x8c, "a map of 12 entries");
        assert_eq!(&p.body[7..15], b"\xa7service");
    }

    /// Spans unlike each other in every way a field can vary.
    fn varied() -> Vec<Span> {
        let mut spans = vec![Span::from_record(&record(200))];
        let mut r = record(503);
        r.trace_id = u64::MAX;
        r.span_id = 1;
        r.parent_id = 300;
        r.start_ns = -5;
        r.duration_ns = i64::MAX;
        r.content_length = Some(1 << 40);
        r.user_agent = "é".repeat(300);
        r.header_tags
            .insert("http.request.headers.x-long".into(), "v".repeat(70_000));
        spans.push(Span::from_record(&r));
        let mut odd = Span::from_record(&record(404));
        odd.meta.clear();
        odd.metrics.insert("nan".into(), f64::NAN);
        odd.metrics.insert("neg".into(), -0.5);
        odd.error = -1;
        odd.service = "s".repeat(40);
        for i in 0..20 {
            odd.meta.insert(format!("k{i}"), format!("{i}"));
        }
        spans.push(odd);
        spans
    }

    #[test]
    fn spans_are_written_byte_for_byte_as_rmp_serde_writes_them() {
        for span in varied() {
            let mut ours = Vec::new();
            write_span(&mut ours, &span).expect("encodes");
            let mut theirs = Vec::new();
            rmp_serde::encode::write_named(&mut theirs, &span).expect("encodes");
            assert_eq!(ours, theirs, "{}", span.resource);
        }
    }

    #[test]
    fn empty_payload_is_an_empty_array() {
        let p = PayloadBuilder::new().finish();
        assert_eq!(p.body, vec![0xdd, 0, 0, 0, 0]);
        let back: Vec<Vec<Span>> = rmp_serde::from_slice(&p.body).expect("decodes");
        assert!(back.is_empty());
    }

    /// Just enough of a dynamic msgpack value to list map keys.
    mod rmpv_like {
        use serde::Deserialize;
        #[derive(Deserialize)]
        #[serde(untagged)]
        #[allow(dead_code)]
        pub enum Value {
            I(i64),
            U(u64),
            F(f64),
            S(String),
            M(std::collections::BTreeMap<String, Value>),
        }
    }
}
