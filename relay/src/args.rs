//! The command line as clap reads it: every flag's raw value. What the
//! values mean, their bounds and the environment fallbacks are decided in
//! [`crate::settings`], which reports errors in the relay's own words.

use clap::Parser;
use clap::error::{ContextKind, ContextValue, ErrorKind};

/// The flags of `--help` ([`crate::settings::HELP`], which clap does not
/// generate: its layout is the relay's documentation).
#[derive(Debug, Default, Parser)]
#[command(
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true,
    allow_hyphen_values = true,
    args_override_self = true
)]
pub struct Args {
    #[arg(short = 'h', long)]
    pub help: bool,
    #[arg(short = 'V', long)]
    pub version: bool,
    #[arg(long)]
    pub check_plugin_config: Option<String>,

    #[arg(long)]
    pub pipe: Option<String>,
    #[arg(long)]
    pub pipe_group: Option<String>,
    #[arg(long)]
    pub publish_dir: Option<String>,
    #[arg(long)]
    pub stdin: bool,
    #[arg(long)]
    pub follow: Option<String>,
    #[arg(long)]
    pub state: Option<String>,
    #[arg(long)]
    pub follow_from: Option<String>,
    #[arg(long)]
    pub udp: Option<String>,
    #[arg(long)]
    pub udp_secret: Option<String>,
    #[arg(long)]
    pub udp_secret_file: Option<String>,
    #[arg(long)]
    pub udp_buffer_bytes: Option<String>,
    #[arg(long)]
    pub echo_records: bool,
    #[arg(long)]
    pub max_line_bytes: Option<String>,
    #[arg(long)]
    pub queue_size: Option<String>,
    #[arg(long)]
    pub queue_bytes: Option<String>,

    #[arg(long)]
    pub learn_bytes: Option<String>,
    #[arg(long)]
    pub learn_ttl: Option<String>,

    #[arg(long)]
    pub agent_url: Option<String>,
    #[arg(long)]
    pub no_traces: bool,
    #[arg(long)]
    pub flush_interval: Option<String>,
    #[arg(long)]
    pub batch_spans: Option<String>,
    #[arg(long)]
    pub batch_bytes: Option<String>,
    #[arg(long)]
    pub max_buffered_spans: Option<String>,
    #[arg(long)]
    pub max_buffered_bytes: Option<String>,
    #[arg(long)]
    pub connect_timeout: Option<String>,
    #[arg(long)]
    pub request_timeout: Option<String>,
    #[arg(long)]
    pub payload_deadline: Option<String>,
    #[arg(long)]
    pub shutdown_timeout: Option<String>,

    #[arg(long)]
    pub dogstatsd_url: Option<String>,
    #[arg(long)]
    pub metrics_prefix: Option<String>,
    #[arg(long)]
    pub metrics_interval: Option<String>,
    #[arg(long)]
    pub max_samples: Option<String>,
    #[arg(long)]
    pub max_resources: Option<String>,
    #[arg(long)]
    pub no_request_metrics: bool,
    #[arg(long)]
    pub telemetry_interval: Option<String>,
    #[arg(long)]
    pub no_telemetry: bool,

    #[arg(long)]
    pub env: Option<String>,
    #[arg(long)]
    pub service: Option<String>,
    #[arg(long)]
    pub service_version: Option<String>,
}

impl Args {
    /// Reads the arguments (without the program name).
    pub fn read(args: &[String]) -> Result<Self, String> {
        Self::try_parse_from(args).map_err(|e| explain(&e))
    }
}

/// clap's error, in the words the relay has always used.
fn explain(e: &clap::Error) -> String {
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    // "--pipe <PIPE>" names the flag "--pipe".
    let arg = context(ContextKind::InvalidArg);
    let flag = arg.split_whitespace().next().unwrap_or_default();
    match e.kind() {
        ErrorKind::InvalidValue if context(ContextKind::InvalidValue).is_empty() => {
            format!("{flag} needs a value")
        }
        ErrorKind::TooManyValues => format!("{flag} takes no value"),
        ErrorKind::UnknownArgument if arg.starts_with('-') => format!("unknown flag {arg}"),
        ErrorKind::UnknownArgument => {
            format!("unexpected argument {arg:?} (flags start with --)")
        }
        _ => e.to_string().trim().to_owned(),
    }
}
