use super::*;

const MIB: u64 = 1 << 20;
const HOUR: i64 = 3_600_000_000_000;

#[test]
fn prefixes_are_directories_or_root_level_paths() {
    assert_eq!(route_prefix("/files/a/b.bin"), "/files/a/");
    assert_eq!(route_prefix("/files/"), "/files/");
    assert_eq!(route_prefix("/export"), "/export");
    assert_eq!(route_prefix("/"), "/");
    assert_eq!(route_prefix(""), "");
    let long = format!("/{}/x", "é".repeat(200));
    let p = route_prefix(&long);
    assert!(p.len() <= MAX_PREFIX && long.starts_with(p));
    assert_eq!(p.len(), 255);
}

#[test]
fn learns_large_routes_only_and_publishes_them_sorted() {
    let mut l = Learner::new(MIB, HOUR);
    assert!(!l.observe("a.example", "/api/x", Some(MIB - 1), 0));
    assert!(!l.observe("a.example", "/api/x", None, 0));
    assert!(!l.take_changed());
    assert!(l.observe("b.example", "/files/a.bin", Some(MIB), 1));
    assert!(l.observe("a.example", "/export", Some(5 * MIB), 2));
    assert!(!l.observe("a.example", "/export", Some(5 * MIB), 3));
    assert!(l.take_changed());
    assert!(!l.take_changed());
    assert_eq!(
        String::from_utf8(l.render()).expect("utf-8"),
        "traefik-datadog routes 1\na.example\t/export\nb.example\t/files/\n"
    );
}

#[test]
fn hostile_hosts_and_paths_are_not_learned() {
    let mut l = Learner::new(1, HOUR);
    assert!(!l.observe("a\tb", "/x", Some(9), 0));
    assert!(!l.observe("a\nb", "/x", Some(9), 0));
    assert!(!l.observe("", "/x", Some(9), 0));
    assert!(!l.observe(&"h".repeat(MAX_HOST + 1), "/x", Some(9), 0));
    assert!(!l.observe("a", "/x\ny/z", Some(9), 0));
    assert!(!l.observe("a", "*", Some(9), 0));
    assert!(!l.observe("a", "/", Some(9), 0));
    assert!(l.is_empty());
}

#[test]
fn disabled_learner_learns_nothing() {
    let mut l = Learner::new(0, HOUR);
    assert!(!l.enabled());
    assert!(!l.observe("a", "/x", Some(u64::MAX), 0));
}

#[test]
fn bounded_oldest_forgotten_first_and_expired_after_ttl() {
    let mut l = Learner::new(1, HOUR);
    for i in 0..MAX_ROUTES as i64 + 10 {
        l.observe(&format!("h{i}"), "/x", Some(2), i);
    }
    assert_eq!(l.len(), MAX_ROUTES);
    let text = String::from_utf8(l.render()).expect("utf-8");
    assert!(!text.contains("h9\t") && text.contains("h10\t"));
    // Seen again: refreshed, not new.
    assert!(!l.observe("h10", "/x", Some(2), HOUR));
    assert_eq!(l.expire(HOUR + 600), MAX_ROUTES - 1);
    assert_eq!(l.len(), 1);
    assert_eq!(l.expire(2 * HOUR), 1);
    assert!(l.take_changed());
}

#[test]
fn instances_read_what_the_relay_wrote() {
    let mut l = Learner::new(1, HOUR);
    l.observe("b.example", "/files/x.bin", Some(2), 0);
    l.observe("a.example", "/export", Some(2), 0);
    l.observe("a.example", "/v/1/f", Some(2), 0);
    let r = LearnedRoutes::parse(&l.render());
    assert_eq!(r.len(), 3);
    assert!(r.contains("a.example", "/export"));
    assert!(r.contains("a.example", "/export/more"));
    assert!(r.contains("a.example", "/v/1/other"));
    assert!(!r.contains("a.example", "/v/2/f"));
    assert!(r.contains("b.example", "/files/y.bin"));
    assert!(!r.contains("b.example", "/other"));
    assert!(!r.contains("c.example", "/files/x.bin"));
    assert!(!r.contains("", "/export"));
}

#[test]
fn foreign_or_broken_files_read_as_empty_or_partial() {
    assert!(LearnedRoutes::parse(b"").is_empty());
    assert!(LearnedRoutes::parse(b"routes 2\na\t/x\n").is_empty());
    assert!(LearnedRoutes::parse(&[0xff, 0xfe, b'\n']).is_empty());
    let r = LearnedRoutes::parse(
        b"traefik-datadog routes 1\na\t/x\nno-tab\nb\tnot-a-path\n\t/y\nd\t/\nc\t/z\n",
    );
    assert_eq!(r.len(), 2);
    assert!(r.contains("a", "/x") && r.contains("c", "/z"));
    let mut many = String::from("traefik-datadog routes 1\n");
    for i in 0..MAX_ROUTES + 100 {
        many.push_str(&format!("h{i}\t/p\n"));
    }
    assert_eq!(LearnedRoutes::parse(many.as_bytes()).len(), MAX_ROUTES);
}
