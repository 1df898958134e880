//! gRPC statuses, read from the `grpc-status` trailer.

/// A gRPC status code (0-16) from `grpc-status`.
pub fn grpc_code(s: &str) -> Option<u8> {
    match s.trim().parse::<u8>() {
        Ok(c) if c <= 16 => Some(c),
        _ => None,
    }
}

/// The gRPC codes a server span marks as an error, as OpenTelemetry's
/// semantic conventions for gRPC servers: UNKNOWN, DEADLINE_EXCEEDED,
/// UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS. Others are the caller's
/// fault or not failures.
pub fn grpc_is_error(code: u8) -> bool {
    matches!(code, 2 | 4 | 12 | 13 | 14 | 15)
}
