//! The `jitguard` binary: set up process-wide state and hand over to the CLI.

use std::process::ExitCode;

// mimalloc: measurably faster than the system allocator for the small, short-lived
// allocations of JSON parsing and Rego evaluation (see README "Performance").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Before any thread exists: the environment is only safe to change now.
    if let Some((key, value)) =
        jitguard::library_backtraces_off(std::env::var_os("RUST_LIB_BACKTRACE").as_deref())
    {
        std::env::set_var(key, value);
    }
    jitguard::install_crypto_provider();
    jitguard::cli::main()
}
