//! Log lines: splitting a byte stream into lines of bounded length, and
//! picking the plugin's records out of Traefik's log output.
//!
//! The plugin writes its record through the host `log` call, so a record
//! line is one of
//! - console format: `<time> INF {"marker":"traefik-datadog","schema":1,...}
//!   entryPointName=web routerName=r@file ...`, possibly with ANSI colour codes
//!   around the JSON and the fields;
//! - JSON format: `{"level":"info","entryPointName":"web","routerName":"r@file",
//!   ...,"message":"{\"marker\":\"traefik-datadog\",...}"}`;
//! - the bare record JSON.
//!
//! Every other line is someone else's and is left alone.

use super::Envelope;
use memchr::memmem::Finder;
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::LazyLock;
use tdp_core::fallback;
use tdp_core::span::HostFields;

/// Start of a record as it appears in a console-format line.
const MARKER_RAW: &[u8] = b"{\"marker\":\"traefik-datadog\",";
/// Start of a record inside a JSON string (the `message` of a JSON line).
const MARKER_ESCAPED: &[u8] = br#"{\"marker\":\"traefik-datadog\","#;

static ANY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"traefik-datadog"));
static RAW: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(MARKER_RAW));
static ESCAPED: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(MARKER_ESCAPED));

/// What a line is.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Not the plugin's: pass it on.
    Other,
    Record(Box<Envelope>),
    /// The plugin's marker is there but the record cannot be read.
    Malformed(String),
}

/// Whether the start of a line is the plugin's (for lines too long to read
/// whole).
pub fn is_ours(head: &[u8]) -> bool {
    ANY.find(head).is_some() && (RAW.find(head).is_some() || ESCAPED.find(head).is_some())
}

pub fn parse_line(line: &[u8]) -> Parsed {
    let line = trim_eol(line);
    if ANY.find(line).is_none() {
        return Parsed::Other;
    }
    if let Some(pos) = RAW.find(line) {
        return console(line, pos);
    }
    if ESCAPED.find(line).is_some() {
        return json(line);
    }
    Parsed::Other
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &line[..end]
}

fn decode(json: &[u8], host: HostFields) -> Parsed {
    let Ok(text) = std::str::from_utf8(json) else {
        return Parsed::Malformed("record is not UTF-8".to_owned());
    };
    match fallback::decode(text) {
        Ok(record) => Parsed::Record(Box::new(Envelope { record, host })),
        Err(e) => Parsed::Malformed(e.to_string()),
    }
}

fn console(line: &[u8], pos: usize) -> Parsed {
    let text = &line[pos..];
    let Some(end) = json_object_end(text) else {
        return Parsed::Malformed("record JSON is cut off".to_owned());
    };
    let mut host = HostFields::default();
    console_fields(&line[..pos], &mut host);
    console_fields(&text[end..], &mut host);
    decode(&text[..end], host)
}

#[derive(Deserialize)]
struct Outer<'a> {
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow)]
    msg: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "routerName")]
    router: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "entryPointName")]
    entrypoint: Option<Cow<'a, str>>,
}

fn json(line: &[u8]) -> Parsed {
    let start = line.iter().position(|b| *b == b'{').unwrap_or(0);
    let outer: Outer<'_> = match serde_json::from_slice(&line[start..]) {
        Ok(o) => o,
        Err(e) => return Parsed::Malformed(format!("log line is not valid JSON: {e}")),
    };
    let Some(message) = outer.message.as_deref().or(outer.msg.as_deref()) else {
        return Parsed::Other;
    };
    let m = message.as_bytes();
    let Some(pos) = RAW.find(m) else {
        return Parsed::Other;
    };
    let Some(end) = json_object_end(&m[pos..]) else {
        return Parsed::Malformed("record JSON is cut off".to_owned());
    };
    let host = HostFields {
        router_name: outer.router.as_deref().unwrap_or_default().to_owned(),
        entrypoint_name: outer.entrypoint.as_deref().unwrap_or_default().to_owned(),
    };
    decode(&m[pos..pos + end], host)
}

/// The length of the JSON object `text` starts with (up to and including
/// its closing brace), or None if it does not close.
pub fn json_object_end(text: &[u8]) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in text.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Removes ANSI escape sequences (`ESC [ ... final`), as Traefik's console
/// format colours field names and the message.
pub fn strip_ansi(text: &[u8]) -> Cow<'_, [u8]> {
    if !text.contains(&0x1b) {
        return Cow::Borrowed(text);
    }
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == 0x1b {
            i += 1;
            if text.get(i) == Some(&b'[') {
                i += 1;
                while i < text.len() && !(0x40..=0x7e).contains(&text[i]) {
                    i += 1;
                }
            }
            i += 1;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    Cow::Owned(out)
}

/// Reads `routerName=...` and `entryPointName=...` from console fields.
fn console_fields(text: &[u8], host: &mut HostFields) {
    let clean = strip_ansi(text);
    for (key, value) in fields(&clean) {
        match key.as_slice() {
            b"routerName" => host.router_name = String::from_utf8_lossy(&value).into_owned(),
            b"entryPointName" => {
                host.entrypoint_name = String::from_utf8_lossy(&value).into_owned()
            }
            _ => {}
        }
    }
}

/// `key=value` pairs separated by blanks; a value may be double-quoted with
/// backslash escapes (`key="a \"b\""`). Words without `=` are skipped.
pub fn fields(text: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        while i < text.len() && text[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while i < text.len() && !text[i].is_ascii_whitespace() && text[i] != b'=' {
            i += 1;
        }
        if text.get(i) != Some(&b'=') {
            // A bare word: skip it (and any quoted text it holds).
            while i < text.len() && !text[i].is_ascii_whitespace() {
                i += 1;
            }
            continue;
        }
        let key = text[start..i].to_vec();
        i += 1;
        let mut value = Vec::new();
        if text.get(i) == Some(&b'"') {
            i += 1;
            while i < text.len() && text[i] != b'"' {
                if text[i] == b'\\' && i + 1 < text.len() {
                    i += 1;
                }
                value.push(text[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < text.len() && !text[i].is_ascii_whitespace() {
                value.push(text[i]);
                i += 1;
            }
        }
        out.push((key, value));
    }
    out
}

/// Receives what [`LineSplitter`] cuts.
pub trait LineSink {
    /// A whole line, with its `\n` when it had one (the last line of a
    /// stream may not).
    fn line(&mut self, line: &[u8]);
    /// The first bytes (at least the cap) of a line longer than the cap;
    /// `complete` when the line's end (`\n`) is included.
    fn long_start(&mut self, head: &[u8], complete: bool);
    /// More of that long line; `complete` on its last piece.
    fn long_more(&mut self, chunk: &[u8], complete: bool);
}

/// Splits a byte stream into lines of at most `max` bytes (without the
/// newline). Longer lines go to the sink in pieces, so memory stays bounded
/// by `max` plus one read.
#[derive(Debug)]
pub struct LineSplitter {
    max: usize,
    buf: Vec<u8>,
    in_long: bool,
}

impl LineSplitter {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            buf: Vec::new(),
            in_long: false,
        }
    }

    /// Bytes of a line begun but not ended yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Forgets the partial line (the stream restarted).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.in_long = false;
    }

    pub fn feed(&mut self, mut data: &[u8], sink: &mut impl LineSink) {
        while !data.is_empty() {
            let nl = memchr::memchr(b'\n', data);
            let (piece, complete) = match nl {
                Some(i) => data.split_at(i + 1),
                None => (data, &[][..]),
            };
            let complete_flag = nl.is_some();
            data = complete;
            if self.in_long {
                sink.long_more(piece, complete_flag);
                self.in_long = !complete_flag;
                continue;
            }
            let content = self.buf.len() + piece.len() - usize::from(complete_flag);
            if self.buf.is_empty() && complete_flag && content <= self.max {
                sink.line(piece);
                continue;
            }
            self.buf.extend_from_slice(piece);
            if content > self.max {
                sink.long_start(&self.buf, complete_flag);
                self.buf.clear();
                self.in_long = !complete_flag;
            } else if complete_flag {
                sink.line(&self.buf);
                self.buf.clear();
            }
        }
    }

    /// The stream ended: a last line without newline is still a line.
    pub fn finish(&mut self, sink: &mut impl LineSink) {
        if !self.buf.is_empty() {
            sink.line(&self.buf);
            self.buf.clear();
        }
        self.in_long = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::tests::record;

    #[derive(Default, Debug, PartialEq)]
    struct Cut {
        lines: Vec<String>,
        long: Vec<(String, bool, bool)>,
    }

    impl LineSink for Cut {
        fn line(&mut self, line: &[u8]) {
            self.lines.push(String::from_utf8_lossy(line).into_owned());
        }
        fn long_start(&mut self, head: &[u8], complete: bool) {
            self.long
                .push((String::from_utf8_lossy(head).into_owned(), true, complete));
        }
        fn long_more(&mut self, chunk: &[u8], complete: bool) {
            self.long
                .push((String::from_utf8_lossy(chunk).into_owned(), false, complete));
        }
    }

    #[test]
    fn splits_across_reads_and_keeps_newlines() {
        let mut s = LineSplitter::new(100);
        let mut c = Cut::default();
        s.feed(b"ab\ncd", &mut c);
        assert_eq!(s.pending(), 2);
        s.feed(b"e\n\nf", &mut c);
        s.finish(&mut c);
        assert_eq!(c.lines, vec!["ab\n", "cde\n", "\n", "f"]);
        assert!(c.long.is_empty());
    }

    #[test]
    fn long_lines_come_in_pieces_and_the_next_line_is_whole() {
        let mut s = LineSplitter::new(4);
        let mut c = Cut::default();
        s.feed(b"abcd\nabc", &mut c); // 4 bytes fit exactly
        s.feed(b"de", &mut c); // now 5 > 4: long
        s.feed(b"fg", &mut c);
        s.feed(b"h\nok\n", &mut c);
        s.feed(b"0123456789\n", &mut c); // long and complete in one read
        assert_eq!(c.lines, vec!["abcd\n", "ok\n"]);
        assert_eq!(
            c.long,
            vec![
                ("abcde".to_owned(), true, false),
                ("fg".to_owned(), false, false),
                ("h\n".to_owned(), false, true),
                ("0123456789\n".to_owned(), true, true),
            ]
        );
        assert_eq!(s.pending(), 0);
    }

    fn envelope(p: Parsed) -> Envelope {
        match p {
            Parsed::Record(e) => *e,
            other => unreachable!("not a record: {other:?}"),
        }
    }

    #[test]
    fn reads_the_guests_real_json_format_line() {
        let rec = fallback::encode(&record(503));
        let message = serde_json::to_string(&rec).expect("string");
        let line = format!(
            r#"{{"level":"info","entryPointName":"web","routerName":"r@file","middlewareName":"dd@file","middlewareType":"wasm","time":"2026-11-25T14:41:10Z","message":{message}}}"#
        );
        assert!(line.contains(r#""message":"{\"marker\":\"traefik-datadog\",\"schema\":1,"#));
        let e = envelope(parse_line(format!("{line}\n").as_bytes()));
        assert_eq!(e.record, record(503));
        assert_eq!(
            e.host,
            HostFields {
                router_name: "r@file".into(),
                entrypoint_name: "web".into()
            }
        );
    }

    #[test]
    fn reads_console_lines_with_colours() {
        let rec = fallback::encode(&record(200));
        let line = format!(
            "\x1b[90m2026-11-25T14:41:10Z\x1b[0m \x1b[32mINF\x1b[0m \x1b[1m{rec}\x1b[0m \
             \x1b[36mentryPointName=\x1b[0mweb \x1b[36mmiddlewareName=\x1b[0mdd@file \
             \x1b[36mmiddlewareType=\x1b[0mwasm \x1b[36mrouterName=\x1b[0mr@file\r\n"
        );
        let e = envelope(parse_line(line.as_bytes()));
        assert_eq!(e.record, record(200));
        assert_eq!(e.host.router_name, "r@file");
        assert_eq!(e.host.entrypoint_name, "web");

        let plain = format!("2026-11-25T14:41:10Z INF {rec} routerName=\"a b\"");
        let e = envelope(parse_line(plain.as_bytes()));
        assert_eq!(e.host.router_name, "a b");
        assert_eq!(e.host.entrypoint_name, "");

        let bare = envelope(parse_line(rec.as_bytes()));
        assert_eq!(bare.record, record(200));
        assert_eq!(bare.host, HostFields::default());
    }

    #[test]
    fn other_lines_are_left_alone() {
        for l in [
            &b"2026-11-25T14:41:10Z INF Loading plugins... plugins=[\"traefik-datadog-plugin\"]"[..],
            b"{\"level\":\"info\",\"message\":\"Starting provider traefik-datadog\"}",
            b"{\"level\":\"info\",\"message\":\"marker traefik-datadog \\\"x\\\"\"}",
            b"",
            b"\xff\xfe not utf-8",
            b"{\"marker\":\"other\",\"schema\":1}",
        ] {
            assert_eq!(
                parse_line(l),
                Parsed::Other,
                "{}",
                String::from_utf8_lossy(l)
            );
        }
    }

    #[test]
    fn broken_plugin_lines_are_malformed() {
        let rec = fallback::encode(&record(200));
        let cut = &rec[..rec.len() / 2];
        assert_eq!(
            parse_line(cut.as_bytes()),
            Parsed::Malformed("record JSON is cut off".into())
        );
        let future = rec.replacen("\"schema\":1", "\"schema\":2", 1);
        assert_eq!(
            parse_line(future.as_bytes()),
            Parsed::Malformed("schema 2 is not supported (expected 1)".into())
        );
        let mut bad = rec.clone().into_bytes();
        let at = rec.find("a.example").expect("host") + 1;
        bad[at] = 0xff;
        assert_eq!(
            parse_line(&bad),
            Parsed::Malformed("record is not UTF-8".into())
        );
        let json_line = format!(
            "{{\"level\":\"info\",\"message\":{}",
            serde_json::to_string(&rec).expect("s")
        );
        assert!(
            matches!(parse_line(json_line.as_bytes()), Parsed::Malformed(m) if m.starts_with("log line is not valid JSON"))
        );
        assert!(is_ours(cut.as_bytes()));
        assert!(is_ours(json_line.as_bytes()));
        assert!(!is_ours(b"traefik-datadog-plugin loaded"));
    }

    #[test]
    fn json_object_end_respects_strings() {
        assert_eq!(json_object_end(br#"{"a":"}\"{"} tail"#), Some(12));
        assert_eq!(json_object_end(br#"{"a":{"b":[1,{}]}}x"#), Some(18));
        assert_eq!(json_object_end(br#"{"a":"#), None);
        assert_eq!(json_object_end(b"}"), None);
    }

    #[test]
    fn console_field_syntax() {
        let f = fields(br#"INF msg routerName="a \"b\" c" entryPointName=web x= "quoted word" y"#);
        let f: Vec<(String, String)> = f
            .into_iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(&k).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect();
        assert_eq!(
            f,
            vec![
                ("routerName".to_owned(), "a \"b\" c".to_owned()),
                ("entryPointName".to_owned(), "web".to_owned()),
                ("x".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn strips_ansi() {
        assert_eq!(
            strip_ansi(b"\x1b[36mrouterName=\x1b[0mr@file").as_ref(),
            b"routerName=r@file"
        );
        assert_eq!(strip_ansi(b"plain").as_ref(), b"plain");
        assert_eq!(strip_ansi(b"cut\x1b[3").as_ref(), b"cut");
    }
}
