//! The pattern (knowledge-base) loader on arbitrary text: an entry or `file:line: message`
//! errors, never a panic. The file is named after the `id = "…"` the text declares, so entries
//! get past the id check and on to their regexes, examples and near-misses.
#![no_main]

use gatewatch::engine::event::Format;
use gatewatch::engine::kb::{Kb, Source};
use libfuzzer_sys::fuzz_target;

/// The value of the first `id = "…"` line, if any.
fn declared_id(text: &str) -> Option<&str> {
    text.lines().find_map(|l| {
        let v = l
            .trim()
            .strip_prefix("id")?
            .trim_start()
            .strip_prefix('=')?;
        let v = v.trim().strip_prefix('"')?;
        Some(&v[..v.find('"')?])
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let id = declared_id(text).unwrap_or("fuzz/entry");
    let src = Source {
        file: format!("patterns/{id}.toml"),
        rel: format!("{id}.toml"),
        text: text.to_string().into(),
    };
    // The built-in base's way (the `[match]` table at load, the rest when asked for) never
    // panics; it may load a file the whole way refuses (its entry then says it did not load).
    let built = Kb::load_built(std::slice::from_ref(&src));
    if let Ok(kb) = &built {
        for e in kb.entries() {
            let _ = kb.find(&e.id);
        }
    }
    match Kb::load(std::slice::from_ref(&src)) {
        Ok(kb) => {
            // A file the whole way loads, the built-in way loads and matches alike.
            let built = built.expect("a file Kb::load loads, Kb::load_built loads");
            assert_eq!(kb.ids().collect::<Vec<_>>(), built.ids().collect::<Vec<_>>());
            for e in kb.entries() {
                let _ = kb.find(&e.id);
                let lines = e.examples.iter().chain(&e.near_misses).map(|x| x.line.as_bytes());
                let lines: Vec<&[u8]> = lines.chain([&b""[..]]).collect();
                let statuses = e.statuses.iter().map(|&s| Some(s)).chain([None, Some(502)]);
                for s in statuses {
                    for &c in &e.causes {
                        for &f in Format::ALL.iter() {
                            for line in &lines {
                                assert_eq!(
                                    kb.match_event(c, s, f, line),
                                    built.match_event(c, s, f, line),
                                    "{c:?} {s:?} {f:?}"
                                );
                            }
                        }
                    }
                }
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "an error without a message");
            let lines = text.split('\n').count();
            for e in &errors {
                assert!(e.line <= lines, "line {} of {lines}: {e}", e.line);
                let _ = e.to_string();
            }
        }
    }
});
