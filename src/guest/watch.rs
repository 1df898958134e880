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
#[cfg(not(feature = "network"))]
use tdp_core::transport::watch::MAX_SPECIAL;
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

    /// Nothing is mounted in this build (Traefik's socket host refuses it).
    fn is_dir(&mut self, _path: &str) -> bool {
        false
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

    fn is_dir(&mut self, path: &str) -> bool {
        std::fs::metadata(path).is_ok_and(|m| m.is_dir())
    }

    fn special_files(&mut self, dir: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_type()
                    .is_ok_and(|t| !t.is_file() && !t.is_dir() && !t.is_symlink())
            })
            .filter_map(|e| e.file_name().into_string().ok())
            .take(MAX_SPECIAL)
            .collect()
    }
}
