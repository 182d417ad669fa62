//! `gatewatch patterns`: the knowledge base, browsed.

use super::*;

pub(super) fn run_patterns(
    action: Option<PatternsAction>,
    dirs: Vec<PathBuf>,
    lang: &str,
) -> anyhow::Result<ExitCode> {
    // The two that read the state rather than browse the knowledge base.
    let action = match action.unwrap_or(PatternsAction::List) {
        PatternsAction::Draft {
            key,
            out,
            force,
            config,
        } => return draft::run_draft(&key, out, config, force),
        PatternsAction::ExportEvidence { config } => return draft::run_export_evidence(config),
        browse => browse,
    };
    let kb = load_kb(&dirs)?;
    let lang = Lang::from_name(lang).unwrap_or_default();
    let mut out = io::stdout().lock();
    match action {
        PatternsAction::Draft { .. } | PatternsAction::ExportEvidence { .. } => {}
        PatternsAction::List => {
            writeln!(
                out,
                "{:<58} {:>8} {:<40} TITLE",
                "ENTRY", "FIX RATE", "CAUSES"
            )?;
            for e in kb.entries() {
                let causes: Vec<&str> = e.causes.iter().map(|c| c.as_str()).collect();
                writeln!(
                    out,
                    "{:<58} {:>6.0} % {:<40} {}",
                    e.id,
                    e.fix_rate * 100.0,
                    causes.join(","),
                    e.title.get(lang)
                )?;
            }
        }
        PatternsAction::Show { id, upstream } => match kb.find(&id) {
            Some(eid) => {
                let text = report::entry_text(kb.get(eid), lang, upstream.as_deref());
                out.write_all(text.as_bytes())?;
            }
            None => {
                eprintln!(
                    "gatewatch: no entry {id:?}; `gatewatch patterns list` shows the {} entries",
                    kb.entries().len()
                );
                return Ok(ExitCode::FAILURE);
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}
