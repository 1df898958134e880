//! Files the relay publishes beside the FIFO for the plugin's instances to
//! read (`tdp_core::transport::watch`): written whole to a temporary name in the same
//! directory, then renamed over the old one, so an instance reads either the
//! old version or the new one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Where files are published: `--publish-dir`, else the FIFO's directory;
/// `None` without either (no plugin instance could read them).
pub fn dir(publish_dir: Option<&Path>, pipe: Option<&Path>) -> Option<PathBuf> {
    publish_dir.map(Path::to_path_buf).or_else(|| {
        pipe.map(|p| match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        })
    })
}

/// Replaces `dir/name` with `bytes` atomically. Readable by every user:
/// Traefik may run as another user than the relay, and nothing published
/// is secret.
pub fn publish(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let target = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(bytes)?;
        // Instances tell versions apart by size and modification time, and
        // the kernel stamps files with a clock that ticks every few
        // milliseconds: two versions of one length within a tick would look
        // alike. Each gets a precise time, later than the one it replaces.
        let now = SystemTime::now();
        let stamp = match std::fs::metadata(&target).and_then(|m| m.modified()) {
            Ok(old) => now.max(old + Duration::from_micros(1)),
            Err(_) => now,
        };
        f.set_modified(stamp)?;
        std::fs::rename(&tmp, &target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|()| target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("tdp-publish-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let p = publish(&dir, "x.rates", b"one").expect("publish");
        assert_eq!(std::fs::read(&p).expect("read"), b"one");
        publish(&dir, "x.rates", b"second").expect("publish again");
        assert_eq!(std::fs::read(&p).expect("read"), b"second");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.rates")]);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn versions_of_one_length_get_later_times() {
        let dir = std::env::temp_dir().join(format!("tdp-publish-t-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mtime = |p: &Path| {
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .expect("mtime")
        };
        let p = publish(&dir, "x", b"aaa").expect("publish");
        let first = mtime(&p);
        publish(&dir, "x", b"bbb").expect("publish again");
        assert!(mtime(&p) > first);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn publish_dir_else_the_fifo_directory() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(dir(Some(&p("/x")), Some(&p("/run/dd/f"))), Some(p("/x")));
        assert_eq!(dir(None, Some(&p("/run/dd/f"))), Some(p("/run/dd")));
        assert_eq!(dir(None, Some(&p("f"))), Some(p(".")));
        assert_eq!(dir(None, None), None);
    }

    #[test]
    fn missing_directory_is_an_error() {
        assert!(publish(Path::new("/nonexistent-tdp-dir"), "x", b"1").is_err());
    }
}
