//! The admission webhook's error type.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the webhook could not start, serve, or answer a review. A request that breaks the
/// rules is not an error: it is refused in the review's answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A certificate or key file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },

    /// A certificate or key is not usable PEM.
    #[error("{what} is not a usable PEM {kind}: {source}")]
    Pem {
        /// Where it came from, e.g. a file name.
        what: String,
        /// `certificate` or `private key`.
        kind: &'static str,
        /// What went wrong.
        #[source]
        source: rustls::pki_types::pem::Error,
    },

    /// The certificate and key do not make a TLS configuration.
    #[error("the serving certificate and key do not fit together: {0}")]
    Tls(#[source] rustls::Error),

    /// The self-signed certificate authority or serving certificate could not be made.
    #[error("cannot generate a self-signed serving certificate: {0}")]
    Generate(#[source] rcgen::Error),

    /// Self-signed mode needs the namespace of the webhook's Service.
    #[error(
        "the webhook's Service namespace is unknown: set --webhook-service-namespace, or give \
         --webhook-cert-dir"
    )]
    NoServiceNamespace,

    /// The CA bundle could not be written into a webhook configuration.
    #[error("cannot put the CA bundle into {kind} {name}: {source}")]
    CaBundle {
        /// `MutatingWebhookConfiguration` or `ValidatingWebhookConfiguration`.
        kind: String,
        /// Its name.
        name: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },

    /// The listening socket could not be opened.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },

    /// The server stopped with an error.
    #[error("the webhook server on {address} stopped: {source}")]
    Serve {
        /// The address.
        address: SocketAddr,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },

    /// Looking up objects that a review depends on failed.
    #[error("cannot list {kind} in namespace {namespace}: {source}")]
    Lookup {
        /// The kind listed.
        kind: &'static str,
        /// The namespace.
        namespace: String,
        /// What went wrong.
        #[source]
        source: kube::Error,
    },

    /// Looking up objects that a review depends on took too long.
    #[error("listing {kind} in namespace {namespace} took longer than {seconds} seconds")]
    LookupTimeout {
        /// The kind listed.
        kind: &'static str,
        /// The namespace.
        namespace: String,
        /// The limit.
        seconds: u64,
    },

    /// The patch of a mutating review could not be encoded.
    #[error("cannot encode the admission patch: {0}")]
    EncodePatch(#[source] kube::core::admission::SerializePatchError),
}
