//! Ledgers, identities and balances: creation, reads, metadata updates and historical
//! balances.

use chrono::SecondsFormat;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::errors::{ApiError, Reply};
use super::records::{
    Balance, BalanceStyle, GENERAL_LEDGER_ID, IDENTITY_TEXT_FIELDS, Identity, Ledger,
};
use super::store::Store;
use super::values::{bool_field, new_id, parse_time, string_field};
use super::views::TxnStatus;

/// `POST /ledgers`. Names are not unique: the same name twice makes two ledgers.
pub fn create_ledger(store: &mut Store, body: &Value) -> Reply {
    let Value::Object(object) = body else {
        return ApiError::new("GEN_MALFORMED_REQUEST", "Invalid input")
            .legacy_errors()
            .into();
    };
    let Ok(name) = string_field(object, "name") else {
        return ApiError::new("GEN_MALFORMED_REQUEST", "Invalid input")
            .legacy_errors()
            .into();
    };
    if name.is_empty() {
        return ApiError::new("GEN_VALIDATION_ERROR", "name: cannot be blank.")
            .legacy_errors()
            .into();
    }
    let ledger = Ledger {
        id: new_id("ldg"),
        name,
        created_at: store.clock.stamp(),
        meta: object_meta(object),
    };
    let body = ledger.to_json();
    store.ledgers.push(ledger);
    Reply::json(201, &body)
}

pub fn get_ledger(store: &Store, id: &str) -> Reply {
    match store.ledgers.iter().find(|ledger| ledger.id == id) {
        Some(ledger) => Reply::json(200, &ledger.to_json()),
        None => not_found("LGR_NOT_FOUND", &format!("Ledger with ID '{id}' not found")),
    }
}

/// `POST /identities`. A caller-chosen `identity_id` must be `idt_<uuid>`; a duplicate is a
/// 400 `IDT_VALIDATION_ERROR`, not a 409.
pub fn create_identity(store: &mut Store, body: &Value) -> Reply {
    let Value::Object(object) = body else {
        return ApiError::new(
            "GEN_MALFORMED_REQUEST",
            "invalid request body: expected a JSON object",
        )
        .into();
    };
    let identity = match bind_identity(store, object) {
        Ok(identity) => identity,
        Err(error) => return error.into(),
    };
    let body = identity.to_json();
    store.identities.push(identity);
    Reply::json(201, &body)
}

fn bind_identity(store: &mut Store, object: &Map<String, Value>) -> Result<Identity, ApiError> {
    let malformed = |field: &str| {
        ApiError::new(
            "GEN_MALFORMED_REQUEST",
            format!("invalid value for field {field}"),
        )
    };
    let mut text = Map::new();
    for field in IDENTITY_TEXT_FIELDS {
        let value = string_field(object, field).map_err(|_| malformed(field))?;
        text.insert(field.to_owned(), Value::from(value));
    }
    let dob_text = string_field(object, "dob").map_err(|_| malformed("dob"))?;
    let dob = match dob_text.as_str() {
        "" => None,
        text => Some(parse_time(text).ok_or_else(|| malformed("dob"))?),
    };

    let requested = string_field(object, "identity_id").map_err(|_| malformed("identity_id"))?;
    let id = if requested.is_empty() {
        new_id("idt")
    } else {
        checked_identity_id(store, requested)?
    };
    Ok(Identity {
        id,
        text,
        dob,
        created_at: store.clock.stamp(),
        meta: object_meta(object),
    })
}

fn checked_identity_id(store: &Store, requested: String) -> Result<String, ApiError> {
    let Some(suffix) = requested.strip_prefix("idt_") else {
        return Err(ApiError::new(
            "IDT_VALIDATION_ERROR",
            "identity_id must start with the 'idt_' prefix",
        ));
    };
    if Uuid::parse_str(suffix).is_err() {
        let message = "identity_id suffix after 'idt_' must be a valid UUID";
        return Err(ApiError::new("IDT_VALIDATION_ERROR", message));
    }
    if store
        .identities
        .iter()
        .any(|identity| identity.id == requested)
    {
        let message = format!("Identity already exists: {requested}");
        return Err(ApiError::new("IDT_VALIDATION_ERROR", message));
    }
    Ok(requested)
}

pub fn get_identity(store: &Store, id: &str) -> Reply {
    match store.identities.iter().find(|identity| identity.id == id) {
        Some(identity) => Reply::json(200, &identity.to_json()),
        None => not_found(
            "IDT_NOT_FOUND",
            &format!("Identity with ID '{id}' not found"),
        ),
    }
}

/// `POST /balances`. `precision` is accepted and ignored: balances carry no precision.
pub fn create_balance(store: &mut Store, body: &Value) -> Reply {
    let Value::Object(object) = body else {
        return ApiError::new("GEN_MALFORMED_REQUEST", "Invalid input").into();
    };
    let balance = match bind_balance(store, object) {
        Ok(balance) => balance,
        Err(error) => return error.into(),
    };
    let balance = store.insert_balance(balance);
    Reply::json(201, &balance.to_json(BalanceStyle::Created))
}

fn bind_balance(store: &mut Store, object: &Map<String, Value>) -> Result<Balance, ApiError> {
    let malformed = || ApiError::new("GEN_MALFORMED_REQUEST", "Invalid input");
    let ledger_id = string_field(object, "ledger_id").map_err(|_| malformed())?;
    let currency = string_field(object, "currency").map_err(|_| malformed())?;
    let identity_id = string_field(object, "identity_id").map_err(|_| malformed())?;
    let indicator = string_field(object, "indicator").map_err(|_| malformed())?;
    let track_fund_lineage = bool_field(object, "track_fund_lineage").map_err(|_| malformed())?;
    let strategy = string_field(object, "allocation_strategy").map_err(|_| malformed())?;

    let mut blanks = Vec::new();
    if currency.is_empty() {
        blanks.push("currency: cannot be blank");
    }
    if ledger_id.is_empty() {
        blanks.push("ledger_id: cannot be blank");
    }
    if !blanks.is_empty() {
        let message = format!("{}.", blanks.join("; "));
        return Err(ApiError::new("GEN_VALIDATION_ERROR", message).legacy_errors());
    }
    let identity_known = identity_id.is_empty()
        || store
            .identities
            .iter()
            .any(|identity| identity.id == identity_id);
    if !store.ledgers.iter().any(|ledger| ledger.id == ledger_id) || !identity_known {
        return Err(ApiError::new("GEN_BAD_REQUEST", "Invalid ledger ID"));
    }
    let indicator = checked_indicator(store, &ledger_id, indicator, &currency)?;

    Ok(Balance {
        id: new_id("bln"),
        ledger_id,
        identity_id,
        indicator,
        currency,
        credit: 0,
        debit: 0,
        inflight_credit: 0,
        inflight_debit: 0,
        version: 1,
        created_at: store.clock.stamp(),
        meta: object_meta(object),
        track_fund_lineage,
        allocation_strategy: if strategy.is_empty() {
            "FIFO".to_owned()
        } else {
            strategy
        },
    })
}

fn checked_indicator(
    store: &Store,
    ledger_id: &str,
    indicator: String,
    currency: &str,
) -> Result<Option<String>, ApiError> {
    if indicator.is_empty() {
        return Ok(None);
    }
    let valid = ledger_id == GENERAL_LEDGER_ID
        && indicator.starts_with('@')
        && !indicator.contains(char::is_whitespace);
    if !valid {
        let message =
            "indicator: indicator must start with '@' and contain no whitespace (e.g. '@cash').";
        return Err(ApiError::new("GEN_VALIDATION_ERROR", message).legacy_errors());
    }
    if store.indicator_balance(&indicator, currency).is_some() {
        let message =
            format!("Balance already exists for indicator '{indicator}' and '{currency}'");
        return Err(ApiError::new("GEN_CONFLICT", message));
    }
    Ok(Some(indicator))
}

/// `GET /balances/{id}`; `with_queued` adds the sums of rows still waiting for the workers.
pub fn get_balance(store: &Store, id: &str, with_queued: bool) -> Reply {
    match store.balance(id) {
        Some(balance) => {
            let queued = with_queued.then(|| store.queued_sums(id));
            Reply::json(200, &balance.to_json(BalanceStyle::Read { queued }))
        }
        None => not_found(
            "BAL_NOT_FOUND",
            &format!("Balance with ID '{id}' not found"),
        ),
    }
}

pub fn get_balance_by_indicator(store: &Store, indicator: &str, currency: &str) -> Reply {
    match store.indicator_balance(indicator, currency) {
        Some(balance) => Reply::json(200, &balance.to_json(BalanceStyle::Read { queued: None })),
        None => ApiError::new(
            "BAL_NOT_FOUND",
            format!("balance with indicator '{indicator}' not found"),
        )
        .into(),
    }
}

/// `GET /balances/{id}/at`: settled figures from every `APPLIED` row whose effective date is
/// at or before the timestamp (now when absent).
pub fn balance_at(store: &Store, id: &str, timestamp: Option<&str>, from_source: bool) -> Reply {
    let (at, shown) = match timestamp {
        None | Some("") => {
            let now = store.clock.latest();
            (now, now.to_rfc3339_opts(SecondsFormat::Secs, true))
        }
        Some(text) => match parse_time(text) {
            Some(at) => (at, text.to_owned()),
            None => {
                let message = "invalid timestamp format. Please use ISO 8601 format (e.g., 2024-01-01T15:04:05Z)";
                return ApiError::new("BAL_INVALID_TIMESTAMP", message).into();
            }
        },
    };
    let Some(balance) = store.balance(id) else {
        return not_found(
            "BAL_NOT_FOUND",
            &format!("Balance with ID '{id}' not found"),
        );
    };

    let mut credit: i128 = 0;
    let mut debit: i128 = 0;
    for txn in store.txns() {
        if txn.status != TxnStatus::Applied || txn.effective_date > at {
            continue;
        }
        if txn.source == id {
            debit += txn.precise;
        }
        if txn.destination == id {
            credit += txn.precise;
        }
    }
    let figures = HistoricalFigures {
        balance: credit - debit,
        credit_balance: credit,
        debit_balance: debit,
        currency: &balance.currency,
        balance_id: id,
    };
    Reply::json(
        200,
        &HistoricalBalance {
            balance: figures,
            timestamp: shown,
            from_source,
        },
    )
}

#[derive(serde::Serialize)]
struct HistoricalFigures<'a> {
    balance: i128,
    credit_balance: i128,
    debit_balance: i128,
    currency: &'a str,
    balance_id: &'a str,
}

#[derive(serde::Serialize)]
struct HistoricalBalance<'a> {
    balance: HistoricalFigures<'a>,
    timestamp: String,
    from_source: bool,
}

/// `POST /{id}/metadata`: merges the given keys into the entity's metadata (the entity type
/// comes from the id prefix) and returns the merged map.
pub fn update_metadata(store: &mut Store, id: &str, body: &Value) -> Reply {
    const PREFIXES: [&str; 5] = ["txn_", "bulk_", "ldg_", "bln_", "idt_"];
    if !PREFIXES.iter().any(|prefix| id.starts_with(prefix)) {
        return ApiError::new(
            "META_INVALID_ENTITY_ID",
            format!("invalid entity ID format: {id}"),
        )
        .into();
    }
    let update = match body.get("meta_data") {
        Some(Value::Object(update)) => update.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => {
            return ApiError::new(
                "GEN_MALFORMED_REQUEST",
                "invalid meta_data: expected an object",
            )
            .into();
        }
    };
    match store.metadata_of(id) {
        Some(meta) => {
            meta.extend(update);
            Reply::json(200, &json!({ "meta_data": meta }))
        }
        None => ApiError::new("META_ENTITY_NOT_FOUND", "entity not found").into(),
    }
}

fn object_meta(object: &Map<String, Value>) -> Option<Map<String, Value>> {
    match object.get("meta_data") {
        Some(Value::Object(meta)) => Some(meta.clone()),
        _ => None,
    }
}

fn not_found(code: &'static str, message: &str) -> Reply {
    ApiError::new(code, message).with_empty_details().into()
}
