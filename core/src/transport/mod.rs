//! The ways bytes travel between a plugin instance and the relay, apart from
//! the system calls that carry them (the guest supplies those through a
//! trait per transport; tests supply fakes): out through the FIFO
//! ([`pipe`]), the spool file beside it ([`spool`]) or UDP ([`network`]),
//! in through the files the relay publishes beside the FIFO ([`watch`]);
//! and which of them a record takes, in which order ([`route`]).

pub mod loss;
pub mod network;
pub mod pipe;
pub mod route;
pub mod spool;
pub mod watch;

/// How records leave the guest: the `mode` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The FIFO when it works (else the spool, else log lines); in the
    /// socket build, UDP to the relay after them.
    Auto,
    Pipe,
    /// UDP to the relay, in the socket build (plugin-net.wasm); the build
    /// without sockets takes it as `auto`.
    Network,
    Log,
}

impl Mode {
    /// Whether records go through the FIFO, whose directory Traefik mounts:
    /// the one way files reach the guest, so also whether the instance reads
    /// what the relay publishes there. `socket_build`: plugin-net.wasm, where
    /// `network` mode uses UDP and nothing is mounted.
    pub fn uses_pipe(self, socket_build: bool) -> bool {
        match self {
            Self::Auto | Self::Pipe => true,
            Self::Network => !socket_build,
            Self::Log => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_mode_uses_the_pipe_only_without_sockets() {
        for (mode, without, with) in [
            (Mode::Auto, true, true),
            (Mode::Pipe, true, true),
            (Mode::Network, true, false),
            (Mode::Log, false, false),
        ] {
            assert_eq!(
                (mode.uses_pipe(false), mode.uses_pipe(true)),
                (without, with),
                "{mode:?}"
            );
        }
    }
}
