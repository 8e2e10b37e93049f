//! DynamoDB's numbers: exact decimals of up to 38 significant digits, with a magnitude
//! from 1E-130 to under 1E+126. Never floats: `0.1 + 0.2` is `0.3`, and a 38-digit
//! number comes back digit for digit.

use std::cmp::Ordering;

/// The most significant digits a number may have.
pub const MAX_DIGITS: usize = 38;

/// `±digits × 10^exp`, normalised: no leading or trailing zeros in `digits` (each
/// 0..=9), and zero is no digits, not negative, exponent 0. Two equal numbers are
/// therefore equal structurally.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Decimal {
    neg: bool,
    digits: Vec<u8>,
    exp: i32,
}

impl Decimal {
    pub fn zero() -> Decimal {
        Decimal {
            neg: false,
            digits: Vec::new(),
            exp: 0,
        }
    }

    pub fn from_i64(i: i64) -> Decimal {
        let neg = i < 0;
        let digits = i
            .unsigned_abs()
            .to_string()
            .bytes()
            .map(|b| b - b'0')
            .collect();
        Decimal::normalised(neg, digits, 0)
    }

    /// Reads a number as DynamoDB takes it (`-1.50`, `1e3`, `.5`), or says why not in
    /// DynamoDB's words.
    pub fn parse(s: &str) -> Result<Decimal, String> {
        let bad = || format!("The parameter cannot be converted to a numeric value: {s}");
        let t = s.trim();
        let (neg, rest) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let mut exp: i64 = match exponent {
            None => 0,
            Some(e) => {
                let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                // An exponent this long is out of range whatever the digits.
                if digits.len() > 6 {
                    return Err(if e.starts_with('-') {
                        underflow()
                    } else {
                        overflow()
                    });
                }
                e.parse().map_err(|_| bad())?
            }
        };
        exp -= frac.len() as i64;
        let digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
        let exp = i32::try_from(exp).map_err(|_| overflow())?;
        Decimal::normalised(neg, digits, exp).checked()
    }

    fn normalised(neg: bool, mut digits: Vec<u8>, mut exp: i32) -> Decimal {
        let lead = digits.iter().take_while(|d| **d == 0).count();
        digits.drain(..lead);
        while digits.last() == Some(&0) {
            digits.pop();
            exp += 1;
        }
        if digits.is_empty() {
            return Decimal::zero();
        }
        Decimal { neg, digits, exp }
    }

    /// The number if DynamoDB can store it: 38 significant digits, the magnitude in range.
    pub fn checked(self) -> Result<Decimal, String> {
        if self.digits.is_empty() {
            return Ok(self);
        }
        if self.digits.len() > MAX_DIGITS {
            return Err(
                "Attempting to store more than 38 significant digits in a Number".to_owned(),
            );
        }
        let adjusted = self.exp + self.digits.len() as i32 - 1;
        if adjusted > 125 {
            return Err(overflow());
        }
        if adjusted < -130 {
            return Err(underflow());
        }
        Ok(self)
    }

    pub fn is_zero(&self) -> bool {
        self.digits.is_empty()
    }

    /// Bytes that sort as the numbers do (a key's stored form, so that a partition reads
    /// in sort-key order): a sign byte, then the leading digit's place and the digits,
    /// both inverted for a negative number, which also ends with 0xFF so that a shorter
    /// one (-1.5) sorts after a longer one it begins (-1.55).
    pub fn order_bytes(&self) -> Vec<u8> {
        if self.is_zero() {
            return vec![0x80];
        }
        let place = (self.exp + self.digits.len() as i32 + 0x8000) as u16;
        let mut out = Vec::with_capacity(self.digits.len() + 4);
        if self.neg {
            out.push(0x40);
            out.extend((0xFFFF - place).to_be_bytes());
            out.extend(self.digits.iter().map(|d| 0xFE - d));
            out.push(0xFF);
        } else {
            out.push(0xC0);
            out.extend(place.to_be_bytes());
            out.extend(self.digits.iter().map(|d| d + 1));
        }
        out
    }

    /// How many significant digits (for the item's size).
    pub fn significant_digits(&self) -> usize {
        self.digits.len()
    }

    /// `self + other`, exact, or why DynamoDB would not store the sum.
    pub fn add(&self, other: &Decimal) -> Result<Decimal, String> {
        if self.is_zero() {
            return Ok(other.clone());
        }
        if other.is_zero() {
            return Ok(self.clone());
        }
        let exp = self.exp.min(other.exp);
        let width = |d: &Decimal| d.digits.len() + (d.exp - exp) as usize;
        // A sum this wide has more than 38 significant digits: refuse it before
        // building a huge integer.
        if width(self).max(width(other)) > 2 * MAX_DIGITS + 2 {
            return Err(
                "Attempting to store more than 38 significant digits in a Number".to_owned(),
            );
        }
        let a = self.aligned(exp);
        let b = other.aligned(exp);
        let (neg, digits) = if self.neg == other.neg {
            (self.neg, add_mag(&a, &b))
        } else {
            match cmp_mag(&a, &b) {
                Ordering::Equal => return Ok(Decimal::zero()),
                Ordering::Greater => (self.neg, sub_mag(&a, &b)),
                Ordering::Less => (other.neg, sub_mag(&b, &a)),
            }
        };
        let big_endian: Vec<u8> = digits.into_iter().rev().collect();
        Decimal::normalised(neg, big_endian, exp).checked()
    }

    pub fn neg(&self) -> Decimal {
        let mut d = self.clone();
        if !d.is_zero() {
            d.neg = !d.neg;
        }
        d
    }

    pub fn sub(&self, other: &Decimal) -> Result<Decimal, String> {
        self.add(&other.neg())
    }

    /// The digits little-endian, scaled to the exponent `exp` (at most `self.exp`).
    fn aligned(&self, exp: i32) -> Vec<u8> {
        let mut out = vec![0u8; (self.exp - exp) as usize];
        out.extend(self.digits.iter().rev());
        out
    }
}

fn overflow() -> String {
    "Number overflow. Attempting to store a number with magnitude larger than supported range"
        .to_owned()
}

fn underflow() -> String {
    "Number underflow. Attempting to store a number with magnitude smaller than supported range"
        .to_owned()
}

fn add_mag(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len().max(b.len()) + 1);
    let mut carry = 0;
    for i in 0..a.len().max(b.len()) {
        let s = a.get(i).copied().unwrap_or(0) + b.get(i).copied().unwrap_or(0) + carry;
        out.push(s % 10);
        carry = s / 10;
    }
    if carry > 0 {
        out.push(carry);
    }
    out
}

/// `a - b` for `a >= b`, little-endian.
fn sub_mag(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    let mut borrow = 0i8;
    for (i, x) in a.iter().enumerate() {
        let mut d = *x as i8 - b.get(i).copied().unwrap_or(0) as i8 - borrow;
        borrow = 0;
        if d < 0 {
            d += 10;
            borrow = 1;
        }
        out.push(d as u8);
    }
    out
}

fn cmp_mag(a: &[u8], b: &[u8]) -> Ordering {
    let len = |v: &[u8]| v.len() - v.iter().rev().take_while(|d| **d == 0).count();
    len(a).cmp(&len(b)).then_with(|| {
        for i in (0..len(a)).rev() {
            match a[i].cmp(&b[i]) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        Ordering::Equal
    })
}

impl Ord for Decimal {
    fn cmp(&self, other: &Decimal) -> Ordering {
        let sign = |d: &Decimal| {
            if d.is_zero() {
                0
            } else if d.neg {
                -1
            } else {
                1
            }
        };
        match sign(self).cmp(&sign(other)) {
            Ordering::Equal if sign(self) == 0 => Ordering::Equal,
            Ordering::Equal => {
                // Same sign: compare magnitudes by the leading digit's place, then digits
                // (normalised digits have no trailing zeros, so a prefix is smaller).
                let place = |d: &Decimal| d.exp + d.digits.len() as i32;
                let mag = place(self)
                    .cmp(&place(other))
                    .then_with(|| self.digits.cmp(&other.digits));
                if self.neg { mag.reverse() } else { mag }
            }
            o => o,
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Decimal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for Decimal {
    /// Plain decimal notation, as DynamoDB answers (`1E2` is `100`, `1.50` is `1.5`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_zero() {
            return f.write_str("0");
        }
        let mut s = String::new();
        if self.neg {
            s.push('-');
        }
        let digits: String = self.digits.iter().map(|d| char::from(b'0' + d)).collect();
        if self.exp >= 0 {
            s.push_str(&digits);
            s.extend(std::iter::repeat_n('0', self.exp as usize));
        } else {
            let point = self.digits.len() as i32 + self.exp;
            if point > 0 {
                s.push_str(&digits[..point as usize]);
                s.push('.');
                s.push_str(&digits[point as usize..]);
            } else {
                s.push_str("0.");
                s.extend(std::iter::repeat_n('0', (-point) as usize));
                s.push_str(&digits);
            }
        }
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    #[test]
    fn parses_and_prints_normalised() {
        for (input, out) in [
            ("0", "0"),
            ("-0", "0"),
            ("0.000", "0"),
            ("1.50", "1.5"),
            ("1e2", "100"),
            ("1E-3", "0.001"),
            ("+7", "7"),
            ("-12.3400", "-12.34"),
            (".5", "0.5"),
            ("5.", "5"),
            ("00012", "12"),
            (
                "12345678901234567890123456789012345678",
                "12345678901234567890123456789012345678",
            ),
            ("1e125", &format!("1{}", "0".repeat(125))),
        ] {
            assert_eq!(n(input).to_string(), out, "{input}");
        }
    }

    #[test]
    fn refuses_what_dynamodb_refuses() {
        for bad in [
            "", "abc", "1.2.3", "--1", "1e", "e5", ".", "NaN", "Infinity", "0x10",
        ] {
            assert!(
                Decimal::parse(bad)
                    .unwrap_err()
                    .contains("cannot be converted"),
                "{bad}"
            );
        }
        assert!(
            Decimal::parse("123456789012345678901234567890123456789")
                .unwrap_err()
                .contains("38 significant digits")
        );
        assert!(Decimal::parse("1e126").unwrap_err().contains("overflow"));
        assert!(Decimal::parse("1e-131").unwrap_err().contains("underflow"));
        assert!(Decimal::parse("1e-130").is_ok());
        assert!(
            Decimal::parse("1e99999999")
                .unwrap_err()
                .contains("overflow")
        );
    }

    #[test]
    fn arithmetic_is_exact() {
        assert_eq!(n("0.1").add(&n("0.2")).unwrap(), n("0.3"));
        assert_eq!(n("1").sub(&n("0.9")).unwrap().to_string(), "0.1");
        assert_eq!(n("-5").add(&n("5")).unwrap(), Decimal::zero());
        assert_eq!(n("-5").add(&n("3")).unwrap().to_string(), "-2");
        assert_eq!(n("999").add(&n("1")).unwrap().to_string(), "1000");
        assert_eq!(
            n("99999999999999999999999999999999999999")
                .sub(&n("1"))
                .unwrap()
                .to_string(),
            "99999999999999999999999999999999999998"
        );
        assert!(
            n("99999999999999999999999999999999999999")
                .add(&n("1"))
                .is_ok()
        );
        assert!(
            n("1e30")
                .add(&n("1e-30"))
                .unwrap_err()
                .contains("38 significant digits")
        );
        assert!(n("1e100").add(&n("1e-100")).is_err());
    }

    #[test]
    fn orders_numerically() {
        let mut v: Vec<Decimal> = ["10", "-1", "2", "0", "-10.5", "1e-5", "1.5", "-0.001"]
            .iter()
            .map(|s| n(s))
            .collect();
        v.sort();
        let s: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(
            s,
            ["-10.5", "-1", "-0.001", "0", "0.00001", "1.5", "2", "10"]
        );
        assert_eq!(n("1.0"), n("1"));
        assert_eq!(n("100").cmp(&n("1e2")), Ordering::Equal);
    }

    quickcheck::quickcheck! {
        fn add_agrees_with_integers(a: i32, b: i32) -> bool {
            let sum = Decimal::from_i64(i64::from(a)).add(&Decimal::from_i64(i64::from(b))).unwrap();
            sum == Decimal::from_i64(i64::from(a) + i64::from(b))
        }

        fn order_agrees_with_integers(a: i64, b: i64) -> bool {
            Decimal::from_i64(a).cmp(&Decimal::from_i64(b)) == a.cmp(&b)
        }

        fn prints_and_parses_back(a: i64, scale: u8) -> bool {
            let d = Decimal::parse(&format!("{a}e-{}", scale % 40)).unwrap();
            Decimal::parse(&d.to_string()).unwrap() == d
        }
    }
}
