//! `gatewatch patterns draft KEY`: a new entry's skeleton from a recorded incident (the
//! unknown-burst ones above all), with its sample lines as examples, a near-miss candidate,
//! and TODO marks that `gatewatch check` names until they are written; and
//! `gatewatch patterns export-evidence`: the local record as counts only, to contribute
//! measured rates upstream.

use super::*;
use crate::engine::event::Cause;
use crate::engine::parse::{Parser, ParserOptions};

/// A sample line, parsed: its format and the failure it shows.
struct Sample {
    line: String,
    format: Format,
    /// The `log_format` to read it with (nginx access logs not in `combined`).
    log_format: Option<String>,
}

/// Reads a sample with the parsers of the configured sources first (their `log_format`), then
/// by recognition; `None` when nothing reads it as a failure of `cause`.
fn read_sample(line: &str, cfg: &Config, cause: Cause) -> Option<Sample> {
    let bytes = line.as_bytes();
    let sample = |p: &Parser| Sample {
        line: line.to_string(),
        format: p.format(),
        // `combined` is what an example without a log_format is read with.
        log_format: p
            .log_format()
            .filter(|f| f.name() != "combined")
            .map(|f| f.directive()),
    };
    for s in &cfg.sources {
        let crate::source::SourceKind::Log { format, .. } = &s.kind else {
            continue;
        };
        let opts = ParserOptions {
            log_format: s.log_format.clone(),
            ..ParserOptions::default()
        };
        let mut p = Parser::new(*format, &opts, &[bytes]);
        if p.parse(bytes).is_ok_and(|ev| ev.cause == cause) {
            return Some(sample(&p));
        }
    }
    let mut p = crate::engine::parse::detect(&[bytes], &ParserOptions::default())?;
    if !p.parse(bytes).is_ok_and(|ev| ev.cause == cause) {
        return None;
    }
    // JSON access lines are read by their keys: the entry's example needs no log_format, but
    // only when recognition reads it alike; anything else needs the format written out.
    if matches!(p.format(), Format::NginxAccess) && p.log_format().is_none() {
        return None;
    }
    Some(sample(&p))
}

/// A TOML string (basic, escaped).
fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The sample with its status replaced by 200, if the result reads as an answered request: a
/// near miss (the same request, not failing).
fn answered_twin(s: &Sample, status: u16, cfg: &Config) -> Option<String> {
    let from = status.to_string();
    let line = &s.line;
    let mut at = None;
    for (i, _) in line.match_indices(&from) {
        let before = line[..i].chars().next_back();
        let after = line[i + from.len()..].chars().next();
        let edge = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '.');
        if edge(before) && edge(after) {
            at = Some(i);
            break;
        }
    }
    let i = at?;
    let twin = format!("{}200{}", &line[..i], &line[i + from.len()..]);
    let log_format = match &s.log_format {
        Some(d) => Some(crate::engine::parse::LogFormat::from_directive(d).ok()?),
        None => None,
    };
    let opts = ParserOptions {
        log_format,
        ..ParserOptions::default()
    };
    let _ = cfg;
    let mut p = Parser::new(s.format, &opts, &[twin.as_bytes()]);
    p.parse(twin.as_bytes())
        .ok()
        .filter(|ev| ev.cause == Cause::Ok)
        .map(|_| twin)
}

/// A regular expression that keeps the draft to lines like the samples: the request path
/// they share, else the upstream they name.
fn signature(samples: &[Sample], upstream: &str) -> Option<String> {
    let path_of = |l: &str| -> Option<String> {
        let start = l.find(" /")? + 1;
        let end = l[start..]
            .find([' ', '?', '"'])
            .map_or(l.len(), |e| start + e);
        Some(l[start..end].to_string())
    };
    let paths: Vec<Option<String>> = samples.iter().map(|s| path_of(&s.line)).collect();
    if let Some(Some(first)) = paths.first()
        && first.len() > 1
        && paths.iter().all(|p| p.as_deref() == Some(first.as_str()))
    {
        return Some(format!("[ \"]{}[ ?\"]", regex::escape(first)));
    }
    // Bounded: `10.0.1.5:80` must not match `10.0.1.5:8080` or `110.0.1.5:80`.
    (!upstream.is_empty() && upstream != "-" && samples.iter().all(|s| s.line.contains(upstream)))
        .then(|| format!(r"(?:^|[^\w.:-]){}(?:[^\w.:-]|$)", regex::escape(upstream)))
}

pub(super) fn run_draft(
    key: &str,
    out: Option<PathBuf>,
    config: Option<PathBuf>,
    force: bool,
) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config.as_deref())?;
    let dir = state_dir(&cfg);
    let state = crate::store::State::open_read_only(&dir)?
        .ok_or_else(|| anyhow::anyhow!("there is no state in {}", dir.display()))?;
    let inc = state
        .incident_data(key)?
        .ok_or_else(|| anyhow::anyhow!("there is no incident {key}"))?;
    let out_dir = match out.or_else(|| cfg.pattern_dirs.last().cloned()) {
        Some(d) => d,
        None => {
            return Err(usage(
                "where should the draft go? Pass --out DIR (and name DIR in [patterns] dirs so the daemon reads it)",
            ));
        }
    };
    let status = inc.statuses.first().map(|(s, _)| *s);
    let samples: Vec<Sample> = inc
        .samples
        .iter()
        .filter_map(|l| read_sample(l, &cfg, inc.cause))
        .collect();
    if samples.is_empty() {
        anyhow::bail!(
            "none of {key}'s {} sample lines reads as {} with the configured sources or by recognition; a draft needs one example",
            inc.samples.len(),
            inc.cause
        );
    }
    let cause = inc.cause.as_str();
    let short = key.trim_start_matches("gw-");
    let short = &short[..short.len().min(8)];
    let name = format!(
        "draft-{}{}-{short}",
        cause.replace('_', "-"),
        status.map(|s| format!("-{s}")).unwrap_or_default()
    );
    let id = format!("local/{name}");
    let path = out_dir.join("local").join(format!("{name}.toml"));
    if path.exists() && !force {
        anyhow::bail!(
            "{} exists (a draft made before?); pass --force to replace it",
            path.display()
        );
    }
    let mut formats: Vec<Format> = samples.iter().map(|s| s.format).collect();
    formats.sort();
    formats.dedup();
    let statuses: Vec<u16> = inc.statuses.iter().map(|(s, _)| *s).collect();
    let today = chrono::Local::now().format("%Y-%m-%d");
    let upstream = crate::render::report::printable(&inc.upstream);
    let mut t = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(
        t,
        "# A draft made by `gatewatch patterns draft {key}` from the incident at upstream\n\
         # {upstream} ({cause}, {} failures). Write every TODO, check the match and the examples,\n\
         # then prove it: gatewatch check --patterns {}\n",
        inc.failures,
        out_dir.display()
    );
    let _ = writeln!(
        t,
        "# The daemon leaves a draft out of its knowledge base; `check` proves it. Remove this\n\
         # line when the entry is written, then reload the daemon.\ndraft = true\n"
    );
    let _ = writeln!(t, "id = {}", q(&id));
    let _ = writeln!(t, "category = \"local\"\nkind = \"network_error\"");
    let _ = writeln!(
        t,
        "ai_generated = false\nfix_rate = 0.5\nconfidence = 0.5\nevidence_count = 1\nfirst_seen = {today}"
    );
    let _ = writeln!(
        t,
        "docs = [\"https://TODO.example/the-official-documentation-of-the-cause\"]\n"
    );
    let _ = writeln!(
        t,
        "[title]\nen = \"TODO: what failed, in a line (e.g. 502: the payment API's pool is exhausted)\"\nzh = \"TODO: 用一句话说明故障\"\n"
    );
    let _ = writeln!(
        t,
        "[root_cause]\nen = \"TODO: why the requests failed, and how the log lines show it\"\nzh = \"TODO: 请求失败的原因,以及日志如何体现\"\n"
    );
    let _ = writeln!(
        t,
        "[[workarounds]]\nsuccess_rate = 0.5\nen = \"TODO: the step that fixed it this time, with its command: `{{command}}`\"\nzh = \"TODO: 这次解决问题的步骤:`{{command}}`\"\ncommand = {}\n",
        q("curl -sS -o /dev/null -D - http://{upstream}/ | head -n 1")
    );
    let _ = writeln!(
        t,
        "[[dead_ends]]\nname = {{ en = \"TODO: a common fix that did not help\", zh = \"TODO: 无效的常见做法\" }}\nfail_rate = 0.5\nen = \"TODO: why it does not help\"\nzh = \"TODO: 为什么无效\"\n"
    );
    let _ = writeln!(t, "[match]");
    let _ = writeln!(t, "causes = [{}]", q(cause));
    if !statuses.is_empty() {
        let list: Vec<String> = statuses.iter().map(u16::to_string).collect();
        let _ = writeln!(t, "statuses = [{}]", list.join(", "));
    }
    let list: Vec<String> = formats.iter().map(|f| q(f.as_str())).collect();
    let _ = writeln!(t, "formats = [{}]", list.join(", "));
    // Above the shipped entries for the same lines (the unknown-burst net above all).
    let _ = writeln!(t, "priority = 10");
    match signature(&samples, &inc.upstream) {
        Some(re) => {
            let _ = writeln!(
                t,
                "# Keeps the entry to lines like the samples; widen it once the cause is known.\nsignatures = ["
            );
            for f in &formats {
                let _ = writeln!(
                    t,
                    "    {{ format = {}, regex = {} }},",
                    q(f.as_str()),
                    q(&re)
                );
            }
            let _ = writeln!(t, "]");
        }
        None => {
            let _ = writeln!(
                t,
                "# TODO: add signatures = [{{ format = ..., regex = ... }}] unless every {cause} line of these statuses is this failure"
            );
        }
    }
    let _ = writeln!(t);
    for s in &samples {
        let _ = writeln!(t, "# Seen in incident {key}.");
        let _ = writeln!(t, "[[examples]]\nformat = {}", q(s.format.as_str()));
        if let Some(lf) = &s.log_format {
            let _ = writeln!(t, "log_format = {}", q(lf));
        }
        let _ = writeln!(t, "line = {}\n", q(&s.line));
    }
    let mut twins = 0;
    for s in &samples {
        if let (Some(st), Some(twin)) = (status, status.and_then(|st| answered_twin(s, st, &cfg))) {
            let _ = writeln!(
                t,
                "# A candidate: the same request answered 200 must not match. Keep it, or replace it\n\
                 # with a real line this entry must not explain."
            );
            let _ = writeln!(t, "[[near_misses]]\nformat = {}", q(s.format.as_str()));
            if let Some(lf) = &s.log_format {
                let _ = writeln!(t, "log_format = {}", q(lf));
            }
            let _ = writeln!(
                t,
                "why = {}\nline = {}\n",
                q(&format!("the same request answered 200 instead of {st}")),
                q(&twin)
            );
            twins += 1;
            break;
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&path, &t).with_context(|| format!("writing {}", path.display()))?;
    println!(
        "wrote {} ({} example{}, {twins} near-miss candidate{})",
        path.display(),
        samples.len(),
        if samples.len() == 1 { "" } else { "s" },
        if twins == 1 { "" } else { "s" },
    );
    println!(
        "next: write its TODOs, prove it with `gatewatch check` (with every pattern folder the daemon reads), then remove `draft = true` and reload the daemon; until then the daemon leaves it out"
    );
    Ok(ExitCode::SUCCESS)
}

/// One line of the evidence export.
#[derive(serde::Serialize)]
struct Evidence<'a> {
    entry: &'a str,
    item: String,
    tried: u32,
    fixed: u32,
    /// Recoveries that followed it without anyone saying so.
    followed: u32,
}

pub(super) fn run_export_evidence(config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cfg = load_config(config.as_deref())?;
    let dir = state_dir(&cfg);
    let Some(state) = crate::store::State::open_read_only(&dir)? else {
        anyhow::bail!("there is no state in {}", dir.display());
    };
    // Counts only, and only for the shipped entries: no incident keys, hosts, upstreams, paths,
    // log text, or the names of local entries.
    let kb = load_kb(&[])?;
    let mut out = io::stdout().lock();
    for id in kb.ids() {
        for (item, l) in state.local_record(id)? {
            if l.tried == 0 && l.followed == 0 {
                continue;
            }
            let line = serde_json::to_string(&Evidence {
                entry: id,
                item: item.name(),
                tried: l.tried,
                fixed: l.fixed,
                followed: l.followed,
            })?;
            writeln!(out, "{line}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
