use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = tollgate::cli::Cli::parse();
    tollgate::cli::run(cli).await
}
