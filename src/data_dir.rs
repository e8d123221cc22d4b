//! The data directory: what a first run creates and every later run reuses.
//!
//! ```text
//! <data_dir>/
//!   ca.pem, ca-key.pem            local CA (clients trust ca.pem)
//!   server.pem, server-key.pem    the gateway's certificate, issued by the CA
//!   server-names.json             the SANs and expiry server.pem was issued for
//!   identity.key                  master secret for the gateway's identity assertions
//!   admin-token                   the bootstrap admin's personal access token (0600)
//!   control.db                    the control plane's SQLite store (unless Postgres is configured)
//!   policies/                     Cedar schema and policies (seeded from deploy/policies)
//!   audit/                        audit records, JSON lines
//! ```

use anyhow::Context;
use lakeward_common::assertion::MasterSecret;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

/// The shipped default policies, copied into a new data directory's `policies/`.
const SEED_POLICIES: [(&str, &str); 2] = [
    (
        "lakeward.cedarschema",
        include_str!("../deploy/policies/lakeward.cedarschema"),
    ),
    (
        "baseline.cedar",
        include_str!("../deploy/policies/baseline.cedar"),
    ),
];

/// A server certificate is re-issued when it would expire within this margin.
const RENEW_MARGIN: Duration = Duration::days(30);
const SERVER_CERT_LIFETIME: Duration = Duration::days(397);
const CA_LIFETIME: Duration = Duration::days(3650);

/// Paths inside a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Creates the directory (mode 0700) if it does not exist.
    pub fn open(root: &Path) -> anyhow::Result<DataDir> {
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create data directory `{}`", root.display()))?;
        set_mode(root, 0o700)?;
        Ok(DataDir {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("ca.pem")
    }
    fn ca_key(&self) -> PathBuf {
        self.root.join("ca-key.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.root.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.root.join("server-key.pem")
    }
    fn server_names(&self) -> PathBuf {
        self.root.join("server-names.json")
    }
    pub fn identity_key(&self) -> PathBuf {
        self.root.join("identity.key")
    }
    pub fn admin_token(&self) -> PathBuf {
        self.root.join("admin-token")
    }
    pub fn policies(&self) -> PathBuf {
        self.root.join("policies")
    }
    pub fn audit(&self) -> PathBuf {
        self.root.join("audit")
    }

    /// Seeds `policies/` with the shipped defaults, unless it already exists (an admin's edits
    /// are never overwritten).
    pub fn seed_policies(&self) -> anyhow::Result<PathBuf> {
        let dir = self.policies();
        if !dir.exists() {
            std::fs::create_dir_all(&dir)?;
            for (name, text) in SEED_POLICIES {
                write_file(&dir.join(name), text.as_bytes(), 0o644)?;
            }
        }
        Ok(dir)
    }

    /// The master secret for identity assertions, created on first use. The file holds its
    /// hex form (64 digits; a trailing newline or spaces are accepted).
    pub fn master_secret(&self) -> anyhow::Result<MasterSecret> {
        let path = self.identity_key();
        if path.exists() {
            // `fs::read` sizes its buffer from the file's length, so the text is not copied
            // as it grows; the one copy is wiped when dropped.
            let bytes = Zeroizing::new(std::fs::read(&path)?);
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| anyhow::anyhow!("`{}`: not text", path.display()))?;
            return MasterSecret::from_hex(text)
                .map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display()));
        }
        let secret = MasterSecret::generate();
        write_file(&path, secret.to_hex().expose_secret().as_bytes(), 0o600)?;
        Ok(secret)
    }

    /// The CA and a server certificate whose SANs cover `names`, creating or re-issuing what is
    /// missing, stale or for other names. The CA itself is created once and then kept, so
    /// clients that trust `ca.pem` keep working across re-issues.
    pub fn tls_material(&self, names: &[String]) -> anyhow::Result<TlsMaterial> {
        let (ca_params, ca_key) = self.ca()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let now = OffsetDateTime::now_utc();
        let mut wanted: Vec<String> = names.to_vec();
        wanted.sort();
        wanted.dedup();
        let current: Option<IssuedFor> = std::fs::read(self.server_names())
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let reusable = current.is_some_and(|c| {
            c.names == wanted
                && c.not_after_unix > (now + RENEW_MARGIN).unix_timestamp()
                && self.server_cert().exists()
                && self.server_key().exists()
        });
        if !reusable {
            let mut params = CertificateParams::new(wanted.clone())?;
            params.distinguished_name = dn("Lakeward gateway");
            params.is_ca = IsCa::NoCa;
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            params.not_before = now - Duration::days(1);
            let not_after = now + SERVER_CERT_LIFETIME;
            params.not_after = not_after;
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &ca_cert, &ca_key)?;
            write_file(&self.server_key(), key.serialize_pem().as_bytes(), 0o600)?;
            write_file(&self.server_cert(), cert.pem().as_bytes(), 0o644)?;
            let issued = IssuedFor {
                names: wanted,
                not_after_unix: not_after.unix_timestamp(),
            };
            write_file(&self.server_names(), &serde_json::to_vec(&issued)?, 0o644)?;
        }
        Ok(TlsMaterial {
            cert_pem: std::fs::read(self.server_cert())?,
            key_pem: std::fs::read(self.server_key())?,
        })
    }

    fn ca(&self) -> anyhow::Result<(CertificateParams, KeyPair)> {
        // The CA certificate is rebuilt from the same parameters and key each run: the server
        // certificate's issuer name and key identifier depend only on those, so re-issued
        // server certificates verify against the `ca.pem` clients already trust.
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = dn("Lakeward local CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        if self.ca_key().exists() && self.ca_cert().exists() {
            let key = KeyPair::from_pem(&std::fs::read_to_string(self.ca_key())?)?;
            return Ok((params, key));
        }
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::days(1);
        params.not_after = now + CA_LIFETIME;
        let key = KeyPair::generate()?;
        let cert = params.clone().self_signed(&key)?;
        write_file(&self.ca_key(), key.serialize_pem().as_bytes(), 0o600)?;
        write_file(&self.ca_cert(), cert.pem().as_bytes(), 0o644)?;
        // Force the server certificate to be issued by this new CA.
        let _ = std::fs::remove_file(self.server_names());
        Ok((params, key))
    }

    /// Writes the bootstrap admin token (mode 0600).
    pub fn write_admin_token(&self, token: &str) -> anyhow::Result<()> {
        write_file(&self.admin_token(), format!("{token}\n").as_bytes(), 0o600)
    }
}

/// PEM bytes for the gateway's listener.
pub struct TlsMaterial {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct IssuedFor {
    names: Vec<String>,
    not_after_unix: i64,
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Lakeward");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Writes atomically (temp file + rename) with `mode`, so a crash never leaves half a key.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("cannot write `{}`", tmp.display()))?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    set_mode(&tmp, mode)?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set permissions of `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn first_run_creates_and_second_run_reuses() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(&tmp.path().join("d")).unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let first = dir.tls_material(&names).unwrap();
        let ca = std::fs::read(dir.ca_cert()).unwrap();
        let second = dir.tls_material(&names).unwrap();
        assert_eq!(first.cert_pem, second.cert_pem);
        assert_eq!(ca, std::fs::read(dir.ca_cert()).unwrap());
        // New names: a new server certificate from the same CA.
        let more = vec!["localhost".to_owned(), "gw.example".to_owned()];
        let third = dir.tls_material(&more).unwrap();
        assert_ne!(first.cert_pem, third.cert_pem);
        assert_eq!(ca, std::fs::read(dir.ca_cert()).unwrap());
        let mode = std::fs::metadata(dir.server_key())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let secret = dir.master_secret().unwrap().to_hex();
        assert_eq!(
            secret.expose_secret(),
            dir.master_secret().unwrap().to_hex().expose_secret()
        );
    }

    /// The file format is the one earlier releases wrote: 64 hex digits (with or without a
    /// trailing newline), mode 0600. A directory made by them loads with the same secret.
    #[test]
    fn the_identity_key_file_keeps_its_format() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(tmp.path()).unwrap();
        let written = dir.master_secret().unwrap();
        let text = std::fs::read_to_string(dir.identity_key()).unwrap();
        assert_eq!(text.len(), 64);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(text, written.to_hex().expose_secret());
        let mode = std::fs::metadata(dir.identity_key())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        // An older directory's file, by hand: the same keys come out of it.
        let old = tempfile::tempdir().unwrap();
        let hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        std::fs::write(old.path().join("identity.key"), format!("{hex}\n")).unwrap();
        let loaded = DataDir::open(old.path()).unwrap().master_secret().unwrap();
        assert_eq!(loaded.to_hex().expose_secret(), hex);
        let expected = MasterSecret::from_hex(hex).unwrap();
        use lakeward_common::assertion::Audience;
        assert_eq!(
            loaded.key_for(Audience::Control).to_hex().expose_secret(),
            expected.key_for(Audience::Control).to_hex().expose_secret()
        );
        std::fs::write(old.path().join("identity.key"), "not hex").unwrap();
        assert!(DataDir::open(old.path()).unwrap().master_secret().is_err());
    }
}
