//! What a probe asks the relay (`--health-listen ADDR`):
//!
//! - `GET /live`: 200 while every input's threads, the pipeline and the
//!   trace sender run; 503 with one line naming what stopped (a thread that
//!   ended or panicked, a pipeline that has not turned for 30 s). For a
//!   liveness probe: restarting the relay is the cure for each.
//! - `GET /ready`: 200 unless a payload has waited more than
//!   `--unready-after` (60 s) for the agent to answer (agent down,
//!   unreachable, answering 5xx); 503 with the last failure then. For monitoring, not for a readiness probe: the relay
//!   is a sidecar in Traefik's pod, and an unready sidecar takes the whole
//!   pod out of its Services: an agent outage would stop the ingress.
//!
//! The responder is std plus `httparse` (already in the tree through
//! hyper): two fixed answers do not need a server framework and its async
//! runtime (hyper's server would want tokio's reactor, another thread pool).
//! Bounded: one accepting thread, at most [`MAX_CONNECTIONS`] answered at
//! once (more are closed unanswered), each read and write within
//! [`IO_TIMEOUT`], at most [`MAX_REQUEST`] bytes of request read, no body.
//!
//! The state is one process-wide table ([`global`]): threads register where
//! they are spawned, deep in the inputs, and a [`Guard`] dropped (the thread
//! returned or unwound) marks them stopped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub const ENV_HEALTH_LISTEN: &str = "TRAEFIK_DATADOG_RELAY_HEALTH_LISTEN";
pub const MAX_CONNECTIONS: usize = 4;
pub const IO_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_REQUEST: usize = 4096;
/// The pipeline turns at least every 100 ms; this long without a turn is a
/// hang, not load.
pub const PIPELINE_STALL: Duration = Duration::from_secs(30);
/// How long a payload may wait for the agent's answer before `/ready` says
/// so, unless `--unready-after` says otherwise: the sender's own deadline
/// for a payload (`--payload-deadline`), so a relay that is dropping spans
/// because the agent does not answer is not ready.
pub const AGENT_UNANSWERED: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Component {
    name: String,
    /// `None` while running; why it stopped otherwise.
    stopped: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    components: Vec<Component>,
    pipeline_beat: Option<Instant>,
    /// Since when payloads have failed with no answer, and the last failure.
    agent_failing: Option<(Instant, String)>,
    agent_answered: Option<Instant>,
    /// `--unready-after`; [`AGENT_UNANSWERED`] while `None`.
    unready_after: Option<Duration>,
    stopping: bool,
}

#[derive(Debug, Default)]
pub struct Health {
    state: Mutex<State>,
}

static GLOBAL: LazyLock<Health> = LazyLock::new(Health::default);

/// The relay's one table.
pub fn global() -> &'static Health {
    &GLOBAL
}

/// Held by a watched thread; dropping it (return or panic) marks the
/// thread stopped.
#[must_use = "the thread counts as stopped once the guard is dropped"]
pub struct Guard {
    health: &'static Health,
    index: usize,
    why: Option<String>,
}

impl Guard {
    /// Says why the thread ends (kept for `/live`), when it ends normally.
    pub fn ending(&mut self, why: &str) {
        self.why = Some(why.to_owned());
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let panicked = std::thread::panicking();
        let said = self.why.is_some();
        let why = match (panicked, self.why.take()) {
            (true, _) => "panicked".to_owned(),
            (false, Some(w)) => w,
            (false, None) => "ended".to_owned(),
        };
        let mut s = self.health.lock();
        let stopping = s.stopping || crate::sys::stop_requested();
        let Some(c) = s.components.get_mut(self.index) else {
            return;
        };
        let name = c.name.clone();
        c.stopped = Some(why.clone());
        drop(s);
        // A thread that said why it ends has logged it; the others have not.
        if panicked || (!said && !stopping) {
            error!("{name} stopped ({why}): /live answers 503 from now on");
        }
    }
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a thread by name (`input pipe`, `trace sender`).
    pub fn watch(&'static self, name: &str) -> Guard {
        let mut s = self.lock();
        s.components.push(Component {
            name: name.to_owned(),
            stopped: None,
        });
        Guard {
            health: self,
            index: s.components.len() - 1,
            why: None,
        }
    }

    /// The relay is stopping: threads that end now end normally.
    pub fn stopping(&self) {
        self.lock().stopping = true;
    }

    /// The pipeline turned.
    pub fn beat(&self) {
        self.lock().pipeline_beat = Some(Instant::now());
    }

    /// The agent answered a payload (accepted or refused: it is there).
    pub fn agent_answered(&self) {
        let mut s = self.lock();
        s.agent_failing = None;
        s.agent_answered = Some(Instant::now());
    }

    /// A payload got no usable answer (to be retried).
    pub fn agent_failed(&self, why: &str) {
        let mut s = self.lock();
        let since = s.agent_failing.as_ref().map_or_else(Instant::now, |f| f.0);
        s.agent_failing = Some((since, why.to_owned()));
    }

    /// `/live`: `Ok(text)` or `Err(reason)`.
    pub fn live(&self, now: Instant) -> Result<String, String> {
        let s = self.lock();
        if let Some(c) = s.components.iter().find(|c| c.stopped.is_some()) {
            return Err(format!(
                "{} stopped: {}",
                c.name,
                c.stopped.as_deref().unwrap_or_default()
            ));
        }
        if let Some(t) = s.pipeline_beat {
            let idle = now.saturating_duration_since(t);
            if idle >= PIPELINE_STALL {
                return Err(format!(
                    "the pipeline has not turned for {}s",
                    idle.as_secs()
                ));
            }
        }
        let names: Vec<&str> = s.components.iter().map(|c| c.name.as_str()).collect();
        Ok(format!("ok: {} running", names.join(", ")))
    }

    /// `/ready`: `Ok(text)` or `Err(reason)`.
    pub fn ready(&self, now: Instant) -> Result<String, String> {
        let s = self.lock();
        let window = s.unready_after.unwrap_or(AGENT_UNANSWERED);
        match (&s.agent_failing, s.agent_answered) {
            (Some((since, why)), _) if now.saturating_duration_since(*since) >= window => {
                Err(format!(
                    "the agent has not answered for {}s: {why}",
                    now.saturating_duration_since(*since).as_secs()
                ))
            }
            (_, Some(t)) => Ok(format!(
                "ok: the agent answered {}s ago",
                now.saturating_duration_since(t).as_secs()
            )),
            (_, None) => Ok("ok: nothing sent to the agent yet".to_owned()),
        }
    }
}

/// Binds `addr` (an error names the flag) and answers probes on a thread;
/// `/ready` turns 503 after `unready_after` without an answer from the agent.
pub fn serve(
    addr: &str,
    unready_after: Duration,
    health: &'static Health,
) -> Result<std::net::SocketAddr, String> {
    health.lock().unready_after = Some(unready_after);
    let listener =
        TcpListener::bind(addr).map_err(|e| format!("--health-listen: cannot bind {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("--health-listen: {addr}: {e}"))?;
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new()
        .name("health".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                if active.fetch_add(1, SeqCst) >= MAX_CONNECTIONS {
                    active.fetch_sub(1, SeqCst);
                    continue; // closed unanswered
                }
                let done = active.clone();
                let spawned = std::thread::Builder::new()
                    .name("health-conn".into())
                    .spawn(move || {
                        answer(conn, health);
                        done.fetch_sub(1, SeqCst);
                    });
                if spawned.is_err() {
                    active.fetch_sub(1, SeqCst);
                }
            }
        })
        .map_err(|e| format!("--health-listen: cannot start thread: {e}"))?;
    Ok(local)
}

/// Reads one request head and writes the answer; errors end the connection.
fn answer(mut conn: TcpStream, health: &Health) {
    let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
    let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut len = 0;
    let (method, path) = loop {
        if len == buf.len() || Instant::now() >= deadline {
            let _ = conn.write_all(&response(
                431,
                "request head too large or too slow\n",
                false,
            ));
            return;
        }
        match conn.read(&mut buf[len..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => len += n,
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                break (
                    req.method.unwrap_or_default().to_owned(),
                    req.path.unwrap_or_default().to_owned(),
                );
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => {
                let _ = conn.write_all(&response(400, "bad request\n", false));
                return;
            }
        }
    };
    let head = method == "HEAD";
    if method != "GET" && !head {
        let _ = conn.write_all(&response(405, "GET /live or /ready\n", false));
        return;
    }
    let now = Instant::now();
    let route = path.split('?').next().unwrap_or_default();
    let result = match route {
        "/live" => health.live(now),
        "/ready" => health.ready(now),
        _ => {
            let _ = conn.write_all(&response(404, "GET /live or /ready\n", head));
            return;
        }
    };
    let bytes = match result {
        Ok(text) => response(200, &format!("{text}\n"), head),
        Err(why) => response(503, &format!("{why}\n"), head),
    };
    let _ = conn.write_all(&bytes);
}

fn response(status: u16, body: &str, head: bool) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaked() -> &'static Health {
        Box::leak(Box::default())
    }

    #[test]
    fn live_until_a_thread_stops_or_the_pipeline_stalls() {
        let h = leaked();
        let t0 = Instant::now();
        let g1 = h.watch("input pipe");
        let mut g2 = h.watch("input stdin");
        h.beat();
        assert_eq!(
            h.live(t0),
            Ok("ok: input pipe, input stdin running".to_owned())
        );
        assert_eq!(
            h.live(Instant::now() + PIPELINE_STALL + Duration::from_secs(1)),
            Err("the pipeline has not turned for 31s".to_owned())
        );
        g2.ending("end of input");
        drop(g2);
        assert_eq!(
            h.live(Instant::now()),
            Err("input stdin stopped: end of input".to_owned())
        );
        drop(g1);
    }

    #[test]
    fn a_panicking_thread_is_reported() {
        let h = leaked();
        let r = std::thread::spawn(move || {
            let _g = h.watch("trace sender");
            std::panic::resume_unwind(Box::new("a thread dies"));
        })
        .join();
        assert!(r.is_err());
        assert_eq!(
            h.live(Instant::now()),
            Err("trace sender stopped: panicked".to_owned())
        );
    }

    #[test]
    fn ready_unless_the_agent_is_silent_for_a_minute() {
        let h = leaked();
        let now = Instant::now();
        assert_eq!(
            h.ready(now),
            Ok("ok: nothing sent to the agent yet".to_owned())
        );
        h.agent_failed("cannot connect: refused");
        assert!(h.ready(Instant::now()).is_ok());
        let later = Instant::now() + AGENT_UNANSWERED;
        assert_eq!(
            h.ready(later),
            Err("the agent has not answered for 60s: cannot connect: refused".to_owned())
        );
        h.agent_failed("HTTP 503");
        assert_eq!(
            h.ready(later),
            Err("the agent has not answered for 60s: HTTP 503".to_owned()),
            "the outage started at the first failure"
        );
        h.agent_answered();
        assert_eq!(
            h.ready(Instant::now()),
            Ok("ok: the agent answered 0s ago".to_owned())
        );
        // Idle long after the last answer: still ready.
        assert!(h.ready(Instant::now() + Duration::from_secs(3600)).is_ok());
    }

    #[test]
    fn the_agent_window_is_a_setting() {
        let h = leaked();
        h.lock().unready_after = Some(Duration::from_secs(2));
        h.agent_failed("HTTP 503");
        let since = h
            .lock()
            .agent_failing
            .as_ref()
            .map(|f| f.0)
            .expect("failing");
        assert!(h.ready(since + Duration::from_millis(1999)).is_ok());
        assert_eq!(
            h.ready(since + Duration::from_secs(2)),
            Err("the agent has not answered for 2s: HTTP 503".to_owned())
        );
    }

    fn get(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut c = TcpStream::connect(addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        c.write_all(request).expect("send");
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    }

    #[test]
    fn answers_over_http() {
        let h = leaked();
        let g = h.watch("input udp");
        let addr = serve("127.0.0.1:0", AGENT_UNANSWERED, h).expect("serve");
        let r = get(addr, b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            r,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\nCache-Control: no-store\r\nConnection: close\r\n\r\nok: input udp running\n"
        );
        let r = get(addr, b"GET /ready?verbose=1 HTTP/1.0\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(
            r.ends_with("\r\n\r\nok: nothing sent to the agent yet\n"),
            "{r}"
        );
        let r = get(addr, b"HEAD /live HTTP/1.1\r\n\r\n");
        assert!(r.ends_with("Connection: close\r\n\r\n"), "{r}");
        assert!(get(addr, b"GET /x HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
        assert!(get(addr, b"POST /live HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
        assert!(get(addr, b"\x00\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400 "));
        let big = format!(
            "GET /live HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_REQUEST)
        );
        assert!(get(addr, big.as_bytes()).starts_with("HTTP/1.1 431 "));
        drop(g);
        let r = get(addr, b"GET /live HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\ninput udp stopped: ended\n"), "{r}");
    }

    #[test]
    fn a_silent_client_is_dropped_and_others_still_answered() {
        let h = leaked();
        let addr = serve("127.0.0.1:0", AGENT_UNANSWERED, h).expect("serve");
        let silent: Vec<TcpStream> = (0..MAX_CONNECTIONS - 1)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect();
        let r = get(addr, b"GET /ready HTTP/1.1\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
        drop(silent);
        assert_eq!(
            serve(&addr.to_string(), AGENT_UNANSWERED, h)
                .map(|_| ())
                .map_err(|e| e.starts_with("--health-listen: cannot bind")),
            Err(true)
        );
    }
}
