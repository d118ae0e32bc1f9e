//! The object types, shaped like their Kubernetes counterparts so manifests carry over.
//!
//! Every struct rejects unknown fields, so a typo in a manifest is an error that names the
//! field instead of being silently dropped.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::meta::{LabelSelector, ObjectMeta, Time, TimeSchema, time_format};

type Map = BTreeMap<String, String>;

mod quantity;

pub use quantity::{Quantity, QuantityError};

/// Quantities are strings on the wire (`#[serde(transparent)]` over `String`; a bare YAML
/// number is rejected), so their schema is a string, inlined: explain shows `<string>`.
impl JsonSchema for Quantity {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Quantity".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": "quantity",
            "description": "A Kubernetes resource quantity: a decimal number with an optional suffix, as a string. CPU is in cores (\"500m\" is half a core, \"2\" two cores); memory and storage in bytes, with binary (Ki, Mi, Gi, Ti) or decimal (k, M, G, T) suffixes (\"128Mi\", \"1G\").",
        })
    }
}

/// An integer or a string: a port number or name (`8080`, `"http"`), or a count or percentage (`1`,
/// `"25%"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i32),
    String(String),
}

// ------------------------------------------------------------------ namespace

/// Namespace provides a scope for names. Names of namespaced objects (pods, deployments, events)
/// need to be unique within a namespace, but not across namespaces.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Namespace {
    /// APIVersion defines the versioned schema of this representation of an object (`v1`, or
    /// `apps/v1` for deployments). Filled in by the server when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind is a string value representing the REST resource this object represents (`Pod`,
    /// `Deployment`, …). Filled in by the server when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard object's metadata. A namespace's name must be a DNS-1123 label.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Spec defines the behavior of the Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<NamespaceSpec>,
    /// Status describes the current status of a Namespace. Read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NamespaceStatus>,
}

/// NamespaceSpec describes the attributes on a Namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceSpec {
    /// Finalizers is an opaque list of values that must be empty to permanently remove the object
    /// from storage. Kept for compatibility; Skiff does not act on them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

/// NamespaceStatus is information about the current status of a Namespace.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceStatus {
    /// Phase is the current lifecycle phase of the namespace. Skiff sets it to Active on
    /// creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
}

// ------------------------------------------------------------------ pod

/// Pod is a collection of containers that run together on one node, sharing a network namespace
/// (one IP address) and volumes. It is created by clients or by a deployment's controller and
/// scheduled onto a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pod {
    /// APIVersion defines the versioned schema of this representation of an object (`v1`, or
    /// `apps/v1` for deployments). Filled in by the server when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind is a string value representing the REST resource this object represents (`Pod`,
    /// `Deployment`, …). Filled in by the server when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard object's metadata. A pod's name must be a DNS-1123 subdomain.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Specification of the desired behavior of the pod. Only `containers[*].image` (and
    /// `nodeName`, once, while unscheduled) may change after creation.
    #[serde(default)]
    pub spec: PodSpec,
    /// Most recently observed status of the pod, written by the node agent running it. Read-only
    /// for clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PodStatus>,
}

/// PodSpec is a description of a pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSpec {
    /// List of containers belonging to the pod. There must be at least one, and their names must be
    /// unique within the pod. Containers cannot be added or removed once the pod exists.
    #[serde(default)]
    pub containers: Vec<Container>,
    /// List of volumes that can be mounted by containers belonging to the pod. Each needs a unique
    /// name and exactly one source (emptyDir or hostPath).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// NodeSelector is a selector which must be true for the pod to fit on a node: the pod is only
    /// scheduled onto a node whose labels include every key/value pair here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: Map,
    /// NodeName is the name of the node the pod is bound to. The scheduler sets it; a pod created
    /// with it set skips scheduling and goes straight to that node. May only be set once on an
    /// existing pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// Restart policy for all containers within the pod: Always, OnFailure or Never. Defaults to
    /// Always; pods of a deployment only allow Always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<String>,
    /// How the pod's DNS is set up: ClusterFirst, ClusterFirstWithHostNet or Default (kubectl run
    /// sends ClusterFirst). Skiff has no cluster DNS, so every policy is Default: the pod uses the
    /// node's resolver, as a kubelet without cluster DNS does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<String>,
    /// Duration in seconds the pod needs to terminate gracefully: after the containers are sent
    /// SIGTERM, they are killed with SIGKILL once this has passed. Must be non-negative; defaults
    /// to 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    /// Specifies the hostname of the pod (a DNS-1123 label). Defaults to the pod's name, truncated
    /// to 63 characters; ignored with hostNetwork, where the pod sees the node's hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Which scheduler places the pod; Skiff's own is `default-scheduler` (the default) and leaves
    /// pods naming another one alone (they are bound by someone else, as in Kubernetes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler_name: Option<String>,
    /// Run in the node's network (and UTS) namespace instead of one of the pod's own: the pod's IP
    /// is the node's, and it sees the node's interfaces. Defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_network: Option<bool>,
    /// Security attributes and common container settings for every container of the pod. A
    /// container's own securityContext overrides the fields both have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<PodSecurityContext>,
}

/// A single application container that you want to run within a pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Container {
    /// Name of the container, as a DNS-1123 label. Each container in a pod must have a unique name.
    /// Cannot be updated.
    pub name: String,
    /// Container image name. Required. Skiff's process runtime records it but runs `command` and
    /// `args` as host programs, so it does not pull images. The only field of a pod's spec that may
    /// be updated.
    #[serde(default)]
    pub image: String,
    /// Entrypoint array, not run within a shell. With Skiff's process runtime, `command` followed
    /// by `args` is the program and arguments to run; together they must not be empty. Cannot be
    /// updated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments to the entrypoint, appended to `command`. Cannot be updated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// List of environment variables to set in the container. Cannot be updated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// List of ports to expose from the container. Informational: the container can listen on any
    /// port of the pod's IP. Cannot be updated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    /// Container's working directory. Defaults to the runtime's default. Cannot be updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Pod volumes to mount into the container's filesystem. Cannot be updated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    /// Compute resources required by this container: the scheduler places the pod on a node with
    /// room for the sum of its containers' requests. Cannot be updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Image pull policy: Always, IfNotPresent or Never. Defaults to Always if the `:latest` tag is
    /// specified or no tag at all, or IfNotPresent otherwise. Cannot be updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Periodic probe of container liveness. The container is restarted if the probe fails
    /// `failureThreshold` times in a row. Cannot be updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    /// Periodic probe of container service readiness. The container (and so the pod) is not Ready
    /// until the probe succeeds. Without one, a running container is ready. Cannot be updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    /// Security options the container should run with; where a field is set here and in the
    /// pod's securityContext, this one wins. Cannot be updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
}

/// PodSecurityContext holds pod-level security attributes and common container settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodSecurityContext {
    /// The UID to run the entrypoint of the container processes. Defaults to the user the image
    /// names. A container's own runAsUser takes precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    /// The GID to run the entrypoint of the container processes. Defaults to the image user's
    /// primary group. A container's own runAsGroup takes precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    /// Indicates that the containers must run as a non-root user: the node refuses to start a
    /// container that would run as UID 0. A container's own runAsNonRoot takes precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    /// A list of groups added to the first process of each container, in addition to the
    /// container's primary GID and the groups the image gives its user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supplemental_groups: Vec<i64>,
    /// A special supplemental group for every container: emptyDir volumes are owned by this
    /// group (with the setgid bit, so new files get it too) and the containers' processes are
    /// members of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<i64>,
    /// The seccomp options of the pod's containers. A container's own seccompProfile takes
    /// precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
}

/// SecurityContext holds security configuration that will be applied to a container. Where a
/// field is also set in the pod's securityContext, the container's value wins.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityContext {
    /// The UID to run the entrypoint of the container process. Defaults to the user the image
    /// names (or the pod's runAsUser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    /// The GID to run the entrypoint of the container process. Defaults to the image user's
    /// primary group (or the pod's runAsGroup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    /// Indicates that the container must run as a non-root user: the node refuses to start it
    /// when it would run as UID 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    /// Run the container in privileged mode: every capability, every host device, no seccomp
    /// filter and no masked paths; about as much as a root process on the host. Defaults to
    /// false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// Whether a process can gain more privileges than its parent (setuid binaries, file
    /// capabilities). False sets the no_new_privs flag on the container process. Defaults to
    /// true; cannot be false together with privileged or an added CAP_SYS_ADMIN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    /// The capabilities to add to or drop from the runtime's default set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// Whether this container has a read-only root filesystem (volumes stay as mounted).
    /// Defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    /// The seccomp options of this container, overriding the pod's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
}

/// Adds and removes POSIX capabilities from running containers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capabilities {
    /// Added capabilities, by name without the `CAP_` prefix (`NET_ADMIN`), or `ALL`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<String>,
    /// Removed capabilities, by name without the `CAP_` prefix, or `ALL`. Drops apply after
    /// adds, except that `add: [ALL]` and `drop: [ALL]` apply before individual names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<String>,
}

/// SeccompProfile defines a pod's or container's seccomp profile settings. Only one profile
/// source may be set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeccompProfile {
    /// Which kind of seccomp profile is applied: `RuntimeDefault` (the container runtime's
    /// default profile, Docker's), `Unconfined` (no profile) or `Localhost` (a profile file on
    /// the node, named by localhostProfile).
    #[serde(default, rename = "type")]
    pub type_: String,
    /// A profile file on the node, relative to the agent's seccomp directory
    /// (`<data-dir>/oci/seccomp/`). Must be set if type is `Localhost`, and only then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localhost_profile: Option<String>,
}

/// EnvVar represents an environment variable present in a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    /// Name of the environment variable. Must not be empty or contain `=`.
    pub name: String,
    /// Value of the environment variable. Defaults to "".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// ContainerPort represents a network port in a single container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerPort {
    /// If specified, a name for the port (at most 15 characters) that probes can refer to instead
    /// of its number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Number of the port to expose on the pod's IP address, between 1 and 65535.
    pub container_port: i32,
    /// Protocol for the port: TCP, UDP or SCTP. Defaults to TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// VolumeMount describes a mounting of a volume within a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeMount {
    /// This must match the name of a volume of the pod.
    pub name: String,
    /// Absolute path within the container at which the volume should be mounted.
    pub mount_path: String,
    /// Mounted read-only if true, read-write otherwise (false or unspecified). Defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
}

/// ResourceRequirements describes the compute resource requirements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceRequirements {
    /// Requests describes the minimum amount of compute resources required, by resource name
    /// (`cpu`, `memory`) as quantities. If a request is left out for a resource, its limit stands
    /// in for it. A request may not exceed its limit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, Quantity>,
    /// Limits describes the maximum amount of compute resources allowed, by resource name (`cpu`,
    /// `memory`) as quantities. Used by the scheduler where a request is missing; not enforced on
    /// the running process.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, Quantity>,
}

/// Probe describes a health check to be performed against a container to determine whether it is
/// alive or ready to receive traffic. Exactly one of exec, httpGet and tcpSocket must be set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Probe {
    /// Exec specifies a command to run in the container; exit status 0 is success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    /// HTTPGet specifies an HTTP GET request to perform; a status from 200 to 399 is success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    /// TCPSocket specifies a connection to a TCP port; an accepted connection is success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    /// Number of seconds after the container has started before the probe is first run. Defaults to
    /// 0; must be at least 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<i32>,
    /// How often (in seconds) to perform the probe. Defaults to 10; minimum value is 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<i32>,
    /// Number of seconds after which the probe times out. Defaults to 1; minimum value is 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
    /// Minimum consecutive successes for the probe to be considered successful after having failed.
    /// Defaults to 1; minimum value is 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<i32>,
    /// Minimum consecutive failures for the probe to be considered failed after having succeeded.
    /// Defaults to 3; minimum value is 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<i32>,
}

/// ExecAction describes a "run in container" action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecAction {
    /// Command line to execute inside the container; it is not run in a shell. Required, and must
    /// not be empty.
    #[serde(default)]
    pub command: Vec<String>,
}

/// HTTPGetAction describes an action based on HTTP GET requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpGetAction {
    /// Path to access on the HTTP server. Defaults to `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Number (1 to 65535) or name of the port to access on the container.
    pub port: IntOrString,
    /// Host name to connect to, defaults to the pod IP. Skiff probes always connect to the port in
    /// the pod's own network namespace, so this is not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Scheme to use for connecting to the host: HTTP or HTTPS. Defaults to HTTP. Skiff's probes
    /// speak plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
}

/// TCPSocketAction describes an action based on opening a socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpSocketAction {
    /// Number (1 to 65535) or name of the port to access on the container.
    pub port: IntOrString,
    /// Host name to connect to, defaults to the pod IP. Skiff probes always connect to the port in
    /// the pod's own network namespace, so this is not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// Volume represents a named volume in a pod that may be accessed by any container in the pod.
/// Exactly one source (emptyDir or hostPath) must be set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Volume {
    /// Name of the volume, a DNS-1123 label unique within the pod. Container volumeMounts refer to
    /// it.
    pub name: String,
    /// EmptyDir represents a temporary directory that shares a pod's lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirVolumeSource>,
    /// HostPath represents a pre-existing file or directory on the node that is exposed to the
    /// containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathVolumeSource>,
}

/// Represents an empty directory for a pod, created when the pod is set up on its node and removed
/// with it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmptyDirVolumeSource {
    /// What type of storage medium should back this directory. The default is "", the node's disk.
    /// Accepted for compatibility; Skiff always uses the node's disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    /// Total amount of local storage required for this volume, as a quantity (e.g. `1Gi`). Checked
    /// to be a valid quantity; not enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<Quantity>,
}

/// Represents a host path mapped into a pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostPathVolumeSource {
    /// Absolute path of the directory on the host. If the path is a symlink, it will follow the
    /// link to the real path.
    pub path: String,
    /// Type for the HostPath volume (e.g. Directory, DirectoryOrCreate). Defaults to "". Accepted
    /// for compatibility; Skiff does not check it.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
}

/// PodStatus represents information about the status of a pod. Status may trail the actual state of
/// a system.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodStatus {
    /// The phase of a pod is a simple, high-level summary of where the pod is in its lifecycle:
    /// Pending, Running, Succeeded, Failed or Unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Current service state of the pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PodCondition>,
    /// A human readable message indicating details about why the pod is in this condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A brief CamelCase message indicating details about why the pod is in this state, e.g.
    /// `Evicted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// IP address allocated to the pod. Routable at least within the cluster. Empty if not yet
    /// allocated.
    #[serde(default, rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    /// IP address of the host to which the pod is assigned. Empty if not yet scheduled.
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Date and time at which the object was acknowledged by the node agent, before it started the
    /// pod's containers, as an RFC 3339 date and time in UTC (e.g. "2024-01-02T03:04:05Z").
    #[serde(default, with = "time_format", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<TimeSchema>")]
    pub start_time: Option<Time>,
    /// The list has one entry per container in the manifest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<ContainerStatus>,
}

/// PodCondition contains details for the current condition of this pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodCondition {
    /// Type is the type of the condition: PodScheduled, Initialized, ContainersReady or Ready.
    #[serde(rename = "type")]
    pub type_: String,
    /// Status is the status of the condition: True, False or Unknown.
    pub status: String,
    /// Unique, one-word, CamelCase reason for the condition's last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable message indicating details about last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Last time the condition transitioned from one status to another, as an RFC 3339 date and
    /// time in UTC.
    #[serde(default, with = "time_format", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<TimeSchema>")]
    pub last_transition_time: Option<Time>,
    /// Last time we probed the condition, as an RFC 3339 date and time in UTC.
    #[serde(default, with = "time_format", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<TimeSchema>")]
    pub last_probe_time: Option<Time>,
}

/// ContainerStatus contains details for the current status of this container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerStatus {
    /// Name of the container, as given in the pod's spec.
    pub name: String,
    /// Ready specifies whether the container is currently passing its readiness check.
    #[serde(default)]
    pub ready: bool,
    /// RestartCount holds the number of times the container has been restarted.
    #[serde(default)]
    pub restart_count: i32,
    /// Image is the name of the container image that the container is running.
    #[serde(default)]
    pub image: String,
    /// ImageID is the image ID of the container's image, as the runtime resolved it. Always
    /// written, empty when the runtime has not reported one, as Kubernetes does: clients such
    /// as PyPI's `kubernetes` package refuse a ContainerStatus that leaves it out.
    #[serde(default, rename = "imageID")]
    pub image_id: String,
    /// ContainerID is the ID of the container in the format `<type>://<container_id>`.
    #[serde(
        default,
        rename = "containerID",
        skip_serializing_if = "Option::is_none"
    )]
    pub container_id: Option<String>,
    /// Started indicates whether the container has finished its startup and is running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<bool>,
    /// State holds details about the container's current condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ContainerState>,
    /// LastTerminationState holds the last termination state of the container, to help debug
    /// container crashes and restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_state: Option<ContainerState>,
}

/// ContainerState holds a possible state of a container. Only one of its members may be specified.
/// If none of them is specified, the default one is ContainerStateWaiting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerState {
    /// Details about a waiting container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<ContainerStateWaiting>,
    /// Details about a running container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<ContainerStateRunning>,
    /// Details about a terminated container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<ContainerStateTerminated>,
}

/// ContainerStateWaiting is a waiting state of a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerStateWaiting {
    /// (brief) reason the container is not yet running, e.g. `ContainerCreating` or
    /// `CrashLoopBackOff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Message regarding why the container is not yet running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// ContainerStateRunning is a running state of a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerStateRunning {
    /// Time at which the container was last (re-)started, as an RFC 3339 date and time in UTC.
    #[serde(default, with = "time_format", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<TimeSchema>")]
    pub started_at: Option<Time>,
}

/// ContainerStateTerminated is a terminated state of a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerStateTerminated {
    /// Exit status from the last termination of the container.
    pub exit_code: i32,
    /// Signal from the last termination of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// (brief) reason from the last termination of the container, e.g. `Completed` or `Error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Message regarding the last termination of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Time at which previous execution of the container started, as an RFC 3339 date and time in
    /// UTC.
    #[serde(default, with = "time_format", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<TimeSchema>")]
    pub started_at: Option<Time>,
    /// Time at which the container last terminated, as an RFC 3339 date and time in UTC.
    #[serde(default, with = "time_format", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<TimeSchema>")]
    pub finished_at: Option<Time>,
    /// Container's ID in the format `<type>://<container_id>`.
    #[serde(
        default,
        rename = "containerID",
        skip_serializing_if = "Option::is_none"
    )]
    pub container_id: Option<String>,
}

// ------------------------------------------------------------------ deployment

/// Deployment enables declarative updates for Pods: it keeps `replicas` pods of its template
/// running, and rolls out a changed template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deployment {
    /// APIVersion defines the versioned schema of this representation of an object (`v1`, or
    /// `apps/v1` for deployments). Filled in by the server when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind is a string value representing the REST resource this object represents (`Pod`,
    /// `Deployment`, …). Filled in by the server when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard object's metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Specification of the desired behavior of the Deployment.
    #[serde(default)]
    pub spec: DeploymentSpec,
    /// Most recently observed status of the Deployment, written by its controller. Read-only for
    /// clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DeploymentStatus>,
}

/// DeploymentSpec is the specification of the desired behavior of the Deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentSpec {
    /// Number of desired pods. Defaults to 1; must not be negative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Label selector for pods. Existing pods selected by this will be the ones affected by this
    /// deployment. It must match the pod template's labels, must not be empty, and cannot be
    /// changed.
    #[serde(default)]
    pub selector: LabelSelector,
    /// Template describes the pods that will be created. Its restartPolicy may only be Always.
    #[serde(default)]
    pub template: PodTemplateSpec,
    /// The deployment strategy to use to replace existing pods with new ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<DeploymentStrategy>,
    /// Minimum number of seconds for which a newly created pod should be ready without any of its
    /// container crashing, for it to be considered available. Defaults to 0 (pod will be considered
    /// available as soon as it is ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// The number of old revisions to retain to allow rollback. Defaults to 10. Accepted for
    /// compatibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    /// Indicates that the deployment is paused: its controller leaves the old and new pods as they
    /// are until it is resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
}

/// PodTemplateSpec describes the data a pod should have when created from a template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PodTemplateSpec {
    /// Standard object's metadata of the pods created from this template. Its labels must match the
    /// deployment's selector.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Specification of the desired behavior of the pod.
    #[serde(default)]
    pub spec: PodSpec,
}

/// DeploymentStrategy describes how to replace existing pods with new ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentStrategy {
    /// Type of deployment: RollingUpdate or Recreate. Default is RollingUpdate.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Rolling update config params. Present only if DeploymentStrategyType = RollingUpdate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdateDeployment>,
}

/// Spec to control the desired behavior of rolling update.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RollingUpdateDeployment {
    /// The maximum number of pods that can be scheduled above the desired number of pods: an
    /// absolute number (e.g. 5) or a percentage of desired pods (e.g. "10%"), rounded up. Defaults
    /// to 25%. May not be 0 if maxUnavailable is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// The maximum number of pods that can be unavailable during the update: an absolute number
    /// (e.g. 5) or a percentage of desired pods (e.g. "10%"), rounded down. Defaults to 25%. May
    /// not be 0 if maxSurge is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
}

/// DeploymentStatus is the most recently observed status of the Deployment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentStatus {
    /// The generation observed by the deployment controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Total number of non-terminated pods targeted by this deployment (their labels match the
    /// selector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Total number of non-terminated pods targeted by this deployment that have the desired
    /// template spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// Total number of pods targeted by this deployment with a Ready condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Total number of available pods (ready for at least minReadySeconds) targeted by this
    /// deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// Total number of unavailable pods targeted by this deployment: pods still needed for the
    /// deployment to have 100% available capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_replicas: Option<i32>,
    /// Represents the latest available observations of a deployment's current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<DeploymentCondition>,
}

/// DeploymentCondition describes the state of a deployment at a certain point.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentCondition {
    /// Type of deployment condition: Available or Progressing.
    #[serde(rename = "type")]
    pub type_: String,
    /// Status of the condition, one of True, False, Unknown.
    pub status: String,
    /// The reason for the condition's last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human readable message indicating details about the transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The last time this condition was updated, as an RFC 3339 date and time in UTC.
    #[serde(default, with = "time_format", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<TimeSchema>")]
    pub last_update_time: Option<Time>,
    /// Last time the condition transitioned from one status to another, as an RFC 3339 date and
    /// time in UTC.
    #[serde(default, with = "time_format", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<TimeSchema>")]
    pub last_transition_time: Option<Time>,
}

// ------------------------------------------------------------------ node

/// Node is a worker machine running Skiff's node agent. The agent registers it and keeps its status
/// up to date.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    /// APIVersion defines the versioned schema of this representation of an object (`v1`, or
    /// `apps/v1` for deployments). Filled in by the server when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind is a string value representing the REST resource this object represents (`Pod`,
    /// `Deployment`, …). Filled in by the server when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard object's metadata. A node's name must be a DNS-1123 subdomain.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Spec defines the behavior of a node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<NodeSpec>,
    /// Most recently observed status of the node, written by its agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NodeStatus>,
}

impl Node {
    /// Whether the node's Ready condition is True (its agent is heartbeating).
    pub fn is_ready(&self) -> bool {
        self.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    }
}

/// NodeSpec describes the attributes that a node is created with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    /// PodCIDR represents the pod IP range assigned to the node; its pods get their addresses from
    /// it and other nodes route it to this node.
    #[serde(default, rename = "podCIDR", skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<String>,
    /// podCIDRs represents the IP ranges assigned to the node for usage by pods on that node. If
    /// this field is specified, the 0th entry should match the podCIDR field.
    #[serde(default, rename = "podCIDRs", skip_serializing_if = "Vec::is_empty")]
    pub pod_cidrs: Vec<String>,
    /// Unschedulable controls node schedulability of new pods. By default, node is schedulable
    /// (`skiff cordon` sets this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unschedulable: Option<bool>,
    /// If specified, the node's taints. Accepted and validated for compatibility; Skiff's scheduler
    /// does not consider them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
}

/// The node this Taint is attached to has the "effect" on any pod that does not tolerate the Taint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Taint {
    /// Required. The taint key to be applied to a node.
    pub key: String,
    /// The taint value corresponding to the taint key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Required. The effect of the taint on pods that do not tolerate the taint: NoSchedule,
    /// PreferNoSchedule or NoExecute.
    pub effect: String,
}

/// NodeStatus is information about the current status of a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeStatus {
    /// Capacity represents the total resources of a node, by resource name (`cpu`, `memory`,
    /// `pods`) as quantities.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<String, Quantity>,
    /// Allocatable represents the resources of a node that are available for scheduling, by
    /// resource name as quantities. Defaults to Capacity.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocatable: BTreeMap<String, Quantity>,
    /// Conditions is an array of current observed node conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<NodeCondition>,
    /// List of addresses reachable to the node (InternalIP, Hostname, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    /// Set of ids/uuids to uniquely identify the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_info: Option<NodeSystemInfo>,
    /// Endpoints of daemons running on the Node: where the node's agent serves logs, exec and
    /// port-forward (on its InternalIP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon_endpoints: Option<NodeDaemonEndpoints>,
}

/// NodeDaemonEndpoints lists ports opened by daemons running on the Node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeDaemonEndpoints {
    /// Endpoint on which the node agent is listening (Kubernetes' name for it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet_endpoint: Option<DaemonEndpoint>,
}

/// DaemonEndpoint contains information about a single Daemon endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DaemonEndpoint {
    /// Port number of the given endpoint. Spelled `Port`, as in Kubernetes.
    #[serde(rename = "Port")]
    pub port: i32,
}

/// NodeCondition contains condition information for a node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeCondition {
    /// Type of node condition: Ready, MemoryPressure, DiskPressure, …
    #[serde(rename = "type")]
    pub type_: String,
    /// Status of the condition, one of True, False, Unknown.
    pub status: String,
    /// (brief) reason for the condition's last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human readable message indicating details about last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Last time we got an update on a given condition, as an RFC 3339 date and time in UTC.
    #[serde(default, with = "time_format", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<TimeSchema>")]
    pub last_heartbeat_time: Option<Time>,
    /// Last time the condition transit from one status to another, as an RFC 3339 date and time in
    /// UTC.
    #[serde(default, with = "time_format", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<TimeSchema>")]
    pub last_transition_time: Option<Time>,
}

/// NodeAddress contains information for the node's address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeAddress {
    /// Node address type, one of Hostname, ExternalIP or InternalIP.
    #[serde(rename = "type")]
    pub type_: String,
    /// The node address.
    pub address: String,
}

/// NodeSystemInfo is a set of ids/uuids to uniquely identify the node.
///
/// Every field is always written, empty when unknown, as Kubernetes does: clients such as
/// PyPI's `kubernetes` package refuse a NodeSystemInfo that leaves one out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSystemInfo {
    /// MachineID reported by the node, from /etc/machine-id. For unique machine identification
    /// in the cluster this field is preferred.
    #[serde(default, rename = "machineID")]
    pub machine_id: String,
    /// SystemUUID reported by the node, from /sys/class/dmi/id/product_uuid. For unique machine
    /// identification MachineID is preferred.
    #[serde(default, rename = "systemUUID")]
    pub system_uuid: String,
    /// Boot ID reported by the node, from /proc/sys/kernel/random/boot_id.
    #[serde(default, rename = "bootID")]
    pub boot_id: String,
    /// Kernel Version reported by the node from `uname -r`.
    #[serde(default)]
    pub kernel_version: String,
    /// OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 12
    /// (bookworm)).
    #[serde(default)]
    pub os_image: String,
    /// ContainerRuntime Version reported by the node through runtime remote API.
    #[serde(default)]
    pub container_runtime_version: String,
    /// Version of the node agent reported by the node (Kubernetes' name for it).
    #[serde(default)]
    pub kubelet_version: String,
    /// Deprecated: KubeProxy Version reported by the node. The node agent reports its own
    /// version here, as the kubelet does.
    #[serde(default)]
    pub kube_proxy_version: String,
    /// The Operating System reported by the node.
    #[serde(default)]
    pub operating_system: String,
    /// The Architecture reported by the node.
    #[serde(default)]
    pub architecture: String,
}

// ------------------------------------------------------------------ event

/// Event is a report of an event somewhere in the cluster. Repeats of the same event (same object,
/// reason and message) increase `count` and `lastTimestamp` of one stored event, which expires
/// after a while.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    /// APIVersion defines the versioned schema of this representation of an object (`v1`, or
    /// `apps/v1` for deployments). Filled in by the server when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind is a string value representing the REST resource this object represents (`Pod`,
    /// `Deployment`, …). Filled in by the server when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Standard object's metadata. Events of cluster-scoped objects are stored in the `default`
    /// namespace.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// The object that this event is about.
    #[serde(default)]
    pub involved_object: ObjectReference,
    /// This should be a short, machine understandable string that gives the reason for the
    /// transition into the object's current status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A human-readable description of the status of this operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Type of this event: Normal or Warning.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The number of times this event has occurred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// The time at which the event was first recorded, as an RFC 3339 date and time in UTC.
    #[serde(default, with = "time_format", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<TimeSchema>")]
    pub first_timestamp: Option<Time>,
    /// The time at which the most recent occurrence of this event was recorded, as an RFC 3339 date
    /// and time in UTC.
    #[serde(default, with = "time_format", skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<TimeSchema>")]
    pub last_timestamp: Option<Time>,
    /// The component reporting this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<EventSource>,
    /// Name of the controller that emitted this Event, e.g. `skiff-control-plane` or `skiff-agent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_component: Option<String>,
}

/// ObjectReference contains enough information to let you inspect or modify the referred object.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectReference {
    /// Kind of the referent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Namespace of the referent; empty for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the referent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// UID of the referent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// API version of the referent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Specific resourceVersion to which this reference is made, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// If referring to a piece of an object instead of an entire object, this string should contain
    /// a valid JSON/Go field access statement, such as `spec.containers{name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
}

/// EventSource contains information for an event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventSource {
    /// Component from which the event is generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// Node name on which the event is generated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}
