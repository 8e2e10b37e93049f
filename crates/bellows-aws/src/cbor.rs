//! The subset of CBOR (RFC 8949) that Smithy RPC v2 uses, to and from [`Value`].
//!
//! Written here rather than taken from a crate: nothing in the lock file speaks CBOR, the
//! well-known crates (ciborium, minicbor) bring a serde data model or derive machinery
//! this layer does not use, and what Smithy sends is small: integers, floats of every
//! width, text and byte strings (definite or indefinite), arrays, maps with text keys,
//! booleans, null, and tag 1 for timestamps. Decoding is bounded: lengths are checked
//! against the bytes that are there, and nesting is limited, so a hostile body can
//! neither allocate without limit nor overflow the stack.

use crate::value::Value;

/// Why a body is not the CBOR this endpoint reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the body is not valid CBOR: {0}")]
pub struct CborError(pub String);

const MAX_DEPTH: usize = 64;

/// Decodes one data item that must fill the whole body.
pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    let mut d = Decoder { bytes, at: 0 };
    let v = d.item(0)?;
    if d.at != bytes.len() {
        return Err(CborError(format!(
            "{} bytes after the first data item",
            bytes.len() - d.at
        )));
    }
    Ok(v)
}

/// What an item's head says: its major type and its argument, or an indefinite length.
enum Head {
    Arg(u8, u64),
    Indefinite(u8),
    Break,
    Float(f64),
    Simple(u8),
}

struct Decoder<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Decoder<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CborError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| CborError("it ends in the middle of an item".to_owned()))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, CborError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn head(&mut self) -> Result<Head, CborError> {
        let first = self.take(1)?[0];
        let major = first >> 5;
        let info = first & 0x1f;
        if major == 7 {
            return Ok(match info {
                0..=23 => Head::Simple(info),
                24 => Head::Simple(self.take(1)?[0]),
                25 => Head::Float(half(self.uint(2)? as u16)),
                26 => Head::Float(f64::from(f32::from_bits(self.uint(4)? as u32))),
                27 => Head::Float(f64::from_bits(self.uint(8)?)),
                31 => Head::Break,
                _ => return Err(CborError(format!("reserved simple value {info}"))),
            });
        }
        let arg = match info {
            0..=23 => u64::from(info),
            24 => self.uint(1)?,
            25 => self.uint(2)?,
            26 => self.uint(4)?,
            27 => self.uint(8)?,
            31 if matches!(major, 2..=5) => return Ok(Head::Indefinite(major)),
            _ => return Err(CborError(format!("reserved length {info}"))),
        };
        Ok(Head::Arg(major, arg))
    }

    /// A length that cannot be larger than what is left (each element takes a byte at
    /// least), so a claimed length never drives an allocation.
    fn length(&self, n: u64) -> Result<usize, CborError> {
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.bytes.len() - self.at)
            .ok_or_else(|| CborError(format!("a length of {n} is more than the body holds")))
    }

    fn item(&mut self, depth: usize) -> Result<Value, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError("nested too deeply".to_owned()));
        }
        match self.head()? {
            Head::Break => Err(CborError("a break outside an indefinite item".to_owned())),
            Head::Float(f) => Ok(Value::Float(f)),
            Head::Simple(20) => Ok(Value::Bool(false)),
            Head::Simple(21) => Ok(Value::Bool(true)),
            Head::Simple(22 | 23) => Ok(Value::Null),
            Head::Simple(s) => Err(CborError(format!("unknown simple value {s}"))),
            Head::Arg(0, n) => i64::try_from(n)
                .map(Value::Int)
                .map_err(|_| CborError(format!("{n} is too large"))),
            Head::Arg(1, n) => i64::try_from(n)
                .map(|n| Value::Int(-1 - n))
                .map_err(|_| CborError(format!("-1-{n} is too small"))),
            Head::Arg(2, n) => {
                let n = self.length(n)?;
                Ok(Value::Blob(self.take(n)?.to_vec()))
            }
            Head::Arg(3, n) => {
                let n = self.length(n)?;
                let raw = self.take(n)?;
                text(raw).map(Value::Str)
            }
            Head::Arg(4, n) => {
                let n = self.length(n)?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.item(depth + 1)?);
                }
                Ok(Value::List(items))
            }
            Head::Arg(5, n) => {
                let n = self.length(n)?;
                let mut members = Vec::with_capacity(n);
                for _ in 0..n {
                    let k = self.key(depth)?;
                    let v = self.item(depth + 1)?;
                    members.push((k, v));
                }
                Ok(Value::Struct(members))
            }
            Head::Arg(6, tag) => {
                let inner = self.item(depth + 1)?;
                match (tag, &inner) {
                    // Tag 1: seconds since the epoch, an integer or a float.
                    (1, Value::Int(i)) => Ok(Value::Time(*i as f64)),
                    (1, Value::Float(f)) => Ok(Value::Time(*f)),
                    (1, _) => Err(CborError("tag 1 must hold a number".to_owned())),
                    // Other tags carry nothing this endpoint reads: keep the value.
                    _ => Ok(inner),
                }
            }
            Head::Indefinite(major) => self.indefinite(major, depth),
            Head::Arg(major, _) => Err(CborError(format!("major type {major}"))),
        }
    }

    fn key(&mut self, depth: usize) -> Result<String, CborError> {
        match self.item(depth + 1)? {
            Value::Str(s) => Ok(s),
            _ => Err(CborError("a map key that is not text".to_owned())),
        }
    }

    fn at_break(&mut self) -> Result<bool, CborError> {
        match self.bytes.get(self.at) {
            Some(0xff) => {
                self.at += 1;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => Err(CborError("an indefinite item without its break".to_owned())),
        }
    }

    fn indefinite(&mut self, major: u8, depth: usize) -> Result<Value, CborError> {
        match major {
            2 | 3 => {
                let mut all = Vec::new();
                while !self.at_break()? {
                    match self.head()? {
                        Head::Arg(m, n) if m == major => {
                            let n = self.length(n)?;
                            all.extend_from_slice(self.take(n)?);
                        }
                        _ => return Err(CborError("a chunk of the wrong type".to_owned())),
                    }
                }
                if major == 2 {
                    Ok(Value::Blob(all))
                } else {
                    text(&all).map(Value::Str)
                }
            }
            4 => {
                let mut items = Vec::new();
                while !self.at_break()? {
                    items.push(self.item(depth + 1)?);
                }
                Ok(Value::List(items))
            }
            _ => {
                let mut members = Vec::new();
                while !self.at_break()? {
                    let k = self.key(depth)?;
                    let v = self.item(depth + 1)?;
                    members.push((k, v));
                }
                Ok(Value::Struct(members))
            }
        }
    }
}

fn text(raw: &[u8]) -> Result<String, CborError> {
    String::from_utf8(raw.to_vec()).map_err(|_| CborError("text that is not UTF-8".to_owned()))
}

/// IEEE 754 half precision to f64.
fn half(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = f64::from(bits & 0x3ff);
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// Encodes a value with definite lengths, the shortest integer heads, and floats as
/// doubles.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, value);
    out
}

fn put_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn put_double(out: &mut Vec<u8>, f: f64) {
    out.push(0xfb);
    out.extend_from_slice(&f.to_bits().to_be_bytes());
}

fn put(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(0xf6),
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Int(i) if *i >= 0 => put_head(out, 0, *i as u64),
        Value::Int(i) => put_head(out, 1, (-1 - *i) as u64),
        Value::Float(f) => put_double(out, *f),
        Value::Str(s) => {
            put_head(out, 3, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Blob(b) => {
            put_head(out, 2, b.len() as u64);
            out.extend_from_slice(b);
        }
        Value::Time(t) => {
            put_head(out, 6, 1);
            put_double(out, *t);
        }
        Value::List(items) => {
            put_head(out, 4, items.len() as u64);
            for item in items {
                put(out, item);
            }
        }
        Value::Struct(members) | Value::Map(members) => {
            let present: Vec<_> = members.iter().filter(|(_, v)| *v != Value::Null).collect();
            put_head(out, 5, present.len() as u64);
            for (k, v) in present {
                put(out, &Value::Str(k.clone()));
                put(out, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Examples from RFC 8949, appendix A.
    #[test]
    fn rfc_8949_examples_decode() {
        let cases: &[(&str, Value)] = &[
            ("00", Value::Int(0)),
            ("1819", Value::Int(25)),
            ("1a000f4240", Value::Int(1_000_000)),
            ("3903e7", Value::Int(-1000)),
            ("f93c00", Value::Float(1.0)),
            ("f97bff", Value::Float(65504.0)),
            ("fa47c35000", Value::Float(100000.0)),
            ("fb3ff199999999999a", Value::Float(1.1)),
            ("f4", Value::Bool(false)),
            ("f6", Value::Null),
            ("6449455446", Value::Str("IETF".into())),
            ("c11a514b67b0", Value::Time(1_363_896_240.0)),
            ("c1fb41d452d9ec200000", Value::Time(1_363_896_240.5)),
            ("7f657374726561646d696e67ff", Value::Str("streaming".into())),
            (
                "9f018202039f0405ffff",
                Value::List(vec![
                    Value::Int(1),
                    Value::List(vec![Value::Int(2), Value::Int(3)]),
                    Value::List(vec![Value::Int(4), Value::Int(5)]),
                ]),
            ),
            (
                "bf61610161629f0203ffff",
                Value::Struct(vec![
                    ("a".into(), Value::Int(1)),
                    ("b".into(), Value::List(vec![Value::Int(2), Value::Int(3)])),
                ]),
            ),
        ];
        for (h, want) in cases {
            assert_eq!(&decode(&hex(h)).unwrap(), want, "{h}");
        }
    }

    #[test]
    fn encode_then_decode_is_the_same_value() {
        let v = Value::Struct(vec![
            ("Namespace".into(), "App".into()),
            ("Count".into(), Value::Int(-7)),
            ("Big".into(), Value::Int(1 << 40)),
            ("Value".into(), Value::Float(0.25)),
            ("At".into(), Value::Time(1_796_193_600.0)),
            ("Ok".into(), Value::Bool(true)),
            (
                "Names".into(),
                Value::List(vec!["a".into(), "b".repeat(300).into()]),
            ),
        ]);
        assert_eq!(decode(&encode(&v)).unwrap(), v);
    }

    #[test]
    fn hostile_bodies_are_refused_not_trusted() {
        // An array claiming 2^32 items in five bytes.
        assert!(decode(&hex("9affffffff")).is_err());
        // A text string that stops early, a break alone, an unterminated list.
        assert!(decode(&hex("6449")).is_err());
        assert!(decode(&hex("ff")).is_err());
        assert!(decode(&hex("9f01")).is_err());
        // Nesting deeper than the limit.
        assert!(decode(&[0x81; 100].iter().copied().chain([0]).collect::<Vec<_>>()).is_err());
        // Trailing bytes, a non-text key, invalid UTF-8.
        assert!(decode(&hex("0000")).is_err());
        assert!(decode(&hex("a10101")).is_err());
        assert!(decode(&hex("62c328")).is_err());
    }
}
