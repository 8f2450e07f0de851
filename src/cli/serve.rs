//! `jitguard serve`: flags and their defaults (`--dev` among them), then the library's
//! [`crate::service::Service`] until SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::decision::{OnError, Options};
use crate::policy::Enforcement;
use crate::server;
use crate::service::{Config as ServiceConfig, Service};

/// Where `--dev` keeps its generated certificate (git-ignored).
const DEV_DIR: &str = ".jitguard-dev";
const DEV_GRANTS: &str = "manifests/dev/grants.yaml";

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Local first run: 127.0.0.1:8443, ./policies, the dev grants file, and a
    /// self-signed certificate generated under .jitguard-dev/. No cluster needed. Run it
    /// from the repository root.
    #[arg(long, env = "JITGUARD_DEV")]
    pub dev: bool,
    /// HTTPS address of the webhook [default: 0.0.0.0:8443; --dev: 127.0.0.1:8443]
    #[arg(long, env = "JITGUARD_ADDR")]
    pub addr: Option<SocketAddr>,
    /// Plain-HTTP address for /healthz, /readyz and /metrics; `off` to disable
    /// [default: 0.0.0.0:9090; --dev: 127.0.0.1:9090]
    #[arg(long, env = "JITGUARD_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Policy folder (*.rego, data.json/data.yaml), watched for changes
    /// [default: /etc/jitguard/policies; --dev: policies]
    #[arg(long, env = "JITGUARD_POLICIES")]
    pub policies: Option<PathBuf>,
    /// PEM certificate chain [default: /etc/jitguard/tls/tls.crt], re-read on change
    #[arg(long, env = "JITGUARD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key [default: /etc/jitguard/tls/tls.key], re-read on change
    #[arg(long, env = "JITGUARD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Require client certificates signed by this CA (the API server's, mTLS).
    #[arg(long, env = "JITGUARD_CLIENT_CA")]
    pub client_ca: Option<PathBuf>,
    /// A YAML file of AccessRequests instead of watching the cluster (re-read on change).
    #[arg(long, env = "JITGUARD_GRANTS")]
    pub grants: Option<PathBuf>,
    /// After the AccessRequest watch has been broken this long, require_grant fails
    /// closed and /readyz fails.
    #[arg(long, env = "JITGUARD_GRANTS_STALE_AFTER", default_value = "60s", value_parser = duration)]
    pub grants_stale_after: Duration,
    /// Roll-out mode: every package reports as if it set this enforcement (`audit` or
    /// `warn`), so that nothing is denied [default: each package's own].
    #[arg(long, env = "JITGUARD_ENFORCEMENT", value_parser = enforcement)]
    pub enforcement: Option<Enforcement>,
    /// When a policy cannot decide (runtime error, time-out): deny (fail closed) or allow.
    #[arg(long, env = "JITGUARD_ON_ERROR", default_value = "deny", value_parser = on_error)]
    pub on_error: OnError,
    /// Budget of one policy evaluation.
    #[arg(long, env = "JITGUARD_EVAL_TIMEOUT", default_value = "250ms", value_parser = duration)]
    pub eval_timeout: Duration,
    /// Evaluation worker threads [default: number of CPUs].
    #[arg(long, env = "JITGUARD_WORKERS")]
    pub workers: Option<usize>,
    /// Requests that may wait for a worker; beyond it the answer is a fast 503.
    #[arg(long, env = "JITGUARD_QUEUE", default_value_t = 256)]
    pub queue: usize,
    /// Largest accepted body (the API server sends up to ~3 MiB per object, twice on UPDATE).
    #[arg(long, env = "JITGUARD_MAX_BODY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// How often policies, grants file and certificate are checked for changes.
    #[arg(long, env = "JITGUARD_RELOAD_INTERVAL", default_value = "1s", value_parser = duration)]
    pub reload_interval: Duration,
    /// On SIGTERM, time between failing readiness and closing the listener.
    #[arg(long, env = "JITGUARD_SHUTDOWN_DELAY", default_value = "5s", value_parser = duration_or_zero)]
    pub shutdown_delay: Duration,
    /// Longest wait for in-flight requests after the listener closes.
    #[arg(long, env = "JITGUARD_DRAIN_TIMEOUT", default_value = "20s", value_parser = duration)]
    pub drain_timeout: Duration,
    /// Also append audit records to this file as JSON lines.
    #[arg(long, env = "JITGUARD_AUDIT_FILE")]
    pub audit_file: Option<PathBuf>,
    /// The namespace jitguard runs in (its leader-election Lease lives there).
    #[arg(long, env = "JITGUARD_NAMESPACE", default_value = "jitguard")]
    pub namespace: String,
    /// jitguard's service account: as `system:serviceaccount:NAMESPACE:NAME` it is the only
    /// identity that may set an AccessRequest's phase, approvedAt and expiresAt.
    #[arg(long, env = "JITGUARD_SERVICE_ACCOUNT", default_value = "jitguard")]
    pub service_account: String,
    /// In a cluster, also run the controller (auto-approval, break-glass, lapse, expiry,
    /// RoleBindings, reaper; one replica at a time by leader election).
    #[arg(long, env = "JITGUARD_CONTROLLER", default_value_t = true, action = clap::ArgAction::Set)]
    pub controller: bool,
    /// This replica's identity in the leader-election Lease [default: $POD_NAME, else the
    /// host name].
    #[arg(long, env = "JITGUARD_POD_NAME")]
    pub pod_name: Option<String>,
    /// Also reap objects of this resource labelled with an ended grant, as
    /// GROUP/VERSION/KIND/PLURAL (`core` for the core group). RoleBindings and
    /// NetworkPolicies are always reaped.
    #[arg(long = "reap", env = "JITGUARD_REAP", value_delimiter = ',', value_parser = crate::controller::provision::parse_reap_resource)]
    pub reap: Vec<kube::api::ApiResource>,
    /// In a cluster, also serve Gatekeeper's ConstraintTemplates and Constraints found
    /// there, with the kinds its `Config` syncs as the inventory.
    #[arg(long, env = "JITGUARD_GATEKEEPER_OBJECTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub gatekeeper_objects: bool,
    /// The namespace of Gatekeeper's `Config` (named `config`).
    #[arg(
        long,
        env = "JITGUARD_GATEKEEPER_NAMESPACE",
        default_value = "gatekeeper-system"
    )]
    pub gatekeeper_namespace: String,
    /// Notify people of each request's events through the sinks this file names (mount
    /// it from a Secret: it holds webhook URLs and tokens). See the README's
    /// Notifications section for its format.
    #[arg(long, env = "JITGUARD_NOTIFICATIONS")]
    pub notifications: Option<PathBuf>,
    /// In a cluster, judge the objects already there this often (the Lease holder, paced)
    /// and write the findings as PolicyReports (wgpolicyk8s.io) named jitguard-audit.
    #[arg(long, env = "JITGUARD_AUDIT_INTERVAL", value_parser = duration)]
    pub audit_interval: Option<Duration>,
    /// Also audit this resource, as GROUP/VERSION/KIND/PLURAL (`core` for the core group);
    /// jitguard's ClusterRole must let it list them.
    #[arg(long = "audit-resource", env = "JITGUARD_AUDIT_RESOURCES", value_delimiter = ',', value_parser = crate::controller::provision::parse_reap_resource)]
    pub audit_resources: Vec<kube::api::ApiResource>,
}

/// Who this replica is in the Lease: the pod name where the Deployment passes it.
fn pod_identity(args: &ServeArgs) -> String {
    args.pod_name
        .clone()
        .or_else(|| std::env::var("POD_NAME").ok())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("jitguard-{}", std::process::id()))
}

fn duration(s: &str) -> Result<Duration, String> {
    server::parse_go_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration like 250ms, 5s or 1m"))
}

fn on_error(s: &str) -> Result<OnError, String> {
    match s {
        "deny" => Ok(OnError::Deny),
        "allow" => Ok(OnError::Allow),
        _ => Err("expected deny (fail closed) or allow (fail open)".into()),
    }
}

/// `deny` is refused rather than taken as "enforce everything": it would turn a new
/// package's own `enforcement := "audit"` roll-out into denials, and make
/// `JITGUARD_ENFORCEMENT=deny` mean something else than leaving it unset.
/// As `duration`, and also zero (`0`, `0s`): no delay at all is a valid choice for the
/// shutdown delay, e.g. where nothing routes to the pod through a Service.
fn duration_or_zero(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    let zero = ["", "h", "m", "s", "ms", "us", "µs", "ns"]
        .iter()
        .any(|unit| {
            text.strip_suffix(unit).is_some_and(|digits| {
                !digits.is_empty() && digits.chars().all(|c| c == '0' || c == '.')
            })
        });
    if zero {
        return Ok(Duration::ZERO);
    }
    duration(s).map_err(|e| format!("{e}, or 0"))
}

fn enforcement(s: &str) -> Result<Enforcement, String> {
    match s {
        "warn" => Ok(Enforcement::Warn),
        "audit" => Ok(Enforcement::Audit),
        "deny" => Err("`deny` is not a roll-out mode: leave --enforcement (and JITGUARD_ENFORCEMENT) unset to enforce, each package as it says (deny unless it sets `enforcement`)".into()),
        _ => Err("expected audit or warn (roll-out mode); leave it unset to enforce".into()),
    }
}

/// Flags with their defaults applied.
struct Config {
    args: ServeArgs,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    policies: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    grants: Option<PathBuf>,
}

impl Config {
    fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        let dev = args.dev;
        let addr = args.addr.unwrap_or_else(|| {
            if dev {
                SocketAddr::from(([127, 0, 0, 1], 8443))
            } else {
                SocketAddr::from(([0, 0, 0, 0], 8443))
            }
        });
        let metrics_addr = match args.metrics_addr.as_deref() {
            Some("off" | "") => None,
            Some(a) => Some(
                a.parse()
                    .with_context(|| format!("--metrics-addr {a:?} is not HOST:PORT or off"))?,
            ),
            None if dev => Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
            None => Some(SocketAddr::from(([0, 0, 0, 0], 9090))),
        };
        let policies = args.policies.clone().unwrap_or_else(|| {
            if dev {
                super::default_policies()
            } else {
                PathBuf::from("/etc/jitguard/policies")
            }
        });
        if dev {
            // --dev's defaults are paths in the repository: say so before creating
            // anything in a folder where they do not exist.
            let missing: Vec<String> = [
                (
                    args.policies.is_none(),
                    policies.as_path(),
                    "--policies DIR",
                ),
                (
                    args.grants.is_none(),
                    Path::new(DEV_GRANTS),
                    "--grants FILE",
                ),
            ]
            .into_iter()
            .filter(|(defaulted, path, _)| *defaulted && !path.exists())
            .map(|(_, path, flag)| format!("{} (or pass {flag})", path.display()))
            .collect();
            if !missing.is_empty() {
                let here = std::env::current_dir()
                    .map(|d| d.display().to_string())
                    .unwrap_or_default();
                anyhow::bail!(
                    "--dev uses the repository's files, and {here} has no {}: run it from the root of the jitguard repository",
                    missing.join(" and no ")
                );
            }
        }
        let (cert, key) = match (&args.tls_cert, &args.tls_key) {
            (Some(c), Some(k)) => (c.clone(), k.clone()),
            (None, None) if dev => {
                let dir = Path::new(DEV_DIR);
                if !dir.join(crate::certs::SERVING_CERT).exists() {
                    crate::certs::issue(dir, &["localhost".into(), "127.0.0.1".into()], false)
                        .context("generating the development certificate")?;
                }
                (
                    dir.join(crate::certs::SERVING_CERT),
                    dir.join(crate::certs::SERVING_KEY),
                )
            }
            (None, None) => (
                PathBuf::from("/etc/jitguard/tls/tls.crt"),
                PathBuf::from("/etc/jitguard/tls/tls.key"),
            ),
            _ => anyhow::bail!(
                "--tls-cert and --tls-key go together: give both, or neither with --dev"
            ),
        };
        let grants = args
            .grants
            .clone()
            .or_else(|| dev.then(|| PathBuf::from(DEV_GRANTS)));
        Ok(Self {
            addr,
            metrics_addr,
            policies,
            cert,
            key,
            grants,
            args,
        })
    }

    /// The service's configuration: every value decided.
    fn service(self, json_log: bool) -> ServiceConfig {
        let args = self.args;
        ServiceConfig {
            identity: pod_identity(&args),
            addr: self.addr,
            metrics_addr: self.metrics_addr,
            policies: self.policies,
            cert: self.cert,
            key: self.key,
            client_ca: args.client_ca,
            grants: self.grants,
            grants_stale_after: args.grants_stale_after,
            options: Options {
                enforcement: args.enforcement,
                on_error: args.on_error,
            },
            eval_timeout: args.eval_timeout,
            workers: args.workers.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(usize::from)
                    .unwrap_or(2)
            }),
            queue: args.queue,
            max_body_bytes: args.max_body_bytes,
            reload_interval: args.reload_interval,
            shutdown_delay: args.shutdown_delay,
            drain_timeout: args.drain_timeout,
            audit_file: args.audit_file,
            json_log,
            namespace: args.namespace,
            service_account: args.service_account,
            controller: args.controller,
            reap: args.reap,
            gatekeeper_namespace: args.gatekeeper_objects.then_some(args.gatekeeper_namespace),
            notifications: args.notifications,
            audit_interval: args.audit_interval,
            audit_resources: args.audit_resources,
        }
    }
}

/// `json_log`: the log is JSON lines, so audit records go there as JSON objects.
pub fn run(args: ServeArgs, json_log: bool) -> anyhow::Result<()> {
    let config = Config::resolve(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("jitguard-io")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let dev = config.args.dev;
        let service = Service::start(config.service(json_log)).await?;
        if dev {
            print_dev_banner(service.addr(), service.ops_addr());
        }
        service.run(shutdown_signal()).await
    })
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn print_dev_banner(addr: SocketAddr, ops: Option<SocketAddr>) {
    use std::io::Write as _;
    let ca = Path::new(DEV_DIR).join(crate::certs::CA_CERT);
    let url = format!("https://{addr}");
    let mut text = format!(
        "\njitguard is serving {url} (development mode: shipped policies, {DEV_GRANTS}, a self-signed certificate)\n"
    );
    for (what, fixture) in [
        (
            "allowed (a plain Pod in a dev namespace)",
            "tests/fixtures/admission/pod-create-dev.json",
        ),
        (
            "denied (kubectl exec into a pod in prod, no grant)",
            "tests/fixtures/admission/pod-exec-prod.json",
        ),
    ] {
        if Path::new(fixture).exists() {
            text.push_str(&format!(
                "  {what}:\n    curl --cacert {} -H 'Content-Type: application/json' --data @{fixture} {url}/validate\n",
                ca.display()
            ));
        }
    }
    if let Some(ops) = ops {
        text.push_str(&format!(
            "  readiness: curl http://{ops}/readyz    metrics: curl http://{ops}/metrics\n"
        ));
    }
    text.push_str(
        "  decide manifests offline: cargo run -- dry-run -f tests/fixtures/admission/\n\n",
    );
    // Not println!: a closed stdout must not bring the webhook down.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser;

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        serve: super::ServeArgs,
    }

    fn config(extra: &[&str]) -> crate::service::Config {
        let mut argv = vec!["serve", "--tls-cert", "c", "--tls-key", "k"];
        argv.extend_from_slice(extra);
        let args = P::try_parse_from(argv).unwrap().serve;
        super::Config::resolve(args).unwrap().service(false)
    }

    #[test]
    fn the_clusters_gatekeeper_objects_are_served_unless_turned_off() {
        assert_eq!(
            config(&[]).gatekeeper_namespace.as_deref(),
            Some("gatekeeper-system")
        );
        assert_eq!(
            config(&["--gatekeeper-namespace", "opa"])
                .gatekeeper_namespace
                .as_deref(),
            Some("opa")
        );
        assert_eq!(
            config(&["--gatekeeper-objects", "false"]).gatekeeper_namespace,
            None
        );
    }

    #[test]
    fn the_shutdown_delay_may_be_zero() {
        for zero in ["0", "0s", "0ms", "0.0s"] {
            assert_eq!(
                super::duration_or_zero(zero),
                Ok(std::time::Duration::ZERO),
                "{zero}"
            );
        }
        assert_eq!(
            super::duration_or_zero("1s"),
            Ok(std::time::Duration::from_secs(1))
        );
        for bad in ["0x", "s", "", "-1s"] {
            assert!(super::duration_or_zero(bad).is_err(), "{bad}");
        }
    }
}
