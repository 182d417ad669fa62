//! The daemon's HTTP endpoint (`[http] listen`, off by default): `/health` for a load balancer
//! or a monitoring check, `/metrics` in Prometheus's text format, the status page `/` and its
//! JSON `/api/incidents`.

use crate::app::daemon::status::Status;
use crate::engine::event::Cause;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

type Shared = Arc<Mutex<Status>>;

/// The status page as it stands: the daemon's status, and the state read (read-only) for the
/// incidents that ended and the chart.
fn page(st: &Status) -> crate::render::page::Page {
    let now = SystemTime::now();
    let tally = st.tally();
    let input = crate::render::page::Input {
        host: &st.host,
        problem: st.problem(now),
        kb: st.kb.as_deref(),
        open: &st.open_incidents,
        sources: &st.files,
        channels: &tally.alerts,
        outbox_depth: tally.outbox_depth,
        now_ms: now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64),
    };
    let state = st
        .state_path
        .as_deref()
        .and_then(|p| p.parent())
        .map(crate::store::State::open_read_only)
        .transpose()
        .map(Option::flatten);
    match state {
        Ok(Some(state)) => crate::render::page::build(&input, Ok(Some(state.conn()))),
        Ok(None) => crate::render::page::build::<rusqlite::Connection>(&input, Ok(None)),
        Err(e) => crate::render::page::build::<rusqlite::Connection>(&input, Err(e)),
    }
}

fn snapshot(s: &Shared) -> Status {
    s.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

async fn health(State(s): State<Shared>) -> impl IntoResponse {
    match snapshot(&s).problem(SystemTime::now()) {
        None => (StatusCode::OK, "ok\n".to_string()),
        Some(p) => (StatusCode::SERVICE_UNAVAILABLE, format!("{p}\n")),
    }
}

/// Escapes a label value for the text format.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn secs(t: Option<SystemTime>) -> f64 {
    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A metric's HELP and TYPE lines.
fn head(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The metrics in Prometheus's text exposition format.
pub fn metrics_text(st: &Status) -> String {
    let mut out = String::with_capacity(4096);
    head(
        &mut out,
        "gatewatch_lines_total",
        "counter",
        "Lines read, per file.",
    );
    for f in &st.files {
        let _ = writeln!(
            out,
            "gatewatch_lines_total{{file=\"{}\"}} {}",
            label(&f.path),
            f.lines
        );
    }
    head(
        &mut out,
        "gatewatch_overlong_lines_total",
        "counter",
        "Lines longer than the limit (64 KiB), skipped, per file.",
    );
    for f in &st.files {
        let _ = writeln!(
            out,
            "gatewatch_overlong_lines_total{{file=\"{}\"}} {}",
            label(&f.path),
            f.too_long
        );
    }
    head(
        &mut out,
        "gatewatch_unparsed_lines_total",
        "counter",
        "Lines that did not parse (or were too long), per file.",
    );
    for f in &st.files {
        let _ = writeln!(
            out,
            "gatewatch_unparsed_lines_total{{file=\"{}\"}} {}",
            label(&f.path),
            f.unparsed
        );
    }
    head(
        &mut out,
        "gatewatch_format_drift",
        "gauge",
        "1 while most of a file's latest lines do not parse (the format-drift alarm is open).",
    );
    for f in &st.files {
        let _ = writeln!(
            out,
            "gatewatch_format_drift{{file=\"{}\"}} {}",
            label(&f.path),
            u8::from(f.drift)
        );
    }
    head(
        &mut out,
        "gatewatch_read_lag_bytes",
        "gauge",
        "Bytes written to a file but not read yet.",
    );
    for f in &st.files {
        let _ = writeln!(
            out,
            "gatewatch_read_lag_bytes{{file=\"{}\"}} {}",
            label(&f.path),
            f.lag_bytes
        );
    }
    kafka_metrics(&mut out, &st.files);
    head(
        &mut out,
        "gatewatch_events_total",
        "counter",
        "Parsed lines per cause.",
    );
    for c in Cause::ALL {
        let _ = writeln!(
            out,
            "gatewatch_events_total{{cause=\"{}\"}} {}",
            c,
            st.causes[c.index()]
        );
    }
    head(
        &mut out,
        "gatewatch_incidents_open",
        "gauge",
        "Incidents open now.",
    );
    let _ = writeln!(out, "gatewatch_incidents_open {}", st.open_incidents.len());
    head(
        &mut out,
        "gatewatch_incidents_opened_total",
        "counter",
        "Incidents opened since start.",
    );
    let _ = writeln!(
        out,
        "gatewatch_incidents_opened_total {}",
        st.incidents_opened
    );
    head(
        &mut out,
        "gatewatch_incidents_closed_total",
        "counter",
        "Incidents closed since start.",
    );
    let _ = writeln!(
        out,
        "gatewatch_incidents_closed_total {}",
        st.incidents_closed
    );
    head(
        &mut out,
        "gatewatch_alerts_sent_total",
        "counter",
        "Alerts delivered, per channel.",
    );
    let tally = st.tally();
    for (ch, (sent, _)) in &tally.alerts {
        let _ = writeln!(
            out,
            "gatewatch_alerts_sent_total{{channel=\"{}\"}} {sent}",
            label(ch)
        );
    }
    head(
        &mut out,
        "gatewatch_alerts_failed_total",
        "counter",
        "Alert deliveries that failed, per channel.",
    );
    for (ch, (_, failed)) in &tally.alerts {
        let _ = writeln!(
            out,
            "gatewatch_alerts_failed_total{{channel=\"{}\"}} {failed}",
            label(ch)
        );
    }
    head(
        &mut out,
        "gatewatch_outbox_depth",
        "gauge",
        "Alerts waiting for delivery.",
    );
    let _ = writeln!(out, "gatewatch_outbox_depth {}", tally.outbox_depth);
    head(
        &mut out,
        "gatewatch_checkpoint_timestamp_seconds",
        "gauge",
        "When reading positions were last saved.",
    );
    let _ = writeln!(
        out,
        "gatewatch_checkpoint_timestamp_seconds {:.3}",
        secs(st.commit_at)
    );
    head(
        &mut out,
        "gatewatch_upstreams_tracked",
        "gauge",
        "Upstreams whose windows are kept in memory.",
    );
    let _ = writeln!(out, "gatewatch_upstreams_tracked {}", st.upstreams_tracked);
    head(
        &mut out,
        "gatewatch_upstreams_evicted_total",
        "counter",
        "Idle upstreams evicted to keep memory bounded.",
    );
    let _ = writeln!(
        out,
        "gatewatch_upstreams_evicted_total {}",
        st.upstreams_evicted
    );
    head(
        &mut out,
        "gatewatch_upstreams_pooled_lines_total",
        "counter",
        "Lines counted under upstream \"(other)\" in the stored counters: their hour already had [detect] max_upstreams distinct ones.",
    );
    let _ = writeln!(
        out,
        "gatewatch_upstreams_pooled_lines_total {}",
        st.upstreams_pooled_lines
    );
    head(
        &mut out,
        "gatewatch_late_events_total",
        "counter",
        "Lines older than their window when read.",
    );
    let _ = writeln!(out, "gatewatch_late_events_total {}", st.late_events);
    head(
        &mut out,
        "gatewatch_up",
        "gauge",
        "1 while following the logs works, else 0 (see /health).",
    );
    let _ = writeln!(
        out,
        "gatewatch_up {}",
        u8::from(st.problem(SystemTime::now()).is_none())
    );
    head(
        &mut out,
        "gatewatch_start_time_seconds",
        "gauge",
        "When the daemon started.",
    );
    let _ = writeln!(
        out,
        "gatewatch_start_time_seconds {:.3}",
        secs(st.started_at)
    );
    out
}

async fn metrics(State(s): State<Shared>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics_text(&snapshot(&s)),
    )
}

async fn status_page(State(s): State<Shared>) -> impl IntoResponse {
    let st = snapshot(&s);
    let html = tokio::task::spawn_blocking(move || crate::render::page::html(&page(&st))).await;
    match html {
        Ok(Ok(h)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            h,
        ),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{e:#}\n"),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{e}\n"),
        ),
    }
}

async fn api_incidents(State(s): State<Shared>) -> impl IntoResponse {
    let st = snapshot(&s);
    let page = tokio::task::spawn_blocking(move || page(&st)).await.ok();
    (
        [(header::CONTENT_TYPE, "application/json")],
        page.map_or_else(
            || "{}".to_string(),
            |p| serde_json::to_string(&p).unwrap_or_default(),
        ),
    )
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    status: Shared,
    actions: Option<crate::app::actions::Actions>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut app = Router::new()
        .route("/", get(status_page))
        .route("/api/incidents", get(api_incidents))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(status);
    if let Some(a) = actions {
        app = app.merge(crate::app::actions::routes(a));
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

/// Binds the endpoint; a non-loopback address is allowed but logged loudly, since the metrics
/// name upstreams and files.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    if !addr.ip().is_loopback() {
        crate::log!(
            Warn,
            "the HTTP endpoint listens beyond loopback; anyone who can reach it reads upstream names and files",
            listen = addr
        );
    }
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("[http] listen = {addr}: {e}"))
}

/// A Kafka source's partitions: assigned ones, their lag, and the group's rebalances.
fn kafka_metrics(out: &mut String, files: &[crate::render::page::FileStatus]) {
    let kafka: Vec<(&str, &crate::source::KafkaStatus)> = files
        .iter()
        .filter_map(|f| f.kafka.as_ref().map(|k| (f.path.as_str(), k)))
        .collect();
    if kafka.is_empty() {
        return;
    }
    head(
        out,
        "gatewatch_kafka_assigned_partitions",
        "gauge",
        "Partitions of a Kafka source assigned to this instance by its consumer group.",
    );
    for (name, k) in &kafka {
        let _ = writeln!(
            out,
            "gatewatch_kafka_assigned_partitions{{source=\"{}\"}} {}",
            label(name),
            k.partitions.len()
        );
    }
    head(
        out,
        "gatewatch_kafka_rebalances_total",
        "counter",
        "Assignments this instance received from its consumer group.",
    );
    for (name, k) in &kafka {
        let _ = writeln!(
            out,
            "gatewatch_kafka_rebalances_total{{source=\"{}\"}} {}",
            label(name),
            k.rebalances
        );
    }
    head(
        out,
        "gatewatch_kafka_consumer_lag",
        "gauge",
        "Messages in an assigned partition not read yet (from the consumer's statistics, every 5 s).",
    );
    for (name, k) in &kafka {
        for p in &k.partitions {
            if let Some(lag) = p.lag {
                let _ = writeln!(
                    out,
                    "gatewatch_kafka_consumer_lag{{source=\"{}\",partition=\"{}\"}} {lag}",
                    label(name),
                    p.partition
                );
            }
        }
    }
}
