//! ALB's wildcard patterns: `*` matches any run of characters, `?` exactly one.

/// Matches `text` against `pattern`, byte by byte, with `*` and `?` wildcards. Linear in
/// practice: on a mismatch after a `*`, it backtracks only to that last star.
pub fn matches(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let eq = |a: u8, b: u8| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || (p[pi] != b'*' && eq(p[pi], t[ti]))) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn wildcards() {
        for (p, t, want) in [
            ("/app-x7k9m2n8/*", "/app-x7k9m2n8/ws", true),
            ("/app-x7k9m2n8/*", "/app-x7k9m2n8/", true),
            ("/app-x7k9m2n8/*", "/app-x7k9m2n8", false),
            ("/img/*.png", "/img/a/b.png", true),
            ("/img/*.png", "/img/a/b.PNG", false),
            ("/v?/users", "/v2/users", true),
            ("/v?/users", "/v10/users", false),
            ("*", "", true),
            ("/", "/", true),
            ("/a*b*c", "/axxbyyc", true),
            ("/a*b*c", "/axxbyy", false),
        ] {
            assert_eq!(matches(p, t, false), want, "{p} ~ {t}");
        }
        assert!(matches("*.example.com", "API.Example.com", true));
    }
}
