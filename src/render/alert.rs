//! What an alert says, and how it is written for each channel. Pure: an incident and its entry
//! in, text out.
//!
//! An [`AlertView`] holds everything a message carries (DESIGN §5), in one language, with the
//! example commands filled in for the failing upstream. It is also the **generic JSON webhook's
//! payload** (schema version [`SCHEMA_VERSION`]). The other forms are templates
//! (`templates/*.j2`, built in; a channel's `template_dir` overrides any of them by name):
//! HTML templates escape HTML, `.json.j2` templates escape JSON, and the `slack` filter escapes
//! Slack's mrkdwn; Alertmanager and PagerDuty payloads are built directly from the view.

use crate::engine::detect::Incident;
use crate::engine::kb::evidence::{self, Item as EvItem, Local, Verdict};
use crate::engine::kb::{Kb, Lang, Placeholders};
use crate::render::links::{Action, SNOOZE_SECS, Signer};
use crate::render::report;
use minijinja::Environment;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The generic JSON payload's version. Fields are only ever added within a version.
pub const SCHEMA_VERSION: u32 = 1;

/// Why a message is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// Incidents opened.
    Opened,
    /// Incidents still open after the renotify interval.
    Reminder,
    /// Incidents closed.
    Resolved,
    /// The daily summary (not an incident change: its own message).
    Summary,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Opened => "opened",
            AlertKind::Reminder => "reminder",
            AlertKind::Resolved => "resolved",
            AlertKind::Summary => "summary",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkaroundView {
    /// Its number in the entry (what `incident resolve --fixed-by` and the links name); the
    /// list is in the order to try them, which local evidence can change.
    pub rank: usize,
    pub success_pct: u32,
    pub text: String,
    pub command: Option<String>,
    /// What happened to it at this installation (`3 of 4 here`), if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub here: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadEndView {
    pub name: String,
    pub fail_pct: u32,
    pub why: String,
}

/// A knowledge-base entry as a message shows it: commands filled in for its first upstream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntryView {
    pub id: String,
    pub title: String,
    pub root_cause: String,
    pub fix_rate_pct: u32,
    pub confidence_pct: u32,
    pub workarounds: Vec<WorkaroundView>,
    pub dead_ends: Vec<DeadEndView>,
    pub docs: Vec<String>,
    /// The upstreams of the message's incidents that matched this entry.
    #[serde(default)]
    pub upstreams: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentView {
    /// Stable across messages about the same incident (threads, deduplication).
    pub key: String,
    pub headline: String,
    pub upstream: String,
    pub cause: String,
    pub status: Option<u16>,
    pub start: String,
    pub end: String,
    pub opened: String,
    pub closed: Option<String>,
    pub duration: String,
    pub failures: u64,
    pub requests: Option<u64>,
    pub share_pct: Option<u32>,
    pub failures_per_min: f64,
    pub vhosts: Vec<String>,
    pub paths: Vec<String>,
    pub sources: Vec<String>,
    pub samples: Vec<String>,
    /// The matched entry's id and title; the entry itself is in the message's `entries`.
    pub entry: String,
    pub entry_title: String,
    /// Whether a silence or maintenance window covered the incident when it opened.
    #[serde(default)]
    pub silenced: bool,
    /// One-click links (Ack, Snooze, what fixed it), where the daemon has a public address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkView>,
    /// What the proxy did shortly before it recovered (`an nginx reload at …`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recovery: Vec<String>,
}

/// A signed one-click link (see [`crate::render::links`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LinkView {
    /// `ack`, `snooze`, `fixed` or `no_effect`.
    pub kind: String,
    /// The workaround's number, for `fixed` and `no_effect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<usize>,
    pub label: String,
    pub url: String,
}

/// What an item shows beyond the incident and its entry: the entry's local record, and the
/// links when the daemon has a public address.
#[derive(Clone, Copy, Default)]
pub struct Extra<'a> {
    pub local: Option<&'a std::collections::BTreeMap<EvItem, Local>>,
    /// The signer, the kind of message, and when it is made (Unix ms).
    pub links: Option<(&'a Signer, AlertKind, i64)>,
}

/// One incident change as the outbox keeps it: everything a message needs, in the channel's
/// language, fixed when the change happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub incident: IncidentView,
    pub entry: EntryView,
}

/// One message: one or more incidents of one kind, from one host. Serialised, it is the
/// generic JSON webhook's payload.
#[derive(Clone, Debug, Serialize)]
pub struct AlertView {
    pub version: u32,
    /// The message's own id (the same on a retry, so receivers can deduplicate).
    pub id: String,
    /// `firing` or `resolved` (Alertmanager's words).
    pub status: &'static str,
    pub kind: AlertKind,
    pub host: String,
    pub lang: &'static str,
    pub subject: String,
    pub incidents: Vec<IncidentView>,
    /// The entries the incidents matched, each once, in the order of the incidents.
    pub entries: Vec<EntryView>,
    /// Incidents left out of `incidents` to fit a channel's size limit (0: none).
    #[serde(skip_serializing_if = "is_zero")]
    pub omitted: usize,
    /// Labels in the message's language.
    pub labels: Labels,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The fixed words of the messages, per language.
#[derive(Clone, Debug, Serialize)]
pub struct Labels {
    pub opened: &'static str,
    pub reminder: &'static str,
    pub resolved: &'static str,
    pub upstream: &'static str,
    pub cause: &'static str,
    pub since: &'static str,
    pub until: &'static str,
    pub lasted: &'static str,
    pub failures: &'static str,
    pub of_requests: &'static str,
    pub vhosts: &'static str,
    pub paths: &'static str,
    pub samples: &'static str,
    pub root_cause: &'static str,
    pub workarounds: &'static str,
    pub success: &'static str,
    pub dead_ends: &'static str,
    pub fail: &'static str,
    pub docs: &'static str,
    pub entry: &'static str,
    pub sources: &'static str,
    pub host: &'static str,
    /// Above the one-click links of an open incident, and of a resolved one.
    pub act: &'static str,
    pub what_fixed: &'static str,
    pub recovery_followed: &'static str,
}

fn labels(lang: Lang) -> Labels {
    match lang {
        Lang::En => Labels {
            opened: "Incident",
            reminder: "Still failing",
            resolved: "Resolved",
            upstream: "Upstream",
            cause: "Cause",
            since: "since",
            until: "until",
            lasted: "lasted",
            failures: "failures",
            of_requests: "of requests",
            vhosts: "Virtual hosts",
            paths: "Paths",
            samples: "Sample lines",
            root_cause: "Root cause",
            workarounds: "What to do, most successful first",
            success: "success",
            dead_ends: "Not worth trying",
            fail: "fail",
            docs: "Documentation",
            entry: "Knowledge base",
            sources: "Logs",
            host: "Host",
            act: "Tell gatewatch",
            what_fixed: "What fixed it?",
            recovery_followed: "Recovery followed",
        },
        Lang::Zh => Labels {
            opened: "故障",
            reminder: "仍在故障",
            resolved: "已恢复",
            upstream: "上游",
            cause: "原因",
            since: "开始于",
            until: "结束于",
            lasted: "持续",
            failures: "次失败",
            of_requests: "占请求",
            vhosts: "虚拟主机",
            paths: "路径",
            samples: "日志样本",
            root_cause: "根本原因",
            workarounds: "处理步骤(按成功率排序)",
            success: "成功率",
            dead_ends: "无效做法",
            fail: "失败率",
            docs: "官方文档",
            entry: "知识库条目",
            sources: "日志",
            host: "主机",
            act: "反馈",
            what_fixed: "是什么解决了问题?",
            recovery_followed: "恢复之前发生了",
        },
    }
}

fn time(ms: i64, offset: i32) -> String {
    crate::engine::event::Timestamp::new(ms, offset).to_rfc3339()
}

fn pct(x: f64) -> u32 {
    (x * 100.0).round() as u32
}

/// A stable key for an incident: the same for every message about it, from this host.
pub fn incident_key(host: &str, kb: &Kb, inc: &Incident) -> String {
    let text = format!(
        "{host}\n{}\n{}\n{}",
        kb.id(inc.entry),
        inc.upstream,
        inc.start_ms
    );
    let fp = crate::source::tail::Fingerprint::of(text.as_bytes());
    format!("gw-{:016x}", fp.hash)
}

/// The one-click links of an incident: Ack and Snooze while it is open, then "Fixed by #N"
/// and "Tried #N: no effect" for each workaround, in the order shown.
fn links(
    key: &str,
    order: &[usize],
    lang: Lang,
    signer: &Signer,
    kind: AlertKind,
    now_ms: i64,
) -> Vec<LinkView> {
    let mut out = Vec::new();
    let mut add = |action: Action, kind: &str, rank: Option<usize>, label: String| {
        out.push(LinkView {
            kind: kind.into(),
            rank,
            label,
            url: signer.link(key, &action, now_ms),
        })
    };
    if kind != AlertKind::Resolved {
        let (ack, snooze) = match lang {
            Lang::En => ("Ack", format!("Snooze {} h", SNOOZE_SECS / 3600)),
            Lang::Zh => ("确认", format!("暂停提醒 {} 小时", SNOOZE_SECS / 3600)),
        };
        add(Action::Ack, "ack", None, ack.into());
        add(Action::Snooze { secs: SNOOZE_SECS }, "snooze", None, snooze);
    }
    for &n in order {
        let label = match lang {
            Lang::En => format!("Fixed by #{n}"),
            Lang::Zh => format!("已由 #{n} 解决"),
        };
        let item = EvItem::Workaround(n);
        add(
            Action::Verdict {
                item,
                verdict: Verdict::Fixed,
            },
            "fixed",
            Some(n),
            label,
        );
    }
    for &n in order {
        let label = match lang {
            Lang::En => format!("Tried #{n}: no effect"),
            Lang::Zh => format!("已试 #{n}:无效"),
        };
        let item = EvItem::Workaround(n);
        add(
            Action::Verdict {
                item,
                verdict: Verdict::NoEffect,
            },
            "no_effect",
            Some(n),
            label,
        );
    }
    out
}

/// An incident change as the outbox keeps it, in one language.
pub fn item(
    inc: &Incident,
    kb: &Kb,
    lang: Lang,
    host: &str,
    sources: &[String],
    extra: Extra<'_>,
) -> Item {
    let e = kb.get(inc.entry);
    // The upstream's name comes from a log line: it is shown (and filled into commands)
    // without control characters, so no line break can start a mail header or a chat line.
    let upstream = report::printable(&inc.upstream);
    let ph = Placeholders::for_upstream(&upstream);
    let minutes = ((inc.end_ms - inc.start_ms).max(60_000) as f64) / 60_000.0;
    let incident = IncidentView {
        key: incident_key(host, kb, inc),
        headline: report::printable(&report::headline_in(inc, kb, lang)),
        upstream,
        cause: inc.cause.as_str().to_string(),
        status: inc.statuses.first().map(|(s, _)| *s),
        start: time(inc.start_ms, inc.offset_secs),
        end: time(inc.end_ms, inc.offset_secs),
        opened: time(inc.opened_ms, inc.offset_secs),
        closed: inc.closed_ms.map(|c| time(c, inc.offset_secs)),
        duration: match lang {
            Lang::En => report::human_duration(inc.end_ms - inc.start_ms),
            Lang::Zh => report::human_duration_zh(inc.end_ms - inc.start_ms),
        },
        failures: inc.failures,
        requests: inc.requests,
        share_pct: inc
            .requests
            .filter(|r| *r > 0 && *r >= inc.failures)
            .map(|r| pct(inc.failures as f64 / r as f64)),
        failures_per_min: (inc.failures as f64 / minutes * 10.0).round() / 10.0,
        vhosts: inc.vhosts.ranked().into_iter().map(|(v, _)| v).collect(),
        paths: inc.paths.ranked().into_iter().map(|(v, _)| v).collect(),
        sources: inc
            .sources
            .iter()
            .filter_map(|&i| sources.get(i as usize).cloned())
            .collect(),
        // Control characters of log lines never reach a terminal, a mail client or a chat.
        samples: inc.samples.iter().map(|s| report::printable(s)).collect(),
        entry: e.id.clone(),
        entry_title: e.title.get(lang).to_string(),
        silenced: false,
        links: Vec::new(),
        recovery: inc
            .recovery
            .iter()
            .map(|r| {
                let what = match (lang, r.signal) {
                    (Lang::En, s) => s.describe(),
                    (Lang::Zh, crate::engine::event::Signal::NginxReload) => "nginx 重载",
                    (Lang::Zh, crate::engine::event::Signal::ServerUp) => "服务器恢复 UP",
                };
                let server = r
                    .server
                    .as_deref()
                    .map(|s| format!(" ({})", report::printable(s)))
                    .unwrap_or_default();
                let at = time(r.at_ms, inc.offset_secs);
                match lang {
                    Lang::En => format!("{what}{server} at {at}"),
                    Lang::Zh => format!("{at} {what}{server}"),
                }
            })
            .collect(),
    };
    // The workarounds in the order to try them: the knowledge base's, moved by what happened
    // here once there is enough of it (see `evidence::ranked`).
    let ranked = evidence::ranked_here(e, extra.local);
    let mut incident = incident;
    if let Some((signer, kind, now_ms)) = extra.links {
        let order: Vec<usize> = ranked.iter().map(|(i, _)| i + 1).collect();
        incident.links = links(&incident.key, &order, lang, signer, kind, now_ms);
    }
    let entry = EntryView {
        id: e.id.clone(),
        title: e.title.get(lang).to_string(),
        root_cause: e.root_cause.get(lang).to_string(),
        fix_rate_pct: pct(e.fix_rate),
        confidence_pct: pct(e.confidence),
        workarounds: ranked
            .iter()
            .map(|(i, est)| {
                let w = &e.workarounds[*i];
                WorkaroundView {
                    rank: i + 1,
                    success_pct: pct(w.success_rate),
                    text: w.render(lang, Some(&ph)),
                    command: w.command_for(&ph),
                    here: evidence::here(&est.local, lang),
                }
            })
            .collect(),
        dead_ends: e
            .dead_ends
            .iter()
            .map(|d| DeadEndView {
                name: d.name.get(lang).to_string(),
                fail_pct: pct(d.fail_rate),
                why: d.why.get(lang).to_string(),
            })
            .collect(),
        docs: e.docs.clone(),
        upstreams: Vec::new(),
    };
    Item { incident, entry }
}

/// A subject that fits a phone's screen, on one line (no header injection from log content).
fn subject(kind: AlertKind, host: &str, incidents: &[IncidentView], l: &Labels) -> String {
    let word = match kind {
        AlertKind::Opened => l.opened,
        AlertKind::Reminder => l.reminder,
        AlertKind::Resolved => l.resolved,
        AlertKind::Summary => "Summary",
    };
    let first = incidents.first().map_or("", |i| i.headline.as_str());
    let more = if incidents.len() > 1 {
        format!(" (+{})", incidents.len() - 1)
    } else {
        String::new()
    };
    let mut s = format!("[{word}] {host}: {first}{more}");
    s.retain(|c| !c.is_control());
    if s.chars().count() > SUBJECT_CHARS {
        s = s.chars().take(SUBJECT_CHARS - 1).collect::<String>() + "…";
    }
    s
}

/// The longest subject, in characters: what a phone shows of a notification.
pub const SUBJECT_CHARS: usize = 110;

/// A message about some incident changes of one kind.
pub fn compose(kind: AlertKind, host: &str, lang: Lang, id: &str, items: Vec<Item>) -> AlertView {
    let l = labels(lang);
    let mut incidents = Vec::with_capacity(items.len());
    let mut entries: Vec<EntryView> = Vec::new();
    for Item { incident, entry } in items {
        match entries.iter_mut().find(|e| e.id == entry.id) {
            Some(e) => e.upstreams.push(incident.upstream.clone()),
            None => {
                let mut e = entry;
                e.upstreams = vec![incident.upstream.clone()];
                entries.push(e);
            }
        }
        incidents.push(incident);
    }
    AlertView {
        version: SCHEMA_VERSION,
        id: id.to_string(),
        status: if kind == AlertKind::Resolved {
            "resolved"
        } else {
            "firing"
        },
        kind,
        host: host.to_string(),
        lang: match lang {
            Lang::En => "en",
            Lang::Zh => "zh",
        },
        subject: subject(kind, host, &incidents, &l),
        incidents,
        entries,
        omitted: 0,
        labels: l,
    }
}

/// The message about some incidents, straight from the detector's incidents.
pub fn view(
    kind: AlertKind,
    incidents: &[Incident],
    kb: &Kb,
    lang: Lang,
    host: &str,
    sources: &[String],
) -> AlertView {
    let items = incidents
        .iter()
        .map(|i| item(i, kb, lang, host, sources, Extra::default()))
        .collect();
    compose(kind, host, lang, "gw-sample", items)
}

/// The built-in templates, by name.
pub const TEMPLATES: [(&str, &str); 6] = [
    (
        "console.txt.j2",
        include_str!("../../templates/console.txt.j2"),
    ),
    ("email.txt.j2", include_str!("../../templates/email.txt.j2")),
    (
        "email.html.j2",
        include_str!("../../templates/email.html.j2"),
    ),
    (
        "slack.json.j2",
        include_str!("../../templates/slack.json.j2"),
    ),
    (
        "teams.json.j2",
        include_str!("../../templates/teams.json.j2"),
    ),
    (
        "discord.json.j2",
        include_str!("../../templates/discord.json.j2"),
    ),
];

/// A link view's label and URL, from a template value.
fn link_parts(v: &minijinja::Value) -> (String, String) {
    let get = |k: &str| {
        v.get_attr(k)
            .ok()
            .and_then(|x| x.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    (get("label"), get("url"))
}

/// Slack's mrkdwn needs `&`, `<` and `>` escaped, or log content could make links and
/// mentions.
fn slack_escape(s: String) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Text for HTML (also inside attribute values): `&`, `<`, `>`, `"`, `'` escaped.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Knowledge-base text for HTML: escaped, with its `code spans` shown as `<code>` (the text
/// is written with Markdown backticks; an unpaired backtick stays as it is).
pub fn html_code_spans(s: &str) -> minijinja::Value {
    let escape = |out: &mut String, s: &str| out.push_str(&html_escape(s));
    let mut out = String::with_capacity(s.len() + 32);
    let mut rest = s;
    while let Some(open) = rest.find('`') {
        let Some(len) = rest[open + 1..].find('`') else {
            break;
        };
        escape(&mut out, &rest[..open]);
        out.push_str("<code>");
        escape(&mut out, &rest[open + 1..open + 1 + len]);
        out.push_str("</code>");
        rest = &rest[open + 2 + len..];
    }
    escape(&mut out, rest);
    minijinja::Value::from_safe_string(out)
}

/// Markdown (Teams, Discord) must not turn log content into links, mentions or formatting.
fn markdown_escape(s: String) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(
            c,
            '\\' | '*' | '_' | '`' | '[' | ']' | '(' | ')' | '<' | '>' | '#' | '~' | '|' | '@'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Cuts a text to at most `n` characters (chat tools limit field sizes).
pub fn truncate(s: String, n: usize) -> String {
    if s.chars().count() <= n {
        s
    } else {
        s.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
    }
}

/// Templates: the built-in ones, each replaced by a file of the same name in `dir` if there
/// is one.
pub struct Templates {
    env: Environment<'static>,
    /// The folder whose files replace built-in templates of the same name.
    dir: Option<std::path::PathBuf>,
}

impl Templates {
    pub fn new(dir: Option<&Path>) -> anyhow::Result<Templates> {
        let mut env = Environment::new();
        env.add_filter("slack", slack_escape);
        // Values from the logs (hosts, paths) as inline code: chat tools do not turn code
        // into links.
        env.add_filter("slack_codes", |v: Vec<String>| {
            v.into_iter()
                .map(|s| format!("`{}`", slack_escape(s.replace('`', "'"))))
                .collect::<Vec<_>>()
                .join(", ")
        });
        env.add_filter("truncate_chars", truncate);
        // The links as one line of at most `max` characters: whole links only (a link cut in
        // the middle is a broken link), the last ones left out first.
        env.add_filter(
            "fit_links",
            |links: Vec<minijinja::Value>, style: String, max: usize| {
                let mut out = String::new();
                for v in &links {
                    let (label, url) = link_parts(v);
                    let one = if style == "slack" {
                        format!("<{url}|{}>", slack_escape(label))
                    } else {
                        format!("[{}]({url})", markdown_escape(label))
                    };
                    let sep = if out.is_empty() { "" } else { " · " };
                    if out.chars().count() + sep.len() + one.chars().count() > max {
                        break;
                    }
                    out.push_str(sep);
                    out.push_str(&one);
                }
                out
            },
        );
        env.add_filter("md", markdown_escape);
        env.add_filter("code_spans", |s: String| html_code_spans(&s));
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .map_err(|e| anyhow::anyhow!("template syntax: {e}"))?,
        );
        for (name, builtin) in TEMPLATES {
            let text = match dir.map(|d| d.join(name)) {
                Some(p) if p.exists() => std::fs::read_to_string(&p)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
                _ => builtin.to_string(),
            };
            env.add_template_owned(name.to_string(), text)
                .map_err(|e| anyhow::anyhow!("template {name}: {e:#}"))?;
        }
        Ok(Templates {
            env,
            dir: dir.map(Path::to_path_buf),
        })
    }

    /// Adds a channel's own template: `builtin`, unless the template folder has a file of
    /// that name.
    pub fn add(&mut self, name: &'static str, builtin: &'static str) -> anyhow::Result<()> {
        let text = match self.dir.as_ref().map(|d| d.join(name)) {
            Some(p) if p.exists() => {
                std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
            }
            _ => builtin.to_string(),
        };
        self.env
            .add_template_owned(name.to_string(), text)
            .map_err(|e| anyhow::anyhow!("template {name}: {e:#}"))
    }

    /// Renders a template for a view.
    pub fn render(&self, name: &str, v: &AlertView) -> anyhow::Result<String> {
        let t = self
            .env
            .get_template(name)
            .map_err(|e| anyhow::anyhow!("template {name}: {e}"))?;
        t.render(minijinja::value::Serde(v))
            .map_err(|e| anyhow::anyhow!("rendering {name}: {e:#}"))
    }
}

impl AlertView {
    /// The view shortened, step by step, until `fits` says it fits a channel's size limit:
    /// first the sample lines and paths go, then incidents past ten (counted in `omitted`),
    /// then the dead ends and all incidents but the first three with their entries. The last
    /// step is returned if none fits (the channel then cuts its text).
    pub fn fit(
        &self,
        fits: impl Fn(&AlertView) -> anyhow::Result<bool>,
    ) -> anyhow::Result<AlertView> {
        let mut v = self.clone();
        if fits(&v)? {
            return Ok(v);
        }
        for i in &mut v.incidents {
            i.samples.clear();
            i.paths.clear();
        }
        if fits(&v)? {
            return Ok(v);
        }
        for keep in [10, 3, 1] {
            if v.incidents.len() > keep {
                v.omitted += v.incidents.len() - keep;
                v.incidents.truncate(keep);
                let wanted: Vec<String> = v.incidents.iter().map(|i| i.entry.clone()).collect();
                v.entries.retain(|e| wanted.contains(&e.id));
            }
            if keep <= 3 {
                for e in &mut v.entries {
                    e.dead_ends.clear();
                    e.docs.truncate(1);
                }
            }
            if fits(&v)? {
                return Ok(v);
            }
        }
        Ok(v)
    }

    /// The entry an incident matched.
    pub fn entry_of(&self, i: &IncidentView) -> Option<&EntryView> {
        self.entries.iter().find(|e| e.id == i.entry)
    }
}

/// The email form of a message: subject, plain text and HTML.
#[derive(Clone, Debug, PartialEq)]
pub struct Email {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Templates {
    /// The console form.
    pub fn console(&self, v: &AlertView) -> anyhow::Result<String> {
        self.render("console.txt.j2", v)
    }

    /// The email form.
    pub fn email(&self, v: &AlertView) -> anyhow::Result<Email> {
        Ok(Email {
            subject: v.subject.clone(),
            text: self.render("email.txt.j2", v)?,
            html: self.render("email.html.j2", v)?,
        })
    }
}

/// A realistic incident for `gatewatch test-alert` and the documentation: upstream
/// 10.0.1.5:8080 refusing connections for four minutes.
pub fn sample(kb: &Kb) -> Option<Incident> {
    use crate::engine::detect::TopValues;
    use crate::engine::event::Cause;
    let entry = kb.find("api/http-502-bad-gateway-upstream-unreachable")?;
    let mut causes = [0u64; Cause::COUNT];
    causes[Cause::UpstreamUnreachable.index()] = 143;
    Some(Incident {
        seq: 1,
        entry,
        upstream: "10.0.1.5:8080".into(),
        cause: Cause::UpstreamUnreachable,
        // 2024-05-01T12:00:03Z
        start_ms: 1_714_564_803_000,
        offset_secs: 0,
        opened_ms: 1_714_564_805_000,
        end_ms: 1_714_565_050_000,
        closed_ms: None,
        failures: 143,
        requests: Some(372),
        window_failures: 12,
        window_requests: 13,
        peak_window_failures: 57,
        causes,
        statuses: vec![(502, 143)],
        vhosts: TopValues {
            values: vec![("api.example.com".into(), 143)],
            others: 0,
        },
        paths: TopValues {
            values: vec![("/v1/orders".into(), 100), ("/v1/users/me".into(), 43)],
            others: 0,
        },
        samples: vec![
            "203.0.113.7 - - [01/May/2024:12:00:03 +0000] \"GET /v1/orders HTTP/1.1\" 502 157 \"-\" \"curl/8.5.0\" api.example.com 10.0.1.5:8080 502 - - 0.000 0.001".into(),
        ],
        sources: vec![0],
        recovery: Vec::new(),
    })
}
