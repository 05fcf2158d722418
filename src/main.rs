use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: a request allocates and frees many small
/// buffers across threads, which glibc's allocator serves with more instructions and locking.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = tollgate::cli::Cli::parse();
    tollgate::cli::run(cli).await
}
