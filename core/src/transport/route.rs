//! Which ways out a record takes, in which order, and how loud its fallback
//! log line is. The guest carries the route out step by step; every choice
//! is made here.
//!
//! `pipe`/`auto`: the FIFO, else the spool file beside it (drained by the
//! relay). `network` (the socket build): a frame to the relay over UDP;
//! `auto` in the socket build tries it after the pipe and the spool.
//! Whenever those fail, or in `log` mode, the fallback log line, so no
//! record is ever dropped silently.

use super::Mode;
use super::spool::SpoolError;

/// The outlets an instance opens, fixed at start from the mode and the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outlets {
    mode: Mode,
    /// The FIFO, and the spool behind it.
    pub pipe: bool,
    /// UDP to the relay (the socket build only).
    pub network: bool,
}

impl Outlets {
    /// `network_build`: this is plugin-net.wasm, the build with sockets.
    /// Without it `network` degrades to the pipe.
    pub fn new(mode: Mode, network_build: bool) -> Self {
        let pipe = mode.uses_pipe(network_build);
        let network = network_build && matches!(mode, Mode::Auto | Mode::Network);
        Self {
            mode,
            pipe,
            network,
        }
    }

    /// The configured mode needs the other build: said once per instance.
    pub fn needs_network_build(mode: Mode, network_build: bool) -> bool {
        mode == Mode::Network && !network_build
    }

    /// A fresh route for one record.
    pub fn route(self) -> Route {
        Route {
            outlets: self,
            spooled: None,
        }
    }
}

/// One step of a record's way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Encode the frame and write it to the FIFO.
    Pipe,
    /// Append the frame the FIFO refused to the spool.
    Spool,
    /// Send the record to the relay over UDP.
    Network,
    /// Write the fallback log line at this level; the last step.
    Line(LineLevel),
}

/// Why the step before did not take the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// The frame did not encode: neither the FIFO nor the spool can carry it.
    Encode,
    /// The FIFO refused the frame.
    Pipe,
    /// The spool refused the frame.
    Spool(SpoolError),
    /// The relay could not be reached.
    Network,
}

/// One record's route; a step that succeeds ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    outlets: Outlets,
    spooled: Option<SpoolError>,
}

impl Route {
    /// The first step.
    pub fn first(&self) -> Step {
        if self.outlets.pipe {
            Step::Pipe
        } else {
            self.after_pipe()
        }
    }

    /// The step after `failed`.
    pub fn next(&mut self, failed: Failed) -> Step {
        match failed {
            Failed::Pipe => Step::Spool,
            Failed::Encode => self.after_pipe(),
            Failed::Spool(e) => {
                self.spooled = Some(e);
                self.after_pipe()
            }
            Failed::Network => self.line(),
        }
    }

    fn after_pipe(&self) -> Step {
        if self.outlets.network {
            Step::Network
        } else {
            self.line()
        }
    }

    fn line(&self) -> Step {
        Step::Line(line_level(self.outlets.mode, self.spooled))
    }
}

/// The level of a record's fallback log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineLevel {
    /// Lines are the transport: `log` mode, or `auto` with no mount at all.
    Info,
    /// The deployed transport failed: at Traefik's default level (ERROR)
    /// anything quieter would lose the record without a trace.
    Error,
}

/// How loud the fallback line is, from the mode and why the spool did not
/// take the record (`None`: it was not tried, the frame did not encode).
pub fn line_level(mode: Mode, spool: Option<SpoolError>) -> LineLevel {
    match (mode, spool) {
        (Mode::Log | Mode::Network, _) => LineLevel::Info,
        (Mode::Auto, None | Some(SpoolError::Unavailable(_) | SpoolError::Waiting)) => {
            LineLevel::Info
        }
        _ => LineLevel::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LineLevel::{Error, Info};

    /// Every step of a route, failing each one in turn.
    fn walk(outlets: Outlets, failures: &[Failed]) -> Vec<Step> {
        let mut route = outlets.route();
        let mut steps = vec![route.first()];
        for &f in failures {
            steps.push(route.next(f));
        }
        steps
    }

    #[test]
    fn each_mode_opens_its_outlets_in_each_build() {
        let cases = [
            (Mode::Auto, false, true, false),
            (Mode::Pipe, false, true, false),
            (Mode::Network, false, true, false),
            (Mode::Log, false, false, false),
            (Mode::Auto, true, true, true),
            (Mode::Pipe, true, true, false),
            (Mode::Network, true, false, true),
            (Mode::Log, true, false, false),
        ];
        for (mode, build, pipe, network) in cases {
            let o = Outlets::new(mode, build);
            assert_eq!((o.pipe, o.network), (pipe, network), "{mode:?} {build}");
        }
    }

    #[test]
    fn only_network_mode_without_sockets_warns() {
        for mode in [Mode::Auto, Mode::Pipe, Mode::Network, Mode::Log] {
            assert_eq!(
                Outlets::needs_network_build(mode, false),
                mode == Mode::Network
            );
            assert!(!Outlets::needs_network_build(mode, true));
        }
    }

    #[test]
    fn pipe_then_spool_then_network_then_the_line() {
        let auto_net = Outlets::new(Mode::Auto, true);
        assert_eq!(
            walk(
                auto_net,
                &[
                    Failed::Pipe,
                    Failed::Spool(SpoolError::Full),
                    Failed::Network
                ]
            ),
            [Step::Pipe, Step::Spool, Step::Network, Step::Line(Error)]
        );
        // A frame that does not encode skips the spool.
        assert_eq!(
            walk(auto_net, &[Failed::Encode, Failed::Network]),
            [Step::Pipe, Step::Network, Step::Line(Info)]
        );
        let auto = Outlets::new(Mode::Auto, false);
        assert_eq!(
            walk(auto, &[Failed::Pipe, Failed::Spool(SpoolError::Waiting)]),
            [Step::Pipe, Step::Spool, Step::Line(Info)]
        );
        assert_eq!(
            walk(Outlets::new(Mode::Pipe, false), &[Failed::Encode]),
            [Step::Pipe, Step::Line(Error)]
        );
        assert_eq!(
            walk(
                Outlets::new(Mode::Network, false),
                &[Failed::Pipe, Failed::Spool(SpoolError::Full)]
            ),
            [Step::Pipe, Step::Spool, Step::Line(Info)]
        );
        assert_eq!(
            walk(Outlets::new(Mode::Network, true), &[Failed::Network]),
            [Step::Network, Step::Line(Info)]
        );
        assert_eq!(walk(Outlets::new(Mode::Log, true), &[]), [Step::Line(Info)]);
        assert_eq!(
            walk(Outlets::new(Mode::Log, false), &[]),
            [Step::Line(Info)]
        );
    }

    #[test]
    fn lines_are_errors_where_the_pipe_was_meant_to_carry_the_record() {
        let cases = [
            (Mode::Log, None, Info),
            (Mode::Auto, None, Info),
            (Mode::Auto, Some(SpoolError::Unavailable(44)), Info),
            (Mode::Auto, Some(SpoolError::Waiting), Info),
            (Mode::Auto, Some(SpoolError::Full), Error),
            (Mode::Auto, Some(SpoolError::Write(28)), Error),
            (Mode::Pipe, None, Error),
            (Mode::Pipe, Some(SpoolError::Unavailable(44)), Error),
            (Mode::Pipe, Some(SpoolError::Full), Error),
            (Mode::Network, Some(SpoolError::Full), Info),
        ];
        for (mode, spool, want) in cases {
            assert_eq!(line_level(mode, spool), want, "{mode:?} {spool:?}");
        }
    }
}
