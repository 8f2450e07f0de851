//! The controller: the part of the approval workflow that happens with nobody calling.
//! It approves by policy and by break-glass, lets pending requests lapse, binds a grant's
//! role while it is live, ends grants at their expiry and removes everything labelled with
//! a grant once it ended, and turns each step into an audit record and a Kubernetes Event.
//! It also sends each request's notifications ([`crate::notify`]).
//!
//! Every replica watches AccessRequests; only the holder of a `coordination.k8s.io` Lease
//! acts. Decisions are made by the pure [`plan`]; this module only carries them out.
//! Nothing here is on the admission path: the webhook never waits for the controller.

pub mod lease;
mod observed;
pub mod provision;
mod schedule;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{ApiResource, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use regorus::Value;

use crate::access::plan::{self, Context, Step};
use crate::audit::Audit;
use crate::grant::{AccessRequest, Phase};
use crate::metrics::Metrics;
use crate::namespace::Namespaces;
use crate::notify::{self, deliver::Notifier, Notice};
use crate::policy::{AccessPolicy, AccessPolicyError};
use crate::policy::{PolicyEngine, PolicySet};
use lease::LeaderElector;
use observed::Observed;
use provision::BindError;
use schedule::Schedule;

/// The controller's name in Events and its Lease's name.
pub const NAME: &str = "jitguard-controller";

#[derive(Clone, Debug)]
pub struct Config {
    /// Where the Lease lives (jitguard's namespace).
    pub namespace: String,
    /// This replica's identity in the Lease (its pod name).
    pub identity: String,
    pub lease_duration: Duration,
    /// How soon a request whose last pass could not finish (a refused or failed write,
    /// an unreachable API) is tried again.
    pub retry: Duration,
    /// What the reaper looks for, labelled with the grant.
    pub reap: Vec<ApiResource>,
}

impl Config {
    pub fn new(namespace: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            retry: Duration::from_secs(2),
            reap: provision::default_reap_resources(),
        }
    }
}

pub struct Controller {
    client: Client,
    policies: Arc<ArcSwap<PolicySet>>,
    audit: Audit,
    metrics: Metrics,
    config: Config,
    recorder: Recorder,
    engine: Option<PolicyEngine>,
    /// The access policy per request uid, with the resourceVersion and policy generation
    /// it was evaluated for: a pending request may be planned many times, but its policy
    /// only changes when the request or the policies do.
    evaluated: HashMap<String, (String, u64, Result<AccessPolicy, AccessPolicyError>)>,
    observed: Observed,
    /// Namespace labels, so that the access policy sees a labelled namespace in a scope
    /// as the webhook does.
    namespaces: Namespaces,
    /// Where notifications go; `None`: none are sent.
    notifier: Option<Notifier>,
    /// Whether this replica acts now, for the tasks that run on the Lease holder only.
    leading: Arc<std::sync::atomic::AtomicBool>,
}

impl Controller {
    pub fn new(
        client: Client,
        policies: Arc<ArcSwap<PolicySet>>,
        audit: Audit,
        metrics: Metrics,
        config: Config,
    ) -> Self {
        let recorder = recorder(client.clone(), config.identity.clone());
        Self {
            client,
            policies,
            audit,
            metrics,
            config,
            recorder,
            engine: None,
            evaluated: HashMap::new(),
            observed: Observed::default(),
            namespaces: Namespaces::default(),
            notifier: None,
            leading: Arc::default(),
        }
    }

    /// True while this replica holds the Lease (and has its first full list): the audit
    /// runs only then.
    pub fn leading(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.leading.clone()
    }

    /// Sends notifications of each request's events through `notifier`.
    pub fn with_notifier(mut self, notifier: Notifier) -> Self {
        self.notifier = Some(notifier);
        self
    }

    /// The namespace cache the webhook uses (the access policy reads labels through it).
    pub fn with_namespaces(mut self, namespaces: Namespaces) -> Self {
        self.namespaces = namespaces;
        self
    }

    /// Runs until the task is dropped.
    /// This replica's hand on the controller's Lease (serve also uses it to give the
    /// Lease up at shutdown, once `run` has stopped).
    pub fn lease(&self) -> LeaderElector {
        LeaderElector::new(
            Api::<Lease>::namespaced(self.client.clone(), &self.config.namespace),
            NAME,
            &self.config.identity,
            self.config.lease_duration,
        )
    }

    /// Reconciles each AccessRequest when it changes (a watch event, its extended grant's
    /// change, a new policy) and again at its next deadline (going live, expiry, lapse),
    /// never in a sweep: an idle controller with many requests sleeps. Runs until the
    /// task is dropped.
    pub async fn run(mut self) {
        let api: Api<AccessRequest> = Api::all(self.client.clone());
        let (store, writer) = reflector::store();
        let stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .reflect(writer);
        tokio::pin!(stream);
        let elector = self.lease();
        // Renew well inside the lease, as client-go does (renew deadline < lease duration).
        let renew_every = self.config.lease_duration / 3;
        let mut leading_until: Option<Instant> = None;
        let mut next_renewal = Instant::now();
        // Acting before the first full list would take a partial view for the truth.
        let mut synced = false;
        let mut schedule = Schedule::default();
        // Which requests extend which: a change to a grant concerns its extensions.
        let mut extensions: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
        let mut policy_generation = self.policies.load().generation();
        let mut namespaces_synced = self.namespaces.is_synced();
        loop {
            // A follower (or a leader before the first full list) only renews: what is due
            // waits for it to act.
            let acting = synced && leading_until.is_some_and(|until| Instant::now() < until);
            let due = if acting { schedule.next() } else { None };
            let wake = due.map_or(next_renewal, |due| due.min(next_renewal));
            tokio::select! {
                event = stream.next() => match event {
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "AccessRequest watch (controller) failed; retrying with backoff");
                        continue;
                    }
                    Some(Ok(watcher::Event::InitDone)) => {
                        synced = true;
                        schedule.all_now(&store);
                    }
                    Some(Ok(watcher::Event::Apply(ar) | watcher::Event::InitApply(ar))) => {
                        let name = ar.name_any();
                        if let Some(base) = &ar.spec.extends {
                            extensions.entry(base.clone()).or_default().insert(name.clone());
                        }
                        schedule.now(&name);
                        for extension in extensions.get(&name).into_iter().flatten() {
                            schedule.now(extension);
                        }
                    }
                    Some(Ok(watcher::Event::Delete(ar))) => {
                        let name = ar.name_any();
                        schedule.forget(&name);
                        if let Some(base) = &ar.spec.extends {
                            if let Some(set) = extensions.get_mut(base) {
                                set.remove(&name);
                            }
                        }
                        for extension in extensions.get(&name).into_iter().flatten() {
                            schedule.now(extension);
                        }
                        let uid = ar.metadata.uid.clone().unwrap_or(name);
                        self.observed.forget(&uid);
                        self.evaluated.remove(&uid);
                    }
                    Some(Ok(watcher::Event::Init)) => {}
                    None => return,
                },
                () = tokio::time::sleep_until(wake.into()) => {}
            }
            // Pending requests are decided with the access policy and the namespaces'
            // labels: a new policy, or the namespace cache's first list, concerns them all.
            let generation = self.policies.load().generation();
            let namespaces_now = self.namespaces.is_synced();
            if generation != policy_generation || namespaces_now != namespaces_synced {
                policy_generation = generation;
                namespaces_synced = namespaces_now;
                schedule.pending_now(&store);
            }
            if Instant::now() >= next_renewal {
                let started = Instant::now();
                match elector.try_lead().await {
                    Ok(true) => {
                        if leading_until.is_none() {
                            tracing::info!(identity = elector.identity(), "leading the controller");
                            // A new leader starts from the whole picture.
                            self.observed = Observed::default();
                            schedule.all_now(&store);
                        }
                        leading_until = Some(started + self.config.lease_duration);
                    }
                    Ok(false) => {
                        if leading_until.take().is_some() {
                            tracing::info!("another replica leads the controller now");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot renew the controller's Lease");
                    }
                }
                next_renewal = started + renew_every;
            }
            let leading = leading_until.is_some_and(|until| Instant::now() < until);
            self.metrics.controller_leader.set(i64::from(leading));
            self.leading
                .store(leading && synced, std::sync::atomic::Ordering::Release);
            if leading && synced {
                self.reconcile_due(&store, &mut schedule).await;
            }
        }
    }

    /// Every request whose time has come, then each one's next time.
    async fn reconcile_due(&mut self, store: &Store<AccessRequest>, schedule: &mut Schedule) {
        for name in schedule.take_due(Instant::now()) {
            let Some(ar) = store.get(&reflector::ObjectRef::new(&name)) else {
                continue;
            };
            self.observe(&ar).await;
            let finished = self.reconcile(&ar, store).await;
            let finished = self.notify(&ar).await && finished;
            let now = Timestamp::now();
            let policy = if ar.status.as_ref().is_none_or(|s| s.phase == Phase::Pending) {
                self.access_policy(&ar)
            } else {
                None
            };
            let expiring = self
                .notifier
                .as_ref()
                .and_then(|n| notify::next_due(&ar, now, &n.timing));
            let deadline = match (plan::next_deadline(&ar, policy.as_ref()), expiring) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            // A deadline already passed means this pass did not get the request past it
            // (a write refused or failed, a policy not yet evaluable): try again soon.
            // A successful write comes back as a watch event and is reconciled at once.
            let when = match deadline {
                _ if !finished => Some(Instant::now() + self.config.retry),
                Some(at) if at > now => Some(
                    Instant::now()
                        + Duration::try_from(at - now).unwrap_or(self.config.retry)
                        + DEADLINE_SLACK,
                ),
                Some(_) => Some(Instant::now() + self.config.retry),
                None => None,
            };
            if let Some(when) = when {
                schedule.at(&name, when);
            }
        }
        self.observed.baseline();
    }

    /// One request: plan, carry out, record. `false` when it must be tried again (a
    /// transient failure, a write refused because the request changed meanwhile).
    async fn reconcile(&mut self, ar: &AccessRequest, all: &Store<AccessRequest>) -> bool {
        let now = Timestamp::now();
        let policy = if plan::needs_policy(ar) {
            self.access_policy(ar)
        } else {
            None
        };
        let extended = ar
            .spec
            .extends
            .as_ref()
            .and_then(|name| all.get(&reflector::ObjectRef::new(name)));
        let cx = Context {
            now,
            policy: policy.as_ref(),
            extended_end: extended.as_ref().and_then(|old| extended_end(ar, old)),
            namespaces_synced: self.namespaces.is_synced(),
            extended_revoked: extended.as_ref().is_some_and(|old| {
                old.status
                    .as_ref()
                    .is_some_and(|s| s.phase == Phase::Revoked)
            }),
        };
        let plan = plan::plan(ar, &cx);
        if plan.is_empty() {
            return true;
        }
        let Some(mut status) = plan.status else {
            return true;
        };
        let mut steps = plan.steps;
        let name = ar.name_any();
        if plan.provision {
            // Without the policy it is unknown whether escalating roles may be bound:
            // wait for it rather than guess.
            let Some(policy) = &policy else { return false };
            let outcome = match provision::bind(&self.client, ar, policy).await {
                Ok(made) => Ok(made),
                Err(BindError::Refused(e)) => Err(e),
                Err(BindError::Transient(e)) => {
                    self.count("provision", false);
                    tracing::warn!(request = %name, error = %e, "cannot provision the grant's RoleBindings; retrying");
                    return false;
                }
            };
            self.count("provision", outcome.is_ok());
            steps.push(plan::provisioned(&mut status, &outcome, now));
        }
        if plan.reap {
            match provision::reap(&self.client, &name, &self.config.reap).await {
                Ok(removed) => {
                    self.count("reap", true);
                    steps.push(plan::reaped(&mut status, &removed, now));
                }
                Err(e) => {
                    // Retried on the next pass; the status says Reaped only once it is true.
                    self.count("reap", false);
                    tracing::warn!(request = %name, error = %e, "cannot remove the grant's objects; retrying");
                    return false;
                }
            }
        }
        let mut next = ar.clone();
        next.status = Some(status);
        // A replace carries the resourceVersion read: if anyone wrote since, it is refused.
        let api: Api<AccessRequest> = Api::all(self.client.clone());
        let written = api
            .replace_status(&name, &PostParams::default(), &next)
            .await;
        match written {
            Ok(_) => {
                self.count("status", true);
                for step in &steps {
                    self.record(ar, step).await;
                }
                true
            }
            // Someone wrote first (an approver, another leader's last act): the watch
            // brings the new version, which is planned again.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                tracing::debug!(request = %name, "status changed meanwhile; re-planning");
                false
            }
            Err(e) => {
                self.count("status", false);
                tracing::warn!(request = %name, error = %e, "cannot update the request's status");
                false
            }
        }
    }

    /// Claims the request's due notifications in its annotation, then queues them. The
    /// claim carries the resourceVersion read: if the request changed meanwhile (a status
    /// this pass wrote, another leader's claim), it is refused and the new version is
    /// looked at when the watch brings it. `false`: the claim failed for another reason
    /// and is tried again.
    async fn notify(&mut self, ar: &AccessRequest) -> bool {
        let Some(timing) = self.notifier.as_ref().map(|n| n.timing) else {
            return true;
        };
        let now = Timestamp::now();
        let due = notify::due(ar, now, &timing);
        if due.is_empty() {
            return true;
        }
        // Routing is the access policy's; if it cannot say, every sink hears.
        let route = self.access_policy(ar).and_then(|p| p.notify);
        let name = ar.name_any();
        let claim = serde_json::json!({"metadata": {
            "resourceVersion": ar.metadata.resource_version,
            "annotations": {notify::NOTIFIED_ANNOTATION: notify::claim(ar, &due)},
        }});
        let api: Api<AccessRequest> = Api::all(self.client.clone());
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&claim))
            .await
        {
            Ok(_) => {
                if let Some(notifier) = &self.notifier {
                    for kind in due {
                        let notice = Notice::new(ar, kind, notifier.page_url.as_deref(), now);
                        notifier.send(notice, route.as_deref());
                    }
                }
                true
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                tracing::debug!(request = %name, "changed before its notifications were claimed; looking again");
                true
            }
            Err(e) => {
                tracing::warn!(request = %name, error = %e, "cannot record the request's notifications; retrying");
                false
            }
        }
    }

    fn count(&self, action: &str, ok: bool) {
        self.metrics
            .controller_actions
            .with_label_values(&[action, if ok { "ok" } else { "error" }])
            .inc();
    }

    /// The access policy for a request, evaluated as for its creation by its requester;
    /// once per version of the request and of the policies. `None` (logged once) when it
    /// cannot decide: then only time-driven steps apply.
    fn access_policy(&mut self, ar: &AccessRequest) -> Option<AccessPolicy> {
        let current = self.policies.load_full();
        let generation = current.generation();
        let uid = ar.metadata.uid.clone().unwrap_or_else(|| ar.name_any());
        let version = ar.metadata.resource_version.clone().unwrap_or_default();
        if let Some((v, g, result)) = self.evaluated.get(&uid) {
            if *v == version && *g == generation {
                return result.as_ref().ok().cloned();
            }
        }
        let engine = match &mut self.engine {
            Some(e) if e.generation() == generation => e,
            slot => slot.insert(current.engine()),
        };
        let result = creation_input(ar, &self.namespaces)
            .map_err(AccessPolicyError::Input)
            .and_then(|input| engine.access_policy(&input));
        if let Err(e) = &result {
            tracing::warn!(request = %ar.name_any(), error = %e, "the access policy cannot decide on this request; only time-driven steps apply");
        }
        let policy = result.as_ref().ok().cloned();
        self.evaluated.insert(uid, (version, generation, result));
        policy
    }

    /// An audit record and an Event on the request.
    async fn record(&self, ar: &AccessRequest, step: &Step) {
        let name = ar.name_any();
        self.audit
            .access_step(step.audit, &name, &step.by, &step.note);
        self.publish(ar, step).await;
    }

    /// Events are best effort; the audit record is the one that counts.
    async fn publish(&self, ar: &AccessRequest, step: &Step) {
        if let Err(e) = self
            .recorder
            .publish(&event(step), &ar.object_ref(&()))
            .await
        {
            tracing::debug!(request = %ar.name_any(), error = %e, "cannot publish an Event");
        }
    }

    /// Steps the webhook admitted (requested, approved, denied, revoked) become Events
    /// here: the webhook must not call the API server on the request path.
    async fn observe(&mut self, ar: &AccessRequest) {
        for step in self.observed.changes(ar) {
            self.publish(ar, &step).await;
        }
    }
}

/// Publishes `Used` Events for grant uses, on every replica (each sees its own
/// admissions). Repeated uses of a grant become one Event series (kube's Recorder counts
/// them), so a busy grant does not flood the Events API.
pub async fn publish_uses(
    client: Client,
    identity: String,
    mut uses: tokio::sync::mpsc::Receiver<crate::audit::GrantUsed>,
) {
    let recorder = recorder(client, identity);
    while let Some(used) = uses.recv().await {
        let reference = k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("jitguard.dev/v1alpha1".into()),
            kind: Some("AccessRequest".into()),
            name: Some(used.grant.clone()),
            ..Default::default()
        };
        let step = Step {
            audit: "grant.used",
            reason: "Used",
            note: used.summary,
            by: String::new(),
            warning: used.break_glass,
        };
        if let Err(e) = recorder.publish(&event(&step), &reference).await {
            tracing::debug!(grant = %used.grant, error = %e, "cannot publish a Used Event");
        }
    }
}

/// When the grant that `ar` extends ends, if it is the requester's approved grant with
/// the same scope (the webhook checked this at creation; checked again, as it is cheap).
fn extended_end(ar: &AccessRequest, old: &AccessRequest) -> Option<Timestamp> {
    let status = old.status.as_ref()?;
    (status.phase == Phase::Approved
        && old.spec.requester == ar.spec.requester
        && old.spec.scope == ar.spec.scope)
        .then(|| status.expires_at.as_ref().map(|t| t.0))
        .flatten()
}

/// The AdmissionReview the API server sent when the requester created `ar`, at its
/// creation time: the access policy is written against that input, and its answer
/// depends on nothing else (which is what makes caching it per version correct).
fn creation_input(ar: &AccessRequest, namespaces: &Namespaces) -> Result<Value, String> {
    let created = ar
        .metadata
        .creation_timestamp
        .as_ref()
        .map_or_else(Timestamp::now, |t| t.0);
    let object = serde_json::to_value(ar).map_err(|e| e.to_string())?;
    let scoped = ar
        .spec
        .scope
        .iter()
        .flat_map(|r| r.namespaces.iter().map(String::as_str));
    let known = serde_json::to_value(namespaces.known(scoped)).map_err(|e| e.to_string())?;
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("controller-{}", ar.metadata.uid.clone().unwrap_or_default()),
            "kind": {"group": "jitguard.dev", "version": "v1alpha1", "kind": "AccessRequest"},
            "resource": {"group": "jitguard.dev", "version": "v1alpha1", "resource": "accessrequests"},
            "name": ar.name_any(),
            "operation": "CREATE",
            "userInfo": {"username": ar.spec.requester, "groups": ar.spec.requester_groups},
            "object": object,
            "dryRun": false,
        },
        "jit": {
            "now_ns": i64::try_from(created.as_nanosecond()).unwrap_or(i64::MAX),
            "grants": [],
            "namespaces": known,
        },
    });
    Value::from_json_str(&review.to_string()).map_err(|e| e.to_string())
}

/// Events name the controller and this replica.
fn recorder(client: Client, identity: String) -> Recorder {
    Recorder::new(
        client,
        Reporter {
            controller: NAME.into(),
            instance: Some(identity),
        },
    )
}

/// A step as a Kubernetes Event (notes are limited to 1 kB).
fn event(step: &Step) -> Event {
    let mut note = crate::text::prefix_within(&step.note, 1000).to_string();
    if note.len() < step.note.len() {
        note.push_str("...");
    }
    Event {
        type_: if step.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: step.reason.to_string(),
        note: Some(note),
        action: step.reason.to_string(),
        secondary: None,
    }
}

/// A small slack past a deadline, so that the pass after it sees the clock past it.
const DEADLINE_SLACK: Duration = Duration::from_millis(20);
