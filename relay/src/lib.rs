//! traefik-datadog-relay: reads the Traefik Datadog plugin's records (FIFO,
//! Traefik's log on stdin or in a file, UDP) and sends one span per request
//! to the Datadog trace agent and request metrics to DogStatsD.
//!
//! Threads: one per input → one bounded queue → the pipeline (spans,
//! metrics, telemetry) → a bounded span buffer → the sender (HTTP to the
//! agent). See `--help`.
//!
//! The relay is a Unix program; the workspace is also checked for
//! wasm32-wasip1 (the plugin's target), where this library is empty and the
//! binary (main.rs) only says so.
#![cfg(unix)]

#[macro_use]
mod log;

mod args;
mod container;
mod dd_tags;
mod discovery;
mod health;
mod input;
mod interval;
mod pipeline;
mod publish;
mod rates_file;
mod routes;
mod settings;
mod source;
mod statsd;
mod sys;
mod telemetry;
mod traces;

/// Reads the command line and does what it says; the exit code is 2 for a
/// command line it cannot read, 1 when running fails.
pub fn main() -> std::process::ExitCode {
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
        Ok(Command::Run(s)) => {
            // Every line from here on, errors of the start included.
            log::set_format(s.log_format);
            match run(*s) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e}");
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            error!("{e}; see --help");
            ExitCode::from(2)
        }
    }
}

/// The relay's parts, each built from its own settings: the health
/// endpoint and the inputs first (a port that cannot be bound, a FIFO that
/// cannot be made: the start fails with that one error, before the sender
/// has said anything), then the sender (the pipeline hands it spans), then
/// the pipeline, which runs on this thread until every input has ended or a
/// signal came. Inputs that read before the pipeline runs wait for room in
/// the queue as they would under load.
fn run(s: settings::Settings) -> Result<(), String> {
    sys::install_signal_handlers().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    if let Some(addr) = &s.health.listen {
        let bound = health::serve(addr, s.health.unready_after, health::global())?;
        info!("health: answering GET /live and /ready on http://{bound}");
    }
    let counters = std::sync::Arc::new(telemetry::Counters::default());
    let (inputs, intake) = input::start(&s.inputs, &counters)?;
    let traces = traces::start(
        &s.traces,
        s.publish_dir.clone(),
        &s.pipeline.defaults.env,
        &counters,
    )?;
    info!(
        "started: {}; pid {}",
        s.summary(&inputs),
        std::process::id()
    );
    pipeline::Pipeline::new(&s, counters, traces, inputs).run(intake);
    Ok(())
}
