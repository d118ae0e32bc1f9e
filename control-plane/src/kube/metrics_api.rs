//! `metrics.k8s.io/v1beta1`: NodeMetrics and PodMetrics (get and list), what metrics-server
//! serves for `kubectl top`. The figures are `skiff top`'s, from the same fan-out to the agents
//! ([`MetricsServer`]), with the same authorization: listing nodes, or listing pods in the
//! namespace asked about.
//!
//! The agents measure a pod's cgroup as a whole, so each PodMetrics has one container entry:
//! named after the pod's container when it has one, else `all-containers` (the sum).

use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use skiff_api::Kind;
use skiff_api::proto::{NodeMetrics, PodUsage, TopNodesRequest, TopPodsRequest};
use skiff_api::types::Pod;
use skiff_pki::Subject;

use super::KubeState;
use super::resources::Params;
use super::status::KubeError;
use crate::server::agent_proxy::AgentProxy;
use crate::server::top::MetricsServer;

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";
const GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";

/// What a metrics.k8s.io path names.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Nodes(Option<&'a str>),
    /// Pods of one namespace, or of every one (`None`).
    Pods(Option<&'a str>, Option<&'a str>),
}

/// The group as `/apis` lists it.
pub fn group() -> Value {
    let version = json!({ "groupVersion": GROUP_VERSION, "version": VERSION });
    json!({ "name": GROUP, "versions": [version.clone()], "preferredVersion": version })
}

/// `/apis` with this group added to `groups` (discovery's APIGroupList).
pub fn with_group(mut groups: Value) -> Value {
    if let Some(list) = groups["groups"].as_array_mut()
        && !list.iter().any(|g| g["name"] == GROUP)
    {
        list.push(group());
    }
    groups
}

/// `/apis/metrics.k8s.io/v1beta1`: the resources and their verbs.
pub fn resources() -> Value {
    let verbs = ["get", "list"];
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [
            { "name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics", "verbs": verbs },
            { "name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics", "verbs": verbs },
        ],
    })
}

fn parse<'a>(segments: &[&'a str]) -> Option<Target<'a>> {
    match segments {
        ["nodes"] => Some(Target::Nodes(None)),
        ["nodes", name] => Some(Target::Nodes(Some(name))),
        ["pods"] => Some(Target::Pods(None, None)),
        ["namespaces", ns, "pods"] => Some(Target::Pods(Some(ns), None)),
        ["namespaces", ns, "pods", name] => Some(Target::Pods(Some(ns), Some(name))),
        _ => None,
    }
}

fn ok_json(value: &Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// Serves a request under `/apis/metrics.k8s.io` (`segments` are the path's, from `apis`),
/// or `None` when the path is not this group's.
pub async fn serve(
    state: &KubeState,
    subject: &Subject,
    method: &Method,
    segments: &[&str],
    params: &Params,
) -> Option<Result<Response, KubeError>> {
    let rest = match segments {
        ["apis", GROUP, rest @ ..] => rest,
        _ => return None,
    };
    if *method != Method::GET {
        return Some(Err(KubeError::MethodNotAllowed(format!(
            "{method} is not allowed on {GROUP}: its resources are read only"
        ))));
    }
    let document = match rest {
        [] => {
            let mut group = group();
            group["kind"] = "APIGroup".into();
            group["apiVersion"] = "v1".into();
            return Some(Ok(ok_json(&group)));
        }
        [VERSION] => return Some(Ok(ok_json(&resources()))),
        [VERSION, rest @ ..] => match parse(rest) {
            Some(target) => metrics(state, subject, target, params).await,
            None => Err(not_found(&rest.join("/"))),
        },
        _ => Err(not_found(&rest.join("/"))),
    };
    Some(document.map(|value| ok_json(&value)))
}

fn not_found(path: &str) -> KubeError {
    KubeError::NotFound(format!(
        "the server could not find the requested resource ({GROUP}/{path})"
    ))
}

/// The fan-out `skiff top` uses, for this member.
fn metrics_server(state: &KubeState) -> MetricsServer {
    MetricsServer {
        node: state.objects.node.clone(),
        agents: AgentProxy {
            node: state.objects.node.clone(),
            gate: state.gate.clone(),
        },
    }
}

fn millicores(m: u64) -> String {
    format!("{m}m")
}

fn kibibytes(bytes: u64) -> String {
    format!("{}Ki", bytes / 1024)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn metrics(
    state: &KubeState,
    subject: &Subject,
    target: Target<'_>,
    params: &Params,
) -> Result<Value, KubeError> {
    let label_selector = params.get("labelSelector").cloned().unwrap_or_default();
    let server = metrics_server(state);
    match target {
        Target::Nodes(name) => {
            let request = TopNodesRequest { label_selector };
            let nodes = server.nodes_for(subject, &request).await?.nodes;
            // As metrics-server: a node its agent did not answer for has no metrics.
            let items: Vec<Value> = nodes
                .iter()
                .filter(|n| n.available && name.is_none_or(|name| n.name == name))
                .map(node_metrics)
                .collect();
            one_or_list(name, items, "NodeMetrics", "nodes")
        }
        Target::Pods(namespace, name) => {
            let request = TopPodsRequest {
                namespace: namespace.unwrap_or_default().to_string(),
                label_selector,
            };
            let pods = server.pods_for(subject, &request).await?.pods;
            let items: Vec<Value> = pods
                .iter()
                .filter(|p| name.is_none_or(|name| p.name == name))
                .map(|p| pod_metrics(state, p))
                .collect();
            one_or_list(name, items, "PodMetrics", "pods")
        }
    }
}

/// The list, or the one object `name` asks for (404 in Kubernetes' words when absent).
fn one_or_list(
    name: Option<&str>,
    mut items: Vec<Value>,
    kind: &str,
    plural: &str,
) -> Result<Value, KubeError> {
    match name {
        None => Ok(json!({
            "kind": format!("{kind}List"),
            "apiVersion": GROUP_VERSION,
            "metadata": {},
            "items": items,
        })),
        Some(name) => match items.pop() {
            Some(item) => Ok(item),
            None => Err(KubeError::from(tonic::Status::not_found(format!(
                "{plural}.{GROUP} \"{name}\" not found"
            )))),
        },
    }
}

fn node_metrics(node: &NodeMetrics) -> Value {
    json!({
        "kind": "NodeMetrics",
        "apiVersion": GROUP_VERSION,
        "metadata": { "name": node.name },
        "timestamp": now(),
        "usage": {
            "cpu": millicores(node.cpu_millicores),
            "memory": kibibytes(node.memory_bytes),
        },
    })
}

fn pod_metrics(state: &KubeState, pod: &PodUsage) -> Value {
    let (container, labels) = {
        let table = state.objects.node.shared.table.read().expect("table lock");
        let stored = table
            .get(Kind::Pod, &pod.namespace, &pod.name)
            .and_then(|o| serde_json::from_slice::<Pod>(&o.json).ok());
        let container = match stored.as_ref().map(|p| p.spec.containers.as_slice()) {
            Some([only]) => only.name.clone(),
            _ => "all-containers".to_string(),
        };
        let labels = stored.map(|p| p.metadata.labels).unwrap_or_default();
        (container, labels)
    };
    json!({
        "kind": "PodMetrics",
        "apiVersion": GROUP_VERSION,
        "metadata": { "name": pod.name, "namespace": pod.namespace, "labels": labels },
        "timestamp": now(),
        "containers": [{
            "name": container,
            "usage": {
                "cpu": millicores(pod.cpu_millicores),
                "memory": kibibytes(pod.memory_bytes),
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_nodes_or_pods_of_a_namespace_or_every_one() {
        assert_eq!(parse(&["nodes"]), Some(Target::Nodes(None)));
        assert_eq!(parse(&["nodes", "n1"]), Some(Target::Nodes(Some("n1"))));
        assert_eq!(parse(&["pods"]), Some(Target::Pods(None, None)));
        assert_eq!(
            parse(&["namespaces", "a", "pods", "p"]),
            Some(Target::Pods(Some("a"), Some("p")))
        );
        for bad in [&["pods", "p"][..], &["namespaces", "a"], &["deployments"]] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_group_is_added_to_apis_once() {
        let apis = json!({ "kind": "APIGroupList", "groups": [{ "name": "apps" }] });
        let once = with_group(apis);
        let twice = with_group(once.clone());
        assert_eq!(once, twice);
        assert_eq!(once["groups"][1]["preferredVersion"]["version"], "v1beta1");
    }
}
