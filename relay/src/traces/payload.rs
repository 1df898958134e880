//! The `/v0.4/traces` body: a msgpack array of traces, each an array of span
//! maps with named keys (service, name, resource, trace_id, span_id,
//! parent_id, start, duration, error, meta, metrics, type). Every record is
//! its own trace of one span.

use tdp_core::span::Span;

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

impl PayloadBuilder {
    pub fn new() -> Self {
        let mut body = Vec::with_capacity(64 * 1024);
        body.extend_from_slice(&[ARRAY32, 0, 0, 0, 0]);
        Self { body, traces: 0 }
    }

    /// Appends one trace of one span. On error the body is unchanged.
    pub fn push(&mut self, span: &Span) -> Result<(), rmp_serde::encode::Error> {
        let mark = self.body.len();
        self.body.push(ONE_SPAN_TRACE);
        if let Err(e) = rmp_serde::encode::write_named(&mut self.body, span) {
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
