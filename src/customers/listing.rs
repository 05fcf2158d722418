//! Listing every customer: the USD balances tagged `tollgate_kind = "usd"` in the wallets
//! ledger.
//!
//! Blnk's balance filter returns at most 100 balances, and tollgate's ledger client sends no
//! offset. So the listing splits the balances by id prefix instead. Blnk's balance ids are
//! `bln_` and a lowercase UUID, and a query whose page comes back full is repeated once for
//! each possible next character of the id. Every balance falls in exactly one prefix,
//! whatever order Blnk returns rows in.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{OperationError, Operations};
use crate::accounts::{Billing, meta, parse_billing};
use crate::ids::CustomerId;
use crate::ledger::{Balance, Filter, MAX_PAGE_SIZE};
use crate::money::Nanos;

/// Characters that follow `bln_` in a Blnk balance id: a UUID in lowercase hex.
const ID_ALPHABET: &str = "0123456789abcdef-";

/// Prefixes longer than this still returning a full page mean Blnk ignored the filter.
const MAX_PREFIX_LEN: usize = 40;

/// One customer in a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CustomerSummary {
    pub customer_id: String,
    pub name: Option<String>,
    /// `prepaid` or `postpaid`, or `invalid` when the recorded terms cannot be read.
    pub billing: String,
    pub credit_limit_usd: Option<String>,
    pub usd_balance_id: String,
    pub balance_usd: String,
    pub held_usd: String,
    pub available_usd: String,
    /// Reason the recorded terms cannot be read, when they cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl Operations {
    /// Lists every customer of the wallets ledger, sorted by customer id.
    pub async fn list_customers(&self) -> Result<Vec<CustomerSummary>, OperationError> {
        let Some(ledger) = self.blnk.find_ledger(&self.ledger_name).await? else {
            return Ok(Vec::new());
        };
        let mut found: BTreeMap<String, Balance> = BTreeMap::new();
        let mut prefixes = vec![String::from("bln_")];
        while let Some(prefix) = prefixes.pop() {
            let filters = [
                Filter::eq("ledger_id", ledger.ledger_id.as_str()),
                Filter::eq(format!("meta_data.{}", meta::KIND), "usd"),
                Filter::like("balance_id", format!("{prefix}%")),
            ];
            let page = self.blnk.filter_balances(&filters).await?;
            if page.len() < MAX_PAGE_SIZE as usize {
                found.extend(
                    page.into_iter()
                        .map(|balance| (balance.balance_id.clone(), balance)),
                );
                continue;
            }
            if prefix.len() >= MAX_PREFIX_LEN {
                return Err(OperationError::Conflict(format!(
                    "Blnk returned a full page of balances for the id prefix {prefix:?}; \
                     it may have ignored the balance_id filter, so the listing cannot be completed"
                )));
            }
            prefixes.extend(ID_ALPHABET.chars().map(|next| format!("{prefix}{next}")));
        }

        let mut customers: Vec<CustomerSummary> = found.values().filter_map(summary).collect();
        customers.sort_by(|a, b| a.customer_id.cmp(&b.customer_id));
        Ok(customers)
    }
}

/// Summarises a USD balance, or skips one that names no customer.
fn summary(balance: &Balance) -> Option<CustomerSummary> {
    let text = |key: &str| {
        balance
            .meta_data
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let customer_id = text(meta::CUSTOMER_ID)?;
    let (billing, credit_limit_usd, problem) = match CustomerId::parse(&customer_id) {
        Ok(customer) => match parse_billing(&customer, &balance.meta_data) {
            Ok(Billing::Prepaid) => ("prepaid".to_string(), None, None),
            Ok(Billing::Postpaid { credit_limit }) => (
                "postpaid".to_string(),
                credit_limit.map(|limit| limit.to_string()),
                None,
            ),
            Err(error) => ("invalid".to_string(), None, Some(error.to_string())),
        },
        Err(error) => ("invalid".to_string(), None, Some(error.to_string())),
    };
    Some(CustomerSummary {
        customer_id,
        name: text(meta::NAME),
        billing,
        credit_limit_usd,
        usd_balance_id: balance.balance_id.clone(),
        balance_usd: Nanos(balance.balance).to_usd().to_string(),
        held_usd: Nanos(balance.inflight_debit_balance).to_usd().to_string(),
        available_usd: Nanos(balance.available()).to_usd().to_string(),
        problem,
    })
}
