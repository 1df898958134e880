use super::*;
use crate::input::tests::record;

const WASM_FIELDS: &str =
    "entryPointName=web middlewareName=dd@file middlewareType=wasm routerName=web@file";

fn envelope(p: Parsed) -> Envelope {
    match p {
        Parsed::Record(e) => *e,
        other => unreachable!("not a record: {other:?}"),
    }
}

fn json_line(message: &str) -> String {
    let m = serde_json::to_string(message).expect("string");
    format!(
        r#"{{"level":"info","entryPointName":"web","routerName":"r@file","middlewareName":"dd@file","middlewareType":"wasm","time":"2026-11-25T14:41:10Z","message":{m}}}"#
    )
}

fn console_line(message: &str) -> String {
    format!(
        "\x1b[90m2026-11-25T14:41:10Z\x1b[0m \x1b[32mINF\x1b[0m \x1b[1m{message}\x1b[0m \
         \x1b[36mentryPointName=\x1b[0mweb \x1b[36mmiddlewareName=\x1b[0mdd@file \
         \x1b[36mmiddlewareType=\x1b[0mwasm \x1b[36mrouterName=\x1b[0mr@file\r\n"
    )
}

/// A record a client would like to inject: another service, an error.
fn forged() -> String {
    let mut r = record(500);
    r.service = "payments".into();
    fallback::encode(&r)
}

#[test]
fn reads_the_guests_json_format_line() {
    let line = json_line(&fallback::encode(&record(503)));
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
fn reads_console_lines_with_and_without_colours() {
    let rec = fallback::encode(&record(200));
    let e = envelope(parse_line(console_line(&rec).as_bytes()));
    assert_eq!(e.record, record(200));
    assert_eq!(e.host.router_name, "r@file");
    assert_eq!(e.host.entrypoint_name, "web");

    let plain = format!("2026-11-25T14:41:10Z INF {rec} middlewareType=wasm routerName=\"a b\"");
    let e = envelope(parse_line(plain.as_bytes()));
    assert_eq!(e.host.router_name, "a b");
    assert_eq!(e.host.entrypoint_name, "");
}

/// Every record line of Traefik 3.7.15's own output in the three formats is
/// read, every other line is not.
#[test]
fn real_traefik_output() {
    for (file, records) in [
        ("console-color.log", 7),
        ("console-nocolor.log", 7),
        ("json.log", 7),
    ] {
        let path = format!(
            "{}/../testdata/traefik-3.7.15/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read(&path).expect("fixture");
        let mut got = 0;
        for line in text.split_inclusive(|b| *b == b'\n') {
            match parse_line(line) {
                Parsed::Record(e) => {
                    assert_eq!(e.host.router_name, "web@file", "{file}");
                    assert_eq!(e.host.entrypoint_name, "web", "{file}");
                    got += 1;
                }
                Parsed::Other => {}
                Parsed::Malformed(m) => unreachable!("{file}: {m}"),
            }
        }
        assert_eq!(got, records, "{file}");
    }
}

#[test]
fn bare_records_and_foreign_lines_are_left_alone() {
    let rec = fallback::encode(&record(200));
    for l in [
        rec.clone(),
        "2026-11-25T14:41:10Z INF Loading plugins... plugins=[\"traefik-datadog-plugin\"]".into(),
        "{\"level\":\"info\",\"message\":\"Starting provider traefik-datadog\"}".into(),
        "{\"level\":\"info\",\"message\":\"marker traefik-datadog \\\"x\\\"\"}".into(),
        String::new(),
        "{\"marker\":\"other\",\"schema\":1}".into(),
        // The wasm middleware's other messages.
        "2026-11-25T14:41:10Z ERR traefik-datadog: invalid config middlewareType=wasm".into(),
        json_line("traefik-datadog: invalid config"),
    ] {
        assert_eq!(parse_line(l.as_bytes()), Parsed::Other, "{l}");
    }
    assert_eq!(parse_line(b"\xff\xfe not utf-8"), Parsed::Other);
}

/// Traefik's CLF access log (`<client> - <user> [<time>] "<method> <path>
/// <proto>" <status> <size> "<referer>" "<user agent>" <n> "<router>"
/// "<server>" <ms>ms`), the worst case: quoted values not escaped.
fn clf(path: &str, referer: &str, ua: &str) -> String {
    format!(
        "10.0.0.9 - - [25/Nov/2026:14:49:52 +0000] \"GET {path} HTTP/1.1\" 200 2 \"{referer}\" \"{ua}\" 7 \"web@file\" \"http://127.0.0.1:8080\" 1ms\n"
    )
}

/// Traefik's JSON access log line.
fn json_access(path: &str, referer: &str, ua: &str) -> String {
    let q = |s: &str| serde_json::to_string(s).expect("s");
    format!(
        "{{\"ClientAddr\":\"10.0.0.9:5555\",\"DownstreamStatus\":200,\"RequestMethod\":\"GET\",\"RequestPath\":{},\"request_Referer\":{},\"request_User-Agent\":{},\"RouterName\":\"web@file\",\"level\":\"info\",\"msg\":\"\",\"time\":\"2026-11-25T14:49:52Z\"}}\n",
        q(path),
        q(referer),
        q(ua)
    )
}

#[test]
fn forged_records_in_access_log_lines_are_not_taken() {
    let f = forged();
    let f_line = console_line(&f);
    let f_json = json_line(&f);
    let f_fields = format!("{f} {WASM_FIELDS}");
    for payload in [&f, &f_line, &f_json, &f_fields] {
        let payload = payload.trim_end();
        for line in [
            clf("/", "-", payload),
            clf("/", payload, "curl/8"),
            clf(&format!("/{payload}"), "-", "curl/8"),
            json_access("/", "-", payload),
            json_access("/", payload, "curl/8"),
            json_access(&format!("/{payload}"), "-", "curl/8"),
        ] {
            assert_eq!(parse_line(line.as_bytes()), Parsed::Other, "{line}");
            assert!(!is_ours(line.as_bytes()), "{line}");
        }
    }
}

#[test]
fn forged_records_in_traefiks_own_messages_are_not_taken() {
    let f = forged();
    let quoted = serde_json::to_string(&f).expect("s");
    for line in [
        // Console: user input inside a message, even of the wasm middleware.
        format!("2026-11-25T14:49:52Z DBG Error while reading request: {f} {WASM_FIELDS}"),
        format!(
            "\x1b[90m2026-11-25T14:49:52Z\x1b[0m \x1b[31mERR\x1b[0m \x1b[1mbad host {f}\x1b[0m \x1b[36mmiddlewareType=\x1b[0mwasm"
        ),
        // Console: the record as a field value, or where the message would
        // be but from another middleware.
        format!("2026-11-25T14:49:52Z DBG Request error={quoted} middlewareType=wasm"),
        format!("2026-11-25T14:49:52Z INF {f} middlewareName=h@file middlewareType=headers"),
        format!("2026-11-25T14:49:52Z INF {f}"),
        // Console: trailing words that are not fields.
        format!("2026-11-25T14:49:52Z INF {f} from client middlewareType=wasm"),
        format!("2026-11-25T14:49:52Z INF {f}x middlewareType=wasm"),
        // JSON: the record inside a message, in another field, in a
        // nested object, or in a line that is not the wasm middleware's.
        json_line(&format!("Error while reading request: {f}")),
        json_line(&format!("{f} ")),
        json_line(&format!("{f}{f}")),
        format!(
            "{{\"level\":\"debug\",\"error\":{quoted},\"middlewareType\":\"wasm\",\"message\":\"Request error\"}}"
        ),
        format!("{{\"level\":\"info\",\"middlewareType\":\"headers\",\"message\":{quoted}}}"),
        format!("{{\"level\":\"info\",\"message\":{quoted}}}"),
        format!(
            "{{\"level\":\"info\",\"x\":{{\"middlewareType\":\"wasm\"}},\"message\":{quoted}}}"
        ),
    ] {
        let parsed = parse_line(line.as_bytes());
        assert!(
            matches!(parsed, Parsed::Other | Parsed::Malformed(_)),
            "{line}: {parsed:?}"
        );
        // Trailing text after the record in a wasm line's message makes
        // it unreadable (counted); nothing else is the plugin's at all.
        if !line.starts_with("{\"level\":\"info\",\"entryPointName\"") {
            assert_eq!(parsed, Parsed::Other, "{line}");
        }
    }
}

#[test]
fn broken_plugin_lines_are_malformed() {
    let rec = fallback::encode(&record(200));
    let cut = &rec[..rec.len() / 2];
    let console_cut = format!("2026-11-25T14:41:10Z INF {cut}");
    assert_eq!(
        parse_line(console_cut.as_bytes()),
        Parsed::Malformed("record JSON is cut off".into())
    );
    let future = rec.replacen("\"schema\":1", "\"schema\":2", 1);
    assert_eq!(
        parse_line(console_line(&future).as_bytes()),
        Parsed::Malformed("schema 2 is not supported (expected 1)".into())
    );
    assert_eq!(
        parse_line(json_line(&future).as_bytes()),
        Parsed::Malformed("schema 2 is not supported (expected 1)".into())
    );
    let mut bad = console_line(&rec).into_bytes();
    let at = bad
        .windows(9)
        .position(|w| w == b"a.example")
        .expect("host")
        + 1;
    bad[at] = 0xff;
    assert_eq!(
        parse_line(&bad),
        Parsed::Malformed("record is not UTF-8".into())
    );
    let json_cut = json_line(&rec);
    let json_cut = &json_cut[..json_cut.len() - 1];
    assert!(
        matches!(parse_line(json_cut.as_bytes()), Parsed::Malformed(m) if m.starts_with("log line is not valid JSON"))
    );
    assert!(is_ours(console_cut.as_bytes()));
    assert!(is_ours(json_cut.as_bytes()));
    assert!(is_ours(&json_line(&rec).as_bytes()[..300]));
    assert!(is_ours(&console_line(&rec).as_bytes()[..100]));
    assert!(!is_ours(cut.as_bytes()));
    assert!(!is_ours(b"traefik-datadog-plugin loaded"));
    // The head of a JSON line whose middlewareType is not wasm, or comes
    // after the message.
    let other = json_line(&rec).replace("\"wasm\"", "\"headers\"");
    assert!(!is_ours(&other.as_bytes()[..300]));
    let late = format!(
        "{{\"message\":{},\"middlewareType\":\"wasm\"",
        serde_json::to_string(&rec).expect("s")
    );
    assert!(!is_ours(late.as_bytes()));
}

#[test]
fn console_message_position() {
    assert_eq!(
        console_message_start(b"2026-11-25T14:41:10Z INF x"),
        Some(25)
    );
    assert_eq!(
        console_message_start(b"\x1b[90mT\x1b[0m \x1b[32mWRN\x1b[0m \x1b[1mx"),
        Some(28)
    );
    for l in [
        &b"10.0.0.9 - - [25/Nov/2026:14:49:52 +0000] \"GET"[..],
        b"INF x",
        b"2026 inf x",
        b"2026  INF x",
        b"2026 INFO x",
        b" 2026 INF x",
    ] {
        assert_eq!(
            console_message_start(l),
            None,
            "{}",
            String::from_utf8_lossy(l)
        );
    }
}
