//! traefik-datadog-relay: reads the Traefik Datadog plugin's records (FIFO,
//! Traefik's log on stdin or in a file, UDP) and sends one span per request
//! to the Datadog trace agent and request metrics to DogStatsD.
//!
//! Threads: one per input → one bounded queue → the pipeline (spans,
//! metrics, telemetry) → a bounded span buffer → the sender (HTTP to the
//! agent). See `--help`.

#[cfg(unix)]
#[macro_use]
mod log;

#[cfg(unix)]
mod args;
#[cfg(unix)]
mod input;
#[cfg(unix)]
mod interval;
#[cfg(unix)]
mod pipeline;
#[cfg(unix)]
mod publish;
#[cfg(unix)]
mod rates_file;
#[cfg(unix)]
mod routes;
#[cfg(unix)]
mod settings;
#[cfg(unix)]
mod source;
#[cfg(unix)]
mod statsd;
#[cfg(unix)]
mod sys;
#[cfg(unix)]
mod telemetry;
#[cfg(unix)]
mod traces;

#[cfg(not(unix))]
fn main() {
    // The workspace is also built for wasm32-wasip1 (the plugin); the relay
    // is a native Unix program.
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        b"traefik-datadog-relay runs on Linux and other Unix systems only\n",
    );
    std::process::exit(2);
}

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    use settings::Command;
    use std::io::Write;
    use std::process::ExitCode;

    let args: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(std::ffi::OsString::into_string)
        .collect();
    let Ok(args) = args else {
        error!("arguments must be valid UTF-8");
        return ExitCode::from(2);
    };
    match settings::parse(&args, &|k| std::env::var(k).ok()) {
        Ok(Command::Help) => {
            let _ = std::io::stdout().write_all(settings::HELP.as_bytes());
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            let _ = writeln!(
                std::io::stdout(),
                "traefik-datadog-relay {}",
                env!("CARGO_PKG_VERSION")
            );
            ExitCode::SUCCESS
        }
        Ok(Command::CheckPluginConfig(json)) => {
            match tdp_core::config::Config::from_json(json.as_bytes()) {
                Ok(_) => {
                    let _ = writeln!(std::io::stdout(), "plugin config ok");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    let _ = writeln!(std::io::stdout(), "invalid plugin config: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Ok(Command::Run(s)) => match run(*s) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                error!("{e}");
                ExitCode::from(1)
            }
        },
        Err(e) => {
            error!("{e}; see --help");
            ExitCode::from(2)
        }
    }
}

#[cfg(unix)]
fn run(s: settings::Settings) -> Result<(), String> {
    use input::{Queue, Source};
    use std::sync::{Arc, Mutex};
    use telemetry::Counters;
    use traces::batch::{Batcher, SpanBuffer};
    use traces::http::Client;
    use traces::sender::Sender;

    sys::install_signal_handlers().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let counters = Arc::new(Counters::default());

    let traces = if s.traces {
        let buffer = Arc::new(SpanBuffer::new(
            s.max_buffered_spans,
            s.max_buffered_bytes,
            counters.clone(),
        ));
        let rates: traces::sender::Rates = Arc::new(Mutex::new(Default::default()));
        let client = Client::new(&s.agent, s.connect_timeout)
            .map_err(|e| format!("cannot set up the agent client: {e}"))?;
        let sender = Sender {
            client: Box::new(client),
            agent: s.agent.to_string(),
            buffer: buffer.clone(),
            counters: counters.clone(),
            rates: rates.clone(),
            policy: traces::sender::policy(s.request_timeout, s.payload_deadline),
            jitter: traces::policy::Jitter::new(traces::sender::jitter_seed()),
            rates_file: rates_file::RatesFile::new(publish::dir(
                s.publish_dir.as_deref(),
                s.pipe.as_deref(),
            )),
        }
        .spawn()
        .map_err(|e| format!("cannot start the sender thread: {e}"))?;
        Some(pipeline::Traces {
            batcher: Batcher::new(s.batch_spans, s.batch_bytes),
            buffer,
            sender,
            rates,
        })
    } else {
        None
    };

    let (queue, rx) = Queue::new(s.queue_size, counters.clone());
    let queue = queue.with_max_bytes(s.queue_bytes);
    let mut inputs = Vec::new();
    if let Some(p) = &s.pipe {
        input::fifo_mode::prepare(p, s.pipe_group)?;
        input::pipe::start(p, queue.clone())?;
        inputs.push(Source::Pipe);
    }
    if s.stdin {
        input::stdin::start(queue.clone(), s.echo_records, s.max_line_bytes)
            .map_err(|e| format!("--stdin: cannot start thread: {e}"))?;
        inputs.push(Source::Stdin);
    }
    if let Some(f) = &s.follow {
        input::follow::start(
            input::follow::Options {
                path: f.path.clone(),
                state: f.state.clone(),
                from: f.from,
                max_line: s.max_line_bytes,
            },
            queue.clone(),
        )?;
        inputs.push(Source::Follow);
    }
    if let Some(addr) = &s.udp {
        input::udp::start(addr, s.udp_buffer_bytes, queue.clone(), s.udp_key.clone())?;
        inputs.push(Source::Udp);
    }
    // The pipeline sees the queue disconnect once every input has ended.
    drop(queue);

    let names: Vec<&str> = inputs.iter().map(|i| i.name()).collect();
    info!(
        "started: inputs {}; spans to {}; metrics to {} (prefix {}, every {:?}); pid {}",
        names.join(", "),
        if s.traces {
            s.agent.to_string()
        } else {
            "nowhere (--no-traces)".to_owned()
        },
        s.statsd,
        s.metrics_prefix,
        s.metrics_interval.get(),
        std::process::id()
    );

    let statsd = statsd::StatsdSink::new(s.statsd.clone(), counters.clone());
    pipeline::Pipeline {
        counters,
        defaults: s.defaults.clone(),
        traces,
        aggregator: s.request_metrics.then(|| {
            tdp_core::metrics::dogstatsd::Aggregator::new(&s.metrics_prefix, s.max_samples)
                .with_max_resources(s.max_resources)
        }),
        statsd,
        prefix: s.metrics_prefix.clone(),
        inputs,
        telemetry_metrics: s.telemetry,
        flush_interval: s.flush_interval,
        metrics_interval: s.metrics_interval.get(),
        telemetry_interval: s.telemetry_interval,
        shutdown_timeout: s.shutdown_timeout,
        routes: publish::dir(s.publish_dir.as_deref(), s.pipe.as_deref())
            .and_then(|dir| routes::Routes::new(dir, s.learn_bytes, s.learn_ttl)),
    }
    .run(rx);
    Ok(())
}
