//! Operator actions on customers, shared by the CLI and the admin API: onboarding, listing
//! and showing accounts, changing billing terms, and funding a wallet with top-ups and
//! payments.

mod listing;

pub use listing::CustomerSummary;

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::accounts::{Account, AccountDirectory, Billing, meta};
use crate::billing::SystemBalances;
use crate::ids::CustomerId;
use crate::ledger::{BlnkClient, LedgerError, NewBalance, NewIdentity, NewTransaction};
use crate::money::{Nanos, TOKENS_PRECISION, USD_PRECISION, Usd};

/// Namespace of the deterministic identity ids tollgate gives customers, so creating the
/// same customer twice finds the same identity.
const IDENTITY_NAMESPACE: Uuid = Uuid::from_u128(0x7d0c_2f4e_9a51_4c3b_8e6f_1b2a_3c4d_5e6f);

/// Failure of an operator action.
#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("customer {0} not found: create it with `tollgate customer create {0}`")]
    UnknownCustomer(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{0}")]
    Account(String),
}

impl From<crate::accounts::AccountError> for OperationError {
    fn from(error: crate::accounts::AccountError) -> Self {
        match error {
            crate::accounts::AccountError::Ledger(error) => OperationError::Ledger(error),
            other => OperationError::Account(other.to_string()),
        }
    }
}

/// Operator actions against one Blnk server.
pub struct Operations {
    pub blnk: BlnkClient,
    pub ledger_name: String,
    pub system: SystemBalances,
}

/// The result of `customer create`.
#[derive(Debug, Serialize)]
pub struct Created {
    pub customer_id: String,
    pub ledger_id: String,
    pub identity_id: String,
    pub usd_balance_id: String,
    pub tokens_balance_id: String,
    /// False when every object already existed.
    pub created_anything: bool,
    pub billing: String,
    pub credit_limit_usd: Option<String>,
}

/// A customer's account as `customer show` prints it.
#[derive(Debug, Serialize)]
pub struct AccountView {
    pub customer_id: String,
    pub billing: String,
    pub credit_limit_usd: Option<String>,
    pub usd_balance_id: String,
    pub tokens_balance_id: String,
    pub balance_usd: String,
    pub held_usd: String,
    pub available_usd: String,
    pub tokens_used: String,
}

/// A funding transaction from the world balance: a prepaid top-up or the payment of a
/// postpaid invoice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Funding {
    TopUp,
    Payment,
}

/// Maximum length of an operator's reference suffix, in bytes.
const MAX_REFERENCE_LEN: usize = 128;

/// The result of a top-up or payment.
#[derive(Debug, Serialize)]
pub struct Funded {
    pub customer_id: String,
    pub reference: String,
    pub amount_usd: String,
    pub transaction_id: String,
    /// True when this reference had already been recorded with the same amount.
    pub already_recorded: bool,
}

impl Operations {
    /// Creates the wallets ledger (on first use), the customer's identity and its USD and
    /// TOKENS balances. Objects that exist already are kept, so running it twice creates
    /// nothing new.
    pub async fn create_customer(
        &self,
        customer: &CustomerId,
        name: Option<&str>,
        billing: Billing,
    ) -> Result<Created, OperationError> {
        let mut created = false;
        let ledger = match self.blnk.find_ledger(&self.ledger_name).await? {
            Some(ledger) => ledger,
            None => {
                created = true;
                let mut meta_data = Map::new();
                meta_data.insert("tollgate".into(), Value::from("customer wallets"));
                self.blnk
                    .create_ledger(&self.ledger_name, meta_data)
                    .await?
            }
        };

        let identity_id = identity_id(customer);
        let identity = NewIdentity {
            identity_id: Some(identity_id.clone()),
            identity_type: Some("organization".into()),
            organization_name: Some(name.unwrap_or(customer.as_str()).to_string()),
            meta_data: customer_meta(customer),
            ..NewIdentity::default()
        };
        match self.blnk.create_identity(&identity).await {
            Ok(_) => created = true,
            Err(LedgerError::AlreadyExists { .. }) => {}
            Err(error) => return Err(error.into()),
        }

        let existing = self.balances_of(customer).await?;
        let find = |kind: &str| {
            existing
                .iter()
                .find(|b| b.meta_data.get(meta::KIND).and_then(Value::as_str) == Some(kind))
                .map(|b| b.balance_id.clone())
        };
        let (usd, tokens) = (find("usd"), find("tokens"));
        let usd_existed = usd.is_some();
        let usd_balance_id = match usd {
            Some(id) => id,
            None => {
                created = true;
                let mut meta_data = balance_meta(customer, "usd", USD_PRECISION);
                meta_data.extend(billing.to_metadata());
                if let Some(name) = name {
                    meta_data.insert(meta::NAME.into(), Value::from(name));
                }
                self.create_balance(&ledger.ledger_id, &identity_id, "USD", meta_data)
                    .await?
            }
        };
        let tokens_balance_id = match tokens {
            Some(id) => id,
            None => {
                created = true;
                let meta_data = balance_meta(customer, "tokens", TOKENS_PRECISION);
                self.create_balance(&ledger.ledger_id, &identity_id, "TOKENS", meta_data)
                    .await?
            }
        };

        let account = self.account(customer).await?;
        if usd_existed && account.billing != billing {
            return Err(OperationError::Conflict(format!(
                "customer {customer} already exists with terms {}, not {}; change them with \
                 `tollgate customer set {customer}` or PUT /admin/customers/{customer}/terms",
                describe(account.billing),
                describe(billing)
            )));
        }
        Ok(Created {
            customer_id: customer.to_string(),
            ledger_id: ledger.ledger_id,
            identity_id,
            usd_balance_id,
            tokens_balance_id,
            created_anything: created,
            billing: account.billing.as_str().to_string(),
            credit_limit_usd: credit_limit(account.billing),
        })
    }

    /// Reads a customer's account and its balances.
    pub async fn show_customer(
        &self,
        customer: &CustomerId,
    ) -> Result<AccountView, OperationError> {
        let account = self.account(customer).await?;
        let usd = self.blnk.get_balance(&account.usd_balance_id).await?;
        let tokens = self.blnk.get_balance(&account.tokens_balance_id).await?;
        Ok(AccountView {
            customer_id: customer.to_string(),
            billing: account.billing.as_str().to_string(),
            credit_limit_usd: credit_limit(account.billing),
            usd_balance_id: account.usd_balance_id,
            tokens_balance_id: account.tokens_balance_id,
            balance_usd: Nanos(usd.balance).to_usd().to_string(),
            held_usd: Nanos(usd.inflight_debit_balance).to_usd().to_string(),
            available_usd: Nanos(usd.available()).to_usd().to_string(),
            tokens_used: tokens.debit_balance.to_string(),
        })
    }

    /// Replaces a customer's billing terms in the USD balance's metadata and returns the
    /// account as it reads now. Each tollgate replica applies the new terms when its cached
    /// copy of the account expires (`blnk.account_cache_ttl`).
    pub async fn set_terms(
        &self,
        customer: &CustomerId,
        billing: Billing,
    ) -> Result<AccountView, OperationError> {
        let account = self.account(customer).await?;
        self.blnk
            .update_balance_metadata(&account.usd_balance_id, billing.to_metadata())
            .await?;
        self.show_customer(customer).await
    }

    /// Records a top-up or a payment under the reference `tg:topup:<ID>:<R>` or
    /// `tg:pay:<ID>:<R>`. Without a suffix `R`, a UUIDv7 is generated; repeating a call with
    /// the same suffix and amount records nothing new.
    pub async fn record_funding(
        &self,
        customer: &CustomerId,
        amount: Usd,
        funding: Funding,
        suffix: Option<&str>,
    ) -> Result<Funded, OperationError> {
        let suffix = match suffix {
            Some(suffix) => check_reference_suffix(suffix)?.to_string(),
            None => Uuid::now_v7().to_string(),
        };
        let reference = funding.reference(customer, &suffix);
        self.fund(customer, amount, &reference, funding.leg()).await
    }

    /// Funds a wallet from the world balance, idempotent by reference: the same reference with
    /// the same amount is reported as already recorded; with another amount it is an error.
    pub async fn fund(
        &self,
        customer: &CustomerId,
        amount: Usd,
        reference: &str,
        leg: &str,
    ) -> Result<Funded, OperationError> {
        let account = self.account(customer).await?;
        let nanos = amount.to_nanos();
        let mut meta_data = customer_meta(customer);
        meta_data.insert("tollgate_leg".into(), Value::from(leg));
        let txn = NewTransaction {
            precise_amount: nanos.0,
            precision: USD_PRECISION,
            currency: "USD".into(),
            source: self.system.world.clone(),
            destination: account.usd_balance_id.clone(),
            reference: reference.to_string(),
            description: format!("tollgate {leg} for {customer}"),
            allow_overdraft: true,
            overdraft_limit: None,
            inflight: false,
            inflight_expiry_date: None,
            effective_date: None,
            meta_data,
        };
        let funded = |transaction_id: String, already_recorded: bool| Funded {
            customer_id: customer.to_string(),
            reference: reference.to_string(),
            amount_usd: amount.to_string(),
            transaction_id,
            already_recorded,
        };
        match self.blnk.post_transaction(&txn).await {
            Ok(posted) => Ok(funded(posted.transaction_id, false)),
            Err(LedgerError::DuplicateReference { .. }) => {
                let existing = self
                    .blnk
                    .transaction_by_reference(reference)
                    .await?
                    .ok_or_else(|| {
                        OperationError::Conflict(format!(
                            "reference {reference} is in use but cannot be read"
                        ))
                    })?;
                if existing.precise_amount == nanos.0
                    && existing.destination == account.usd_balance_id
                {
                    Ok(funded(existing.transaction_id, true))
                } else {
                    Err(OperationError::Conflict(format!(
                        "reference {reference} was already used for ${} to {}; choose another reference",
                        Nanos(existing.precise_amount).to_usd(),
                        existing.destination
                    )))
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Finds a customer's account; the error for an unknown customer explains how to create it.
    pub async fn account(&self, customer: &CustomerId) -> Result<Account, OperationError> {
        let balances = self.balances_of(customer).await?;
        Account::from_balances(customer, &balances)?
            .ok_or_else(|| OperationError::UnknownCustomer(customer.to_string()))
    }

    async fn balances_of(
        &self,
        customer: &CustomerId,
    ) -> Result<Vec<crate::ledger::Balance>, OperationError> {
        let directory = AccountDirectory::filter_for(customer);
        Ok(self.blnk.filter_balances(&directory).await?)
    }

    async fn create_balance(
        &self,
        ledger_id: &str,
        identity_id: &str,
        currency: &str,
        meta_data: Map<String, Value>,
    ) -> Result<String, OperationError> {
        let balance = NewBalance {
            ledger_id: ledger_id.to_string(),
            identity_id: Some(identity_id.to_string()),
            currency: currency.to_string(),
            meta_data,
        };
        Ok(self.blnk.create_balance(&balance).await?.balance_id)
    }
}

impl Funding {
    /// Returns the `tollgate_leg` metadata value of the transaction.
    pub fn leg(self) -> &'static str {
        match self {
            Funding::TopUp => "topup",
            Funding::Payment => "payment",
        }
    }

    /// Builds the full reference for an operator's suffix.
    pub fn reference(self, customer: &CustomerId, suffix: &str) -> String {
        match self {
            Funding::TopUp => format!("tg:topup:{customer}:{suffix}"),
            Funding::Payment => format!("tg:pay:{customer}:{suffix}"),
        }
    }
}

/// Checks an operator's reference suffix. Blnk derives references ending in `_q`, `_refund`
/// and `_<number>` from others, and an invoice reads a `_refund` row as a reversal, so
/// those endings are rejected.
pub fn check_reference_suffix(suffix: &str) -> Result<&str, OperationError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    let derived = suffix.ends_with("_q")
        || suffix.ends_with("_refund")
        || suffix
            .rsplit_once('_')
            .is_some_and(|(_, tail)| !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()));
    let valid = !suffix.is_empty()
        && suffix.len() <= MAX_REFERENCE_LEN
        && suffix.chars().all(allowed)
        && !derived;
    if valid {
        return Ok(suffix);
    }
    let printable: String = suffix
        .chars()
        .take(64)
        .filter(|c| !c.is_control())
        .collect();
    Err(OperationError::Invalid(format!(
        "invalid reference {printable:?}: use 1 to {MAX_REFERENCE_LEN} characters from A-Z, a-z, 0-9 and . _ : -, \
         not ending in _q, _refund or _<number>, which Blnk uses for references it derives"
    )))
}

/// Describes terms in words, such as `postpaid with a credit limit of $500`.
pub fn describe(billing: Billing) -> String {
    match billing {
        Billing::Prepaid => "prepaid".to_string(),
        Billing::Postpaid {
            credit_limit: Some(limit),
        } => format!("postpaid with a credit limit of ${limit}"),
        Billing::Postpaid { credit_limit: None } => "postpaid without a credit limit".to_string(),
    }
}

/// `idt_<UUIDv5 of the customer id>`: the same customer always maps to the same identity.
pub fn identity_id(customer: &CustomerId) -> String {
    format!(
        "idt_{}",
        Uuid::new_v5(&IDENTITY_NAMESPACE, customer.as_str().as_bytes())
    )
}

fn customer_meta(customer: &CustomerId) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(meta::CUSTOMER_ID.into(), Value::from(customer.as_str()));
    map
}

fn balance_meta(customer: &CustomerId, kind: &str, precision: i64) -> Map<String, Value> {
    let mut map = customer_meta(customer);
    map.insert(meta::KIND.into(), Value::from(kind));
    map.insert(meta::PRECISION.into(), Value::from(precision));
    map
}

fn credit_limit(billing: Billing) -> Option<String> {
    match billing {
        Billing::Postpaid { credit_limit } => credit_limit.map(|l| l.to_string()),
        Billing::Prepaid => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_suffixes_are_checked() {
        let long = "r".repeat(MAX_REFERENCE_LEN);
        for good in ["inv-2026-05", "a", "INV_7.b:c", "x_1a", long.as_str()] {
            assert_eq!(check_reference_suffix(good).ok(), Some(good), "{good}");
        }
        let too_long = "r".repeat(MAX_REFERENCE_LEN + 1);
        for bad in [
            "",
            "a b",
            "a/b",
            "inv_q",
            "txn_refund",
            "inv_12",
            "é",
            too_long.as_str(),
        ] {
            let error = check_reference_suffix(bad).expect_err(bad);
            assert!(error.to_string().contains("invalid reference"), "{error}");
        }
    }

    #[test]
    fn funding_references_name_the_customer() {
        let customer = CustomerId::parse("acme").expect("valid id");
        assert_eq!(
            Funding::TopUp.reference(&customer, "r1"),
            "tg:topup:acme:r1"
        );
        assert_eq!(
            Funding::Payment.reference(&customer, "inv-7"),
            "tg:pay:acme:inv-7"
        );
        assert_eq!(Funding::Payment.leg(), "payment");
    }
}
