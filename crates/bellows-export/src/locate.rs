//! Where a setting is in the stack file: the parsed [`Stack`](bellows_core::stack::Stack)
//! keeps values, not places, so warnings find them again in the TOML by their path.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a path into the stack file: a key, an index into an array of tables, or
/// the entry of an array of tables whose `key` holds an integer (a rule's `priority`).
#[derive(Clone, Copy, Debug)]
pub enum Seg<'a> {
    Key(&'a str),
    Index(usize),
    Where(&'a str, i64),
}

/// Finds paths like `groups.web.launch.instance_type` in a stack file's text.
#[derive(Debug)]
pub struct Locator<'s> {
    src: &'s str,
    doc: Option<Spanned<DeTable<'s>>>,
}

impl<'s> Locator<'s> {
    pub fn new(src: &'s str) -> Locator<'s> {
        Locator {
            src,
            doc: DeTable::parse(src).ok(),
        }
    }

    /// The 1-based line and column of the deepest key of `path` the file has: the key
    /// itself when it is written, else the table it would go in (a default value).
    pub fn find(&self, path: &[Seg<'_>]) -> (usize, usize) {
        let (_, start) = self.walk(path);
        line_col(self.src, start)
    }

    /// Whether the file writes the whole of `path` (not a default).
    pub fn has(&self, path: &[Seg<'_>]) -> bool {
        self.walk(path).0 == path.len()
    }

    /// How many segments of `path` the file has, and where the last of them starts.
    fn walk(&self, path: &[Seg<'_>]) -> (usize, usize) {
        let Some(doc) = &self.doc else {
            return (0, 0);
        };
        let mut found = 0;
        let mut best: Range<usize> = 0..0;
        let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
        let mut value: Option<&DeValue<'_>> = None;
        for seg in path {
            let next = match (*seg, table, value) {
                (Seg::Key(k), Some(t), _) => t
                    .iter()
                    .find(|(key, _)| key.get_ref().as_ref() == k)
                    .map(|(key, v)| (key.span(), v)),
                (Seg::Index(i), _, Some(DeValue::Array(a))) => a.get(i).map(|v| (v.span(), v)),
                (Seg::Where(k, n), _, Some(DeValue::Array(a))) => a
                    .iter()
                    .find(|v| match v.get_ref() {
                        DeValue::Table(t) => t.iter().any(|(key, x)| {
                            key.get_ref().as_ref() == k
                                && matches!(x.get_ref(), DeValue::Integer(i) if i.as_str().parse::<i64>() == Ok(n))
                        }),
                        _ => false,
                    })
                    .map(|v| (v.span(), v)),
                _ => None,
            };
            let Some((span, v)) = next else { break };
            found += 1;
            best = span;
            value = Some(v.get_ref());
            table = match v.get_ref() {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
        }
        (found, best.start)
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..src.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// Builds a path from dotted text and extra segments: `p("groups.web.launch", [])`.
pub(crate) fn path(dotted: &str) -> Vec<Seg<'_>> {
    dotted.split('.').map(Seg::Key).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "[stack]\nname = \"x\"\n\n[groups.web]\nmin = 1\n\n[groups.web.launch]\ncommand = [\"a\"]\n\n[[listeners.http.rules]]\npriority = 10\npath = \"/a\"\n[[listeners.http.rules]]\npriority = 5\npath = \"/b\"\n";

    #[test]
    fn finds_keys_defaults_and_rules_by_priority() {
        let l = Locator::new(SRC);
        assert_eq!(l.find(&path("groups.web.min")), (5, 1));
        assert_eq!(l.find(&path("groups.web.launch.command")), (8, 1));
        // A default: the table it would be written in.
        assert_eq!(l.find(&path("groups.web.launch.stop_timeout")), (7, 13));
        let rule = |p| {
            vec![
                Seg::Key("listeners"),
                Seg::Key("http"),
                Seg::Key("rules"),
                Seg::Where("priority", p),
                Seg::Key("path"),
            ]
        };
        assert_eq!(l.find(&rule(5)), (15, 1));
        assert_eq!(l.find(&rule(10)), (12, 1));
        assert_eq!(l.find(&path("nothing.here")), (1, 1));
        assert!(l.has(&path("groups.web.min")));
        assert!(!l.has(&path("groups.web.max")));
    }
}
