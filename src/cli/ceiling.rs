//! `jitguard bench-ceiling` (hidden): the load harness's reference. The same TLS stack,
//! accept loop, allocator, body limit and AdmissionReview parsing as `serve`, answering
//! "allowed" without evaluating anything, so that `serve`'s throughput can be read as a
//! fraction of what this machine's TLS and HTTP can do at all.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use clap::Args;

use crate::admission;
use crate::decision::{Decision, Verdict};
use crate::server::{self, tls};

#[derive(Args, Debug)]
pub struct CeilingArgs {
    #[arg(long, default_value = "127.0.0.1:8444")]
    pub addr: SocketAddr,
    #[arg(long)]
    pub tls_cert: PathBuf,
    #[arg(long)]
    pub tls_key: PathBuf,
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub max_body_bytes: usize,
}

pub fn run(args: &CeilingArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let pair = tls::load_pair(&args.tls_cert, &args.tls_key)?;
        let config = tls::server_config(tls::ReloadingCert::new(pair), None)?;
        let app = Router::new()
            .route("/validate", post(allow))
            .layer(axum::extract::DefaultBodyLimit::max(args.max_body_bytes));
        let listener = server::bind(args.addr, "the ceiling endpoint").await?;
        tracing::info!(addr = %args.addr, "ceiling endpoint listening");
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            let _ = stop_tx.send(true);
        });
        server::serve_tls(listener, config, app, stop, Duration::from_secs(1)).await;
        Ok(())
    })
}

async fn allow(body: Bytes) -> Response {
    match admission::parse(&body) {
        Ok(input) => {
            let decision = Decision {
                allowed: true,
                verdict: Verdict::Allow,
                message: String::new(),
                warnings: Vec::new(),
                patch: Vec::new(),
                grant: None,
                would_deny: Vec::new(),
                errors: Vec::new(),
                request_access: None,
            };
            let review = admission::respond(&input.request.uid, &decision);
            (
                [(header::CONTENT_TYPE, "application/json")],
                admission::encode(&review),
            )
                .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}
