//! Installing CustomResourceDefinitions and waiting until the API server serves them.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::serde::Deserialize as _;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt as _};

/// The field manager of every object this crate applies.
pub(crate) const FIELD_MANAGER: &str = "jit-test-support";

/// How long a CRD may take to become Established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository's `crds/` directory, which holds the controller's generated CRDs.
pub fn repository_crds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("crds")
}

/// Reads every CRD from the `.yaml` and `.yml` files of `dir`, in file-name order. An empty
/// directory gives an empty list.
pub fn crds_from_dir(dir: &Path) -> anyhow::Result<Vec<CustomResourceDefinition>> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|entry| entry.map(|entry| entry.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    files.retain(|path| {
        path.is_file()
            && path
                .extension()
                .is_some_and(|extension| extension == "yaml" || extension == "yml")
    });
    files.sort();

    let mut crds = Vec::new();
    for file in files {
        let text =
            fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        crds.extend(crds_from_yaml(&text).with_context(|| format!("in {}", file.display()))?);
    }
    Ok(crds)
}

/// Parses the CRDs in a YAML text of one or more documents separated by `---`. Empty
/// documents are skipped; any other kind of object is an error.
pub fn crds_from_yaml(yaml: &str) -> anyhow::Result<Vec<CustomResourceDefinition>> {
    let mut crds = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let value = serde_yaml::Value::deserialize(document)
            .with_context(|| format!("YAML document {} is not valid YAML", index + 1))?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(serde_yaml::Value::as_str)
            .unwrap_or_default();
        if kind != "CustomResourceDefinition" {
            bail!(
                "YAML document {} is a {kind:?}, not a CustomResourceDefinition",
                index + 1
            );
        }
        let crd: CustomResourceDefinition = serde_yaml::from_value(value)
            .with_context(|| format!("YAML document {} is not a valid CRD", index + 1))?;
        crds.push(crd);
    }
    Ok(crds)
}

/// Creates or updates `crds` by server-side apply and waits until each is Established, so
/// that objects of its kinds can be created as soon as this returns.
pub async fn install_crds(
    client: &Client,
    crds: impl IntoIterator<Item = CustomResourceDefinition>,
) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();

    let mut names = Vec::new();
    for mut crd in crds {
        let name = crd.name_any();
        crd.metadata.managed_fields = None;
        crd.metadata.resource_version = None;
        crd.status = None;
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .with_context(|| format!("applying CustomResourceDefinition {name}"))?;
        names.push(name);
    }

    for name in names {
        wait_until_established(&api, &name).await?;
    }
    Ok(())
}

async fn wait_until_established(
    api: &Api<CustomResourceDefinition>,
    name: &str,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + ESTABLISH_TIMEOUT;
    loop {
        let crd = api
            .get(name)
            .await
            .with_context(|| format!("reading CRD {name}"))?;
        let conditions = crd
            .status
            .and_then(|status| status.conditions)
            .unwrap_or_default();
        let holds = |kind: &str| {
            conditions
                .iter()
                .any(|condition| condition.type_ == kind && condition.status == "True")
        };
        if holds("Established") {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let summary: Vec<String> = conditions
                .iter()
                .map(|condition| {
                    let message = condition.message.as_deref().unwrap_or_default();
                    format!("{}={} ({message})", condition.type_, condition.status)
                })
                .collect();
            bail!(
                "CRD {name} was not Established within {ESTABLISH_TIMEOUT:?}; conditions: {}",
                summary.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use kube::ResourceExt;

    use super::*;

    const TWO_CRDS: &str = "
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.example.dev
spec:
  group: example.dev
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object}}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gizmos.example.dev
spec:
  group: example.dev
  scope: Cluster
  names: {plural: gizmos, kind: Gizmo}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object}}
";

    #[test]
    fn every_document_of_a_multi_document_yaml_is_read() {
        let crds = crds_from_yaml(TWO_CRDS).unwrap();
        let names: Vec<String> = crds.iter().map(ResourceExt::name_any).collect();
        assert_eq!(names, ["gadgets.example.dev", "gizmos.example.dev"]);
    }

    #[test]
    fn an_object_that_is_not_a_crd_is_refused() {
        let error =
            crds_from_yaml("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n").unwrap_err();
        assert!(error.to_string().contains("ConfigMap"), "{error}");
    }

    #[test]
    fn the_repository_crds_directory_parses() {
        crds_from_dir(&repository_crds_dir()).unwrap();
    }
}
