//! The billing commands: top-ups, payments, invoices and customer terms.

use super::{CliError, InvoiceFormat, describe_terms, operations, parse_customer, print_json};
use crate::accounts::Billing;
use crate::config::Config;
use crate::customers::{Funding, OperationError, Operations};
use crate::ids::CustomerId;
use crate::invoice::{InvoiceError, Period, render};
use crate::money::Usd;

/// The arguments of `topup` and `pay`.
pub struct FundingArgs<'a> {
    pub customer: &'a str,
    pub usd: &'a str,
    pub reference: Option<&'a str>,
}

/// Records a top-up or a payment and prints what was recorded.
pub async fn fund(
    config: &Config,
    funding: Funding,
    args: FundingArgs<'_>,
    json: bool,
) -> Result<(), CliError> {
    let id = parse_customer(args.customer)?;
    let amount = Usd::parse_positive(args.usd).map_err(|e| CliError::Usage(e.to_string()))?;
    let ops = operations(config)?;
    let funded = ops
        .record_funding(&id, amount, funding, args.reference)
        .await
        .map_err(operation_error)?;
    if json {
        return print_json(&funded);
    }

    let noun = match funding {
        Funding::TopUp => "top-up",
        Funding::Payment => "payment",
    };
    if funded.already_recorded {
        println!(
            "{noun} {} was already recorded (${} to {id}); nothing changed",
            funded.reference, funded.amount_usd
        );
    } else if funding == Funding::TopUp {
        println!("topped up {id} with ${}", funded.amount_usd);
    } else {
        println!("recorded a payment of ${} from {id}", funded.amount_usd);
    }
    match args.reference {
        Some(_) => println!("  reference {}", funded.reference),
        None => {
            let prefix = funding.reference(&id, "");
            let suffix = funded
                .reference
                .strip_prefix(&prefix)
                .unwrap_or(&funded.reference);
            println!(
                "  reference {} (pass --reference {suffix} to repeat it safely)",
                funded.reference
            );
        }
    }
    Ok(())
}

/// Computes and prints an invoice.
pub async fn invoice(
    config: &Config,
    customer: &str,
    (from, to): (&str, &str),
    format: InvoiceFormat,
) -> Result<(), CliError> {
    let id = parse_customer(customer)?;
    let period = Period::parse(from, to).map_err(|e| CliError::Usage(e.to_string()))?;
    let ops = operations(config)?;
    let invoice = ops.invoice(&id, period).await.map_err(invoice_error)?;
    match format {
        InvoiceFormat::Json => print_json(&invoice),
        InvoiceFormat::Csv => {
            print!("{}", render::csv(&invoice));
            Ok(())
        }
        InvoiceFormat::Table => {
            print!("{}", render::table(&invoice));
            Ok(())
        }
    }
}

/// Changes a customer's terms and prints them.
pub async fn set_terms(
    ops: &Operations,
    id: &CustomerId,
    billing: Billing,
    json: bool,
) -> Result<(), CliError> {
    let view = ops.set_terms(id, billing).await.map_err(operation_error)?;
    if json {
        return print_json(&view);
    }
    println!(
        "customer {} now {}",
        view.customer_id,
        describe_terms(&view.billing, view.credit_limit_usd.as_deref())
    );
    println!(
        "  each tollgate replica applies the new terms within blnk.account_cache_ttl (30 s by default)"
    );
    Ok(())
}

/// Prints every customer, one a line, with exact amounts.
pub async fn list(ops: &Operations, json: bool) -> Result<(), CliError> {
    let customers = ops.list_customers().await.map_err(operation_error)?;
    if json {
        return print_json(&customers);
    }
    if customers.is_empty() {
        println!("no customers yet; create one with `tollgate customer create <ID>`");
        return Ok(());
    }
    let mut rows = vec![[
        "customer".to_string(),
        "terms".to_string(),
        "balance".to_string(),
        "available".to_string(),
    ]];
    for customer in &customers {
        let terms = match &customer.problem {
            Some(problem) => format!("invalid terms: {problem}"),
            None => describe_terms(&customer.billing, customer.credit_limit_usd.as_deref()),
        };
        rows.push([
            customer.customer_id.clone(),
            terms,
            dollars(&customer.balance_usd),
            dollars(&customer.available_usd),
        ]);
    }
    let width = |column: usize| {
        rows.iter()
            .map(|row| row[column].chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2), width(3)];
    for [id, terms, balance, available] in &rows {
        let [w0, w1, w2, w3] = widths;
        println!("{id:<w0$}  {terms:<w1$}  {balance:>w2$}  {available:>w3$}");
    }
    Ok(())
}

/// Writes an exact amount such as `-0.25` as `-$0.25`.
fn dollars(amount: &str) -> String {
    match amount.strip_prefix('-') {
        Some(magnitude) => format!("-${magnitude}"),
        None => format!("${amount}"),
    }
}

/// Sorts an operation's failure: invalid input exits with 2, everything else with 1.
fn operation_error(error: OperationError) -> CliError {
    match error {
        OperationError::Invalid(message) => CliError::Usage(message),
        other => CliError::Failed(other.to_string()),
    }
}

fn invoice_error(error: InvoiceError) -> CliError {
    match error {
        InvoiceError::Operation(error) => operation_error(error),
        other => CliError::Failed(other.to_string()),
    }
}
