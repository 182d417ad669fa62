//! The one glob gatewatch knows: `*` (any run of characters, also none) and `?` (any one
//! character), over file names, upstreams and entry ids alike — in source paths, silences and
//! maintenance windows. Everything else matches itself.

/// Whether `name` matches `pattern`.
pub fn matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            mark = n;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            mark += 1;
            n = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn stars_and_question_marks() {
        for (pattern, name, expected) in [
            ("*", "", true),
            ("*", "10.0.1.5:8080", true),
            ("10.0.1.*", "10.0.1.5:8080", true),
            ("10.0.1.*", "10.0.2.5:8080", false),
            ("*:8080", "10.0.1.5:8080", true),
            ("nginx/*", "nginx/upstream-timed-out", true),
            ("nginx/*", "haproxy/server-timeout", false),
            ("access?.log", "access1.log", true),
            ("access?.log", "access.log", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("[ab]", "a", false),
            ("[ab]", "[ab]", true),
        ] {
            assert_eq!(
                matches(pattern.as_bytes(), name.as_bytes()),
                expected,
                "{pattern} ~ {name}"
            );
        }
    }
}
