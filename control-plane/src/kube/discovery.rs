//! Discovery: `/version`, `/api`, `/api/v1`, `/apis`, `/apis/<group>` and
//! `/apis/<group>/<version>`, all generated from [`RESOURCES`] and [`EXTRA_GROUPS`]; and
//! the OpenAPI v3 documents ([`super::openapi`]) with the apiserver's caching headers.
//!
//! kubectl 1.32 asks `/api` and `/apis` for aggregated discovery first (`Accept:
//! application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,…;v=v2beta1…,
//! application/json;q=0.9`): every group, version and resource in one document, tagged by
//! its Content-Type, which client-go reads to tell it from the legacy documents. A client
//! that does not ask for it gets the legacy ones, which it walks group by group.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use skiff_api::Kind;

use super::resources::{RESOURCES, Resource};
use super::status::KubeError;
use super::{metrics_api, openapi};

/// A resource of a group that is not a Skiff [`Kind`] (metrics.k8s.io's NodeMetrics and
/// PodMetrics): what discovery says of it. Its requests are routed by whoever serves it.
pub struct ExtraResource {
    /// The plural, as in paths (`nodes`).
    pub name: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
    pub short_names: &'static [&'static str],
}

/// A group version served beside Skiff's kinds: listed by `/apis` (both forms) and
/// `/apis/<group>/<version>` as any other.
pub struct ExtraGroup {
    pub group: &'static str,
    pub version: &'static str,
    pub resources: &'static [ExtraResource],
}

/// The extension point for groups that are not Skiff kinds: add an entry here.
pub const EXTRA_GROUPS: &[&ExtraGroup] = &[&METRICS];

/// metrics.k8s.io, served by [`super::metrics_api`]: `kubectl top` finds it here (through
/// aggregated discovery, which kubectl 1.32 reads instead of `/apis`' legacy list).
const METRICS: ExtraGroup = ExtraGroup {
    group: metrics_api::GROUP,
    version: metrics_api::VERSION,
    resources: &[
        ExtraResource {
            name: "nodes",
            singular: "",
            kind: "NodeMetrics",
            namespaced: false,
            verbs: &["get", "list"],
            short_names: &[],
        },
        ExtraResource {
            name: "pods",
            singular: "",
            kind: "PodMetrics",
            namespaced: true,
            verbs: &["get", "list"],
            short_names: &[],
        },
    ],
};

/// One resource as discovery lists it, whatever it comes from.
struct Listed {
    name: &'static str,
    singular: String,
    kind: &'static str,
    namespaced: bool,
    verbs: &'static [&'static str],
    short_names: Vec<&'static str>,
    categories: &'static [&'static str],
    subresources: &'static [(&'static str, &'static [&'static str])],
}

/// One group version and its resources, in table order.
struct GroupVersion {
    group: &'static str,
    version: &'static str,
    resources: Vec<Listed>,
}

/// `kubectl get all` lists the kinds in the `all` category, as Kubernetes puts them there.
fn categories(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Pod | Kind::Deployment => &["all"],
        _ => &[],
    }
}

fn listed(resource: &Resource) -> Listed {
    let kind = resource.kind;
    Listed {
        name: kind.plural(),
        singular: kind.as_str().to_ascii_lowercase(),
        kind: kind.as_str(),
        namespaced: kind.is_namespaced(),
        verbs: resource.verbs,
        short_names: vec![kind.short_name()],
        categories: categories(kind),
        subresources: resource.subresources,
    }
}

/// Every group version served: the core group first, then the named groups of the table,
/// then the extra ones.
fn served(extra_groups: &[&ExtraGroup]) -> Vec<GroupVersion> {
    let mut out: Vec<GroupVersion> = Vec::new();
    for resource in &RESOURCES {
        let group = resource.kind.group();
        match out.iter_mut().find(|gv| gv.group == group) {
            Some(gv) => gv.resources.push(listed(resource)),
            None => out.push(GroupVersion {
                group,
                version: "v1",
                resources: vec![listed(resource)],
            }),
        }
    }
    out.sort_by_key(|gv| !gv.group.is_empty());
    for extra in extra_groups {
        out.push(GroupVersion {
            group: extra.group,
            version: extra.version,
            resources: extra
                .resources
                .iter()
                .map(|r| Listed {
                    name: r.name,
                    singular: r.singular.to_string(),
                    kind: r.kind,
                    namespaced: r.namespaced,
                    verbs: r.verbs,
                    short_names: r.short_names.to_vec(),
                    categories: &[],
                    subresources: &[],
                })
                .collect(),
        });
    }
    out
}

/// The kind a subresource answers with, as `(group, version, kind)`: its own for status and
/// log, Kubernetes' types for the others.
fn subresource_kind(
    group: &'static str,
    kind: &'static str,
    subresource: &str,
) -> (&'static str, &'static str, &'static str) {
    match subresource {
        "scale" => ("autoscaling", "v1", "Scale"),
        "eviction" => ("policy", "v1", "Eviction"),
        "exec" => ("", "v1", "PodExecOptions"),
        "attach" => ("", "v1", "PodAttachOptions"),
        "portforward" => ("", "v1", "PodPortForwardOptions"),
        "proxy" => ("", "v1", "PodProxyOptions"),
        _ => (group, "v1", kind),
    }
}

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

fn group_json(gv: &GroupVersion) -> Value {
    let version = json!({
        "groupVersion": format!("{}/{}", gv.group, gv.version),
        "version": gv.version,
    });
    json!({
        "name": gv.group,
        "versions": [version.clone()],
        "preferredVersion": version,
    })
}

/// `/apis`: every named group.
pub fn groups() -> Value {
    let groups: Vec<Value> = served(EXTRA_GROUPS)
        .iter()
        .filter(|gv| !gv.group.is_empty())
        .map(group_json)
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

/// `/apis/<group>`, or `None` for a group not served.
pub fn group(group: &str) -> Option<Value> {
    let served = served(EXTRA_GROUPS);
    let gv = served
        .iter()
        .find(|gv| !gv.group.is_empty() && gv.group == group)?;
    let mut value = group_json(gv);
    value["kind"] = "APIGroup".into();
    value["apiVersion"] = "v1".into();
    Some(value)
}

/// `/api/v1` (group "") or `/apis/<group>/<version>`: the APIResourceList, or `None` for a
/// group version not served.
pub fn resources(group: &str, version: &str) -> Option<Value> {
    resource_list(&served(EXTRA_GROUPS), group, version)
}

fn resource_list(served: &[GroupVersion], group: &str, version: &str) -> Option<Value> {
    let gv = served
        .iter()
        .find(|gv| gv.group == group && gv.version == version)?;
    let mut list = Vec::new();
    for resource in &gv.resources {
        let mut entry = json!({
            "name": resource.name,
            "singularName": resource.singular,
            "namespaced": resource.namespaced,
            "kind": resource.kind,
            "verbs": resource.verbs,
        });
        if !resource.short_names.is_empty() {
            entry["shortNames"] = json!(resource.short_names);
        }
        if !resource.categories.is_empty() {
            entry["categories"] = json!(resource.categories);
        }
        list.push(entry);
        for (subresource, verbs) in resource.subresources {
            let (sub_group, sub_version, sub_kind) =
                subresource_kind(gv.group, resource.kind, subresource);
            let mut entry = json!({
                "name": format!("{}/{subresource}", resource.name),
                "singularName": "",
                "namespaced": resource.namespaced,
                "kind": sub_kind,
                "verbs": verbs,
            });
            if sub_group != gv.group {
                entry["group"] = sub_group.into();
                entry["version"] = sub_version.into();
            }
            list.push(entry);
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

/// The aggregated discovery versions kubectl may ask for (`v=v2`, `v=v2beta1`): the same
/// document under either apiVersion.
const AGGREGATED_VERSIONS: [&str; 2] = ["v2", "v2beta1"];

/// `/api` (`core`) or `/apis` as an APIGroupDiscoveryList of `apidiscovery.k8s.io/<version>`.
fn aggregated(served: &[GroupVersion], core: bool, version: &str) -> Value {
    let items: Vec<Value> = served
        .iter()
        .filter(|gv| gv.group.is_empty() == core)
        .map(|gv| {
            let resources: Vec<Value> = gv
                .resources
                .iter()
                .map(|r| {
                    let subresources: Vec<Value> = r
                        .subresources
                        .iter()
                        .map(|(subresource, verbs)| {
                            let (g, v, k) = subresource_kind(gv.group, r.kind, subresource);
                            json!({
                                "subresource": subresource,
                                "responseKind": { "group": g, "version": v, "kind": k },
                                "verbs": verbs,
                            })
                        })
                        .collect();
                    let mut entry = json!({
                        "resource": r.name,
                        "responseKind": { "group": gv.group, "version": gv.version, "kind": r.kind },
                        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": r.singular,
                        "verbs": r.verbs,
                    });
                    if !r.short_names.is_empty() {
                        entry["shortNames"] = json!(r.short_names);
                    }
                    if !r.categories.is_empty() {
                        entry["categories"] = json!(r.categories);
                    }
                    if !subresources.is_empty() {
                        entry["subresources"] = subresources.into();
                    }
                    entry
                })
                .collect();
            let mut metadata = json!({ "creationTimestamp": null });
            if !gv.group.is_empty() {
                metadata["name"] = gv.group.into();
            }
            json!({
                "metadata": metadata,
                "versions": [{
                    "version": gv.version,
                    "resources": resources,
                    "freshness": "Current",
                }],
            })
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// One media range of an Accept header: type/subtype and its parameters, lower-cased.
struct MediaRange {
    media: String,
    parameters: Vec<(String, String)>,
    quality: f32,
}

impl MediaRange {
    fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn is_json(&self) -> bool {
        matches!(
            self.media.as_str(),
            "application/json" | "application/*" | "*/*"
        )
    }
}

/// The Accept header's media ranges, best first (by quality, then as written). At most 32
/// are read: an Accept header is not a place for more.
fn accepted(headers: &HeaderMap) -> Vec<MediaRange> {
    let mut ranges: Vec<MediaRange> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .take(32)
        .filter_map(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next()?.to_ascii_lowercase();
            if media.is_empty() {
                return None;
            }
            let mut quality = 1.0;
            let mut parameters = Vec::new();
            for parameter in parts {
                let Some((name, value)) = parameter.split_once('=') else {
                    continue;
                };
                let (name, value) = (
                    name.trim().to_ascii_lowercase(),
                    value.trim().trim_matches('"'),
                );
                if name == "q" {
                    quality = value.parse().unwrap_or(0.0);
                } else {
                    parameters.push((name, value.to_string()));
                }
            }
            Some(MediaRange {
                media,
                parameters,
                quality,
            })
        })
        .collect();
    // A stable sort keeps the written order among equals.
    ranges.sort_by(|a, b| b.quality.total_cmp(&a.quality));
    ranges
}

/// The aggregated discovery version the client asks for before the legacy documents, if any.
fn aggregated_version(headers: &HeaderMap) -> Option<&'static str> {
    for range in accepted(headers) {
        if range.quality <= 0.0 {
            continue;
        }
        let discovery = range.parameter("g") == Some("apidiscovery.k8s.io")
            && range.parameter("as") == Some("APIGroupDiscoveryList");
        if range.media == "application/json" && discovery {
            let asked = range.parameter("v").unwrap_or_default();
            if let Some(version) = AGGREGATED_VERSIONS.iter().find(|v| **v == asked) {
                return Some(version);
            }
            continue;
        }
        if range.is_json() && range.parameter("as").is_none() {
            return None;
        }
    }
    None
}

/// An ETag: the hash, quoted as HTTP wants it.
fn etag_of(hash: &str) -> String {
    format!("\"{hash}\"")
}

/// Whether the request's If-None-Match already names `etag`.
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| {
            let tag = tag.trim();
            tag == "*" || tag.trim_start_matches("W/") == etag
        })
}

/// `bytes` as `content_type` with `etag`, or 304 when the client has them already.
fn cached(
    headers: &HeaderMap,
    content_type: &str,
    etag: &str,
    bytes: Vec<u8>,
    extra: &[(header::HeaderName, String)],
) -> Response {
    let mut response = if not_modified(headers, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, bytes).into_response()
    };
    let out = response.headers_mut();
    let pairs = [
        (header::CONTENT_TYPE, content_type.to_string()),
        (header::ETAG, etag.to_string()),
        (header::VARY, "Accept".to_string()),
    ];
    for (name, value) in pairs.iter().chain(extra) {
        if let Ok(value) = HeaderValue::from_str(value) {
            out.insert(name.clone(), value);
        }
    }
    response
}

/// What only this module answers, because the answer depends on more than the path: `/api`
/// and `/apis` when the client asks for aggregated discovery, and the OpenAPI documents.
/// `None` for anything else (the legacy documents are plain JSON, served by the caller).
pub fn negotiated(
    method: &Method,
    segments: &[&str],
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<Result<Response, KubeError>> {
    let aggregated_version = match segments {
        ["api"] | ["apis"] => Some(aggregated_version(headers)?),
        ["openapi", "v3", ..] => None,
        _ => return None,
    };
    if *method != Method::GET {
        let path = format!("/{}", segments.join("/"));
        return Some(Err(KubeError::MethodNotAllowed(format!(
            "{method} is not allowed on {path}"
        ))));
    }
    Some(match (segments, aggregated_version) {
        (_, Some(version)) => {
            let document = aggregated(&served(EXTRA_GROUPS), segments == ["api"], version);
            let bytes = serde_json::to_vec(&document).unwrap_or_default();
            let etag = etag_of(&hex::encode_upper(Sha256::digest(&bytes)));
            let content_type = format!(
                "application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"
            );
            Ok(cached(headers, &content_type, &etag, bytes, &[]))
        }
        (["openapi", "v3"], None) => {
            let root = openapi::root();
            let etag = etag_of(&root.hash);
            Ok(cached(
                headers,
                "application/json",
                &etag,
                root.bytes.clone(),
                &[],
            ))
        }
        (["openapi", "v3", rest @ ..], None) => {
            openapi_group_version(&rest.join("/"), query, headers)
        }
        _ => return None,
    })
}

/// `/openapi/v3/<path>[?hash=H]` as kube-openapi serves it: JSON only (406 for a client that
/// takes nothing else), a hash that is not the current one redirected to the current URL, and
/// a hashed URL cached by clients for a year.
fn openapi_group_version(
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, KubeError> {
    let Some(document) = openapi::group_version(path) else {
        return Err(KubeError::NotFound(format!(
            "the server could not find the requested resource (/openapi/v3/{path})"
        )));
    };
    let ranges = accepted(headers);
    if !ranges.is_empty() && !ranges.iter().any(|r| r.quality > 0.0 && r.is_json()) {
        let status = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "only application/json is served here", "reason": "NotAcceptable", "code": 406,
        });
        return Ok((StatusCode::NOT_ACCEPTABLE, axum::Json(status)).into_response());
    }
    let etag = etag_of(&document.hash);
    let hash = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("hash="));
    let mut extra = Vec::new();
    if let Some(hash) = hash {
        if hash != document.hash {
            let location = format!("/openapi/v3/{path}?hash={}", document.hash);
            return Ok((
                StatusCode::MOVED_PERMANENTLY,
                [(header::LOCATION, location)],
            )
                .into_response());
        }
        let expires =
            (chrono::Utc::now() + chrono::Duration::days(365)).format("%a, %d %b %Y %H:%M:%S GMT");
        extra.push((header::CACHE_CONTROL, "public, immutable".to_string()));
        extra.push((header::EXPIRES, expires.to_string()));
    }
    Ok(cached(
        headers,
        "application/json",
        &etag,
        document.bytes.clone(),
        &extra,
    ))
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
        // Subresources carry the table's verbs.
        let pods = RESOURCES.iter().find(|r| r.kind == Kind::Pod).unwrap();
        let (_, status_verbs) = pods
            .subresources
            .iter()
            .find(|(s, _)| *s == "status")
            .unwrap();
        assert_eq!(find("pods/status")["verbs"], json!(status_verbs));
        assert_eq!(find("pods/status")["kind"], "Pod");
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

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    /// What kubectl 1.32 sends to /api and /apis.
    const KUBECTL_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json;q=0.9";

    async fn body(response: Response) -> (StatusCode, HeaderMap, Vec<u8>) {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 24).await.unwrap();
        (parts.status, parts.headers, bytes.to_vec())
    }

    fn get(path: &[&str], query: Option<&str>, headers: &HeaderMap) -> Option<Response> {
        negotiated(&Method::GET, path, query, headers).map(|r| r.unwrap())
    }

    #[test]
    fn kubectls_accept_header_gets_aggregated_discovery_and_others_the_legacy_documents() {
        assert_eq!(aggregated_version(&accept(KUBECTL_ACCEPT)), Some("v2"));
        let v2beta1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json;q=0.9";
        assert_eq!(aggregated_version(&accept(v2beta1)), Some("v2beta1"));
        // Quality outranks order.
        let legacy_first = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0.5,application/json";
        assert_eq!(aggregated_version(&accept(legacy_first)), None);
        for legacy in [
            "application/json",
            "*/*",
            "",
            "application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList",
            "text/html;;;=,",
        ] {
            assert_eq!(aggregated_version(&accept(legacy)), None, "{legacy}");
        }
        // The legacy documents are the caller's: negotiated leaves them alone.
        assert!(get(&["apis"], None, &accept("application/json")).is_none());
        assert!(get(&["api", "v1"], None, &accept(KUBECTL_ACCEPT)).is_none());
        assert!(get(&["version"], None, &accept(KUBECTL_ACCEPT)).is_none());
        let post = negotiated(&Method::POST, &["apis"], None, &accept(KUBECTL_ACCEPT));
        assert!(matches!(post, Some(Err(KubeError::MethodNotAllowed(_)))));
    }

    #[tokio::test]
    async fn aggregated_discovery_lists_every_resource_with_its_verbs_kind_and_short_names() {
        let (status, headers, bytes) =
            body(get(&["apis"], None, &accept(KUBECTL_ACCEPT)).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers[header::CONTENT_TYPE],
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
        );
        let apis: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(apis["kind"], "APIGroupDiscoveryList");
        assert_eq!(apis["apiVersion"], "apidiscovery.k8s.io/v2");
        assert_eq!(apis["items"][0]["metadata"]["name"], "apps");
        let deployments = &apis["items"][0]["versions"][0]["resources"][0];
        assert_eq!(deployments["resource"], "deployments");
        assert_eq!(
            deployments["responseKind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        assert_eq!(deployments["scope"], "Namespaced");
        assert_eq!(deployments["shortNames"], json!(["deploy"]));
        assert_eq!(deployments["categories"], json!(["all"]));
        assert_eq!(apis["items"][0]["versions"][0]["freshness"], "Current");
        let metrics = &apis["items"][1];
        assert_eq!(metrics["metadata"]["name"], "metrics.k8s.io");
        assert_eq!(metrics["versions"][0]["version"], "v1beta1");
        let kinds: Vec<&str> = metrics["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["responseKind"]["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["NodeMetrics", "PodMetrics"]);

        let (_, headers, bytes) = body(get(&["api"], None, &accept(KUBECTL_ACCEPT)).unwrap()).await;
        let core: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
        assert!(core["items"][0]["metadata"].get("name").is_none());
        let resources = core["items"][0]["versions"][0]["resources"]
            .as_array()
            .unwrap();
        let names: Vec<&str> = resources
            .iter()
            .map(|r| r["resource"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["namespaces", "pods", "nodes", "events"]);
        for resource in resources {
            let kind = Kind::parse(resource["resource"].as_str().unwrap()).unwrap();
            let table = RESOURCES.iter().find(|r| r.kind == kind).unwrap();
            assert_eq!(resource["verbs"], json!(table.verbs));
            assert_eq!(
                resource["singularResource"],
                kind.as_str().to_ascii_lowercase()
            );
            assert_eq!(
                resource["scope"],
                if kind.is_namespaced() {
                    "Namespaced"
                } else {
                    "Cluster"
                }
            );
            let subresources = resource["subresources"].as_array().map_or(0, Vec::len);
            assert_eq!(subresources, table.subresources.len(), "{kind}");
        }
        let pods = &resources[1];
        assert_eq!(pods["subresources"][0]["subresource"], "status");
        assert_eq!(pods["subresources"][0]["responseKind"]["kind"], "Pod");

        // The ETag answers a client that has it with 304, and nothing else.
        let etag = headers[header::ETAG].to_str().unwrap().to_string();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
        let mut again = accept(KUBECTL_ACCEPT);
        again.insert(header::IF_NONE_MATCH, HeaderValue::from_str(&etag).unwrap());
        let (status, _, bytes) = body(get(&["api"], None, &again).unwrap()).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(bytes.is_empty());
    }

    #[test]
    fn an_extra_group_is_listed_by_every_form_of_discovery() {
        const METRICS: ExtraGroup = ExtraGroup {
            group: "metrics.k8s.io",
            version: "v1beta1",
            resources: &[ExtraResource {
                name: "pods",
                singular: "",
                kind: "PodMetrics",
                namespaced: true,
                verbs: &["get", "list"],
                short_names: &[],
            }],
        };
        let served = served(&[&METRICS]);
        let last = served.last().unwrap();
        assert_eq!((last.group, last.version), ("metrics.k8s.io", "v1beta1"));
        let list = resource_list(&served, "metrics.k8s.io", "v1beta1").unwrap();
        assert_eq!(list["groupVersion"], "metrics.k8s.io/v1beta1");
        assert_eq!(list["resources"][0]["kind"], "PodMetrics");
        assert!(list["resources"][0].get("shortNames").is_none());
        assert!(resource_list(&served, "metrics.k8s.io", "v1").is_none());
        let apis = aggregated(&served, false, "v2");
        assert_eq!(apis["items"][1]["metadata"]["name"], "metrics.k8s.io");
        assert_eq!(apis["items"][1]["versions"][0]["version"], "v1beta1");
        assert_eq!(
            apis["items"][1]["versions"][0]["resources"][0]["responseKind"],
            json!({"group": "metrics.k8s.io", "version": "v1beta1", "kind": "PodMetrics"})
        );
        assert_eq!(
            aggregated(&served, true, "v2")["items"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn openapi_documents_are_cached_by_hash_and_redirected_when_it_is_stale() {
        let none = HeaderMap::new();
        let (status, headers, bytes) = body(get(&["openapi", "v3"], None, &none).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        let root: Value = serde_json::from_slice(&bytes).unwrap();
        let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .to_string();
        let (path, query) = url.split_once('?').unwrap();
        assert_eq!(path, "/openapi/v3/apis/apps/v1");
        let segments: Vec<&str> = path.split('/').skip(1).collect();

        let (status, headers, bytes) =
            body(get(&segments, Some(query), &accept("application/json")).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CACHE_CONTROL], "public, immutable");
        assert!(headers[header::EXPIRES].to_str().unwrap().ends_with(" GMT"));
        assert_eq!(
            headers[header::ETAG],
            format!("\"{}\"", &query["hash=".len()..])
        );
        let apps: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(apps["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"].is_object());

        // Without a hash: no long-lived caching, but an ETag.
        let (status, headers, _) = body(get(&segments, None, &none).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.get(header::CACHE_CONTROL).is_none());
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, headers[header::ETAG].clone());
        assert_eq!(
            get(&segments, None, &again).unwrap().status(),
            StatusCode::NOT_MODIFIED
        );

        let (status, headers, _) = body(get(&segments, Some("hash=0123"), &none).unwrap()).await;
        assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
        assert_eq!(headers[header::LOCATION], url.as_str());

        let protobuf = accept("application/com.github.proto-openapi.spec.v3@v1.0+protobuf");
        assert_eq!(
            get(&segments, None, &protobuf).unwrap().status(),
            StatusCode::NOT_ACCEPTABLE
        );
        let missing = negotiated(
            &Method::GET,
            &["openapi", "v3", "apis", "batch", "v1"],
            None,
            &none,
        );
        assert!(matches!(missing, Some(Err(KubeError::NotFound(_)))));
    }
}
