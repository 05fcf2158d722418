//! Reading an invoice's figures from Blnk: the wallet's rows in the period, the rows at the
//! period's end, and the historical balances at both ends.

use super::InvoiceError;
use super::pager::{Bound, Pager};
use super::period::Period;
use super::statement::{Invoice, InvoiceInput, UsageReport, build_invoice, build_usage};
use crate::customers::Operations;
use crate::ids::CustomerId;
use crate::ledger::Transaction;

impl Operations {
    /// Computes a customer's invoice for `period` and checks that it balances.
    pub async fn invoice(
        &self,
        customer: &CustomerId,
        period: Period,
    ) -> Result<Invoice, InvoiceError> {
        let account = self.account(customer).await?;
        let wallet = account.usd_balance_id.as_str();

        let rows = self
            .wallet_rows(wallet, period_start(period), period_end(period))
            .await?;
        let moment = Bound {
            at: period.to,
            inclusive: true,
        };
        let rows_at_end = self.wallet_rows(wallet, moment, moment).await?;
        let at_from = self.blnk.balance_at(wallet, period.from).await?;
        let at_to = self.blnk.balance_at(wallet, period.to).await?;

        let input = InvoiceInput {
            account: &account,
            period,
            rows: &rows,
            rows_at_end: &rows_at_end,
            balance_at_from: at_from.balance,
            balance_at_to: at_to.balance,
        };
        Ok(build_invoice(&input)?)
    }

    /// Computes a customer's usage in `period`, grouped by billed model.
    pub async fn usage(
        &self,
        customer: &CustomerId,
        period: Period,
    ) -> Result<UsageReport, InvoiceError> {
        let account = self.account(customer).await?;
        let rows = self
            .wallet_rows(
                &account.usd_balance_id,
                period_start(period),
                period_end(period),
            )
            .await?;
        Ok(build_usage(&account, period, &rows)?)
    }

    /// Reads every applied row of `wallet` between the bounds, page by page.
    async fn wallet_rows(
        &self,
        wallet: &str,
        start: Bound,
        end: Bound,
    ) -> Result<Vec<Transaction>, InvoiceError> {
        let mut pager = Pager::new(wallet, start, end);
        while let Some(query) = pager.next_query() {
            let page = self.blnk.filter_transactions(&query).await?;
            pager.accept(page).map_err(|source| InvoiceError::Paging {
                wallet: wallet.to_string(),
                source,
            })?;
        }
        Ok(pager.into_rows())
    }
}

fn period_start(period: Period) -> Bound {
    Bound {
        at: period.from,
        inclusive: true,
    }
}

fn period_end(period: Period) -> Bound {
    Bound {
        at: period.to,
        inclusive: false,
    }
}
