//! Reading one JSON value of the configuration leniently: Kubernetes CRD and
//! label providers deliver numbers and booleans as strings, and YAML may
//! type a string as a number. Errors describe the value found.

use crate::propagation::style::Style;
use serde_json::Value;

/// The value as an error message names it.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(_) => format!("boolean {v}"),
        Value::Number(_) => format!("number {v}"),
        Value::String(s) => format!("{s:?}"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// Strings, and scalars that YAML may have typed (`version: 1.2`).
pub fn string(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("{} is not a string", describe(other))),
    }
}

/// A finite number, or its decimal string.
pub fn number(v: &Value) -> Result<f64, String> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if n.is_finite() => Ok(n),
        _ => Err(format!("{} is not a number", describe(v))),
    }
}

/// A string with something other than blanks in it.
pub fn non_empty(v: &Value) -> Result<String, String> {
    let s = string(v)?;
    if s.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(s)
    }
}

/// A port number, or its decimal string.
pub fn port(v: &Value) -> Result<u16, String> {
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match n {
        Some(p @ 1..=65535) => Ok(p as u16),
        _ => Err(format!("{} is not a port number (1-65535)", describe(v))),
    }
}

/// Booleans, and the strings and numbers providers turn them into:
/// `true`/`false`, `"true"`/`"false"` (any case), `"1"`/`"0"`, `1`/`0`.
pub fn boolean(v: &Value) -> Result<bool, String> {
    let b = match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_u64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    };
    b.ok_or_else(|| format!("{} is not a boolean (true, false, 1 or 0)", describe(v)))
}

/// Propagation styles: a list, or a comma or space separated string; `none`
/// alone is the empty list.
pub fn styles(v: &Value) -> Result<Vec<Style>, String> {
    let names: Vec<String> = list(v)?
        .iter()
        .flat_map(|s| s.split_whitespace())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err("must name at least one style (or \"none\")".to_owned());
    }
    if names.len() == 1 && names[0].eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for name in &names {
        if name.eq_ignore_ascii_case("none") {
            return Err("\"none\" cannot be combined with other styles".to_owned());
        }
        let style = Style::parse(name).ok_or_else(|| {
            format!("{name:?} is not one of \"datadog\", \"tracecontext\", \"b3\", \"none\"")
        })?;
        if !out.contains(&style) {
            out.push(style);
        }
    }
    Ok(out)
}

/// Path extensions: a list or comma separated string, with or without the
/// leading dot, any case; `none` alone is the empty list (every response
/// not otherwise excluded is buffered).
pub fn extensions(v: &Value) -> Result<Vec<String>, String> {
    let items = list(v)?;
    if items.len() == 1 && items[0].eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    items
        .iter()
        .map(|e| {
            let e = e.trim().trim_start_matches('.');
            if e.is_empty() || !e.bytes().all(|b| b.is_ascii_alphanumeric()) {
                Err(format!(
                    "{e:?} is not a file extension (letters and digits, like \"iso\" or \"zip\")"
                ))
            } else {
                Ok(e.to_ascii_lowercase())
            }
        })
        .collect()
}

/// A list of strings: an array, a comma separated string, or the
/// `{"0": .., "1": ..}` map some providers make of a list; empty items go.
pub fn list(v: &Value) -> Result<Vec<String>, String> {
    let items: Vec<String> = match v {
        Value::Array(a) => a.iter().map(string).collect::<Result<_, _>>()?,
        Value::String(s) => s.split(',').map(|p| p.trim().to_owned()).collect(),
        // Providers that flatten lists into indexed maps: {"0": "a", "1": "b"}.
        Value::Object(m) => {
            let mut indexed = m
                .iter()
                .map(|(k, v)| {
                    k.parse::<usize>()
                        .map_err(|_| format!("an object with key {k:?} is not a list"))
                        .and_then(|i| Ok((i, string(v)?)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            indexed.sort_by_key(|(i, _)| *i);
            indexed.into_iter().map(|(_, s)| s).collect()
        }
        other => return Err(format!("{} is not a list", describe(other))),
    };
    Ok(items.into_iter().filter(|s| !s.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_are_read_leniently_and_described_when_not() {
        assert_eq!(string(&json!(1.5)), Ok("1.5".to_owned()));
        assert_eq!(string(&json!(true)), Ok("true".to_owned()));
        assert_eq!(
            string(&json!([1])),
            Err("a list is not a string".to_owned())
        );
        assert_eq!(number(&json!(" 0.5 ")), Ok(0.5));
        assert_eq!(
            number(&json!("NaN")),
            Err("\"NaN\" is not a number".to_owned())
        );
        assert_eq!(number(&json!(null)), Err("null is not a number".to_owned()));
        assert_eq!(describe(&json!({})), "an object");
        assert_eq!(describe(&json!(false)), "boolean false");
        assert_eq!(describe(&json!(7)), "number 7");
    }
}
