//! The middleware's configuration, as Traefik hands it to the guest through
//! `get_config` (the dynamic-config map, JSON-encoded).
//!
//! It is validated once into [`Config`]; after that nothing can be invalid.
//! Kubernetes CRD and label providers deliver numbers and booleans as strings,
//! so `"8125"`, `"0.5"` and `"true"` are accepted where a number or a bool is
//! expected, and lists may come as arrays, comma-separated strings, or the
//! `{"0": .., "1": ..}` maps some providers produce.

pub mod env;
pub mod keys;
pub mod rules;
pub mod values;

use crate::buffering::observe::Policy;
use crate::headers::tags::HeaderTag;
use crate::propagation::style::Style;
use crate::record::resource::ResourceFrom;
use crate::record::status::StatusSet;
use crate::sampling::rate::SampleRate;
use crate::sampling::rules::SamplingRule;
use crate::transport::Mode;
use crate::{propagation, record};
use keys::KEYS;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub service: String,
    pub env: String,
    pub version: String,
    pub span_name: String,
    pub resource_from: ResourceFrom,
    pub error_statuses: StatusSet,
    pub mode: Mode,
    pub pipe_path: String,
    /// The spool beside the FIFO stops growing here; 0: no spool.
    pub spool_max_bytes: u64,
    pub agent_host: String,
    pub statsd_port: u16,
    pub relay_address: SocketAddr,
    /// Network mode: the key derived from `relaySecret`; frames to the relay
    /// then carry a MAC the relay's `--udp-secret` checks.
    pub relay_key: Option<crate::wire::mac::MacKey>,
    /// Network mode: also send each request's DogStatsD lines straight to
    /// `agentHost:statsdPort`. Off by default: on Traefik <= 3.7.15 the host
    /// race (traefik#11629) delivers cut lines and sibling's lines there,
    /// while the relay's metrics come from checksummed frames.
    pub direct_statsd: bool,
    /// The catch-all sampling rule; `None`: follow the agent's rates.
    pub sample_rate: Option<SampleRate>,
    /// Rates by host, path prefix and method, before `sample_rate`.
    pub sampling_rules: Vec<SamplingRule>,
    /// What is never buffered: listed path prefixes, hosts, extensions.
    pub buffering: Policy,
    /// Styles tried, in order, to read the caller's trace context.
    pub propagation_extract: Vec<Style>,
    /// Styles written into the upstream request; empty: headers untouched.
    pub propagation_inject: Vec<Style>,
    /// Whether to continue the caller's trace at all. Edge proxies facing
    /// the internet set it false: every request then starts a new trace.
    pub trust_incoming: bool,
    /// Opt-in header-to-tag mapping (dd-trace's `DD_TRACE_HEADER_TAGS`).
    pub header_tags: Vec<HeaderTag>,
    /// Tags every record carries: `DD_TAGS` from the environment Traefik
    /// hands the plugin (see [`env`]).
    pub tags: BTreeMap<String, String>,
}

pub const DEFAULT_PIPE_PATH: &str = "/run/dd/traefik-datadog.fifo";
pub const DEFAULT_RELAY_ADDRESS: &str = "127.0.0.1:8127";

impl Default for Config {
    fn default() -> Self {
        Self {
            service: "traefik".to_owned(),
            env: String::new(),
            version: String::new(),
            span_name: "traefik.request".to_owned(),
            resource_from: ResourceFrom::Host,
            error_statuses: StatusSet::server_errors(),
            mode: Mode::Auto,
            pipe_path: DEFAULT_PIPE_PATH.to_owned(),
            spool_max_bytes: crate::transport::spool::MAX_BYTES,
            agent_host: "127.0.0.1".to_owned(),
            statsd_port: 8125,
            relay_address: SocketAddr::from(([127, 0, 0, 1], 8127)),
            relay_key: None,
            direct_statsd: false,
            sample_rate: None,
            sampling_rules: Vec::new(),
            buffering: Policy::default(),
            propagation_extract: Style::DEFAULT.to_vec(),
            propagation_inject: Style::DEFAULT.to_vec(),
            trust_incoming: true,
            header_tags: Vec::new(),
            tags: BTreeMap::new(),
        }
    }
}

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    pub key: String,
    pub problem: String,
}

/// All problems found in a configuration; shown to the user as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub errors: Vec<KeyError>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "key \"{}\": {}", e.key, e.problem)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses the bytes `get_config` returned. Empty input means "all defaults"
    /// (a middleware declared with no options).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        Self::from_json_with_env(bytes, &env::Env::default())
    }

    /// As [`Config::from_json`], with the environment's unified service
    /// tags as defaults: `DD_SERVICE`, `DD_ENV` and `DD_VERSION` fill
    /// `service`, `env` and `version` where the Middleware leaves them out,
    /// and `DD_TAGS` gives every record its tags.
    pub fn from_json_with_env(bytes: &[u8], env: &env::Env) -> Result<Self, ConfigError> {
        let mut base = Self::default();
        for (field, value) in [
            (&mut base.service, &env.service),
            (&mut base.env, &env.env),
            (&mut base.version, &env.version),
        ] {
            if let Some(v) = value {
                v.clone_into(field);
            }
        }
        base.tags = env.tags.clone();
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        if text.is_empty() || text == "null" {
            return Ok(base);
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Self::from_map_over(base, &map),
            Ok(_) => Err(one("(config)", "is not a JSON object of options")),
            Err(e) => Err(one("(config)", &format!("is not valid JSON: {e}"))),
        }
    }

    pub fn from_map(map: &Map<String, Value>) -> Result<Self, ConfigError> {
        Self::from_map_over(Self::default(), map)
    }

    /// The keys of `map` set over `base`.
    fn from_map_over(mut c: Self, map: &Map<String, Value>) -> Result<Self, ConfigError> {
        let mut errors = Vec::new();
        for (key, value) in map {
            if let Err(problem) = c.set(key, value) {
                errors.push(KeyError {
                    key: key.clone(),
                    problem,
                });
            }
        }
        if c.direct_statsd && c.agent_host.parse::<IpAddr>().is_err() {
            errors.push(KeyError {
                key: "agentHost".to_owned(),
                problem: format!(
                    "{:?} must be a literal IP address with directStatsd (the guest cannot resolve names safely)",
                    c.agent_host
                ),
            });
        }
        if errors.is_empty() {
            Ok(c)
        } else {
            Err(ConfigError { errors })
        }
    }

    /// Reads one key's value into the configuration, by the key's entry
    /// in [`KEYS`].
    fn set(&mut self, key: &str, v: &Value) -> Result<(), String> {
        match KEYS.iter().find(|k| k.name == key) {
            Some(k) => (k.set)(self, v),
            None => Err(format!(
                "unknown key; known keys are {}",
                keys::names().join(", ")
            )),
        }
    }
}

fn one(key: &str, problem: &str) -> ConfigError {
    ConfigError {
        errors: vec![KeyError {
            key: key.to_owned(),
            problem: problem.to_owned(),
        }],
    }
}

/// What a record takes from the configuration.
impl<'a> From<&'a Config> for record::Settings<'a> {
    fn from(c: &'a Config) -> Self {
        Self {
            service: &c.service,
            env: &c.env,
            version: &c.version,
            span_name: &c.span_name,
            resource_from: c.resource_from,
            error_statuses: &c.error_statuses,
            tags: &c.tags,
        }
    }
}

/// What propagation, and the sampling of new traces, take from it.
impl<'a> From<&'a Config> for propagation::Settings<'a> {
    fn from(c: &'a Config) -> Self {
        Self {
            trust_incoming: c.trust_incoming,
            extract: &c.propagation_extract,
            inject: &c.propagation_inject,
            sampling_rules: &c.sampling_rules,
            sample_rate: c.sample_rate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Config, ConfigError> {
        Config::from_json(json.as_bytes())
    }

    fn err(json: &str) -> String {
        parse(json)
            .expect_err("config must be rejected")
            .to_string()
    }

    #[test]
    fn empty_config_gives_defaults() {
        assert_eq!(parse("").expect("defaults"), Config::default());
        assert_eq!(parse("{}").expect("defaults"), Config::default());
        assert_eq!(parse("null").expect("defaults"), Config::default());
    }

    #[test]
    fn full_config_typed() {
        let c = parse(
            r#"{"service":"edge","env":"prod","version":"1.2.3","spanName":"nginx.request",
                "resourceFrom":"method path","errorStatuses":"400-599","mode":"log",
                "pipePath":"/run/dd/x.fifo","agentHost":"10.0.0.2","statsdPort":9125,
                "relayAddress":"10.0.0.3:9000","sampleRate":0.25,
                "unbufferedPaths":["/download","/events"],"unbufferedHosts":["Big.Example"]}"#,
        )
        .expect("valid config");
        assert_eq!(c.service, "edge");
        assert_eq!(c.env, "prod");
        assert_eq!(c.version, "1.2.3");
        assert_eq!(c.span_name, "nginx.request");
        assert_eq!(c.resource_from, ResourceFrom::MethodPath);
        assert!(c.error_statuses.contains(404));
        assert_eq!(c.mode, Mode::Log);
        assert_eq!(c.pipe_path, "/run/dd/x.fifo");
        assert_eq!(c.agent_host, "10.0.0.2");
        assert_eq!(c.statsd_port, 9125);
        assert_eq!(c.relay_address, "10.0.0.3:9000".parse().expect("addr"));
        assert_eq!(c.sample_rate, SampleRate::new(0.25).ok());
        assert_eq!(c.buffering.unbuffered_paths, vec!["/download", "/events"]);
        assert_eq!(c.buffering.unbuffered_hosts, vec!["big.example"]);
    }

    #[test]
    fn sampling_rules_key() {
        assert_eq!(Config::default().sample_rate, None);
        let c =
            parse(r#"{"samplingRules":[{"host":"a.example","sampleRate":"0.5"}]}"#).expect("valid");
        assert_eq!(c.sampling_rules.len(), 1);
        assert_eq!(c.sampling_rules[0].rate.get(), 0.5);
        assert_eq!(
            err(r#"{"samplingRules":[{"host":"a.example"}]}"#),
            "key \"samplingRules\": rule 1: \"sampleRate\" is missing"
        );
    }

    #[test]
    fn strings_accepted_for_numbers_as_crd_providers_send_them() {
        let c = parse(r#"{"statsdPort":"8126","sampleRate":"0.5","version":1.5}"#).expect("valid");
        assert_eq!(c.statsd_port, 8126);
        assert_eq!(c.sample_rate, SampleRate::new(0.5).ok());
        assert_eq!(c.version, "1.5");
    }

    #[test]
    fn lists_from_strings_and_indexed_maps() {
        let c = parse(r#"{"unbufferedPaths":"/a, /b","unbufferedHosts":{"1":"y","0":"x"}}"#)
            .expect("valid");
        assert_eq!(c.buffering.unbuffered_paths, vec!["/a", "/b"]);
        assert_eq!(c.buffering.unbuffered_hosts, vec!["x", "y"]);
    }

    #[test]
    fn unbuffered_extensions_replace_the_default_list() {
        assert_eq!(
            parse("{}")
                .expect("defaults")
                .buffering
                .unbuffered_extensions
                .len(),
            crate::buffering::DEFAULT_EXTENSIONS.len()
        );
        let c = parse(r#"{"unbufferedExtensions":".ISO, zip,csv"}"#).expect("valid");
        assert_eq!(c.buffering.unbuffered_extensions, vec!["iso", "zip", "csv"]);
        let c = parse(r#"{"unbufferedExtensions":["none"]}"#).expect("valid");
        assert!(c.buffering.unbuffered_extensions.is_empty());
        assert_eq!(
            err(r#"{"unbufferedExtensions":"tar.gz"}"#),
            "key \"unbufferedExtensions\": \"tar.gz\" is not a file extension (letters and digits, like \"iso\" or \"zip\")"
        );
    }

    #[test]
    fn header_tags_opt_in() {
        assert_eq!(parse("{}").expect("defaults").header_tags, vec![]);
        let c =
            parse(r#"{"headerTags":"x-request-id:http.request_id, Content-Type"}"#).expect("valid");
        assert_eq!(
            c.header_tags
                .iter()
                .map(|t| t.tag_for(false))
                .collect::<Vec<_>>(),
            vec!["http.request_id", "http.request.headers.content-type"]
        );
        assert_eq!(
            err(r#"{"headerTags":["x-a:"]}"#),
            "key \"headerTags\": \"x-a:\" has an empty or malformed tag name after ':'"
        );
    }

    #[test]
    fn unknown_key_is_named() {
        assert_eq!(
            err(r#"{"service":"edge","bogus":1}"#),
            format!(
                "key \"bogus\": unknown key; known keys are {}",
                keys::names().join(", ")
            )
        );
    }

    #[test]
    fn wrong_types_are_named() {
        assert_eq!(
            err(r#"{"statsdPort":"abc"}"#),
            "key \"statsdPort\": \"abc\" is not a port number (1-65535)"
        );
        assert_eq!(
            err(r#"{"statsdPort":70000}"#),
            "key \"statsdPort\": number 70000 is not a port number (1-65535)"
        );
        assert_eq!(
            err(r#"{"service":["a"]}"#),
            "key \"service\": a list is not a string"
        );
        assert_eq!(
            err(r#"{"sampleRate":true}"#),
            "key \"sampleRate\": boolean true is not a number"
        );
    }

    #[test]
    fn bad_values_are_explained() {
        assert_eq!(
            err(r#"{"sampleRate":-0.5}"#),
            "key \"sampleRate\": -0.5 is outside 0..1"
        );
        assert_eq!(
            err(r#"{"sampleRate":"1.5"}"#),
            "key \"sampleRate\": 1.5 is outside 0..1"
        );
        assert_eq!(
            err(r#"{"service":""}"#),
            "key \"service\": must not be empty"
        );
        assert_eq!(
            err(r#"{"spanName":"  "}"#),
            "key \"spanName\": must not be empty"
        );
        assert_eq!(
            err(r#"{"resourceFrom":"path"}"#),
            "key \"resourceFrom\": \"path\" is not one of \"host\", \"method host\", \"method path\""
        );
        assert_eq!(
            err(r#"{"mode":"udp"}"#),
            "key \"mode\": \"udp\" is not one of \"auto\", \"pipe\", \"network\", \"log\""
        );
        assert_eq!(
            err(r#"{"errorStatuses":"5xx"}"#),
            "key \"errorStatuses\": \"5xx\" in \"5xx\" is not a status code between 100 and 999"
        );
        assert_eq!(
            err(r#"{"pipePath":"relative.fifo"}"#),
            "key \"pipePath\": \"relative.fifo\" must be an absolute path inside a directory mounted with settings.mounts"
        );
        assert_eq!(
            err(r#"{"relayAddress":"relay:8127"}"#),
            "key \"relayAddress\": \"relay:8127\" is not a literal IP address and port like \"127.0.0.1:8127\""
        );
        assert_eq!(
            err(r#"{"unbufferedPaths":["download"]}"#),
            "key \"unbufferedPaths\": \"download\" is not a path prefix starting with '/'"
        );
    }

    #[test]
    fn relay_secret_is_validated_and_never_shown() {
        let secret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t";
        let c = parse(&format!(r#"{{"mode":"network","relaySecret":"{secret}"}}"#)).expect("valid");
        assert_eq!(
            c.relay_key,
            Some(crate::wire::mac::MacKey::from_secret(secret).expect("valid"))
        );
        assert_eq!(Config::default().relay_key, None);
        let e = err(r#"{"relaySecret":"hunter2"}"#);
        assert_eq!(
            e,
            "key \"relaySecret\": is 7 characters long; a secret needs at least 32 \
             (e.g. the output of `openssl rand -hex 32`)"
        );
        assert!(!e.contains("hunter2"));
        assert_eq!(
            err(r#"{"relaySecret":["a"]}"#),
            "key \"relaySecret\": a list is not a string"
        );
    }

    #[test]
    fn network_mode_requires_ip_agent_host() {
        assert_eq!(
            err(r#"{"mode":"network","directStatsd":"true","agentHost":"datadog-agent"}"#),
            "key \"agentHost\": \"datadog-agent\" must be a literal IP address with directStatsd (the guest cannot resolve names safely)"
        );
        assert!(parse(r#"{"mode":"network","agentHost":"datadog-agent"}"#).is_ok());
        assert!(parse(r#"{"mode":"log","agentHost":"datadog-agent"}"#).is_ok());
    }

    #[test]
    fn several_problems_in_one_line() {
        assert_eq!(
            err(r#"{"env":"x","sampleRate":2,"service":""}"#),
            "key \"sampleRate\": 2 is outside 0..1; key \"service\": must not be empty"
        );
    }

    #[test]
    fn propagation_defaults_follow_dd_trace() {
        let c = Config::default();
        assert_eq!(
            c.propagation_extract,
            vec![Style::Datadog, Style::TraceContext]
        );
        assert_eq!(
            c.propagation_inject,
            vec![Style::Datadog, Style::TraceContext]
        );
        assert!(c.trust_incoming);
    }

    #[test]
    fn propagation_styles_from_lists_and_strings() {
        let c = parse(
            r#"{"propagationStyleExtract":"tracecontext, B3 datadog","propagationStyleInject":["b3multi","datadog","b3"]}"#,
        )
        .expect("valid");
        assert_eq!(
            c.propagation_extract,
            vec![Style::TraceContext, Style::B3, Style::Datadog]
        );
        assert_eq!(c.propagation_inject, vec![Style::B3, Style::Datadog]);
        let c = parse(r#"{"propagationStyleExtract":{"1":"datadog","0":"b3"},"propagationStyleInject":"none"}"#)
            .expect("valid");
        assert_eq!(c.propagation_extract, vec![Style::B3, Style::Datadog]);
        assert_eq!(c.propagation_inject, vec![]);
    }

    #[test]
    fn bad_propagation_styles_name_the_key() {
        assert_eq!(
            err(r#"{"propagationStyleExtract":"datadog,zipkin"}"#),
            "key \"propagationStyleExtract\": \"zipkin\" is not one of \"datadog\", \"tracecontext\", \"b3\", \"none\""
        );
        assert_eq!(
            err(r#"{"propagationStyleInject":"w3c"}"#),
            "key \"propagationStyleInject\": \"w3c\" is not one of \"datadog\", \"tracecontext\", \"b3\", \"none\""
        );
        assert_eq!(
            err(r#"{"propagationStyleInject":" , "}"#),
            "key \"propagationStyleInject\": must name at least one style (or \"none\")"
        );
        assert_eq!(
            err(r#"{"propagationStyleExtract":[]}"#),
            "key \"propagationStyleExtract\": must name at least one style (or \"none\")"
        );
        assert_eq!(
            err(r#"{"propagationStyleExtract":"none,datadog"}"#),
            "key \"propagationStyleExtract\": \"none\" cannot be combined with other styles"
        );
        assert_eq!(
            err(r#"{"propagationStyleInject":5}"#),
            "key \"propagationStyleInject\": number 5 is not a list"
        );
    }

    #[test]
    fn booleans_in_every_provider_spelling() {
        for (json, want) in [
            ("true", true),
            ("false", false),
            ("\"true\"", true),
            ("\"False\"", false),
            ("\" TRUE \"", true),
            ("\"1\"", true),
            ("\"0\"", false),
            ("1", true),
            ("0", false),
        ] {
            let c = parse(&format!(r#"{{"trustIncoming":{json}}}"#)).expect("valid bool");
            assert_eq!(c.trust_incoming, want, "{json}");
        }
        assert_eq!(
            err(r#"{"trustIncoming":"yes"}"#),
            "key \"trustIncoming\": \"yes\" is not a boolean (true, false, 1 or 0)"
        );
        assert_eq!(
            err(r#"{"trustIncoming":2}"#),
            "key \"trustIncoming\": number 2 is not a boolean (true, false, 1 or 0)"
        );
        assert_eq!(
            err(r#"{"trustIncoming":null}"#),
            "key \"trustIncoming\": null is not a boolean (true, false, 1 or 0)"
        );
        assert_eq!(
            err(r#"{"trustIncoming":["true"]}"#),
            "key \"trustIncoming\": a list is not a boolean (true, false, 1 or 0)"
        );
    }

    #[test]
    fn middleware_keys_win_over_the_environment() {
        let env = env::Env::read(|name| {
            Some(
                match name {
                    "DD_SERVICE" => "from-env",
                    "DD_ENV" => "staging",
                    "DD_VERSION" => "2.0",
                    "DD_TAGS" => "team:edge",
                    _ => return None,
                }
                .to_owned(),
            )
        });
        let c = Config::from_json_with_env(br#"{"service":"edge"}"#, &env).expect("valid");
        assert_eq!(
            (c.service.as_str(), c.env.as_str(), c.version.as_str()),
            ("edge", "staging", "2.0")
        );
        assert_eq!(
            c.tags,
            BTreeMap::from([("team".to_owned(), "edge".to_owned())])
        );
        let c = Config::from_json_with_env(br#"{"env":"","version":"1"}"#, &env).expect("valid");
        assert_eq!(
            (c.service.as_str(), c.env.as_str(), c.version.as_str()),
            ("from-env", "", "1"),
            "a key given empty still wins"
        );
        let c = Config::from_json_with_env(b"", &env).expect("valid");
        assert_eq!(
            (c.service.as_str(), c.env.as_str()),
            ("from-env", "staging")
        );
        assert_eq!(
            Config::from_json_with_env(b"{}", &env::Env::default()),
            Ok(Config::default())
        );
    }

    #[test]
    fn not_an_object() {
        assert_eq!(
            err("[1]"),
            "key \"(config)\": is not a JSON object of options"
        );
        assert!(err("{").starts_with("key \"(config)\": is not valid JSON"));
    }
}
