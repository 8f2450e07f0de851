//! The webhook server as a library type, as kubewarden's policy-server is: a [`Config`]
//! with every value decided (the CLI applies defaults and `--dev`), [`Service::start`]
//! to load policies, certificates and grants, start the sources, the controller and the
//! workers, and bind the listeners, then [`Service::run`] until shutdown is asked for or
//! a supervised part stops.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::audit::{Audit, AuditWriter};
use crate::controller::{self, lease::LeaderElector};
use crate::decision::Options;
use crate::gatekeeper::feed::ClusterFeed;
use crate::grant::GrantFeed;
use crate::metrics::Metrics;
use crate::namespace::Namespaces;
use crate::policy::{combined_digest, EvalOptions, PolicySet, Sources};
use crate::pool::Pool;
use crate::reload::Poller;
use crate::review::Reviewer;
use crate::server::{self, tls, AppState, Health};
use crate::sources::{run_cluster, FileSource};
use crate::supervise::Supervisor;

/// Everything `serve` runs with, defaults applied.
#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    /// `None`: no plain-HTTP listener for health and metrics.
    pub metrics_addr: Option<SocketAddr>,
    pub policies: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    /// A grants file; `None`: watch AccessRequests in the cluster.
    pub grants: Option<PathBuf>,
    pub grants_stale_after: Duration,
    pub options: Options,
    pub eval_timeout: Duration,
    pub workers: usize,
    pub queue: usize,
    pub max_body_bytes: usize,
    pub reload_interval: Duration,
    pub shutdown_delay: Duration,
    pub drain_timeout: Duration,
    pub audit_file: Option<PathBuf>,
    /// The log is JSON lines: audit records go there as JSON objects.
    pub json_log: bool,
    pub namespace: String,
    pub service_account: String,
    pub controller: bool,
    /// This replica's identity in the controller's Lease.
    pub identity: String,
    pub reap: Vec<kube::api::ApiResource>,
    /// In a cluster, serve its Gatekeeper objects, with the `Config` of this namespace;
    /// `None`: the policy folder's only.
    pub gatekeeper_namespace: Option<String>,
    /// The notifications file (`serve --notifications`).
    pub notifications: Option<PathBuf>,
    /// Audit the cluster's objects this often (controller only); `None`: never.
    pub audit_interval: Option<Duration>,
    /// Resources the audit lists beside its defaults.
    pub audit_resources: Vec<kube::api::ApiResource>,
}

/// A started server: listeners bound, every part running.
pub struct Service {
    addr: SocketAddr,
    ops_addr: Option<SocketAddr>,
    health: Arc<Health>,
    supervisor: Supervisor,
    webhook: JoinHandle<()>,
    ops: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    lease: Option<LeaderElector>,
    shutdown_delay: Duration,
    /// Dropped last: flushes the audit file once everything that writes to it stopped.
    audit_writer: Option<AuditWriter>,
}

impl Service {
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let metrics = Metrics::new().context("registering metrics")?;
        let (audit, audit_writer) = match &config.audit_file {
            Some(path) => {
                let (audit, writer) = Audit::with_file(path, metrics.clone())
                    .with_context(|| format!("opening the audit file {}", path.display()))?;
                (audit, Some(writer))
            }
            None => (Audit::disabled(), None),
        };
        // With --client-ca only the API server gets through the handshake; without it, the
        // records say that anyone could have sent the review.
        let mut audit =
            audit
                .with_json_log(config.json_log)
                .with_caller(if config.client_ca.is_some() {
                    crate::audit::Caller::ApiServer
                } else {
                    crate::audit::Caller::Unverified
                });

        // Read at start: a broken file stops the start, with the reason, rather than
        // leaving approvers unaware later.
        let notifications = match &config.notifications {
            Some(path) => Some(crate::notify::deliver::Settings::load(path, |var| {
                std::env::var(var).ok()
            })?),
            None => None,
        };
        if notifications.is_some() && (config.grants.is_some() || !config.controller) {
            tracing::warn!("--notifications is ignored: notifications are sent by the controller, which runs only in a cluster (without --grants, with --controller true)");
        }
        let pair = tls::load_pair(&config.cert, &config.key)?;
        let resolver = tls::ReloadingCert::new(pair);
        let tls_config = tls::server_config(resolver.clone(), config.client_ca.as_deref())?;
        // Every long-running part, watched: one that ends before shutdown fails the replica.
        let mut supervisor = Supervisor::new();
        let tls_watch = tls::watch(
            resolver,
            config.cert.clone(),
            config.key.clone(),
            config.reload_interval,
            metrics.clone(),
        )?;
        supervisor.keep("the certificate reload", tls_watch);

        let eval = EvalOptions {
            budget: config.eval_timeout,
            ..EvalOptions::default()
        };
        let set = PolicySet::load(&config.policies, eval)
            .with_context(|| format!("loading policies from {}", config.policies.display()))?;
        tracing::info!(packages = ?set.package_names(), constraints = ?set.constraint_names(), "policies loaded");
        serving(&set, &metrics);
        let policies = Arc::new(ArcSwap::from_pointee(set));
        // The cluster's Gatekeeper objects, where there is a cluster to watch.
        let gatekeeper = match (&config.grants, &config.gatekeeper_namespace) {
            (None, Some(_)) => ClusterFeed::watching(),
            _ => ClusterFeed::none(),
        };
        let policy_watch = watch_policies(
            config.policies.clone(),
            policies.clone(),
            gatekeeper.clone(),
            eval,
            config.reload_interval,
            metrics.clone(),
        )?;
        supervisor.keep("the policy reload", policy_watch);

        // Workers read the grant store; only its source (moved in below) writes.
        let feed = GrantFeed::new(config.grants_stale_after);
        let grants = feed.store();
        let namespaces = Namespaces::default();
        let health = Health::new(grants.clone(), namespaces.clone(), gatekeeper.clone());
        health.set_policies_loaded();
        // The cluster tasks (watches, controller, grant-use Events) hold clones of the audit
        // sink, whose writer thread is joined when `serve` returns: the supervisor stops them
        // first, at shutdown, or the process would wait for them forever, and a stopped
        // replica would go on renewing the controller's Lease.
        // The controller's Lease, given up at shutdown so that another replica leads at once.
        let mut lease = None;
        match &config.grants {
            Some(path) => {
                let mut source = FileSource::new(
                    path.clone(),
                    feed,
                    namespaces.clone(),
                    audit.clone(),
                    metrics.clone(),
                );
                source.poll().context(
                    "the grants file (--grants) cannot be loaded; fix it and start again",
                )?;
                let poller = Poller::spawn("grants-reload", config.reload_interval, move || {
                    let _ = source.poll();
                })?;
                supervisor.keep("the grants file reload", poller);
            }
            None => {
                let client = kube::Client::try_default().await.context(
                    "no --grants file was given and no cluster is reachable to watch AccessRequests (in-cluster config or KUBECONFIG); pass --grants FILE to run without a cluster",
                )?;
                let identity = config.identity.clone();
                // Grant uses become Events on their AccessRequests, off the request path.
                let (uses_tx, uses_rx) = tokio::sync::mpsc::channel(1024);
                audit = audit.with_grant_uses(uses_tx);
                supervisor.spawn(
                    "the grant-use Event publisher",
                    controller::publish_uses(client.clone(), identity.clone(), uses_rx),
                );
                supervisor.spawn(
                    "the AccessRequest watch",
                    run_cluster(client.clone(), feed, audit.clone(), metrics.clone()),
                );
                supervisor.spawn(
                    "the Namespace watch",
                    crate::namespace::run_cluster(client.clone(), namespaces.clone()),
                );
                if let Some(namespace) = &config.gatekeeper_namespace {
                    supervisor.spawn(
                        "the Gatekeeper objects' watch",
                        crate::sources::gatekeeper::run_cluster(
                            client.clone(),
                            gatekeeper.clone(),
                            namespace.clone(),
                        ),
                    );
                }
                if config.controller {
                    let mut settings = controller::Config::new(&config.namespace, &identity);
                    settings.reap.extend(config.reap.iter().cloned());
                    let controller = controller::Controller::new(
                        client.clone(),
                        policies.clone(),
                        audit.clone(),
                        metrics.clone(),
                        settings,
                    )
                    .with_namespaces(namespaces.clone());
                    let controller = match notifications {
                        Some(settings) => controller.with_notifier(
                            crate::notify::deliver::Notifier::start(settings, metrics.clone())?,
                        ),
                        None => controller,
                    };
                    if let Some(every) = config.audit_interval {
                        // Its own reviewer: the live policies, namespaces and inventory,
                        // evaluated on a blocking thread of its own, never the workers'.
                        let mut reviewer =
                            crate::review::Reviewer::offline(policies.clone(), None)?;
                        reviewer.namespaces = namespaces.clone();
                        reviewer.gatekeeper = gatekeeper.clone();
                        let mut resources = crate::scan::default_resources();
                        resources.extend(config.audit_resources.iter().cloned());
                        supervisor.spawn(
                            "the audit",
                            crate::scan::periodic(
                                client.clone(),
                                reviewer,
                                resources,
                                every,
                                controller.leading(),
                                metrics.clone(),
                            ),
                        );
                    }
                    lease = Some(controller.lease());
                    supervisor.spawn("the controller", controller.run());
                }
            }
        }

        let reviewer = Reviewer {
            policies,
            grants,
            namespaces,
            options: config.options,
            audit,
            metrics: metrics.clone(),
            controller: format!(
                "system:serviceaccount:{}:{}",
                config.namespace, config.service_account
            )
            .into(),
            gatekeeper,
        };
        let workers = config.workers;
        let pool = Arc::new(
            Pool::start(reviewer, workers, config.queue).context("starting evaluation workers")?,
        );
        let state = AppState {
            pool,
            health: health.clone(),
            metrics,
            body_limit: config.max_body_bytes,
            on_error: config.options.on_error,
        };

        let listener = server::bind(config.addr, "the webhook (--addr)").await?;
        let local = listener.local_addr()?;
        let ops = match config.metrics_addr {
            Some(addr) => {
                let l = server::bind(addr, "health and metrics (--metrics-addr)").await?;
                tracing::info!(addr = %l.local_addr()?, "serving /healthz, /readyz and /metrics over plain HTTP");
                Some(l)
            }
            None => None,
        };
        tracing::info!(addr = %local, workers, "serving admission webhooks over TLS");
        let ops_addr = match &ops {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };

        let (stop_tx, stop_rx) = watch::channel(false);
        let webhook = tokio::spawn(server::serve_tls(
            listener,
            tls_config,
            server::app(state.clone()),
            stop_rx.clone(),
            config.drain_timeout,
        ));
        let ops = ops.map(|l| {
            tokio::spawn(server::serve_plain(
                l,
                server::ops_app(state.clone()),
                stop_rx,
            ))
        });
        Ok(Self {
            addr: local,
            ops_addr,
            health,
            supervisor,
            webhook,
            ops,
            stop: stop_tx,
            lease,
            shutdown_delay: config.shutdown_delay,
            audit_writer,
        })
    }

    /// The webhook's address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The plain-HTTP health and metrics address, if any.
    pub fn ops_addr(&self) -> Option<SocketAddr> {
        self.ops_addr
    }

    /// Serves until `shutdown` resolves (SIGTERM in the binary) or a supervised part
    /// stops; then drains and stops everything. `Err` says which part stopped.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self {
            health,
            mut supervisor,
            mut webhook,
            ops,
            stop: stop_tx,
            lease,
            shutdown_delay,
            audit_writer,
            ..
        } = self;
        let failure = tokio::select! {
            () = shutdown => None,
            reason = supervisor.failure() => Some(reason),
            ended = &mut webhook => Some(match ended {
                Ok(()) => "the webhook listener stopped".to_string(),
                Err(e) => format!("the webhook listener stopped ({e})"),
            }),
        };
        if let Some(reason) = &failure {
            // Readiness fails for good; the process exits non-zero so that it is restarted
            // rather than left answering with a part missing.
            health.set_failed(reason.clone());
            tracing::error!(reason = %reason, "a part of the server stopped; shutting down to be restarted");
        }
        health.set_shutting_down();
        tracing::info!(
            delay_ms = shutdown_delay.as_millis() as u64,
            "shutting down: readiness fails now, the listener closes after the delay"
        );
        tokio::time::sleep(shutdown_delay).await;
        let _ = stop_tx.send(true);
        if !webhook.is_finished() {
            let _ = webhook.await;
        }
        if let Some(ops) = ops {
            let _ = ops.await;
        }
        supervisor.shutdown().await;
        if let Some(lease) = lease {
            match tokio::time::timeout(Duration::from_secs(2), lease.release()).await {
                Ok(Ok(true)) => tracing::info!("gave up the controller's Lease"),
                Ok(Ok(false)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "cannot give up the controller's Lease; another replica takes over when it runs out"),
                Err(_) => tracing::warn!("giving up the controller's Lease timed out; another replica takes over when it runs out"),
            }
        }
        // Every writer of the audit file has stopped: flush it and wait.
        drop(audit_writer);
        match failure {
            Some(reason) => Err(anyhow::anyhow!("{reason}; stopped")),
            None => {
                tracing::info!("stopped");
                Ok(())
            }
        }
    }
}

/// The metrics of a snapshot about to serve: how many packages, and a zero series for
/// each package and Gatekeeper constraint.
fn serving(set: &PolicySet, metrics: &Metrics) {
    metrics.policies_loaded.set(set.packages().len() as i64);
    metrics.known_packages(
        set.package_names()
            .into_iter()
            .chain(set.constraint_names()),
    );
}

/// Recompiles the policy folder, with the cluster's Gatekeeper objects beside it, off to
/// the side when either changes, and swaps it in. A folder change that does not compile
/// is refused (logged with file:line:col, counted) and the last good policies keep
/// serving; a cluster object that cannot be served is refused alone, named with its
/// reason, and the others are served.
fn watch_policies(
    dir: PathBuf,
    policies: Arc<ArcSwap<PolicySet>>,
    cluster: ClusterFeed,
    eval: EvalOptions,
    interval: Duration,
    metrics: Metrics,
) -> std::io::Result<Poller> {
    let mut refused: Option<u64> = None;
    let mut last_read_error = String::new();
    let mut cluster_refusals: Vec<String> = Vec::new();
    Poller::spawn("policy-reload", interval, move || {
        let sources = match Sources::read(&dir) {
            Ok(s) => s,
            Err(e) => {
                let message = e.to_string();
                if message != last_read_error {
                    metrics.policy_reloads.with_label_values(&["error"]).inc();
                    tracing::error!(error = %message, "cannot read the policy folder; the last good policies keep serving");
                    last_read_error = message;
                }
                return;
            }
        };
        last_read_error.clear();
        let snapshot = cluster.snapshot();
        let wanted = combined_digest(sources.digest, snapshot.digest);
        if wanted == policies.load().digest() || refused == Some(wanted) {
            if snapshot.synced && refused != Some(wanted) {
                cluster.mark_applied();
            }
            return;
        }
        let accepted = if snapshot.documents.is_empty() {
            Vec::new()
        } else {
            let folder = sources.gatekeeper_documents().unwrap_or_default();
            let (accepted, refusals) = crate::gatekeeper::screen(&folder, &snapshot.documents);
            if refusals != cluster_refusals {
                for refusal in &refusals {
                    tracing::error!(error = %refusal, "a Gatekeeper object in the cluster is refused; the others are served");
                }
                cluster_refusals = refusals;
            }
            accepted
        };
        match PolicySet::compile_with(&sources, &accepted, eval) {
            Ok(set) => {
                refused = None;
                tracing::info!(generation = set.generation(), packages = ?set.package_names(), constraints = ?set.constraint_names(), "policies reloaded");
                serving(&set, &metrics);
                metrics.policy_reloads.with_label_values(&["success"]).inc();
                // The set's digest names what it was compiled from: a refused cluster
                // object changes nothing, so the next poll does not compile again.
                let mut set = set;
                set.set_digest(wanted);
                policies.store(Arc::new(set));
                if snapshot.synced {
                    cluster.mark_applied();
                }
            }
            Err(e) => {
                refused = Some(wanted);
                metrics.policy_reloads.with_label_values(&["error"]).inc();
                tracing::error!(error = %e, "policy change refused; the last good policies keep serving");
            }
        }
    })
}
