use super::*;
use crate::args::parse_duration;
use std::collections::HashMap;

fn run(args: &[&str], vars: &[(&str, &str)]) -> Result<Settings, String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    match parse(&args, &|k| vars.get(k).cloned())? {
        Command::Run(s) => Ok(*s),
        other => Err(format!("not a run: {other:?}")),
    }
}

fn err(args: &[&str]) -> String {
    run(args, &[]).expect_err("must be rejected")
}

#[test]
fn defaults() {
    let s = run(&["--stdin"], &[]).expect("valid");
    assert_eq!(
        s,
        Settings {
            inputs: InputSettings {
                stdin: true,
                ..InputSettings::default()
            },
            ..Settings::default()
        }
    );
    assert_eq!(s.traces.agent.to_string(), "http://127.0.0.1:8126");
    assert_eq!(s.metrics.statsd.to_string(), "udp://127.0.0.1:8125");
}

#[test]
fn help_and_version() {
    let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(parse(&args(&["--help"]), &|_| None), Ok(Command::Help));
    assert_eq!(
        parse(&args(&["--pipe", "/x", "-V"]), &|_| None),
        Ok(Command::Version)
    );
    assert_eq!(
        parse(
            &args(&["--check-plugin-config", "{\"service\":\"x\"}"]),
            &|_| None
        ),
        Ok(Command::CheckPluginConfig("{\"service\":\"x\"}".to_owned()))
    );
}

#[test]
fn every_flag() {
    let s = run(
        &[
            "--pipe=/run/dd/x.fifo",
            "--publish-dir",
            "/run/dd/pub",
            "--stdin",
            "--follow",
            "/var/log/traefik.log",
            "--follow-from",
            "beginning",
            "--udp",
            "127.0.0.1:8127",
            "--echo-records",
            "--max-line-bytes",
            "4096",
            "--queue-size",
            "50",
            "--agent-url",
            "unix:///var/run/datadog/apm.socket",
            "--flush-interval",
            "250ms",
            "--batch-spans",
            "10",
            "--batch-bytes",
            "1_000_000",
            "--max-buffered-spans",
            "20",
            "--max-buffered-bytes",
            "2000000",
            "--connect-timeout",
            "1s",
            "--request-timeout",
            "3",
            "--shutdown-timeout",
            "1m",
            "--dogstatsd-url",
            "unix:///var/run/datadog/dsd.socket",
            "--metrics-prefix",
            "edge.proxy",
            "--metrics-interval",
            "5s",
            "--max-samples",
            "100",
            "--no-request-metrics",
            "--telemetry-interval",
            "30s",
            "--no-telemetry",
            "--no-traces",
            "--env",
            "prod",
            "--service=edge",
            "--service-version",
            "1.2",
        ],
        &[("DD_ENV", "ignored"), ("DD_SERVICE", "ignored")],
    )
    .expect("valid");
    let pipe = s.inputs.pipe.as_ref().map(|p| &p.path);
    assert_eq!(pipe, Some(&PathBuf::from("/run/dd/x.fifo")));
    assert_eq!(s.publish_dir, Some(PathBuf::from("/run/dd/pub")));
    assert!(s.inputs.stdin && s.inputs.echo_records);
    assert_eq!(
        s.inputs.follow,
        Some(FollowSettings {
            path: PathBuf::from("/var/log/traefik.log"),
            state: PathBuf::from("/var/log/traefik.log.relay-offset"),
            from: FollowFrom::Beginning,
        })
    );
    let udp = s.inputs.udp.as_ref().map(|u| u.addr.as_str());
    assert_eq!(udp, Some("127.0.0.1:8127"));
    assert_eq!((s.inputs.max_line_bytes, s.inputs.queue_size), (4096, 50));
    assert_eq!(
        s.traces.agent,
        AgentUrl::Unix("/var/run/datadog/apm.socket".into())
    );
    let t = &s.traces;
    assert_eq!(t.flush_interval, Duration::from_millis(250));
    assert_eq!((t.batch_spans, t.batch_bytes), (10, 1_000_000));
    assert_eq!(t.max_buffered_spans, 20);
    assert_eq!(t.max_buffered_bytes, 2_000_000);
    assert_eq!(t.connect_timeout, Duration::from_secs(1));
    assert_eq!(t.request_timeout, Duration::from_secs(3));
    assert_eq!(s.pipeline.shutdown_timeout, Duration::from_secs(60));
    assert_eq!(
        s.metrics.statsd,
        StatsdUrl::Unix("/var/run/datadog/dsd.socket".into())
    );
    assert_eq!(s.metrics.prefix, "edge.proxy");
    assert_eq!(s.metrics.interval.get(), Duration::from_secs(5));
    assert_eq!(s.metrics.max_samples, 100);
    assert!(!s.metrics.request_metrics && !s.telemetry.enabled && !s.traces.enabled);
    assert_eq!(s.telemetry.interval, Duration::from_secs(30));
    assert_eq!(
        s.pipeline.defaults,
        Defaults {
            env: "prod".into(),
            service: "edge".into(),
            version: "1.2".into(),
            ..Defaults::default()
        }
    );
}

#[test]
fn dd_tags_are_tags_and_last_defaults() {
    let s = run(
        &["--stdin"],
        &[
            (
                "DD_TAGS",
                "team:edge, env:from-tags,service:svc-tags, bad|key:1",
            ),
            ("DD_ENV", "prod"),
        ],
    )
    .expect("valid");
    let d = &s.pipeline.defaults;
    assert_eq!(
        (d.env.as_str(), d.service.as_str(), d.version.as_str()),
        ("prod", "svc-tags", "")
    );
    assert_eq!(
        d.tags
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>(),
        vec!["team:edge"]
    );
    assert_eq!(
        d.skipped_tags.to_string(),
        "1 with '|', '#', a control character or a reserved key"
    );
}

#[test]
fn datadog_environment() {
    let s = run(
        &["--udp", "0.0.0.0:8127"],
        &[
            ("DD_AGENT_HOST", "datadog-agent"),
            ("DD_TRACE_AGENT_PORT", "9126"),
            ("DD_ENV", "staging"),
            ("DD_SERVICE", "edge"),
            ("DD_VERSION", "7"),
        ],
    )
    .expect("valid");
    assert_eq!(s.traces.agent.to_string(), "http://datadog-agent:9126");
    assert_eq!(s.metrics.statsd.to_string(), "udp://datadog-agent:8125");
    assert_eq!(
        s.pipeline.defaults,
        Defaults {
            env: "staging".into(),
            service: "edge".into(),
            version: "7".into(),
            ..Defaults::default()
        }
    );
    let s = run(
        &["--stdin"],
        &[
            ("DD_AGENT_HOST", "ignored-for-urls"),
            ("DD_TRACE_AGENT_URL", "http://[::1]:8126"),
            ("DD_DOGSTATSD_URL", "udp://10.0.0.1"),
        ],
    )
    .expect("valid");
    assert_eq!(
        s.traces.agent,
        AgentUrl::Http {
            host: "::1".into(),
            port: 8126
        }
    );
    assert_eq!(s.traces.agent.to_string(), "http://[::1]:8126");
    assert_eq!(s.metrics.statsd.to_string(), "udp://10.0.0.1:8125");
    let s = run(
        &["--stdin", "--agent-url", "http://a:1"],
        &[("DD_TRACE_AGENT_URL", "unix:///x")],
    )
    .expect("valid");
    assert_eq!(s.traces.agent.to_string(), "http://a:1", "flag beats env");
}

#[test]
fn errors_name_the_flag_or_variable() {
    assert_eq!(
        err(&[]),
        "no input: give at least one of --pipe, --stdin, --follow, --udp"
    );
    assert_eq!(err(&["--stdin", "--bogus"]), "unknown flag --bogus");
    assert_eq!(err(&["--pipe"]), "--pipe needs a value");
    assert_eq!(err(&["--stdin=yes"]), "--stdin takes no value");
    assert_eq!(
        err(&["--stdin", "--queue-size", "x"]),
        "--queue-size: \"x\" is not a whole number"
    );
    assert_eq!(
        err(&["--stdin", "--queue-size", "0"]),
        "--queue-size: 0 is below the minimum 1"
    );
    assert_eq!(
        err(&["--stdin", "--flush-interval", "soon"]),
        "--flush-interval: \"soon\" is not a duration like 500ms, 2s, 1m"
    );
    assert_eq!(
        err(&["--stdin", "--metrics-interval", "3s"]),
        "--metrics-interval: 3s does not divide 10s (the agent's bucket); use e.g. 1s, 2s, 5s, 10s"
    );
    assert_eq!(
        err(&["--stdin", "--agent-url", "https://x"]),
        "--agent-url: \"https://x\" is not http://HOST:PORT or unix:///ABSOLUTE/PATH"
    );
    assert_eq!(
        err(&["--stdin", "--dogstatsd-url", "udp://h:0"]),
        "--dogstatsd-url: \"udp://h:0\" is not udp://HOST:PORT or unix:///ABSOLUTE/PATH"
    );
    assert_eq!(
        err(&["--udp", "8127"]),
        "--udp: \"8127\" is not an address and port like 127.0.0.1:8127"
    );
    assert_eq!(
        err(&["--stdin", "--state", "/x"]),
        "--state is only used with --follow"
    );
    assert_eq!(
        err(&["--stdin", "--max-buffered-spans", "10"]),
        "--max-buffered-spans: 10 is smaller than --batch-spans 1000"
    );
    assert_eq!(
        err(&["--stdin", "--max-buffered-bytes", "100000"]),
        "--max-buffered-bytes: 100000 is smaller than --batch-bytes 2000000"
    );
    assert_eq!(
        err(&["--stdin", "--metrics-prefix", "9x"]),
        "--metrics-prefix: \"9x\" must start with a letter and hold only letters, digits, '_' and '.'"
    );
    assert_eq!(
        err(&["stdin"]),
        "unexpected argument \"stdin\" (flags start with --)"
    );
    assert_eq!(
        run(&["--stdin"], &[("DD_TRACE_AGENT_URL", "tcp://x")]).expect_err("bad env"),
        "DD_TRACE_AGENT_URL: \"tcp://x\" is not http://HOST:PORT or unix:///ABSOLUTE/PATH"
    );
    assert_eq!(
        run(&["--stdin"], &[("DD_DOGSTATSD_PORT", "99999")]).expect_err("bad env"),
        "DD_DOGSTATSD_PORT: \"99999\" is not a port number (1-65535)"
    );
}

#[test]
fn bounds_and_secret_flags_and_env() {
    let secret = "0123456789abcdef0123456789abcdef";
    let key = MacKey::from_secret(secret).expect("valid");
    let s = run(
        &[
            "--udp",
            "127.0.0.1:8127",
            "--udp-secret",
            secret,
            "--pipe",
            "/run/dd/x.fifo",
            "--pipe-group",
            "65532",
            "--queue-bytes",
            "1_048_576",
            "--max-resources",
            "50",
            "--udp-buffer-bytes",
            "16777216",
        ],
        &[(ENV_MAX_RESOURCES, "7"), (ENV_UDP_SECRET, "ignored")],
    )
    .expect("valid");
    let udp = s.inputs.udp.expect("udp");
    assert_eq!(udp.key, Some(key.clone()));
    assert_eq!(udp.buffer_bytes, 16 << 20);
    assert_eq!(s.inputs.pipe.and_then(|p| p.group), Some(65532));
    assert_eq!(
        (s.inputs.queue_bytes, s.metrics.max_resources),
        (1 << 20, 50)
    );
    let s = run(
        &["--udp", "127.0.0.1:8127"],
        &[(ENV_MAX_RESOURCES, "7"), (ENV_UDP_SECRET, secret)],
    )
    .expect("valid");
    let udp_key = s.inputs.udp.and_then(|u| u.key);
    assert_eq!((s.metrics.max_resources, udp_key), (7, Some(key.clone())));
    let dir = std::env::temp_dir().join(format!("relay-secret-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join("secret");
    std::fs::write(&file, format!("{secret}\n")).expect("write");
    let f = file.to_str().expect("utf-8");
    let s = run(&["--udp", "127.0.0.1:8127", "--udp-secret-file", f], &[]).expect("valid");
    assert_eq!(s.inputs.udp.and_then(|u| u.key), Some(key.clone()));
    let s = run(&["--udp", "127.0.0.1:8127"], &[(ENV_UDP_SECRET_FILE, f)]).expect("valid");
    assert_eq!(s.inputs.udp.as_ref().and_then(|u| u.key.clone()), Some(key));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!format!("{s:?}").contains(secret), "never printed");
}

#[test]
fn bounds_and_secret_errors_are_explained() {
    let e = err(&["--udp", "127.0.0.1:1", "--udp-secret", "hunter2"]);
    assert_eq!(
        e,
        "--udp-secret: the secret is 7 characters long; a secret needs at least 32 \
         (e.g. the output of `openssl rand -hex 32`)"
    );
    assert!(!e.contains("hunter2"));
    assert_eq!(
        run(&["--udp", "127.0.0.1:1"], &[(ENV_UDP_SECRET, "short")]).expect_err("bad env"),
        "TRAEFIK_DATADOG_RELAY_UDP_SECRET: the secret is 5 characters long; a secret \
         needs at least 32 (e.g. the output of `openssl rand -hex 32`)"
    );
    assert!(
        err(&[
            "--udp",
            "127.0.0.1:1",
            "--udp-secret-file",
            "/nonexistent/s"
        ])
        .starts_with("--udp-secret-file: cannot read the secret from \"/nonexistent/s\": ")
    );
    assert_eq!(
        run(
            &["--udp", "127.0.0.1:1"],
            &[(ENV_UDP_SECRET, "a"), (ENV_UDP_SECRET_FILE, "/b")]
        )
        .expect_err("both"),
        "TRAEFIK_DATADOG_RELAY_UDP_SECRET and TRAEFIK_DATADOG_RELAY_UDP_SECRET_FILE are both set; keep one"
    );
    assert_eq!(
        err(&[
            "--stdin",
            "--udp-secret",
            "0123456789abcdef0123456789abcdef"
        ]),
        "--udp-secret is only used with --udp"
    );
    assert_eq!(
        err(&["--stdin", "--pipe-group", "1"]),
        "--pipe-group is only used with --pipe"
    );
    assert_eq!(
        err(&["--pipe", "/x", "--pipe-group", "traefik"]),
        "--pipe-group: \"traefik\" is not a numeric group id (like 65532)"
    );
    assert_eq!(
        err(&["--stdin", "--max-resources", "0"]),
        "--max-resources: 0 is below the minimum 1"
    );
    assert_eq!(
        run(&["--stdin"], &[(ENV_MAX_RESOURCES, "lots")]).expect_err("bad env"),
        "TRAEFIK_DATADOG_RELAY_MAX_RESOURCES: \"lots\" is not a whole number"
    );
    assert_eq!(
        err(&["--stdin", "--queue-bytes", "100"]),
        "--queue-bytes: 100 is below the minimum 4096"
    );
    assert_eq!(
        err(&["--stdin", "--udp-buffer-bytes", "65536"]),
        "--udp-buffer-bytes is only used with --udp"
    );
    assert_eq!(
        run(&["--udp", "127.0.0.1:1"], &[])
            .expect("valid")
            .inputs
            .udp
            .map(|u| u.buffer_bytes),
        Some(DEFAULT_UDP_BUFFER_BYTES)
    );
}

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
    assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
    assert_eq!(parse_duration("-1s"), None);
    assert_eq!(parse_duration("1h"), None);
    assert_eq!(parse_duration(""), None);
}

#[test]
fn state_default_and_explicit() {
    let s = run(&["--follow", "/l", "--state", "/var/lib/relay/pos"], &[]).expect("valid");
    assert_eq!(
        s.inputs.follow.map(|f| f.state),
        Some(PathBuf::from("/var/lib/relay/pos"))
    );
}

#[test]
fn value_errors_are_worded_like_the_others() {
    assert_eq!(err(&["--pipe", ""]), "--pipe needs a non-empty path");
    assert_eq!(err(&["--pipe="]), "--pipe needs a non-empty path");
    assert_eq!(
        err(&["--stdin", "--connect-timeout", "5ms"]),
        "--connect-timeout: 5ms is too short (at least 10ms)"
    );
    assert_eq!(
        err(&["--follow", "/l", "--follow-from", "middle"]),
        "--follow-from: \"middle\" is not \"beginning\" or \"end\""
    );
    assert_eq!(
        run(&["--stdin"], &[("DD_TRACE_AGENT_PORT", "0")]).expect_err("bad env"),
        "DD_TRACE_AGENT_PORT: \"0\" is not a port number (1-65535)"
    );
    let dir = std::env::temp_dir().join(format!("relay-short-secret-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join("secret");
    std::fs::write(&file, "short\n").expect("write");
    let f = file.to_str().expect("utf-8");
    let want = |name: &str| {
        format!(
            "{name} {f}: the secret is 5 characters long; a secret needs at least 32 \
             (e.g. the output of `openssl rand -hex 32`)"
        )
    };
    assert_eq!(
        err(&["--udp", "127.0.0.1:1", "--udp-secret-file", f]),
        want("--udp-secret-file")
    );
    assert_eq!(
        run(&["--udp", "127.0.0.1:1"], &[(ENV_UDP_SECRET_FILE, f)]).expect_err("bad env"),
        want(ENV_UDP_SECRET_FILE)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn publish_dir_defaults_to_the_fifo_directory() {
    let s = run(&["--pipe", "/run/dd/x.fifo"], &[]).expect("valid");
    assert_eq!(s.publish_dir, Some(PathBuf::from("/run/dd")));
    let s = run(&["--stdin", "--publish-dir", "/p"], &[]).expect("valid");
    assert_eq!(s.publish_dir, Some(PathBuf::from("/p")));
}

#[test]
fn health_and_log_format_flags_and_env() {
    use crate::health::ENV_HEALTH_LISTEN;
    use crate::log::{ENV_LOG_FORMAT, Format};
    let s = run(&["--stdin"], &[]).expect("valid");
    assert_eq!(
        (s.health.clone(), s.log_format),
        (
            HealthSettings {
                listen: None,
                unready_after: Duration::from_secs(60),
            },
            Format::Text
        )
    );
    let s = run(
        &[
            "--stdin",
            "--health-listen",
            "0.0.0.0:8128",
            "--unready-after",
            "2s",
            "--log-format",
            "json",
        ],
        &[(ENV_HEALTH_LISTEN, "127.0.0.1:1"), (ENV_LOG_FORMAT, "text")],
    )
    .expect("valid");
    assert_eq!(
        (s.health, s.log_format),
        (
            HealthSettings {
                listen: Some("0.0.0.0:8128".into()),
                unready_after: Duration::from_secs(2),
            },
            Format::Json
        ),
        "flags beat env"
    );
    let s = run(
        &["--stdin"],
        &[
            (ENV_HEALTH_LISTEN, "localhost:8128"),
            (ENV_LOG_FORMAT, "json"),
        ],
    )
    .expect("valid");
    assert_eq!(s.health.listen.as_deref(), Some("localhost:8128"));
    assert_eq!(s.log_format, Format::Json);
}

#[test]
fn health_and_log_format_errors_name_the_flag() {
    assert_eq!(
        err(&["--stdin", "--health-listen", "8128"]),
        "--health-listen: \"8128\" is not an address and port like 0.0.0.0:8128"
    );
    assert_eq!(
        err(&["--stdin", "--health-listen", ":8128"]),
        "--health-listen: \":8128\" is not an address and port like 0.0.0.0:8128"
    );
    assert_eq!(
        err(&["--stdin", "--health-listen"]),
        "--health-listen needs a value"
    );
    assert_eq!(
        err(&["--stdin", "--log-format", "yaml"]),
        "--log-format: \"yaml\" is not text or json"
    );
    assert_eq!(
        err(&["--stdin", "--unready-after", "soon"]),
        "--unready-after: \"soon\" is not a duration like 500ms, 2s, 1m"
    );
    assert_eq!(
        err(&["--stdin", "--unready-after", "1s"]),
        "--unready-after is only used with --health-listen"
    );
    assert_eq!(
        run(
            &["--stdin"],
            &[("TRAEFIK_DATADOG_RELAY_HEALTH_LISTEN", "0.0.0.0:99999")]
        )
        .expect_err("bad env"),
        "TRAEFIK_DATADOG_RELAY_HEALTH_LISTEN: \"0.0.0.0:99999\" is not an address and port like 0.0.0.0:8128"
    );
    assert_eq!(
        run(
            &["--stdin"],
            &[("TRAEFIK_DATADOG_RELAY_LOG_FORMAT", "JSON!")]
        )
        .expect_err("bad env"),
        "TRAEFIK_DATADOG_RELAY_LOG_FORMAT: \"JSON!\" is not text or json"
    );
}
