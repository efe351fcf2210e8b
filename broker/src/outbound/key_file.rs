//! Where the issuer's signing key comes from: `--signing-key FILE` (PKCS#8 Ed25519, PEM or
//! DER, e.g. from `openssl genpkey -algorithm ed25519`), else `{--data-dir}/issuer/ed25519.pk8`,
//! generated at the first start with permissions 0600.
//!
//! Blocking file I/O: `herald serve` calls [`load_issuer`] on the blocking pool.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "blocking by contract: called off the async workers"
)]

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;

use super::issuer::{Issuer, IssuerError, generate_pkcs8};

/// The generated key's place under `--data-dir`.
pub const GENERATED_KEY: &str = "issuer/ed25519.pk8";

#[derive(Debug, Clone)]
pub struct IssuerOptions {
    /// `iss` of every token; the JWKS is served at `{url}/.well-known/jwks.json`.
    pub url: String,
    pub signing_key: Option<PathBuf>,
    pub data_dir: PathBuf,
    pub lifetime: Duration,
}

/// The issuer `herald serve` runs with. A given `--signing-key` that cannot be used fails the
/// start; a data directory where no key can be kept gives an in-memory key with a warning
/// (tokens then stop verifying at the next start).
pub fn load_issuer(options: &IssuerOptions) -> Result<Issuer, IssuerError> {
    let key_error = |path: &Path, reason: String| IssuerError::Key {
        path: path.display().to_string(),
        reason,
    };
    if let Some(path) = &options.signing_key {
        let bytes = std::fs::read(path).map_err(|e| key_error(path, e.to_string()))?;
        let der = if bytes.starts_with(b"-----BEGIN") {
            PrivatePkcs8KeyDer::from_pem_slice(&bytes)
                .map_err(|e| key_error(path, format!("no PEM PRIVATE KEY: {e}")))?
                .secret_pkcs8_der()
                .to_vec()
        } else {
            bytes
        };
        warn_if_readable_by_others(path);
        return Issuer::new(&options.url, &der, options.lifetime).map_err(|e| match e {
            IssuerError::Key { reason, .. } => key_error(path, reason),
            other => other,
        });
    }
    let path = options.data_dir.join(GENERATED_KEY);
    match std::fs::read(&path) {
        Ok(der) => {
            warn_if_readable_by_others(&path);
            Issuer::new(&options.url, &der, options.lifetime).map_err(|e| match e {
                IssuerError::Key { reason, .. } => key_error(&path, reason),
                other => other,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let der = generate_pkcs8();
            match write_private(&path, &der) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "generated the issuer's signing key")
                }
                Err(e) => tracing::warn!(path = %path.display(), error = %e,
                    "cannot keep the issuer's signing key: using one in memory; tokens will not verify after a restart"),
            }
            Issuer::new(&options.url, &der, options.lifetime)
        }
        Err(e) => Err(key_error(&path, e.to_string())),
    }
}

/// Writes `bytes` to `path` with mode 0600: a temporary file created with that mode, synced,
/// then renamed, so a crash never leaves a partial key.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777),
            "the issuer's signing key is readable by other users; chmod 600 it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path) -> IssuerOptions {
        IssuerOptions {
            url: "http://localhost:8080".into(),
            signing_key: None,
            data_dir: dir.to_owned(),
            lifetime: Duration::from_secs(60),
        }
    }

    #[test]
    fn the_generated_key_is_private_and_kept_across_starts() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_issuer(&options(dir.path())).unwrap();
        let mode = std::fs::metadata(dir.path().join(GENERATED_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let second = load_issuer(&options(dir.path())).unwrap();
        assert_eq!(first.kid(), second.kid());
    }

    #[test]
    fn a_given_key_is_read_as_pem_or_der_and_a_bad_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let der = generate_pkcs8();
        let pem = PrivatePkcs8KeyDer::from(der.clone());
        let text = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                pem.secret_pkcs8_der()
            )
        );
        let (pem_path, der_path, bad) = (
            dir.path().join("k.pem"),
            dir.path().join("k.der"),
            dir.path().join("bad"),
        );
        std::fs::write(&pem_path, text).unwrap();
        std::fs::write(&der_path, &der).unwrap();
        std::fs::write(&bad, "junk").unwrap();
        let with = |path: &Path| {
            load_issuer(&IssuerOptions {
                signing_key: Some(path.to_owned()),
                ..options(dir.path())
            })
        };
        assert_eq!(
            with(&pem_path).unwrap().kid(),
            with(&der_path).unwrap().kid()
        );
        let message = with(&bad).unwrap_err().to_string();
        assert!(
            message.contains("bad") && message.contains("PKCS#8"),
            "{message}"
        );
        assert!(!dir.path().join(GENERATED_KEY).exists());
    }
}
