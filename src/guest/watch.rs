//! The file system calls of a [`tdp_core::transport::watch::Watch`], through WASI on
//! the directory Traefik mounted (`settings.mounts`).
//!
//! The socket build (plugin-net.wasm) reads nothing: Traefik's socket host
//! refuses mounts, and its `fd_read` shares unlocked state between
//! instances (traefik#11629), so that module must not even import it.

#[cfg(not(feature = "network"))]
use std::io::Read;
#[cfg(not(feature = "network"))]
use std::time::UNIX_EPOCH;
use tdp_core::transport::watch::{FileSys, Stamp};

pub struct WasiFiles;

#[cfg(feature = "network")]
impl FileSys for WasiFiles {
    fn stat(&mut self, _path: &str) -> Option<Stamp> {
        None
    }

    fn read(&mut self, _path: &str, _max: u64) -> Option<Vec<u8>> {
        None
    }
}

#[cfg(not(feature = "network"))]
impl FileSys for WasiFiles {
    fn stat(&mut self, path: &str) -> Option<Stamp> {
        let m = std::fs::metadata(path).ok()?;
        let modified_ns = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        Some(Stamp {
            len: m.len(),
            modified_ns,
        })
    }

    fn read(&mut self, path: &str, max: u64) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        std::fs::File::open(path)
            .ok()?
            .take(max)
            .read_to_end(&mut out)
            .ok()?;
        Some(out)
    }
}
