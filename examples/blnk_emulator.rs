//! An in-memory Blnk emulator for trying tollgate offline, without Docker or a real Blnk.
//!
//! It is the stateful fake from tollgate's tests, served on a fixed address, with its clock
//! following the wall clock and the work of Blnk's workers (refunds, hold expiry, queued
//! rows) run every second. State lives in memory and is lost on exit: never use it for
//! real money.
//!
//! ```text
//! cargo run --example blnk_emulator -- --listen 127.0.0.1:5001
//! ```

#[path = "../tests/support/blnk/mod.rs"]
mod blnk;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: blnk_emulator [--listen ADDR] [--key MASTER_KEY]";

#[tokio::main]
async fn main() -> ExitCode {
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 5001));
    let mut key = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(value)) => match value.parse() {
                Ok(address) => listen = address,
                Err(error) => {
                    eprintln!("invalid --listen {value:?}: {error}\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            ("--key", Some(value)) => key = Some(value),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }

    let fake = match blnk::FakeBlnk::try_start_on(listen, key).await {
        Ok(fake) => fake,
        Err(error) => {
            eprintln!("cannot listen on {listen}: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "Blnk emulator listening on {} (in memory; state is lost on exit)",
        fake.url()
    );
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                fake.set_now(chrono::Utc::now());
                fake.run_workers();
            }
        }
    }
    ExitCode::SUCCESS
}
