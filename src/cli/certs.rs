//! `jitguard certs`: a development CA and serving pair, and the caBundle to paste.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{exit, w};

#[derive(Args, Debug)]
pub struct CertsArgs {
    /// Folder to write ca.pem, ca-key.pem, tls.crt and tls.key into. A CA already there is
    /// reused, so running again rotates the serving pair under the same trust.
    #[arg(long, default_value = ".jitguard-dev")]
    pub out: PathBuf,
    /// DNS names (or IPs) of the serving certificate (repeat the flag).
    #[arg(long = "dns", default_values_t = vec![
        "jitguard.jitguard.svc".to_string(),
        "jitguard.jitguard.svc.cluster.local".to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ])]
    pub dns: Vec<String>,
    /// Make a new CA even if one exists (clients must then trust the new caBundle).
    #[arg(long)]
    pub new_ca: bool,
    /// Also issue a client certificate with this name (the API server's identity for
    /// `serve --client-ca`).
    #[arg(long)]
    pub client: Option<String>,
}

pub fn run(args: &CertsArgs) -> ExitCode {
    let issued = match crate::certs::issue(&args.out, &args.dns, args.new_ca) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("jitguard certs: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    let mut out = String::new();
    w!(
        out,
        "{} CA:            {}",
        if issued.reused_ca { "reused" } else { "new" },
        issued.ca.display()
    );
    w!(out, "serving cert:      {}", issued.cert.display());
    w!(out, "serving key:       {}", issued.key.display());
    if let Some(name) = &args.client {
        match crate::certs::issue_client(&args.out, name) {
            Ok((cert, key)) => w!(
                out,
                "client cert/key:   {} {}",
                cert.display(),
                key.display()
            ),
            Err(e) => {
                eprintln!("jitguard certs: {e}");
                return ExitCode::from(exit::ERROR);
            }
        }
    }
    w!(out, "names:             {}", args.dns.join(", "));
    w!(
        out,
        "\ncaBundle (for clientConfig.caBundle in the webhook configurations):\n{}",
        issued.ca_bundle
    );
    super::emit(&out);
    ExitCode::SUCCESS
}
