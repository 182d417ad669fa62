//! Format recognition from a file's first lines, then parsing those lines with the parser it
//! chose: the chosen parser understands at least one of them, as recognition counted.
#![no_main]

use gatewatch::engine::parse::detect;
use gatewatch_fuzz::{lines, options, parse_checked, zones};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let samples = lines(data);
    let opts = options(zones().swap_remove(2));
    let Some(mut parser) = detect(&samples, &opts) else {
        return;
    };
    let _ = parser.describe();
    let parsed = samples
        .iter()
        .filter(|l| parse_checked(&mut parser, l).is_ok())
        .count();
    assert!(
        parsed > 0,
        "detect chose {} but it parses none of the samples",
        parser.describe()
    );
});
