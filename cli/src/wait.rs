//! `skiff wait` and `skiff rollout status`: poll an object until it reaches a state, with
//! kubectl's messages, or give up after a timeout.

use std::time::Duration;

use skiff_api::Kind;
use skiff_api::types::{Deployment, Pod};
use skiff_client::Client;

use crate::verbs::{VerbError, deployment_name, parse_target};

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

/// `pod/NAME` (or `pods/NAME`, `po/NAME`) → NAME; other kinds are refused.
pub fn pod_target(target: &str) -> Result<&str, VerbError> {
    match parse_target(target) {
        Some((Kind::Pod, name)) if !name.is_empty() => Ok(name),
        _ => Err(VerbError::Usage(format!(
            "wait works on pods: name one as pod/NAME, not {target:?}"
        ))),
    }
}

/// Whether the pod meets `until` (None: the pod is gone).
pub fn pod_meets(pod: Option<&Pod>, until: &Until) -> bool {
    match (until, pod) {
        (Until::Delete, pod) => pod.is_none(),
        (Until::Condition { .. }, None) => false,
        (Until::Condition { name, status }, Some(pod)) => pod.status.as_ref().is_some_and(|s| {
            s.conditions.iter().any(|c| {
                c.type_.eq_ignore_ascii_case(name) && c.status.eq_ignore_ascii_case(status)
            })
        }),
    }
}

/// `skiff wait --for=… pod/NAME --timeout=…`.
pub async fn wait_pod(
    client: &Client,
    namespace: &str,
    name: &str,
    until: &Until,
    timeout: Duration,
) -> Result<String, VerbError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let pod = match client.get::<Pod>(namespace, name).await {
            Ok(pod) => Some(pod),
            Err(e) if e.is_not_found() => {
                if *until != Until::Delete {
                    let missing = format!("pods \"{name}\" not found");
                    return Err(skiff_client::Error::NotFound(missing).into());
                }
                None
            }
            Err(e) => return Err(e.into()),
        };
        if pod_meets(pod.as_ref(), until) {
            return Ok(match until {
                Until::Delete => format!("pod/{name} deleted\n"),
                Until::Condition { .. } => format!("pod/{name} condition met\n"),
            });
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(VerbError::Timeout(format!("pods/{name}")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
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
        assert_eq!(pod_target("pod/web").unwrap(), "web");
        assert!(pod_target("deploy/web").is_err());
        assert!(pod_target("pod/").is_err());
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
