//! Keys and certificates: those of one control plane (a private certificate authority, the
//! serving certificate of kube-apiserver for `127.0.0.1` and `localhost`, and the key pair that
//! signs service-account tokens), and serving certificates for servers under test, such as
//! admission webhooks that kube-apiserver calls on loopback.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

/// The files that kube-apiserver and its clients read, all inside the control plane's directory.
pub(crate) struct Pki {
    /// PEM of the certificate authority that signed the serving certificate.
    pub(crate) ca_pem: String,
    /// DER of the same certificate, as `kube::Config::root_cert` wants it.
    pub(crate) ca_der: Vec<u8>,
    pub(crate) ca_file: PathBuf,
    pub(crate) serving_cert_file: PathBuf,
    pub(crate) serving_key_file: PathBuf,
    pub(crate) service_account_public_key_file: PathBuf,
    pub(crate) service_account_private_key_file: PathBuf,
}

impl Pki {
    /// Generates fresh keys and certificates and writes them into `dir`.
    pub(crate) fn generate(dir: &Path) -> anyhow::Result<Pki> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;

        let LoopbackCertificate {
            ca_pem,
            ca_der,
            cert_pem,
            key_pem,
        } = LoopbackCertificate::generate_for("kube-apiserver")?;
        let service_account_key = KeyPair::generate()?;

        let pki = Pki {
            ca_pem,
            ca_der,
            ca_file: dir.join("ca.crt"),
            serving_cert_file: dir.join("apiserver.crt"),
            serving_key_file: dir.join("apiserver.key"),
            service_account_public_key_file: dir.join("service-account.pub"),
            service_account_private_key_file: dir.join("service-account.key"),
        };
        write(&pki.ca_file, &pki.ca_pem)?;
        write(&pki.serving_cert_file, &cert_pem)?;
        write(&pki.serving_key_file, &key_pem)?;
        write(
            &pki.service_account_public_key_file,
            &service_account_key.public_key_pem(),
        )?;
        write(
            &pki.service_account_private_key_file,
            &service_account_key.serialize_pem(),
        )?;
        Ok(pki)
    }
}

/// A TLS serving certificate for `127.0.0.1`, `::1` and `localhost`, with the certificate
/// authority that signed it, for a server under test that kube-apiserver or a client must
/// trust: an admission webhook gets `cert_pem` and `key_pem`, and its
/// `ValidatingWebhookConfiguration` gets `ca_pem` (base64-encoded) as `caBundle`.
#[derive(Clone, Debug)]
pub struct LoopbackCertificate {
    /// PEM of the certificate authority, newly made for this certificate alone.
    pub ca_pem: String,
    /// DER of the same certificate authority.
    pub ca_der: Vec<u8>,
    /// PEM of the serving certificate.
    pub cert_pem: String,
    /// PEM (PKCS #8) of the serving certificate's ECDSA P-256 private key.
    pub key_pem: String,
}

impl LoopbackCertificate {
    /// Makes a new certificate authority and a serving certificate signed by it.
    pub fn generate() -> anyhow::Result<LoopbackCertificate> {
        LoopbackCertificate::generate_for("jit-groups-controller test server")
    }

    fn generate_for(common_name: &str) -> anyhow::Result<LoopbackCertificate> {
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = name(&format!("{common_name} CA"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)
            .context("creating a test certificate authority")?;

        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
            "localhost".to_owned(),
        ])?;
        params.distinguished_name = name(common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &ca)
            .with_context(|| format!("signing the serving certificate of {common_name}"))?;

        Ok(LoopbackCertificate {
            ca_pem: ca.pem(),
            ca_der: ca.der().to_vec(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}
