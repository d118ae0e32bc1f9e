//! The real kubectl (v1.32) reading Skiff's discovery and OpenAPI v3 on a 3-member control
//! plane: `explain` from the served schemas, `api-resources` and `get` through aggregated
//! discovery, client-side validation. kubectl missing skips these tests, and fails them when
//! SKIFF_REQUIRE_PRIVILEGED is set (CI), as every missing prerequisite does.

use skiff_tests::cluster::ControlPlaneCluster;
use skiff_tests::host::runs_without;
use skiff_tests::kubectl::{Kubectl, missing_kubectl};

async fn cluster() -> Option<ControlPlaneCluster> {
    if !runs_without(missing_kubectl().as_deref()) {
        return None;
    }
    Some(ControlPlaneCluster::start_ready(3).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explain_prints_fields_types_and_descriptions_from_the_servers_openapi() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let kubectl = Kubectl::new(&cluster, None).with_own_cache();

    let out = kubectl.ok(&["explain", "pod.spec.nodeSelector"]);
    // kubectl's own template puts two blank lines after FIELD.
    assert!(
        out.starts_with(
            "KIND:       Pod\nVERSION:    v1\n\nFIELD: nodeSelector <map[string]string>\n\n\nDESCRIPTION:\n    NodeSelector is a selector which must be true for the pod to fit on a node"
        ),
        "{out}"
    );
    // kubectl wraps the description itself: the doc comment's line breaks are gone.
    assert!(out.lines().all(|l| l.chars().count() <= 80), "{out}");
    assert!(!out.contains("FIELDS:"), "{out}");

    let pods = kubectl.ok(&["explain", "pods"]);
    assert!(
        pods.starts_with("KIND:       Pod\nVERSION:    v1\n\nDESCRIPTION:\n    Pod is"),
        "{pods}"
    );
    for field in [
        "  apiVersion\t<string>\n",
        "  kind\t<string>\n",
        "  metadata\t<ObjectMeta>\n",
        "  spec\t<PodSpec>\n",
        "  status\t<PodStatus>\n",
    ] {
        assert!(pods.contains(field), "{field:?} in\n{pods}");
    }

    let spec = kubectl.ok(&["explain", "deployment.spec", "--recursive"]);
    assert!(
        spec.starts_with(
            "GROUP:      apps\nKIND:       Deployment\nVERSION:    v1\n\nFIELD: spec <DeploymentSpec>\n\n\nDESCRIPTION:\n    Specification of the desired behavior of the Deployment.\n    DeploymentSpec is"
        ),
        "{spec}"
    );
    for line in [
        "\nFIELDS:\n",
        "\n  replicas\t<integer>\n",
        "\n  selector\t<LabelSelector>\n    matchExpressions\t<[]LabelSelectorRequirement>\n",
        "\n  strategy\t<DeploymentStrategy>\n    rollingUpdate\t<RollingUpdateDeployment>\n      maxSurge\t<IntOrString>\n",
        "\n  template\t<PodTemplateSpec>\n    metadata\t<ObjectMeta>\n",
        "\n      containers\t<[]Container>\n",
        "\n        env\t<[]EnvVar>\n          name\t<string> -required-\n",
        "\n          limits\t<map[string]Quantity>\n",
        "\n      creationTimestamp\t<string>\n",
    ] {
        assert!(spec.contains(line), "{line:?} in\n{spec}");
    }
    // The same fields, in the same tree, as `skiff explain` prints from the same types.
    let names = |text: &str| -> Vec<String> {
        let fields = text.split("\nFIELDS:\n").nth(1).unwrap_or_default();
        fields
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect()
    };
    let skiffs = skiff_api::explain::explain_recursive("deployment.spec").unwrap();
    assert_eq!(names(&spec), names(&skiffs));

    let err = kubectl.fails(&["explain", "pod.spec.nodeSelectorz"]);
    assert!(
        err.contains(r#"field "nodeSelectorz" does not exist"#),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_api_resources_through_aggregated_discovery_without_falling_back() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let kubectl = Kubectl::new(&cluster, None).with_own_cache();

    // A fresh cache: kubectl asks /api and /apis for aggregated discovery, and with it
    // knows every resource without walking the group versions one by one.
    let (code, _, log) = kubectl.run(&["get", "pods", "-v=7"]);
    assert_eq!(code, 0, "{log}");
    let discovery: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("GET https://") && !l.contains("/namespaces/"))
        .collect();
    assert!(
        discovery.iter().any(|l| l.contains("/api?"))
            && discovery.iter().any(|l| l.contains("/apis?")),
        "{log}"
    );
    assert!(
        log.contains(
            "Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        ),
        "{log}"
    );
    for legacy in ["/api/v1?", "/apis/apps/v1?"] {
        assert!(
            !discovery.iter().any(|l| l.contains(legacy)),
            "fell back to {legacy}:\n{log}"
        );
    }

    let resources = kubectl.ok(&["api-resources"]);
    let rows: Vec<Vec<&str>> = resources
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0],
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"],
        "{resources}"
    );
    for row in [
        ["events", "ev", "v1", "true", "Event"],
        ["namespaces", "ns", "v1", "false", "Namespace"],
        ["nodes", "no", "v1", "false", "Node"],
        ["pods", "po", "v1", "true", "Pod"],
        ["deployments", "deploy", "apps/v1", "true", "Deployment"],
    ] {
        assert!(rows.iter().any(|r| *r == row), "{row:?} in\n{resources}");
    }
    let wide = kubectl.ok(&["api-resources", "-o", "wide", "--api-group=apps"]);
    assert!(wide.contains("VERBS"), "{wide}");
    assert!(wide.contains("create,delete,get,list"), "{wide}");
    let cluster_scoped = kubectl.ok(&["api-resources", "--namespaced=false", "-o", "name"]);
    let cluster_scoped: Vec<&str> = cluster_scoped.lines().collect();
    for name in ["namespaces", "nodes"] {
        assert!(cluster_scoped.contains(&name), "{cluster_scoped:?}");
    }
    assert!(!cluster_scoped.contains(&"pods"), "{cluster_scoped:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_strict_validation_names_an_unknown_field() {
    let Some(cluster) = cluster().await else {
        return;
    };
    let kubectl = Kubectl::new(&cluster, None).with_own_cache();
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("pod.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: typo\nspec:\n  containers:\n  - name: main\n    image: busybox\n    imagePullPolicyy: Always\n",
    )
    .unwrap();
    let path = manifest.to_str().unwrap();
    let err = kubectl.fails(&["create", "--validate=strict", "-f", path]);
    // The server validates (kubectl sends fieldValidation=Strict) and names the field by
    // its path.
    assert!(
        err.starts_with("Error from server (BadRequest): error when creating")
            && err.contains("spec.containers[0].imagePullPolicyy"),
        "{err}"
    );
    let (_, _, err) = kubectl.run(&["get", "pod", "typo"]);
    assert!(err.contains("NotFound"), "{err}");
}
