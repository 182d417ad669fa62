//! The pattern (knowledge-base) loader on arbitrary text: an entry or `file:line: message`
//! errors, never a panic. The file is named after the `id = "…"` the text declares, so entries
//! get past the id check and on to their regexes, examples and near-misses.
#![no_main]

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
    // The built-in base's way (the `[match]` table at load, the rest when asked for): it
    // loads whatever the rest holds, or refuses as the whole way does, never panics.
    if let Ok(kb) = Kb::load_built(std::slice::from_ref(&src)) {
        for e in kb.entries() {
            let _ = kb.find(&e.id);
        }
    }
    match Kb::load(std::slice::from_ref(&src)) {
        Ok(kb) => {
            for e in kb.entries() {
                let _ = kb.find(&e.id);
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
