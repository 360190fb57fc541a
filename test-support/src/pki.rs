//! Keys and certificates of one control plane: a private certificate authority, the serving
//! certificate of kube-apiserver for `127.0.0.1` and `localhost`, and the key pair that signs
//! service-account tokens.

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

        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name = name("jit-groups-controller test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)
            .context("creating the test certificate authority")?;

        let serving_key = KeyPair::generate()?;
        let mut serving_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
        serving_params.distinguished_name = name("kube-apiserver");
        serving_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        serving_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let serving_cert = serving_params
            .signed_by(&serving_key, &ca)
            .context("signing the kube-apiserver serving certificate")?;

        let service_account_key = KeyPair::generate()?;

        let pki = Pki {
            ca_pem: ca.pem(),
            ca_der: ca.der().to_vec(),
            ca_file: dir.join("ca.crt"),
            serving_cert_file: dir.join("apiserver.crt"),
            serving_key_file: dir.join("apiserver.key"),
            service_account_public_key_file: dir.join("service-account.pub"),
            service_account_private_key_file: dir.join("service-account.key"),
        };
        write(&pki.ca_file, &pki.ca_pem)?;
        write(&pki.serving_cert_file, &serving_cert.pem())?;
        write(&pki.serving_key_file, &serving_key.serialize_pem())?;
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

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}
