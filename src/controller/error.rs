//! The reconcilers' error type.

use std::time::Duration;

use crate::google::GoogleError;

/// Why a reconcile failed. Permanent problems of an object's own making (an invalid policy,
/// a denied request) are not errors: they go into the object's status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API call failed: {0}")]
    Kube(#[source] kube::Error),

    /// Adding or removing the controller's finalizer failed.
    #[error("finalizer of {object}: {source}")]
    Finalizer {
        /// The object, as `namespace/name`.
        object: String,
        /// What went wrong.
        #[source]
        source: Box<kube::runtime::finalizer::Error<Error>>,
    },

    /// A call to Google Cloud failed.
    #[error(transparent)]
    Google(#[from] GoogleError),

    /// The object cannot be finished yet; retried after `retry_after`.
    #[error("{0}")]
    NotYet(String, Duration),
}

impl From<kube::Error> for Error {
    fn from(error: kube::Error) -> Self {
        Self::Kube(error)
    }
}

impl Error {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Kube(_) => "kubernetes",
            Self::Finalizer { source, .. } => match source.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.label(),
                _ => "finalizer",
            },
            Self::Google(error) => error.label(),
            Self::NotYet(..) => "not_yet",
        }
    }

    /// How long to wait before the next attempt, if the error says.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Google(error) => error.retry_after(),
            Self::NotYet(_, after) => Some(*after),
            Self::Finalizer { source, .. } => match source.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(inner)
                | kube::runtime::finalizer::Error::CleanupFailed(inner) => inner.retry_after(),
                _ => None,
            },
            Self::Kube(_) => None,
        }
    }
}
