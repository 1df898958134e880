//! Reading one JSON value of the configuration leniently: Kubernetes CRD and
//! label providers deliver numbers and booleans as strings, and YAML may
//! type a string as a number. Errors describe the value found.

use serde_json::Value;

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
