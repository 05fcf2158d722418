//! Reading admin API request bodies field by field, so every invalid input gets a message
//! that names the field and the expected form.
//!
//! Money travels as decimal strings such as `"12.50"`. A JSON number is rejected, because
//! many JSON libraries read numbers as binary floats, which cannot hold most cent amounts
//! exactly.

use serde_json::{Map, Value};

use super::error::AdminError;
use crate::accounts::Billing;
use crate::money::Usd;

/// A JSON object body.
pub struct Body {
    fields: Map<String, Value>,
}

impl Body {
    /// Parses a body that must be a JSON object with only the `allowed` keys.
    pub fn parse(bytes: &[u8], allowed: &[&str]) -> Result<Body, AdminError> {
        let value: Value = serde_json::from_slice(bytes).map_err(|error| {
            AdminError::invalid(
                "invalid_json",
                format!("invalid JSON in the request body: {error}"),
            )
        })?;
        let Value::Object(fields) = value else {
            return Err(AdminError::invalid(
                "invalid_json",
                "the request body must be a JSON object",
            ));
        };
        if let Some(unknown) = fields.keys().find(|key| !allowed.contains(&key.as_str())) {
            return Err(AdminError::invalid(
                "unknown_field",
                format!(
                    "unknown field {unknown:?}; this request accepts {}",
                    allowed.join(", ")
                ),
            ));
        }
        Ok(Body { fields })
    }

    /// Reads a string field, where `null` counts as absent.
    pub fn text(&self, name: &str) -> Result<Option<&str>, AdminError> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(AdminError::invalid(
                "invalid_field",
                format!("{name} must be a string, not {}", json_type(other)),
            )),
        }
    }

    pub fn required_text(&self, name: &str) -> Result<&str, AdminError> {
        self.text(name)?
            .ok_or_else(|| AdminError::invalid("missing_field", format!("missing field {name}")))
    }

    /// Reads a positive amount of US dollars written as a decimal string.
    pub fn money(&self, name: &str) -> Result<Option<Usd>, AdminError> {
        let text = match self.fields.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(text)) => text,
            Some(Value::Number(number)) => {
                return Err(AdminError::invalid(
                    "invalid_amount",
                    format!(
                        "{name} must be a decimal string such as \"{number}\", not a JSON number: \
                         JSON numbers are often read as binary floats, which cannot hold most amounts exactly"
                    ),
                ));
            }
            Some(other) => {
                return Err(AdminError::invalid(
                    "invalid_amount",
                    format!(
                        "{name} must be a decimal string such as \"12.50\", not {}",
                        json_type(other)
                    ),
                ));
            }
        };
        let amount = Usd::parse_positive(text)
            .map_err(|error| AdminError::invalid("invalid_amount", format!("{name}: {error}")))?;
        Ok(Some(amount))
    }

    pub fn required_money(&self, name: &str) -> Result<Usd, AdminError> {
        self.money(name)?.ok_or_else(|| {
            AdminError::invalid(
                "missing_field",
                format!("missing field {name}, a decimal string such as \"12.50\""),
            )
        })
    }

    /// Reads the terms in `billing` (`prepaid` or `postpaid`) and `credit_limit_usd`.
    pub fn billing(&self) -> Result<Billing, AdminError> {
        let credit_limit = self.money("credit_limit_usd")?;
        match self.required_text("billing")? {
            "prepaid" if credit_limit.is_some() => Err(AdminError::invalid(
                "invalid_terms",
                "credit_limit_usd applies only to postpaid customers; a prepaid customer spends only what the wallet holds",
            )),
            "prepaid" => Ok(Billing::Prepaid),
            "postpaid" => Ok(Billing::Postpaid { credit_limit }),
            other => Err(AdminError::invalid(
                "invalid_terms",
                format!("invalid billing {other:?}: expected \"prepaid\" or \"postpaid\""),
            )),
        }
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal::dec;

    use super::*;

    const FIELDS: &[&str] = &["amount_usd", "reference", "billing", "credit_limit_usd"];

    fn body(text: &str) -> Body {
        Body::parse(text.as_bytes(), FIELDS).expect("body parses")
    }

    #[test]
    fn money_must_be_a_string() {
        let cases = [
            (
                r#"{"amount_usd": "12.50"}"#,
                Ok(Some(Usd::new(dec!(12.50)))),
            ),
            (r#"{"amount_usd": null}"#, Ok(None)),
            ("{}", Ok(None)),
            (r#"{"amount_usd": 12.5}"#, Err("not a JSON number")),
            (r#"{"amount_usd": 12}"#, Err("not a JSON number")),
            (r#"{"amount_usd": true}"#, Err("not a boolean")),
            (r#"{"amount_usd": "abc"}"#, Err("invalid amount")),
            (r#"{"amount_usd": "-1"}"#, Err("greater than zero")),
            (r#"{"amount_usd": "0.0000000001"}"#, Err("9 decimal places")),
        ];
        for (text, expected) in cases {
            let result = body(text).money("amount_usd");
            match (result, expected) {
                (Ok(amount), Ok(wanted)) => assert_eq!(amount, wanted, "{text}"),
                (Err(error), Err(fragment)) => {
                    assert_eq!(error.code, "invalid_amount", "{text}");
                    assert!(
                        error.message.contains(fragment),
                        "{text}: {}",
                        error.message
                    );
                }
                (result, _) => panic!("{text}: unexpected {result:?}"),
            }
        }
    }

    #[test]
    fn terms_are_read() {
        let cases = [
            (r#"{"billing": "prepaid"}"#, Ok(Billing::Prepaid)),
            (
                r#"{"billing": "postpaid"}"#,
                Ok(Billing::Postpaid { credit_limit: None }),
            ),
            (
                r#"{"billing": "postpaid", "credit_limit_usd": "500"}"#,
                Ok(Billing::Postpaid {
                    credit_limit: Some(Usd::new(dec!(500))),
                }),
            ),
            (
                r#"{"billing": "prepaid", "credit_limit_usd": "5"}"#,
                Err("invalid_terms"),
            ),
            (r#"{"billing": "monthly"}"#, Err("invalid_terms")),
            ("{}", Err("missing_field")),
            (
                r#"{"billing": "postpaid", "credit_limit_usd": 5}"#,
                Err("invalid_amount"),
            ),
        ];
        for (text, expected) in cases {
            let result = body(text).billing().map_err(|error| error.code);
            assert_eq!(result, expected, "{text}");
        }
    }

    #[test]
    fn malformed_bodies_are_rejected() {
        let cases = [
            ("", "invalid_json"),
            ("{", "invalid_json"),
            ("[1]", "invalid_json"),
            (r#"{"amount": "1"}"#, "unknown_field"),
        ];
        for (text, code) in cases {
            let error = Body::parse(text.as_bytes(), FIELDS)
                .err()
                .map(|error| error.code);
            assert_eq!(error, Some(code), "{text:?}");
        }
        let error = body(r#"{"reference": 7}"#)
            .text("reference")
            .expect_err("number");
        assert_eq!(error.message, "reference must be a string, not a number");
    }
}
