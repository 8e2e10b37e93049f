//! EC2 user data, read as cloud-init reads it: what kind of program it is, and for a
//! `#cloud-config` document the commands its `runcmd` (and `bootcmd`) lists.
//!
//! Only what bellows runs is parsed: a small subset of YAML (top-level keys, block
//! sequences of plain, quoted or `|` literal scalars, flow or nested sequences as argv).
//! Anything else is refused with a message a launch failure can show as it is.

/// How an instance's user data is run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserData {
    /// Starts with `#!`: made executable and executed directly, by its interpreter.
    Script,
    /// Neither a `#!` script nor a `#cloud-config`: run by `/bin/sh`.
    Shell,
    /// `#cloud-config`: the shell script cloud-init makes of `bootcmd` then `runcmd`,
    /// one line per command, run by `/bin/sh` in order.
    CloudConfig { script: String },
}

/// The cloud-config keys bellows ignores: nothing to do for them on one machine.
const IGNORED: [&str; 5] = [
    "package_update",
    "package_upgrade",
    "package_reboot_if_required",
    "timezone",
    "hostname",
];

/// Reads user data. An error says what bellows does not support.
pub fn classify(text: &str) -> Result<UserData, String> {
    let first = text.lines().next().unwrap_or("").trim_end();
    if first.starts_with("#!") {
        return Ok(UserData::Script);
    }
    if first == "#cloud-config" {
        return cloud_config(text).map(|script| UserData::CloudConfig { script });
    }
    for (prefix, what) in [
        ("#include", "an #include list"),
        ("#cloud-boothook", "a #cloud-boothook"),
        ("#upstart-job", "an #upstart-job"),
        ("#part-handler", "a #part-handler"),
        ("#cloud-config-archive", "a #cloud-config-archive"),
        ("Content-Type: multipart", "a MIME multi-part archive"),
    ] {
        if first.starts_with(prefix) {
            return Err(format!(
                "user data is {what}, which bellows does not run: give a shell script, a #! script or a #cloud-config with runcmd"
            ));
        }
    }
    if text.as_bytes().starts_with(&[0x1f, 0x8b]) {
        return Err("user data is gzip-compressed, which bellows does not run".to_owned());
    }
    Ok(UserData::Shell)
}

/// One item of a sequence: a string (run by the shell) or a list of arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Text(String),
    Argv(Vec<String>),
}

fn cloud_config(text: &str) -> Result<String, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut boot = Vec::new();
    let mut run = Vec::new();
    let mut i = 1;
    while i < lines.len() {
        let line = lines[i];
        let n = i + 1;
        if is_blank(line) {
            i += 1;
            continue;
        }
        if line.starts_with([' ', '\t', '-']) {
            return Err(format!(
                "#cloud-config line {n}: expected a top-level key like `runcmd:`"
            ));
        }
        let Some((key, rest)) = line.split_once(':') else {
            return Err(format!(
                "#cloud-config line {n}: expected `key: value`, found `{line}`"
            ));
        };
        let key = key.trim();
        let rest = strip_comment(rest).trim();
        i += 1;
        let body_start = i;
        while i < lines.len() && (is_blank(lines[i]) || lines[i].starts_with([' ', '\t', '-'])) {
            i += 1;
        }
        let body = &lines[body_start..i];
        match key {
            "runcmd" | "bootcmd" => {
                let items = if rest.is_empty() {
                    sequence(body, body_start + 1)?
                } else if rest.starts_with('[') {
                    flow(rest, n)?.into_iter().map(Item::Text).collect()
                } else {
                    return Err(format!("#cloud-config line {n}: `{key}` must be a list"));
                };
                if key == "runcmd" {
                    run = items;
                } else {
                    boot = items;
                }
            }
            k if IGNORED.contains(&k) => {}
            k => {
                return Err(format!(
                    "#cloud-config line {n}: bellows does not support `{k}`; it runs `bootcmd` and `runcmd` (and ignores {})",
                    IGNORED.join(", ")
                ));
            }
        }
    }
    if boot.is_empty() && run.is_empty() {
        return Err("#cloud-config has no `runcmd`: the instance would run nothing".to_owned());
    }
    let mut script = String::from("#!/bin/sh\n");
    for item in boot.iter().chain(&run) {
        match item {
            Item::Text(t) => script.push_str(t),
            Item::Argv(a) => {
                script.push_str(&a.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" "))
            }
        }
        script.push('\n');
    }
    Ok(script)
}

fn is_blank(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches([' ', '\t']).len()
}

/// A comment starts at ` #` outside quotes.
fn strip_comment(s: &str) -> &str {
    let mut quote = None;
    let b = s.as_bytes();
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '#') if i == 0 || b[i - 1] == b' ' || b[i - 1] == b'\t' => return &s[..i],
            _ => {}
        }
    }
    s
}

/// A block sequence: `- item` lines at one indentation, each item a scalar, a `|`
/// literal, a flow sequence or a nested block sequence (an argv).
fn sequence(body: &[&str], first_line: usize) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    let mut i = 0;
    let mut level = None;
    while i < body.len() {
        let line = body[i];
        let n = first_line + i;
        if is_blank(line) {
            i += 1;
            continue;
        }
        let ind = indent(line);
        let t = line.trim_start_matches([' ', '\t']);
        if *level.get_or_insert(ind) != ind || !(t == "-" || t.starts_with("- ")) {
            return Err(format!(
                "#cloud-config line {n}: expected a list item `- ...` at the list's indentation"
            ));
        }
        let value = strip_comment(&t[1..]).trim();
        i += 1;
        // The item's own lines: those indented deeper than its dash.
        let start = i;
        while i < body.len() && (body[i].trim().is_empty() || indent(body[i]) > ind) {
            i += 1;
        }
        let inner = &body[start..i];
        let item = if value.is_empty() {
            let words = sequence(inner, first_line + start)?;
            Item::Argv(
                words
                    .into_iter()
                    .map(|w| match w {
                        Item::Text(t) => Ok(t),
                        Item::Argv(_) => Err(format!(
                            "#cloud-config line {n}: a command's arguments must be strings"
                        )),
                    })
                    .collect::<Result<_, _>>()?,
            )
        } else if value == "|" || value == "|-" || value == ">" || value == ">-" {
            let lit_ind = inner
                .iter()
                .find(|l| !l.trim().is_empty())
                .map_or(0, |l| indent(l));
            let lines: Vec<&str> = inner
                .iter()
                .map(|l| {
                    if l.len() >= lit_ind {
                        &l[lit_ind..]
                    } else {
                        ""
                    }
                })
                .collect();
            let sep = if value.starts_with('>') { " " } else { "\n" };
            Item::Text(lines.join(sep).trim_end().to_owned())
        } else if value.starts_with('[') {
            Item::Argv(flow(value, n)?)
        } else if let Some(rest) = value.strip_prefix("- ") {
            // `- - a` starts a nested sequence on the same line.
            let mut words = vec![scalar(rest.trim(), n)?];
            for w in sequence(inner, first_line + start)? {
                match w {
                    Item::Text(t) => words.push(t),
                    Item::Argv(_) => {
                        return Err(format!(
                            "#cloud-config line {n}: a command's arguments must be strings"
                        ));
                    }
                }
            }
            Item::Argv(words)
        } else {
            if !inner.iter().all(|l| l.trim().is_empty()) {
                // A plain scalar continued on the next lines is folded with spaces.
                let mut s = scalar(value, n)?;
                for l in inner.iter().filter(|l| !l.trim().is_empty()) {
                    s.push(' ');
                    s.push_str(l.trim());
                }
                items.push(Item::Text(s));
                continue;
            }
            Item::Text(scalar(value, n)?)
        };
        items.push(item);
    }
    Ok(items)
}

/// `[a, "b c", 'd']`: a flow sequence of scalars.
fn flow(s: &str, n: usize) -> Result<Vec<String>, String> {
    let Some(inner) = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')) else {
        return Err(format!(
            "#cloud-config line {n}: a flow list must open and close on one line: `{s}`"
        ));
    };
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote = None;
    for c in inner.chars() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (None, ',') => {
                out.push(scalar(cur.trim(), n)?);
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(scalar(cur.trim(), n)?);
    }
    Ok(out)
}

/// A plain, single-quoted or double-quoted scalar.
fn scalar(s: &str, n: usize) -> Result<String, String> {
    if let Some(body) = s.strip_prefix('\'') {
        let Some(body) = body.strip_suffix('\'') else {
            return Err(format!("#cloud-config line {n}: unclosed quote in `{s}`"));
        };
        return Ok(body.replace("''", "'"));
    }
    if let Some(body) = s.strip_prefix('"') {
        let Some(body) = body.strip_suffix('"') else {
            return Err(format!("#cloud-config line {n}: unclosed quote in `{s}`"));
        };
        let mut out = String::new();
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('/') => out.push('/'),
                other => {
                    return Err(format!(
                        "#cloud-config line {n}: bellows does not read the escape `\\{}`",
                        other.map(String::from).unwrap_or_default()
                    ));
                }
            }
        }
        return Ok(out);
    }
    Ok(s.to_owned())
}

/// A word quoted for `/bin/sh`, as cloud-init quotes a runcmd argv.
fn quote(w: &str) -> String {
    if !w.is_empty()
        && w.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
    {
        w.to_owned()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(text: &str) -> String {
        match classify(text) {
            Ok(UserData::CloudConfig { script }) => script,
            other => panic!("not a cloud-config: {other:?}"),
        }
    }

    #[test]
    fn kinds() {
        assert_eq!(
            classify("#!/usr/bin/env python3\nprint(1)\n"),
            Ok(UserData::Script)
        );
        assert_eq!(classify("echo hi\n"), Ok(UserData::Shell));
        assert_eq!(classify(""), Ok(UserData::Shell));
        assert!(
            classify("#include\nhttp://x/\n")
                .unwrap_err()
                .contains("#include")
        );
        assert!(
            classify("Content-Type: multipart/mixed; boundary=x\n")
                .unwrap_err()
                .contains("multi-part")
        );
    }

    #[test]
    fn runcmd_strings_argv_and_literals() {
        let text = "#cloud-config\n# a comment\npackage_update: true\nbootcmd:\n  - echo boot\nruncmd:\n  - echo one   # trailing\n  - [ python3, -m, http.server, \"8000\" ]\n  -\n    - sh\n    - -c\n    - 'it''s'\n  - - printf\n    - '%s\\n'\n  - |\n    cd /tmp\n    echo two\n  - 'echo \"quoted\"'\n";
        assert_eq!(
            script(text),
            "#!/bin/sh\necho boot\necho one\npython3 -m http.server 8000\nsh -c 'it'\\''s'\nprintf '%s\\n'\ncd /tmp\necho two\necho \"quoted\"\n"
        );
    }

    #[test]
    fn flow_runcmd_and_refusals() {
        assert_eq!(
            script("#cloud-config\nruncmd: [\"echo a\", 'echo b']\n"),
            "#!/bin/sh\necho a\necho b\n"
        );
        let e = classify("#cloud-config\nruncmd:\n  - x\npackages:\n  - nginx\n").unwrap_err();
        assert!(e.contains("line 4") && e.contains("`packages`"), "{e}");
        let e = classify("#cloud-config\npackage_update: true\n").unwrap_err();
        assert!(e.contains("no `runcmd`"), "{e}");
        let e = classify("#cloud-config\nruncmd:\n  - \"x\n").unwrap_err();
        assert!(e.contains("line 3") && e.contains("unclosed"), "{e}");
        let e = classify("#cloud-config\nruncmd: echo\n").unwrap_err();
        assert!(e.contains("must be a list"), "{e}");
    }
}
