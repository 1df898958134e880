//! Through the stand-in: every way an instance's records cannot reach the
//! relay is said once per instance at ERROR, requests are served as ever,
//! and what is not a loss (a relay not started yet) says nothing. Then the
//! environment's unified service tags.

use super::stand_in::{StandIn, StandInSystem};
use super::*;
use crate::transport::loss::{self, errno};
use crate::transport::network::Dest;
use crate::transport::pipe::RETRY_NS;
use crate::wire::{binary, fallback};

fn start(config: &str, sys: &StandInSystem, host: &mut StandIn) -> Instance<StandInSystem> {
    Instance::start(config.as_bytes(), &[1, 2], sys.clone(), host).expect("a valid config")
}

/// `n` requests, each a retry window after the one before.
fn serve_spaced(i: &mut Instance<StandInSystem>, host: &mut StandIn, n: usize) {
    for _ in 0..n {
        i.request(host);
        i.response(host, false);
        host.clock_ns += RETRY_NS;
    }
}

fn errors(host: &StandIn) -> Vec<&str> {
    host.log
        .iter()
        .filter(|(l, line)| *l == Level::Error && fallback::decode(line).is_err())
        .map(|(_, line)| line.as_str())
        .collect()
}

fn records_as_lines(host: &StandIn) -> Vec<(Level, Record)> {
    host.log
        .iter()
        .filter_map(|(l, line)| Some((*l, fallback::decode(line).ok()?)))
        .collect()
}

#[test]
fn no_mount_in_auto_mode_is_said_once_at_start_and_records_become_info_lines() {
    let sys = StandInSystem::relay_reading();
    sys.outside.borrow_mut().unmounted = true;
    let mut host = StandIn::default();
    let mut i = start("{}", &sys, &mut host);
    assert_eq!(
        errors(&host),
        [loss::no_mount(
            Mode::Auto,
            "/run/dd/traefik-datadog.fifo",
            None
        )]
    );
    assert_eq!(host.take_calls().get("log_enabled"), Some(&1));
    serve_spaced(&mut i, &mut host, 3);
    assert_eq!(errors(&host).len(), 1, "{:?}", host.log);
    let lines = records_as_lines(&host);
    assert_eq!(lines.len(), 3);
    assert!(
        lines
            .iter()
            .all(|(l, r)| *l == Level::Info && r.status == 200)
    );
}

#[test]
fn no_mount_in_pipe_mode_is_said_once_and_records_become_error_lines() {
    let sys = StandInSystem::relay_reading();
    sys.outside.borrow_mut().unmounted = true;
    let mut host = StandIn::default();
    let mut i = start(
        r#"{"mode":"pipe","pipePath":"/dd/x.fifo"}"#,
        &sys,
        &mut host,
    );
    serve_spaced(&mut i, &mut host, 2);
    assert_eq!(
        errors(&host),
        [loss::no_mount(Mode::Pipe, "/dd/x.fifo", None)]
    );
    assert!(errors(&host)[0].contains("ERROR log lines, one per request"));
    let lines = records_as_lines(&host);
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|(l, _)| *l == Level::Error));
}

#[test]
fn the_socket_build_loses_nothing_without_a_mount_in_auto_mode() {
    let sys = StandInSystem {
        sockets: true,
        ..StandInSystem::relay_reading()
    };
    sys.outside.borrow_mut().unmounted = true;
    let mut host = StandIn::default();
    let mut i = start("{}", &sys, &mut host);
    serve_spaced(&mut i, &mut host, 2);
    assert_eq!(errors(&host), Vec::<&str>::new());
}

#[test]
fn log_mode_is_said_unless_the_host_shows_info() {
    for (shows, said) in [
        (None, true),
        (Some(Level::Warn), true),
        (Some(Level::Error), true),
        (Some(Level::Info), false),
    ] {
        let sys = StandInSystem::relay_reading();
        let mut host = StandIn {
            log_shows: shows,
            ..StandIn::default()
        };
        let mut i = start(r#"{"mode":"log"}"#, &sys, &mut host);
        serve_spaced(&mut i, &mut host, 2);
        let shown = shows.map(|l| l == Level::Info);
        let want: Vec<String> = loss::log_mode(shown).into_iter().collect();
        assert_eq!(errors(&host), want, "{shows:?}");
        assert_eq!(want.len(), usize::from(said));
        assert_eq!(records_as_lines(&host).len(), 2);
    }
}

#[test]
fn a_relay_not_started_yet_says_nothing_the_spool_keeps_the_records() {
    let sys = StandInSystem::relay_reading();
    {
        let mut o = sys.outside.borrow_mut();
        o.reader = false;
    }
    let mut host = StandIn::default();
    let mut i = start("{}", &sys, &mut host);
    serve_spaced(&mut i, &mut host, 3);
    assert!(host.log.is_empty(), "{:?}", host.log);
    assert_eq!(sys.outside.borrow().spooled.len(), 3);
}

#[test]
fn a_wrong_pipe_path_beside_the_relays_fifo_is_said_once() {
    let sys = StandInSystem::relay_reading();
    {
        let mut o = sys.outside.borrow_mut();
        o.reader = false;
        o.other_fifos = vec!["apm.socket".into(), "traefik-datadog.fifo".into()];
    }
    let mut host = StandIn::default();
    let mut i = start(r#"{"pipePath":"/run/dd/wrong.fifo"}"#, &sys, &mut host);
    assert!(host.log.is_empty());
    serve_spaced(&mut i, &mut host, 3);
    assert_eq!(
        errors(&host),
        [loss::other_fifo(
            "/run/dd/wrong.fifo",
            "traefik-datadog.fifo"
        )]
    );
    // The records wait in the spool (under the wrong name) as before.
    assert_eq!(sys.outside.borrow().spooled.len(), 3);
    assert!(records_as_lines(&host).is_empty());
}

#[test]
fn an_unwritable_spool_is_said_once() {
    let sys = StandInSystem::relay_reading();
    {
        let mut o = sys.outside.borrow_mut();
        o.reader = false;
        o.spool_errno = Some(errno::EROFS);
    }
    let mut host = StandIn::default();
    let mut i = start("{}", &sys, &mut host);
    assert!(host.log.is_empty());
    serve_spaced(&mut i, &mut host, 3);
    assert_eq!(
        errors(&host),
        [loss::spool_unwritable(
            Mode::Auto,
            "/run/dd/traefik-datadog.fifo",
            crate::transport::pipe::Fallback::Unavailable(60),
            crate::transport::spool::SpoolError::Unavailable(errno::EROFS),
            None
        )]
    );
    assert_eq!(records_as_lines(&host).len(), 3);
}

#[test]
fn the_checks_cost_a_request_nothing_when_the_pipe_takes_it() {
    let sys = StandInSystem::relay_reading();
    let mut host = StandIn::default();
    let mut i = start("{}", &sys, &mut host);
    assert_eq!(host.take_calls().get("log_enabled"), Some(&1));
    serve_spaced(&mut i, &mut host, 2);
    assert!(!host.take_calls().contains_key("log_enabled"));
    assert!(host.log.is_empty());
}

fn with_env(vars: &[(&str, &str)]) -> StandInSystem {
    let sys = StandInSystem::relay_reading();
    sys.outside.borrow_mut().env = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    sys
}

fn the_record(sys: &StandInSystem) -> Record {
    let piped = sys.outside.borrow().piped.clone();
    assert_eq!(piped.len(), 1);
    binary::decode(&piped[0]).expect("a frame")
}

const ENV: &[(&str, &str)] = &[
    ("DD_SERVICE", "from-env"),
    ("DD_ENV", "staging"),
    ("DD_VERSION", "2.0"),
    ("DD_TAGS", "team:edge,region:eu-west-1"),
];

#[test]
fn the_environment_gives_defaults_and_tags_and_the_middleware_wins() {
    let sys = with_env(ENV);
    let mut host = StandIn::default();
    let mut i = start("{}", &sys, &mut host);
    serve_spaced(&mut i, &mut host, 1);
    let r = the_record(&sys);
    assert_eq!(
        (r.service.as_str(), r.env.as_str(), r.version.as_str()),
        ("from-env", "staging", "2.0")
    );
    assert_eq!(
        r.tags,
        BTreeMap::from([
            ("region".to_owned(), "eu-west-1".to_owned()),
            ("team".to_owned(), "edge".to_owned())
        ])
    );
    let sys = with_env(ENV);
    let mut i = start(r#"{"service":"edge","version":"1.0"}"#, &sys, &mut host);
    serve_spaced(&mut i, &mut host, 1);
    let r = the_record(&sys);
    assert_eq!(
        (r.service.as_str(), r.env.as_str(), r.version.as_str()),
        ("edge", "staging", "1.0")
    );
    assert_eq!(r.tags.len(), 2);
}

#[test]
fn the_agent_rate_is_looked_up_under_the_service_and_env_the_span_carries() {
    let sys = with_env(&[("DD_ENV", "staging")]);
    sys.outside.borrow_mut().files.insert(
        "/run/dd/traefik-datadog.rates".into(),
        (
            b"service:edge,env:\t0.9\nservice:edge,env:staging\t0.25\n".to_vec(),
            1,
        ),
    );
    let mut host = StandIn::default();
    let mut i = start(r#"{"service":"edge"}"#, &sys, &mut host);
    serve_spaced(&mut i, &mut host, 1);
    let r = the_record(&sys);
    assert_eq!(r.env, "staging");
    assert_eq!((r.sampling_mechanism, r.sample_rate), (1, 0.25));
}

#[test]
fn dd_tags_garbage_is_said_once_at_warn() {
    let sys = with_env(&[("DD_TAGS", "ok:1,bare,p:a|b")]);
    let mut host = StandIn::default();
    let mut i = start("{}", &sys, &mut host);
    assert_eq!(
        host.log,
        [(
            Level::Warn,
            "traefik-datadog: DD_TAGS: 2 entries left out (1 without a value, 1 with '|', '#', \
             a control character or a reserved key); the others apply"
                .to_owned()
        )]
    );
    serve_spaced(&mut i, &mut host, 1);
    assert_eq!(
        the_record(&sys).tags,
        BTreeMap::from([("ok".to_owned(), "1".to_owned())])
    );
}

/// WASI's `ECONNREFUSED`: no socket on the relay's port.
const ECONNREFUSED: i32 = 14;

#[test]
fn network_mode_without_a_relay_is_said_once_and_records_become_info_lines() {
    let sys = StandInSystem {
        sockets: true,
        ..StandInSystem::relay_reading()
    };
    sys.outside.borrow_mut().udp_errno = Some(ECONNREFUSED);
    let mut host = StandIn::default();
    let mut i = start(r#"{"mode":"network"}"#, &sys, &mut host);
    assert_eq!(errors(&host), Vec::<&str>::new());
    serve_spaced(&mut i, &mut host, 3);
    let addr = "127.0.0.1:8127".parse().expect("an address");
    assert_eq!(errors(&host), [loss::relay_unreachable(addr, None)]);
    let lines = records_as_lines(&host);
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|(l, _)| *l == Level::Info), "{lines:?}");
}

#[test]
fn network_mode_with_its_relay_says_nothing() {
    let sys = StandInSystem {
        sockets: true,
        ..StandInSystem::relay_reading()
    };
    let mut host = StandIn::default();
    let mut i = start(r#"{"mode":"network"}"#, &sys, &mut host);
    serve_spaced(&mut i, &mut host, 3);
    assert_eq!(errors(&host), Vec::<&str>::new());
    assert_eq!(records_as_lines(&host).len(), 0);
    assert_eq!(
        sys.outside
            .borrow()
            .datagrams
            .iter()
            // The link's empty probe datagram aside: one frame a record.
            .filter(|(d, bytes)| *d == Dest::Relay && !bytes.is_empty())
            .count(),
        3
    );
}
