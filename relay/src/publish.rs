//! Files the relay publishes beside the FIFO for the plugin's instances to
//! read (`tdp_core::watch`): written whole to a temporary name in the same
//! directory, then renamed over the old one, so an instance reads either the
//! old version or the new one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};

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
    fn missing_directory_is_an_error() {
        assert!(publish(Path::new("/nonexistent-tdp-dir"), "x", b"1").is_err());
    }
}
