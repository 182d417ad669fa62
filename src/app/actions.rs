//! The one-click links of alerts, served by the status server (`/act`, with `[http]
//! public_url`): following a link (GET) shows what it will record and a button; only the
//! button (a POST) acts, so the link scanners of mail systems never vote. Forged, altered,
//! expired and used links are refused with a page that says which.

use crate::app::daemon::status::Status;
use crate::engine::kb::evidence::{Item, Verdict};
use crate::render::alert::html_escape;
use crate::render::links::{Action, LinkFields, Refused, Signer};
use crate::store::outcomes::Acted;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What `/act` needs.
pub struct Actions {
    pub status: Arc<Mutex<Status>>,
}

impl Actions {
    /// The signer in use now (a reload may change it).
    fn signer(&self) -> Option<Signer> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .links
            .clone()
    }

    /// The folder of the state in use (the configured one, or the fallback).
    fn state_dir(&self) -> Option<PathBuf> {
        let st = self.status.lock().unwrap_or_else(|e| e.into_inner());
        st.state_path
            .as_deref()
            .and_then(|p| p.parent())
            .map(|p| p.to_path_buf())
    }
}

type Shared = Arc<Actions>;

fn page(code: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <meta name=\"robots\" content=\"noindex\"><title>gatewatch: {t}</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em}}\
         button{{font-size:1.1em;padding:.5em 1.5em}}</style></head>\
         <body><h1>{t}</h1>\n{body}\n</body></html>\n",
        t = html_escape(title)
    );
    (
        code,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Neither cached nor framed: the page acts.
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        html,
    )
        .into_response()
}

fn refused(r: Refused) -> Response {
    match r {
        Refused::Expired => page(
            StatusCode::GONE,
            "This link has expired",
            "<p>Links in alerts work for a limited time. Use the command line instead: \
             <code>gatewatch incident list</code>, then <code>gatewatch incident resolve KEY --fixed-by N</code>.</p>",
        ),
        Refused::Forged | Refused::Malformed => page(
            StatusCode::FORBIDDEN,
            "This link is not valid",
            &format!(
                "<p>{}. Nothing was recorded. Use the link exactly as the alert gave it.</p>",
                html_escape(&r.to_string())
            ),
        ),
    }
}

/// What an action will do, in words, for the confirmation page.
fn describe(st: &Status, entry: &str, action: &Action) -> String {
    let workaround = |n: usize| -> String {
        st.kb
            .as_ref()
            .and_then(|kb| Some(kb.get(kb.find(entry)?)))
            .and_then(|e| e.workarounds.get(n.wrapping_sub(1)))
            .map(|w| format!(": {}", w.render(crate::engine::kb::Lang::En, None)))
            .unwrap_or_default()
    };
    match action {
        Action::Ack => "Acknowledge it: no more reminders until it ends.".into(),
        Action::Snooze { secs } => format!(
            "Snooze it for {}: no reminders until then.",
            humantime::format_duration(std::time::Duration::from_secs(u64::from(*secs)))
        ),
        Action::Verdict {
            item: Item::Workaround(n),
            verdict: Verdict::Fixed,
        } => format!("Record that workaround #{n} fixed it{}", workaround(*n)),
        Action::Verdict {
            item: Item::Workaround(n),
            ..
        } => format!(
            "Record that workaround #{n} was tried without effect{}",
            workaround(*n)
        ),
        Action::Verdict { item, verdict } => {
            format!("Record {} as {}.", item.name(), verdict.as_str())
        }
    }
}

/// The incident a link names, as the state holds it (read-only), and when the link was used
/// if it was.
fn incident(
    dir: &std::path::Path,
    key: &str,
    sig: &str,
) -> anyhow::Result<(Option<crate::render::summary::Inc>, Option<i64>)> {
    match crate::store::State::open_read_only(dir)? {
        Some(state) => Ok((state.incident(key)?, state.link_used(sig)?)),
        None => Ok((None, None)),
    }
}

fn used() -> Response {
    page(
        StatusCode::CONFLICT,
        "This link was used already",
        "<p>Each link works once, and this one was followed before. Nothing more was recorded.</p>",
    )
}

fn hidden(f: &LinkFields) -> String {
    [("i", &f.i), ("a", &f.a), ("x", &f.x), ("s", &f.s)]
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                html_escape(v)
            )
        })
        .collect()
}

/// GET: the confirmation page (nothing is recorded).
fn off() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Links are off",
        "<p>This gatewatch makes no one-click links now (<code>[http] public_url</code> is not set, or its key cannot be read). Use the command line: <code>gatewatch incident list</code>.</p>",
    )
}

async fn confirm(State(a): State<Shared>, Query(f): Query<LinkFields>) -> Response {
    let Some(signer) = a.signer() else {
        return off();
    };
    let action = match signer.verify(&f, crate::clock::now_ms()) {
        Ok(action) => action,
        Err(r) => return refused(r),
    };
    let Some(dir) = a.state_dir() else {
        return unavailable("the daemon has no state yet");
    };
    let (key, sig) = (f.i.clone(), f.s.clone());
    let found = tokio::task::spawn_blocking(move || incident(&dir, &key, &sig)).await;
    let inc = match found {
        Ok(Ok((_, Some(_)))) => return used(),
        Ok(Ok((Some(inc), None))) => inc,
        Ok(Ok((None, None))) => {
            return page(
                StatusCode::NOT_FOUND,
                "No such incident",
                "<p>The state holds no incident of this link (it was cleared, or belongs to another gatewatch).</p>",
            );
        }
        Ok(Err(e)) => return unavailable(&format!("{e:#}")),
        Err(e) => return unavailable(&e.to_string()),
    };
    if inc.closed_ms.is_some() && matches!(action, Action::Ack | Action::Snooze { .. }) {
        return ended();
    }
    let st = a.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let what = describe(&st, &inc.entry, &action);
    let body = format!(
        "<p>Incident <code>{key}</code>: {cause} at upstream <code>{up}</code> ({state}).</p>\
         <p><b>{what}</b></p>\
         <form method=\"post\" action=\"act\">{hidden}<button type=\"submit\">Confirm</button></form>",
        key = html_escape(&inc.key),
        cause = html_escape(inc.cause.as_str()),
        up = html_escape(&crate::render::report::printable(&inc.upstream)),
        state = if inc.closed_ms.is_some() {
            "ended"
        } else {
            "open"
        },
        what = html_escape(&what),
        hidden = hidden(&f),
    );
    page(StatusCode::OK, "Confirm", &body)
}

fn ended() -> Response {
    page(
        StatusCode::CONFLICT,
        "The incident has ended",
        "<p>There is nothing to acknowledge or snooze any more. The resolved note's links say what fixed it.</p>",
    )
}

fn unavailable(e: &str) -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Not recorded",
        &format!(
            "<p>The state cannot be read or written now ({}). Try again in a minute.</p>",
            html_escape(e)
        ),
    )
}

/// POST: acts, once.
async fn act(State(a): State<Shared>, Form(f): Form<LinkFields>) -> Response {
    let now = crate::clock::now_ms();
    let Some(signer) = a.signer() else {
        return off();
    };
    let action = match signer.verify(&f, now) {
        Ok(action) => action,
        Err(r) => return refused(r),
    };
    let Some(dir) = a.state_dir() else {
        return unavailable("the daemon has no state yet");
    };
    let f2 = f.clone();
    let done = tokio::task::spawn_blocking(move || -> anyhow::Result<Acted> {
        let mut state = crate::store::State::connect(&dir)?;
        state.act(&f2.i, &action, "link", "link", Some(&f2.s), now)
    })
    .await;
    match done {
        Ok(Ok(Acted::Done(what))) => {
            crate::log!(
                Info,
                "an alert's link was followed",
                incident = f.i,
                action = f.a
            );
            page(
                StatusCode::OK,
                "Recorded",
                &format!(
                    "<p>{}</p><p>Thank you: what fixed each incident ranks the advice of the next.</p>",
                    html_escape(&what)
                ),
            )
        }
        Ok(Ok(Acted::Used)) => used(),
        Ok(Ok(Acted::NoIncident)) => page(
            StatusCode::NOT_FOUND,
            "No such incident",
            "<p>The state holds no incident of this link.</p>",
        ),
        Ok(Ok(Acted::Ended)) => ended(),
        Ok(Err(e)) => unavailable(&format!("{e:#}")),
        Err(e) => unavailable(&e.to_string()),
    }
}

/// The routes, to merge into the status server.
pub fn routes(actions: Actions) -> axum::Router {
    axum::Router::new()
        .route("/act", axum::routing::get(confirm).post(act))
        .with_state(Arc::new(actions))
}
