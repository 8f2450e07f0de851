//! The `jitguard` binary: set up process-wide state and hand over to the CLI.

use std::process::ExitCode;

// mimalloc: measurably faster than the system allocator for the small, short-lived
// allocations of JSON parsing and Rego evaluation (see README "Performance").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    jitguard::install_crypto_provider();
    jitguard::cli::main()
}
