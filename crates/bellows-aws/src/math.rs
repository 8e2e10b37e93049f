//! CloudWatch metric math, where simple: `+ - * /`, parentheses, numbers, the ids of
//! other queries, and `SUM`, `AVG`, `MIN`, `MAX` over a list of ids or `METRICS()`.
//! Series are combined at the timestamps every one of them has, as CloudWatch does.

use std::collections::BTreeMap;

/// A series: (timestamp in seconds, value), any order.
pub type Series = Vec<(f64, f64)>;

/// Why an expression cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MathError(pub String);

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(f64),
    Id(String),
    Op(char),
    Open,
    Close,
    Comma,
}

fn tokens(text: &str) -> Result<Vec<Token>, MathError> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '+' | '-' | '*' | '/' => {
                out.push(Token::Op(c));
                i += 1;
            }
            '(' => {
                out.push(Token::Open);
                i += 1;
            }
            ')' => {
                out.push(Token::Close);
                i += 1;
            }
            ',' => {
                out.push(Token::Comma);
                i += 1;
            }
            c if c.is_ascii_digit() || c == '.' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                out.push(Token::Num(
                    s.parse()
                        .map_err(|_| MathError(format!("`{s}` is not a number")))?,
                ));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Token::Id(chars[start..i].iter().collect()));
            }
            // A function's `[m1, m2]` is its list of arguments: the brackets add nothing.
            '[' | ']' => i += 1,
            other => {
                return Err(MathError(format!(
                    "`{other}` is not metric math bellows reads"
                )));
            }
        }
    }
    Ok(out)
}

/// A value while evaluating: a number, one series, or several (from `METRICS()`).
#[derive(Debug, Clone)]
enum Val {
    Num(f64),
    One(BTreeMap<i64, f64>),
    Many(Vec<BTreeMap<i64, f64>>),
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    series: &'a BTreeMap<String, Series>,
    depth: usize,
}

fn key(t: f64) -> i64 {
    (t * 1000.0).round() as i64
}

fn to_map(s: &Series) -> BTreeMap<i64, f64> {
    s.iter().map(|(t, v)| (key(*t), *v)).collect()
}

fn combine(a: Val, b: Val, op: char) -> Result<Val, MathError> {
    let f = |x: f64, y: f64| match op {
        '+' => x + y,
        '-' => x - y,
        '*' => x * y,
        _ => x / y,
    };
    Ok(match (a, b) {
        (Val::Num(x), Val::Num(y)) => Val::Num(f(x, y)),
        (Val::One(s), Val::Num(y)) => Val::One(s.into_iter().map(|(t, x)| (t, f(x, y))).collect()),
        (Val::Num(x), Val::One(s)) => Val::One(s.into_iter().map(|(t, y)| (t, f(x, y))).collect()),
        (Val::One(a), Val::One(b)) => Val::One(
            a.into_iter()
                .filter_map(|(t, x)| b.get(&t).map(|y| (t, f(x, *y))))
                .collect(),
        ),
        _ => {
            return Err(MathError(
                "arithmetic on METRICS() needs SUM, AVG, MIN or MAX".into(),
            ));
        }
    })
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn expr(&mut self) -> Result<Val, MathError> {
        let mut v = self.term()?;
        while let Some(Token::Op(op @ ('+' | '-'))) = self.peek().cloned() {
            self.at += 1;
            let r = self.term()?;
            v = combine(v, r, op)?;
        }
        Ok(v)
    }

    fn term(&mut self) -> Result<Val, MathError> {
        let mut v = self.factor()?;
        while let Some(Token::Op(op @ ('*' | '/'))) = self.peek().cloned() {
            self.at += 1;
            let r = self.factor()?;
            v = combine(v, r, op)?;
        }
        Ok(v)
    }

    /// Every recursion passes through here, so the depth bound holds for parentheses
    /// and unary minus alike.
    fn factor(&mut self) -> Result<Val, MathError> {
        self.depth += 1;
        if self.depth > 50 {
            return Err(MathError("the expression is nested too deeply".into()));
        }
        let v = self.factor_inner();
        self.depth -= 1;
        v
    }

    fn factor_inner(&mut self) -> Result<Val, MathError> {
        match self.next() {
            Some(Token::Num(n)) => Ok(Val::Num(n)),
            Some(Token::Op('-')) => combine(Val::Num(0.0), self.factor()?, '-'),
            Some(Token::Open) => {
                let v = self.expr()?;
                match self.next() {
                    Some(Token::Close) => Ok(v),
                    _ => Err(MathError("a `(` without its `)`".into())),
                }
            }
            Some(Token::Id(name)) if self.peek() == Some(&Token::Open) => {
                self.at += 1;
                self.function(&name)
            }
            Some(Token::Id(name)) => self
                .series
                .get(&name)
                .map(|s| Val::One(to_map(s)))
                .ok_or_else(|| MathError(format!("no query with the id `{name}`"))),
            other => Err(MathError(format!("unexpected {other:?}"))),
        }
    }

    fn function(&mut self, name: &str) -> Result<Val, MathError> {
        let upper = name.to_ascii_uppercase();
        if upper == "METRICS" {
            return match self.next() {
                Some(Token::Close) => Ok(Val::Many(self.series.values().map(to_map).collect())),
                _ => Err(MathError("METRICS() takes no argument here".into())),
            };
        }
        let mut args = Vec::new();
        loop {
            match self.expr()? {
                Val::Many(m) => args.extend(m),
                Val::One(s) => args.push(s),
                Val::Num(_) => return Err(MathError(format!("{upper} takes series"))),
            }
            match self.next() {
                Some(Token::Comma) => continue,
                Some(Token::Close) => break,
                _ => return Err(MathError(format!("{upper}( without its `)`"))),
            }
        }
        // Per timestamp, over the series that have it (CloudWatch's functions skip gaps).
        let mut by_time: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
        for s in &args {
            for (t, v) in s {
                by_time.entry(*t).or_default().push(*v);
            }
        }
        let f = |vs: &Vec<f64>| -> Result<f64, MathError> {
            Ok(match upper.as_str() {
                "SUM" => vs.iter().sum(),
                "AVG" => vs.iter().sum::<f64>() / vs.len() as f64,
                "MIN" => vs.iter().copied().fold(f64::INFINITY, f64::min),
                "MAX" => vs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                other => return Err(MathError(format!("bellows does not evaluate {other}()"))),
            })
        };
        let mut out = BTreeMap::new();
        for (t, vs) in &by_time {
            out.insert(*t, f(vs)?);
        }
        Ok(Val::One(out))
    }
}

/// Evaluates `expression` over the named series; the result is in time order.
pub fn evaluate(expression: &str, series: &BTreeMap<String, Series>) -> Result<Series, MathError> {
    let mut p = Parser {
        tokens: tokens(expression)?,
        at: 0,
        series,
        depth: 0,
    };
    let v = p.expr()?;
    if p.at != p.tokens.len() {
        return Err(MathError(format!("`{expression}` has more after its end")));
    }
    match v {
        Val::One(s) => Ok(s
            .into_iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(t, v)| (t as f64 / 1000.0, v))
            .collect()),
        Val::Num(_) => Err(MathError(
            "an expression must use at least one metric".into(),
        )),
        Val::Many(_) => Err(MathError("METRICS() alone is not one series".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> BTreeMap<String, Series> {
        BTreeMap::from([
            (
                "m1".to_owned(),
                vec![(60.0, 2.0), (120.0, 4.0), (180.0, 6.0)],
            ),
            ("m2".to_owned(), vec![(60.0, 1.0), (120.0, 0.0)]),
        ])
    }

    #[test]
    fn arithmetic_at_shared_timestamps() {
        let s = series();
        assert_eq!(
            evaluate("m1 + m2", &s).unwrap(),
            [(60.0, 3.0), (120.0, 4.0)]
        );
        assert_eq!(
            evaluate("100 * m2 / m1", &s).unwrap(),
            [(60.0, 50.0), (120.0, 0.0)]
        );
        // Division by zero leaves the point out.
        assert_eq!(evaluate("m1 / m2", &s).unwrap(), [(60.0, 2.0)]);
        assert_eq!(evaluate("-(m1 - 1)", &s).unwrap()[0], (60.0, -1.0));
    }

    #[test]
    fn functions_over_lists_and_metrics() {
        let s = series();
        assert_eq!(
            evaluate("SUM(METRICS())", &s).unwrap(),
            [(60.0, 3.0), (120.0, 4.0), (180.0, 6.0)]
        );
        assert_eq!(evaluate("MAX([m1, m2])", &s).unwrap()[0], (60.0, 2.0));
        assert_eq!(evaluate("AVG(m1, m2)", &s).unwrap()[1], (120.0, 2.0));
    }

    #[test]
    fn what_it_cannot_read_is_an_error() {
        let s = series();
        for bad in [
            "m3 + 1",
            "2 + 2",
            "m1 +",
            "(m1",
            "ANOMALY_DETECTION_BAND(m1)",
            "m1 $ 2",
            "METRICS()",
        ] {
            assert!(evaluate(bad, &s).is_err(), "{bad}");
        }
        let deep = format!("{}m1{}", "(".repeat(200), ")".repeat(200));
        assert!(evaluate(&deep, &s).is_err());
        assert!(evaluate(&format!("{}m1", "-".repeat(100_000)), &s).is_err());
    }
}
