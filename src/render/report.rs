//! Rendering for the command line: events as JSON lines or text, incidents as text or JSON,
//! knowledge-base entries as text. Pure: values in, text out.

use crate::engine::detect::Incident;
use crate::engine::event::{Cause, Timestamp};
use crate::engine::kb::{Entry, Kb, Lang, Placeholders};
use crate::engine::pipeline::Settled;
use std::fmt::Write as _;
use std::io::Write as _;

/// Appends `s` to `out` as a JSON string (with quotes); invalid UTF-8 becomes U+FFFD.
pub fn json_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.extend_from_slice(b"\\\""),
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                '\t' => out.extend_from_slice(b"\\t"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                c => {
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
    out.push(b'"');
}

/// Writes one event as the JSON object of DESIGN §4 (`scan --events --json`), with a newline.
pub fn event_json(out: &mut Vec<u8>, file: &str, s: &Settled<'_>, kb: &Kb) {
    out.extend_from_slice(b"{\"file\":");
    json_string(out, file.as_bytes());
    let _ = write!(out, ",\"line\":{},\"format\":", s.line_no);
    let format = s.ev.format.map_or("unknown", |f| f.as_str());
    json_string(out, format.as_bytes());
    out.extend_from_slice(b",\"time\":");
    match s.ev.time {
        Some(t) => json_string(out, t.to_rfc3339().as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"status\":");
    match s.ev.status {
        Some(st) => {
            let _ = write!(out, "{st}");
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"cause\":");
    json_string(out, s.ev.cause.as_str().as_bytes());
    out.extend_from_slice(b",\"upstream\":");
    match s.upstream {
        Some(u) => json_string(out, u),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"entry\":");
    match s.entry {
        Some(id) => json_string(out, kb.id(id).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b"}\n");
}

/// Writes one event as a line of text: `file:line format time status cause upstream entry`.
pub fn event_text(out: &mut Vec<u8>, file: &str, s: &Settled<'_>, kb: &Kb) {
    let time =
        s.ev.time
            .map_or_else(|| "-".to_string(), Timestamp::to_rfc3339);
    let status =
        s.ev.status
            .map_or_else(|| "-".to_string(), |v| v.to_string());
    let upstream = s
        .upstream
        .map_or_else(|| "-".into(), String::from_utf8_lossy);
    let entry = s.entry.map_or("-", |id| kb.id(id));
    let _ = writeln!(
        out,
        "{file}:{} {} {time} {status} {} {upstream} {entry}",
        s.line_no,
        s.ev.format.map_or("unknown", |f| f.as_str()),
        s.ev.cause
    );
}

fn rfc3339(ms: i64, offset_secs: i32) -> String {
    Timestamp::new(ms, offset_secs).to_rfc3339()
}

/// `4m 7s`, `1h 2m`, `12s`.
pub fn human_duration(ms: i64) -> String {
    let s = (ms.max(0) + 500) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// A duration in Chinese: `4分7秒`.
pub fn human_duration_zh(ms: i64) -> String {
    let s = (ms.max(0) + 500) / 1000;
    match s {
        0..60 => format!("{s}秒"),
        60..3600 => format!("{}分{}秒", s / 60, s % 60),
        _ => format!("{}小时{}分", s / 3600, (s % 3600) / 60),
    }
}

/// What a cause means for the upstream, in a few words.
fn cause_phrase(c: Cause) -> &'static str {
    match c {
        Cause::UpstreamUnreachable => "unreachable",
        Cause::NoLiveUpstreams => "has no live server",
        Cause::UpstreamTimeout => "timing out",
        Cause::UpstreamReset => "closing connections",
        Cause::UpstreamProtocolError => "sending invalid responses",
        Cause::DnsFailure => "not resolving",
        Cause::TlsFailure => "failing TLS",
        Cause::Other5xx => "failing",
        Cause::Ok | Cause::NotApplicable => "affected",
    }
}

/// The one-line headline: `502 burst: upstream 10.0.1.5:8080 unreachable — 143 of 372
/// requests in 1m 0s`: the failures and requests of the burst so far, from its first failure
/// to its last.
pub fn headline(inc: &Incident, kb: &Kb) -> String {
    headline_in(inc, kb, Lang::En)
}

/// What a cause means for the upstream, in a few words of Chinese.
fn cause_phrase_zh(c: Cause) -> &'static str {
    match c {
        Cause::UpstreamUnreachable => "不可达",
        Cause::NoLiveUpstreams => "没有可用的服务器",
        Cause::UpstreamTimeout => "超时",
        Cause::UpstreamReset => "连接被关闭",
        Cause::UpstreamProtocolError => "返回无效响应",
        Cause::DnsFailure => "域名无法解析",
        Cause::TlsFailure => "TLS 失败",
        Cause::Other5xx => "出错",
        Cause::Ok | Cause::NotApplicable => "受影响",
    }
}

/// The headline in a language.
pub fn headline_in(inc: &Incident, kb: &Kb, lang: Lang) -> String {
    let status = inc
        .statuses
        .first()
        .map(|(s, _)| *s)
        .or_else(|| kb.get(inc.entry).statuses.first().copied())
        .map_or_else(|| "5xx".to_string(), |s| format!("{s:03}"));
    // The burst so far: from its first failure to its last (at least a second).
    let span = human_duration((inc.end_ms - inc.start_ms).max(1000));
    // gatewatch's own alarm (format drift) counts lines, not requests.
    if kb.get(inc.entry).category == crate::engine::kb::SELF_ALARMS {
        let lines = inc.requests.unwrap_or(inc.failures);
        return match lang {
            Lang::Zh => format!(
                "格式漂移:{} 最近 {lines} 行中有 {} 行无法解析",
                inc.upstream, inc.failures
            ),
            Lang::En => format!(
                "Format drift: {} of the last {lines} lines of {} did not parse",
                inc.failures, inc.upstream
            ),
        };
    }
    // The safety net's incidents say that nothing is known of them.
    let unknown = kb.id(inc.entry) == crate::engine::pipeline::UNKNOWN_ENTRY;
    if lang == Lang::Zh {
        let span = human_duration_zh((inc.end_ms - inc.start_ms).max(1000));
        let counts = match inc.requests {
            Some(r) if r >= inc.failures => {
                format!("{span} 内 {r} 个请求中 {} 个失败", inc.failures)
            }
            _ => format!("{span} 内 {} 次失败", inc.failures),
        };
        if unknown {
            return format!("{status} 突发:{} 原因未知 — {counts}", inc.upstream);
        }
        return format!(
            "{status} 突发:上游 {} {} — {counts}",
            inc.upstream,
            cause_phrase_zh(inc.cause)
        );
    }
    let counts = match inc.requests {
        Some(r) if r >= inc.failures => format!("{} of {r} requests in {span}", inc.failures),
        _ => format!("{} failures in {span}", inc.failures),
    };
    if unknown {
        return format!(
            "{status} burst on {} with no known cause — {counts}",
            inc.upstream
        );
    }
    format!(
        "{status} burst: upstream {} {} — {counts}",
        inc.upstream,
        cause_phrase(inc.cause)
    )
}

/// An incident as text, for `scan`.
pub fn incident_text(
    inc: &Incident,
    kb: &Kb,
    window_ms: i64,
    sources: &[String],
    lang: Lang,
) -> String {
    let entry = kb.get(inc.entry);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "incident {}: {} — {}",
        inc.seq,
        headline(inc, kb),
        entry.id
    );
    let end = inc.end_ms;
    let _ = writeln!(
        s,
        "  from {} to {} ({}), opened at {}",
        rfc3339(inc.start_ms, inc.offset_secs),
        rfc3339(end, inc.offset_secs),
        human_duration(end - inc.start_ms),
        rfc3339(inc.opened_ms, inc.offset_secs),
    );
    let share = match inc.requests {
        Some(r) if r > 0 => format!(
            " of {r} requests ({:.0} %)",
            inc.failures as f64 * 100.0 / r as f64
        ),
        _ => String::new(),
    };
    let _ = writeln!(
        s,
        "  {} failures{share}, peak {} per {} s",
        inc.failures,
        inc.peak_window_failures,
        window_ms / 1000
    );
    let list = |v: &[(String, u64)]| {
        v.iter()
            .map(|(k, n)| format!("{k} ({n})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !inc.vhosts.values.is_empty() {
        let _ = writeln!(s, "  virtual hosts: {}", list(&inc.vhosts.ranked()));
    }
    if !inc.paths.values.is_empty() {
        let _ = writeln!(s, "  paths: {}", list(&inc.paths.ranked()));
    }
    let files: Vec<&str> = inc
        .sources
        .iter()
        .filter_map(|&i| sources.get(i as usize).map(String::as_str))
        .collect();
    let _ = writeln!(s, "  sources: {}", files.join(", "));
    for line in &inc.samples {
        let _ = writeln!(s, "  sample: {}", printable(line));
    }
    let _ = writeln!(s, "  {}", entry.title.get(lang));
    let ph = Placeholders::for_upstream(&inc.upstream);
    if let Some(w) = entry.workarounds.first() {
        let _ = writeln!(
            s,
            "  first step ({:.0} %): {}",
            w.success_rate * 100.0,
            w.render(lang, Some(&ph))
        );
    }
    if let Some(d) = entry.dead_ends.first() {
        let _ = writeln!(
            s,
            "  not worth trying ({:.0} % fail): {} — {}",
            d.fail_rate * 100.0,
            d.name.get(lang),
            d.why.get(lang)
        );
    }
    s
}

/// Control characters of log lines shown as `\xNN`, so a hostile line cannot drive the
/// terminal.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

/// An incident as a JSON value, for `scan --json`.
pub fn incident_json(
    inc: &Incident,
    kb: &Kb,
    window_ms: i64,
    sources: &[String],
) -> serde_json::Value {
    let entry = kb.get(inc.entry);
    let pairs = |v: Vec<(String, u64)>| {
        v.into_iter()
            .map(|(k, n)| serde_json::json!({"value": k, "count": n}))
            .collect::<Vec<_>>()
    };
    serde_json::json!({
        "incident": inc.seq,
        "entry": entry.id,
        "title": entry.title.en,
        "cause": inc.cause.as_str(),
        "upstream": inc.upstream,
        "headline": headline(inc, kb),
        "start": rfc3339(inc.start_ms, inc.offset_secs),
        "end": rfc3339(inc.end_ms, inc.offset_secs),
        "opened": rfc3339(inc.opened_ms, inc.offset_secs),
        "count": inc.failures,
        "requests": inc.requests,
        "window_seconds": window_ms / 1000,
        "window_failures": inc.window_failures,
        "window_requests": inc.window_requests,
        "peak_window_failures": inc.peak_window_failures,
        "statuses": inc.statuses.iter().map(|(s, n)| serde_json::json!({"status": s, "count": n})).collect::<Vec<_>>(),
        "vhosts": pairs(inc.vhosts.ranked()),
        "paths": pairs(inc.paths.ranked()),
        "files": inc.sources.iter().filter_map(|&i| sources.get(i as usize)).collect::<Vec<_>>(),
        "samples": inc.samples,
    })
}

/// The full text of an entry, for `patterns show`. With an upstream, example commands are
/// filled in for it.
pub fn entry_text(e: &Entry, lang: Lang, upstream: Option<&str>) -> String {
    let zh = lang == Lang::Zh;
    let label = |en: &'static str, cn: &'static str| if zh { cn } else { en };
    let mut s = String::new();
    let _ = writeln!(s, "{}", e.title.get(lang));
    let _ = writeln!(s, "{}", e.id);
    let _ = writeln!(
        s,
        "{} {}  {}: {:.0} %  {}: {:.0} %  {}: {}  {}: {}",
        e.category,
        e.kind,
        label("fix rate", "修复率"),
        e.fix_rate * 100.0,
        label("confidence", "置信度"),
        e.confidence * 100.0,
        label("evidence", "证据"),
        e.evidence_count,
        label("first seen", "首次发现"),
        e.first_seen
    );
    if e.ai_generated {
        let _ = writeln!(s, "{}", label("(AI-generated entry)", "(AI 生成的条目)"));
    }
    let _ = writeln!(
        s,
        "{}: {}",
        label("matches", "匹配"),
        e.causes
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !e.versions.is_empty() {
        let _ = writeln!(s, "\n{}", label("Version compatibility", "版本兼容性"));
        for v in &e.versions {
            let mut row = format!("  {} {}: {}", v.product, v.versions, v.status);
            for (k, val) in [
                (label("introduced", "引入"), &v.introduced),
                (label("deprecated", "弃用"), &v.deprecated),
                (label("notes", "备注"), &v.notes),
            ] {
                if let Some(val) = val.as_ref().filter(|v| !v.is_empty()) {
                    let _ = write!(row, "; {k}: {val}");
                }
            }
            let _ = writeln!(s, "{row}");
        }
    }
    let _ = writeln!(s, "\n{}", label("Root cause", "根本原因"));
    let _ = writeln!(s, "  {}", e.root_cause.get(lang));
    let _ = writeln!(s, "\n{}", label("Workarounds", "解决方法"));
    let ph = upstream.map(Placeholders::for_upstream);
    for (i, w) in e.workarounds.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {}. [{:.0} % {}] {}",
            i + 1,
            w.success_rate * 100.0,
            label("success", "成功"),
            w.render(lang, ph.as_ref())
        );
    }
    let _ = writeln!(
        s,
        "\n{}",
        label(
            "Dead ends (common fixes that do not work)",
            "无效做法(常见但无效的修复)"
        )
    );
    for (i, d) in e.dead_ends.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {}. [{:.0} % {}] {}: {}",
            i + 1,
            d.fail_rate * 100.0,
            label("fail", "失败"),
            d.name.get(lang),
            d.why.get(lang)
        );
    }
    let _ = writeln!(s, "\n{}", label("Documentation", "官方文档"));
    for d in &e.docs {
        let _ = writeln!(s, "  {d}");
    }
    s
}
