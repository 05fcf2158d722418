//! JSON encodings that Blnk needs and serde's defaults do not provide.
//!
//! Blnk stores amounts as arbitrary-size integers and writes them as bare JSON integers,
//! which can exceed both 2^53 and 2^64. Without serde_json's `arbitrary_precision` feature an
//! integer above `u64::MAX` that passes through `deserialize_any` (or a `serde_json::Value`)
//! becomes an `f64`, so amounts are read from the raw JSON text of the value instead.

use chrono::{DateTime, Datelike, Utc};
use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Deserializes an amount in minor units from a JSON integer of any size up to `i128`, or
/// from a string of digits. Fractions and exponents are rejected rather than rounded.
///
/// The value is borrowed as raw text, so the document must be parsed from bytes or a string
/// (`serde_json::from_slice` or `from_str`), not from a `serde_json::Value`.
pub(crate) fn deserialize_amount<'de, D>(deserializer: D) -> Result<i128, D::Error>
where
    D: Deserializer<'de>,
{
    let raw = <&RawValue>::deserialize(deserializer)?;
    parse_amount(raw.get()).map_err(D::Error::custom)
}

fn parse_amount(text: &str) -> Result<i128, String> {
    let digits = text
        .strip_prefix('"')
        .and_then(|quoted| quoted.strip_suffix('"'))
        .unwrap_or(text);
    digits
        .parse::<i128>()
        .map_err(|_| format!("invalid amount {text}: expected an integer number of minor units"))
}

/// Deserializes `meta_data`, reading `null` or an absent field as an empty map.
pub(crate) fn deserialize_meta_data<'de, D>(deserializer: D) -> Result<Map<String, Value>, D::Error>
where
    D: Deserializer<'de>,
{
    let meta_data = Option::<Map<String, Value>>::deserialize(deserializer)?;
    Ok(meta_data.unwrap_or_default())
}

/// Deserializes an optional timestamp. Blnk writes Go's zero time `0001-01-01T00:00:00Z` for
/// a time that was never set, which becomes `None`.
pub(crate) fn deserialize_optional_time<'de, D>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error>
where
    D: Deserializer<'de>,
{
    let time = Option::<DateTime<Utc>>::deserialize(deserializer)?;
    Ok(time.filter(|time| time.year() > 1))
}

/// A decimal written as a JSON number with exactly its decimal text, such as `12.50`.
/// It never passes through a binary float.
pub(crate) struct JsonDecimal<'a>(pub &'a Decimal);

impl Serialize for JsonDecimal<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // `Decimal`'s `Display` never uses an exponent, so its text is a valid JSON number.
        let raw = RawValue::from_string(self.0.to_string()).map_err(S::Error::custom)?;
        raw.serialize(serializer)
    }
}

/// A UTC timestamp in RFC 3339 with a `Z` suffix and as many fractional digits as needed
/// (none, 3, 6 or 9), written without an intermediate `String`.
pub(crate) struct Rfc3339(pub DateTime<Utc>);

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // AutoSi writes the fraction in groups of three digits and leaves out a zero one.
        let text = self.0.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        serializer.serialize_str(&text)
    }
}

/// A UTC timestamp in RFC 3339 with whole seconds, rounded up, such as
/// `2026-12-04T15:57:38Z`. Blnk validates `inflight_expiry_date` against the layout
/// `2006-01-02T15:04:05Z07:00`, which has no fractional part. Rounding up means a hold never
/// expires before the requested instant.
pub(crate) struct Rfc3339Seconds(pub DateTime<Utc>);

impl Serialize for Rfc3339Seconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seconds = self.0.timestamp();
        if self.0.timestamp_subsec_nanos() > 0 {
            seconds += 1;
        }
        let rounded = DateTime::<Utc>::from_timestamp(seconds, 0)
            .ok_or_else(|| S::Error::custom("timestamp out of range"))?;
        serializer.serialize_str(&rounded.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal::dec;

    #[derive(Deserialize)]
    struct Amount {
        #[serde(deserialize_with = "deserialize_amount")]
        value: i128,
    }

    fn amount(json: &str) -> Result<i128, serde_json::Error> {
        let text = format!(r#"{{"value":{json}}}"#);
        serde_json::from_str::<Amount>(&text).map(|parsed| parsed.value)
    }

    #[test]
    fn amounts_parse_at_any_integer_size() {
        let cases: &[(&str, i128)] = &[
            ("0", 0),
            ("-10002468000", -10_002_468_000),
            ("9007199254740993", 9_007_199_254_740_993),
            ("18446744073709551617", 18_446_744_073_709_551_617),
            ("1208925819614629174706176", 1 << 80),
            ("170141183460469231731687303715884105727", i128::MAX),
            ("-170141183460469231731687303715884105728", i128::MIN),
            (r#""1208925819614629174706177""#, (1 << 80) + 1),
            (r#""-42""#, -42),
        ];
        for (json, expected) in cases {
            assert_eq!(amount(json).ok(), Some(*expected), "input {json}");
        }
    }

    #[test]
    fn non_integer_amounts_are_rejected() {
        for json in ["1.5", "2290.0", "1e3", r#""12.5""#, "true", "null", r#""""#] {
            assert!(amount(json).is_err(), "input {json} should be rejected");
        }
        assert!(amount("170141183460469231731687303715884105728").is_err());
    }

    #[test]
    fn decimals_serialize_as_exact_numbers() {
        let cases = [
            (dec!(12.50), "12.50"),
            (dec!(1), "1"),
            (dec!(0.000000001), "0.000000001"),
            (
                dec!(79228162514264337593543950335),
                "79228162514264337593543950335",
            ),
        ];
        for (value, expected) in cases {
            let text = serde_json::to_string(&JsonDecimal(&value)).ok();
            assert_eq!(text.as_deref(), Some(expected));
        }
    }

    #[test]
    fn timestamps_serialize_in_utc_with_z() {
        let cases = [
            (0, r#""2026-12-04T15:57:38Z""#),
            (120_000_000, r#""2026-12-04T15:57:38.120Z""#),
            (705_414_000, r#""2026-12-04T15:57:38.705414Z""#),
            (1, r#""2026-12-04T15:57:38.000000001Z""#),
        ];
        for (nanos, expected) in cases {
            let time = DateTime::<Utc>::from_timestamp(1_796_399_858, nanos);
            let text = time.and_then(|time| serde_json::to_string(&Rfc3339(time)).ok());
            assert_eq!(text.as_deref(), Some(expected), "nanos {nanos}");
        }
    }

    #[test]
    fn expiry_seconds_round_up() {
        let cases = [
            (0, r#""2026-12-04T15:57:38Z""#),
            (1, r#""2026-12-04T15:57:39Z""#),
            (999_999_999, r#""2026-12-04T15:57:39Z""#),
        ];
        for (nanos, expected) in cases {
            let time = DateTime::<Utc>::from_timestamp(1_796_399_858, nanos);
            let text = time.and_then(|time| serde_json::to_string(&Rfc3339Seconds(time)).ok());
            assert_eq!(text.as_deref(), Some(expected), "nanos {nanos}");
        }
    }

    #[test]
    fn go_zero_time_reads_as_none() {
        #[derive(Deserialize)]
        struct Times {
            #[serde(default, deserialize_with = "deserialize_optional_time")]
            at: Option<DateTime<Utc>>,
        }
        let parse = |json: &str| serde_json::from_str::<Times>(json).map(|times| times.at);
        assert_eq!(parse(r#"{"at":"0001-01-01T00:00:00Z"}"#).ok(), Some(None));
        assert_eq!(parse(r#"{"at":null}"#).ok(), Some(None));
        assert_eq!(parse("{}").ok(), Some(None));
        let set = parse(r#"{"at":"2026-12-04T15:57:38Z"}"#).ok().flatten();
        assert_eq!(set.map(|time| time.timestamp()), Some(1_796_399_858));
    }
}
