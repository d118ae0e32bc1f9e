//! `skiff wait` and `skiff rollout status`: poll objects until they reach a state, with
//! kubectl's messages, or give up after a timeout.

use std::time::Duration;

use skiff_api::Kind;
use skiff_api::types::Deployment;
use skiff_client::{Client, ListParams};

use crate::target::Request;
use crate::verbs::{VerbError, deployment_name};

/// What `--for=` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Until {
    /// `condition=Ready` (or `condition=Ready=False`): the pod condition has that status.
    Condition {
        name: String,
        status: String,
    },
    Delete,
}

impl Until {
    pub fn parse(text: &str) -> Result<Until, VerbError> {
        if text == "delete" {
            return Ok(Until::Delete);
        }
        let Some(condition) = text.strip_prefix("condition=") else {
            return Err(VerbError::Usage(format!(
                "--for={text}: use --for=delete or --for=condition=NAME[=STATUS]"
            )));
        };
        let (name, status) = condition.split_once('=').unwrap_or((condition, "True"));
        if name.is_empty() {
            return Err(VerbError::Usage(
                "--for=condition= needs a condition name".into(),
            ));
        }
        Ok(Until::Condition {
            name: name.to_string(),
            status: status.to_string(),
        })
    }
}

/// Whether an object (as JSON; None: it is gone) meets `until`: a condition in its
/// `status.conditions` with that type and status (both compared without case, as kubectl
/// does), or being gone.
pub fn meets(object: Option<&serde_json::Value>, until: &Until) -> bool {
    match (until, object) {
        (Until::Delete, object) => object.is_none(),
        (Until::Condition { .. }, None) => false,
        (Until::Condition { name, status }, Some(object)) => object["status"]["conditions"]
            .as_array()
            .is_some_and(|conditions| {
                conditions.iter().any(|c| {
                    let text = |key: &str| c[key].as_str().unwrap_or_default().to_string();
                    text("type").eq_ignore_ascii_case(name)
                        && text("status").eq_ignore_ascii_case(status)
                })
            }),
    }
}

/// Which objects `skiff wait` waits for.
#[derive(Debug, Clone)]
pub struct WaitFor {
    pub requests: Vec<Request>,
    pub selector: Option<String>,
    pub all: bool,
}

/// `skiff wait --for=… TYPE/NAME… | TYPE NAME… | TYPE -l SEL | TYPE --all`: waits for each
/// object in turn within one `timeout`, printing kubectl's `pod/x condition met` for each.
/// The objects of -l and --all are those that exist when it starts; none is an error (but
/// for --for=delete, where an object already gone is simply met, silently, as in kubectl).
pub async fn wait(
    client: &Client,
    namespace: &str,
    what: &WaitFor,
    until: &Until,
    timeout: Duration,
) -> Result<String, VerbError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut targets: Vec<(Kind, String)> = Vec::new();
    for request in &what.requests {
        let listing = what.selector.is_some() || what.all;
        if listing != request.names.is_empty() {
            return Err(VerbError::Usage(
                "give names, or -l SELECTOR, or --all (exactly one of them)".into(),
            ));
        }
        if !listing {
            targets.extend(request.names.iter().map(|n| (request.kind, n.clone())));
            continue;
        }
        let mut params = if request.kind.is_namespaced() {
            ListParams::namespace(namespace)
        } else {
            ListParams::all_namespaces()
        };
        if let Some(selector) = &what.selector {
            params = params.labels(selector.clone());
        }
        let listed = client.list_objects(request.kind, &params).await?.items;
        targets.extend(
            listed
                .iter()
                .map(|o| (request.kind, o.metadata().name.clone())),
        );
    }
    if targets.is_empty() && *until != Until::Delete {
        return Err(VerbError::Usage("no matching resources found".into()));
    }
    let mut out = String::new();
    for (kind, name) in targets {
        let ns = if kind.is_namespaced() { namespace } else { "" };
        let mut first = true;
        loop {
            let object = match client.get_object(kind, ns, &name).await {
                Ok(object) => Some(object.to_value()),
                Err(e) if e.is_not_found() && *until == Until::Delete => None,
                Err(e) => return Err(e.into()),
            };
            if meets(object.as_ref(), until) {
                // kubectl is silent about an object that was already gone.
                if !(first && object.is_none()) {
                    out.push_str(&format!("{}/{name} condition met\n", kind.resource()));
                }
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                print!("{out}");
                return Err(VerbError::Timeout(format!("{}/{name}", kind.plural())));
            }
            first = false;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(out)
}

/// kubectl's rollout progress line for a deployment, and whether it is done.
pub fn rollout_message(d: &Deployment) -> (String, bool) {
    let name = &d.metadata.name;
    let status = d.status.clone().unwrap_or_default();
    let wanted = d.spec.replicas.unwrap_or(1);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let generation = d.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return (
            "Waiting for deployment spec update to be observed...\n".into(),
            false,
        );
    }
    if updated < wanted {
        return (
            format!(
                "Waiting for deployment \"{name}\" rollout to finish: {updated} out of {wanted} new replicas have been updated...\n"
            ),
            false,
        );
    }
    if replicas > updated {
        return (
            format!(
                "Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...\n",
                replicas - updated
            ),
            false,
        );
    }
    if available < updated {
        return (
            format!(
                "Waiting for deployment \"{name}\" rollout to finish: {available} of {updated} updated replicas are available...\n"
            ),
            false,
        );
    }
    (
        format!("deployment \"{name}\" successfully rolled out\n"),
        true,
    )
}

/// `skiff rollout status deploy/NAME`: prints each new progress line until done.
pub async fn rollout_status(
    client: &Client,
    namespace: &str,
    target: &str,
    timeout: Duration,
    out: &mut impl std::io::Write,
) -> Result<(), VerbError> {
    let name = deployment_name(target, "rollout status")?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let d = client.get::<Deployment>(namespace, name).await?;
        let (message, done) = rollout_message(&d);
        if message != last {
            let _ = out.write_all(message.as_bytes());
            let _ = out.flush();
            last = message;
        }
        if done {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(VerbError::Timeout(format!("deployments/{name}")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_for_arguments_parse_as_kubectl_does() {
        assert_eq!(Until::parse("delete").unwrap(), Until::Delete);
        assert_eq!(
            Until::parse("condition=Ready").unwrap(),
            Until::Condition {
                name: "Ready".into(),
                status: "True".into()
            }
        );
        assert_eq!(
            Until::parse("condition=Ready=False").unwrap(),
            Until::Condition {
                name: "Ready".into(),
                status: "False".into()
            }
        );
        assert!(Until::parse("ready").is_err());
    }

    #[test]
    fn conditions_are_met_by_type_and_status() {
        let available = serde_json::json!({"status": {"conditions": [
            {"type": "Available", "status": "True"}, {"type": "Progressing", "status": "False"}]}});
        let until = |text: &str| Until::parse(text).unwrap();
        assert!(meets(Some(&available), &until("condition=available")));
        assert!(meets(
            Some(&available),
            &until("condition=Progressing=false")
        ));
        assert!(!meets(Some(&available), &until("condition=Progressing")));
        assert!(!meets(Some(&available), &until("delete")));
        assert!(!meets(None, &until("condition=Available")));
        assert!(meets(None, &until("delete")));
        assert!(!meets(
            Some(&serde_json::json!({})),
            &until("condition=Ready")
        ));
    }

    #[test]
    fn rollout_messages_like_kubectl() {
        let deployment = |status: serde_json::Value| -> Deployment {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "web", "generation": 2},
                "spec": {"replicas": 3, "selector": {"matchLabels": {"a": "b"}},
                         "template": {"metadata": {"labels": {"a": "b"}},
                                      "spec": {"containers": [{"name": "c"}]}}},
                "status": status
            }))
            .unwrap()
        };
        let cases = [
            (
                serde_json::json!({"observedGeneration": 1}),
                "Waiting for deployment spec update to be observed...\n",
                false,
            ),
            (
                serde_json::json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1}),
                "Waiting for deployment \"web\" rollout to finish: 1 out of 3 new replicas have been updated...\n",
                false,
            ),
            (
                serde_json::json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3}),
                "Waiting for deployment \"web\" rollout to finish: 1 old replicas are pending termination...\n",
                false,
            ),
            (
                serde_json::json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
                "Waiting for deployment \"web\" rollout to finish: 2 of 3 updated replicas are available...\n",
                false,
            ),
            (
                serde_json::json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3}),
                "deployment \"web\" successfully rolled out\n",
                true,
            ),
        ];
        for (status, message, done) in cases {
            assert_eq!(
                rollout_message(&deployment(status)),
                (message.to_string(), done)
            );
        }
    }
}
