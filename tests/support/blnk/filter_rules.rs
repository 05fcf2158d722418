//! The fields each collection can be filtered on, and Blnk's checks on one condition.

use super::errors::ApiError;
use super::filters::{Condition, OPERATORS, Operator};

/// A collection that the filter endpoints search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Transactions,
    Balances,
    Ledgers,
    Identities,
}

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Transactions => "transactions",
            Table::Balances => "balances",
            Table::Ledgers => "ledgers",
            Table::Identities => "identity",
        }
    }

    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Table::Transactions => &[
                "transaction_id",
                "parent_transaction",
                "amount",
                "currency",
                "source",
                "destination",
                "balance_id",
                "reference",
                "status",
                "created_at",
                "effective_date",
                "indicator",
                "description",
                "precision",
            ],
            Table::Balances => &[
                "balance_id",
                "ledger_id",
                "identity_id",
                "indicator",
                "currency",
                "balance",
                "credit_balance",
                "debit_balance",
                "inflight_balance",
                "inflight_credit_balance",
                "inflight_debit_balance",
                "created_at",
            ],
            Table::Ledgers => &["ledger_id", "name", "created_at"],
            Table::Identities => &[
                "identity_id",
                "first_name",
                "last_name",
                "other_names",
                "gender",
                "dob",
                "email_address",
                "phone_number",
                "nationality",
                "street",
                "country",
                "state",
                "organization_name",
                "category",
                "identity_type",
                "post_code",
                "city",
                "created_at",
            ],
        }
    }
}

/// Blnk's checks on one condition: operator arity, the fields `balance_id` accepts, meta
/// key syntax and the table's field list.
pub fn check_condition(condition: &Condition, table: Table) -> Result<(), ApiError> {
    let field = &condition.field;
    if condition.operator == Operator::In && condition.values.is_empty() {
        return Err(invalid_filter(&format!(
            "operator 'in' for field '{field}' requires at least one value in 'values'"
        )));
    }
    if condition.operator == Operator::Between && condition.values.len() != 2 {
        let count = condition.values.len();
        return Err(invalid_filter(&format!(
            "operator 'between' for field '{field}' requires exactly two values in 'values', got {count}"
        )));
    }
    let allowed = [
        Operator::Eq,
        Operator::Ne,
        Operator::In,
        Operator::IsNull,
        Operator::IsNotNull,
    ];
    if table == Table::Transactions
        && field == "balance_id"
        && !allowed.contains(&condition.operator)
    {
        return Err(invalid_filter(&format!(
            "operator '{}' is not supported for field 'balance_id' on transactions: must be one of eq, ne, in, isnull, isnotnull",
            operator_name(condition.operator)
        )));
    }
    if let Some(key) = field.strip_prefix("meta_data.") {
        let mut chars = key.chars();
        let valid = chars
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic())
            && chars.all(|rest| rest.is_ascii_alphanumeric() || rest == '_');
        if !valid {
            return Err(invalid_filter(&format!(
                "invalid JSON key '{key}' in field '{field}': must match pattern ^[a-zA-Z][a-zA-Z0-9_]*$"
            )));
        }
        return Ok(());
    }
    if !table.fields().contains(&field.as_str()) {
        return Err(invalid_filter(&format!(
            "invalid field '{field}' for table '{}'",
            table.name()
        )));
    }
    Ok(())
}

fn operator_name(operator: Operator) -> &'static str {
    OPERATORS
        .iter()
        .find(|(_, candidate)| *candidate == operator)
        .map_or("", |(name, _)| *name)
}

pub fn invalid_filter(message: &str) -> ApiError {
    ApiError::new("GEN_BAD_REQUEST", format!("Invalid filter: {message}")).with_empty_details()
}
