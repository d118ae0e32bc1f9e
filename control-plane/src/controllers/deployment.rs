//! The deployment controller's decisions, as a pure function: a deployment and the pods it
//! owns in, pods to create and delete and the status to report out.
//!
//! Skiff has no ReplicaSets: a deployment owns its pods directly, and the label
//! `pod-template-hash` tells which template a pod was made from. A rolling update is the
//! same arithmetic Kubernetes does over its two ReplicaSets, done over those two groups.
//!
//! [`reconcile`] applies [`plan`] to every deployment in a snapshot and turns it into
//! writes: new pods (named and admitted here), deletions, status, events; pods whose
//! deployment is gone are deleted.
//!
//! Ownership follows the selector, as a ReplicaSet's does: a pod whose labels stop matching
//! its deployment's selector is released (its controller reference removed) and replaced,
//! and an orphan that matches is adopted. What a Kubernetes ReplicaSet selects is the
//! deployment's selector plus its `pod-template-hash`, so an orphan is adopted only when it
//! also carries the current template's hash (a bare `app=web` pod is left alone there too).

use std::collections::HashMap;
use std::time::Duration;

use skiff_api::meta::{OwnerReference, Time};
use skiff_api::types::{
    Deployment, DeploymentCondition, DeploymentStatus, IntOrString, Pod, PodTemplateSpec,
};
use skiff_api::{Kind, Object, Selector};

use super::snapshot::{PodFacts, Snapshot, Versioned};
use super::writes::{Writes, delete_pod, note, status_update, to_json};
use crate::admission::{Ids, admit};
use crate::error::ApiError;
use crate::pod_security::{self, NamespaceLevels};
use crate::raft_types::{Command, UpdatePart};

pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// Kubernetes' alphabet for generated names: no vowels, so no words, and no look-alikes.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// A short, stable name for a pod template (FNV-1a over its JSON).
pub fn template_hash(template: &PodTemplateSpec) -> String {
    let json = serde_json::to_vec(template).expect("templates serialize");
    let mut hash = skiff_api::hash::fnv1a_32(&json);
    let mut text = Vec::new();
    loop {
        text.push(SAFE_ALPHABET[(hash % SAFE_ALPHABET.len() as u32) as usize]);
        hash /= SAFE_ALPHABET.len() as u32;
        if hash == 0 {
            break;
        }
    }
    String::from_utf8(text).expect("ascii")
}

/// Five characters from the safe alphabet, chosen from `random`.
pub fn random_suffix(random: u128) -> String {
    let mut r = random;
    (0..5)
        .map(|_| {
            let c = SAFE_ALPHABET[(r % SAFE_ALPHABET.len() as u128) as usize] as char;
            r /= SAFE_ALPHABET.len() as u128;
            c
        })
        .collect()
}

/// `<deployment>-<hash>-<suffix>`, shortening the deployment part to stay a valid name.
pub fn pod_name(deployment: &str, hash: &str, suffix: &str) -> String {
    let room = 253 - hash.len() - suffix.len() - 2;
    let prefix: String = deployment.chars().take(room).collect();
    let prefix = prefix.trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}-{suffix}")
}

/// One pod owned by the deployment, reduced to what the decisions need.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnedPod {
    pub name: String,
    pub template_hash: String,
    /// Has a deletion timestamp: on its way out, no longer counted.
    pub terminating: bool,
    /// Succeeded or Failed: it will not run again and is replaced.
    pub finished: bool,
    pub bound: bool,
    pub ready: bool,
    /// Ready since (the Ready condition's last transition).
    pub ready_since: Option<Time>,
    pub created: Option<Time>,
}

impl OwnedPod {
    pub fn from_pod(pod: &Pod) -> OwnedPod {
        let status = pod.status.as_ref();
        let ready_condition = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
        let phase = status.and_then(|s| s.phase.as_deref());
        OwnedPod {
            name: pod.metadata.name.clone(),
            template_hash: pod
                .metadata
                .labels
                .get(TEMPLATE_HASH_LABEL)
                .cloned()
                .unwrap_or_default(),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            finished: matches!(phase, Some("Succeeded" | "Failed")),
            bound: pod.spec.node_name.as_deref().is_some_and(|n| !n.is_empty()),
            ready: ready_condition.is_some_and(|c| c.status == "True"),
            ready_since: ready_condition.and_then(|c| c.last_transition_time),
            created: pod.metadata.creation_timestamp,
        }
    }

    fn active(&self) -> bool {
        !self.terminating && !self.finished
    }

    fn available(&self, min_ready_seconds: i64, now: Time) -> bool {
        self.ready
            && (min_ready_seconds <= 0
                || self
                    .ready_since
                    .is_some_and(|t| t + chrono::Duration::seconds(min_ready_seconds) <= now))
    }
}

/// What the controller should do for one deployment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// How many pods to create from the current template.
    pub create: usize,
    /// Names of pods to delete (gracefully).
    pub delete: Vec<String>,
    /// The status to report (unchanged times are kept from the old status).
    pub status: DeploymentStatus,
    /// Look again after this long even if nothing changes (minReadySeconds running out).
    pub requeue_after: Option<Duration>,
}

/// Resolves a surge / unavailability setting against the replica count: percentages
/// round up for surge and down for unavailability, as in Kubernetes.
fn resolve(value: Option<&IntOrString>, replicas: usize, round_up: bool) -> usize {
    match value {
        None => {
            let quarter = replicas as f64 * 0.25;
            (if round_up {
                quarter.ceil()
            } else {
                quarter.floor()
            }) as usize
        }
        Some(IntOrString::Int(n)) => (*n).max(0) as usize,
        Some(IntOrString::String(s)) => {
            let percent: f64 = s.trim_end_matches('%').parse().unwrap_or(25.0);
            let exact = replicas as f64 * percent / 100.0;
            (if round_up {
                exact.ceil()
            } else {
                exact.floor()
            }) as usize
        }
    }
}

/// Deletion order among pods of one group: unscheduled, then not ready, then the newest
/// (as Kubernetes' ReplicaSet controller ranks them).
fn deletion_order(pods: &mut [&OwnedPod]) {
    pods.sort_by(|a, b| {
        a.bound
            .cmp(&b.bound)
            .then(a.ready.cmp(&b.ready))
            .then(b.created.cmp(&a.created))
            .then(a.name.cmp(&b.name))
    });
}

/// Decides one reconcile step for `deployment`, given every pod it owns.
pub fn plan(deployment: &Deployment, pods: &[OwnedPod], now: Time) -> Plan {
    let spec = &deployment.spec;
    let desired = spec.replicas.unwrap_or(1).max(0) as usize;
    let hash = template_hash(&spec.template);
    let min_ready = i64::from(spec.min_ready_seconds.unwrap_or(0));

    let mut delete: Vec<String> = pods
        .iter()
        .filter(|p| p.finished && !p.terminating)
        .map(|p| p.name.clone())
        .collect();
    let active: Vec<&OwnedPod> = pods.iter().filter(|p| p.active()).collect();
    let (mut new, mut old): (Vec<&OwnedPod>, Vec<&OwnedPod>) =
        active.iter().partition(|p| p.template_hash == hash);
    let available = |p: &&OwnedPod| p.available(min_ready, now);

    let strategy = spec.strategy.as_ref();
    let recreate = strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let paused = spec.paused.unwrap_or(false);
    let mut create = 0;

    if paused {
        // A paused rollout keeps both groups as they are.
    } else if recreate && !old.is_empty() {
        delete.extend(old.iter().map(|p| p.name.clone()));
    } else if recreate
        && pods
            .iter()
            .any(|p| p.terminating && p.template_hash != hash)
    {
        // Recreate: the new pods wait until the old ones are gone.
    } else if old.is_empty() {
        if new.len() < desired {
            create = desired - new.len();
        } else if new.len() > desired {
            deletion_order(&mut new);
            delete.extend(new[..new.len() - desired].iter().map(|p| p.name.clone()));
        }
    } else {
        let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
        let surge = resolve(rolling.and_then(|r| r.max_surge.as_ref()), desired, true);
        let mut unavailable = resolve(
            rolling.and_then(|r| r.max_unavailable.as_ref()),
            desired,
            false,
        );
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        let total = new.len() + old.len();
        // Scale the new group up within the surge.
        if total < desired + surge && new.len() < desired {
            create = (desired + surge - total).min(desired - new.len());
        }
        if new.len() > desired {
            deletion_order(&mut new);
            delete.extend(new[..new.len() - desired].iter().map(|p| p.name.clone()));
        }
        // Scale the old group down, never below the minimum available.
        let min_available = desired.saturating_sub(unavailable);
        let new_unavailable = new.iter().filter(|p| !available(p)).count();
        deletion_order(&mut old);
        let (old_available, old_unavailable): (Vec<&OwnedPod>, Vec<&OwnedPod>) =
            old.iter().partition(|p| available(p));
        // Old pods that are not available cost no availability: remove them first.
        let cleanup = total.saturating_sub(min_available + new_unavailable);
        let cleaned = old_unavailable.len().min(cleanup);
        delete.extend(old_unavailable[..cleaned].iter().map(|p| p.name.clone()));
        let available_now = active.iter().filter(|p| available(p)).count();
        let scale_down = available_now
            .saturating_sub(min_available)
            .min(old_available.len());
        delete.extend(old_available[..scale_down].iter().map(|p| p.name.clone()));
    }

    let status = status_of(deployment, &active, &hash, desired, min_ready, now);
    let requeue_after = (min_ready > 0)
        .then(|| {
            active
                .iter()
                .filter(|p| p.ready && !p.available(min_ready, now))
                .filter_map(|p| p.ready_since)
                .map(|t| t + chrono::Duration::seconds(min_ready) - now)
                .filter_map(|d| d.to_std().ok())
                .min()
        })
        .flatten();
    Plan {
        create,
        delete,
        status,
        requeue_after,
    }
}

fn status_of(
    deployment: &Deployment,
    active: &[&OwnedPod],
    hash: &str,
    desired: usize,
    min_ready: i64,
    now: Time,
) -> DeploymentStatus {
    let spec = &deployment.spec;
    let count = |f: &dyn Fn(&OwnedPod) -> bool| active.iter().filter(|p| f(p)).count() as i32;
    let updated = count(&|p| p.template_hash == hash);
    let ready = count(&|p| p.ready);
    let available = count(&|p| p.available(min_ready, now));
    let updated_available = count(&|p| p.template_hash == hash && p.available(min_ready, now));
    let replicas = active.len() as i32;
    let desired = desired as i32;
    let unavailable_allowed =
        if spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate") {
            desired
        } else {
            let rolling = spec
                .strategy
                .as_ref()
                .and_then(|s| s.rolling_update.as_ref());
            resolve(
                rolling.and_then(|r| r.max_unavailable.as_ref()),
                desired as usize,
                false,
            ) as i32
        };
    let name = &deployment.metadata.name;
    let has_minimum = available >= desired - unavailable_allowed;
    let (available_reason, available_message) = if has_minimum {
        (
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let complete = updated == desired && replicas == desired && updated_available == desired;
    let (progress_reason, progress_message) = if complete {
        (
            "NewPodsAvailable",
            format!("Deployment \"{name}\" has successfully progressed."),
        )
    } else {
        (
            "PodsUpdating",
            format!(
                "Deployment \"{name}\" is progressing: {updated_available} of {desired} updated pods available."
            ),
        )
    };
    let old = deployment.status.as_ref();
    let condition = |type_: &str, ok: bool, reason: &str, message: String| {
        let status = if ok { "True" } else { "False" };
        let previous = old.and_then(|s| s.conditions.iter().find(|c| c.type_ == type_));
        let unchanged = previous.is_some_and(|c| {
            c.status == status
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(&message)
        });
        DeploymentCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_update_time: if unchanged {
                previous.and_then(|c| c.last_update_time)
            } else {
                Some(now)
            },
            last_transition_time: match previous {
                Some(c) if c.status == status => c.last_transition_time,
                _ => Some(now),
            },
        }
    };
    DeploymentStatus {
        observed_generation: deployment.metadata.generation,
        replicas: Some(replicas),
        updated_replicas: Some(updated),
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        unavailable_replicas: Some((desired - available).max(0)),
        conditions: vec![
            condition(
                "Available",
                has_minimum,
                available_reason,
                available_message.into(),
            ),
            condition("Progressing", true, progress_reason, progress_message),
        ],
    }
}

/// What the deployment controller decided in one pass.
#[derive(Debug, Default)]
pub struct DeploymentPass {
    pub writes: Writes,
    /// Look again after this long even if nothing changes.
    pub requeue_after: Option<Duration>,
}

/// Creates, deletes and reports on each deployment's pods; deletes pods whose deployment
/// is gone. New pods get their names and uids from `ids`.
pub fn reconcile(
    snapshot: Snapshot,
    wall: Time,
    ids: &mut dyn Ids,
    levels: &NamespaceLevels,
) -> DeploymentPass {
    let mut out = DeploymentPass::default();
    let writes = &mut out.writes;
    let mut owned: HashMap<&str, Vec<&Versioned<PodFacts>>> = HashMap::new();
    // Active pods no controller owns, by namespace: candidates for adoption.
    let mut orphans: HashMap<&str, Vec<&Versioned<PodFacts>>> = HashMap::new();
    for entry in snapshot.pods {
        let facts = &entry.object;
        if let Some(uid) = &facts.deployment {
            owned.entry(uid.as_str()).or_default().push(entry);
        } else if facts.owned.active() && !facts.controlled {
            orphans.entry(facts.namespace()).or_default().push(entry);
        }
    }
    for entry in snapshot.deployments {
        let d = &*entry.object;
        let uid = d.metadata.uid.clone().unwrap_or_default();
        let mut mine = owned.remove(uid.as_str()).unwrap_or_default();
        // Validation refuses a selector that does not parse; should one be stored anyway,
        // ownership stays as it is rather than every pod being released.
        if let Ok(selector) = Selector::from_label_selector(&d.spec.selector) {
            let namespace = d.metadata.namespace.as_deref().unwrap_or_default();
            let candidates = orphans.remove(namespace).unwrap_or_default();
            let left = claim(d, &uid, &selector, &mut mine, candidates, writes);
            orphans.insert(namespace, left);
        }
        let views: Vec<OwnedPod> = mine.iter().map(|f| f.object.owned.clone()).collect();
        let plan = plan(d, &views, wall);
        if let Some(after) = plan.requeue_after {
            out.requeue_after = Some(out.requeue_after.map_or(after, |r| r.min(after)));
        }
        if plan.create > 0 {
            let hash = template_hash(&d.spec.template);
            let mut created = 0;
            for _ in 0..plan.create {
                match new_pod(d, &uid, &hash, ids, wall, levels) {
                    Ok(object) => {
                        created += 1;
                        writes.commands.push(Command::Create {
                            kind: Kind::Pod,
                            object: object.to_json(),
                        });
                    }
                    Err(e) => {
                        // The next would fail the same way: one event says it.
                        writes.notes.push(note(
                            Kind::Deployment,
                            &d.metadata,
                            "Warning",
                            "FailedCreate",
                            format!("Error creating pod: {e}"),
                        ));
                        break;
                    }
                }
            }
            if created > 0 {
                writes.notes.push(note(
                    Kind::Deployment,
                    &d.metadata,
                    "Normal",
                    "ScalingUp",
                    format!(
                        "Created {created} pod(s) with template hash {hash} ({} of {} desired running)",
                        views.iter().filter(|p| p.active()).count() + created,
                        d.spec.replicas.unwrap_or(1)
                    ),
                ));
            }
        }
        if !plan.delete.is_empty() {
            for name in &plan.delete {
                if let Some(facts) = mine.iter().find(|f| f.object.owned.name == *name) {
                    writes
                        .commands
                        .push(delete_pod(&facts.object.pod, false, wall));
                }
            }
            writes.notes.push(note(
                Kind::Deployment,
                &d.metadata,
                "Normal",
                "ScalingDown",
                format!("Deleted pod(s) {}", plan.delete.join(", ")),
            ));
        }
        if d.status.as_ref() != Some(&plan.status) {
            let mut updated = d.clone();
            updated.status = Some(plan.status);
            writes
                .commands
                .push(status_update(Kind::Deployment, &updated, entry.version));
        }
    }
    // Whatever is left belongs to deployments that no longer exist.
    for entry in owned.into_values().flatten() {
        if !entry.object.owned.terminating {
            writes
                .commands
                .push(delete_pod(&entry.object.pod, false, wall));
        }
    }
    out
}

/// Makes `d`'s pods the ones its selector matches, as a ReplicaSet claims its pods: an
/// owned pod that no longer matches is released (unless it is on its way out anyway) and
/// leaves `mine`; an orphan that matches and carries the current template's hash is
/// adopted and joins `mine`. Each change is conditional on the version the pod was read
/// at, so a pod changed meanwhile is looked at again next pass. Returns the orphans left.
fn claim<'a>(
    d: &Deployment,
    uid: &str,
    selector: &Selector,
    mine: &mut Vec<&'a Versioned<PodFacts>>,
    orphans: Vec<&'a Versioned<PodFacts>>,
    writes: &mut Writes,
) -> Vec<&'a Versioned<PodFacts>> {
    mine.retain(|entry| {
        if entry.object.owned.terminating || selector.matches(entry.object.labels()) {
            return true;
        }
        let mut released = Pod::clone(&entry.object.pod);
        released.metadata.owner_references.retain(|o| o.uid != uid);
        writes.commands.push(owner_update(&released, entry.version));
        false
    });
    let hash = template_hash(&d.spec.template);
    let (adopted, left): (Vec<_>, Vec<_>) = orphans.into_iter().partition(|entry| {
        let labels = entry.object.labels();
        selector.matches(labels) && labels.get(TEMPLATE_HASH_LABEL) == Some(&hash)
    });
    for entry in adopted {
        let mut pod = Pod::clone(&entry.object.pod);
        pod.metadata.owner_references.push(controller_ref(d, uid));
        writes.commands.push(owner_update(&pod, entry.version));
        mine.push(entry);
    }
    left
}

/// Writes a pod's metadata with changed owner references; refused if the pod changed since
/// `version`.
fn owner_update(pod: &Pod, version: u64) -> Command {
    Command::Update {
        kind: Kind::Pod,
        object: to_json(pod),
        part: UpdatePart::Main,
        expected_version: Some(version),
    }
}

/// The reference that makes deployment `d` (uid `uid`) a pod's controller.
fn controller_ref(d: &Deployment, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: d.metadata.name.clone(),
        uid: uid.to_string(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A new pod from the deployment's template, admitted like a client's create (Pod Security
/// included: a template the namespace's level refuses makes no pods).
fn new_pod(
    d: &Deployment,
    uid: &str,
    hash: &str,
    ids: &mut dyn Ids,
    now: Time,
    levels: &NamespaceLevels,
) -> Result<Object, ApiError> {
    let template = &d.spec.template;
    let mut meta = template.metadata.clone();
    meta.labels
        .insert(TEMPLATE_HASH_LABEL.to_string(), hash.to_string());
    meta.name = pod_name(&d.metadata.name, hash, &random_suffix(ids.random()));
    meta.generate_name = None;
    meta.namespace = d.metadata.namespace.clone();
    meta.owner_references = vec![controller_ref(d, uid)];
    let mut object = Object::Pod(Pod {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        metadata: meta,
        spec: template.spec.clone(),
        status: None,
    });
    admit(&mut object, ids, now)?;
    if let Object::Pod(pod) = &object {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        pod_security::enforce(levels.level(namespace), pod)?;
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn deployment(replicas: i32, image: &str, strategy: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "d-1", "generation": 2},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": image}]}
                },
                "strategy": strategy
            }
        }))
        .unwrap()
    }

    fn rolling(surge: serde_json::Value, unavailable: serde_json::Value) -> serde_json::Value {
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
    }

    fn pod(name: &str, hash: &str, ready: bool) -> OwnedPod {
        OwnedPod {
            name: name.into(),
            template_hash: hash.into(),
            bound: true,
            ready,
            ..OwnedPod::default()
        }
    }

    fn now() -> Time {
        "2026-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn scales_up_from_nothing() {
        let d = deployment(3, "v1", rolling(json!("25%"), json!("25%")));
        let plan = plan(&d, &[], now());
        assert_eq!(plan.create, 3);
        assert!(plan.delete.is_empty());
        let status = plan.status;
        assert_eq!(status.replicas, Some(0));
        assert_eq!(status.unavailable_replicas, Some(3));
        assert_eq!(status.observed_generation, Some(2));
        assert_eq!(status.conditions[0].status, "False");
    }

    #[test]
    fn scales_down_unready_and_unbound_first() {
        let d = deployment(2, "v1", rolling(json!("25%"), json!("25%")));
        let h = template_hash(&d.spec.template);
        let mut unbound = pod("unbound", &h, false);
        unbound.bound = false;
        let pods = [
            pod("ready-1", &h, true),
            pod("not-ready", &h, false),
            unbound,
            pod("ready-2", &h, true),
        ];
        let plan = plan(&d, &pods, now());
        assert_eq!(plan.create, 0);
        assert_eq!(plan.delete, vec!["unbound", "not-ready"]);
    }

    #[test]
    fn replaces_failed_and_ignores_terminating() {
        let d = deployment(3, "v1", rolling(json!("25%"), json!("25%")));
        let h = template_hash(&d.spec.template);
        let mut failed = pod("failed", &h, false);
        failed.finished = true;
        let mut going = pod("going", &h, true);
        going.terminating = true;
        let pods = [pod("a", &h, true), failed, going];
        let plan = plan(&d, &pods, now());
        // The failed pod is deleted and, with the terminating one, replaced.
        assert_eq!(plan.delete, vec!["failed"]);
        assert_eq!(plan.create, 2);
        assert_eq!(plan.status.replicas, Some(1));
    }

    #[test]
    fn rolling_update_steps_respect_surge_and_unavailable() {
        // 4 replicas, maxSurge 1, maxUnavailable 0: one new pod at a time, an old pod
        // goes only when a new one is ready.
        let d = deployment(4, "v2", rolling(json!(1), json!(0)));
        let h = template_hash(&d.spec.template);
        let old: Vec<OwnedPod> = (0..4)
            .map(|i| pod(&format!("old-{i}"), "v1hash", true))
            .collect();

        let step = plan(&d, &old, now());
        assert_eq!((step.create, step.delete.len()), (1, 0));

        let mut pods = old.clone();
        pods.push(pod("new-0", &h, false));
        let step = plan(&d, &pods, now());
        assert_eq!(
            (step.create, step.delete.len()),
            (0, 0),
            "wait for the new pod"
        );

        pods[4].ready = true;
        let step = plan(&d, &pods, now());
        assert_eq!(step.create, 0);
        assert_eq!(step.delete.len(), 1);
        assert!(step.delete[0].starts_with("old-"));
        assert_eq!(step.status.updated_replicas, Some(1));
        assert_eq!(step.status.replicas, Some(5));

        // One old pod gone: room to surge again.
        pods.retain(|p| p.name != step.delete[0]);
        let step = plan(&d, &pods, now());
        assert_eq!((step.create, step.delete.len()), (1, 0));
    }

    #[test]
    fn rolling_update_with_unavailability_budget() {
        // 4 replicas, maxSurge 0, maxUnavailable 2: two old pods go at once, two new come.
        let d = deployment(4, "v2", rolling(json!(0), json!(2)));
        let h = template_hash(&d.spec.template);
        let mut pods: Vec<OwnedPod> = (0..4)
            .map(|i| pod(&format!("old-{i}"), "v1hash", true))
            .collect();
        let step = plan(&d, &pods, now());
        assert_eq!((step.create, step.delete.len()), (0, 2));
        pods.retain(|p| !step.delete.contains(&p.name));
        let step = plan(&d, &pods, now());
        assert_eq!((step.create, step.delete.len()), (2, 0));
        pods.push(pod("new-0", &h, false));
        pods.push(pod("new-1", &h, false));
        let step = plan(&d, &pods, now());
        assert_eq!(
            (step.create, step.delete.len()),
            (0, 0),
            "two unavailable already"
        );
        for p in pods.iter_mut().filter(|p| p.name.starts_with("new")) {
            p.ready = true;
        }
        let step = plan(&d, &pods, now());
        assert_eq!((step.create, step.delete.len()), (0, 2));
    }

    #[test]
    fn unready_old_pods_go_first_during_rollout() {
        let d = deployment(3, "v2", rolling(json!(1), json!(0)));
        let pods = [
            pod("old-ready-0", "v1hash", true),
            pod("old-ready-1", "v1hash", true),
            pod("old-broken", "v1hash", false),
        ];
        // The surge pod is not available yet, so nothing may go.
        let step = plan(&d, &pods, now());
        assert_eq!((step.create, step.delete.len()), (1, 0));
        // Once it is, the broken old pod goes before any ready one.
        let mut pods = pods.to_vec();
        pods.push(pod("new-0", &template_hash(&d.spec.template), true));
        let step = plan(&d, &pods, now());
        assert_eq!(step.create, 0);
        assert_eq!(step.delete, vec!["old-broken"]);
    }

    #[test]
    fn recreate_removes_old_before_creating() {
        let d = deployment(2, "v2", json!({"type": "Recreate"}));
        let old = [pod("old-0", "v1hash", true), pod("old-1", "v1hash", true)];
        let step = plan(&d, &old, now());
        assert_eq!((step.create, step.delete.len()), (0, 2));
        let mut going = old.clone();
        for p in &mut going {
            p.terminating = true;
        }
        let step = plan(&d, &going, now());
        assert_eq!(
            (step.create, step.delete.len()),
            (0, 0),
            "old pods still stopping"
        );
        let step = plan(&d, &[], now());
        assert_eq!(step.create, 2);
    }

    #[test]
    fn status_when_complete() {
        let mut d = deployment(2, "v1", rolling(json!("25%"), json!("25%")));
        let h = template_hash(&d.spec.template);
        let pods = [pod("a", &h, true), pod("b", &h, true)];
        let first = plan(&d, &pods, now());
        assert_eq!(first.create + first.delete.len(), 0);
        let s = &first.status;
        assert_eq!(
            (
                s.replicas,
                s.updated_replicas,
                s.ready_replicas,
                s.available_replicas
            ),
            (Some(2), Some(2), Some(2), Some(2))
        );
        assert_eq!(
            s.conditions[0].reason.as_deref(),
            Some("MinimumReplicasAvailable")
        );
        assert_eq!(s.conditions[1].reason.as_deref(), Some("NewPodsAvailable"));
        // Planning again later with the same pods reports the same status, times included.
        d.status = Some(first.status.clone());
        let later = plan(&d, &pods, now() + chrono::Duration::seconds(60));
        assert_eq!(later.status, first.status);
    }

    #[test]
    fn min_ready_seconds_delays_availability() {
        let mut d = deployment(1, "v1", rolling(json!("25%"), json!("25%")));
        d.spec.min_ready_seconds = Some(10);
        let h = template_hash(&d.spec.template);
        let mut p = pod("a", &h, true);
        p.ready_since = Some(now() - chrono::Duration::seconds(4));
        let step = plan(&d, &[p], now());
        assert_eq!(step.status.available_replicas, Some(0));
        assert_eq!(step.requeue_after, Some(Duration::from_secs(6)));
    }

    #[test]
    fn names_and_hashes() {
        let d1 = deployment(1, "v1", json!(null));
        let d2 = deployment(1, "v2", json!(null));
        let (h1, h2) = (
            template_hash(&d1.spec.template),
            template_hash(&d2.spec.template),
        );
        assert_ne!(h1, h2);
        assert_eq!(h1, template_hash(&d1.spec.template));
        assert!(h1.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        let suffix = random_suffix(123_456_789);
        assert_eq!(suffix.len(), 5);
        assert_eq!(pod_name("web", &h1, &suffix), format!("web-{h1}-{suffix}"));
        let long = "a".repeat(300);
        let name = pod_name(&long, &h1, &suffix);
        assert!(name.len() <= 253);
        assert_eq!(skiff_api::names::is_dns1123_subdomain(&name), Ok(()));
    }
}

/// [`reconcile`]: pods named and admitted, deletions, status, events, orphans.
#[cfg(test)]
mod reconcile_tests {
    use serde_json::json;

    use super::*;
    use crate::admission::CountingIds;
    use crate::controllers::fixtures::*;
    use crate::controllers::snapshot::Versioned;
    use crate::raft_types::UpdatePart;

    fn run(deployments: &[Versioned<Deployment>], pods: &[Versioned<PodFacts>]) -> Writes {
        run_in(deployments, pods, &NamespaceLevels::default())
    }

    fn run_in(
        deployments: &[Versioned<Deployment>],
        pods: &[Versioned<PodFacts>],
        levels: &NamespaceLevels,
    ) -> Writes {
        let snapshot = Snapshot {
            nodes: &[],
            pods,
            deployments,
        };
        reconcile(snapshot, wall(0), &mut CountingIds::default(), levels).writes
    }

    /// A ready pod of `web` from its current template.
    fn current_pod(name: &str, d: &Deployment) -> Versioned<PodFacts> {
        let hash = template_hash(&d.spec.template);
        let mut patch = owned_by("d-web");
        merge(
            &mut patch,
            json!({
                "metadata": {"labels": {"app": "web", TEMPLATE_HASH_LABEL: hash}},
                "spec": {"nodeName": "n1"},
                "status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": wall(-50)}
                ]},
            }),
        );
        pod(name, 8, patch)
    }

    #[test]
    fn missing_replicas_are_created_as_pods_named_after_the_deployment_and_template() {
        let d = deployment(2, json!({}));
        let hash = template_hash(&d.object.spec.template);
        let writes = run(&[d], &[]);
        let created = creates(&writes);
        // The ids count up: random bits 0, uid 2, random bits 2, uid 4.
        let names: Vec<_> = created
            .iter()
            .map(|p| p["metadata"]["name"].clone())
            .collect();
        assert_eq!(
            names,
            [
                json!(format!("web-{hash}-{}", random_suffix(0))),
                json!(format!("web-{hash}-{}", random_suffix(2))),
            ]
        );
        let first = &created[0];
        assert_eq!(first["metadata"]["uid"], "uid-2");
        assert_eq!(first["metadata"]["namespace"], "default");
        assert_eq!(first["metadata"]["creationTimestamp"], json!(wall(0)));
        assert_eq!(
            first["metadata"]["labels"],
            json!({"app": "web", TEMPLATE_HASH_LABEL: hash})
        );
        assert_eq!(
            first["metadata"]["ownerReferences"],
            json!([{
                "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d-web",
                "controller": true, "blockOwnerDeletion": true,
            }])
        );
        assert_eq!(
            notes(&writes),
            [(
                "web".into(),
                "Normal",
                "ScalingUp",
                format!("Created 2 pod(s) with template hash {hash} (2 of 2 desired running)")
            )]
        );
    }

    #[test]
    fn a_template_admission_refuses_is_reported_once_as_failed_create() {
        let d = deployment(
            3,
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "Not_Valid", "image": "busybox"}
            ]}}}}),
        );
        let writes = run(&[d], &[]);
        assert!(creates(&writes).is_empty());
        let noted = notes(&writes);
        assert_eq!(noted.len(), 1);
        let (name, type_, reason, message) = &noted[0];
        assert_eq!(
            (name.as_str(), *type_, *reason),
            ("web", "Warning", "FailedCreate")
        );
        assert!(message.starts_with("Error creating pod: "), "{message}");
        assert!(message.contains("Not_Valid"), "{message}");
    }

    #[test]
    fn a_template_its_namespace_level_refuses_makes_no_pods_and_says_why_once() {
        let host_path = || {
            deployment(
                2,
                json!({"spec": {"template": {"spec": {
                    "containers": [{"name": "c", "image": "busybox"}],
                    "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}}}}),
            )
        };
        let writes = run(&[host_path()], &[]);
        assert!(creates(&writes).is_empty());
        let noted = notes(&writes);
        assert_eq!(noted.len(), 1, "{noted:?}");
        let hash = template_hash(&host_path().object.spec.template);
        assert_eq!(
            noted[0].3,
            format!(
                "Error creating pod: pods \"web-{hash}-{}\" is forbidden: violates PodSecurity \"baseline:latest\": hostPath volumes (volume \"root\")",
                random_suffix(0)
            )
        );
        let privileged: NamespaceLevels = [(
            "default".to_string(),
            skiff_api::pod_security::Level::Privileged,
        )]
        .into_iter()
        .collect();
        let writes = run_in(&[host_path()], &[], &privileged);
        assert_eq!(creates(&writes).len(), 2);
    }

    #[test]
    fn surplus_pods_are_deleted_gracefully_with_a_scaling_down_event() {
        let d = deployment(1, json!({}));
        let pods = [
            current_pod("web-a", &d.object),
            current_pod("web-b", &d.object),
        ];
        let writes = run(&[d], &pods);
        let deleted = deletes(&writes);
        assert_eq!(deleted.len(), 1);
        assert!(!deleted[0].1, "graceful");
        assert_eq!(
            notes(&writes),
            [(
                "web".into(),
                "Normal",
                "ScalingDown",
                format!("Deleted pod(s) {}", deleted[0].0)
            )]
        );
    }

    #[test]
    fn pods_whose_deployment_is_gone_are_deleted() {
        let orphan = pod("orphan", 8, owned_by("gone"));
        let mut leaving = owned_by("gone");
        merge(
            &mut leaving,
            json!({"metadata": {"deletionTimestamp": wall(-1)}}),
        );
        let leaving = pod("leaving", 9, leaving);
        let bare = pod("bare", 10, json!({}));
        let writes = run(&[], &[orphan, leaving, bare]);
        // Graceful, once: one already on its way out is left to finish.
        assert_eq!(deletes(&writes), [("orphan".to_string(), false)]);
        assert!(writes.notes.is_empty());
    }

    /// The pod updates written: (name, owner uids, expected version).
    fn owner_changes(writes: &Writes) -> Vec<(String, Vec<String>, Option<u64>)> {
        updates(writes, Kind::Pod)
            .into_iter()
            .map(|(pod, part, version)| {
                assert_eq!(part, UpdatePart::Main);
                let owners = pod["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|o| o["uid"].as_str().unwrap().to_string())
                    .collect();
                (
                    pod["metadata"]["name"].as_str().unwrap().to_string(),
                    owners,
                    version,
                )
            })
            .collect()
    }

    #[test]
    fn a_pod_relabelled_out_of_the_selector_is_released_and_replaced() {
        let d = deployment(2, json!({}));
        let mut relabelled = current_pod("web-b", &d.object);
        let mut pod = relabelled.object.pod.clone();
        pod.metadata.labels.insert("app".into(), "debug".into());
        relabelled = Versioned::new(9, PodFacts::new(pod.clone()));
        // One on its way out is left to finish, owned, whatever its labels.
        pod.metadata.name = "web-c".into();
        pod.metadata.deletion_timestamp = Some(wall(-1));
        let leaving = Versioned::new(10, PodFacts::new(pod));
        let pods = [current_pod("web-a", &d.object), relabelled, leaving];
        let writes = run(&[d], &pods);
        assert_eq!(owner_changes(&writes), [("web-b".into(), vec![], Some(9))]);
        assert_eq!(creates(&writes).len(), 1, "a replacement");
        assert!(deletes(&writes).is_empty());
    }

    #[test]
    fn an_orphan_of_the_current_template_is_adopted_and_the_surplus_scaled_down() {
        let d = deployment(1, json!({}));
        let mut orphan = current_pod("web-b", &d.object).object.pod.clone();
        orphan.metadata.owner_references.clear();
        let pods = [
            current_pod("web-a", &d.object),
            Versioned::new(9, PodFacts::new(orphan)),
        ];
        let writes = run(&[d], &pods);
        assert_eq!(
            owner_changes(&writes),
            [("web-b".into(), vec!["d-web".into()], Some(9))]
        );
        assert!(creates(&writes).is_empty());
        assert_eq!(deletes(&writes).len(), 1, "two pods for one replica");
    }

    #[test]
    fn orphans_without_the_template_hash_or_elsewhere_or_controlled_are_left_alone() {
        let d = deployment(1, json!({}));
        let hash = template_hash(&d.object.spec.template);
        let bare = pod("bare", 8, json!({"metadata": {"labels": {"app": "web"}}}));
        let elsewhere = pod(
            "elsewhere",
            9,
            json!({"metadata": {"namespace": "other", "labels": {"app": "web", TEMPLATE_HASH_LABEL: hash}}}),
        );
        let mut controlled = owned_by("d-other");
        merge(
            &mut controlled,
            json!({"metadata": {"labels": {"app": "web", TEMPLATE_HASH_LABEL: hash}}}),
        );
        let controlled = pod("controlled", 10, controlled);
        let mut finished = current_pod("finished", &d.object).object.pod.clone();
        finished.metadata.owner_references.clear();
        finished.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let finished = Versioned::new(11, PodFacts::new(finished));
        let writes = run(&[d], &[bare, elsewhere, controlled, finished]);
        assert!(owner_changes(&writes).is_empty());
        assert_eq!(creates(&writes).len(), 1);
    }

    #[test]
    fn an_orphan_two_deployments_select_is_adopted_by_one() {
        let first = deployment(1, json!({}));
        let mut second = (*first.object).clone();
        second.metadata.name = "web2".into();
        second.metadata.uid = Some("d-web2".into());
        let second = Versioned::new(4, second);
        let mut orphan = current_pod("web-x", &first.object).object.pod.clone();
        orphan.metadata.owner_references.clear();
        let writes = run(
            &[first, second],
            &[Versioned::new(9, PodFacts::new(orphan))],
        );
        assert_eq!(
            owner_changes(&writes),
            [("web-x".into(), vec!["d-web".into()], Some(9))]
        );
        assert_eq!(creates(&writes).len(), 1, "the second makes its own");
    }

    #[test]
    fn the_status_is_written_on_change_only() {
        let d = deployment(1, json!({}));
        let pods = [current_pod("web-a", &d.object)];
        let writes = run(std::slice::from_ref(&d), &pods);
        let written = updates(&writes, Kind::Deployment);
        assert_eq!(written.len(), 1);
        let (status, part, version) = &written[0];
        assert_eq!((*part, *version), (UpdatePart::Status, Some(3)));
        assert_eq!(status["status"]["availableReplicas"], 1);
        assert_eq!(
            condition(status, "Progressing")["message"],
            "Deployment \"web\" has successfully progressed."
        );

        let mut seen = (*d.object).clone();
        seen.status = serde_json::from_value(status["status"].clone()).unwrap();
        let again = run(&[Versioned::new(4, seen)], &pods);
        assert!(again.commands.is_empty(), "{:?}", again.commands);
    }
}
