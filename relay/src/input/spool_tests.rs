use super::*;
use crate::input::tests::record;
use crate::telemetry::Counters;
use std::io::Write;
use std::sync::Arc;
use tdp_core::wire::binary::encode;

fn frame(status: u16) -> Vec<u8> {
    encode(&record(status)).expect("fits")
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("relay-spool-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

fn drainer(dir: &Path) -> Drainer {
    Drainer {
        dir: dir.to_owned(),
        spool_name: "x.fifo.spool".into(),
        shown: "test".into(),
        files: Vec::new(),
        last_id: 0,
        live_len: 0,
        throttle: Throttle::new(Duration::from_secs(10)),
    }
}

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(bytes).expect("write");
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

fn statuses(rx: &std::sync::mpsc::Receiver<Vec<Envelope>>) -> Vec<u16> {
    rx.try_iter().flatten().map(|e| e.record.status).collect()
}

#[test]
fn spool_path_is_the_fifo_path_plus_the_suffix() {
    assert_eq!(
        spool_path(Path::new("/run/dd/traefik-datadog.fifo")),
        PathBuf::from("/run/dd/traefik-datadog.fifo.spool")
    );
}

#[test]
fn drain_names_round_trip_and_foreign_names_are_ignored() {
    let n = DrainName {
        id: 1_700_000_000_000_000_001,
        offset: 4096,
    };
    let s = n.file_name("x.fifo.spool");
    assert_eq!(s, "x.fifo.spool.drain-1700000000000000001-4096");
    assert_eq!(DrainName::parse("x.fifo.spool", &s), Some(n));
    for other in [
        "x.fifo.spool",
        "x.fifo",
        "x.fifo.spool.drain-",
        "x.fifo.spool.drain-1",
        "x.fifo.spool.drain-1-",
        "x.fifo.spool.drain--5",
        "x.fifo.spool.drain-1-+5",
        "x.fifo.spool.drain-1-2-3",
        "x.fifo.spool.drain-99999999999999999999-0",
        "y.fifo.spool.drain-1-2",
    ] {
        assert_eq!(DrainName::parse("x.fifo.spool", other), None, "{other}");
    }
}

#[test]
fn a_drained_file_settles_only_when_read_and_quiet() {
    let t0 = Instant::now();
    let mut d = Draining::new(DrainName { id: 1, offset: 0 }, t0);
    d.read = 100;
    assert!(!d.settled(100, t0 + SETTLE - Duration::from_millis(1)));
    assert!(!d.settled(101, t0 + SETTLE), "bytes left to read");
    assert!(d.settled(100, t0 + SETTLE));
}

#[test]
fn takes_the_spool_hands_every_frame_on_and_keeps_the_offset_in_the_name() {
    let dir = temp_dir("take");
    let live = dir.join("x.fifo.spool");
    let mut bytes = frame(200);
    bytes.extend(frame(404));
    let cut = bytes.len();
    let third = frame(503);
    bytes.extend(&third[..10]);
    append(&live, &bytes);

    let counters = Arc::new(Counters::default());
    let (q, rx) = Queue::new(100, counters.clone());
    let mut d = drainer(&dir);
    d.take_live();
    assert!(!live.exists(), "renamed away");
    assert_eq!(d.waiting(), bytes.len() as u64, "all of it waits");
    let id = d.files[0].name.id;
    let mut buf = vec![0u8; CHUNK];
    assert!(!d.drain(0, &mut buf, &q), "not settled yet");
    d.save(0);
    assert_eq!(statuses(&rx), vec![200, 404]);
    assert_eq!(d.waiting(), 10, "the incomplete tail");
    assert_eq!(counters.snapshot().spool_bytes, 10);
    assert_eq!(names(&dir), vec![format!("x.fifo.spool.drain-{id}-{cut}")]);

    // A writer that opened before the rename finishes its frame; a new
    // writer creates a fresh spool.
    let renamed = dir.join(format!("x.fifo.spool.drain-{id}-{cut}"));
    append(&renamed, &third[10..]);
    append(&live, &frame(201));
    assert!(!d.drain(0, &mut buf, &q));
    d.save(0);
    assert_eq!(statuses(&rx), vec![503]);
    assert_eq!(d.waiting(), 0);
    d.take_live();
    assert_eq!(d.waiting(), frame(201).len() as u64);
    assert_eq!(d.files.len(), 2);
    assert!(d.files[1].name.id > id);
    assert!(!d.drain(1, &mut buf, &q));
    assert_eq!(statuses(&rx), vec![201]);

    // Once quiet for SETTLE the file is deleted.
    d.files[0].changed -= SETTLE;
    assert!(d.drain(0, &mut buf, &q));
    let first = d.files.remove(0);
    d.finish(first, &q);
    assert_eq!(d.files.len(), 1);
    assert!(!renamed.exists());
    let s = counters.snapshot();
    assert_eq!((s.received[0], s.malformed[0]), (4, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_new_relay_resumes_where_the_name_says_and_counts_a_cut_tail() {
    let dir = temp_dir("resume");
    let mut bytes = frame(200);
    let skip = bytes.len() as u64;
    bytes.extend(frame(404));
    bytes.extend(&frame(503)[..7]);
    let name = DrainName {
        id: 5,
        offset: skip,
    };
    append(&dir.join(name.file_name("x.fifo.spool")), &bytes);
    std::fs::write(dir.join("unrelated.spool.drain-1-0"), b"x").expect("write");

    let counters = Arc::new(Counters::default());
    let (q, rx) = Queue::new(100, counters.clone());
    let mut d = drainer(&dir);
    d.adopt_leftovers();
    assert_eq!(d.files.len(), 1);
    assert_eq!(d.last_id, 5);
    let mut buf = vec![0u8; CHUNK];
    d.files[0].changed -= SETTLE;
    assert!(!d.drain(0, &mut buf, &q), "it grew on this pass");
    assert_eq!(statuses(&rx), vec![404]);
    d.files[0].changed -= SETTLE;
    assert!(d.drain(0, &mut buf, &q));
    let done = d.files.remove(0);
    d.finish(done, &q);
    assert_eq!(names(&dir), vec!["unrelated.spool.drain-1-0".to_owned()]);
    assert_eq!(counters.snapshot().malformed[0], 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_spool_leaves_half_the_queue_to_the_fifo() {
    let counters = Arc::new(Counters::default());
    let (q, _rx) = Queue::new(4, counters);
    assert!(!q.half_full());
    q.push(Source::Pipe, vec![Envelope::bare(record(200)); 2]);
    assert!(!q.half_full());
    q.push(Source::Pipe, vec![Envelope::bare(record(200))]);
    assert!(q.half_full());
}

#[test]
fn a_symlinked_spool_is_left_alone() {
    let dir = temp_dir("symlink");
    let elsewhere = dir.join("elsewhere");
    append(&elsewhere, &frame(200));
    std::os::unix::fs::symlink(&elsewhere, dir.join("x.fifo.spool")).expect("symlink");
    let mut d = drainer(&dir);
    d.take_live();
    assert!(d.files.is_empty());
    assert_eq!(
        names(&dir),
        vec!["elsewhere".to_owned(), "x.fifo.spool".to_owned()]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
