//! Where the trace agent and DogStatsD are, decided the way Datadog's own
//! clients decide it, so a relay dropped into a pod that a Go service would
//! find the agent from finds it too:
//!
//! - traces (dd-trace-go `internal.AgentURLFromEnv`): `--agent-url`, else
//!   `DD_TRACE_AGENT_URL`, else `http://$DD_AGENT_HOST:$DD_TRACE_AGENT_PORT`
//!   when either is set (the other defaulted), else the agent's Unix socket
//!   `/var/run/datadog/apm.socket` when it exists, else `127.0.0.1:8126`;
//! - DogStatsD (datadog-go `resolveAddr`, dd-trace-go's statsd
//!   auto-detection): `--dogstatsd-url`, else `DD_DOGSTATSD_URL`, else
//!   `udp://$DD_AGENT_HOST:$DD_DOGSTATSD_PORT` when either is set, else
//!   `/var/run/datadog/dsd.socket` when it exists, else `127.0.0.1:8125`.
//!
//! Set-but-empty variables count as unset, as in the clients. The last
//! rung is `127.0.0.1` rather than the clients' `localhost`: the same agent,
//! without a resolver that may answer `::1` first where the agent listens
//! on IPv4 only.
//!
//! The decision is pure (the environment and a "does this path exist"
//! probe come in), so every rung is tested; the relay logs the choice and
//! the rung that made it at start.

use crate::settings::{AgentUrl, DEFAULT_HOST, DEFAULT_STATSD_PORT, DEFAULT_TRACE_PORT, StatsdUrl};
use std::path::{Path, PathBuf};

/// The directory of the agent's sockets, as the Datadog Helm chart and
/// operator mount it (`hostPath` `/var/run/datadog/`).
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/datadog";
/// Moves the socket directory the relay probes (tests; an agent whose
/// sockets are mounted elsewhere). Not a Datadog variable: the clients
/// have no such setting.
pub const ENV_SOCKET_DIR: &str = "TRAEFIK_DATADOG_RELAY_SOCKET_DIR";
pub const APM_SOCKET: &str = "apm.socket";
pub const DSD_SOCKET: &str = "dsd.socket";

/// Which rung of the order chose the address (said in the start line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Flag,
    UrlEnv,
    HostEnv,
    Socket,
    Default,
}

impl Why {
    /// The reason, naming the flag or variable (`url_env`, `flag`: the
    /// names of this kind's).
    pub fn text(self, flag: &str, url_env: &str, port_env: &str) -> String {
        match self {
            Self::Flag => flag.to_owned(),
            Self::UrlEnv => url_env.to_owned(),
            Self::HostEnv => format!("DD_AGENT_HOST/{port_env}"),
            Self::Socket => "the agent's socket exists".to_owned(),
            Self::Default => "default: no flag, no DD_* variable, no agent socket".to_owned(),
        }
    }
}

/// What the decision reads: the environment and the file system.
pub struct Probe<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub exists: &'a dyn Fn(&Path) -> bool,
}

fn on_disk(p: &Path) -> bool {
    p.exists()
}

impl<'a> Probe<'a> {
    /// The relay's own: `env` and the real file system.
    pub fn system(env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            env,
            exists: &on_disk,
        }
    }
}

impl Probe<'_> {
    /// A variable's value, set-but-blank being unset.
    fn var(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.trim().is_empty())
    }

    fn socket(&self, name: &str) -> PathBuf {
        let dir = self
            .var(ENV_SOCKET_DIR)
            .unwrap_or_else(|| DEFAULT_SOCKET_DIR.to_owned());
        Path::new(dir.trim()).join(name)
    }
}

/// One kind of address and the names of its rungs.
struct Ladder<T> {
    flag: &'static str,
    url_env: &'static str,
    port_env: &'static str,
    default_port: u16,
    socket: &'static str,
    network: fn(String, u16) -> T,
    unix: fn(PathBuf) -> T,
}

/// Walks the order the module's comment gives, for one kind of address.
fn climb<T>(
    ladder: &Ladder<T>,
    flag: Option<T>,
    p: &Probe<'_>,
    parse: impl Fn(&str, &str) -> Result<T, String>,
) -> Result<(T, Why), String> {
    if let Some(a) = flag {
        return Ok((a, Why::Flag));
    }
    if let Some(v) = p.var(ladder.url_env) {
        return Ok((parse(ladder.url_env, &v)?, Why::UrlEnv));
    }
    let host = p.var("DD_AGENT_HOST");
    let port = p.var(ladder.port_env);
    if host.is_some() || port.is_some() {
        let host = host.map_or_else(|| DEFAULT_HOST.to_owned(), |h| h.trim().to_owned());
        let port = port_of(ladder.port_env, port.as_deref(), ladder.default_port)?;
        return Ok(((ladder.network)(host, port), Why::HostEnv));
    }
    let socket = p.socket(ladder.socket);
    if (p.exists)(&socket) {
        return Ok(((ladder.unix)(socket), Why::Socket));
    }
    Ok((
        (ladder.network)(DEFAULT_HOST.to_owned(), ladder.default_port),
        Why::Default,
    ))
}

const AGENT: Ladder<AgentUrl> = Ladder {
    flag: "--agent-url",
    url_env: "DD_TRACE_AGENT_URL",
    port_env: "DD_TRACE_AGENT_PORT",
    default_port: DEFAULT_TRACE_PORT,
    socket: APM_SOCKET,
    network: |host, port| AgentUrl::Http { host, port },
    unix: AgentUrl::Unix,
};

const STATSD: Ladder<StatsdUrl> = Ladder {
    flag: "--dogstatsd-url",
    url_env: "DD_DOGSTATSD_URL",
    port_env: "DD_DOGSTATSD_PORT",
    default_port: DEFAULT_STATSD_PORT,
    socket: DSD_SOCKET,
    network: |host, port| StatsdUrl::Udp { host, port },
    unix: StatsdUrl::Unix,
};

impl<T> Ladder<T> {
    fn reason(&self, why: Why) -> String {
        why.text(self.flag, self.url_env, self.port_env)
    }
}

/// The trace agent's address and why (the start line's words). `flag`:
/// `--agent-url`, already read; `parse`: how a `DD_TRACE_AGENT_URL` value
/// is read (its errors name the variable).
pub fn agent(
    flag: Option<AgentUrl>,
    p: &Probe<'_>,
    parse: impl Fn(&str, &str) -> Result<AgentUrl, String>,
) -> Result<(AgentUrl, Why), String> {
    climb(&AGENT, flag, p, parse)
}

/// DogStatsD's address, in the same way (`DD_DOGSTATSD_URL`,
/// `DD_DOGSTATSD_PORT`, `dsd.socket`).
pub fn statsd(
    flag: Option<StatsdUrl>,
    p: &Probe<'_>,
    parse: impl Fn(&str, &str) -> Result<StatsdUrl, String>,
) -> Result<(StatsdUrl, Why), String> {
    climb(&STATSD, flag, p, parse)
}

/// Why the trace agent's address was taken, naming its flag or variable.
pub fn agent_reason(why: Why) -> String {
    AGENT.reason(why)
}

/// Why DogStatsD's address was taken, naming its flag or variable.
pub fn statsd_reason(why: Why) -> String {
    STATSD.reason(why)
}

fn port_of(name: &str, v: Option<&str>, default: u16) -> Result<u16, String> {
    v.map_or(Ok(default), |v| {
        crate::args::port(v.trim()).map_err(|e| e.naming(name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn unix(p: &str) -> AgentUrl {
        AgentUrl::Unix(PathBuf::from(p))
    }

    fn http(h: &str, port: u16) -> AgentUrl {
        AgentUrl::Http {
            host: h.into(),
            port,
        }
    }

    /// Reads `url` as `unix:///p` or `http://h:p` (the real reader is
    /// settings'; these tests are about the order).
    fn parse_agent(name: &str, v: &str) -> Result<AgentUrl, String> {
        if let Some(p) = v.strip_prefix("unix://") {
            return Ok(unix(p));
        }
        let rest = v
            .strip_prefix("http://")
            .ok_or_else(|| format!("{name}: bad"))?;
        let (h, p) = rest.split_once(':').ok_or_else(|| format!("{name}: bad"))?;
        Ok(http(h, p.parse().map_err(|_| format!("{name}: bad"))?))
    }

    fn parse_statsd(name: &str, v: &str) -> Result<StatsdUrl, String> {
        if let Some(p) = v.strip_prefix("unix://") {
            return Ok(StatsdUrl::Unix(PathBuf::from(p)));
        }
        Err(format!("{name}: bad"))
    }

    fn decide(
        vars: &[(&str, &str)],
        sockets: &[&str],
        flag: Option<AgentUrl>,
    ) -> Result<(AgentUrl, Why), String> {
        let vars: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let env = move |k: &str| vars.get(k).cloned();
        let exists = |p: &Path| sockets.iter().any(|s| Path::new(s) == p);
        agent(
            flag,
            &Probe {
                env: &env,
                exists: &exists,
            },
            parse_agent,
        )
    }

    const APM: &str = "/var/run/datadog/apm.socket";

    #[test]
    fn trace_agent_every_rung_in_order() {
        let all = [
            ("DD_TRACE_AGENT_URL", "http://url:1"),
            ("DD_AGENT_HOST", "agent-host"),
            ("DD_TRACE_AGENT_PORT", "9126"),
        ];
        assert_eq!(
            decide(&all, &[APM], Some(http("flag", 2))),
            Ok((http("flag", 2), Why::Flag))
        );
        assert_eq!(
            decide(&all, &[APM], None),
            Ok((http("url", 1), Why::UrlEnv))
        );
        assert_eq!(
            decide(&all[1..], &[APM], None),
            Ok((http("agent-host", 9126), Why::HostEnv))
        );
        // Either variable alone is enough; the other is defaulted.
        assert_eq!(
            decide(&all[1..2], &[APM], None),
            Ok((http("agent-host", 8126), Why::HostEnv))
        );
        assert_eq!(
            decide(&all[2..], &[APM], None),
            Ok((http("127.0.0.1", 9126), Why::HostEnv))
        );
        assert_eq!(decide(&[], &[APM], None), Ok((unix(APM), Why::Socket)));
        assert_eq!(
            decide(&[], &[], None),
            Ok((http("127.0.0.1", 8126), Why::Default))
        );
    }

    #[test]
    fn blank_variables_are_unset_and_bad_ones_are_errors() {
        let blank = [
            ("DD_TRACE_AGENT_URL", ""),
            ("DD_AGENT_HOST", "  "),
            ("DD_TRACE_AGENT_PORT", ""),
        ];
        assert_eq!(decide(&blank, &[APM], None), Ok((unix(APM), Why::Socket)));
        assert_eq!(
            decide(&[("DD_TRACE_AGENT_URL", "ftp://x")], &[APM], None),
            Err("DD_TRACE_AGENT_URL: bad".to_owned())
        );
        assert_eq!(
            decide(&[("DD_TRACE_AGENT_PORT", "0")], &[], None),
            Err("DD_TRACE_AGENT_PORT: \"0\" is not a port number (1-65535)".to_owned())
        );
    }

    #[test]
    fn the_socket_directory_can_be_moved() {
        assert_eq!(
            decide(
                &[(ENV_SOCKET_DIR, "/tmp/dd")],
                &["/tmp/dd/apm.socket"],
                None
            ),
            Ok((unix("/tmp/dd/apm.socket"), Why::Socket))
        );
        // The default directory is no longer looked at.
        assert_eq!(
            decide(&[(ENV_SOCKET_DIR, "/tmp/dd")], &[APM], None).map(|r| r.1),
            Ok(Why::Default)
        );
    }

    #[test]
    fn dogstatsd_every_rung_in_order() {
        let run = |vars: &[(&str, &str)], sockets: &[&str], flag: Option<StatsdUrl>| {
            let vars: BTreeMap<String, String> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let env = move |k: &str| vars.get(k).cloned();
            let exists = |p: &Path| sockets.iter().any(|s| Path::new(s) == p);
            statsd(
                flag,
                &Probe {
                    env: &env,
                    exists: &exists,
                },
                parse_statsd,
            )
        };
        let udp = |h: &str, port: u16| StatsdUrl::Udp {
            host: h.into(),
            port,
        };
        let dsd = "/var/run/datadog/dsd.socket";
        let all = [
            ("DD_DOGSTATSD_URL", "unix:///u.sock"),
            ("DD_AGENT_HOST", "agent-host"),
            ("DD_DOGSTATSD_PORT", "9125"),
        ];
        assert_eq!(
            run(&all, &[dsd], Some(udp("flag", 1))),
            Ok((udp("flag", 1), Why::Flag))
        );
        assert_eq!(
            run(&all, &[dsd], None),
            Ok((StatsdUrl::Unix(PathBuf::from("/u.sock")), Why::UrlEnv))
        );
        assert_eq!(
            run(&all[1..], &[dsd], None),
            Ok((udp("agent-host", 9125), Why::HostEnv))
        );
        assert_eq!(
            run(&all[1..2], &[dsd], None),
            Ok((udp("agent-host", 8125), Why::HostEnv))
        );
        assert_eq!(
            run(&all[2..], &[dsd], None),
            Ok((udp("127.0.0.1", 9125), Why::HostEnv))
        );
        // The trace agent's port says nothing about DogStatsD's.
        assert_eq!(
            run(&[("DD_TRACE_AGENT_PORT", "1")], &[dsd], None),
            Ok((StatsdUrl::Unix(PathBuf::from(dsd)), Why::Socket))
        );
        assert_eq!(
            run(&[], &[], None),
            Ok((udp("127.0.0.1", 8125), Why::Default))
        );
    }

    #[test]
    fn reasons_name_the_setting() {
        let t = agent_reason;
        assert_eq!(t(Why::Flag), "--agent-url");
        assert_eq!(t(Why::UrlEnv), "DD_TRACE_AGENT_URL");
        assert_eq!(t(Why::HostEnv), "DD_AGENT_HOST/DD_TRACE_AGENT_PORT");
        assert_eq!(t(Why::Socket), "the agent's socket exists");
        assert_eq!(statsd_reason(Why::Flag), "--dogstatsd-url");
        assert_eq!(statsd_reason(Why::UrlEnv), "DD_DOGSTATSD_URL");
        assert_eq!(
            statsd_reason(Why::HostEnv),
            "DD_AGENT_HOST/DD_DOGSTATSD_PORT"
        );
    }
}
