//! Test support: a real Kubernetes control plane and the Google Cloud emulator on loopback.
