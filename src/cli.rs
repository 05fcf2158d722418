//! The `tollgate` command line: `serve` and the operator commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::accounts::Billing;
use crate::billing::SystemBalances;
use crate::config::{self, Config};
use crate::customers::Operations;
use crate::ids::CustomerId;
use crate::ledger::BlnkClient;
use crate::money::Usd;
use crate::pricing::PriceTable;

#[derive(Parser, Debug)]
#[command(name = "tollgate", version, about = "OpenAI-compatible proxy that bills usage into a Blnk ledger")]
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
    /// Validate a price file and print its table.
    #[command(subcommand)]
    Pricing(PricingCommand),
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
        if !self.postpaid {
            return Ok(Billing::Prepaid);
        }
        let credit_limit = match &self.credit_limit {
            Some(text) => Some(Usd::parse_positive(text).map_err(|e| CliError::Usage(format!("--credit-limit: {e}")))?),
            None => None,
        };
        Ok(Billing::Postpaid { credit_limit })
    }
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
        Command::Topup { customer, usd, reference } => topup(&config, &customer, &usd, reference, cli.json).await,
        Command::Pricing(PricingCommand::Check { file }) => pricing_check(&config, file),
    }
}

async fn serve(config: Config) -> Result<(), CliError> {
    crate::telemetry::init(config.log.format, &config.log.filter);
    let listen = config.listen;
    let admin_listen = config.admin.listen;
    let state = crate::server::build_state(config).map_err(|e| CliError::Failed(e.to_string()))?;
    let listener = crate::server::bind(listen).await.map_err(|e| CliError::Failed(e.to_string()))?;
    let admin = crate::server::bind(admin_listen).await.map_err(|e| CliError::Failed(e.to_string()))?;
    let shutdown = CancellationToken::new();
    crate::task::spawn_named("signals", crate::server::watch_signals(shutdown.clone()));
    crate::server::run_with_admin(state, listener, Some(admin), shutdown)
        .await
        .map_err(|e| CliError::Failed(e.to_string()))
}

pub fn operations(config: &Config) -> Result<Operations, CliError> {
    let blnk = BlnkClient::new(&config.blnk.url, config.blnk.api_key.clone(), config.blnk.request_timeout)
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

fn failed(error: impl std::fmt::Display) -> CliError {
    CliError::Failed(error.to_string())
}

fn print_json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(failed)?;
    println!("{text}");
    Ok(())
}

async fn customer(config: &Config, command: CustomerCommand, json: bool) -> Result<(), CliError> {
    let ops = operations(config)?;
    match command {
        CustomerCommand::Create { customer, name, terms } => {
            let id = parse_customer(&customer)?;
            let billing = terms.billing()?;
            let created = ops.create_customer(&id, name.as_deref(), billing).await.map_err(failed)?;
            if json {
                return print_json(&created);
            }
            let verb = if created.created_anything { "created" } else { "already exists" };
            println!("customer {} {verb}", created.customer_id);
            println!("  billing         {}", describe_terms(&created.billing, created.credit_limit_usd.as_deref()));
            println!("  USD wallet      {}", created.usd_balance_id);
            println!("  TOKENS balance  {}", created.tokens_balance_id);
            println!("  identity        {}", created.identity_id);
            println!("  ledger          {}", created.ledger_id);
            Ok(())
        }
        CustomerCommand::Show { customer } => {
            let id = parse_customer(&customer)?;
            let view = ops.show_customer(&id).await.map_err(failed)?;
            if json {
                return print_json(&view);
            }
            println!("customer {}", view.customer_id);
            println!("  billing         {}", describe_terms(&view.billing, view.credit_limit_usd.as_deref()));
            println!("  balance         ${}", view.balance_usd);
            println!("  held            ${}", view.held_usd);
            println!("  available       ${}", view.available_usd);
            println!("  tokens used     {}", view.tokens_used);
            println!("  USD wallet      {}", view.usd_balance_id);
            println!("  TOKENS balance  {}", view.tokens_balance_id);
            Ok(())
        }
    }
}

fn describe_terms(billing: &str, limit: Option<&str>) -> String {
    match limit {
        Some(limit) => format!("{billing}, credit limit ${limit}"),
        None if billing == "postpaid" => "postpaid, no credit limit".to_string(),
        None => billing.to_string(),
    }
}

async fn topup(config: &Config, customer: &str, usd: &str, reference: Option<String>, json: bool) -> Result<(), CliError> {
    let id = parse_customer(customer)?;
    let amount = Usd::parse_positive(usd).map_err(|e| CliError::Usage(e.to_string()))?;
    let generated = reference.is_none();
    let suffix = reference.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let reference = format!("tg:topup:{id}:{suffix}");
    let ops = operations(config)?;
    let funded = ops.fund(&id, amount, &reference, "topup").await.map_err(failed)?;
    if json {
        return print_json(&funded);
    }
    if funded.already_recorded {
        println!("top-up {} was already recorded (${} to {}); nothing changed", funded.reference, funded.amount_usd, id);
    } else {
        println!("topped up {} with ${}", id, funded.amount_usd);
    }
    if generated {
        println!("  reference {} (pass --reference {suffix} to repeat it safely)", funded.reference);
    } else {
        println!("  reference {}", funded.reference);
    }
    Ok(())
}

fn pricing_check(config: &Config, file: Option<PathBuf>) -> Result<(), CliError> {
    let path = file.unwrap_or_else(|| config.pricing.file.clone());
    let table = PriceTable::load(&path).map_err(failed)?;
    println!("{}", table.render());
    println!("{}: {} models, valid", path.display(), table.model_count());
    Ok(())
}
