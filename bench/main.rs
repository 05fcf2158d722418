//! Load harness: measures what tollgate adds over a direct call and over a bare proxy hop.
//!
//! Everything runs on loopback. This process hosts the load generator, the mock upstream and
//! the ledger stub; tollgate and the bare hop run as child processes (this binary started
//! again with a hidden subcommand), so their CPU time and memory are read apart from the
//! load. Arms run interleaved in rounds, so drift of the machine falls on every arm alike.
//!
//! ```text
//! cargo run --release --example bench -- --duration 10s
//! cargo run --example bench -- --smoke
//! ```
//!
//! `docs/benchmarks.md` describes the method and records results.

// Statistics and report formatting use floats; no money passes through the harness.
#![allow(clippy::float_arithmetic)]

mod arms;
mod floor;
mod goals;
mod hop;
mod ledger;
mod load;
mod procs;
mod profile;
mod report;
mod scenarios;
mod setup;
mod stats;
mod tables;
mod upstream;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};

use report::{Machine, Results};
use scenarios::Settings;
use setup::Rig;

#[derive(Parser, Debug)]
#[command(
    name = "bench",
    about = "Load harness for tollgate: direct vs bare hop vs tollgate, on loopback"
)]
#[command(args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,

    /// Measured time of each arm in the latency comparison, split across the rounds, such as
    /// 10s. The other scenarios scale with it.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,

    /// Rounds of the latency and stream comparisons.
    #[arg(long, default_value_t = 5)]
    rounds: usize,

    /// Requests per second of the latency comparison.
    #[arg(long, default_value_t = 1000)]
    rate: u32,

    /// Delay of the mock upstream before it responds, such as 0s or 20ms.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    upstream_latency: Duration,

    /// Streams held open at once in the memory scenario.
    #[arg(long, default_value_t = 1000)]
    streams: u32,

    /// Scenarios to run, comma-separated; all but `profile` by default. `profile` runs
    /// tollgate under valgrind's callgrind and reports instructions per request.
    #[arg(long, value_delimiter = ',', value_enum)]
    only: Vec<Scenario>,

    /// Where `profile` writes its callgrind dumps.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-profile"))]
    profile_dir: std::path::PathBuf,

    /// Requests per case of `profile`.
    #[arg(long, default_value_t = 400)]
    profile_requests: u32,

    /// A short run of every scenario (a few hundred requests per arm) that fails on any
    /// request error; for CI, where timings mean nothing.
    #[arg(long)]
    smoke: bool,

    /// Runs the load generator and the stubs on CPU 0, and the hop, the floor and tollgate
    /// on CPU 1 (with `taskset`), so the process under test has a core of its own.
    #[arg(long)]
    pin: bool,
}

#[derive(Subcommand, Debug)]
enum Role {
    /// Serves the bare hop in front of UPSTREAM, or the floor when LEDGER is given (started
    /// by the harness itself).
    #[command(hide = true)]
    ServeHop {
        #[arg(long)]
        upstream: SocketAddr,
        /// The ledger stub's floor port; the hop then also makes tollgate's critical-path
        /// ledger calls.
        #[arg(long)]
        ledger: Option<SocketAddr>,
    },
    /// Serves tollgate from the library with the configuration in the environment (started
    /// by the harness itself).
    #[command(hide = true)]
    ServeTollgate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Latency,
    Sweep,
    Streams,
    Memory,
    Bodies,
    Profile,
}

/// Why the harness could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{context} failed: {source}")]
    Io {
        context: &'static str,
        source: std::io::Error,
    },
    #[error("the {name} process failed: {detail}")]
    Child { name: &'static str, detail: String },
}

impl BenchError {
    pub fn io(context: &'static str, source: std::io::Error) -> BenchError {
        BenchError::Io { context, source }
    }
}

/// The allocator `tollgate serve` uses, so the harness measures tollgate as it ships. The
/// bare hop and the stubs run in this binary too and get the same allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match cli.role {
        Some(Role::ServeHop { upstream, ledger }) => runtime.block_on(hop::serve(upstream, ledger)),
        Some(Role::ServeTollgate) => runtime.block_on(procs::serve_tollgate()),
        None => runtime.block_on(measure(&cli)),
    }
}

/// Maximum duration of a smoke run before it fails, so a hung request cannot stall CI.
const SMOKE_DEADLINE: Duration = Duration::from_secs(60);

async fn measure(cli: &Cli) -> ExitCode {
    if cli.smoke {
        fail_after(SMOKE_DEADLINE);
    }
    let settings = if cli.smoke {
        Settings::smoke()
    } else {
        Settings::full(
            cli.duration,
            cli.rate,
            cli.rounds,
            cli.upstream_latency,
            cli.streams,
        )
    };
    let mut machine = Machine::read();
    let started = Instant::now();
    let wanted = |scenario| {
        cli.only.contains(&scenario) || (cli.only.is_empty() && scenario != Scenario::Profile)
    };
    let profile_dir = wanted(Scenario::Profile).then_some(cli.profile_dir.as_path());
    if let Some(dir) = profile_dir
        && let Err(error) = std::fs::create_dir_all(dir)
    {
        eprintln!(
            "error: cannot create the profile directory {}: {error}",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    if cli.pin
        && let Err(error) = setup::pin_self_to_load_cpu()
    {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    machine.pinned = cli.pin;
    let rig = match Rig::start(profile_dir, cli.pin).await {
        Ok(rig) => rig,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut results = Results::default();
    if wanted(Scenario::Latency) {
        progress("latency");
        results.latency = Some(scenarios::latency(&rig, &settings).await);
    }
    if wanted(Scenario::Streams) {
        progress("streams");
        results.streams = Some(scenarios::streams(&rig, &settings).await);
    }
    if wanted(Scenario::Memory) {
        progress("memory");
        results.memory = Some(scenarios::memory(&rig, &settings).await);
    }
    if wanted(Scenario::Bodies) {
        progress("request bodies");
        results.bodies = Some(scenarios::bodies(&rig, &settings).await);
    }
    // The sweep runs last: overload leaves tollgate's heap grown, which would hide the memory
    // that open streams take.
    if wanted(Scenario::Sweep) {
        progress("rate sweep");
        results.sweep = Some(scenarios::sweep(&rig, &settings).await);
    }
    if let Some(dir) = profile_dir {
        progress("instructions per request under callgrind");
        results.profile = Some(profile::run(&rig, dir, cli.profile_requests).await);
    }
    let tollgate_log = rig.dir.path().join("tollgate.log");
    machine.load_after = report::load_average();
    print!(
        "{}",
        report::render(&results, &settings, &machine, started.elapsed())
    );

    let problems = report::problems(&results);
    for problem in &problems {
        eprintln!("request error: {problem}");
    }
    let log_errors = count_log_errors(&tollgate_log);
    rig.stop();
    if cli.smoke && (!problems.is_empty() || log_errors > 0) {
        eprintln!(
            "smoke run failed: {} arms with request errors, {log_errors} error lines in the tollgate log",
            problems.len()
        );
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Exits with a failure once `deadline` has passed. The children see their standard input
/// close and stop.
fn fail_after(deadline: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(deadline);
        eprintln!(
            "error: the smoke run did not finish within {} s",
            deadline.as_secs()
        );
        std::process::exit(1);
    });
}

fn progress(scenario: &str) {
    eprintln!("bench: measuring {scenario}");
}

/// Error lines in tollgate's log, each printed to standard error.
fn count_log_errors(log: &std::path::Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let errors: Vec<&str> = text.lines().filter(|line| line.contains("ERROR")).collect();
    for line in errors.iter().take(5) {
        eprintln!("tollgate log: {line}");
    }
    errors.len()
}

/// Parses `250us`, `20ms`, `10s` or `2m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number.parse().map_err(|_| {
        format!("invalid duration {text:?}: expected a whole number and a unit, such as 10s")
    })?;
    match unit {
        "us" => Ok(Duration::from_micros(value)),
        "ms" => Ok(Duration::from_millis(value)),
        "s" => Ok(Duration::from_secs(value)),
        "m" => Ok(Duration::from_secs(value * 60)),
        _ => Err(format!(
            "invalid duration {text:?}: the unit must be us, ms, s or m"
        )),
    }
}
