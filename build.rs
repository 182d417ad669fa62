//! Embeds the knowledge base (`patterns/**/*.toml`) into the binary, so gatewatch runs with a
//! complete knowledge base wherever it is copied. A folder given at run time replaces it.

use std::fs;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let patterns = root.join("patterns");
    println!("cargo:rerun-if-changed=patterns");
    let mut files = Vec::new();
    collect(&patterns, &mut files);
    files.sort();
    let mut code = String::from(
        "/// The pattern files built into the binary: (path below `patterns/`, text).\npub static EMBEDDED: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        let rel = f
            .strip_prefix(&patterns)
            .expect("below patterns")
            .to_string_lossy()
            .replace('\\', "/");
        code.push_str(&format!(
            "    ({rel:?}, include_str!({:?})),\n",
            f.to_string_lossy()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"))
        .join("embedded_patterns.rs");
    fs::write(out, code).expect("writing embedded_patterns.rs");
}
