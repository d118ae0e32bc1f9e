//! What the agent's API needs to find a pod's pieces: its sandbox, each container's running
//! instance and the log files of its attempts. The pod workers keep it current.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerEntry {
    /// The running (or created) instance's id.
    pub current: Option<String>,
    /// Log files of the attempts so far, oldest first.
    pub logs: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodEntry {
    pub uid: String,
    pub sandbox_id: String,
    /// In the pod's spec order.
    pub containers: BTreeMap<String, ContainerEntry>,
    pub container_order: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LookupError {
    #[error("pod {namespace}/{name} is not running on this node")]
    NoPod { namespace: String, name: String },
    #[error("a container name must be specified for pod {pod}, choose one of: [{choices}]")]
    Ambiguous { pod: String, choices: String },
    #[error("container {container} is not valid for pod {pod}")]
    NoContainer { pod: String, container: String },
}

#[derive(Default)]
pub struct PodIndex {
    pods: Mutex<HashMap<(String, String), PodEntry>>,
}

impl PodIndex {
    pub fn update(&self, namespace: &str, name: &str, change: impl FnOnce(&mut PodEntry)) {
        let mut pods = self.pods.lock().expect("pod_index lock");
        change(
            pods.entry((namespace.to_string(), name.to_string()))
                .or_default(),
        );
    }

    /// Forgets a pod, unless a newer pod of the same name took its place.
    pub fn remove(&self, namespace: &str, name: &str, uid: &str) {
        let mut pods = self.pods.lock().expect("pod_index lock");
        let key = (namespace.to_string(), name.to_string());
        if pods.get(&key).is_some_and(|p| p.uid == uid) {
            pods.remove(&key);
        }
    }

    pub fn pod(&self, namespace: &str, name: &str) -> Result<PodEntry, LookupError> {
        self.pods
            .lock()
            .expect("pod_index lock")
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| LookupError::NoPod {
                namespace: namespace.into(),
                name: name.into(),
            })
    }

    /// Every pod's current container instances, by namespace and name.
    pub fn current_containers(&self) -> Vec<((String, String), Vec<String>)> {
        self.pods
            .lock()
            .expect("pod_index lock")
            .iter()
            .map(|(key, pod)| {
                let ids = pod
                    .containers
                    .values()
                    .filter_map(|c| c.current.clone())
                    .collect();
                (key.clone(), ids)
            })
            .collect()
    }

    /// The named container, or the pod's only one when `container` is empty.
    pub fn container(
        &self,
        namespace: &str,
        name: &str,
        container: &str,
    ) -> Result<(PodEntry, String, ContainerEntry), LookupError> {
        let pod = self.pod(namespace, name)?;
        let chosen = if container.is_empty() {
            match pod.container_order.as_slice() {
                [only] => only.clone(),
                many => {
                    return Err(LookupError::Ambiguous {
                        pod: name.into(),
                        choices: many.join(" "),
                    });
                }
            }
        } else {
            container.to_string()
        };
        let entry =
            pod.containers
                .get(&chosen)
                .cloned()
                .ok_or_else(|| LookupError::NoContainer {
                    pod: name.into(),
                    container: chosen.clone(),
                })?;
        Ok((pod, chosen, entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_index_finds_containers_and_their_logs() {
        let r = PodIndex::default();
        r.update("default", "web", |p| {
            p.uid = "u1".into();
            p.container_order = vec!["a".into(), "b".into()];
            p.containers.insert("a".into(), ContainerEntry::default());
            p.containers.insert("b".into(), ContainerEntry::default());
        });
        assert!(matches!(
            r.container("default", "web", ""),
            Err(LookupError::Ambiguous { .. })
        ));
        assert_eq!(
            r.container("default", "web", "").unwrap_err().to_string(),
            "a container name must be specified for pod web, choose one of: [a b]"
        );
        assert!(r.container("default", "web", "b").is_ok());
        assert!(matches!(
            r.container("default", "web", "c"),
            Err(LookupError::NoContainer { .. })
        ));
        assert!(matches!(
            r.pod("default", "nope"),
            Err(LookupError::NoPod { .. })
        ));
        r.remove("default", "web", "other-uid");
        assert!(r.pod("default", "web").is_ok(), "a newer pod is kept");
        r.remove("default", "web", "u1");
        assert!(r.pod("default", "web").is_err());
    }
}
