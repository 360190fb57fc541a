//! The webhook's serving certificate: read from a directory (as mounted from the Secret of a
//! cert-manager Certificate) and re-read when it changes, or generated at startup together
//! with a certificate authority of its own, whose certificate is then written as `caBundle`
//! into the webhook configurations so that the API server trusts the webhook.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use backon::{ExponentialBuilder, Retryable};
use k8s_openapi::ByteString;
use k8s_openapi::ClusterResourceScope;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;

/// The file names cert-manager (and `kubernetes.io/tls` Secrets in general) use.
pub const CERT_FILE: &str = "tls.crt";
/// The private key's file name.
pub const KEY_FILE: &str = "tls.key";

/// A serving certificate and its key, as PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PemPair {
    /// The certificate chain, leaf first.
    pub cert_pem: String,
    /// The private key.
    pub key_pem: String,
}

/// A serving certificate generated at startup, with the authority that signed it.
#[derive(Clone, Debug)]
pub struct SelfSigned {
    /// The certificate authority's certificate, for `caBundle`.
    pub ca_pem: String,
    /// The serving certificate and its key.
    pub serving: PemPair,
}

/// Makes a certificate authority and a serving certificate for `hosts` (DNS names or IP
/// addresses) signed by it.
pub fn self_signed(hosts: &[String]) -> Result<SelfSigned, Error> {
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = common_name("jit-groups-controller webhook CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().map_err(Error::Generate)?;
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(Error::Generate)?;

    let key = KeyPair::generate().map_err(Error::Generate)?;
    let mut params = CertificateParams::new(hosts.to_vec()).map_err(Error::Generate)?;
    params.distinguished_name =
        common_name(hosts.first().map_or("jit-groups-controller webhook", |h| h));
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca).map_err(Error::Generate)?;
    Ok(SelfSigned {
        ca_pem: ca.pem(),
        serving: PemPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        },
    })
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// The DNS names under which the API server reaches the webhook's Service.
pub fn service_hosts(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// A TLS server configuration for `pair`; `what` names its origin in errors.
pub fn server_config(pair: &PemPair, what: &str) -> Result<Arc<ServerConfig>, Error> {
    let chain = CertificateDer::pem_slice_iter(pair.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Pem {
            what: what.to_owned(),
            kind: "certificate",
            source,
        })?;
    let key =
        PrivateKeyDer::from_pem_slice(pair.key_pem.as_bytes()).map_err(|source| Error::Pem {
            what: what.to_owned(),
            kind: "private key",
            source,
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(Error::Tls)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads `tls.crt` and `tls.key` from `dir`.
pub fn read_dir(dir: &Path) -> Result<PemPair, Error> {
    let read = |name: &str| {
        let path: PathBuf = dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| Error::ReadFile { path, source })
    };
    Ok(PemPair {
        cert_pem: read(CERT_FILE)?,
        key_pem: read(KEY_FILE)?,
    })
}

/// Re-reads the files of `dir` every `interval` and serves the new certificate when they
/// change, as they do when cert-manager renews it. A pair that cannot be used (for example
/// while only one of the two files is written) is logged and the old one kept.
pub async fn reload_on_change(
    dir: PathBuf,
    mut current: PemPair,
    tls: RustlsConfig,
    interval: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let read = read_dir(&dir).and_then(|pair| {
            let config = server_config(&pair, &dir.display().to_string())?;
            Ok((pair, config))
        });
        match read {
            Ok((pair, _)) if pair == current => {}
            Ok((pair, config)) => {
                tls.reload_from_config(config);
                current = pair;
                tracing::info!(dir = %dir.display(), "serving the renewed webhook certificate");
            }
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "keeping the webhook certificate");
            }
        }
    }
}

/// Writes `ca_pem` as the `caBundle` of every webhook of the two configurations. Retries for
/// about half a minute, since the configurations may be created at the same time as the
/// controller starts.
pub async fn write_ca_bundles(
    client: &Client,
    mutating: &str,
    validating: &str,
    ca_pem: &str,
) -> Result<(), Error> {
    let bundle = serde_json::to_value(ByteString(ca_pem.as_bytes().to_vec()))
        .unwrap_or(serde_json::Value::Null);
    write_ca_bundle::<MutatingWebhookConfiguration>(client, mutating, &bundle, |c| {
        c.webhooks.as_ref().map_or(0, Vec::len)
    })
    .await?;
    write_ca_bundle::<ValidatingWebhookConfiguration>(client, validating, &bundle, |c| {
        c.webhooks.as_ref().map_or(0, Vec::len)
    })
    .await?;
    tracing::info!(
        mutating,
        validating,
        "wrote the webhook's CA bundle into its configurations"
    );
    Ok(())
}

async fn write_ca_bundle<K>(
    client: &Client,
    name: &str,
    bundle: &serde_json::Value,
    webhooks: impl Fn(&K) -> usize,
) -> Result<(), Error>
where
    K: Resource<Scope = ClusterResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    let retry = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(8))
        .with_max_times(6);
    let api: Api<K> = Api::all(client.clone());
    let written = async {
        let configuration = (|| api.get(name)).retry(retry).await?;
        let patch = Patch::Json::<()>(bundle_patch(bundle, webhooks(&configuration)));
        let params = PatchParams::default();
        (|| api.patch(name, &params, &patch)).retry(retry).await
    };
    written.await.map(|_| ()).map_err(|source| Error::CaBundle {
        kind: K::kind(&()).into_owned(),
        name: name.to_owned(),
        source,
    })
}

/// A JSON patch that sets `caBundle` on each of `count` webhooks.
fn bundle_patch(bundle: &serde_json::Value, count: usize) -> json_patch::Patch {
    let operations = (0..count)
        .map(|i| {
            serde_json::json!({
                "op": "add",
                "path": format!("/webhooks/{i}/clientConfig/caBundle"),
                "value": bundle,
            })
        })
        .collect();
    serde_json::from_value(serde_json::Value::Array(operations)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_serves_tls_for_the_service_names() {
        let hosts = service_hosts("jit-webhook", "jit-system");
        let generated = self_signed(&hosts).unwrap();
        assert!(generated.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(server_config(&generated.serving, "generated").is_ok());
        assert_eq!(hosts[2], "jit-webhook.jit-system.svc");
    }

    #[test]
    fn a_directory_without_a_key_is_reported_by_file_name() {
        let dir = std::env::temp_dir().join(format!("jit-webhook-empty-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let error = read_dir(&dir).unwrap_err().to_string();
        assert!(error.starts_with("cannot read "), "{error}");
        assert!(error.contains("tls.crt"), "{error}");
    }

    #[test]
    fn the_bundle_patch_names_every_webhook() {
        let patch = bundle_patch(&serde_json::json!("Q0E="), 2);
        let text = serde_json::to_string(&patch).unwrap();
        assert!(text.contains("/webhooks/1/clientConfig/caBundle"), "{text}");
        assert_eq!(patch.0.len(), 2);
    }
}
