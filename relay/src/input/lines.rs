//! Log lines: splitting a byte stream into lines of bounded length, and the
//! pieces of Traefik's console syntax the record reader uses. Which lines
//! are records is [`super::traefik_line`]'s call.

pub use super::traefik_line::{Parsed, is_ours, parse_line};
use std::borrow::Cow;

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

/// `key=value` pairs separated by blanks; a value may be double-quoted with
/// backslash escapes (`key="a \"b\""`). None if a word is not a pair.
pub fn fields(text: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
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
        if i == start && i == text.len() {
            break;
        }
        if i == start || text.get(i) != Some(&b'=') {
            return None;
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
            // The closing quote, then a blank or the end.
            if i >= text.len() || text.get(i + 1).is_some_and(|b| !b.is_ascii_whitespace()) {
                return None;
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
    Some(out)
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

    #[test]
    fn json_object_end_respects_strings() {
        assert_eq!(json_object_end(br#"{"a":"}\"{"} tail"#), Some(12));
        assert_eq!(json_object_end(br#"{"a":{"b":[1,{}]}}x"#), Some(18));
        assert_eq!(json_object_end(br#"{"a":"#), None);
        assert_eq!(json_object_end(b"}"), None);
    }

    #[test]
    fn console_field_syntax() {
        let f = fields(br#" routerName="a \"b\" c" entryPointName=web x= "#).expect("pairs");
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
        assert_eq!(fields(b""), Some(vec![]));
        for bad in [
            &b"INF k=v"[..],
            b"k=v bare",
            b"=v",
            b"k=\"open",
            b"k=\"a\"b",
            b"k=v \"quoted word\"",
        ] {
            assert_eq!(fields(bad), None, "{}", String::from_utf8_lossy(bad));
        }
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
