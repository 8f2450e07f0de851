//! Development certificates (`jitguard certs`, `serve --dev`): a CA and a serving pair
//! signed by it, ECDSA P-256 like the product expects (cheaper handshakes than RSA, which
//! matters because the API server does not resume TLS sessions).
//! Real clusters use cert-manager or their own PKI (see `certs/README.md`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca-key.pem";
pub const SERVING_CERT: &str = "tls.crt";
pub const SERVING_KEY: &str = "tls.key";

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The files written, and the base64 `caBundle` for a webhook configuration.
#[derive(Debug, Clone)]
pub struct Issued {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca_bundle: String,
    pub reused_ca: bool,
}

fn validity(params: &mut CertificateParams, days: i64) {
    let today = jiff::Zoned::now().date();
    let from = today.yesterday().unwrap_or(today);
    let to = today
        .checked_add(jiff::Span::new().days(days))
        .unwrap_or(today);
    let ymd = |d: jiff::civil::Date| {
        rcgen::date_time_ymd(
            i32::from(d.year()),
            u8::try_from(d.month()).unwrap_or(1),
            u8::try_from(d.day()).unwrap_or(1),
        )
    };
    params.not_before = ymd(from);
    params.not_after = ymd(to);
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "jitguard development CA");
    dn.push(DnType::OrganizationName, "jitguard");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, 5 * 365);
    params
}

/// Loads the CA in `dir` (one this module wrote) if there is one (so re-running issues a fresh serving pair that
/// clients already trust: a rotation), else creates one.
fn ca(dir: &Path, force_new: bool) -> Result<(Issuer<'static, KeyPair>, String, bool), CertError> {
    let (cert_path, key_path) = (dir.join(CA_CERT), dir.join(CA_KEY));
    if !force_new && cert_path.exists() && key_path.exists() {
        let cert_pem = read(&cert_path)?;
        let key = KeyPair::from_pem(&read(&key_path)?)?;
        // The issuer's name and key identifier are derived from parameters this module
        // fixes, so the CA it wrote earlier is rebuilt exactly, without an X.509 parser.
        return Ok((Issuer::new(ca_params(), key), cert_pem, true));
    }
    let key = KeyPair::generate()?;
    let params = ca_params();
    let cert = params.self_signed(&key)?;
    write(&key_path, &key.serialize_pem())?;
    write(&cert_path, &cert.pem())?;
    Ok((Issuer::new(params, key), cert.pem(), false))
}

fn leaf_params(names: &[String], client: bool) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_else(|| "jitguard".into()),
    );
    params.distinguished_name = dn;
    for name in names {
        params.subject_alt_names.push(match name.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(name.clone().try_into()?),
        });
    }
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    validity(&mut params, 365);
    Ok(params)
}

/// Writes (or reuses) a CA and a fresh serving pair for `names` (DNS names or IPs) into
/// `dir`: `ca.pem`, `ca-key.pem`, `tls.crt`, `tls.key`.
pub fn issue(dir: &Path, names: &[String], new_ca: bool) -> Result<Issued, CertError> {
    std::fs::create_dir_all(dir).map_err(|source| CertError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let (issuer, ca_pem, reused_ca) = ca(dir, new_ca)?;
    let key = KeyPair::generate()?;
    let cert = leaf_params(names, false)?.signed_by(&key, &issuer)?;
    let (cert_path, key_path) = (dir.join(SERVING_CERT), dir.join(SERVING_KEY));
    // Key first, then certificate, each by rename: a server polling the pair sees either
    // the old pair, a mismatched one it refuses, or the new pair; never a torn file.
    write(&key_path, &key.serialize_pem())?;
    write(&cert_path, &cert.pem())?;
    Ok(Issued {
        ca: dir.join(CA_CERT),
        cert: cert_path,
        key: key_path,
        ca_bundle: base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes()),
        reused_ca,
    })
}

/// Issues a client certificate from the CA in `dir` (for `--client-ca` mTLS): the
/// identity the API server presents, configured in its AdmissionConfiguration.
pub fn issue_client(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), CertError> {
    let (issuer, _, _) = ca(dir, false)?;
    let key = KeyPair::generate()?;
    let mut params = leaf_params(&[], true)?;
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.signed_by(&key, &issuer)?;
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    write(&key_path, &key.serialize_pem())?;
    write(&cert_path, &cert.pem())?;
    Ok((cert_path, key_path))
}

fn read(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes through a temporary file and a rename, private to the owner.
fn write(path: &Path, contents: &str) -> Result<(), CertError> {
    let io = |source| CertError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn issues_a_pair_rustls_accepts_and_reuses_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = issue(dir.path(), &["localhost".into(), "127.0.0.1".into()], false).unwrap();
        assert!(!first.reused_ca);
        crate::server::tls::load_pair(&first.cert, &first.key).unwrap();
        let second = issue(dir.path(), &["localhost".into()], false).unwrap();
        assert!(second.reused_ca);
        assert_eq!(first.ca_bundle, second.ca_bundle);
        let pem = base64::engine::general_purpose::STANDARD
            .decode(&first.ca_bundle)
            .unwrap();
        assert!(String::from_utf8(pem)
            .unwrap()
            .contains("BEGIN CERTIFICATE"));
    }
}
