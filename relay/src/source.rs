//! Which input a record came from: the inputs count by it and the telemetry
//! reports by it, so it belongs to neither.

/// The four inputs; the discriminant indexes per-input counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Pipe = 0,
    Stdin = 1,
    Follow = 2,
    Udp = 3,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pipe => "pipe",
            Self::Stdin => "stdin",
            Self::Follow => "follow",
            Self::Udp => "udp",
        }
    }
}
