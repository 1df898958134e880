//! The ways an instance's records cannot reach the relay, and the one
//! ERROR line per instance that says so, naming the fix. ERROR because
//! Traefik logs nothing quieter by default: a record that becomes an INFO
//! line is lost there, and a misconfiguration said at INFO or WARN is said
//! to no one.
//!
//! Said only when records are really lost or can never reach the relay: a
//! FIFO that is missing while the spool takes the records is a relay not
//! started yet, and says nothing.
//!
//! Whether Traefik shows INFO lines is asked of the host (`log_enabled`);
//! Traefik's host (3.x, `logs.WasmLogger`) answers yes for every level, so
//! the answer is trusted only from a host that says no for the level
//! `none`: otherwise the lines say what happens at Traefik's default level.

use super::Mode;
use super::pipe::Fallback;
use super::route::{LineLevel, line_level};
use super::spool::{self, SpoolError};

/// Where the fix is documented.
pub const DOCS: &str =
    "https://github.com/traefik-datadog-plugin/traefik-datadog-plugin#install-in-traefik";

/// Every line begins so.
pub const PREFIX: &str = "traefik-datadog: ";

/// WASI's errno values (wasi-libc's `errno.h`), as the guest sees them.
pub mod errno {
    pub const EACCES: i32 = 2;
    pub const ENOENT: i32 = 44;
    pub const ENOSPC: i32 = 51;
    pub const ENOSYS: i32 = 52;
    pub const ENXIO: i32 = 60;
    pub const EPERM: i32 = 63;
    pub const EROFS: i32 = 69;
    pub const ENOTCAPABLE: i32 = 76;
}

/// An errno as a reader wants it: the number and, for the ones a FIFO or a
/// spool meets, what it means there.
pub fn errno_text(e: i32) -> String {
    let meaning = match e {
        errno::EACCES => "permission denied",
        errno::ENOENT => "no such file",
        errno::ENOSPC => "no space left",
        // What Traefik's wazero answers to a write on a `:ro` mount.
        errno::ENOSYS => "not supported, as on a read-only mount",
        errno::ENXIO => "no reader",
        errno::EPERM => "not permitted",
        errno::EROFS => "read-only file system",
        errno::ENOTCAPABLE => "not inside a mounted directory",
        _ => return format!("errno {e}"),
    };
    format!("errno {e}, {meaning}")
}

/// What the fallback lines become at Traefik's log level. `info_shown`:
/// the host's answer, `None` where it cannot tell.
fn fate(level: LineLevel, info_shown: Option<bool>) -> &'static str {
    match (level, info_shown) {
        (LineLevel::Error, _) => {
            "ERROR log lines, one per request, that no relay on the pipe reads"
        }
        (LineLevel::Info, Some(true)) => "INFO log lines, that no relay on the pipe reads",
        (LineLevel::Info, Some(false)) => "INFO log lines, which Traefik's log level drops: lost",
        (LineLevel::Info, None) => {
            "INFO log lines, lost unless Traefik's log.level is INFO or DEBUG (its default is ERROR)"
        }
    }
}

/// The directory of `path` and the name in it.
pub fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((dir, name)) => (dir, name),
        None => (".", path),
    }
}

/// No directory is mounted where `pipePath` lies: neither the FIFO nor the
/// spool can ever be opened. Said at start.
pub fn no_mount(mode: Mode, pipe_path: &str, info_shown: Option<bool>) -> String {
    let (dir, name) = split(pipe_path);
    let level = line_level(mode, Some(SpoolError::Unavailable(errno::ENOTCAPABLE)));
    format!(
        "{PREFIX}no directory mounted at {dir} (pipePath {pipe_path}): records go out as {}; \
         add settings.mounts: [\"<dir>:{dir}\"] to the plugin's static configuration and run \
         traefik-datadog-relay --pipe <dir>/{name} ({DOCS})",
        fate(level, info_shown)
    )
}

/// `log` mode: every record is an INFO line. `None` where the host says
/// they are shown.
pub fn log_mode(info_shown: Option<bool>) -> Option<String> {
    if info_shown == Some(true) {
        return None;
    }
    Some(format!(
        "{PREFIX}mode \"log\": records go out as {}; set Traefik's log.level to INFO \
         (and read them with traefik-datadog-relay --stdin), or use the pipe: mode \"auto\" \
         with settings.mounts ({DOCS})",
        fate(LineLevel::Info, info_shown)
    ))
}

/// Network mode: UDP to the relay failed and the record went out as an INFO
/// line. Said once per instance: while the relay is away (down, restarting,
/// never started) every record takes that way.
pub fn relay_unreachable(relay: std::net::SocketAddr, info_shown: Option<bool>) -> String {
    format!(
        "{PREFIX}a record could not be sent over UDP to the relay at {relay} (relayAddress): \
         records that cannot go out as {}; run traefik-datadog-relay --udp {relay} beside \
         Traefik ({DOCS})",
        fate(LineLevel::Info, info_shown)
    )
}

/// The FIFO is missing, but another one lies in its directory: the relay
/// reads that one, and never drains this name's spool.
pub fn other_fifo(pipe_path: &str, found: &str) -> String {
    let (dir, _) = split(pipe_path);
    format!(
        "{PREFIX}pipePath {pipe_path} does not exist but {dir}/{found} does: the relay reads \
         another FIFO, so records wait in {} where no relay drains them, then go out as ERROR \
         log lines; set pipePath to the path the relay's --pipe names ({DOCS})",
        spool::path_for(pipe_path)
    )
}

/// Neither the FIFO nor the spool took a record, for a reason that will not
/// pass by itself (not a full pipe, not a full spool).
pub fn spool_unwritable(
    mode: Mode,
    pipe_path: &str,
    pipe: Fallback,
    spool: SpoolError,
    info_shown: Option<bool>,
) -> String {
    let why_pipe = match pipe {
        Fallback::Unavailable(e) | Fallback::Broken(e) => errno_text(e),
        Fallback::Full => "full".to_owned(),
        Fallback::Waiting => "waiting to retry".to_owned(),
    };
    let why_spool = match spool {
        SpoolError::Unavailable(e) | SpoolError::Write(e) => errno_text(e),
        other => other.to_string(),
    };
    format!(
        "{PREFIX}the FIFO {pipe_path} cannot be written ({why_pipe}) and neither can the spool {} \
         ({why_spool}): records go out as {}; mount the directory writable for Traefik's user \
         (no \":ro\" in settings.mounts) and run the relay on the FIFO ({DOCS})",
        spool::path_for(pipe_path),
        fate(line_level(mode, Some(spool)), info_shown)
    )
}

/// Whether a spool failure means records are lost until someone acts: not
/// a full spool (its records already go out as ERROR lines, counted by the
/// relay's drain), not the wait between retries, not a spool turned off.
pub fn spool_failure_lasts(e: SpoolError) -> bool {
    matches!(e, SpoolError::Unavailable(_) | SpoolError::Write(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIPE: &str = "/run/dd/traefik-datadog.fifo";

    #[test]
    fn no_mount_in_auto_mode_says_the_lines_are_lost() {
        assert_eq!(
            no_mount(Mode::Auto, PIPE, None),
            "traefik-datadog: no directory mounted at /run/dd (pipePath /run/dd/traefik-datadog.fifo): \
             records go out as INFO log lines, lost unless Traefik's log.level is INFO or DEBUG (its \
             default is ERROR); add settings.mounts: [\"<dir>:/run/dd\"] to the plugin's static configuration \
             and run traefik-datadog-relay --pipe <dir>/traefik-datadog.fifo \
             (https://github.com/traefik-datadog-plugin/traefik-datadog-plugin#install-in-traefik)"
        );
        assert!(
            no_mount(Mode::Auto, PIPE, Some(false))
                .contains("INFO log lines, which Traefik's log level drops: lost;")
        );
    }

    #[test]
    fn no_mount_in_pipe_mode_says_error_lines() {
        assert!(no_mount(Mode::Pipe, "/x.fifo", None).starts_with(
            "traefik-datadog: no directory mounted at / (pipePath /x.fifo): records go out as \
             ERROR log lines, one per request, that no relay on the pipe reads;"
        ));
    }

    #[test]
    fn an_unreachable_relay_names_its_address_and_the_fix() {
        let addr = "127.0.0.1:8127".parse().expect("an address");
        assert_eq!(
            relay_unreachable(addr, None),
            "traefik-datadog: a record could not be sent over UDP to the relay at \
             127.0.0.1:8127 (relayAddress): records that cannot go out as INFO log lines, lost \
             unless Traefik's log.level is INFO or DEBUG (its default is ERROR); run \
             traefik-datadog-relay --udp 127.0.0.1:8127 beside Traefik \
             (https://github.com/traefik-datadog-plugin/traefik-datadog-plugin#install-in-traefik)"
        );
    }

    #[test]
    fn log_mode_is_said_unless_the_host_shows_info() {
        assert_eq!(
            log_mode(None).as_deref(),
            Some(
                "traefik-datadog: mode \"log\": records go out as INFO log lines, lost unless Traefik's \
                 log.level is INFO or DEBUG (its default is ERROR); set Traefik's log.level to INFO \
                 (and read them with traefik-datadog-relay --stdin), or use the pipe: mode \"auto\" \
                 with settings.mounts \
                 (https://github.com/traefik-datadog-plugin/traefik-datadog-plugin#install-in-traefik)"
            )
        );
        assert!(log_mode(Some(false)).is_some());
        assert_eq!(log_mode(Some(true)), None);
    }

    #[test]
    fn another_fifo_is_named() {
        assert_eq!(
            other_fifo("/run/dd/wrong.fifo", "traefik-datadog.fifo"),
            "traefik-datadog: pipePath /run/dd/wrong.fifo does not exist but \
             /run/dd/traefik-datadog.fifo does: the relay reads another FIFO, so records wait in \
             /run/dd/wrong.fifo.spool where no relay drains them, then go out as ERROR log lines; \
             set pipePath to the path the relay's --pipe names \
             (https://github.com/traefik-datadog-plugin/traefik-datadog-plugin#install-in-traefik)"
        );
    }

    #[test]
    fn an_unwritable_spool_names_both_errors() {
        assert_eq!(
            spool_unwritable(
                Mode::Auto,
                PIPE,
                Fallback::Unavailable(errno::ENOENT),
                SpoolError::Unavailable(errno::EROFS),
                None
            ),
            "traefik-datadog: the FIFO /run/dd/traefik-datadog.fifo cannot be written (errno 44, no such \
             file) and neither can the spool /run/dd/traefik-datadog.fifo.spool (errno 69, read-only \
             file system): records go out as INFO log lines, lost unless Traefik's log.level is INFO or \
             DEBUG (its default is ERROR); mount the directory writable for Traefik's user (no \":ro\" \
             in settings.mounts) and run the relay on the FIFO \
             (https://github.com/traefik-datadog-plugin/traefik-datadog-plugin#install-in-traefik)"
        );
        assert!(
            spool_unwritable(
                Mode::Pipe,
                PIPE,
                Fallback::Broken(64),
                SpoolError::Write(errno::ENOSPC),
                None
            )
            .contains("(errno 64) and neither can the spool /run/dd/traefik-datadog.fifo.spool (errno 51, no space left): records go out as ERROR log lines")
        );
    }

    #[test]
    fn errnos_say_what_they_mean_here() {
        assert_eq!(
            errno_text(errno::ENOSYS),
            "errno 52, not supported, as on a read-only mount"
        );
        assert_eq!(errno_text(64), "errno 64");
    }

    #[test]
    fn only_lasting_spool_failures_are_said() {
        for (e, lasts) in [
            (SpoolError::Unavailable(errno::EACCES), true),
            (SpoolError::Write(0), true),
            (SpoolError::Full, false),
            (SpoolError::Waiting, false),
            (SpoolError::Off, false),
        ] {
            assert_eq!(spool_failure_lasts(e), lasts, "{e:?}");
        }
    }

    #[test]
    fn paths_split_into_directory_and_name() {
        assert_eq!(split("/run/dd/x.fifo"), ("/run/dd", "x.fifo"));
        assert_eq!(split("/x.fifo"), ("/", "x.fifo"));
        assert_eq!(split("x.fifo"), (".", "x.fifo"));
    }
}
