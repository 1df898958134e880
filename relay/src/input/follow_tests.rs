use super::*;
use std::fs::OpenOptions;

#[derive(Default)]
struct Lines(Vec<String>);

impl LineSink for Lines {
    fn line(&mut self, line: &[u8]) {
        self.0.push(String::from_utf8_lossy(line).into_owned());
    }
    fn long_start(&mut self, _: &[u8], _: bool) {}
    fn long_more(&mut self, _: &[u8], _: bool) {}
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("relay-follow-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("dir");
        Self(d)
    }
    fn log(&self) -> PathBuf {
        self.0.join("traefik.log")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn append(p: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .expect("open");
    f.write_all(text.as_bytes()).expect("write");
}

/// Polls until idle; returns the lines read.
fn drain(f: &mut Follower) -> Vec<String> {
    let mut l = Lines::default();
    for _ in 0..100 {
        if f.poll(&mut l).expect("poll") == Poll::Idle {
            break;
        }
    }
    l.0
}

/// Only the wasm middleware's own record lines are taken from the file:
/// forged records in access-log lines, short or over the line cap, are
/// neither records nor malformed.
#[test]
fn takes_records_only_from_the_plugins_lines() {
    use crate::input::tests::record;
    use crate::telemetry::Counters;
    use std::sync::Arc;
    use tdp_core::wire::fallback;

    let mut forged = record(500);
    forged.service = "payments".into();
    let forged = fallback::encode(&forged);
    let genuine = serde_json::to_string(&fallback::encode(&record(200))).expect("json");
    let d = Dir::new("forged");
    append(
        &d.log(),
        &format!(
            "10.0.0.9 - - [25/Nov/2026:14:49:52 +0000] \"GET / HTTP/1.1\" 200 2 \"-\" \"{}\" 7 \"web@file\" \"http://b\" 1ms\n\
             {{\"request_User-Agent\":{},\"level\":\"info\",\"msg\":\"\"}}\n\
             10.0.0.9 - - [x] \"GET /{forged}{} HTTP/1.1\" 200\n\
             {{\"level\":\"info\",\"middlewareType\":\"wasm\",\"routerName\":\"r@file\",\"message\":{genuine}}}\n",
            forged.replace('"', "\\\""),
            serde_json::to_string(&forged).expect("json"),
            "x".repeat(2000),
        ),
    );
    let counters = Arc::new(Counters::default());
    let (queue, _rx) = Queue::new(10, counters.clone());
    let mut sink = Collect {
        queue: &queue,
        records: Vec::new(),
        long_ours: false,
        throttle: Throttle::new(Duration::from_secs(10)),
    };
    let mut f = Follower::new(&d.log(), 1024, FollowFrom::Beginning, None);
    for _ in 0..100 {
        if f.poll(&mut sink).expect("poll") == Poll::Idle {
            break;
        }
    }
    assert_eq!(sink.records.len(), 1);
    assert_eq!(sink.records[0].record, record(200));
    assert_eq!(sink.records[0].host.router_name, "r@file");
    assert_eq!(counters.snapshot().malformed[Source::Follow as usize], 0);
}

#[test]
fn waits_for_the_file_and_for_whole_lines() {
    let d = Dir::new("wait");
    let mut f = Follower::new(&d.log(), 1024, FollowFrom::End, None);
    assert!(drain(&mut f).is_empty());
    append(&d.log(), "a\nb");
    assert_eq!(
        drain(&mut f),
        vec!["a\n"],
        "a new file is read from its start"
    );
    assert_eq!(f.position().expect("pos").expect("open").offset, 2);
    append(&d.log(), "c\n");
    assert_eq!(drain(&mut f), vec!["bc\n"]);
    assert_eq!(f.position().expect("pos").expect("open").offset, 5);
}

#[test]
fn first_start_honours_follow_from() {
    let d = Dir::new("from");
    append(&d.log(), "old\n");
    let mut end = Follower::new(&d.log(), 1024, FollowFrom::End, None);
    let mut beginning = Follower::new(&d.log(), 1024, FollowFrom::Beginning, None);
    assert!(drain(&mut end).is_empty());
    assert_eq!(drain(&mut beginning), vec!["old\n"]);
    append(&d.log(), "new\n");
    assert_eq!(drain(&mut end), vec!["new\n"]);
}

#[test]
fn rotation_by_rename_keeps_reading_the_old_file_until_quiet() {
    let d = Dir::new("rename");
    append(&d.log(), "1\n");
    let mut f = Follower::new(&d.log(), 1024, FollowFrom::Beginning, None);
    f.rotate_wait = Duration::from_millis(300);
    assert_eq!(drain(&mut f), vec!["1\n"]);
    let rotated = d.0.join("traefik.log.1");
    std::fs::rename(d.log(), &rotated).expect("rename");
    // The writer still holds the old file for a moment.
    append(&rotated, "2\n3");
    assert_eq!(
        drain(&mut f),
        vec!["2\n"],
        "no new file yet: keep the old one"
    );
    append(&d.log(), "4\n");
    assert_eq!(drain(&mut f), vec!["4\n"]);
    // The writer has not reopened the path yet (logrotate create + USR1).
    append(&rotated, "\n5\n");
    append(&d.log(), "6");
    assert_eq!(drain(&mut f), vec!["3\n", "5\n"]);
    // Quiet for rotate_wait: a half line left in the old file is handed
    // on as it is, and the old file is closed.
    append(&rotated, "7");
    assert_eq!(drain(&mut f), Vec::<String>::new());
    std::thread::sleep(Duration::from_millis(350));
    assert_eq!(drain(&mut f), vec!["7"]);
    assert!(f.draining.is_none());
    append(&d.log(), "\n");
    assert_eq!(drain(&mut f), vec!["6\n"]);
}

#[test]
fn copy_truncate_starts_over() {
    let d = Dir::new("truncate");
    append(&d.log(), "first line\nsecond line\n");
    let mut f = Follower::new(&d.log(), 1024, FollowFrom::Beginning, None);
    assert_eq!(drain(&mut f).len(), 2);
    std::fs::write(d.log(), "x\n").expect("truncate and write");
    assert_eq!(drain(&mut f), vec!["x\n"]);
}

#[test]
fn truncated_and_regrown_past_the_offset_is_noticed_by_its_head() {
    let d = Dir::new("regrow");
    let a = "a".repeat(300) + "\n";
    append(&d.log(), &a);
    let mut f = Follower::new(&d.log(), 1024, FollowFrom::Beginning, None);
    assert_eq!(drain(&mut f), vec![a.clone()]);
    let b = "b".repeat(400) + "\n";
    std::fs::write(d.log(), &b).expect("rewrite");
    let got = drain(&mut f);
    assert_eq!(got, vec![b]);
}

#[test]
fn restart_resumes_without_resending_or_skipping() {
    let d = Dir::new("restart");
    let state = d.0.join("state");
    append(&d.log(), "1\n2\n3");
    let mut f = Follower::new(&d.log(), 1024, FollowFrom::Beginning, None);
    assert_eq!(drain(&mut f), vec!["1\n", "2\n"]);
    save_state(&state, f.position().expect("p").expect("open")).expect("save");
    drop(f);
    append(&d.log(), "\n4\n");
    let saved = load_state(&state).expect("readable");
    assert_eq!(saved.map(|p| p.offset), Some(4));
    let mut g = Follower::new(&d.log(), 1024, FollowFrom::End, saved);
    assert_eq!(drain(&mut g), vec!["3\n", "4\n"]);
}

#[test]
fn restart_after_rotation_while_down_finishes_the_old_file() {
    let d = Dir::new("rotated-down");
    let state = d.0.join("state");
    append(&d.log(), "1\n");
    let mut f = Follower::new(&d.log(), 1024, FollowFrom::Beginning, None);
    assert_eq!(drain(&mut f), vec!["1\n"]);
    save_state(&state, f.position().expect("p").expect("open")).expect("save");
    drop(f);
    append(&d.log(), "2\n");
    std::fs::rename(d.log(), d.0.join("traefik.log.1")).expect("rename");
    append(&d.log(), "3\n");
    let mut g = Follower::new(
        &d.log(),
        1024,
        FollowFrom::End,
        load_state(&state).expect("s"),
    );
    assert_eq!(drain(&mut g), vec!["2\n", "3\n"]);
}

#[test]
fn restart_on_a_replaced_file_reads_it_all() {
    let d = Dir::new("replaced");
    let state = d.0.join("state");
    append(&d.log(), "1\n2\n");
    let mut f = Follower::new(&d.log(), 1024, FollowFrom::Beginning, None);
    drain(&mut f);
    save_state(&state, f.position().expect("p").expect("open")).expect("save");
    drop(f);
    std::fs::remove_file(d.log()).expect("rm");
    append(&d.log(), "x\n");
    let mut g = Follower::new(
        &d.log(),
        1024,
        FollowFrom::End,
        load_state(&state).expect("s"),
    );
    assert_eq!(drain(&mut g), vec!["x\n"]);
}

#[test]
fn state_line_round_trips_and_rejects_junk() {
    let p = Position {
        dev: 2049,
        ino: 1_234_567,
        offset: 99,
        head_len: 99,
        head_hash: 0xdead_beef,
    };
    assert_eq!(p.to_line(), "v1 2049 1234567 99 99 00000000deadbeef\n");
    assert_eq!(Position::parse(&p.to_line()), Some(p));
    assert_eq!(Position::parse("v2 1 2 3 4 5"), None);
    assert_eq!(Position::parse("v1 1 2 3 4 5 6"), None);
    assert_eq!(Position::parse(""), None);
    assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
}

#[test]
fn paths_that_can_never_be_a_log_file_fail_the_start() {
    let dir = std::env::temp_dir().join(format!("tdp-follow-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    assert_eq!(
        check_path(&dir),
        Err(format!(
            "--follow: {} is a directory; give the path of Traefik's log file (its --log.filePath)",
            dir.display()
        ))
    );
    let file = dir.join("traefik.log");
    std::fs::write(&file, b"").expect("file");
    assert_eq!(check_path(&file), Ok(()));
    assert_eq!(
        check_path(&file.join("x.log")),
        Err(format!(
            "--follow: {}: a part of the path is not a directory",
            file.join("x.log").display()
        ))
    );
    // Not there yet (or its directory): waited for.
    assert_eq!(check_path(&dir.join("later.log")), Ok(()));
    assert_eq!(check_path(&dir.join("nodir/later.log")), Ok(()));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
