//! The FIFO's permissions: the narrowest that still lets Traefik write.
//!
//! - Default 0600: the relay and Traefik run as the same user (the Helm
//!   chart runs every container of the pod as uid 65532), so nobody else
//!   needs the FIFO. Anyone who can write to it can forge records.
//! - `--pipe-group GID`: Traefik runs as another user in group GID: the
//!   FIFO gets that group and 0620 (the group may write, not read).
//!
//! Modes are set with chmod after mkfifo, so the umask changes nothing. An
//! existing FIFO with another mode (say 0666 from an older relay) is set to
//! the wanted one; when that is not allowed (another owner), it is reported
//! and the relay goes on.

use crate::sys;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

pub const OWNER_ONLY: u32 = 0o600;
pub const GROUP_WRITE: u32 = 0o620;

/// The mode for a FIFO owned by `group`, if one is given.
pub fn wanted_mode(group: Option<u32>) -> u32 {
    match group {
        Some(_) => GROUP_WRITE,
        None => OWNER_ONLY,
    }
}

/// What an existing FIFO needs: a new group, a new mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub chown_group: Option<u32>,
    pub chmod: Option<u32>,
}

/// The changes that bring a FIFO of `mode` and `gid` to what `group` asks.
/// The group changes first, so the group bits never apply to a wrong group.
pub fn plan(mode: u32, gid: u32, group: Option<u32>) -> Plan {
    let wanted = wanted_mode(group);
    Plan {
        chown_group: group.filter(|g| *g != gid),
        chmod: (mode & 0o7777 != wanted).then_some(wanted),
    }
}

/// Creates the FIFO with the wanted mode if missing, or brings an existing
/// one to it. Errors only when the FIFO cannot be created.
pub fn prepare(path: &Path, group: Option<u32>) -> Result<(), String> {
    let shown = path.display();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            // Owner-only until the group is right, then the group's bit.
            sys::mkfifo(path, OWNER_ONLY)
                .map_err(|e| format!("--pipe: cannot create FIFO {shown}: {e}"))?;
            if let Some(g) = group {
                std::os::unix::fs::chown(path, None, Some(g))
                    .map_err(|e| format!("--pipe: cannot give FIFO {shown} group {g}: {e}"))?;
                set_mode(path, GROUP_WRITE)
                    .map_err(|e| format!("--pipe: cannot set FIFO {shown} mode: {e}"))?;
            }
            info!(
                "pipe: created FIFO {shown} (mode {:04o}{})",
                wanted_mode(group),
                group.map(|g| format!(", group {g}")).unwrap_or_default()
            );
            return Ok(());
        }
        // Left to the pipe input, which explains what is wrong.
        Err(_) => return Ok(()),
    };
    if !std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()) {
        return Ok(());
    }
    let p = plan(meta.mode(), meta.gid(), group);
    if let Some(g) = p.chown_group {
        if let Err(e) = std::os::unix::fs::chown(path, None, Some(g)) {
            warn!(
                "pipe: FIFO {shown} has group {}, not {g}, and cannot be changed: {e}",
                meta.gid()
            );
        }
    }
    if let Some(m) = p.chmod {
        let was = meta.mode() & 0o7777;
        match set_mode(path, m) {
            Ok(()) => info!("pipe: FIFO {shown} had mode {was:04o}; set to {m:04o}"),
            Err(e) => warn!(
                "pipe: FIFO {shown} has mode {was:04o}, not {m:04o}, and cannot be changed ({e}); \
                 whoever may write to it can send records: fix it with chmod {m:o}"
            ),
        }
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_exact_changes() {
        let none = Plan {
            chown_group: None,
            chmod: None,
        };
        assert_eq!(plan(0o10600, 100, None), none, "file type bits ignored");
        assert_eq!(
            plan(0o10666, 100, None),
            Plan {
                chmod: Some(0o600),
                ..none
            }
        );
        assert_eq!(
            plan(0o10600, 100, Some(65532)),
            Plan {
                chown_group: Some(65532),
                chmod: Some(0o620)
            }
        );
        assert_eq!(plan(0o10620, 65532, Some(65532)), none);
        assert_eq!(
            plan(0o10660, 65532, Some(65532)),
            Plan {
                chmod: Some(0o620),
                ..none
            }
        );
        assert_eq!(
            plan(0o10400, 1, None),
            Plan {
                chmod: Some(0o600),
                ..none
            },
            "too narrow for the relay itself"
        );
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("relay-fifo-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        d
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("stat").mode() & 0o7777
    }

    #[test]
    fn creates_owner_only_and_narrows_a_wide_one() {
        let d = dir("mode");
        let p = d.join("x.fifo");
        prepare(&p, None).expect("created");
        assert_eq!(mode(&p), 0o600);
        set_mode(&p, 0o666).expect("widen");
        prepare(&p, None).expect("narrowed");
        assert_eq!(mode(&p), 0o600);
        // Not a FIFO: left alone for the pipe input to refuse.
        let f = d.join("regular");
        std::fs::write(&f, b"x").expect("file");
        set_mode(&f, 0o644).expect("mode");
        prepare(&f, None).expect("left alone");
        assert_eq!(mode(&f), 0o644);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_group_gets_write_only() {
        let d = dir("group");
        let p = d.join("g.fifo");
        // Our own primary group: always allowed.
        let gid = std::fs::metadata(&d).expect("stat").gid();
        prepare(&p, Some(gid)).expect("created");
        let m = std::fs::metadata(&p).expect("stat");
        assert_eq!((m.mode() & 0o7777, m.gid()), (0o620, gid));
        let _ = std::fs::remove_dir_all(&d);
    }
}
