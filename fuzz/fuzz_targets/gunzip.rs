//! The gzip decoder that writes into the line reader's buffer against flate2's
//! `MultiGzDecoder`: the same bytes where both decode, and never output where flate2 finds the
//! stream damaged. The first byte chooses the buffer's size and whether the rest is taken as a
//! gzip stream as it is, or compressed first and then damaged at one place (so the deep paths of
//! valid streams are reached).
#![no_main]

use gatewatch::engine::gunzip::{HISTORY, decode_all as ours};
use libfuzzer_sys::fuzz_target;
use std::io::{Read, Write};

fn flate2(gz: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(gz).read_to_end(&mut out)?;
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let cap = HISTORY + 1 + (mode as usize >> 2) * 997;
    let gz = if mode & 1 == 0 {
        rest.to_vec()
    } else {
        let level = flate2::Compression::new(u32::from(mode >> 4) % 10);
        let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
        e.write_all(rest).unwrap();
        let mut gz = e.finish().unwrap();
        let ours = ours(&gz, cap).expect("a valid stream decodes");
        assert!(ours == rest, "a valid stream decodes to what was compressed");
        // One byte damaged.
        if mode & 2 != 0 && !rest.is_empty() {
            let at = usize::from(rest[0]) * 31 % gz.len();
            gz[at] ^= rest[rest.len() - 1] | 1;
        }
        gz
    };
    match (ours(&gz, cap), flate2(&gz)) {
        (Ok(a), Ok(b)) => assert!(a == b, "both decode, to different bytes"),
        (Ok(_), Err(e)) => panic!("decoded what flate2 refuses ({e})"),
        _ => {}
    }
});
