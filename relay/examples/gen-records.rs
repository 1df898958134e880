//! Generates plugin records exactly as the guest writes them, for trying and
//! benchmarking the relay:
//!
//!   gen-records [--format json|console|bare|frames] [--count N] [--hosts K]
//!               [--out PATH | --udp ADDR] [--interleave N] [--seed S]
//!
//! - json: Traefik JSON-format log lines with the record in `message`
//! - console: Traefik console-format lines, with ANSI colours
//! - bare: the fallback line alone (not where the plugin puts it: the relay passes it through)
//! - frames: binary frames (one write per frame, so a FIFO gets them whole)
//!
//! `--like-plugin` (with `--format frames --out FIFO`) writes as the plugin
//! does: the FIFO opened non-blocking, and a frame the full pipe refuses
//! appended to the spool beside it (the plugin's own `tdp_core::transport::pipe`
//! and `tdp_core::transport::spool` logic); it prints how many went each way.
//!
//! `--interleave N` adds N foreign Traefik log lines after each record line.
//! `--udp` sends each frame as one datagram; with `--secret S` each frame is
//! sealed with that secret's MAC (the plugin's `relaySecret`). `--rate R`
//! paces the output at R records per second (in 1 ms steps). `--hosts` as
//! large as `--count` (up to 18446744073709551615) makes nearly every
//! record's Host new.

use std::io::{self, Write};
use std::net::UdpSocket;
use tdp_core::config::Config;
use tdp_core::propagation::ids::TraceId;
use tdp_core::propagation::{Propagation, SpanContext};
use tdp_core::record::facts::{RequestFacts, ResponseFacts};
use tdp_core::record::{Record, StatusSource};
use tdp_core::sampling::Decision;
use tdp_core::wire::{binary, fallback};

/// `--like-plugin`: the plugin's own pipe and spool logic on real files
/// (Unix only, like the relay; the workspace is also checked for wasm).
#[cfg(unix)]
mod like_plugin {
    use super::{pace, record};
    use std::collections::HashMap;
    use std::fs::{File, OpenOptions};
    use std::io::{self, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    use tdp_core::transport::pipe::{Pipe, PipeSys, WriteError};
    use tdp_core::transport::spool::{Spool, SpoolSys};
    use tdp_core::wire::binary;

    /// The system calls the plugin's pipe and spool logic asks for, on real
    /// files: descriptors stand for the files held open in `files`.
    #[derive(Default)]
    struct Sys {
        files: HashMap<i32, File>,
    }

    impl Sys {
        fn keep(&mut self, f: io::Result<File>) -> Result<i32, i32> {
            let f = f.map_err(|e| e.raw_os_error().unwrap_or(0))?;
            let fd = f.as_raw_fd();
            self.files.insert(fd, f);
            Ok(fd)
        }

        fn write_fd(&mut self, fd: i32, frame: &[u8]) -> io::Result<usize> {
            match self.files.get_mut(&fd) {
                Some(f) => f.write(frame),
                None => Err(io::Error::from(io::ErrorKind::NotFound)),
            }
        }
    }

    impl PipeSys for Sys {
        fn open(&mut self, path: &str) -> Result<i32, i32> {
            let f = OpenOptions::new()
                .write(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open(path);
            self.keep(f)
        }
        fn write(&mut self, fd: i32, frame: &[u8]) -> Result<usize, WriteError> {
            self.write_fd(fd, frame).map_err(|e| match e.kind() {
                io::ErrorKind::WouldBlock => WriteError::WouldBlock,
                _ => WriteError::Broken(e.raw_os_error().unwrap_or(0)),
            })
        }
        fn close(&mut self, fd: i32) {
            self.files.remove(&fd);
        }
    }

    impl SpoolSys for Sys {
        fn open_append(&mut self, path: &str) -> Result<i32, i32> {
            let f = OpenOptions::new().append(true).create(true).open(path);
            self.keep(f)
        }
        fn size(&mut self, fd: i32) -> Result<u64, i32> {
            match self.files.get(&fd).map(File::metadata) {
                Some(Ok(m)) => Ok(m.len()),
                Some(Err(e)) => Err(e.raw_os_error().unwrap_or(0)),
                None => Err(0),
            }
        }
        fn write(&mut self, fd: i32, frame: &[u8]) -> Result<usize, i32> {
            self.write_fd(fd, frame)
                .map_err(|e| e.raw_os_error().unwrap_or(0))
        }
        fn close(&mut self, fd: i32) {
            self.files.remove(&fd);
        }
    }

    /// Writes `count` frames as the plugin does; prints where they went.
    pub fn write(fifo: &str, count: u64, hosts: u64, seed: u64, rate: u64) -> io::Result<()> {
        let mut pipe = Pipe::new(Sys::default(), fifo);
        let mut spool =
            Spool::with_limit(Sys::default(), fifo, tdp_core::transport::spool::MAX_BYTES);
        let lost = {
            let start = std::time::Instant::now();
            let mut lost = 0u64;
            for i in 0..count {
                pace(start, i, rate);
                let Ok(frame) = binary::encode(&record(i, hosts, seed)) else {
                    continue;
                };
                let now = tdp_core::time::now_unix_ns();
                if pipe.send(&frame, now).is_err() && spool.append(&frame, now).is_err() {
                    lost += 1;
                }
            }
            lost
        };
        eprintln!(
            "gen-records: piped {} spooled {} lost {lost}",
            pipe.stats.piped, spool.stats.spooled
        );
        Ok(())
    }
}

fn record(i: u64, hosts: u64, seed: u64) -> Record {
    // splitmix64 of (seed, i): distinct ids across seeds and records.
    let mut x = seed
        .wrapping_mul(0xD1B5_4A32_D192_ED03)
        .wrapping_add(i + 1)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    let statuses = [200, 200, 200, 200, 201, 301, 404, 429, 500, 503];
    let status = statuses[(x % statuses.len() as u64) as usize];
    let methods = ["GET", "GET", "POST", "PUT", "DELETE"];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let host = format!("app{}.example.com", x % hosts.max(1));
    let facts = RequestFacts {
        start_ns: now - 50_000_000,
        host: host.clone(),
        method: methods[((x >> 8) % methods.len() as u64) as usize].to_owned(),
        path: format!("/api/v1/items/{}", x % 1000),
        scheme: "https".to_owned(),
        protocol: "HTTP/1.1".to_owned(),
        client_addr: format!(
            "10.0.{}.{}:5{:04}",
            (x >> 16) % 256,
            (x >> 24) % 256,
            x % 10000
        ),
        user_agent: "Mozilla/5.0 (X11; Linux x86_64) gen-records/1".to_owned(),
        ..RequestFacts::default()
    };
    let ctx = SpanContext {
        trace_id: TraceId {
            high: (now as u64 / 1_000_000_000) << 32,
            low: x | 1,
        },
        span_id: (x >> 1) | 1,
        parent_id: 0,
        sampling: Decision {
            priority: if x % 4 == 0 { 0 } else { 1 },
            mechanism: 0,
            rate: 1.0,
        },
    };
    let cfg = Config {
        service: "edge".to_owned(),
        env: "test".to_owned(),
        version: "1.0.0".to_owned(),
        ..Config::default()
    };
    let end = now - 50_000_000 + 1_000_000 + (x % 50_000_000) as i64;
    Record::build(
        &(&cfg).into(),
        facts,
        &Propagation::root(ctx),
        ResponseFacts::new(end, status, StatusSource::Buffered),
        0,
    )
}

/// Sleeps so that record `i` goes out no earlier than `i / rate` seconds
/// after `start`.
fn pace(start: std::time::Instant, i: u64, rate: u64) {
    if rate == 0 || i % (rate / 1000).max(1) != 0 {
        return;
    }
    let due = start + std::time::Duration::from_secs_f64(i as f64 / rate as f64);
    let now = std::time::Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut format = "json".to_owned();
    let mut count = 10u64;
    let mut hosts = 5u64;
    let mut out: Option<String> = None;
    let mut udp: Option<String> = None;
    let mut interleave = 0u64;
    let mut seed = 0u64;
    let mut rate = 0u64;
    let mut key = None;
    let mut like_plugin = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut v = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--format" => format = v(),
            "--count" => count = v().parse().unwrap_or(10),
            "--hosts" => hosts = v().parse().unwrap_or(5),
            "--out" => out = Some(v()),
            "--udp" => udp = Some(v()),
            "--interleave" => interleave = v().parse().unwrap_or(0),
            "--seed" => seed = v().parse().unwrap_or(0),
            "--rate" => rate = v().parse().unwrap_or(0),
            "--like-plugin" => like_plugin = true,
            "--secret" => match tdp_core::wire::mac::MacKey::from_secret(&v()) {
                Ok(k) => key = Some(k),
                Err(e) => {
                    eprintln!("gen-records: --secret {e}");
                    std::process::exit(2);
                }
            },
            other => {
                eprintln!("gen-records: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    if let Some(addr) = udp {
        let s = UdpSocket::bind("127.0.0.1:0")?;
        let start = std::time::Instant::now();
        for i in 0..count {
            pace(start, i, rate);
            let r = record(i, hosts, seed);
            let frame = match &key {
                Some(k) => binary::encode_sealed(&r, binary::FLAG_CHECKSUM, k),
                None => binary::encode(&r),
            };
            if let Ok(f) = frame {
                s.send_to(&f, &addr)?;
            }
        }
        return Ok(());
    }
    if like_plugin {
        let (Some(fifo), "frames") = (&out, format.as_str()) else {
            eprintln!("gen-records: --like-plugin needs --format frames --out FIFO");
            std::process::exit(2);
        };
        #[cfg(unix)]
        return like_plugin::write(fifo, count, hosts, seed, rate);
        #[cfg(not(unix))]
        {
            eprintln!("gen-records: --like-plugin {fifo}: Unix only");
            std::process::exit(2);
        }
    }
    let mut w: Box<dyn Write> = match &out {
        Some(p) => Box::new(
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(p)?,
        ),
        None => Box::new(io::BufWriter::with_capacity(1 << 16, io::stdout().lock())),
    };
    let foreign = r#"{"level":"debug","providerName":"file","time":"2026-11-25T14:41:10Z","message":"Configuration received"}"#;
    let start = std::time::Instant::now();
    for i in 0..count {
        pace(start, i, rate);
        let r = record(i, hosts, seed);
        match format.as_str() {
            "frames" => {
                if let Ok(f) = binary::encode(&r) {
                    // One write per frame: atomic on a FIFO.
                    w.write_all(&f)?;
                    if out.is_some() {
                        w.flush()?;
                    }
                }
                continue;
            }
            "bare" => writeln!(w, "{}", fallback::encode(&r))?,
            "console" => writeln!(
                w,
                "\x1b[90m2026-11-25T14:41:10Z\x1b[0m \x1b[32mINF\x1b[0m \x1b[1m{}\x1b[0m \x1b[36mentryPointName=\x1b[0mweb \x1b[36mmiddlewareName=\x1b[0mdd@file \x1b[36mmiddlewareType=\x1b[0mwasm \x1b[36mrouterName=\x1b[0mr{}@file",
                fallback::encode(&r),
                i % 3
            )?,
            _ => {
                let message = serde_json::to_string(&fallback::encode(&r)).unwrap_or_default();
                writeln!(
                    w,
                    r#"{{"level":"info","entryPointName":"web","routerName":"r{}@file","middlewareName":"dd@file","middlewareType":"wasm","time":"2026-11-25T14:41:10Z","message":{message}}}"#,
                    i % 3
                )?
            }
        }
        for _ in 0..interleave {
            writeln!(w, "{foreign}")?;
        }
    }
    w.flush()
}
