//! What this installation learned about an entry's advice (issue 17): each workaround's local
//! record (tried, fixed) turned into an estimate that starts at the knowledge base's own rate and
//! moves towards what happened here, and the order the runbook is shown in.
//!
//! The estimate is Beta-binomial: the entry's rate is the prior mean, with the weight of its
//! `evidence_count` incidents (halved when the entry is AI-generated: its rates are guesses),
//! and each local trial adds one observation. A workaround keeps its knowledge-base place until
//! it has been tried [`MIN_TRIALS`] times here (one vote never reorders a runbook), and then
//! moves only when the credible interval of its estimate leaves its knowledge-base rate.

use super::Entry;

/// Local trials a workaround needs before its local record may move it in the runbook.
pub const MIN_TRIALS: u32 = 5;

/// How far below the mean the ranking bound is, in standard deviations (a one-sided 90 %
/// bound under the normal approximation of the Beta distribution).
const Z: f64 = 1.2816;

/// What happened to one workaround (or dead end) at this installation: how many incidents
/// had it tried, and in how many it fixed the failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Local {
    pub tried: u32,
    pub fixed: u32,
    /// Incidents whose recovery followed it without anyone saying so (a reload, a server back
    /// up): each weighs [`IMPLICIT_WEIGHT`] of a fix, and none counts toward [`MIN_TRIALS`].
    pub followed: u32,
}

impl Local {
    pub fn new(tried: u32, fixed: u32) -> Local {
        Local {
            tried,
            fixed,
            followed: 0,
        }
    }
}

/// What one "recovery followed it" weighs, in incidents fixed.
pub const IMPLICIT_WEIGHT: f64 = 0.2;

/// What a workaround (or dead end) did in one incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It fixed the failure.
    Fixed,
    /// It was tried and changed nothing.
    NoEffect,
    /// It was not tried (takes back an earlier verdict).
    NotTried,
    /// Recovery followed it (seen in the logs, not said by a person): weak evidence that it
    /// fixed the failure, never counted as a fix on its own.
    Followed,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Fixed => "fixed",
            Verdict::NoEffect => "no_effect",
            Verdict::NotTried => "not_tried",
            Verdict::Followed => "followed",
        }
    }

    pub fn from_name(s: &str) -> Option<Verdict> {
        [
            Verdict::Fixed,
            Verdict::NoEffect,
            Verdict::NotTried,
            Verdict::Followed,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

/// An item of an entry's advice, by its place in the entry (1-based, as alerts number them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Item {
    Workaround(usize),
    DeadEnd(usize),
}

impl Item {
    pub fn name(self) -> String {
        match self {
            Item::Workaround(n) => format!("workaround:{n}"),
            Item::DeadEnd(n) => format!("dead_end:{n}"),
        }
    }

    pub fn parse(s: &str) -> Option<Item> {
        let (kind, n) = s.split_once(':')?;
        let n: usize = n.parse().ok().filter(|&n| n > 0)?;
        match kind {
            "workaround" => Some(Item::Workaround(n)),
            "dead_end" => Some(Item::DeadEnd(n)),
            _ => None,
        }
    }
}

/// A rate with the local evidence folded in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Estimate {
    /// The knowledge base's rate.
    pub kb: f64,
    /// The posterior mean.
    pub mean: f64,
    /// The credible interval's bounds.
    pub lower: f64,
    pub upper: f64,
    pub local: Local,
}

/// The weight of an entry's own rates, in incidents.
pub fn prior_weight(entry: &Entry) -> f64 {
    let w = f64::from(entry.evidence_count.max(1));
    if entry.ai_generated { w / 2.0 } else { w }
}

/// The estimate of a rate `kb` (success rate of a workaround) with `weight` incidents behind
/// it, after the local record.
pub fn estimate(kb: f64, weight: f64, local: Local) -> Estimate {
    let kb = kb.clamp(0.0, 1.0);
    let fixed = f64::from(local.fixed.min(local.tried));
    let failed = f64::from(local.tried) - fixed;
    let implicit = f64::from(local.followed) * IMPLICIT_WEIGHT;
    let a = kb * weight + fixed + implicit;
    let b = (1.0 - kb) * weight + failed;
    let n = a + b;
    let mean = if n > 0.0 { a / n } else { kb };
    let var = if n > 0.0 {
        a * b / (n * n * (n + 1.0))
    } else {
        0.0
    };
    Estimate {
        kb,
        mean,
        lower: (mean - Z * var.sqrt()).max(0.0),
        upper: (mean + Z * var.sqrt()).min(1.0),
        local,
    }
}

/// Each workaround of an entry with its estimate, in the order to show them: the knowledge
/// base's order, except that a workaround tried [`MIN_TRIALS`] times here whose credible
/// interval leaves its knowledge-base rate moves by the bound on that side (its lower bound
/// when it did better here than the rate says, its upper bound when worse) among the others'
/// rates. A record that agrees with the rate leaves it in place.
pub fn ranked(entry: &Entry, local: &[Local]) -> Vec<(usize, Estimate)> {
    let weight = prior_weight(entry);
    let mut out: Vec<(usize, Estimate)> = entry
        .workarounds
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let l = local.get(i).copied().unwrap_or_default();
            (i, estimate(w.success_rate, weight, l))
        })
        .collect();
    let score = |e: &Estimate| {
        if e.local.tried < MIN_TRIALS {
            e.kb
        } else if e.lower > e.kb {
            e.lower
        } else if e.upper < e.kb {
            e.upper
        } else {
            e.kb
        }
    };
    // Stable: equal scores keep the knowledge base's order.
    out.sort_by(|x, y| score(&y.1).total_cmp(&score(&x.1)));
    out
}

/// [`ranked`], from an entry's local record as the state keeps it (by item; `None`: nothing
/// known here).
pub fn ranked_here(
    entry: &Entry,
    record: Option<&std::collections::BTreeMap<Item, Local>>,
) -> Vec<(usize, Estimate)> {
    let local: Vec<Local> = (1..=entry.workarounds.len())
        .map(|n| {
            record
                .and_then(|r| r.get(&Item::Workaround(n)))
                .copied()
                .unwrap_or_default()
        })
        .collect();
    ranked(entry, &local)
}

/// How an estimate reads next to the workaround: `90 % (KB) · 3 of 4 here`.
pub fn describe(e: &Estimate) -> String {
    let kb = (e.kb * 100.0).round();
    match here(&e.local, super::Lang::En) {
        None => format!("{kb} % (KB)"),
        Some(h) => format!("{kb} % (KB) · {h}"),
    }
}

/// The local record in words, for a message beside the knowledge base's rate (`3 of 4 here`);
/// `None` when nothing happened here yet.
pub fn here(l: &Local, lang: super::Lang) -> Option<String> {
    let explicit = (l.tried > 0).then(|| match lang {
        super::Lang::En => format!("{} of {} here", l.fixed.min(l.tried), l.tried),
        super::Lang::Zh => format!("本地 {} 次中 {} 次有效", l.tried, l.fixed.min(l.tried)),
    });
    let implicit = (l.followed > 0).then(|| match lang {
        super::Lang::En => format!("recovery followed it {}×", l.followed),
        super::Lang::Zh => format!("其后恢复 {} 次", l.followed),
    });
    match (explicit, implicit) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x),
        (Some(x), Some(y)) => Some(format!("{x} · {y}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kb::{Text, Workaround};

    fn text() -> Text {
        Text {
            en: String::new(),
            zh: String::new(),
        }
    }

    fn entry(rates: &[f64], evidence: u32, ai: bool) -> Entry {
        Entry {
            id: "test/x".into(),
            file: String::new(),
            title: text(),
            category: "test".into(),
            kind: "network_error".into(),
            ai_generated: ai,
            fix_rate: 0.8,
            confidence: 0.8,
            evidence_count: evidence,
            first_seen: "2026-12-06".into(),
            docs: vec![],
            versions: vec![],
            root_cause_tag: None,
            root_cause: text(),
            workarounds: rates
                .iter()
                .map(|&r| Workaround {
                    success_rate: r,
                    text: text(),
                    command: None,
                    example: None,
                    seen_as: vec![],
                })
                .collect(),
            dead_ends: vec![],
            causes: vec![],
            statuses: vec![],
            formats: vec![],
            signatures: vec![],
            priority: 0,
            examples: vec![],
            near_misses: vec![],
        }
    }

    #[test]
    fn without_local_evidence_the_estimate_is_the_knowledge_bases() {
        let e = estimate(0.9, 1.0, Local::default());
        assert_eq!(e.mean, 0.9);
        assert!(e.lower < 0.9);
        assert_eq!(describe(&e), "90 % (KB)");
    }

    #[test]
    fn local_trials_move_the_estimate_and_ai_rates_weigh_half() {
        // An AI-generated entry with one incident behind it: weight 0.5.
        let w = prior_weight(&entry(&[0.9], 1, true));
        assert_eq!(w, 0.5);
        let e = estimate(0.9, w, Local::new(4, 1));
        // (0.45 + 1) / (0.5 + 4)
        assert!((e.mean - 1.45 / 4.5).abs() < 1e-9, "{e:?}");
        assert_eq!(describe(&e), "90 % (KB) · 1 of 4 here");
        // The same record weighs less against a measured rate of 50 incidents.
        let measured = estimate(0.9, 50.0, Local::new(4, 1));
        assert!(measured.mean > 0.8 && measured.mean < 0.9, "{measured:?}");
        // Fixed never counts more than tried.
        assert_eq!(estimate(0.5, 1.0, Local::new(1, 3)).mean, 0.75);
    }

    #[test]
    fn one_vote_never_reorders_the_runbook_enough_trials_do() {
        let e = entry(&[0.9, 0.85, 0.8], 1, true);
        let order = |local: &[Local]| -> Vec<usize> {
            ranked(&e, local).into_iter().map(|(i, _)| i).collect()
        };
        assert_eq!(order(&[]), [0, 1, 2]);
        // One incident: #1 did nothing, #3 fixed it.
        let one = [Local::new(1, 0), Local::default(), Local::new(1, 1)];
        assert_eq!(order(&one), [0, 1, 2]);
        // Below the threshold, however lopsided: unchanged.
        let four = [Local::new(4, 0), Local::default(), Local::new(4, 4)];
        assert_eq!(order(&four), [0, 1, 2]);
        // Six incidents each: #3 always worked, #1 never did.
        let six = [Local::new(6, 0), Local::default(), Local::new(6, 6)];
        assert_eq!(order(&six), [2, 1, 0]);
    }

    #[test]
    fn a_record_that_agrees_with_the_rate_never_demotes() {
        // A measured entry (20 incidents): #1 fixed all of its 5 incidents here; its lower
        // bound is below 90 %, but it did not do worse than the rate says.
        let e = entry(&[0.90, 0.87], 20, false);
        let five = [Local::new(5, 5), Local::default()];
        let got: Vec<usize> = ranked(&e, &five).into_iter().map(|(i, _)| i).collect();
        assert_eq!(got, [0, 1]);
    }
}
