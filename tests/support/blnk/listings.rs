//! The filter and list endpoints of the four collections.
//!
//! Empty results differ by collection, as in Blnk: transactions return `[]`, while balances,
//! ledgers and identities return `null`.

use serde::Serialize;
use serde_json::{Value, json};

use super::errors::Reply;
use super::filter_rules::Table;
use super::filters::{FieldValue, FilterQuery, meta_value, text_value};
use super::records::{Balance, BalanceStyle, Identity, Ledger, Txn, TxnStyle};
use super::store::Store;

/// Where a filter request came from.
pub enum Source<'a> {
    Body(&'a Value),
    Query(&'a [(String, String)]),
}

pub fn transactions(store: &Store, source: Source<'_>) -> Reply {
    let query = match parse(source, Table::Transactions, 20) {
        Ok(query) => query,
        Err(reply) => return reply,
    };
    let (rows, total) = query.select(store.txns(), |txn, field| txn_field(store, txn, field));
    let data: Vec<_> = rows
        .iter()
        .map(|txn| txn.to_json(&TxnStyle::Listed))
        .collect();
    respond(&query, &data, total, false)
}

pub fn balances(store: &Store, source: Source<'_>) -> Reply {
    let query = match parse(source, Table::Balances, 10) {
        Ok(query) => query,
        Err(reply) => return reply,
    };
    let (rows, total) = query.select(store.balances(), balance_field);
    let data: Vec<_> = rows
        .iter()
        .map(|balance| balance.to_json(BalanceStyle::Filtered))
        .collect();
    respond(&query, &data, total, true)
}

pub fn ledgers(store: &Store, source: Source<'_>) -> Reply {
    let query = match parse(source, Table::Ledgers, 20) {
        Ok(query) => query,
        Err(reply) => return reply,
    };
    let (rows, total) = query.select(&store.ledgers, ledger_field);
    let data: Vec<Value> = rows.iter().map(|ledger| ledger.to_json()).collect();
    respond(&query, &data, total, true)
}

pub fn identities(store: &Store, source: Source<'_>) -> Reply {
    let query = match parse(source, Table::Identities, 20) {
        Ok(query) => query,
        Err(reply) => return reply,
    };
    let (rows, total) = query.select(&store.identities, identity_field);
    let data: Vec<Value> = rows.iter().map(|identity| identity.to_json()).collect();
    respond(&query, &data, total, true)
}

fn parse(source: Source<'_>, table: Table, default_limit: usize) -> Result<FilterQuery, Reply> {
    let parsed = match source {
        Source::Body(body) => FilterQuery::from_body(body, table),
        Source::Query(pairs) => FilterQuery::from_query(pairs, table, default_limit),
    };
    parsed.map_err(Reply::from)
}

fn respond<T: Serialize>(
    query: &FilterQuery,
    data: &[T],
    total: usize,
    empty_is_null: bool,
) -> Reply {
    let data = if data.is_empty() && empty_is_null {
        Value::Null
    } else {
        match serde_json::to_value(data) {
            Ok(value) => value,
            Err(_) => return Reply::json(200, &data),
        }
    };
    if query.include_count {
        Reply::json(200, &json!({ "data": data, "total_count": total }))
    } else {
        Reply::json(200, &data)
    }
}

fn txn_field(store: &Store, txn: &Txn, field: &str) -> Vec<FieldValue> {
    if let Some(values) = meta_value(Some(&txn.meta), field) {
        return values;
    }
    match field {
        "transaction_id" => text_value(&txn.id),
        "parent_transaction" => text_value(&txn.parent),
        "amount" => vec![FieldValue::Number(txn.major_amount())],
        "precision" => vec![FieldValue::Number(txn.precision.into())],
        "currency" => text_value(&txn.currency),
        "source" => text_value(&txn.source),
        "destination" => text_value(&txn.destination),
        "balance_id" => [text_value(&txn.source), text_value(&txn.destination)].concat(),
        "indicator" => [&txn.source, &txn.destination]
            .iter()
            .map(|id| {
                store
                    .balance(id)
                    .and_then(|balance| balance.indicator.clone())
            })
            .map(|indicator| indicator.map_or(FieldValue::Missing, FieldValue::Text))
            .collect(),
        "reference" => text_value(&txn.reference),
        "status" => text_value(txn.status.as_str()),
        "description" => text_value(&txn.description),
        "created_at" => vec![FieldValue::Time(txn.created_at)],
        "effective_date" => vec![FieldValue::Time(txn.effective_date)],
        _ => vec![FieldValue::Missing],
    }
}

fn balance_field(balance: &Balance, field: &str) -> Vec<FieldValue> {
    if let Some(values) = meta_value(balance.meta.as_ref(), field) {
        return values;
    }
    let figure = |value: i128| vec![FieldValue::Number(value.into())];
    match field {
        "balance_id" => text_value(&balance.id),
        "ledger_id" => text_value(&balance.ledger_id),
        "identity_id" => text_value(&balance.identity_id),
        "indicator" => text_value(balance.indicator.as_deref().unwrap_or_default()),
        "currency" => text_value(&balance.currency),
        "balance" => figure(balance.balance()),
        "credit_balance" => figure(balance.credit),
        "debit_balance" => figure(balance.debit),
        "inflight_balance" => figure(balance.inflight_balance()),
        "inflight_credit_balance" => figure(balance.inflight_credit),
        "inflight_debit_balance" => figure(balance.inflight_debit),
        "created_at" => vec![FieldValue::Time(balance.created_at)],
        _ => vec![FieldValue::Missing],
    }
}

fn ledger_field(ledger: &Ledger, field: &str) -> Vec<FieldValue> {
    if let Some(values) = meta_value(ledger.meta.as_ref(), field) {
        return values;
    }
    match field {
        "ledger_id" => text_value(&ledger.id),
        "name" => text_value(&ledger.name),
        "created_at" => vec![FieldValue::Time(ledger.created_at)],
        _ => vec![FieldValue::Missing],
    }
}

fn identity_field(identity: &Identity, field: &str) -> Vec<FieldValue> {
    if let Some(values) = meta_value(identity.meta.as_ref(), field) {
        return values;
    }
    match field {
        "identity_id" => text_value(&identity.id),
        "created_at" => vec![FieldValue::Time(identity.created_at)],
        "dob" => vec![identity.dob.map_or(FieldValue::Missing, FieldValue::Time)],
        other => text_value(
            identity
                .text
                .get(other)
                .and_then(Value::as_str)
                .unwrap_or_default(),
        ),
    }
}
