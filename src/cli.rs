//! The `tollgate` command line: `serve` and the operator commands.

mod billing;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::accounts::Billing;
use crate::billing::SystemBalances;
use crate::config::{self, Config};
use crate::customers::{Funding, Operations};
use crate::ids::CustomerId;
use crate::ledger::BlnkClient;
use crate::money::Usd;
use crate::pricing::PriceTable;

#[derive(Parser, Debug)]
#[command(
    name = "tollgate",
    version,
    about = "OpenAI-compatible proxy that bills usage into a Blnk ledger"
)]
pub struct Cli {
    /// Configuration file (TOML). Defaults to $TOLLGATE_CONFIG; every key can also be set
    /// with TOLLGATE_<SECTION>_<KEY>.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print results as JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the proxy.
    Serve,
    /// Create and inspect customers.
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// Fund a customer's wallet from the world balance.
    Topup {
        customer: String,
        /// Amount in US dollars, such as 25 or 12.50.
        usd: String,
        /// Idempotency reference; recorded as tg:topup:<ID>:<R>. Generated when absent.
        #[arg(long)]
        reference: Option<String>,
    },
    /// Record a payment of a postpaid invoice: funds the wallet from the world balance.
    Pay {
        customer: String,
        /// Amount in US dollars, such as 120 or 12.50.
        usd: String,
        /// Idempotency reference, such as the invoice number; recorded as tg:pay:<ID>:<R>.
        #[arg(long)]
        reference: String,
    },
    /// Print a customer's invoice for the period [--from, --to).
    Invoice {
        customer: String,
        /// Start of the period, included: a UTC date (YYYY-MM-DD, midnight UTC) or RFC 3339.
        #[arg(long, value_name = "DATE")]
        from: String,
        /// End of the period, excluded: a UTC date (YYYY-MM-DD, midnight UTC) or RFC 3339.
        #[arg(long, value_name = "DATE")]
        to: String,
        /// Output format; table rounds amounts to cents, json and csv are exact.
        #[arg(long, value_enum, default_value_t = InvoiceFormat::Table)]
        format: InvoiceFormat,
    },
    /// Validate a price file and print its table.
    #[command(subcommand)]
    Pricing(PricingCommand),
    /// Create, revoke and list per-customer client keys.
    #[command(subcommand)]
    Key(crate::auth::KeyCommand),
    /// List and retry the charges and hold voids not yet confirmed by Blnk. Works while the
    /// server runs.
    #[command(subcommand)]
    Outbox(crate::outbox::view::OutboxCommand),
}

/// Output format of `tollgate invoice`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InvoiceFormat {
    Table,
    Json,
    Csv,
}

#[derive(Subcommand, Debug)]
pub enum CustomerCommand {
    /// Create a customer: identity, USD wallet and TOKENS balance. Safe to run twice.
    Create {
        customer: String,
        /// Display name stored on the identity.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        terms: Terms,
    },
    /// Show balance, held and available amounts, tokens used and billing terms.
    Show { customer: String },
    /// Change a customer's billing terms. Each replica applies them within its account
    /// cache TTL (blnk.account_cache_ttl, 30 s by default).
    Set {
        customer: String,
        #[command(flatten)]
        terms: NewTerms,
    },
    /// List every customer with its terms and balance.
    List,
}

/// The terms `customer set` writes: exactly one of --prepaid and --postpaid.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("billing").required(true).args(["prepaid", "postpaid"])))]
pub struct NewTerms {
    /// Pays in advance; requests beyond the wallet are rejected with 402.
    #[arg(long)]
    pub prepaid: bool,
    /// Pays by invoice; the wallet runs into overdraft.
    #[arg(long)]
    pub postpaid: bool,
    /// Largest overdraft of a postpaid customer, in US dollars; absent means no cap.
    #[arg(long, requires = "postpaid", value_name = "USD")]
    pub credit_limit: Option<String>,
}

#[derive(Args, Debug)]
pub struct Terms {
    /// Pays in advance; requests beyond the wallet are rejected with 402 (the default).
    #[arg(long, conflicts_with = "postpaid")]
    pub prepaid: bool,
    /// Pays by invoice; the wallet runs into overdraft.
    #[arg(long)]
    pub postpaid: bool,
    /// Largest overdraft of a postpaid customer, in US dollars; absent means no cap.
    #[arg(long, requires = "postpaid", value_name = "USD")]
    pub credit_limit: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum PricingCommand {
    /// Validate FILE (default: the configured price file) and print every price.
    Check { file: Option<PathBuf> },
}

/// A failure of a command, printed to stderr with exit code 1 (or 2 for usage errors).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
}

impl Terms {
    pub fn billing(&self) -> Result<Billing, CliError> {
        billing_of(self.postpaid, self.credit_limit.as_deref())
    }
}

impl NewTerms {
    pub fn billing(&self) -> Result<Billing, CliError> {
        billing_of(self.postpaid, self.credit_limit.as_deref())
    }
}

fn billing_of(postpaid: bool, credit_limit: Option<&str>) -> Result<Billing, CliError> {
    if !postpaid {
        if credit_limit.is_some() {
            return Err(CliError::Usage(
                "--credit-limit applies only to postpaid customers; add --postpaid, or drop \
                 --credit-limit for a prepaid customer"
                    .to_string(),
            ));
        }
        return Ok(Billing::Prepaid);
    }
    let credit_limit = match credit_limit {
        Some(text) => Some(
            Usd::parse_positive(text)
                .map_err(|e| CliError::Usage(format!("--credit-limit: {e}")))?,
        ),
        None => None,
    };
    Ok(Billing::Postpaid { credit_limit })
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> ExitCode {
    match dispatch(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
        Err(CliError::Failed(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> Result<(), CliError> {
    let config = config::load(cli.config.as_deref()).map_err(|e| CliError::Usage(e.to_string()))?;
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Customer(command) => customer(&config, command, cli.json).await,
        Command::Topup {
            customer,
            usd,
            reference,
        } => {
            let funding = billing::FundingArgs {
                customer: &customer,
                usd: &usd,
                reference: reference.as_deref(),
            };
            billing::fund(&config, Funding::TopUp, funding, cli.json).await
        }
        Command::Pay {
            customer,
            usd,
            reference,
        } => {
            let funding = billing::FundingArgs {
                customer: &customer,
                usd: &usd,
                reference: Some(&reference),
            };
            billing::fund(&config, Funding::Payment, funding, cli.json).await
        }
        Command::Invoice {
            customer,
            from,
            to,
            format,
        } => {
            let format = if cli.json {
                InvoiceFormat::Json
            } else {
                format
            };
            billing::invoice(&config, &customer, (&from, &to), format).await
        }
        Command::Pricing(PricingCommand::Check { file }) => pricing_check(&config, file),
        Command::Key(command) => crate::auth::commands::run(&config, command, cli.json).await,
        Command::Outbox(command) => crate::outbox::view::run(&config, command, cli.json)
            .await
            .map_err(failed),
    }
}

async fn serve(config: Config) -> Result<(), CliError> {
    crate::telemetry::init(config.log.format, &config.log.filter);
    let listen = config.listen;
    let admin_listen = config.admin.listen;
    let state = crate::server::build_state(config).map_err(|e| CliError::Failed(e.to_string()))?;
    let listener = crate::server::bind(listen)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let admin = crate::server::bind(admin_listen)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?;
    // Loading the tokenizer tables takes a noticeable moment; doing it now keeps that delay
    // off the first request that needs an estimate.
    drop(tokio::task::spawn_blocking(
        crate::usage::preload_tokenizers,
    ));
    let shutdown = CancellationToken::new();
    crate::task::spawn_named("signals", crate::server::watch_signals(shutdown.clone()));
    crate::server::run_with_admin(state, listener, Some(admin), shutdown)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))
}

pub fn operations(config: &Config) -> Result<Operations, CliError> {
    let blnk = BlnkClient::new(
        &config.blnk.url,
        config.blnk.api_key.clone(),
        config.blnk.request_timeout,
    )
    .map_err(|e| CliError::Failed(e.to_string()))?;
    Ok(Operations {
        blnk,
        ledger_name: config.blnk.ledger_name.clone(),
        system: SystemBalances {
            revenue: config.blnk.revenue_balance.clone(),
            token_pool: config.blnk.token_pool_balance.clone(),
            world: config.blnk.world_balance.clone(),
        },
    })
}

pub fn parse_customer(text: &str) -> Result<CustomerId, CliError> {
    CustomerId::parse(text).map_err(|e| CliError::Usage(e.to_string()))
}

pub(crate) fn failed(error: impl std::fmt::Display) -> CliError {
    CliError::Failed(error.to_string())
}

pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(failed)?;
    println!("{text}");
    Ok(())
}

async fn customer(config: &Config, command: CustomerCommand, json: bool) -> Result<(), CliError> {
    let ops = operations(config)?;
    match command {
        CustomerCommand::Create {
            customer,
            name,
            terms,
        } => {
            let id = parse_customer(&customer)?;
            let billing = terms.billing()?;
            let created = ops
                .create_customer(&id, name.as_deref(), billing)
                .await
                .map_err(failed)?;
            if json {
                return print_json(&created);
            }
            let verb = if created.created_anything {
                "created"
            } else {
                "already exists"
            };
            println!("customer {} {verb}", created.customer_id);
            println!(
                "  billing         {}",
                describe_terms(&created.billing, created.credit_limit_usd.as_deref())
            );
            println!("  USD wallet      {}", created.usd_balance_id);
            println!("  TOKENS balance  {}", created.tokens_balance_id);
            println!("  identity        {}", created.identity_id);
            println!("  ledger          {}", created.ledger_id);
            Ok(())
        }
        CustomerCommand::Show { customer } => {
            let id = parse_customer(&customer)?;
            let view = ops.show_customer(&id).await.map_err(failed)?;
            let outbox = crate::outbox::view::customer_counts(config, id.as_str()).await;
            if json {
                return print_json(&crate::outbox::view::WithOutbox {
                    account: &view,
                    outbox,
                });
            }
            println!("customer {}", view.customer_id);
            println!(
                "  billing         {}",
                describe_terms(&view.billing, view.credit_limit_usd.as_deref())
            );
            println!("  balance         {}", dollars(&view.balance_usd));
            println!("  held            {}", dollars(&view.held_usd));
            println!("  available       {}", dollars(&view.available_usd));
            println!("  tokens used     {}", view.tokens_used);
            println!("  USD wallet      {}", view.usd_balance_id);
            println!("  TOKENS balance  {}", view.tokens_balance_id);
            crate::outbox::view::print_customer_counts(outbox.as_ref());
            Ok(())
        }
        CustomerCommand::Set { customer, terms } => {
            let id = parse_customer(&customer)?;
            let billing = terms.billing()?;
            billing::set_terms(&ops, &id, billing, json).await
        }
        CustomerCommand::List => billing::list(&ops, json).await,
    }
}

/// Writes a decimal amount as dollars, with the sign before the `$` (`-$0.05`).
fn dollars(amount: &str) -> String {
    match amount.strip_prefix('-') {
        Some(magnitude) => format!("-${magnitude}"),
        None => format!("${amount}"),
    }
}

pub(crate) fn describe_terms(billing: &str, limit: Option<&str>) -> String {
    match limit {
        Some(limit) => format!("{billing}, credit limit ${limit}"),
        None if billing == "postpaid" => "postpaid, no credit limit".to_string(),
        None => billing.to_string(),
    }
}

fn pricing_check(config: &Config, file: Option<PathBuf>) -> Result<(), CliError> {
    let path = file.unwrap_or_else(|| config.pricing.file.clone());
    let table = PriceTable::load(&path)
        .and_then(|table| table.with_default_markup(config.pricing.default_markup))
        .map_err(failed)?;
    println!("{}", table.render());
    println!("{}: {} models, valid", path.display(), table.model_count());
    Ok(())
}
