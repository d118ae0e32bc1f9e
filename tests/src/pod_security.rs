//! Pod Security for tests whose pods use the host: a namespace without the label
//! `pod-security.kubernetes.io/enforce` admits only `baseline` pods, so tests that run
//! hostNetwork, hostPath or privileged pods label theirs `privileged` first (as a
//! cluster-admin, which the harness's clients are).

use std::time::Duration;

use skiff_api::pod_security::ENFORCE_LABEL;
use skiff_api::types::Namespace;
use skiff_client::{Client, MetadataPatch};

/// Labels `namespace` (which must exist; `default` does once the cluster serves)
/// `privileged`, retrying while a fresh cluster is still writing `default`.
pub async fn allow_privileged_pods(client: &Client, namespace: &str) -> anyhow::Result<()> {
    let patch = MetadataPatch::default()
        .set_label(ENFORCE_LABEL, "privileged")
        .overwrite(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match client
            .patch_metadata::<Namespace>("", namespace, &patch)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if e.is_not_found() && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => anyhow::bail!("label namespace {namespace} privileged: {e}"),
        }
    }
}
