//! Discovery, the legacy (unaggregated) form: `/version`, `/api`, `/api/v1`, `/apis`,
//! `/apis/<group>` and `/apis/<group>/<version>`, all generated from [`RESOURCES`].
//!
//! kubectl 1.32 asks for aggregated discovery first (`Accept:
//! application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,…,application/json`);
//! client-go reads the answer's Content-Type, and a plain `application/json` one is taken as
//! the legacy documents, which it then walks group by group. So these are served as
//! `application/json` whatever the Accept header asks.

use serde_json::{Value, json};

use super::resources::{RESOURCES, Resource};

/// The Kubernetes minor version whose API this one follows: kubectl warns when the server
/// is more than one minor version away from it, and 1.32 is what these machines run.
pub const KUBERNETES_MINOR: u32 = 32;

/// `/version`: Kubernetes' version.Info. gitVersion is semver with Skiff's own version as
/// the pre-release part, so kubectl's skew check reads v1.32 and people read Skiff's.
pub fn version() -> Value {
    let skiff = env!("CARGO_PKG_VERSION");
    json!({
        "major": "1",
        "minor": KUBERNETES_MINOR.to_string(),
        "gitVersion": format!("v1.{KUBERNETES_MINOR}.0-skiff.{skiff}"),
        "gitCommit": "",
        "gitTreeState": "",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, goarch()),
    })
}

/// Go's name for this machine's architecture, as Kubernetes prints its platform.
fn goarch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `/api`: the core group's versions.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            { "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }
        ],
    })
}

/// The named groups (every group but the core one), in table order.
fn named_groups() -> Vec<&'static str> {
    let mut groups: Vec<&'static str> = Vec::new();
    for resource in &RESOURCES {
        let group = resource.kind.group();
        if !group.is_empty() && !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups
}

fn group_json(group: &str) -> Value {
    let version = json!({ "groupVersion": format!("{group}/v1"), "version": "v1" });
    json!({
        "name": group,
        "versions": [version.clone()],
        "preferredVersion": version,
    })
}

/// `/apis`: every named group.
pub fn groups() -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": named_groups().into_iter().map(group_json).collect::<Vec<_>>(),
    })
}

/// `/apis/<group>`, or `None` for a group not served.
pub fn group(group: &str) -> Option<Value> {
    named_groups().contains(&group).then(|| {
        let mut value = group_json(group);
        value["kind"] = "APIGroup".into();
        value["apiVersion"] = "v1".into();
        value
    })
}

/// `/api/v1` (group "") or `/apis/<group>/<version>`: the APIResourceList, or `None` for a
/// group version not served.
pub fn resources(group: &str, version: &str) -> Option<Value> {
    let served: Vec<&Resource> = RESOURCES
        .iter()
        .filter(|r| r.kind.group() == group && version == "v1")
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for resource in served {
        let kind = resource.kind;
        list.push(json!({
            "name": kind.plural(),
            "singularName": kind.as_str().to_ascii_lowercase(),
            "namespaced": kind.is_namespaced(),
            "kind": kind.as_str(),
            "verbs": resource.verbs,
            "shortNames": [kind.short_name()],
        }));
        for (subresource, verbs) in resource.subresources {
            list.push(json!({
                "name": format!("{}/{subresource}", kind.plural()),
                "singularName": "",
                "namespaced": kind.is_namespaced(),
                "kind": kind.as_str(),
                "verbs": verbs,
            }));
        }
    }
    let group_version = match group {
        "" => version.to_string(),
        group => format!("{group}/{version}"),
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": list,
    }))
}

/// The group versions served, as OpenAPI v3 names them (`api/v1`, `apis/apps/v1`).
fn openapi_group_versions() -> Vec<(&'static str, String)> {
    let mut out = vec![("", "api/v1".to_string())];
    out.extend(
        named_groups()
            .into_iter()
            .map(|g| (g, format!("apis/{g}/v1"))),
    );
    out
}

/// `/openapi/v3`: where each group version's document is.
pub fn openapi_root() -> Value {
    let paths: serde_json::Map<String, Value> = openapi_group_versions()
        .into_iter()
        .map(|(_, path)| {
            let url = json!({ "serverRelativeURL": format!("/openapi/v3/{path}") });
            (path, url)
        })
        .collect();
    json!({ "paths": paths })
}

/// `/openapi/v3/<api/v1|apis/G/v1>`: the object paths and their operations, each tagged
/// with its group-version-kind, without schemas yet (`kubectl explain` needs those). kubectl
/// reads one thing here before every write: whether the server validates fields itself
/// (a `fieldValidation` query parameter on the kind's PATCH operation, which is where
/// Kubernetes declares it); a server that does not say so gets its writes validated against
/// an OpenAPI v2 schema that Skiff does not serve. Skiff validates every write itself.
pub fn openapi_group_version(path: &str) -> Option<Value> {
    let (group, _) = openapi_group_versions()
        .into_iter()
        .find(|(_, p)| p == path)?;
    let field_validation = json!({
        "name": "fieldValidation",
        "in": "query",
        "description": "how unknown or duplicate fields in the request body are treated",
        "schema": { "type": "string", "uniqueItems": true },
    });
    let mut paths = serde_json::Map::new();
    for resource in RESOURCES.iter().filter(|r| r.kind.group() == group) {
        let kind = resource.kind;
        let gvk = json!({ "group": group, "version": "v1", "kind": kind.as_str() });
        let operation = |action: &str, parameters: Value| {
            json!({
                "x-kubernetes-action": action,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": parameters,
            })
        };
        let scope = match kind.is_namespaced() {
            true => "namespaces/{namespace}/",
            false => "",
        };
        paths.insert(
            format!("/{path}/{scope}{}", kind.plural()),
            json!({
                "get": operation("list", json!([])),
                "post": operation("post", json!([field_validation])),
            }),
        );
        paths.insert(
            format!("/{path}/{scope}{}/{{name}}", kind.plural()),
            json!({
                "get": operation("get", json!([])),
                "put": operation("put", json!([field_validation])),
                "patch": operation("patch", json!([field_validation])),
                "delete": operation("delete", json!([])),
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": format!("v1.{KUBERNETES_MINOR}.0") },
        "paths": paths,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_reads_as_kubernetes_1_32_with_skiffs_own_version() {
        let v = version();
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "32");
        let git = v["gitVersion"].as_str().unwrap();
        assert!(git.starts_with("v1.32.0-skiff."), "{git}");
    }

    #[test]
    fn core_v1_lists_pods_nodes_namespaces_and_events_with_short_names() {
        let list = resources("", "v1").unwrap();
        assert_eq!(list["groupVersion"], "v1");
        let find = |name: &str| {
            list["resources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("{name} missing"))
        };
        for (name, short, namespaced, kind) in [
            ("pods", "po", true, "Pod"),
            ("nodes", "no", false, "Node"),
            ("namespaces", "ns", false, "Namespace"),
            ("events", "ev", true, "Event"),
        ] {
            let r = find(name);
            assert_eq!(r["shortNames"][0], short);
            assert_eq!(r["namespaced"], namespaced);
            assert_eq!(r["kind"], kind);
            assert!(r["verbs"].as_array().unwrap().contains(&json!("list")));
        }
        assert_eq!(find("pods/status")["verbs"], json!(["get", "update"]));
        assert!(
            list["resources"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["name"] != "deployments")
        );
    }

    #[test]
    fn apps_v1_serves_deployments_and_nothing_else_is_a_group() {
        let list = resources("apps", "v1").unwrap();
        assert_eq!(list["groupVersion"], "apps/v1");
        assert_eq!(list["resources"][0]["name"], "deployments");
        assert_eq!(list["resources"][0]["shortNames"][0], "deploy");
        assert_eq!(
            groups()["groups"][0]["preferredVersion"]["groupVersion"],
            "apps/v1"
        );
        assert!(resources("apps", "v2").is_none());
        assert!(resources("batch", "v1").is_none());
        assert!(group("batch").is_none());
        assert_eq!(group("apps").unwrap()["kind"], "APIGroup");
    }

    #[test]
    fn openapi_v3_says_each_kind_takes_field_validation_where_kubectl_looks() {
        let root = openapi_root();
        assert_eq!(
            root["paths"]["apis/apps/v1"]["serverRelativeURL"],
            "/openapi/v3/apis/apps/v1"
        );
        let core = openapi_group_version("api/v1").unwrap();
        let pod = &core["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(pod["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert_eq!(pod["parameters"][0]["name"], "fieldValidation");
        assert_eq!(pod["parameters"][0]["in"], "query");
        assert!(core["paths"]["/api/v1/nodes/{name}"]["patch"].is_object());
        let apps = openapi_group_version("apis/apps/v1").unwrap();
        assert!(apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"].is_object());
        assert!(openapi_group_version("apis/batch/v1").is_none());
    }
}
