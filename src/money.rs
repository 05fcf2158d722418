//! Money and token amounts as exact types.
//!
//! USD amounts are `rust_decimal::Decimal` inside [`Usd`]. The ledger stores
//! integers in minor units, and tollgate writes USD at one fixed precision
//! (1e9, nano-dollars), so [`Usd::to_nanos`] is the one place where a
//! decimal becomes a ledger amount.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Minor units per US dollar in every USD amount tollgate writes to Blnk.
pub const USD_PRECISION: i64 = 1_000_000_000;

/// Decimal places of [`USD_PRECISION`].
pub const USD_SCALE: u32 = 9;

/// Minor units per token in every TOKENS amount tollgate writes to Blnk.
pub const TOKENS_PRECISION: i64 = 1;

/// An exact amount of US dollars.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Usd(#[serde(with = "rust_decimal::serde::str")] Decimal);

/// An amount of USD in ledger minor units (1e-9 USD).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Nanos(pub i128);

/// Reasons a text is not a valid USD amount.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AmountError {
    #[error("invalid amount {0:?}: expected a decimal number of US dollars such as 12.50")]
    Invalid(String),
    #[error("invalid amount {0:?}: the amount must be greater than zero")]
    NotPositive(String),
    #[error("invalid amount {0:?}: the ledger stores at most 9 decimal places (nano-dollars)")]
    TooPrecise(String),
}

impl Usd {
    pub const ZERO: Usd = Usd(Decimal::ZERO);

    pub fn new(value: Decimal) -> Self {
        Usd(value)
    }

    pub fn as_decimal(self) -> Decimal {
        self.0
    }

    /// Rounds to the ledger precision, half away from zero.
    pub fn to_nanos(self) -> Nanos {
        let rounded = self
            .0
            .round_dp_with_strategy(USD_SCALE, RoundingStrategy::MidpointAwayFromZero);
        let scaled = rounded.mantissa() * 10i128.pow(USD_SCALE - rounded.scale());
        Nanos(scaled)
    }

    /// Parses a positive amount typed by an operator, such as `12.50`.
    /// More than nine decimal places cannot be stored and is rejected rather than rounded.
    pub fn parse_positive(text: &str) -> Result<Usd, AmountError> {
        // Plain digits with an optional fraction only: no sign, exponent or separators, so
        // what the operator typed is exactly the amount recorded.
        let trimmed = text.trim();
        let (whole, fraction) = trimmed.split_once('.').unwrap_or((trimmed, "0"));
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if trimmed.starts_with('-') {
            return Err(AmountError::NotPositive(text.to_string()));
        }
        if !digits(whole) || !digits(fraction) {
            return Err(AmountError::Invalid(text.to_string()));
        }
        let value =
            Decimal::from_str(trimmed).map_err(|_| AmountError::Invalid(text.to_string()))?;
        if value <= Decimal::ZERO {
            return Err(AmountError::NotPositive(text.to_string()));
        }
        if value.normalize().scale() > USD_SCALE {
            return Err(AmountError::TooPrecise(text.to_string()));
        }
        Ok(Usd(value))
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl std::ops::Add for Usd {
    type Output = Usd;
    fn add(self, other: Usd) -> Usd {
        Usd(self.0 + other.0)
    }
}

impl std::ops::Sub for Usd {
    type Output = Usd;
    fn sub(self, other: Usd) -> Usd {
        Usd(self.0 - other.0)
    }
}

impl std::iter::Sum for Usd {
    fn sum<I: Iterator<Item = Usd>>(iter: I) -> Usd {
        iter.fold(Usd::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.normalize())
    }
}

impl Nanos {
    pub const ZERO: Nanos = Nanos(0);

    /// Converts back to dollars. Ledger figures beyond 2^96 nano-dollars cannot occur in
    /// practice; such a value saturates rather than panics.
    pub fn to_usd(self) -> Usd {
        let value = Decimal::try_from_i128_with_scale(self.0, USD_SCALE).unwrap_or(if self.0 < 0 {
            Decimal::MIN
        } else {
            Decimal::MAX
        });
        Usd(value.normalize())
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Serde format for [`Nanos`] as a decimal string, for JSON stores whose integers stop at
/// 64 bits (serde_json's `Value`). Reading also accepts a plain JSON integer.
pub mod nanos_text {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Nanos;

    pub fn serialize<S: Serializer>(value: &Nanos, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&value.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Nanos, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            Text(String),
            Integer(i64),
        }
        match Text::deserialize(deserializer)? {
            Text::Text(text) => text.parse().map(Nanos).map_err(serde::de::Error::custom),
            Text::Integer(value) => Ok(Nanos(i128::from(value))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    #[test]
    fn nanos_round_half_away_from_zero() {
        let cases = [
            (dec!(0.00000165), 1650),
            (dec!(0.000077625), 77625),
            (dec!(0.0000000005), 1),
            (dec!(0.0000000004999), 0),
            (dec!(-0.0000000005), -1),
            (dec!(12), 12_000_000_000),
            (dec!(0.1234567895), 123456790),
        ];
        for (usd, nanos) in cases {
            assert_eq!(Usd::new(usd).to_nanos(), Nanos(nanos), "{usd}");
        }
    }

    #[test]
    fn nanos_back_to_usd_is_exact() {
        assert_eq!(Nanos(1650).to_usd(), Usd::new(dec!(0.00000165)));
        assert_eq!(Nanos(-10_002_468_000).to_usd().to_string(), "-10.002468");
    }

    #[test]
    fn nanos_text_round_trips_beyond_64_bits() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Holder {
            #[serde(with = "nanos_text")]
            amount: Nanos,
        }
        let big = Holder {
            amount: Nanos(i128::from(u64::MAX) * 3),
        };
        let value = serde_json::to_value(&big).unwrap();
        assert_eq!(value["amount"], "55340232221128654845");
        assert_eq!(serde_json::from_value::<Holder>(value).unwrap(), big);
        let plain: Holder = serde_json::from_str(r#"{"amount":1650}"#).unwrap();
        assert_eq!(plain.amount, Nanos(1650));
    }

    #[test]
    fn operator_amounts_parse_strictly() {
        assert_eq!(Usd::parse_positive("12.50").unwrap(), Usd::new(dec!(12.50)));
        assert_eq!(Usd::parse_positive(" 7 ").unwrap(), Usd::new(dec!(7)));
        for odd in ["1.5e2", "+1", "1,000", ".5", "5.", "1_000", ""] {
            assert!(
                matches!(Usd::parse_positive(odd), Err(AmountError::Invalid(_))),
                "{odd:?}"
            );
        }
        assert!(matches!(
            Usd::parse_positive("abc"),
            Err(AmountError::Invalid(_))
        ));
        assert!(matches!(
            Usd::parse_positive("0"),
            Err(AmountError::NotPositive(_))
        ));
        assert!(matches!(
            Usd::parse_positive("-1"),
            Err(AmountError::NotPositive(_))
        ));
        assert!(matches!(
            Usd::parse_positive("0.0000000001"),
            Err(AmountError::TooPrecise(_))
        ));
    }
}
