//! The `samplingRules` key: a list of objects
//! `{"host": "api.example", "path": "/v1", "method": "GET", "sampleRate": 0.5}`
//! (`host` and `sampleRate` required; `sample_rate` accepted as in
//! `DD_TRACE_SAMPLING_RULES`), given as a list, as the `{"0": .., "1": ..}`
//! map some providers make of lists, or as a string holding that JSON list.
//! Numbers may be strings (CRDs).

use super::values::{describe, number, string};
use crate::sampling::rate::SampleRate;
use crate::sampling::rules::SamplingRule;
use serde_json::{Map, Value};

/// More rules than this is a configuration mistake, and every new trace
/// walks the list.
pub const MAX_RULES: usize = 100;

/// The value of `samplingRules`; errors name the rule (from 1) and field.
pub fn parse(v: &Value) -> Result<Vec<SamplingRule>, String> {
    let items: Vec<Value> = match v {
        Value::Array(a) => a.clone(),
        Value::String(s) if s.trim().is_empty() => Vec::new(),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(a)) => a,
            _ => {
                return Err(format!(
                    "{} is not a JSON list of rules like [{{\"host\":\"a.example\",\"sampleRate\":0.1}}]",
                    describe(v)
                ));
            }
        },
        Value::Object(m) => indexed(m)?,
        other => return Err(format!("{} is not a list of rules", describe(other))),
    };
    if items.len() > MAX_RULES {
        return Err(format!(
            "{} rules; at most {MAX_RULES} are accepted",
            items.len()
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| rule(item).map_err(|e| format!("rule {}: {e}", i + 1)))
        .collect()
}

/// `{"0": .., "1": ..}`, in index order.
fn indexed(m: &Map<String, Value>) -> Result<Vec<Value>, String> {
    let mut items = m
        .iter()
        .map(|(k, v)| {
            k.parse::<usize>()
                .map(|i| (i, v.clone()))
                .map_err(|_| format!("an object with key {k:?} is not a list of rules"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    items.sort_by_key(|(i, _)| *i);
    Ok(items.into_iter().map(|(_, v)| v).collect())
}

fn rule(item: &Value) -> Result<SamplingRule, String> {
    let Value::Object(m) = item else {
        return Err(format!("{} is not an object", describe(item)));
    };
    let mut host = None;
    let mut path_prefix = None;
    let mut method = None;
    let mut rate = None;
    for (k, v) in m {
        match k.as_str() {
            "host" => {
                let h = string(v)?.trim().to_ascii_lowercase();
                if h.is_empty() {
                    return Err("\"host\" must not be empty (use \"*\" for every host)".into());
                }
                let star_inside = h.chars().skip(1).any(|c| c == '*');
                if star_inside || (h.starts_with('*') && h != "*" && !h.starts_with("*.")) {
                    return Err(format!(
                        "\"host\" {h:?}: only a leading \"*.\" (or \"*\" alone) is a wildcard"
                    ));
                }
                host = Some(h);
            }
            "path" => {
                let p = string(v)?.trim().to_owned();
                if !p.starts_with('/') {
                    return Err(format!("\"path\" {p:?} is not a prefix starting with '/'"));
                }
                path_prefix = Some(p);
            }
            "method" => {
                let m = string(v)?.trim().to_ascii_uppercase();
                if m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()) {
                    return Err(format!("\"method\" {m:?} is not an HTTP method"));
                }
                method = Some(m);
            }
            "sampleRate" | "sample_rate" => {
                let r = number(v).map_err(|e| format!("\"{k}\": {e}"))?;
                rate = Some(SampleRate::new(r).map_err(|e| format!("\"{k}\": {e}"))?);
            }
            other => {
                return Err(format!(
                    "unknown field {other:?}; fields are host, path, method, sampleRate"
                ));
            }
        }
    }
    Ok(SamplingRule {
        host: host.ok_or("\"host\" is missing")?,
        path_prefix,
        method,
        rate: rate.ok_or("\"sampleRate\" is missing")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampling::rules::rule as r;
    use serde_json::json;

    #[test]
    fn accepts_the_list_the_indexed_map_and_the_json_string() {
        let want = vec![
            r("a.example", Some("/api"), Some("GET"), 0.5),
            r("*", None, None, 0.0),
        ];
        let list = json!([
            {"host": "A.example", "path": "/api", "method": "get", "sampleRate": 0.5},
            {"host": "*", "sample_rate": "0"}
        ]);
        assert_eq!(parse(&list), Ok(want.clone()));
        let map = json!({
            "1": {"host": "*", "sampleRate": "0"},
            "0": {"host": "a.example", "path": "/api", "method": "GET", "sampleRate": "0.5"}
        });
        assert_eq!(parse(&map), Ok(want.clone()));
        let text = json!(
            r#"[{"host":"a.example","path":"/api","method":"GET","sampleRate":0.5},{"host":"*","sampleRate":0}]"#
        );
        assert_eq!(parse(&text), Ok(want));
        assert_eq!(parse(&json!("")), Ok(vec![]));
        assert_eq!(parse(&json!([])), Ok(vec![]));
    }

    #[test]
    fn explains_every_mistake() {
        let err = |v: Value| parse(&v).expect_err("invalid");
        assert_eq!(
            err(json!([{"host": "a", "sampleRate": 2}])),
            "rule 1: \"sampleRate\": 2 is outside 0..1"
        );
        assert_eq!(
            err(json!([{"host": "a", "sampleRate": 1}, {"sampleRate": 1}])),
            "rule 2: \"host\" is missing"
        );
        assert_eq!(
            err(json!([{"host": "a"}])),
            "rule 1: \"sampleRate\" is missing"
        );
        assert_eq!(
            err(json!([{"host": "a", "sampleRate": "x"}])),
            "rule 1: \"sampleRate\": \"x\" is not a number"
        );
        assert_eq!(
            err(json!([{"host": "a", "path": "api", "sampleRate": 1}])),
            "rule 1: \"path\" \"api\" is not a prefix starting with '/'"
        );
        assert_eq!(
            err(json!([{"host": "a", "method": "GE T", "sampleRate": 1}])),
            "rule 1: \"method\" \"GE T\" is not an HTTP method"
        );
        assert_eq!(
            err(json!([{"host": "a*", "sampleRate": 1}])),
            "rule 1: \"host\" \"a*\": only a leading \"*.\" (or \"*\" alone) is a wildcard"
        );
        assert_eq!(
            err(json!([{"host": "*a", "sampleRate": 1}])),
            "rule 1: \"host\" \"*a\": only a leading \"*.\" (or \"*\" alone) is a wildcard"
        );
        assert_eq!(
            err(json!([{"host": " ", "sampleRate": 1}])),
            "rule 1: \"host\" must not be empty (use \"*\" for every host)"
        );
        assert_eq!(
            err(json!([{"host": "a", "service": "x", "sampleRate": 1}])),
            "rule 1: unknown field \"service\"; fields are host, path, method, sampleRate"
        );
        assert_eq!(
            err(json!(["a.example"])),
            "rule 1: \"a.example\" is not an object"
        );
        assert_eq!(
            err(json!("a.example=0.5")),
            "\"a.example=0.5\" is not a JSON list of rules like [{\"host\":\"a.example\",\"sampleRate\":0.1}]"
        );
        assert_eq!(err(json!(true)), "boolean true is not a list of rules");
        assert_eq!(
            err(json!({"x": {}})),
            "an object with key \"x\" is not a list of rules"
        );
        let many: Vec<Value> = (0..=MAX_RULES)
            .map(|_| json!({"host": "*", "sampleRate": 1}))
            .collect();
        assert_eq!(
            err(Value::Array(many)),
            "101 rules; at most 100 are accepted"
        );
    }
}
