//! The command line: a thin layer over the library. One file per subcommand.

mod audit;
mod ceiling;
mod certs;
mod dry_run;
mod jit;
mod report;
mod serve;
mod test;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub use serve::ServeArgs;

#[derive(Parser, Debug)]
#[command(
    name = "jitguard",
    version,
    about = "Kubernetes admission webhook for just-in-time access and Rego guardrails",
    long_about = None,
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, global = true, env = "JITGUARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (tracing's EnvFilter syntax), e.g. `info`, `debug,kube=warn`.
    /// Defaults to `info` for `serve` and `warn` for the other commands.
    #[arg(long, global = true, env = "JITGUARD_LOG")]
    pub log: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the admission webhooks over HTTPS (`--dev` for a local first run).
    Serve(Box<ServeArgs>),
    /// Decide manifests or AdmissionReviews offline, as the webhook would (for CI).
    DryRun(dry_run::DryRunArgs),
    /// Run the `test_*` rules of a policy folder, as `opa test` does.
    Test(test::TestArgs),
    /// Compile a policy folder (policies, data and tests) without running anything.
    Check(test::CheckArgs),
    /// Run example-based policy suites (cases with expected decisions), for CI.
    Verify(verify::VerifyArgs),
    /// Judge the objects already in a cluster with the policies (read-only, kubeconfig).
    Audit(audit::AuditArgs),
    /// Write a development CA and serving certificate, and print the caBundle.
    Certs(certs::CertsArgs),
    /// Print the AccessRequest CustomResourceDefinition (YAML) generated from the code.
    Crd,
    /// Request, approve and revoke access (also installed as the kubectl plugin
    /// `kubectl-jit`: `kubectl jit request ...`).
    Jit(jit::JitArgs),
    /// The load harness's reference: TLS and AdmissionReview parsing, no evaluation.
    #[command(hide = true)]
    BenchCeiling(ceiling::CeilingArgs),
}

/// Exit codes shared by the CI-facing commands.
pub mod exit {
    /// Everything allowed / passed.
    pub const OK: u8 = 0;
    /// Something was denied / a test failed.
    pub const FAILED: u8 = 1;
    /// Usage, parse or compile error: nothing was decided.
    pub const ERROR: u8 = 2;
}

pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if invoked_as_plugin(&args) {
        // Parsed as `kubectl jit` so that usage lines and errors name the command the
        // user typed, not the binary's file name.
        let plugin = jit::PluginCli::parse_from(args);
        init_logging(
            LogFormat::Text,
            plugin.log.as_deref().unwrap_or("off"),
            false,
        );
        return jit::run(&plugin.args);
    }
    let cli = Cli::parse_from(args);
    let default_filter = match cli.command {
        Command::Serve(_) => "info",
        // The plugin's messages say what went wrong; library log lines would only
        // repeat them, rawer (`--log warn` shows them).
        Command::Jit(_) => "off",
        _ => "warn",
    };
    init_logging(
        cli.log_format,
        cli.log.as_deref().unwrap_or(default_filter),
        matches!(cli.command, Command::Serve(_)),
    );
    match cli.command {
        Command::Serve(args) => match serve::run(*args, cli.log_format == LogFormat::Json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let message = error_chain(&e);
                // Once: on the log when it is on (where a container's reader looks),
                // otherwise on stderr.
                if tracing::enabled!(tracing::Level::ERROR) {
                    tracing::error!("{message}");
                } else {
                    eprintln!("jitguard: {message}");
                }
                ExitCode::from(exit::ERROR)
            }
        },
        Command::DryRun(args) => dry_run::run(&args),
        Command::Test(args) => test::run_tests(&args),
        Command::Check(args) => test::run_check(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Audit(args) => audit::run(&args),
        Command::Certs(args) => certs::run(&args),
        Command::Jit(args) => jit::run(&args),
        Command::BenchCeiling(args) => match ceiling::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("jitguard bench-ceiling: {}", error_chain(&e));
                ExitCode::from(exit::ERROR)
            }
        },
        Command::Crd => match crd_yaml() {
            Ok(yaml) => {
                emit(&yaml);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("jitguard: {e}");
                ExitCode::from(exit::ERROR)
            }
        },
    }
}

/// Called as `kubectl-jit` (kubectl runs plugins by that name), the binary is
/// `kubectl jit`.
fn invoked_as_plugin(args: &[std::ffi::OsString]) -> bool {
    args.first()
        .and_then(|a| std::path::Path::new(a).file_stem())
        .is_some_and(|stem| stem == "kubectl-jit")
}

/// The CRD YAML exactly as `manifests/` holds it (a test keeps the two equal).
pub fn crd_yaml() -> Result<String, yaml_serde::Error> {
    use kube::CustomResourceExt;
    let crd = crate::grant::AccessRequest::crd();
    Ok(format!(
        "# Generated by `jitguard crd` from src/grant/resource.rs: do not edit by hand.\n{}",
        yaml_serde::to_string(&crd)?
    ))
}

/// Writes a command's output. Not `print!`: that panics when stdout is closed
/// (`jitguard dry-run ... | head -1`); a closed pipe just ends the output.
pub(crate) fn emit(text: &str) {
    use std::io::Write as _;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// `writeln!` into a `String` (infallible; the result is discarded on purpose).
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}
pub(crate) use w;

/// An error and its causes on one line, each cause once: many errors already name their
/// source in their own text (`cannot read x: No such file...`), and anyhow's `{:#}` would
/// repeat it.
fn error_chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// `serve` logs to stdout (the container convention); the other commands keep stdout for
/// their results and log to stderr.
fn init_logging(format: LogFormat, filter: &str, stdout: bool) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("jitguard: invalid --log filter {filter:?} ({e}); using info");
        EnvFilter::new("info")
    });
    // Colour only on a terminal: a log written to a file or a pipe must stay plain text.
    let ansi = if stdout {
        std::io::stdout().is_terminal()
    } else {
        std::io::stderr().is_terminal()
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let result = match (format, stdout) {
        (LogFormat::Json, true) => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        (LogFormat::Json, false) => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .try_init(),
        (LogFormat::Text, true) => builder.try_init(),
        (LogFormat::Text, false) => builder.with_writer(std::io::stderr).try_init(),
    };
    if let Err(e) = result {
        eprintln!("jitguard: cannot set up logging: {e}");
    }
}

/// A `--policies` default that works from the repository and in the container image.
pub(crate) fn default_policies() -> PathBuf {
    PathBuf::from("policies")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file");
        let inner = crate::policy::LoadError::Io {
            path: "/nope".into(),
            source: io,
        };
        let e = anyhow::Error::new(inner).context("loading policies");
        assert_eq!(
            super::error_chain(&e),
            "loading policies: cannot read /nope: No such file"
        );
    }
}
