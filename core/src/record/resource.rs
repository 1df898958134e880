//! Where a span's resource name comes from.

/// Where the resource name comes from. nginx users set it to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceFrom {
    Host,
    MethodHost,
    MethodPath,
}

/// The resource name for a request under the configured rule.
pub fn resource(from: ResourceFrom, method: &str, host: &str, path: &str) -> String {
    match from {
        ResourceFrom::Host if host.is_empty() => format!("{method} {path}"),
        ResourceFrom::Host => host.to_owned(),
        ResourceFrom::MethodHost => format!("{method} {host}"),
        ResourceFrom::MethodPath => format!("{method} {path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_rules() {
        assert_eq!(
            resource(ResourceFrom::Host, "GET", "a.example", "/x"),
            "a.example"
        );
        assert_eq!(
            resource(ResourceFrom::MethodHost, "GET", "a.example", "/x"),
            "GET a.example"
        );
        assert_eq!(
            resource(ResourceFrom::MethodPath, "POST", "a.example", "/x"),
            "POST /x"
        );
        assert_eq!(resource(ResourceFrom::Host, "GET", "", "/x"), "GET /x");
    }
}
