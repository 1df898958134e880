//! Every key the middleware accepts, each beside how its value is read: the
//! one table that parsing ([`super::Config::from_map`]) and the list of
//! known keys in error messages both come from.
//!
//! Propagation (see `crate::propagation`):
//! - `propagationStyleExtract`, `propagationStyleInject`: a list (or comma or
//!   space separated string) of `datadog`, `tracecontext`, `b3` (B3
//!   multi-header; `b3multi` also accepted), any case, duplicates ignored;
//!   default `datadog,tracecontext` for both, as dd-trace. `none` alone
//!   disables extraction / leaves the upstream request's headers untouched.
//! - `trustIncoming`: boolean (`true`/`false`/`"1"`/`"0"`...), default true;
//!   false ignores every incoming context (edge proxies facing the internet).

use super::Config;
use super::rules;
use super::values::{boolean, extensions, list, non_empty, number, port, string, styles};
use crate::headers::tags::HeaderTag;
use crate::record::resource::ResourceFrom;
use crate::record::status::StatusSet;
use crate::sampling::rate::SampleRate;
use crate::transport::Mode;
use crate::transport::spool;
use crate::wire::mac::MacKey;
use serde_json::Value;
use std::net::SocketAddr;

/// Reads a key's value into the configuration; the error names the value.
type Setter = fn(&mut Config, &Value) -> Result<(), String>;

/// One key of the middleware's options.
pub struct Key {
    pub name: &'static str,
    pub set: Setter,
}

const fn key(name: &'static str, set: Setter) -> Key {
    Key { name, set }
}

/// Stores a value that was read, or passes its error on.
fn put<T>(field: &mut T, value: Result<T, String>) -> Result<(), String> {
    *field = value?;
    Ok(())
}

/// Every key, in the order error messages list them.
pub const KEYS: &[Key] = &[
    key("service", |c, v| put(&mut c.service, non_empty(v))),
    key("env", |c, v| put(&mut c.env, string(v))),
    key("version", |c, v| put(&mut c.version, string(v))),
    key("spanName", |c, v| put(&mut c.span_name, non_empty(v))),
    key("resourceFrom", |c, v| {
        put(&mut c.resource_from, resource_from(v))
    }),
    key("errorStatuses", |c, v| {
        put(&mut c.error_statuses, error_statuses(v))
    }),
    key("mode", |c, v| put(&mut c.mode, mode(v))),
    key("pipePath", |c, v| put(&mut c.pipe_path, pipe_path(v))),
    key("spoolMaxBytes", |c, v| {
        put(&mut c.spool_max_bytes, spool_max_bytes(v))
    }),
    key("agentHost", |c, v| {
        put(&mut c.agent_host, non_empty(v).map(|h| h.trim().to_owned()))
    }),
    key("statsdPort", |c, v| put(&mut c.statsd_port, port(v))),
    key("relayAddress", |c, v| {
        put(&mut c.relay_address, relay_address(v))
    }),
    key("relaySecret", |c, v| {
        put(&mut c.relay_key, relay_key(v).map(Some))
    }),
    key("directStatsd", |c, v| put(&mut c.direct_statsd, boolean(v))),
    key("sampleRate", |c, v| {
        put(&mut c.sample_rate, sample_rate(v).map(Some))
    }),
    key("samplingRules", |c, v| {
        put(&mut c.sampling_rules, rules::parse(v))
    }),
    key("unbufferedPaths", |c, v| {
        put(&mut c.buffering.unbuffered_paths, path_prefixes(v))
    }),
    key("unbufferedHosts", |c, v| {
        put(&mut c.buffering.unbuffered_hosts, hosts(v))
    }),
    key("unbufferedExtensions", |c, v| {
        put(&mut c.buffering.unbuffered_extensions, extensions(v))
    }),
    key("propagationStyleExtract", |c, v| {
        put(&mut c.propagation_extract, styles(v))
    }),
    key("propagationStyleInject", |c, v| {
        put(&mut c.propagation_inject, styles(v))
    }),
    key("trustIncoming", |c, v| {
        put(&mut c.trust_incoming, boolean(v))
    }),
    key("headerTags", |c, v| put(&mut c.header_tags, header_tags(v))),
];

/// The names of [`KEYS`], in order.
pub fn names() -> Vec<&'static str> {
    KEYS.iter().map(|k| k.name).collect()
}

fn resource_from(v: &Value) -> Result<ResourceFrom, String> {
    match string(v)?.trim() {
        "host" => Ok(ResourceFrom::Host),
        "method host" => Ok(ResourceFrom::MethodHost),
        "method path" => Ok(ResourceFrom::MethodPath),
        other => Err(format!(
            "{other:?} is not one of \"host\", \"method host\", \"method path\""
        )),
    }
}

fn error_statuses(v: &Value) -> Result<StatusSet, String> {
    StatusSet::parse(&string(v)?).map_err(|e| e.0)
}

fn mode(v: &Value) -> Result<Mode, String> {
    match string(v)?.trim() {
        "auto" => Ok(Mode::Auto),
        "pipe" => Ok(Mode::Pipe),
        "network" => Ok(Mode::Network),
        "log" => Ok(Mode::Log),
        other => Err(format!(
            "{other:?} is not one of \"auto\", \"pipe\", \"network\", \"log\""
        )),
    }
}

fn pipe_path(v: &Value) -> Result<String, String> {
    let p = non_empty(v)?;
    if p.starts_with('/') {
        Ok(p)
    } else {
        Err(format!(
            "{p:?} must be an absolute path inside a directory mounted with settings.mounts"
        ))
    }
}

fn spool_max_bytes(v: &Value) -> Result<u64, String> {
    let n = number(v)?;
    if !(0.0..=spool::LIMIT_BYTES as f64).contains(&n) || n.fract() != 0.0 {
        return Err(format!(
            "{n} is not a whole number of bytes in 0..={}",
            spool::LIMIT_BYTES
        ));
    }
    Ok(n as u64)
}

fn relay_address(v: &Value) -> Result<SocketAddr, String> {
    let s = non_empty(v)?;
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a literal IP address and port like \"127.0.0.1:8127\""))
}

/// The secret itself never appears in an error.
fn relay_key(v: &Value) -> Result<MacKey, String> {
    MacKey::from_secret(&string(v)?).map_err(|e| e.to_string())
}

fn sample_rate(v: &Value) -> Result<SampleRate, String> {
    SampleRate::new(number(v)?).map_err(|e| e.to_string())
}

fn path_prefixes(v: &Value) -> Result<Vec<String>, String> {
    let paths = list(v)?;
    match paths.iter().find(|p| !p.starts_with('/')) {
        Some(bad) => Err(format!("{bad:?} is not a path prefix starting with '/'")),
        None => Ok(paths),
    }
}

fn hosts(v: &Value) -> Result<Vec<String>, String> {
    Ok(list(v)?
        .into_iter()
        .map(|h| h.to_ascii_lowercase())
        .collect())
}

fn header_tags(v: &Value) -> Result<Vec<HeaderTag>, String> {
    list(v)?
        .iter()
        .map(|e| HeaderTag::parse(e).map_err(|e| e.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_listed_once_and_documented() {
        let mut sorted = names();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), KEYS.len());
        // The README's table of keys documents each, and nothing else.
        let readme = include_str!("../../../README.md");
        let mut rows: Vec<&str> = readme
            .lines()
            .skip_while(|l| !l.starts_with("| `service` |"))
            .map_while(|l| l.strip_prefix("| `")?.split_once("` |"))
            .map(|(k, _)| k)
            .collect();
        rows.sort_unstable();
        assert_eq!(rows, sorted);
    }
}
