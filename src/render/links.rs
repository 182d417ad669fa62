//! One-click links in alerts (issue 17): Ack, Snooze 1 h, "Fixed by #N", "Tried #N: no
//! effect". Each is a URL to the status server's public address carrying the incident, the
//! action and an expiry, signed with HMAC-SHA256 under a key only the daemon holds: a link
//! cannot be made for another incident or action, or kept alive past its expiry. Following one
//! shows a confirmation page; only its button (a POST) acts, so a mail system's link scanner
//! never votes. Each link works once (the state keeps the signatures used).

use crate::engine::kb::evidence::{Item, Verdict};

/// How long a link works, unless configured: a week of on-call rotations.
pub const DEFAULT_TTL_SECS: u64 = 7 * 24 * 3600;

/// How long the Snooze link silences the incident.
pub const SNOOZE_SECS: u32 = 3600;

/// What a link does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Acknowledge: no more reminders about the incident.
    Ack,
    /// Silence the incident (it alone) for a while.
    Snooze { secs: u32 },
    /// A verdict on one of the entry's items.
    Verdict { item: Item, verdict: Verdict },
}

impl Action {
    /// The action as the link carries it: `ack`, `snooze:3600`, `fixed:workaround:2`.
    pub fn code(&self) -> String {
        match self {
            Action::Ack => "ack".into(),
            Action::Snooze { secs } => format!("snooze:{secs}"),
            Action::Verdict { item, verdict } => format!("{}:{}", verdict.as_str(), item.name()),
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        if s == "ack" {
            return Some(Action::Ack);
        }
        if let Some(secs) = s.strip_prefix("snooze:") {
            let secs: u32 = secs.parse().ok().filter(|&s| s > 0 && s <= 7 * 86_400)?;
            return Some(Action::Snooze { secs });
        }
        let (verdict, item) = s.split_once(':')?;
        let verdict = Verdict::from_name(verdict)
            .filter(|v| matches!(v, Verdict::Fixed | Verdict::NoEffect))?;
        Some(Action::Verdict {
            item: Item::parse(item)?,
            verdict,
        })
    }
}

/// Why a link is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the link is incomplete or damaged")]
    Malformed,
    #[error("the link's signature does not match: it was altered, or not made by this gatewatch")]
    Forged,
    #[error("the link has expired")]
    Expired,
}

/// Makes and checks links.
#[derive(Clone)]
pub struct Signer {
    key: aws_lc_rs::hmac::Key,
    /// The status server's public address, without a trailing `/`.
    base: String,
    ttl_secs: u64,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Signer")
            .field("base", &self.base)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

/// The bytes of a signature kept in a link (128 bits).
const SIG_BYTES: usize = 16;

impl Signer {
    pub fn new(secret: &[u8], public_url: &str, ttl_secs: u64) -> Signer {
        Signer {
            key: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret),
            base: public_url.trim_end_matches('/').to_string(),
            ttl_secs,
        }
    }

    fn sign(&self, incident: &str, action: &str, expires: i64) -> String {
        let text = format!("gatewatch link 1\n{incident}\n{action}\n{expires}");
        let tag = aws_lc_rs::hmac::sign(&self.key, text.as_bytes());
        hex(&tag.as_ref()[..SIG_BYTES])
    }

    /// The link for `action` on `incident`, made at `now_ms`.
    pub fn link(&self, incident: &str, action: &Action, now_ms: i64) -> String {
        let expires = now_ms.div_euclid(1000) + self.ttl_secs as i64;
        let code = action.code();
        let sig = self.sign(incident, &code, expires);
        format!(
            "{}/act?i={incident}&a={code}&x={expires}&s={sig}",
            self.base
        )
    }

    /// Checks a link's fields; the action it carries when it is genuine and not expired.
    pub fn verify(&self, l: &LinkFields, now_ms: i64) -> Result<Action, Refused> {
        let expires: i64 = l.x.parse().map_err(|_| Refused::Malformed)?;
        if l.i.is_empty() || l.i.len() > 64 || l.s.len() != 2 * SIG_BYTES {
            return Err(Refused::Malformed);
        }
        let want = self.sign(&l.i, &l.a, expires);
        // Constant time: the comparison must not tell a forger how much of a guess was right.
        let same = want
            .bytes()
            .zip(l.s.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if !same {
            return Err(Refused::Forged);
        }
        if now_ms.div_euclid(1000) >= expires {
            return Err(Refused::Expired);
        }
        Action::parse(&l.a).ok_or(Refused::Malformed)
    }
}

/// A link's query fields, as followed.
#[derive(Clone, Debug, Default, serde::Deserialize, serde::Serialize)]
pub struct LinkFields {
    #[serde(default)]
    pub i: String,
    #[serde(default)]
    pub a: String,
    #[serde(default)]
    pub x: String,
    #[serde(default)]
    pub s: String,
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(url: &str) -> LinkFields {
        let q = url.split_once('?').unwrap().1;
        let mut f = LinkFields::default();
        for kv in q.split('&') {
            let (k, v) = kv.split_once('=').unwrap();
            let v = v.to_string();
            match k {
                "i" => f.i = v,
                "a" => f.a = v,
                "x" => f.x = v,
                "s" => f.s = v,
                _ => panic!("{k}"),
            }
        }
        f
    }

    #[test]
    fn a_link_works_until_it_expires_and_only_as_made() {
        let s = Signer::new(b"a key of the daemon", "https://gw.example.com/", 3600);
        let fixed = Action::Verdict {
            item: Item::Workaround(2),
            verdict: Verdict::Fixed,
        };
        let url = s.link("gw-00000000000000ab", &fixed, 1_000_000);
        assert!(
            url.starts_with(
                "https://gw.example.com/act?i=gw-00000000000000ab&a=fixed:workaround:2&x=4600&s="
            ),
            "{url}"
        );
        let f = fields(&url);
        assert_eq!(s.verify(&f, 1_000_000), Ok(fixed));
        assert_eq!(s.verify(&f, 4_599_999), Ok(fixed));
        assert_eq!(s.verify(&f, 4_600_000), Err(Refused::Expired));
        // Another incident, another action, a later expiry, another key: forged.
        for altered in [
            LinkFields {
                i: "gw-00000000000000ac".into(),
                ..f.clone()
            },
            LinkFields {
                a: "fixed:workaround:1".into(),
                ..f.clone()
            },
            LinkFields {
                x: "99999999".into(),
                ..f.clone()
            },
        ] {
            assert_eq!(s.verify(&altered, 1_000_000), Err(Refused::Forged));
        }
        let other = Signer::new(b"another key", "https://gw.example.com", 3600);
        assert_eq!(other.verify(&f, 1_000_000), Err(Refused::Forged));
        assert_eq!(
            s.verify(
                &LinkFields {
                    s: "zz".into(),
                    ..f.clone()
                },
                1
            ),
            Err(Refused::Malformed)
        );
        assert_eq!(s.verify(&LinkFields::default(), 1), Err(Refused::Malformed));
        // One spelling only: an upper-case signature is another link (each works once).
        let upper = LinkFields {
            s: f.s.to_ascii_uppercase(),
            ..f.clone()
        };
        if upper.s != f.s {
            assert_eq!(s.verify(&upper, 1_000_000), Err(Refused::Forged));
        }
    }

    #[test]
    fn actions_round_trip_and_nothing_else_parses() {
        for a in [
            Action::Ack,
            Action::Snooze { secs: 3600 },
            Action::Verdict {
                item: Item::Workaround(1),
                verdict: Verdict::NoEffect,
            },
            Action::Verdict {
                item: Item::DeadEnd(2),
                verdict: Verdict::NoEffect,
            },
        ] {
            assert_eq!(Action::parse(&a.code()), Some(a));
        }
        for bad in [
            "",
            "ack:1",
            "snooze:0",
            "snooze:x",
            "followed:workaround:1",
            "not_tried:workaround:1",
            "fixed:workaround:0",
            "fixed",
        ] {
            assert_eq!(Action::parse(bad), None, "{bad}");
        }
    }
}
