//! Which lines of Traefik's log output are the plugin's records, by the
//! position of the text in the line, never by searching for the marker.
//!
//! The plugin writes a record through the host `log` call, so Traefik prints
//! it as the whole message of a line from the wasm middleware:
//! - JSON format: a JSON object whose `middlewareType` is `wasm` and whose
//!   `message` string IS the record (`{"marker":"traefik-datadog",...}` and
//!   nothing else);
//! - console format (zerolog's console writer, with or without colours):
//!   `TIME LVL MESSAGE key=value...`, the message starting right after the
//!   level and holding exactly the record, the fields after it carrying
//!   `middlewareType=wasm`.
//!
//! Text anywhere else (a User-Agent, Referer or path in an access-log line,
//! user input quoted in one of Traefik's own messages, a bare record JSON on
//! a line of its own) is someone else's line and passes through untouched.

use super::Envelope;
use super::lines::{fields, json_object_end, strip_ansi};
use memchr::memmem::Finder;
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::LazyLock;
use tdp_core::record::span::HostFields;
use tdp_core::wire::fallback;

/// Start of a record: the message of a console line begins with it.
const MARKER_RAW: &[u8] = b"{\"marker\":\"traefik-datadog\",";
/// Start of a record as the first bytes of a JSON `message` string.
const MARKER_ESCAPED: &[u8] = br#""{\"marker\":\"traefik-datadog\","#;
/// zerolog's console level names.
const LEVELS: [&[u8]; 7] = [b"TRC", b"DBG", b"INF", b"WRN", b"ERR", b"FTL", b"PNC"];

/// A JSON line can only be ours if it holds the escaped record start
/// somewhere; most lines do not, and are passed on without a JSON parse.
static ESCAPED: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(MARKER_ESCAPED));

/// What a line is.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    /// Not the plugin's: pass it on.
    Other,
    Record(Box<Envelope>),
    /// Shaped like the plugin's line (the record's start where the plugin's
    /// message goes) but the record cannot be read.
    Malformed(String),
}

/// Reads one whole line (its `\n`/`\r\n` may be there).
pub fn parse_line(line: &[u8]) -> Parsed {
    let line = trim_eol(line);
    if line.first() == Some(&b'{') {
        json(line)
    } else {
        console(line)
    }
}

/// Whether the first bytes of a line (too long to read whole) are the
/// start of one of the plugin's lines.
pub fn is_ours(head: &[u8]) -> bool {
    if head.first() == Some(&b'{') {
        json_head_is_ours(head)
    } else {
        console_message_start(head).is_some_and(|at| head[at..].starts_with(MARKER_RAW))
    }
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

// ---- console format ------------------------------------------------------

/// Skips one ANSI colour code (`ESC [ digits/; m`) at `i`, if there is one.
fn skip_sgr(line: &[u8], i: usize) -> usize {
    if line.get(i..i + 2) != Some(b"\x1b[") {
        return i;
    }
    let mut j = i + 2;
    while j < line.len() && (line[j].is_ascii_digit() || line[j] == b';') {
        j += 1;
    }
    if line.get(j) == Some(&b'm') { j + 1 } else { i }
}

/// Characters of a timestamp (RFC 3339 as Traefik sets it, or zerolog's
/// other formats: digits, letters, `:-+./`).
fn is_time_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b':' | b'-' | b'+' | b'.' | b'/')
}

/// Where the message of a console line starts: after `TIME LVL `, each part
/// possibly coloured. None when the line does not start that way (access-log
/// lines start with the client address and `-`; continuation lines of a
/// multi-line message with any text).
fn console_message_start(line: &[u8]) -> Option<usize> {
    let mut i = skip_sgr(line, 0);
    let time = i;
    while i < line.len() && is_time_byte(line[i]) {
        i += 1;
    }
    if i == time {
        return None;
    }
    i = skip_sgr(line, i);
    if line.get(i) != Some(&b' ') {
        return None;
    }
    i = skip_sgr(line, i + 1);
    let level = line.get(i..i + 3)?;
    if !LEVELS.contains(&level) {
        return None;
    }
    i = skip_sgr(line, i + 3);
    if line.get(i) != Some(&b' ') {
        return None;
    }
    Some(skip_sgr(line, i + 1))
}

fn console(line: &[u8]) -> Parsed {
    let Some(at) = console_message_start(line) else {
        return Parsed::Other;
    };
    let message = &line[at..];
    if !message.starts_with(MARKER_RAW) {
        return Parsed::Other;
    }
    let Some(end) = json_object_end(message) else {
        return Parsed::Malformed("record JSON is cut off".to_owned());
    };
    // What follows the record: the colour reset, then only `key=value`
    // fields, among them the wasm middleware's.
    let rest = &message[skip_sgr(message, end)..];
    if !rest.is_empty() && rest[0] != b' ' {
        return Parsed::Other;
    }
    let clean = strip_ansi(rest);
    let Some(pairs) = fields(&clean) else {
        return Parsed::Other;
    };
    let mut wasm = false;
    let mut host = HostFields::default();
    for (key, value) in pairs {
        match key.as_slice() {
            b"middlewareType" => wasm = value == b"wasm",
            b"routerName" => host.router_name = String::from_utf8_lossy(&value).into_owned(),
            b"entryPointName" => {
                host.entrypoint_name = String::from_utf8_lossy(&value).into_owned()
            }
            _ => {}
        }
    }
    if !wasm {
        return Parsed::Other;
    }
    decode(&message[..end], host)
}

// ---- JSON format ---------------------------------------------------------

#[derive(Deserialize)]
struct Outer<'a> {
    #[serde(borrow, rename = "middlewareType")]
    middleware_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "routerName")]
    router: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "entryPointName")]
    entrypoint: Option<Cow<'a, str>>,
}

fn json(line: &[u8]) -> Parsed {
    if ESCAPED.find(line).is_none() {
        return Parsed::Other;
    }
    let outer: Outer<'_> = match serde_json::from_slice(line) {
        Ok(o) => o,
        Err(e) if json_head_is_ours(line) => {
            return Parsed::Malformed(format!("log line is not valid JSON: {e}"));
        }
        Err(_) => return Parsed::Other,
    };
    if outer.middleware_type.as_deref() != Some("wasm") {
        return Parsed::Other;
    }
    let Some(message) = outer.message.as_deref() else {
        return Parsed::Other;
    };
    if !message.as_bytes().starts_with(MARKER_RAW) {
        return Parsed::Other;
    }
    let host = HostFields {
        router_name: outer.router.as_deref().unwrap_or_default().to_owned(),
        entrypoint_name: outer.entrypoint.as_deref().unwrap_or_default().to_owned(),
    };
    // The whole message is the record: text after it makes it unreadable.
    if json_object_end(message.as_bytes()).is_some_and(|end| end != message.len()) {
        return Parsed::Malformed("text after the record in the message".to_owned());
    }
    decode(message.as_bytes(), host)
}

/// The length of the JSON string `text` starts with (quotes included).
fn json_string_end(text: &[u8]) -> Option<usize> {
    if text.first() != Some(&b'"') {
        return None;
    }
    let mut escaped = false;
    for (i, &b) in text.iter().enumerate().skip(1) {
        if escaped {
            escaped = false;
        } else if b == b'\\' {
            escaped = true;
        } else if b == b'"' {
            return Some(i + 1);
        }
    }
    None
}

/// Whether a JSON line's first bytes, read member by member at the top
/// level as Traefik writes them (`message` last), hold `"middlewareType":
/// "wasm"` and then a `message` starting with the record. For lines too long
/// or too broken to parse whole.
fn json_head_is_ours(head: &[u8]) -> bool {
    let ws = |i: &mut usize| {
        while *i < head.len() && head[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let mut i = 1;
    let mut wasm = false;
    loop {
        ws(&mut i);
        let Some(len) = json_string_end(&head[i..]) else {
            return false;
        };
        let key = &head[i + 1..i + len - 1];
        i += len;
        ws(&mut i);
        if head.get(i) != Some(&b':') {
            return false;
        }
        i += 1;
        ws(&mut i);
        let value = &head[i..];
        if key == b"message" {
            return wasm && value.starts_with(MARKER_ESCAPED);
        }
        let len = match value.first() {
            Some(b'"') => json_string_end(value),
            Some(b'{' | b'[') => json_object_end(value),
            Some(_) => value.iter().position(|b| matches!(b, b',' | b'}')),
            None => None,
        };
        let Some(len) = len else {
            return false;
        };
        if key == b"middlewareType" {
            wasm = &value[..len] == b"\"wasm\"";
        }
        i += len;
        ws(&mut i);
        if head.get(i) != Some(&b',') {
            return false;
        }
        i += 1;
    }
}

#[cfg(test)]
#[path = "traefik_line_tests.rs"]
mod tests;
