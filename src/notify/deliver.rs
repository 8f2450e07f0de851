//! Delivery: the sinks named in the notifications file (`serve --notifications`, a file
//! mounted from a Secret), one queue and one task per sink, retries with backoff.
//!
//! A failing sink never holds the workflow up: the controller only puts a notice on a
//! bounded queue (a full queue drops it, counted and logged), and each sink has its own
//! task, so one that hangs delays nobody else. URLs and tokens are secrets: they are never
//! logged, nor printed in errors (`Secret`'s Debug is redacted, reqwest's errors are
//! stripped of their URL).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{payload, Kind, Notice, Timing};
use crate::grant::resource::parse_duration;
use crate::metrics::Metrics;

/// The notifications file.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct File {
    sinks: Vec<SinkFile>,
    /// How long before a grant ends `expiring` is sent; `off` for never. Default 10m.
    #[serde(default)]
    expiring_before: Option<String>,
    /// Events older than this are not sent (a controller back after an outage). Default 1h.
    #[serde(default)]
    max_age: Option<String>,
    /// The base URL of the request pages (`kubectl jit ui` serves `/requests/NAME`).
    #[serde(default)]
    page_url: Option<String>,
    /// Per sink: notices waiting at most (default 256), one attempt's time limit (10s),
    /// attempts per notice (5).
    #[serde(default)]
    queue: Option<usize>,
    #[serde(default)]
    timeout: Option<String>,
    #[serde(default)]
    attempts: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SinkFile {
    name: String,
    #[serde(rename = "type")]
    kind: SinkKind,
    #[serde(default)]
    url: Option<String>,
    /// The URL from this environment variable instead.
    #[serde(default)]
    url_env: Option<String>,
    /// Sent as `Authorization: Bearer TOKEN`.
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_env: Option<String>,
    /// Trust this CA (PEM) for the sink's HTTPS, beside the system's.
    #[serde(default)]
    ca_file: Option<PathBuf>,
    /// Only these events (default: all).
    #[serde(default)]
    events: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// A Slack-compatible incoming webhook (`text` and `blocks`).
    Slack,
    /// A generic JSON webhook: one CloudEvent in structured mode per notice.
    CloudEvents,
}

impl SinkKind {
    fn as_str(self) -> &'static str {
        match self {
            SinkKind::Slack => "slack",
            SinkKind::CloudEvents => "cloudevents",
        }
    }
}

/// A value that must not be logged.
#[derive(Clone, PartialEq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Debug)]
pub struct Sink {
    pub name: String,
    pub kind: SinkKind,
    url: Secret,
    token: Option<Secret>,
    ca: Option<PathBuf>,
    events: Option<BTreeSet<Kind>>,
}

/// The notifications file, read and checked.
#[derive(Clone, Debug)]
pub struct Settings {
    pub sinks: Vec<Sink>,
    pub timing: Timing,
    pub page_url: Option<String>,
    queue: usize,
    timeout: Duration,
    attempts: u32,
}

impl Settings {
    /// Reads the file; `env` looks environment variables up (`std::env::var` in serve).
    pub fn load(path: &Path, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the notifications file {}", path.display()))?;
        Self::parse(&text, env)
            .with_context(|| format!("the notifications file {}", path.display()))
    }

    fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let file: File = yaml_serde::from_str(text).map_err(|e| anyhow!("{e}"))?;
        let duration = |value: &Option<String>, default: Duration, field: &str| match value {
            None => Ok(default),
            Some(text) => parse_duration(text).map_err(|e| anyhow!("{field}: {e}")),
        };
        let expiring_before = match file.expiring_before.as_deref() {
            Some("off") => None,
            other => Some(duration(
                &other.map(String::from),
                Duration::from_secs(600),
                "expiringBefore",
            )?),
        };
        let timing = Timing {
            expiring_before: expiring_before.and_then(|d| jiff::SignedDuration::try_from(d).ok()),
            max_age: jiff::SignedDuration::try_from(duration(
                &file.max_age,
                Duration::from_secs(3600),
                "maxAge",
            )?)
            .map_err(|e| anyhow!("maxAge: {e}"))?,
        };
        let mut names = BTreeSet::new();
        let mut sinks = Vec::new();
        for s in file.sinks {
            if !names.insert(s.name.clone()) {
                bail!("two sinks are named {:?}; names must be unique", s.name);
            }
            let from = |value: Option<String>, var: Option<String>, what: &str| match (value, var) {
                (Some(_), Some(_)) => Err(anyhow!(
                    "sink {:?}: give {what} or {what}Env, not both",
                    s.name
                )),
                (Some(v), None) => Ok(Some(v)),
                (None, Some(var)) => env(&var).map(Some).ok_or_else(|| {
                    anyhow!("sink {:?}: {what}Env names {var}, which is not set", s.name)
                }),
                (None, None) => Ok(None),
            };
            let url = from(s.url, s.url_env, "url")?
                .ok_or_else(|| anyhow!("sink {:?}: url (or urlEnv) is required", s.name))?;
            // The URL itself is a secret (Slack's carries its token): not in the message.
            match reqwest::Url::parse(&url) {
                Ok(u) if u.scheme() == "https" || u.scheme() == "http" => {}
                _ => bail!("sink {:?}: url is not an http(s) URL", s.name),
            }
            let token = from(s.token, s.token_env, "token")?;
            let events = s
                .events
                .map(|list| {
                    list.iter()
                        .map(|e| {
                            Kind::parse(e).ok_or_else(|| {
                                anyhow!(
                                    "sink {:?}: unknown event {e:?} (one of: {})",
                                    s.name,
                                    Kind::ALL.map(Kind::as_str).join(", ")
                                )
                            })
                        })
                        .collect::<anyhow::Result<BTreeSet<Kind>>>()
                })
                .transpose()?;
            sinks.push(Sink {
                name: s.name,
                kind: s.kind,
                url: Secret(url),
                token: token.map(Secret),
                ca: s.ca_file,
                events,
            });
        }
        Ok(Self {
            sinks,
            timing,
            page_url: file.page_url,
            queue: file.queue.unwrap_or(256).max(1),
            timeout: duration(&file.timeout, Duration::from_secs(10), "timeout")?,
            attempts: file.attempts.unwrap_or(5).max(1),
        })
    }
}

/// The controller's handle on the sinks.
pub struct Notifier {
    sinks: Vec<Handle>,
    pub timing: Timing,
    pub page_url: Option<String>,
    metrics: Metrics,
}

struct Handle {
    name: String,
    kind: SinkKind,
    events: Option<BTreeSet<Kind>>,
    queue: mpsc::Sender<Arc<Notice>>,
}

impl Notifier {
    /// One task per sink, on the current runtime.
    pub fn start(settings: Settings, metrics: Metrics) -> anyhow::Result<Self> {
        let mut sinks = Vec::new();
        for sink in settings.sinks {
            for kind in Kind::ALL {
                for result in RESULTS {
                    metrics
                        .notifications
                        .with_label_values(&[&sink.name, kind.as_str(), result]);
                }
            }
            let mut client = reqwest::Client::builder()
                .timeout(settings.timeout)
                // A redirect is not followed: it could carry the token elsewhere.
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("jitguard/", env!("CARGO_PKG_VERSION")));
            if let Some(ca) = &sink.ca {
                let pem = std::fs::read(ca).with_context(|| {
                    format!("sink {:?}: cannot read caFile {}", sink.name, ca.display())
                })?;
                let cert = reqwest::Certificate::from_pem(&pem)
                    .map_err(|e| anyhow!("sink {:?}: caFile: {}", sink.name, e.without_url()))?;
                client = client.add_root_certificate(cert);
            }
            let client = client
                .build()
                .map_err(|e| anyhow!("sink {:?}: {}", sink.name, e.without_url()))?;
            let (tx, rx) = mpsc::channel(settings.queue);
            sinks.push(Handle {
                name: sink.name.clone(),
                kind: sink.kind,
                events: sink.events.clone(),
                queue: tx,
            });
            tokio::spawn(deliver(
                sink,
                client,
                rx,
                metrics.clone(),
                settings.attempts,
            ));
        }
        Ok(Self {
            sinks,
            timing: settings.timing,
            page_url: settings.page_url,
            metrics,
        })
    }

    /// Queues `notice` for the sinks `route` names (every sink when the access policy
    /// names none). Never waits: a full queue drops the notice, counted and logged.
    pub fn send(&self, notice: Notice, route: Option<&[String]>) {
        if let Some(names) = route {
            for name in names {
                if !self.sinks.iter().any(|s| &s.name == name) {
                    tracing::warn!(sink = %name, request = %notice.request, "the access policy routes to a sink the notifications file does not define");
                }
            }
        }
        let notice = Arc::new(notice);
        for sink in &self.sinks {
            let routed = route.is_none_or(|names| names.contains(&sink.name));
            let wanted = sink
                .events
                .as_ref()
                .is_none_or(|events| events.contains(&notice.event));
            if !routed || !wanted {
                continue;
            }
            if sink.queue.try_send(notice.clone()).is_err() {
                self.count(&sink.name, notice.event, "dropped");
                tracing::warn!(sink = %sink.name, kind = sink.kind.as_str(), event = notice.event.as_str(), request = %notice.request, "notification dropped: the sink's queue is full (it is failing or slow)");
            }
        }
    }

    fn count(&self, sink: &str, event: Kind, result: &str) {
        self.metrics
            .notifications
            .with_label_values(&[sink, event.as_str(), result])
            .inc();
    }
}

/// `jitguard_notifications_total`'s results: delivered, an attempt that failed and will be
/// retried, given up after the last attempt (or refused for good), dropped on a full queue.
const RESULTS: [&str; 4] = ["ok", "retry", "failed", "dropped"];

/// One sink's task: each notice in turn, retried with backoff.
async fn deliver(
    sink: Sink,
    client: reqwest::Client,
    mut queue: mpsc::Receiver<Arc<Notice>>,
    metrics: Metrics,
    attempts: u32,
) {
    let count = |event: Kind, result: &str| {
        metrics
            .notifications
            .with_label_values(&[&sink.name, event.as_str(), result])
            .inc();
    };
    while let Some(notice) = queue.recv().await {
        let (body, content_type) = match sink.kind {
            SinkKind::Slack => (payload::slack(&notice), "application/json"),
            SinkKind::CloudEvents => (
                payload::cloudevent(&notice),
                payload::CLOUDEVENTS_CONTENT_TYPE,
            ),
        };
        let body = body.to_string();
        let mut backoff = Duration::from_secs(1);
        for attempt in 1..=attempts {
            let mut request = client
                .post(&sink.url.0)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .body(body.clone());
            if let Some(token) = &sink.token {
                request = request.bearer_auth(&token.0);
            }
            let outcome = match request.send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => {
                    let status = r.status();
                    // 408, 429 and 5xx may pass; another 4xx is a configuration error.
                    let transient = status.is_server_error()
                        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                        || status == reqwest::StatusCode::REQUEST_TIMEOUT;
                    Err((format!("the sink answered {status}"), transient))
                }
                Err(e) => Err((describe(&e), true)),
            };
            match outcome {
                Ok(()) => {
                    count(notice.event, "ok");
                    tracing::debug!(sink = %sink.name, event = notice.event.as_str(), request = %notice.request, "notification delivered");
                    break;
                }
                Err((reason, transient)) if transient && attempt < attempts => {
                    count(notice.event, "retry");
                    tracing::warn!(sink = %sink.name, event = notice.event.as_str(), request = %notice.request, attempt, error = %reason, "notification not delivered; retrying in {}s", backoff.as_secs());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err((reason, _)) => {
                    count(notice.event, "failed");
                    tracing::error!(sink = %sink.name, event = notice.event.as_str(), request = %notice.request, attempt, error = %reason, "notification not delivered; giving up (check the sink's URL, token and availability)");
                    break;
                }
            }
        }
    }
}

/// A reqwest error without its URL (which may hold a token), with its causes.
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let line = cause.to_string();
        if !line.contains("://") {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    #[test]
    fn the_file_names_sinks_with_secrets_from_the_file_or_the_environment() {
        let env = |var: &str| {
            (var == "SLACK_URL").then(|| "https://hooks.example/T/B/s3cret".to_string())
        };
        let settings = Settings::parse(
            r"
expiringBefore: 5m
pageUrl: http://127.0.0.1:8765
sinks:
  - {name: approvers, type: slack, urlEnv: SLACK_URL}
  - {name: audit, type: cloudevents, url: 'https://events.example/in', token: t0ken, events: [requested, break-glass]}
",
            env,
        )
        .unwrap();
        assert_eq!(settings.sinks.len(), 2);
        assert_eq!(
            settings.timing.expiring_before,
            Some(jiff::SignedDuration::from_mins(5))
        );
        assert_eq!(
            settings.sinks[1].events,
            Some([Kind::Requested, Kind::BreakGlass].into())
        );
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("t0ken"),
            "{shown}"
        );

        let errors = [
            ("sinks: [{name: a, type: slack}]", "url (or urlEnv) is required"),
            ("sinks: [{name: a, type: slack, urlEnv: NOPE}]", "NOPE, which is not set"),
            ("sinks: [{name: a, type: slack, url: 'ftp://x/s3cret'}]", "not an http(s) URL"),
            ("sinks: [{name: a, type: teams, url: 'https://x'}]", "unknown variant"),
            ("sinks: [{name: a, type: slack, url: 'https://x', events: [sent]}]", "unknown event \"sent\""),
            ("sinks: [{name: a, type: slack, url: 'https://x'}, {name: a, type: slack, url: 'https://y'}]", "two sinks are named \"a\""),
            ("sinks: []\nexpiringBefore: soon", "expiringBefore"),
            ("sinks: []\nretries: 3", "unknown field"),
        ];
        for (text, expected) in errors {
            let e = format!("{:#}", Settings::parse(text, env).unwrap_err());
            assert!(e.contains(expected), "{text}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
        let off = Settings::parse("sinks: []\nexpiringBefore: 'off'", env).unwrap();
        assert_eq!(off.timing.expiring_before, None);
    }

    /// A local sink that answers every request with `status` (or never, for 0), and
    /// counts what it received.
    fn sink(status: u16) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let seen = seen.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            let mut body = vec![0; length];
                            if reader.read_exact(&mut body).is_err() {
                                return;
                            }
                            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            if status == 0 {
                                std::thread::sleep(std::time::Duration::from_secs(30));
                                return;
                            }
                            let answer =
                                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\n\r\n");
                            let _ = reader.get_mut().write_all(answer.as_bytes());
                            length = 0;
                        }
                    }
                });
            }
        });
        (url, count)
    }

    fn notice(n: usize) -> Notice {
        Notice {
            id: format!("u-{n}/requested"),
            event: Kind::Requested,
            summary: "alice asks".into(),
            request: format!("r{n}"),
            requester: "alice".into(),
            group: None,
            reason: "x".into(),
            ticket: None,
            scope: vec![],
            duration: "30m".into(),
            break_glass: false,
            phase: "Pending".into(),
            needs: None,
            by: None,
            comment: None,
            expires_at: None,
            commands: vec![],
            page: None,
            time: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    fn counted(metrics: &Metrics, sink: &str, result: &str) -> u64 {
        metrics
            .notifications
            .with_label_values(&[sink, "requested", result])
            .get()
    }

    async fn until(what: &str, mut check: impl FnMut() -> bool) {
        for _ in 0..200 {
            if check() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{what}: not within 10 s");
    }

    #[tokio::test]
    async fn a_refusal_is_not_retried_and_a_full_queue_drops_what_does_not_fit() {
        crate::install_crypto_provider();
        let (refusing, refused) = sink(404);
        let (stuck, held) = sink(0);
        let settings = Settings::parse(
            &format!(
                "queue: 1\nattempts: 3\ntimeout: 20s\nsinks:\n- {{name: refusing, type: cloudevents, url: '{refusing}'}}\n- {{name: stuck, type: slack, url: '{stuck}'}}\n"
            ),
            |_| None,
        )
        .unwrap();
        let metrics = Metrics::new().unwrap();
        let notifier = Notifier::start(settings, metrics.clone()).unwrap();
        // A 404 says the URL is wrong: given up at once, not retried.
        notifier.send(notice(1), Some(&["refusing".to_string()]));
        until("the refusal is counted", || {
            counted(&metrics, "refusing", "failed") == 1
        })
        .await;
        assert_eq!(refused.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(counted(&metrics, "refusing", "retry"), 0);
        // A sink that never answers holds one notice in flight and one in its queue of
        // one; the next is dropped, at once, and the caller never waits.
        notifier.send(notice(2), Some(&["stuck".to_string()]));
        until("the stuck sink holds the first", || {
            held.load(std::sync::atomic::Ordering::SeqCst) == 1
        })
        .await;
        let started = std::time::Instant::now();
        notifier.send(notice(3), Some(&["stuck".to_string()]));
        notifier.send(notice(4), Some(&["stuck".to_string()]));
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "send never waits (an attempt would take 20 s)"
        );
        assert_eq!(counted(&metrics, "stuck", "dropped"), 1);
        // Routing: a notice for the stuck sink alone never reached the refusing one.
        assert_eq!(refused.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
