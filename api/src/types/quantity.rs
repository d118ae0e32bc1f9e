//! Resource quantities (`250m`, `1`, `128Mi`, `1G`, `1e3`), evaluated exactly.
//!
//! Values are kept as a fraction of integers rather than a float, so `0.3` cores is exactly
//! `300m` and rounding up (as Kubernetes does) never adds one by accident.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// A Kubernetes resource quantity such as `250m`, `1`, `128Mi` or `1G`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Quantity(pub String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}"
    )]
    Malformed(String),
    #[error("quantity {0:?} must not be negative")]
    Negative(String),
    #[error("quantity {0:?} is too large")]
    OutOfRange(String),
}

/// `numerator / denominator`, both non-negative.
#[derive(Debug, Clone, Copy)]
struct Fraction {
    numerator: u128,
    denominator: u128,
}

/// Largest power of ten handled; beyond it the numbers overflow u128 anyway.
const MAX_DECIMAL_EXPONENT: u32 = 30;

fn pow10(exponent: u32) -> Option<u128> {
    (exponent <= MAX_DECIMAL_EXPONENT).then(|| 10u128.pow(exponent))
}

impl Quantity {
    /// The exact value, e.g. `1.5Gi` → 3·2³⁰ / 2.
    fn fraction(&self) -> Result<Fraction, QuantityError> {
        let malformed = || QuantityError::Malformed(self.0.clone());
        let out_of_range = || QuantityError::OutOfRange(self.0.clone());
        let text = self.0.trim();
        let (negative, unsigned) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_end = unsigned
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(unsigned.len());
        let (number, suffix) = unsigned.split_at(number_end);
        let (whole, fraction_digits) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction_digits.is_empty()) || fraction_digits.contains('.') {
            return Err(malformed());
        }
        let mut mantissa: u128 = 0;
        for digit in whole.bytes().chain(fraction_digits.bytes()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(u128::from(digit - b'0')))
                .ok_or_else(out_of_range)?;
        }
        if negative && mantissa != 0 {
            return Err(QuantityError::Negative(self.0.clone()));
        }
        let scale = u32::try_from(fraction_digits.len()).map_err(|_| out_of_range())?;
        let (multiplier, divisor) = suffix_factor(suffix).ok_or_else(malformed)?;
        let multiplier = multiplier.ok_or_else(out_of_range)?;
        let divisor = divisor.ok_or_else(out_of_range)?;
        Ok(Fraction {
            numerator: mantissa.checked_mul(multiplier).ok_or_else(out_of_range)?,
            denominator: pow10(scale)
                .and_then(|p| p.checked_mul(divisor))
                .ok_or_else(out_of_range)?,
        })
    }

    /// The value as a plain number (cores for cpu, bytes for memory); for display and
    /// rough arithmetic only, use [`Quantity::cpu_millis`] or [`Quantity::bytes`] to account.
    pub fn value(&self) -> Result<f64, QuantityError> {
        let f = self.fraction()?;
        Ok(f.numerator as f64 / f.denominator as f64)
    }

    /// CPU in thousandths of a core, rounded up as Kubernetes does.
    pub fn cpu_millis(&self) -> Result<u64, QuantityError> {
        let f = self.fraction()?;
        let millis = f
            .numerator
            .checked_mul(1000)
            .ok_or_else(|| QuantityError::OutOfRange(self.0.clone()))?
            .div_ceil(f.denominator);
        u64::try_from(millis).map_err(|_| QuantityError::OutOfRange(self.0.clone()))
    }

    /// Memory (or storage) in bytes, rounded up.
    pub fn bytes(&self) -> Result<u64, QuantityError> {
        let f = self.fraction()?;
        u64::try_from(f.numerator.div_ceil(f.denominator))
            .map_err(|_| QuantityError::OutOfRange(self.0.clone()))
    }

    /// Compares two quantities by value exactly (`0.5` equals `500m`).
    pub fn compare(&self, other: &Quantity) -> Result<Ordering, QuantityError> {
        let (a, b) = (self.fraction()?, other.fraction()?);
        match (
            a.numerator.checked_mul(b.denominator),
            b.numerator.checked_mul(a.denominator),
        ) {
            (Some(left), Some(right)) => Ok(left.cmp(&right)),
            // Astronomically large values: float precision is plenty to order them.
            _ => Ok((a.numerator as f64 / a.denominator as f64)
                .total_cmp(&(b.numerator as f64 / b.denominator as f64))),
        }
    }
}

/// The factor a suffix stands for, as (multiplier, divisor); `None` for unknown suffixes,
/// inner `None` for exponents too large to represent.
fn suffix_factor(suffix: &str) -> Option<(Option<u128>, Option<u128>)> {
    let binary = |power: u32| (Some(1u128 << (10 * power)), Some(1));
    let decimal = |exponent: i32| {
        if exponent >= 0 {
            (pow10(exponent.unsigned_abs()), Some(1))
        } else {
            (Some(1), pow10(exponent.unsigned_abs()))
        }
    };
    Some(match suffix {
        "" => decimal(0),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        // A bare "E" is exa; "E" or "e" followed by digits is a decimal exponent.
        "E" => decimal(18),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        exponent if exponent.starts_with(['e', 'E']) => {
            let digits = &exponent[1..];
            let unsigned = digits.strip_prefix(['+', '-']).unwrap_or(digits);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            match digits.parse::<i32>() {
                Ok(e) => decimal(e),
                Err(_) => (None, None),
            }
        }
        _ => return None,
    })
}

impl From<&str> for Quantity {
    fn from(s: &str) -> Self {
        Quantity(s.to_string())
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::from(s)
    }

    #[test]
    fn cpu_millis_table() {
        for (text, millis) in [
            ("250m", 250),
            ("2", 2000),
            ("0.5", 500),
            (".5", 500),
            ("1.", 1000),
            ("+1", 1000),
            ("0.3", 300),
            ("0.1m", 1), // rounded up, as Kubernetes does
            ("100u", 1),
            ("1k", 1_000_000),
            ("1e-3", 1),
            ("2e0", 2000),
            ("0", 0),
            ("-0", 0),
        ] {
            assert_eq!(q(text).cpu_millis(), Ok(millis), "{text}");
        }
    }

    #[test]
    fn quantities_convert_to_bytes_with_binary_and_decimal_suffixes() {
        for (text, bytes) in [
            ("128Mi", 128 * 1024 * 1024),
            ("1Ki", 1024),
            ("1.5Gi", 3 * 512 * 1024 * 1024),
            ("1G", 1_000_000_000),
            ("1e3", 1000),
            ("1E3", 1000),
            ("1E", 1_000_000_000_000_000_000),
            ("2Ei", 2 << 60),
            ("0.3k", 300),
            ("1.5", 2),
            ("500m", 1),
            (" 64Mi ", 64 << 20),
        ] {
            assert_eq!(q(text).bytes(), Ok(bytes), "{text}");
        }
    }

    #[test]
    fn bad_quantities_are_errors() {
        for bad in [
            "", "abc", "12Qi", "1.2.3", "Mi", ".", "1e", "1ex", "1 Mi", "1mm",
        ] {
            assert!(
                matches!(q(bad).bytes(), Err(QuantityError::Malformed(_))),
                "{bad}: {:?}",
                q(bad).bytes()
            );
        }
        assert_eq!(
            q("-1").cpu_millis(),
            Err(QuantityError::Negative("-1".into()))
        );
        assert_eq!(
            q("1e40").bytes(),
            Err(QuantityError::OutOfRange("1e40".into()))
        );
        assert!(matches!(
            q("20E").bytes(),
            Err(QuantityError::OutOfRange(_))
        ));
        let shown = q("abc").bytes().unwrap_err().to_string();
        assert!(shown.starts_with("quantities must match"), "{shown}");
    }

    #[test]
    fn compare_is_exact() {
        assert_eq!(q("0.5").compare(&q("500m")), Ok(Ordering::Equal));
        assert_eq!(q("0.3").compare(&q("300m")), Ok(Ordering::Equal));
        assert_eq!(q("1Gi").compare(&q("1G")), Ok(Ordering::Greater));
        assert_eq!(q("100m").compare(&q("1")), Ok(Ordering::Less));
        assert!(q("x").compare(&q("1")).is_err());
    }
}
