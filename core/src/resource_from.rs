//! Where a span's resource name comes from.

/// Where the resource name comes from. nginx users set it to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceFrom {
    Host,
    MethodHost,
    MethodPath,
}
