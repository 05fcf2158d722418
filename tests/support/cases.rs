//! Acceptance cases: a client request, what upstream answers, and what must be billed.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use super::blnk::{FakeBlnk, TxnStatus, TxnView};

/// One acceptance case file from tests/fixtures/cases.
pub struct Case {
    pub json: Value,
}

impl Case {
    pub fn load(name: &str) -> Case {
        let path = format!(
            "{}/tests/fixtures/cases/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Case {
            json: serde_json::from_str(&text).expect("case is JSON"),
        }
    }

    pub fn request_body(&self) -> Value {
        self.json["client_request"]["body"].clone()
    }

    pub fn upstream_status(&self) -> u16 {
        self.json["upstream_status"]
            .as_u64()
            .map_or(200, |s| s as u16)
    }

    pub fn upstream_json(&self) -> Value {
        self.json["upstream_response"].clone()
    }

    /// The upstream stream as the writes the case lists.
    pub fn upstream_writes(&self) -> Vec<String> {
        self.json["upstream_response"]
            .as_array()
            .expect("a streamed case lists its writes")
            .iter()
            .map(|w| w.as_str().expect("each write is a string").to_string())
            .collect()
    }

    pub fn expected(&self) -> &Value {
        &self.json["expected"]
    }

    pub fn expected_status(&self) -> u16 {
        self.expected()["http_status"].as_u64().expect("status") as u16
    }

    pub fn expected_nanos(&self) -> i128 {
        usd_to_nanos(self.expected()["usd"].as_str().expect("usd"))
    }

    pub fn expected_tokens(&self) -> i128 {
        let e = self.expected();
        (e["prompt_tokens"].as_u64().unwrap_or(0) + e["completion_tokens"].as_u64().unwrap_or(0))
            as i128
    }
}

/// Converts an exact decimal USD text to nano-dollars; panics if it is not whole nanos.
pub fn usd_to_nanos(text: &str) -> i128 {
    let value = Decimal::from_str(text).expect("decimal") * Decimal::from(1_000_000_000u64);
    assert!(
        value.fract().is_zero(),
        "{text} is not a whole number of nano-dollars"
    );
    value.mantissa() / 10i128.pow(value.scale())
}

/// The applied charge legs of one request.
pub struct Charge {
    pub usd: Option<TxnView>,
    pub tokens: Option<TxnView>,
}

impl Charge {
    pub fn usd_nanos(&self) -> i128 {
        self.usd.as_ref().map_or(0, |t| t.precise_amount)
    }

    pub fn tokens(&self) -> i128 {
        self.tokens.as_ref().map_or(0, |t| t.precise_amount)
    }
}

/// Applied legs of `request_id` whose reference marks a usage charge (any attempt).
pub fn charges_of(blnk: &FakeBlnk, request_id: &str) -> Vec<TxnView> {
    blnk.transactions_with_reference_prefix(&format!("tg:{request_id}:"))
        .into_iter()
        .filter(|t| t.status == TxnStatus::Applied)
        .filter(|t| t.reference.contains(":usd") || t.reference.contains(":tokens"))
        .filter(|t| !t.reference.ends_with("_refund"))
        .collect()
}

/// The single charge of a request; panics if there is more than one leg of a kind.
pub fn charge_of(blnk: &FakeBlnk, request_id: &str) -> Charge {
    let legs = charges_of(blnk, request_id);
    let usd: Vec<_> = legs
        .iter()
        .filter(|t| t.currency == "USD")
        .cloned()
        .collect();
    let tokens: Vec<_> = legs
        .iter()
        .filter(|t| t.currency == "TOKENS")
        .cloned()
        .collect();
    assert!(
        usd.len() <= 1,
        "request {request_id} has {} USD legs",
        usd.len()
    );
    assert!(
        tokens.len() <= 1,
        "request {request_id} has {} TOKENS legs",
        tokens.len()
    );
    Charge {
        usd: usd.into_iter().next(),
        tokens: tokens.into_iter().next(),
    }
}

/// Every applied usage leg in the fake, across requests.
pub fn all_charge_legs(blnk: &FakeBlnk) -> Vec<TxnView> {
    blnk.transactions()
        .into_iter()
        .filter(|t| t.status == TxnStatus::Applied && t.reference.starts_with("tg:"))
        .filter(|t| {
            t.meta_data
                .get("tollgate_leg")
                .and_then(Value::as_str)
                .is_some_and(|l| l == "usd" || l == "tokens")
        })
        .collect()
}
