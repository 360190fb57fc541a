//! The CRDs committed in `crds/` must be exactly what the Rust types generate.

use std::path::Path;

#[test]
fn committed_crds_match_the_rust_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    for (file, generated) in jit_groups_controller::api::crd_documents().unwrap() {
        let path = dir.join(&file);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is stale; regenerate the CRDs with `hack/generate-crds.sh` and commit them",
            path.display()
        );
    }
}
