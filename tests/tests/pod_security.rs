//! Pod Security admission through three real control-plane members: pods that use the host
//! are refused in a namespace without the label `pod-security.kubernetes.io/enforce` (it
//! counts as `baseline`) in Kubernetes' words, through the SDK and the CLI, also when a
//! deployment's controller makes them; a namespace a cluster-admin labels `privileged`
//! admits them, `restricted` refuses even the default pod, a value that names no level is
//! refused, and no `edit` or `admin` token can relabel a namespace. Each test is named by
//! the sentence it proves; no agents are needed (pods stay Pending).

use std::time::Duration;

use serde_json::json;
use skiff_api::pod_security::ENFORCE_LABEL;
use skiff_api::types::{Deployment, Event, Namespace, Pod};
use skiff_client::{Client, Error, ListParams, MetadataPatch, NewToken};
use skiff_tests::cluster::{ControlPlaneCluster, binary, eventually, skiff_cli};
use skiff_tests::pod_security::allow_privileged_pods;

const SETTLE: Duration = Duration::from_secs(30);

fn pod(name: &str, namespace: &str, spec: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))
    .unwrap()
}

/// The three pods that use the host, with the refusal each gets at `baseline`.
fn host_pods(namespace: &str) -> Vec<(Pod, &'static str)> {
    vec![
        (
            pod(
                "root",
                namespace,
                json!({"containers": [{"name": "c", "image": "busybox",
                          "volumeMounts": [{"name": "root", "mountPath": "/host"}]}],
                       "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}),
            ),
            r#"pods "root" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes (volume "root")"#,
        ),
        (
            pod(
                "host-net",
                namespace,
                json!({"hostNetwork": true, "containers": [{"name": "c", "image": "busybox"}]}),
            ),
            r#"pods "host-net" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)"#,
        ),
        (
            pod(
                "priv",
                namespace,
                json!({"containers": [{"name": "c", "image": "busybox",
                          "securityContext": {"privileged": true}}]}),
            ),
            r#"pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)"#,
        ),
    ]
}

fn plain_pod(name: &str, namespace: &str) -> Pod {
    pod(
        name,
        namespace,
        json!({"containers": [{"name": "c", "image": "busybox"}]}),
    )
}

fn namespace(name: &str, labels: serde_json::Value) -> Namespace {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": labels},
    }))
    .unwrap()
}

fn forbidden<T>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Forbidden(message)) => message,
        Err(other) => panic!("want PERMISSION_DENIED, got {other:?}"),
        Ok(_) => panic!("want PERMISSION_DENIED, got success"),
    }
}

fn invalid<T>(result: Result<T, Error>) -> String {
    match result {
        Err(Error::Invalid(message)) => message,
        Err(other) => panic!("want INVALID_ARGUMENT, got {other:?}"),
        Ok(_) => panic!("want INVALID_ARGUMENT, got success"),
    }
}

async fn names_in(client: &Client, namespace: &str) -> Vec<String> {
    let mut names: Vec<String> = client
        .list::<Pod>(&ListParams::namespace(namespace))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|p| p.metadata.name)
        .collect();
    names.sort();
    names
}

fn web_deployment(namespace: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_pods_are_refused_in_the_default_namespace_and_admitted_where_a_cluster_admin_labels_it_privileged()
 {
    binary("skiff");
    let cluster = ControlPlaneCluster::start_ready(3).await;
    let admin = cluster.client();

    // Unlabelled `default`: baseline. Refused through the SDK, word for word, and nothing
    // is stored; an ordinary pod is admitted.
    for (pod, refusal) in host_pods("default") {
        assert_eq!(forbidden(admin.create(&pod).await), refusal);
    }
    admin.create(&plain_pod("plain", "default")).await.unwrap();
    assert_eq!(names_in(&admin, "default").await, ["plain"]);

    // The CLI says it as kubectl does.
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("root.yaml");
    std::fs::write(
        &manifest,
        serde_json::to_string(&host_pods("default")[0].0).unwrap(),
    )
    .unwrap();
    let servers = cluster.endpoints().join(",");
    let (code, _, err) = skiff_cli(&servers, &["apply", "-f", &manifest.display().to_string()]);
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!(
            "Error from server (Forbidden): {}",
            host_pods("default")[0].1
        )),
        "{err}"
    );

    // A deployment's controller is held to the same rule: no pods, one FailedCreate event.
    admin.create(&web_deployment("default")).await.unwrap();
    eventually(SETTLE, || async {
        let events = admin
            .list::<Event>(&ListParams::namespace("default"))
            .await?
            .items;
        let failed = events
            .iter()
            .find(|e| e.reason.as_deref() == Some("FailedCreate"))
            .ok_or_else(|| anyhow::anyhow!("no FailedCreate event yet: {events:#?}"))?;
        let message = failed.message.clone().unwrap_or_default();
        anyhow::ensure!(
            message.starts_with("Error creating pod: pods \"web-")
                && message.ends_with(
                    "is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"
                ),
            "{message}"
        );
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(names_in(&admin, "default").await, ["plain"]);

    // A namespace a cluster-admin labels privileged admits all three, and its deployment
    // gets its pods.
    admin
        .create(&namespace("host-tools", json!({})))
        .await
        .unwrap();
    allow_privileged_pods(&admin, "host-tools").await.unwrap();
    for (pod, _) in host_pods("host-tools") {
        admin.create(&pod).await.unwrap();
    }
    assert_eq!(
        names_in(&admin, "host-tools").await,
        ["host-net", "priv", "root"]
    );
    admin.create(&web_deployment("host-tools")).await.unwrap();
    eventually(SETTLE, || async {
        let web = names_in(&admin, "host-tools")
            .await
            .into_iter()
            .filter(|n| n.starts_with("web-"))
            .count();
        anyhow::ensure!(web == 2, "{web} web pods");
        Ok(())
    })
    .await
    .unwrap();

    // `default` labelled privileged by the cluster-admin admits them too.
    allow_privileged_pods(&admin, "default").await.unwrap();
    for (pod, _) in host_pods("default") {
        admin.create(&pod).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_cluster_admin_sets_the_level_and_a_value_that_names_no_level_is_refused() {
    let cluster = ControlPlaneCluster::start_ready(3).await;
    let admin = cluster.client();
    admin.create(&plain_pod("p", "default")).await.unwrap();
    let privileged = MetadataPatch::default()
        .set_label(ENFORCE_LABEL, "privileged")
        .overwrite(true);

    // edit and admin (also an admin of the namespace itself) may not touch namespaces.
    for (name, role, scope) in [
        ("editor", "edit", None),
        ("owner", "admin", None),
        ("local-admin", "admin", Some("default")),
    ] {
        let (token, _) = admin
            .create_token(&NewToken {
                name: name.into(),
                role: role.into(),
                namespace: scope.map(String::from),
                ttl: None,
            })
            .await
            .unwrap();
        let user = cluster.bearer_client(&cluster.endpoints(), &token);
        let refusal = forbidden(
            user.patch_metadata::<Namespace>("", "default", &privileged)
                .await,
        );
        assert_eq!(
            refusal,
            format!(
                r#"namespaces "default" is forbidden: User "{name}" cannot patch resource "namespaces" in API group "" at the cluster scope"#
            )
        );
        // ... and their host pods stay refused.
        let (pod, message) = host_pods("default").remove(0);
        assert_eq!(forbidden(user.create(&pod).await), message);
    }

    // A label value that is no level, on create and on patch.
    let expected = r#"metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, baseline, restricted"#;
    assert_eq!(
        invalid(
            admin
                .create(&namespace("team", json!({ENFORCE_LABEL: "strict"})))
                .await
        ),
        expected
    );
    let strict = MetadataPatch::default()
        .set_label(ENFORCE_LABEL, "strict")
        .overwrite(true);
    assert_eq!(
        invalid(
            admin
                .patch_metadata::<Namespace>("", "default", &strict)
                .await
        ),
        expected
    );

    // restricted refuses even the default pod, and admits a hardened one.
    admin
        .create(&namespace("locked", json!({ENFORCE_LABEL: "restricted"})))
        .await
        .unwrap();
    assert_eq!(
        forbidden(admin.create(&plain_pod("plain", "locked")).await),
        concat!(
            r#"pods "plain" is forbidden: violates PodSecurity "restricted:latest": "#,
            r#"allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), "#,
            r#"unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), "#,
            r#"runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), "#,
            r#"seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
        )
    );
    let hardened = pod(
        "hardened",
        "locked",
        json!({
            "securityContext": {"runAsNonRoot": true, "runAsUser": 1000,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "busybox", "securityContext": {
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
        }),
    );
    admin.create(&hardened).await.unwrap();
}
