//! A typed walk over a TOML document that keeps going after an error.
//!
//! serde stops at the first problem; a user fixing a stack file wants them all. Every
//! getter records what it looked for, so that unknown keys can be reported too.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::Diagnostic;
use crate::Duration;

pub(super) type Value<'i> = Spanned<DeValue<'i>>;

/// The source text and the problems found so far.
pub(super) struct Cx<'s> {
    src: &'s str,
    pub(super) errors: Vec<Diagnostic>,
}

impl<'s> Cx<'s> {
    pub(super) fn new(src: &'s str) -> Cx<'s> {
        Cx {
            src,
            errors: Vec::new(),
        }
    }

    pub(super) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_col(self.src, span.start);
        self.errors.push(Diagnostic {
            line,
            column,
            message: message.into(),
        });
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(super) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..src.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// One TOML table being read, with the dotted path that names it in messages.
pub(super) struct Table<'a, 'i> {
    table: &'a DeTable<'i>,
    span: Range<usize>,
    pub(super) path: String,
    known: Vec<&'static str>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub(super) fn new(table: &'a DeTable<'i>, span: Range<usize>, path: String) -> Self {
        Table {
            table,
            span,
            path,
            known: Vec::new(),
        }
    }

    /// Reads a sub-table, or reports the wrong type.
    pub(super) fn from_value(cx: &mut Cx<'_>, value: &'a Value<'i>, path: String) -> Option<Self> {
        match value.get_ref() {
            DeValue::Table(t) => Some(Table::new(t, value.span(), path)),
            other => {
                cx.error(
                    value.span(),
                    format!("`{path}` must be a table, found {}", other.type_str()),
                );
                None
            }
        }
    }

    pub(super) fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The raw value of `key`, remembering that the key is known.
    pub(super) fn raw(&mut self, key: &'static str) -> Option<&'a Value<'i>> {
        self.known.push(key);
        self.table.get(key)
    }

    pub(super) fn get<T: FromToml>(&mut self, cx: &mut Cx<'_>, key: &'static str) -> Option<T> {
        let path = self.key_path(key);
        self.raw(key).and_then(|v| T::from_toml(cx, v, &path))
    }

    /// Like `get`, but a missing key is an error too.
    pub(super) fn require<T: FromToml>(&mut self, cx: &mut Cx<'_>, key: &'static str) -> Option<T> {
        if !self.table.contains_key(key) {
            let what = if self.path.is_empty() {
                "the top level".to_owned()
            } else {
                format!("[{}]", self.path)
            };
            cx.error(self.span(), format!("missing key `{key}` in {what}"));
            self.known.push(key);
            return None;
        }
        self.get(cx, key)
    }

    /// The entries of a table of named tables, like `[groups.web]`.
    pub(super) fn named_tables(
        &mut self,
        cx: &mut Cx<'_>,
        key: &'static str,
    ) -> Vec<(Spanned<String>, Table<'a, 'i>)> {
        let path = self.key_path(key);
        let Some(v) = self.raw(key) else {
            return Vec::new();
        };
        let Some(outer) = Table::from_value(cx, v, path.clone()) else {
            return Vec::new();
        };
        outer
            .table
            .iter()
            .filter_map(|(name, value)| {
                let child = Table::from_value(cx, value, format!("{path}.{}", name.get_ref()))?;
                Some((Spanned::new(name.span(), name.get_ref().to_string()), child))
            })
            .collect()
    }

    /// A string or an array of strings, as a list.
    pub(super) fn strings(&mut self, cx: &mut Cx<'_>, key: &'static str) -> Vec<Spanned<String>> {
        let path = self.key_path(key);
        match self.raw(key) {
            None => Vec::new(),
            Some(v) if matches!(v.get_ref(), DeValue::String(_)) => String::from_toml(cx, v, &path)
                .map(|s| vec![Spanned::new(v.span(), s)])
                .unwrap_or_default(),
            Some(v) => Vec::<Spanned<String>>::from_toml(cx, v, &path).unwrap_or_default(),
        }
    }

    /// The tables of an array of tables, like `[[listeners.http.rules]]`.
    pub(super) fn table_array(&mut self, cx: &mut Cx<'_>, key: &'static str) -> Vec<Table<'a, 'i>> {
        let path = self.key_path(key);
        let Some(v) = self.raw(key) else {
            return Vec::new();
        };
        match v.get_ref() {
            DeValue::Array(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| Table::from_value(cx, item, format!("{path}[{i}]")))
                .collect(),
            other => {
                cx.error(
                    v.span(),
                    format!(
                        "`{path}` must be an array of tables ([[{path}]]), found {}",
                        other.type_str()
                    ),
                );
                Vec::new()
            }
        }
    }

    /// The keys of this table that no getter has asked for yet, with their values.
    pub(super) fn entries(
        &self,
    ) -> impl Iterator<Item = (&'a Spanned<toml::de::DeString<'i>>, &'a Value<'i>)> {
        self.table.iter()
    }

    /// Reports every key that no getter asked for.
    pub(super) fn finish(self, cx: &mut Cx<'_>) {
        for (key, _) in self.table.iter() {
            if !self.known.contains(&key.get_ref().as_ref()) {
                let mut expected = self.known.clone();
                expected.sort_unstable();
                expected.dedup();
                let place = if self.path.is_empty() {
                    "at the top level".to_owned()
                } else {
                    format!("in [{}]", self.path)
                };
                cx.error(
                    key.span(),
                    format!(
                        "unknown key `{}` {place}; expected one of: {}",
                        key.get_ref(),
                        expected.join(", ")
                    ),
                );
            }
        }
    }
}

/// A value that can be read from TOML, reporting a precise error when it cannot.
pub(super) trait FromToml: Sized {
    fn from_toml(cx: &mut Cx<'_>, v: &Value<'_>, path: &str) -> Option<Self>;
}

fn wrong_type(cx: &mut Cx<'_>, v: &Value<'_>, path: &str, expected: &str) {
    cx.error(
        v.span(),
        format!(
            "`{path}` must be {expected}, found {}",
            v.get_ref().type_str()
        ),
    );
}

impl FromToml for String {
    fn from_toml(cx: &mut Cx<'_>, v: &Value<'_>, path: &str) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                wrong_type(cx, v, path, "a string");
                None
            }
        }
    }
}

impl FromToml for i64 {
    fn from_toml(cx: &mut Cx<'_>, v: &Value<'_>, path: &str) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    cx.error(v.span(), format!("`{path}` is out of range"));
                    None
                }
            },
            _ => {
                wrong_type(cx, v, path, "an integer");
                None
            }
        }
    }
}

impl FromToml for f64 {
    fn from_toml(cx: &mut Cx<'_>, v: &Value<'_>, path: &str) -> Option<f64> {
        match v.get_ref() {
            DeValue::Float(f) => f
                .as_str()
                .parse()
                .ok()
                .filter(|x: &f64| x.is_finite())
                .or_else(|| {
                    cx.error(v.span(), format!("`{path}` must be a finite number"));
                    None
                }),
            DeValue::Integer(_) => i64::from_toml(cx, v, path).map(|n| n as f64),
            _ => {
                wrong_type(cx, v, path, "a number");
                None
            }
        }
    }
}

impl FromToml for Duration {
    fn from_toml(cx: &mut Cx<'_>, v: &Value<'_>, path: &str) -> Option<Duration> {
        match v.get_ref() {
            DeValue::String(s) => match s.parse() {
                Ok(d) => Some(d),
                Err(e) => {
                    cx.error(v.span(), format!("`{path}`: {e}"));
                    None
                }
            },
            _ => {
                wrong_type(cx, v, path, "a duration string like \"30s\"");
                None
            }
        }
    }
}

impl FromToml for Vec<Spanned<String>> {
    fn from_toml(cx: &mut Cx<'_>, v: &Value<'_>, path: &str) -> Option<Self> {
        match v.get_ref() {
            DeValue::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match String::from_toml(cx, item, &format!("{path}[{i}]")) {
                        Some(s) => out.push(Spanned::new(item.span(), s)),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            _ => {
                wrong_type(cx, v, path, "an array of strings");
                None
            }
        }
    }
}

/// A value with the span it was read from, for checks made after reading.
impl<T: FromToml> FromToml for Spanned<T> {
    fn from_toml(cx: &mut Cx<'_>, v: &Value<'_>, path: &str) -> Option<Self> {
        T::from_toml(cx, v, path).map(|t| Spanned::new(v.span(), t))
    }
}
