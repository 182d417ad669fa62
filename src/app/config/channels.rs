//! `[[channel]]`: where alerts go. The table's common keys and each kind's own keys are read
//! by [`crate::delivery::channel`] (each kind of channel owns its settings); here the names are
//! checked to be unique and the lines kept.

use super::*;
use crate::table::Table;

/// Checks `[[channel]]` tables into `cfg.channels`; returns the names given.
pub(super) fn channels(
    p: &mut Problems<'_>,
    raw: Vec<Spanned<std::collections::BTreeMap<String, Spanned<toml::Value>>>>,
    cfg: &mut Config,
) -> std::collections::HashSet<String> {
    let mut names = std::collections::HashSet::new();
    for table in raw {
        // The name counts even when the channel is refused for another reason: the summary's
        // channels are checked against the names written.
        let name = table
            .get_ref()
            .get("name")
            .and_then(|v| Some((v.get_ref().as_str()?.to_string(), v.span().start)));
        if let Some((name, at)) = &name
            && !names.insert(name.clone())
        {
            p.at(*at, format!("channel.name: {name:?} is used twice"));
        }
        let mut t = Table::new(p.file, p.text, "channel", table, &mut p.errors);
        let line = t.line();
        let Some(ch) = ChannelConfig::read(&mut t) else {
            continue;
        };
        t.finish(&format!("a {} channel", ch.kind.name()));
        cfg.lines.channels.push(line);
        cfg.channels.push(ch);
    }
    names
}
