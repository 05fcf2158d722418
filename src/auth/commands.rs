//! Operator actions on per-customer keys, and the `tollgate key` commands that run them.

use clap::Subcommand;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::customer_key::{self, KeyDigest, KeyId, REVOKED, RandomError};
use super::directory::holder_filter;
use crate::accounts::{Account, AccountDirectory, AccountError};
use crate::cli::CliError;
use crate::config::Config;
use crate::ids::CustomerId;
use crate::ledger::{BlnkClient, LedgerError};
use crate::secret::Secret;

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Mint a client key bound to one customer and print it once.
    ///
    /// Requests that send the key as their API key are billed to that customer whatever
    /// customer the customer header names. Only the key's SHA-256 digest is stored.
    Create {
        /// The customer the key bills.
        customer: String,
    },
    /// Revoke a key by its id.
    ///
    /// Running servers stop accepting the key within blnk.account_cache_ttl.
    Revoke {
        /// The key id: the 16 hex digits between `tg-` and the second `-` of the key.
        key_id: String,
    },
    /// List a customer's key ids and whether each is active.
    List { customer: String },
}

/// Key operations against one Blnk server.
pub struct CustomerKeys {
    pub blnk: BlnkClient,
}

/// A key minted by [`CustomerKeys::create`]. The key is shown once and never stored.
#[derive(Debug)]
pub struct IssuedKey {
    pub customer_id: CustomerId,
    pub key_id: KeyId,
    pub key: Secret,
    pub usd_balance_id: String,
}

/// The outcome of [`CustomerKeys::revoke`].
#[derive(Debug, Serialize)]
pub struct RevokedKey {
    pub key_id: String,
    /// The customers whose balance held the key; one unless the ledger was edited by hand.
    pub customer_ids: Vec<String>,
    /// True when every holder had revoked the key before.
    pub already_revoked: bool,
}

/// One key of a customer, as `tollgate key list` prints it.
#[derive(Debug, Serialize)]
pub struct KeyStatus {
    pub key_id: String,
    /// `active`, `revoked`, or `unusable` for a value that is neither a digest nor `revoked`.
    pub status: &'static str,
}

/// An error of a key operation.
#[derive(Debug, thiserror::Error)]
pub enum KeyAdminError {
    #[error("customer {0} not found: create it with `tollgate customer create {0}`")]
    UnknownCustomer(CustomerId),
    #[error(
        "key id {0} not found: no customer balance holds it; list a customer's keys with \
         `tollgate key list <CUSTOMER-ID>`"
    )]
    UnknownKey(KeyId),
    #[error("the new key id {0} is already in use; run the command again")]
    KeyIdTaken(KeyId),
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl CustomerKeys {
    /// Mints a key for `customer` and stores its SHA-256 digest in the customer's USD
    /// balance metadata under `tollgate_key_<key-id>`.
    pub async fn create(&self, customer: &CustomerId) -> Result<IssuedKey, KeyAdminError> {
        let account = self.account(customer).await?;
        let minted = customer_key::mint()?;
        let holders = self
            .blnk
            .filter_balances(&[holder_filter(&minted.id)])
            .await?;
        if !holders.is_empty() {
            return Err(KeyAdminError::KeyIdTaken(minted.id));
        }

        let mut meta = Map::new();
        meta.insert(
            minted.id.metadata_key(),
            Value::from(minted.digest.to_hex()),
        );
        self.blnk
            .update_balance_metadata(&account.usd_balance_id, meta)
            .await?;
        Ok(IssuedKey {
            customer_id: customer.clone(),
            key_id: minted.id,
            key: minted.key,
            usd_balance_id: account.usd_balance_id,
        })
    }

    /// Sets the key's metadata value to `"revoked"` on every balance that stores it.
    pub async fn revoke(&self, key_id: &KeyId) -> Result<RevokedKey, KeyAdminError> {
        let holders = self.blnk.filter_balances(&[holder_filter(key_id)]).await?;
        if holders.is_empty() {
            return Err(KeyAdminError::UnknownKey(key_id.clone()));
        }

        let name = key_id.metadata_key();
        let mut already_revoked = true;
        let mut customer_ids = Vec::new();
        for holder in &holders {
            if holder.meta_data.get(&name).and_then(Value::as_str) != Some(REVOKED) {
                already_revoked = false;
                let mut meta = Map::new();
                meta.insert(name.clone(), Value::from(REVOKED));
                self.blnk
                    .update_balance_metadata(&holder.balance_id, meta)
                    .await?;
            }
            let customer = holder.meta_data.get(crate::accounts::meta::CUSTOMER_ID);
            customer_ids.push(customer.and_then(Value::as_str).unwrap_or("?").to_owned());
        }
        Ok(RevokedKey {
            key_id: key_id.to_string(),
            customer_ids,
            already_revoked,
        })
    }

    /// Lists the keys stored on `customer`'s USD balance, sorted by key id.
    pub async fn list(&self, customer: &CustomerId) -> Result<Vec<KeyStatus>, KeyAdminError> {
        let account = self.account(customer).await?;
        let balance = self.blnk.get_balance(&account.usd_balance_id).await?;
        let mut keys: Vec<KeyStatus> = balance
            .meta_data
            .iter()
            .filter_map(|(name, value)| {
                let id = KeyId::from_metadata_key(name)?;
                let status = match value.as_str() {
                    Some(REVOKED) => "revoked",
                    Some(text) if KeyDigest::from_hex(text).is_some() => "active",
                    _ => "unusable",
                };
                Some(KeyStatus {
                    key_id: id.to_string(),
                    status,
                })
            })
            .collect();
        keys.sort_by(|a, b| a.key_id.cmp(&b.key_id));
        Ok(keys)
    }

    async fn account(&self, customer: &CustomerId) -> Result<Account, KeyAdminError> {
        let filters = AccountDirectory::filter_for(customer);
        let balances = self.blnk.filter_balances(&filters).await?;
        Account::from_balances(customer, &balances)?
            .ok_or_else(|| KeyAdminError::UnknownCustomer(customer.clone()))
    }
}

/// Runs a `tollgate key` command.
pub async fn run(config: &Config, command: KeyCommand, json: bool) -> Result<(), CliError> {
    let blnk = BlnkClient::new(
        &config.blnk.url,
        config.blnk.api_key.clone(),
        config.blnk.request_timeout,
    )
    .map_err(failed)?;
    let keys = CustomerKeys { blnk };
    match command {
        KeyCommand::Create { customer } => {
            let customer = crate::cli::parse_customer(&customer)?;
            let issued = keys.create(&customer).await.map_err(failed)?;
            print_issued(config, &issued, json)
        }
        KeyCommand::Revoke { key_id } => {
            let key_id =
                KeyId::parse(&key_id).map_err(|error| CliError::Usage(error.to_string()))?;
            let revoked = keys.revoke(&key_id).await.map_err(failed)?;
            print_revoked(config, &revoked, json)
        }
        KeyCommand::List { customer } => {
            let customer = crate::cli::parse_customer(&customer)?;
            let listed = keys.list(&customer).await.map_err(failed)?;
            print_list(&customer, &listed, json)
        }
    }
}

/// Prints the key alone on stdout (so `KEY=$(tollgate key create ID)` works) and the
/// explanation on stderr.
fn print_issued(config: &Config, issued: &IssuedKey, json: bool) -> Result<(), CliError> {
    if json {
        let value = json!({
            "customer_id": issued.customer_id.as_str(),
            "key_id": issued.key_id.as_str(),
            "key": issued.key.expose(),
            "usd_balance_id": issued.usd_balance_id,
        });
        println!("{}", serde_json::to_string_pretty(&value).map_err(failed)?);
    } else {
        println!("{}", issued.key.expose());
        eprintln!(
            "created key {} for customer {}: store it now, because tollgate keeps only its \
             SHA-256 digest and cannot show it again",
            issued.key_id, issued.customer_id
        );
    }
    if config.upstream.api_key.is_none() {
        eprintln!(
            "note: OPENAI_API_KEY is not set in this configuration; a server without it \
             rejects requests that carry this key"
        );
    }
    Ok(())
}

fn print_revoked(config: &Config, revoked: &RevokedKey, json: bool) -> Result<(), CliError> {
    if json {
        println!("{}", serde_json::to_string_pretty(revoked).map_err(failed)?);
        return Ok(());
    }
    let customers = revoked.customer_ids.join(", ");
    if revoked.already_revoked {
        println!(
            "key {} of customer {customers} was already revoked",
            revoked.key_id
        );
    } else {
        println!(
            "revoked key {} of customer {customers}; running servers reject it within {} s \
             (blnk.account_cache_ttl)",
            revoked.key_id,
            config.blnk.account_cache_ttl.as_secs()
        );
    }
    Ok(())
}

fn print_list(customer: &CustomerId, keys: &[KeyStatus], json: bool) -> Result<(), CliError> {
    if json {
        println!("{}", serde_json::to_string_pretty(keys).map_err(failed)?);
        return Ok(());
    }
    if keys.is_empty() {
        println!(
            "customer {customer} has no keys; create one with `tollgate key create {customer}`"
        );
    }
    for key in keys {
        println!("{}  {}", key.key_id, key.status);
    }
    Ok(())
}

fn failed(error: impl std::fmt::Display) -> CliError {
    CliError::Failed(error.to_string())
}
