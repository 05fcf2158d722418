//! The fake's whole state and the primitive operations on it: lookups, `@` balance creation,
//! balance movements and the funds check.

use std::collections::{HashMap, VecDeque};

use rust_decimal::Decimal;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::clock::Clock;
use super::records::{Balance, GENERAL_LEDGER_ID, Identity, Ledger, Txn};
use super::values::{new_id, to_minor_units};
use super::workers::Job;

/// The whole state of the fake server. One mutex guards it, and no method awaits.
#[derive(Debug)]
pub struct Store {
    pub clock: Clock,
    pub ledgers: Vec<Ledger>,
    pub identities: Vec<Identity>,
    pub jobs: VecDeque<Job>,
    balances: Vec<Balance>,
    balance_index: HashMap<String, usize>,
    indicator_index: HashMap<(String, String), usize>,
    txns: Vec<Txn>,
    txn_index: HashMap<String, usize>,
    reference_index: HashMap<String, usize>,
}

/// How a posting changes the figures of its two balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Movement {
    /// A settled transfer: debit the source, credit the destination.
    Settle,
    /// A hold: raise the inflight debit and credit.
    Hold,
    /// A commit: move part of a hold from inflight to settled.
    Commit,
    /// A void or expiry: release part of a hold.
    Release,
}

/// Why the funds check refused a debit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FundsRefusal {
    Insufficient,
    OverdraftLimit,
}

impl Store {
    pub fn new() -> Store {
        let clock = Clock::starting_now();
        let general = Ledger {
            id: GENERAL_LEDGER_ID.to_owned(),
            name: "General Ledger".to_owned(),
            created_at: clock.now(),
            meta: None,
        };
        Store {
            clock,
            ledgers: vec![general],
            identities: Vec::new(),
            jobs: VecDeque::new(),
            balances: Vec::new(),
            balance_index: HashMap::new(),
            indicator_index: HashMap::new(),
            txns: Vec::new(),
            txn_index: HashMap::new(),
            reference_index: HashMap::new(),
        }
    }

    pub fn balances(&self) -> &[Balance] {
        &self.balances
    }

    pub fn balance(&self, id: &str) -> Option<&Balance> {
        self.balance_index
            .get(id)
            .map(|&index| &self.balances[index])
    }

    pub fn balance_mut(&mut self, id: &str) -> Option<&mut Balance> {
        self.balance_index
            .get(id)
            .map(|&index| &mut self.balances[index])
    }

    pub fn indicator_balance(&self, indicator: &str, currency: &str) -> Option<&Balance> {
        let key = (indicator.to_owned(), currency.to_owned());
        self.indicator_index
            .get(&key)
            .map(|&index| &self.balances[index])
    }

    pub fn insert_balance(&mut self, balance: Balance) -> &Balance {
        let index = self.balances.len();
        self.balance_index.insert(balance.id.clone(), index);
        if let Some(indicator) = &balance.indicator {
            let key = (indicator.clone(), balance.currency.clone());
            self.indicator_index.insert(key, index);
        }
        self.balances.push(balance);
        &self.balances[index]
    }

    /// Resolves a source or destination. An `@Name` becomes the id of its internal balance
    /// for `currency`, which is created in the general ledger on first use. Any other name is
    /// returned as given.
    pub fn resolve_endpoint(&mut self, name: &str, currency: &str) -> String {
        if !name.starts_with('@') {
            return name.to_owned();
        }
        if let Some(balance) = self.indicator_balance(name, currency) {
            return balance.id.clone();
        }
        let balance = Balance {
            id: new_id("bln"),
            ledger_id: GENERAL_LEDGER_ID.to_owned(),
            identity_id: String::new(),
            indicator: Some(name.to_owned()),
            currency: currency.to_owned(),
            credit: 0,
            debit: 0,
            inflight_credit: 0,
            inflight_debit: 0,
            version: 0,
            created_at: self.clock.stamp(),
            meta: None,
            track_fund_lineage: false,
            allocation_strategy: "FIFO".to_owned(),
        };
        self.insert_balance(balance).id.clone()
    }

    pub fn txns(&self) -> &[Txn] {
        &self.txns
    }

    pub fn txn(&self, id: &str) -> Option<&Txn> {
        self.txn_index.get(id).map(|&index| &self.txns[index])
    }

    pub fn txn_mut(&mut self, id: &str) -> Option<&mut Txn> {
        self.txn_index.get(id).map(|&index| &mut self.txns[index])
    }

    pub fn txn_by_reference(&self, reference: &str) -> Option<&Txn> {
        self.reference_index
            .get(reference)
            .map(|&index| &self.txns[index])
    }

    pub fn reference_used(&self, reference: &str) -> bool {
        self.reference_index.contains_key(reference)
    }

    pub fn insert_txn(&mut self, txn: Txn) -> &Txn {
        let index = self.txns.len();
        self.txn_index.insert(txn.id.clone(), index);
        self.reference_index.insert(txn.reference.clone(), index);
        self.txns.push(txn);
        &self.txns[index]
    }

    /// Applies `amount` to both balances. Both must exist; a missing one is skipped.
    pub fn move_funds(
        &mut self,
        movement: Movement,
        source: &str,
        destination: &str,
        amount: i128,
    ) {
        if let Some(balance) = self.balance_mut(source) {
            match movement {
                Movement::Settle => balance.debit += amount,
                Movement::Hold => balance.inflight_debit += amount,
                Movement::Commit => {
                    balance.inflight_debit -= amount;
                    balance.debit += amount;
                }
                Movement::Release => balance.inflight_debit -= amount,
            }
            balance.version += 1;
        }
        if let Some(balance) = self.balance_mut(destination) {
            match movement {
                Movement::Settle => balance.credit += amount,
                Movement::Hold => balance.inflight_credit += amount,
                Movement::Commit => {
                    balance.inflight_credit -= amount;
                    balance.credit += amount;
                }
                Movement::Release => balance.inflight_credit -= amount,
            }
            balance.version += 1;
        }
    }

    /// Blnk's funds check on the source of a debit or hold.
    ///
    /// `allow_overdraft` without a limit skips the check. Otherwise the debit must fit in
    /// `balance - inflight_debit_balance`, or, when `overdraft_limit` is positive, leave that
    /// figure no lower than `-overdraft_limit * precision`, also without `allow_overdraft`.
    pub fn check_funds(
        &self,
        source: &str,
        amount: i128,
        allow_overdraft: bool,
        overdraft_limit: Decimal,
        precision: u64,
    ) -> Result<(), FundsRefusal> {
        if allow_overdraft && overdraft_limit.is_zero() {
            return Ok(());
        }
        let available = self.balance(source).map_or(0, Balance::available);
        if available >= amount {
            return Ok(());
        }
        if overdraft_limit > Decimal::ZERO {
            let limit = to_minor_units(overdraft_limit, precision).unwrap_or(i128::MAX);
            if available - amount >= -limit {
                return Ok(());
            }
            return Err(FundsRefusal::OverdraftLimit);
        }
        Err(FundsRefusal::Insufficient)
    }

    /// Sums the amounts of queued rows not yet processed that debit and credit `balance_id`.
    pub fn queued_sums(&self, balance_id: &str) -> (i128, i128) {
        let mut debit = 0;
        let mut credit = 0;
        for job in &self.jobs {
            let Job::Queued(queued) = job else { continue };
            let Some(row) = self.txn(&queued.row_id) else {
                continue;
            };
            if row.source == balance_id {
                debit += row.precise;
            }
            if row.destination == balance_id {
                credit += row.precise;
            }
        }
        (debit, credit)
    }

    /// Returns the entity's metadata map for `POST /{id}/metadata`, chosen by id prefix.
    pub fn metadata_of(&mut self, id: &str) -> Option<&mut Map<String, Value>> {
        if id.starts_with("bln_") {
            let balance = self.balance_mut(id)?;
            balance.version += 1;
            return Some(balance.meta.get_or_insert_with(Map::new));
        }
        if id.starts_with("txn_") {
            return self.txn_mut(id).map(|txn| &mut txn.meta);
        }
        if id.starts_with("ldg_") {
            let ledger = self.ledgers.iter_mut().find(|ledger| ledger.id == id)?;
            return Some(ledger.meta.get_or_insert_with(Map::new));
        }
        let identity = self
            .identities
            .iter_mut()
            .find(|identity| identity.id == id)?;
        Some(identity.meta.get_or_insert_with(Map::new))
    }
}

/// Returns a stand-in for Blnk's SHA-256 row hash: 64 hex digits, unique per row.
pub fn new_hash() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}
