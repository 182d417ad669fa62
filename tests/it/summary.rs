//! The daily summary: the report of a fixed day of logs pinned as snapshots (text, HTML,
//! JSON; English and Chinese), and the same report read from the daemon's state.

use super::alerts::snapshot;
use super::*;

fn scan_summary(format: &str, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gw.toml");
    std::fs::write(&cfg, "[alerts]\nhost = \"proxy-1\"\n").unwrap();
    let access = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/logs/access.log.gz");
    let error = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/logs/error.log");
    let mut args = vec![
        "scan".to_string(),
        "--config".into(),
        cfg.display().to_string(),
        format!("--summary={format}"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(access.display().to_string());
    args.push(error.display().to_string());
    let o = gatewatch().args(&args).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn the_summary_of_a_day_of_logs_matches_its_snapshots() {
    let utc = ["--timezone", "UTC"];
    snapshot("summary.txt", &scan_summary("text", &utc));
    snapshot("summary.html", &scan_summary("html", &utc));
    snapshot("summary.json", &scan_summary("json", &utc));
    snapshot(
        "summary.zh.txt",
        &scan_summary("text", &["--timezone", "UTC", "--lang", "zh"]),
    );
}

#[test]
fn the_summary_counts_requests_failures_and_incidents_of_its_day_only() {
    let r: serde_json::Value =
        serde_json::from_str(&scan_summary("json", &["--timezone", "UTC"])).unwrap();
    assert_eq!(r["date"], "2024-05-01");
    assert_eq!(r["host"], "proxy-1");
    // Requests are access-log lines; the error log's 446 lines explain failures, they are not
    // requests of their own.
    assert_eq!(r["day"]["requests"], 9600);
    assert_eq!(r["day"]["failures"], 458);
    assert_eq!(r["day"]["incidents"], 1);
    assert_eq!(r["causes"][0]["cause"], "upstream_unreachable");
    assert_eq!(r["causes"][0]["count"], 446);
    assert_eq!(r["hours"].as_array().unwrap().len(), 24);
    assert_eq!(r["hours"][12]["failures"], 458, "all at noon UTC");
    assert_eq!(r["upstreams"][0]["upstream"], "10.0.1.5:8080");
    assert_eq!(r["incidents"][0]["ended"], "resolved");
    let step = r["entries"][0]["first_step"].as_str().unwrap();
    assert!(
        step.contains("curl -I http://10.0.1.5:8080/health"),
        "{step}"
    );
    // In Tokyo (+09:00) noon UTC is 21:00 of the same day.
    let r: serde_json::Value =
        serde_json::from_str(&scan_summary("json", &["--timezone", "Asia/Tokyo"])).unwrap();
    assert_eq!(r["hours"][21]["failures"], 458);
    // Another day has the traffic as its day before.
    let r: serde_json::Value = serde_json::from_str(&scan_summary(
        "json",
        &["--timezone", "UTC", "--date", "2024-05-02"],
    ))
    .unwrap();
    assert_eq!(r["day"]["requests"], 0);
    assert_eq!(r["day_before"]["requests"], 9600);
    assert_eq!(r["week_avg"]["requests"], 1371, "9,600 over 7 days");
    assert!(r["incidents"].as_array().unwrap().is_empty());
}

/// Decodes a PNG as far as a mail client must: signature, chunk CRCs, the header, and the
/// zlib image data; returns (width, height, RGB rows without filter bytes).
fn decode_png(png: &[u8]) -> (u32, u32, Vec<u8>) {
    use std::io::Read;
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let crc = |data: &[u8]| {
        let mut c = !0u32;
        for &b in data {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    };
    let (mut at, mut w, mut h, mut idat) = (8, 0, 0, Vec::new());
    while at < png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        let kind = &png[at + 4..at + 8];
        let data = &png[at + 8..at + 8 + len];
        let want = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
        assert_eq!(crc(&png[at + 4..at + 8 + len]), want, "CRC of {kind:?}");
        match kind {
            b"IHDR" => {
                w = u32::from_be_bytes(data[0..4].try_into().unwrap());
                h = u32::from_be_bytes(data[4..8].try_into().unwrap());
                assert_eq!(&data[8..10], &[8, 2], "8-bit RGB");
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        at += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    assert_eq!(
        raw.len(),
        (h * (1 + 3 * w)) as usize,
        "one filter byte and w pixels a row"
    );
    let rgb = raw
        .chunks((1 + 3 * w) as usize)
        .flat_map(|row| row[1..].to_vec())
        .collect();
    (w, h, rgb)
}

#[test]
fn the_chart_is_a_png_of_the_expected_size_with_the_noon_burst_in_red() {
    let r: gatewatch::render::summary::Report =
        serde_json::from_str(&scan_summary("json", &["--timezone", "UTC"])).unwrap();
    let png = gatewatch::render::chart::hourly_png(&r);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("summary-chart.png"), &png).unwrap();
    let (w, h, rgb) = decode_png(&png);
    assert_eq!((w, h), (720, 240));
    let px = |x: u32, y: u32| {
        let i = ((y * w + x) * 3) as usize;
        [rgb[i], rgb[i + 1], rgb[i + 2]]
    };
    let red = gatewatch::render::summary::color("upstream_unreachable");
    // Hour 12 of 24 over the plot area (48 … 712): its bar is red near the bottom; hour 6 is
    // empty.
    let slot = (712 - 48) / 24;
    let column = |hour: u32| 48 + hour * slot + slot / 2;
    assert_eq!(px(column(12), 200), red);
    assert_eq!(px(column(6), 200), [255, 255, 255]);
}
