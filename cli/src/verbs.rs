//! The verbs that are one SDK call or a short sequence of them: logs, exec, delete by name
//! or selector, scale, label / annotate, cordon / uncordon / drain, cluster status. Each
//! returns what `skiff` prints (or streams output itself, for logs and exec).

use std::io::Write;

use futures::StreamExt;
use skiff_api::Kind;
use skiff_api::proto::ClusterStatusResponse;
use skiff_api::types::{Deployment, Pod};
use skiff_client::{
    Client, DeleteParams, ExecEvent, ListParams, LogParams, MetadataPatch, NewToken,
};

use crate::error::api_message;
use crate::table::{self, Table};
use crate::target::{Request, TargetError};

/// Why a verb failed (these, `describe`, `wait` and `rollout status`, `image`), worded as
/// kubectl words it.
#[derive(Debug, thiserror::Error)]
pub enum VerbError {
    #[error("Error from server (Conflict): {0}")]
    Conflict(String),
    #[error("Error from server (Invalid): {0}")]
    Invalid(String),
    #[error("{}", api_message(.0))]
    Api(skiff_client::Error),
    #[error("{0}")]
    Usage(String),
    #[error("timed out waiting for the condition on {0}")]
    Timeout(String),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
    #[error(transparent)]
    Target(#[from] TargetError),
}

impl From<skiff_client::Error> for VerbError {
    fn from(e: skiff_client::Error) -> VerbError {
        match e {
            skiff_client::Error::Conflict(m) => VerbError::Conflict(m),
            skiff_client::Error::Invalid(m) => VerbError::Invalid(m),
            other => VerbError::Api(other),
        }
    }
}

/// The annotation that names the container `logs` and `exec` use without `-c`.
pub const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

/// The container kubectl's `logs` and `exec` pick without `-c`: the one the
/// [`DEFAULT_CONTAINER`] annotation names, else the first, with the lines kubectl prints on
/// standard error about the choice (`Defaulted container "a" out of: a, b` when there was a
/// choice; a warning when the annotation names no container of the pod).
pub fn default_container(pod: &Pod) -> (String, Vec<String>) {
    let mut notes = Vec::new();
    if let Some(named) = pod.metadata.annotations.get(DEFAULT_CONTAINER) {
        if pod.spec.containers.iter().any(|c| &c.name == named) {
            return (named.clone(), notes);
        }
        notes.push(format!(
            "Default container name \"{named}\" not found in pod {}",
            pod.metadata.name
        ));
    }
    let names: Vec<&str> = pod
        .spec
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let first = names.first().copied().unwrap_or_default().to_string();
    if names.len() > 1 {
        notes.push(format!(
            "Defaulted container \"{first}\" out of: {}",
            names.join(", ")
        ));
    }
    (first, notes)
}

/// The pod `logs` and `exec` act on for their `(POD | TYPE/NAME)` argument: the pod, or for
/// `deployment/NAME` the first of its pods as kubectl ranks them for logs (scheduled,
/// running, ready, then the oldest), saying `Found N pods, using pod/x` on standard error
/// when there was a choice.
pub async fn pod_for(
    client: &Client,
    namespace: &str,
    arg: &str,
    verb: &str,
) -> Result<String, VerbError> {
    if !arg.contains('/') {
        return Ok(arg.to_string());
    }
    let name = match crate::target::one(&[arg.to_string()], verb)? {
        (Kind::Pod, name) => return Ok(name),
        (Kind::Deployment, name) => name,
        (kind, _) => {
            return Err(VerbError::Usage(format!(
                "{verb} takes a pod or a deployment, not {}",
                kind.plural()
            )));
        }
    };
    let deployment = client.get::<Deployment>(namespace, &name).await?;
    let selector = skiff_api::selector::Selector::from_label_selector(&deployment.spec.selector)
        .map_err(|e| VerbError::Usage(format!("deployment {name:?}: {e}")))?;
    let list = ListParams::namespace(namespace).labels(selector.to_string());
    let mut pods = client.list::<Pod>(&list).await?.items;
    pods.retain(|p| p.metadata.deletion_timestamp.is_none());
    pods.sort_by_key(|p| {
        let status = p.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        (
            p.spec.node_name.is_none(),
            status.phase.as_deref() != Some("Running"),
            !ready,
            p.metadata.creation_timestamp,
            p.metadata.name.clone(),
        )
    });
    let Some(first) = pods.first() else {
        return Err(VerbError::Usage(format!("deployment {name:?} has no pods")));
    };
    if pods.len() > 1 {
        eprintln!(
            "Found {} pods, using pod/{}",
            pods.len(),
            first.metadata.name
        );
    }
    Ok(first.metadata.name.clone())
}

/// `container`, or the pod's [`default_container`] (its notes printed on standard error).
pub async fn pick_container(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: Option<String>,
) -> Result<String, VerbError> {
    if let Some(container) = container {
        return Ok(container);
    }
    let (name, notes) = default_container(&client.get::<Pod>(namespace, pod).await?);
    for note in notes {
        eprintln!("{note}");
    }
    Ok(name)
}

/// `--since-time`'s RFC 3339 time, checked here so a typo is named before anything is sent.
pub fn parse_since_time(text: &str) -> Result<String, VerbError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_rfc3339())
        .map_err(|e| {
            VerbError::Usage(format!(
                "--since-time: {text:?} is not an RFC 3339 time: {e}"
            ))
        })
}

/// `skiff logs POD [-c C] [-f] [--tail N] [--previous] [--timestamps]`, streamed to `out`.
pub async fn logs(
    client: &Client,
    namespace: &str,
    pod: &str,
    params: &LogParams,
    out: &mut impl Write,
) -> Result<(), VerbError> {
    let mut stream = Box::pin(client.logs(namespace, pod, params).await?);
    while let Some(chunk) = stream.next().await {
        out.write_all(&chunk?)?;
        out.flush()?;
    }
    Ok(())
}

/// The command of `skiff exec POD -- CMD…`, or of the deprecated `skiff exec POD CMD…`,
/// which runs with kubectl's warning; both at once are refused.
pub fn exec_command(
    deprecated: Vec<String>,
    command: Vec<String>,
) -> Result<Vec<String>, VerbError> {
    match (deprecated.is_empty(), command.is_empty()) {
        (true, _) => Ok(command),
        (false, true) => {
            eprintln!(
                "skiff exec [POD] [COMMAND] is DEPRECATED and will be removed in a future version. \
                 Use skiff exec [POD] -- [COMMAND] instead."
            );
            Ok(deprecated)
        }
        (false, false) => Err(VerbError::Usage(format!(
            "exec [POD] [COMMAND] -- [COMMAND] is not supported: {:?} before -- is not a pod; \
             use skiff exec [POD] -- [COMMAND]",
            deprecated.join(" ")
        ))),
    }
}

/// `skiff exec POD [-c C] [-i] [-t] -- CMD…`: streams output, forwards stdin with `-i`, and
/// returns the command's exit code. With `-it` and a terminal on stdin the command runs on
/// a terminal in the container: this one is raw meanwhile (restored on every way out) and
/// its window size follows along. As kubectl: `-t` without `-i` is dropped silently, and
/// `-it` without a terminal says so and runs without one.
pub async fn exec(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    command: &[String],
    stdin: bool,
    tty: bool,
) -> Result<i32, VerbError> {
    if command.is_empty() {
        return Err(VerbError::Usage(
            "you must specify at least one command for the container (skiff exec POD -- CMD)"
                .into(),
        ));
    }
    let tty = tty && stdin;
    if tty && !crate::tty::stdin_is_terminal() {
        eprintln!("{}", crate::tty::NOT_A_TERMINAL);
    }
    let tty = tty && crate::tty::stdin_is_terminal();
    let options = skiff_client::ExecOptions {
        stdin,
        // An unknown size is 0x0, which programs read as "ask no one, assume 80x24".
        tty: tty.then(|| crate::tty::window_size().unwrap_or((0, 0))),
    };
    let mut session = client
        .exec_with(namespace, pod, container, command, options)
        .await?;
    let _raw = if tty {
        Some(crate::tty::RawMode::enter()?)
    } else {
        None
    };
    let mut input = if stdin {
        // Standard input goes to the command from a thread (std's stdin blocks).
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
        std::thread::spawn(move || {
            let mut input = std::io::stdin();
            let mut buf = vec![0u8; 8192];
            loop {
                match std::io::Read::read(&mut input, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if tx.blocking_send(buf[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Some(rx)
    } else {
        session.close_stdin().await;
        None
    };
    use tokio::signal::unix::{SignalKind, signal};
    // Only a terminal session listens for window changes; it also turns the signals that
    // would end skiff into a return, so that raw mode is undone on the way out.
    let mut signals = if tty {
        let mut streams = Vec::new();
        for kind in [
            SignalKind::window_change(),
            SignalKind::hangup(),
            SignalKind::interrupt(),
            SignalKind::terminate(),
            SignalKind::quit(),
        ] {
            streams.push((kind, signal(kind)?));
        }
        streams
    } else {
        Vec::new()
    };
    loop {
        let caught = async {
            if signals.is_empty() {
                return std::future::pending().await;
            }
            let waits = signals
                .iter_mut()
                .map(|(kind, stream)| Box::pin(async move { stream.recv().await.map(|_| *kind) }));
            futures::future::select_all(waits).await.0
        };
        tokio::select! {
            data = async { input.as_mut()?.recv().await }, if input.is_some() => match data {
                Some(data) => session.write_stdin(data).await?,
                None => {
                    input = None;
                    session.close_stdin().await;
                }
            },
            event = session.next() => {
                if let Some(code) = handle(event)? {
                    return Ok(code);
                }
            }
            Some(kind) = caught => {
                if kind == SignalKind::window_change() {
                    if let Some((width, height)) = crate::tty::window_size() {
                        session.resize(width, height).await?;
                    }
                } else {
                    // As the shell reports a command a signal ended (the session and the
                    // remote command end with this process).
                    return Ok(128 + kind.as_raw_value());
                }
            }
        }
    }
}

/// Writes one exec event; `Some(code)` once the command exited.
fn handle(event: Option<Result<ExecEvent, skiff_client::Error>>) -> Result<Option<i32>, VerbError> {
    match event {
        Some(Ok(ExecEvent::Stdout(data))) => {
            std::io::stdout().write_all(&data)?;
            std::io::stdout().flush()?;
            Ok(None)
        }
        Some(Ok(ExecEvent::Stderr(data))) => {
            std::io::stderr().write_all(&data)?;
            Ok(None)
        }
        Some(Ok(ExecEvent::Exit(code))) => Ok(Some(code)),
        Some(Ok(ExecEvent::NotStarted(error))) => {
            // kubectl's words when the runtime could not start the command.
            eprintln!(
                "error: Internal error occurred: error executing command in container: {error}"
            );
            Ok(Some(126))
        }
        Some(Err(e)) => Err(e.into()),
        None => Err(VerbError::Usage(
            "the exec stream ended without an exit code".into(),
        )),
    }
}

/// Which objects of a kind `skiff delete`, `label` and `annotate` act on.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Those the requests name.
    Names,
    Selector(String),
    All,
}

impl Selection {
    /// From the flags: names (in `requests`), `-l` or `--all`, exactly one of them.
    pub fn from_flags(
        requests: &[Request],
        selector: Option<String>,
        all: bool,
    ) -> Result<Selection, VerbError> {
        let named = requests.iter().any(|r| !r.names.is_empty());
        match (named, selector, all) {
            (true, None, false) => Ok(Selection::Names),
            (false, Some(selector), false) => Ok(Selection::Selector(selector)),
            (false, None, true) => Ok(Selection::All),
            _ => Err(VerbError::Usage(
                "give names, or -l SELECTOR, or --all (exactly one of them)".into(),
            )),
        }
    }
}

/// The names of `request`'s kind that `selection` picks.
async fn selected_names(
    client: &Client,
    request: &Request,
    namespace: &str,
    selection: &Selection,
) -> Result<Vec<String>, VerbError> {
    let mut list = if request.kind.is_namespaced() {
        ListParams::namespace(namespace)
    } else {
        ListParams::all_namespaces()
    };
    match selection {
        Selection::Names => return Ok(request.names.clone()),
        Selection::Selector(s) => list = list.labels(s.clone()),
        Selection::All => {}
    }
    Ok(client
        .list_objects(request.kind, &list)
        .await?
        .items
        .iter()
        .map(|o| o.metadata().name.clone())
        .collect())
}

/// What `delete`, `label` and `annotate` print: `out` on standard output, then `failed`
/// (kubectl's error lines, one per object) on standard error, which makes the exit code 1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub out: String,
    pub failed: Vec<String>,
}

/// How `skiff delete` deletes.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub params: DeleteParams,
    /// Return only once the objects are gone, within this long (kubectl's --wait).
    pub wait: Option<std::time::Duration>,
    /// A name that does not exist is not an error.
    pub ignore_not_found: bool,
}

/// `skiff delete TYPE NAME… | TYPE/NAME… | TYPE -l SEL | TYPE --all`: `pod "x" deleted` per
/// object. Like kubectl it carries on past a name that does not exist (reported in
/// [`Outcome::failed`]), and with a wait returns once every deleted object is gone (a
/// namespace once its pods are gone too).
pub async fn delete(
    client: &Client,
    requests: &[Request],
    namespace: &str,
    selection: &Selection,
    options: &DeleteOptions,
) -> Result<Outcome, VerbError> {
    let mut outcome = Outcome::default();
    let mut deleted: Vec<(Kind, String, String)> = Vec::new();
    for request in requests {
        let kind = request.kind;
        let ns = if kind.is_namespaced() { namespace } else { "" };
        for name in selected_names(client, request, namespace, selection).await? {
            match client.delete_object(kind, ns, &name, &options.params).await {
                Ok(_) => {
                    outcome
                        .out
                        .push_str(&format!("{} \"{name}\" deleted\n", kind.resource()));
                    deleted.push((kind, ns.to_string(), name));
                }
                Err(e) if e.is_not_found() => {
                    if !options.ignore_not_found {
                        outcome.failed.push(api_message(&e));
                    }
                }
                Err(e) => {
                    print!("{}", outcome.out);
                    return Err(e.into());
                }
            }
        }
    }
    if deleted.is_empty() && outcome.failed.is_empty() && !matches!(selection, Selection::Names) {
        outcome.out = if requests.iter().any(|r| r.kind.is_namespaced()) {
            format!("No resources found in {namespace} namespace.\n")
        } else {
            "No resources found.\n".into()
        };
    }
    // Like kubectl's --wait: return once the objects are gone (pods stop gracefully first).
    if let Some(timeout) = options.wait {
        let deadline = tokio::time::Instant::now() + timeout;
        if !wait_all_gone(client, &deleted, deadline).await? {
            print!("{}", outcome.out);
            let names: Vec<String> = deleted
                .iter()
                .map(|(kind, _, name)| format!("{}/{name}", kind.resource()))
                .collect();
            return Err(VerbError::Usage(format!(
                "timed out waiting for the deletion of {}",
                names.join(", ")
            )));
        }
    }
    Ok(outcome)
}

/// Waits until every object (kind, namespace, name) is gone, a namespace's pods included
/// (true), or the deadline passes (false).
pub async fn wait_all_gone(
    client: &Client,
    objects: &[(Kind, String, String)],
    deadline: tokio::time::Instant,
) -> Result<bool, VerbError> {
    for (kind, ns, name) in objects {
        if !wait_gone(client, *kind, ns, name, deadline).await? {
            return Ok(false);
        }
        if *kind == Kind::Namespace && !wait_no_pods(client, name, deadline).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Polls until namespace `namespace` has no pods (true) or the deadline passes (false).
async fn wait_no_pods(
    client: &Client,
    namespace: &str,
    deadline: tokio::time::Instant,
) -> Result<bool, VerbError> {
    loop {
        let pods = client
            .list::<Pod>(&ListParams::namespace(namespace))
            .await?;
        if pods.items.is_empty() {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Polls until the object is gone (true) or the deadline passes (false).
pub(crate) async fn wait_gone(
    client: &Client,
    kind: Kind,
    namespace: &str,
    name: &str,
    deadline: tokio::time::Instant,
) -> Result<bool, skiff_client::Error> {
    loop {
        match client.get_object(kind, namespace, name).await {
            Err(e) if e.is_not_found() => return Ok(true),
            Err(e) => return Err(e),
            Ok(_) if tokio::time::Instant::now() >= deadline => return Ok(false),
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}

/// `skiff scale deploy/NAME --replicas=N` (or `deploy NAME`).
pub async fn scale(
    client: &Client,
    namespace: &str,
    targets: &[String],
    replicas: i32,
) -> Result<String, VerbError> {
    let name = match crate::target::one(targets, "scale")? {
        (Kind::Deployment, name) => name,
        (kind, _) => {
            return Err(VerbError::Usage(format!(
                "scale works on deployments, not {}",
                kind.plural()
            )));
        }
    };
    let name = name.as_str();
    if replicas < 0 {
        return Err(VerbError::Usage("--replicas must be 0 or more".into()));
    }
    client.scale(namespace, name, replicas).await?;
    Ok(format!("{}/{name} scaled\n", Kind::Deployment.resource()))
}

/// kubectl's `TYPE/NAME` for one object: TYPE is any name [`Kind::parse`] takes, or the
/// resource name kubectl prints (`deployment.apps`, as in `deployment.apps/web created`).
pub fn parse_target(target: &str) -> Option<(Kind, &str)> {
    let (kind, name) = target.split_once('/')?;
    let kind =
        Kind::parse(kind).or_else(|| Kind::ALL.into_iter().find(|k| k.resource() == kind))?;
    Some((kind, name))
}

/// NAME from `deploy/NAME` (or any other [`parse_target`] name of deployments), the way the
/// deployment verbs name their target.
pub fn deployment_name<'a>(target: &'a str, verb: &str) -> Result<&'a str, VerbError> {
    match parse_target(target) {
        Some((Kind::Deployment, name)) => Ok(name),
        _ => Err(VerbError::Usage(format!(
            "{verb} works on deployments: name one as deploy/NAME, not {target:?}"
        ))),
    }
}

/// The annotation `rollout restart` stamps on the pod template, as kubectl does.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

/// `skiff rollout restart deploy/NAME`: a template change makes the deployment controller
/// replace every pod by a rolling update.
pub async fn rollout_restart(
    client: &Client,
    namespace: &str,
    target: &str,
) -> Result<String, VerbError> {
    let name = deployment_name(target, "rollout restart")?;
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    client
        .modify(namespace, name, |d: &mut Deployment| {
            d.spec
                .template
                .metadata
                .annotations
                .insert(RESTARTED_AT.to_string(), now.clone());
            true
        })
        .await?;
    Ok(format!(
        "{}/{name} restarted\n",
        Kind::Deployment.resource()
    ))
}

/// Parses `k=v` (set) and `k-` (remove) arguments of `label` / `annotate`.
pub fn metadata_patch(
    pairs: &[String],
    labels: bool,
    overwrite: bool,
) -> Result<MetadataPatch, VerbError> {
    let mut patch = MetadataPatch::default().overwrite(overwrite);
    for pair in pairs {
        patch = if let Some(key) = pair.strip_suffix('-') {
            if labels {
                patch.remove_label(key)
            } else {
                patch.remove_annotation(key)
            }
        } else if let Some((key, value)) = pair.split_once('=') {
            if labels {
                patch.set_label(key, value)
            } else {
                patch.set_annotation(key, value)
            }
        } else {
            return Err(VerbError::Usage(format!(
                "{pair:?} is neither KEY=VALUE nor KEY-"
            )));
        };
    }
    Ok(patch)
}

/// What `label` prints for a patch, as kubectl decides it: `unlabeled` when it only removed
/// labels, `labeled` otherwise; `annotate` always says `annotated`.
pub fn metadata_verb(patch: &MetadataPatch, labels: bool) -> &'static str {
    if !labels {
        "annotated"
    } else if !patch.labels.is_empty() && patch.labels.iter().all(|(_, v)| v.is_none()) {
        "unlabeled"
    } else {
        "labeled"
    }
}

/// What kubectl's `label` says of one object whose labels are `current` (a JSON map, or
/// null): `label "k" not found.` for each key to remove that it lacks, and its verb from
/// what would really change — `labeled`, `unlabeled`, `modified` (both) or `not labeled`.
pub fn label_change(current: &serde_json::Value, patch: &MetadataPatch) -> (String, &'static str) {
    let mut notes = String::new();
    let (mut added, mut removed) = (false, false);
    for (key, value) in &patch.labels {
        let present = current.get(key).and_then(|v| v.as_str());
        match value {
            Some(value) => added |= present != Some(value.as_str()),
            None if present.is_some() => removed = true,
            None => notes.push_str(&format!("label {key:?} not found.\n")),
        }
    }
    let verb = match (added, removed) {
        (true, true) => "modified",
        (true, false) => "labeled",
        (false, true) => "unlabeled",
        (false, false) => "not labeled",
    };
    (notes, verb)
}

/// `skiff label|annotate TYPE NAME… | TYPE/NAME… | TYPE -l SEL | TYPE --all  k=v|k- …
/// [--overwrite]`: `pod/x labeled` per object; like kubectl it carries on past an object it
/// cannot change (reported in [`Outcome::failed`]).
pub async fn patch_metadata(
    client: &Client,
    requests: &[Request],
    namespace: &str,
    selection: &Selection,
    patch: &MetadataPatch,
    labels: bool,
) -> Result<Outcome, VerbError> {
    let verb = metadata_verb(patch, labels);
    let mut outcome = Outcome::default();
    for request in requests {
        let kind = request.kind;
        let ns = if kind.is_namespaced() { namespace } else { "" };
        for name in selected_names(client, request, namespace, selection).await? {
            let mut verb = verb;
            if labels {
                // kubectl looks at the object first: it names each absent key it was asked
                // to remove, and sends nothing when nothing would change.
                let current = match client.get_raw(kind, ns, &name).await {
                    Ok(object) => object,
                    Err(e) => {
                        outcome.failed.push(VerbError::from(e).to_string());
                        continue;
                    }
                };
                let (notes, label_verb) = label_change(&current["metadata"]["labels"], patch);
                outcome.out.push_str(&notes);
                verb = label_verb;
                if verb == "not labeled" {
                    outcome
                        .out
                        .push_str(&format!("{}/{name} {verb}\n", kind.resource()));
                    continue;
                }
            }
            match client.patch_raw(kind, ns, &name, patch).await {
                Ok(_) => outcome
                    .out
                    .push_str(&format!("{}/{name} {verb}\n", kind.resource())),
                Err(e) => outcome.failed.push(VerbError::from(e).to_string()),
            }
        }
    }
    if outcome.out.is_empty() && outcome.failed.is_empty() {
        outcome.out = format!("No resources found in {namespace} namespace.\n");
    }
    Ok(outcome)
}

/// `skiff cordon|uncordon NODE`.
pub async fn node_verb(client: &Client, verb: &str, node: &str) -> Result<String, VerbError> {
    Ok(if verb == "cordon" {
        client.cordon(node).await?;
        format!("node/{node} cordoned\n")
    } else {
        client.uncordon(node).await?;
        format!("node/{node} uncordoned\n")
    })
}

/// The pods on a node that drain refuses without --force: those no controller owns (they
/// would not come back), unless they already finished — kubectl's rule.
pub fn unreplicated(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .filter(|p| {
            let finished = matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            );
            let owned = p
                .metadata
                .owner_references
                .iter()
                .any(|o| o.controller == Some(true));
            !finished && !owned
        })
        .map(|p| {
            let ns = p.metadata.namespace.as_deref().unwrap_or_default();
            format!("{ns}/{}", p.metadata.name)
        })
        .collect()
}

/// `skiff drain NODE [--force]`: cordons the node, then deletes its pods — unless some have
/// no controller and there is no --force, when it deletes none and fails with kubectl's
/// words (with --force it warns about them).
pub async fn drain(client: &Client, node: &str, force: bool) -> Result<Outcome, VerbError> {
    client.cordon(node).await?;
    let mut outcome = Outcome {
        out: format!("node/{node} cordoned\n"),
        failed: Vec::new(),
    };
    let on_node = ListParams::all_namespaces().fields(format!("spec.nodeName={node}"));
    let pods = client.list::<Pod>(&on_node).await?.items;
    let bare = unreplicated(&pods);
    if !bare.is_empty() {
        let problem = format!(
            "cannot delete Pods that declare no controller (use --force to override): {}",
            bare.join(", ")
        );
        if !force {
            outcome.failed = vec![
                format!(
                    "error: unable to drain node \"{node}\" due to error: {problem}, continuing command..."
                ),
                format!("There are pending nodes to be drained:\n {node}"),
                format!("error: {problem}"),
            ];
            return Ok(outcome);
        }
        eprintln!(
            "Warning: deleting Pods that declare no controller: {}",
            bare.join(", ")
        );
    }
    let drained = client.drain(node, None).await?;
    for pod in drained.evicted {
        let (_, name) = pod.split_once('/').unwrap_or(("", &pod));
        outcome
            .out
            .push_str(&format!("evicting pod {pod}\npod/{name} evicted\n"));
    }
    outcome.out.push_str(&format!("node/{node} drained\n"));
    Ok(outcome)
}

/// `skiff cluster status`: the members, the leader, each member's health.
pub fn cluster_status_text(status: &ClusterStatusResponse) -> String {
    let mut out = format!(
        "leader: {}   term: {}   applied index: {} (answered by member {})\n",
        status
            .leader_id
            .map(|id| id.to_string())
            .unwrap_or_else(|| "none".into()),
        status.term,
        status.last_applied,
        status.node_id
    );
    let rows: Vec<Vec<String>> = status
        .members
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                m.address.clone(),
                if m.voter { "voter" } else { "learner" }.into(),
                if m.healthy {
                    m.state.clone()
                } else {
                    "Unreachable".into()
                },
                m.term.to_string(),
                m.last_applied.to_string(),
                if m.error.is_empty() {
                    "-".into()
                } else {
                    m.error.clone()
                },
            ]
        })
        .collect();
    let header = ["ID", "ADDRESS", "ROLE", "STATE", "TERM", "APPLIED", "ERROR"];
    out.push_str(&Table::new(&header, rows).render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::proto::Member;

    #[test]
    fn targets_name_a_kind_and_an_object() {
        assert_eq!(parse_target("pod/web"), Some((Kind::Pod, "web")));
        assert_eq!(parse_target("po/web"), Some((Kind::Pod, "web")));
        for deployment in ["deploy/web", "deployments/web", "deployment.apps/web"] {
            assert_eq!(parse_target(deployment), Some((Kind::Deployment, "web")));
            assert_eq!(deployment_name(deployment, "scale").unwrap(), "web");
        }
        assert_eq!(parse_target("web"), None);
        assert_eq!(parse_target("pod.apps/web"), None);
        assert_eq!(
            deployment_name("pod/web", "scale").unwrap_err().to_string(),
            "scale works on deployments: name one as deploy/NAME, not \"pod/web\""
        );
    }

    #[test]
    fn metadata_patch_arguments() {
        let pairs = ["tier=web".to_string(), "old-".to_string()];
        assert!(metadata_patch(&pairs, true, false).is_ok());
        let err = metadata_patch(&["oops".to_string()], true, false).unwrap_err();
        assert_eq!(err.to_string(), "\"oops\" is neither KEY=VALUE nor KEY-");
    }

    #[test]
    fn cluster_status_golden() {
        let status = ClusterStatusResponse {
            node_id: 2,
            leader_id: Some(1),
            term: 3,
            last_applied: 42,
            members: vec![
                Member {
                    id: 1,
                    address: "10.250.0.2:7000".into(),
                    voter: true,
                    healthy: true,
                    state: "Leader".into(),
                    term: 3,
                    last_applied: 42,
                    last_log_index: 42,
                    error: String::new(),
                    ..Member::default()
                },
                Member {
                    id: 3,
                    address: "10.250.0.4:7000".into(),
                    voter: true,
                    healthy: false,
                    state: "Unknown".into(),
                    term: 0,
                    last_applied: 0,
                    last_log_index: 0,
                    error: "connection refused".into(),
                    ..Member::default()
                },
            ],
        };
        assert_eq!(
            cluster_status_text(&status),
            "\
leader: 1   term: 3   applied index: 42 (answered by member 2)
ID   ADDRESS           ROLE    STATE         TERM   APPLIED   ERROR
1    10.250.0.2:7000   voter   Leader        3      42        -
3    10.250.0.4:7000   voter   Unreachable   0      0         connection refused
"
        );
    }
}

// What `skiff run` builds, as its flags give it (a `//` comment: a doc comment would be
// the subcommand's help).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    pub name: String,
    #[arg(long)]
    pub image: String,
    /// KEY=VALUE[,KEY=VALUE…] (default run=NAME).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// NAME=VALUE, repeatable.
    #[arg(long)]
    pub env: Vec<String>,
    #[arg(long)]
    pub port: Option<u16>,
    /// Always, OnFailure or Never.
    #[arg(long)]
    pub restart: Option<String>,
    /// Always, IfNotPresent or Never (default: the server's, Always for an untagged or
    /// :latest image, else IfNotPresent).
    #[arg(long)]
    pub image_pull_policy: Option<String>,
    /// The command and its arguments.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// The pod `skiff run` creates (label `run=NAME` unless labels are given, like kubectl).
pub fn run_pod(args: &RunArgs) -> Result<Pod, VerbError> {
    let mut labels = serde_json::Map::new();
    if args.labels.is_empty() {
        labels.insert("run".into(), args.name.clone().into());
    }
    for pair in &args.labels {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| VerbError::Usage(format!("--labels: {pair:?} is not KEY=VALUE")))?;
        labels.insert(k.into(), v.into());
    }
    let env: Vec<serde_json::Value> = args
        .env
        .iter()
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| serde_json::json!({"name": k, "value": v}))
                .ok_or_else(|| VerbError::Usage(format!("--env: {pair:?} is not NAME=VALUE")))
        })
        .collect::<Result<_, _>>()?;
    let restart = args.restart.clone().unwrap_or_else(|| "Always".into());
    if !matches!(restart.as_str(), "Always" | "OnFailure" | "Never") {
        return Err(VerbError::Usage(format!(
            "--restart: {restart:?} must be Always, OnFailure or Never"
        )));
    }
    let mut container = serde_json::json!({"name": args.name, "image": args.image});
    if !args.command.is_empty() {
        container["command"] = serde_json::json!(args.command);
    }
    if !env.is_empty() {
        container["env"] = serde_json::json!(env);
    }
    if let Some(port) = args.port {
        container["ports"] = serde_json::json!([{"containerPort": port}]);
    }
    if let Some(policy) = &args.image_pull_policy {
        if !matches!(policy.as_str(), "Always" | "IfNotPresent" | "Never") {
            return Err(VerbError::Usage(format!(
                "--image-pull-policy: {policy:?} must be Always, IfNotPresent or Never"
            )));
        }
        container["imagePullPolicy"] = serde_json::json!(policy);
    }
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": args.name, "labels": labels},
        "spec": {"restartPolicy": restart, "containers": [container]}
    }))
    .map_err(|e| VerbError::Usage(format!("cannot build the pod: {e}")))
}

/// The container name kubectl's `create deployment` derives from an image: its last path
/// part without tag or digest; one with `_` or `.` gets them as `-` and a random suffix.
pub fn container_name(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    let name = last.split([':', '@']).next().unwrap_or(last);
    if !name.contains(['_', '.']) {
        return name.to_string();
    }
    let suffix: String = uuid::Uuid::new_v4().simple().to_string()[..5].to_string();
    format!("{}-{suffix}", name.replace(['_', '.'], "-"))
}

/// What `skiff create deployment` builds from its flags.
#[derive(Debug, Clone, Default)]
pub struct NewDeployment {
    pub name: String,
    pub images: Vec<String>,
    pub replicas: i32,
    pub port: Option<u16>,
    pub command: Vec<String>,
}

/// The deployment `skiff create deployment` creates, as kubectl's does: labelled and
/// selected by `app=NAME`, a container per image named after it, the port on the first,
/// the command on every one.
pub fn new_deployment(new: &NewDeployment) -> Result<Deployment, VerbError> {
    if new.images.is_empty() {
        return Err(VerbError::Usage("--image is required".into()));
    }
    if new.images.len() > 1 && !new.command.is_empty() {
        return Err(VerbError::Usage(
            "cannot specify multiple --image options and command".into(),
        ));
    }
    if new.replicas < 0 {
        return Err(VerbError::Usage("--replicas must be 0 or more".into()));
    }
    let labels = serde_json::json!({"app": new.name});
    let containers: Vec<serde_json::Value> = new
        .images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let mut container = serde_json::json!({"name": container_name(image), "image": image});
            if !new.command.is_empty() {
                container["command"] = serde_json::json!(new.command);
            }
            if let (0, Some(port)) = (i, new.port) {
                container["ports"] = serde_json::json!([{"containerPort": port}]);
            }
            container
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": new.name, "labels": labels},
        "spec": {
            "replicas": new.replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": containers}}
        }
    }))
    .map_err(|e| VerbError::Usage(format!("cannot build the deployment: {e}")))
}

/// `skiff api-resources`: kubectl's NAME SHORTNAMES APIVERSION NAMESPACED KIND table, the
/// core group first, then by group and name; `-o name` prints `name[.group]` lines.
pub fn api_resources(output: Option<&str>) -> Result<String, VerbError> {
    let mut kinds = Kind::ALL.to_vec();
    kinds.sort_by_key(|k| (k.group(), k.plural()));
    match output {
        None | Some("wide") => {}
        Some("name") => {
            return Ok(kinds
                .iter()
                .map(|k| match k.group() {
                    "" => format!("{}\n", k.plural()),
                    group => format!("{}.{group}\n", k.plural()),
                })
                .collect());
        }
        Some(other) => {
            return Err(VerbError::Usage(format!(
                "--output {other:?} is not available: use wide or name"
            )));
        }
    }
    let rows = kinds
        .iter()
        .map(|k| {
            vec![
                k.plural().to_string(),
                k.short_name().to_string(),
                k.api_version().to_string(),
                k.is_namespaced().to_string(),
                k.as_str().to_string(),
            ]
        })
        .collect();
    let header = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"];
    Ok(Table::new(&header, rows).render())
}

/// `Client Version: v0.1.0` (kubectl's first line of `version`).
pub fn client_version() -> String {
    format!("Client Version: v{}\n", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod more_tests {
    use super::*;

    #[test]
    fn create_deployment_builds_kubectls_deployment() {
        let d = new_deployment(&NewDeployment {
            name: "web".into(),
            images: vec!["registry:5000/library/busybox:1.36".into()],
            replicas: 2,
            port: Some(8080),
            command: vec!["httpd".into(), "-f".into()],
        })
        .unwrap();
        assert_eq!(d.metadata.labels["app"], "web");
        assert_eq!(d.spec.replicas, Some(2));
        assert_eq!(d.spec.selector.match_labels["app"], "web");
        assert_eq!(d.spec.template.metadata.labels["app"], "web");
        let c = &d.spec.template.spec.containers[0];
        assert_eq!(c.name, "busybox");
        assert_eq!(c.command, ["httpd", "-f"]);
        assert_eq!(c.ports[0].container_port, 8080);
        let two = NewDeployment {
            name: "x".into(),
            images: vec!["a".into(), "b".into()],
            replicas: 1,
            command: vec!["sh".into()],
            ..NewDeployment::default()
        };
        assert!(new_deployment(&two).is_err());
        let name = container_name("my_app.v2:1");
        assert!(name.starts_with("my-app-v2-") && name.len() == 15, "{name}");
    }

    #[test]
    fn api_resources_lists_every_kind_as_kubectl_does() {
        assert_eq!(
            api_resources(None).unwrap(),
            "\
NAME          SHORTNAMES   APIVERSION   NAMESPACED   KIND
events        ev           v1           true         Event
namespaces    ns           v1           false        Namespace
nodes         no           v1           false        Node
pods          po           v1           true         Pod
deployments   deploy       apps/v1      true         Deployment
"
        );
        assert_eq!(
            api_resources(Some("name")).unwrap(),
            "events\nnamespaces\nnodes\npods\ndeployments.apps\n"
        );
    }

    #[test]
    fn a_pod_with_several_containers_defaults_as_kubectl_does() {
        let pod = |annotations: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "p", "annotations": annotations},
                "spec": {"containers": [{"name": "a"}, {"name": "b"}]}
            }))
            .unwrap()
        };
        assert_eq!(
            default_container(&pod(serde_json::json!({}))),
            (
                "a".to_string(),
                vec!["Defaulted container \"a\" out of: a, b".to_string()]
            )
        );
        let annotated = pod(serde_json::json!({DEFAULT_CONTAINER: "b"}));
        assert_eq!(default_container(&annotated), ("b".to_string(), vec![]));
        let wrong = pod(serde_json::json!({DEFAULT_CONTAINER: "z"}));
        assert_eq!(
            default_container(&wrong).1,
            [
                "Default container name \"z\" not found in pod p",
                "Defaulted container \"a\" out of: a, b"
            ]
        );
    }

    #[test]
    fn label_names_an_absent_key_and_says_what_really_changed() {
        let current = serde_json::json!({"app": "web", "tier": "front"});
        let patch = |p: MetadataPatch| label_change(&current, &p);
        let none = MetadataPatch::default;
        assert_eq!(
            patch(none().remove_label("missing")),
            ("label \"missing\" not found.\n".to_string(), "not labeled")
        );
        assert_eq!(
            patch(none().remove_label("app")),
            (String::new(), "unlabeled")
        );
        assert_eq!(patch(none().set_label("app", "web")).1, "not labeled");
        assert_eq!(patch(none().set_label("app", "db")).1, "labeled");
        let both = none().set_label("new", "1").remove_label("tier");
        assert_eq!(patch(both).1, "modified");
        let absent = label_change(&serde_json::Value::Null, &none().remove_label("x"));
        assert_eq!(absent.1, "not labeled");
    }

    #[test]
    fn label_says_unlabeled_when_it_only_removes() {
        let remove = metadata_patch(&["a-".to_string()], true, false).unwrap();
        let both = metadata_patch(&["a-".to_string(), "b=1".to_string()], true, false).unwrap();
        assert_eq!(metadata_verb(&remove, true), "unlabeled");
        assert_eq!(metadata_verb(&both, true), "labeled");
        assert_eq!(metadata_verb(&remove, false), "annotated");
    }

    #[test]
    fn drain_refuses_pods_no_controller_owns() {
        let pod = |name: &str, owned: bool, phase: &str| -> Pod {
            let owners = if owned {
                serde_json::json!([{"apiVersion": "apps/v1", "kind": "Deployment",
                                    "name": "web", "uid": "u", "controller": true}])
            } else {
                serde_json::json!([])
            };
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "default", "ownerReferences": owners},
                "spec": {"containers": [{"name": "a"}]},
                "status": {"phase": phase}
            }))
            .unwrap()
        };
        let pods = [
            pod("owned", true, "Running"),
            pod("bare", false, "Running"),
            pod("done", false, "Succeeded"),
        ];
        assert_eq!(unreplicated(&pods), ["default/bare"]);
    }

    #[test]
    fn run_builds_kubectls_pod() {
        let pod = run_pod(&RunArgs {
            name: "web".into(),
            image: "busybox".into(),
            env: vec!["A=1".into()],
            port: Some(8080),
            restart: Some("Never".into()),
            image_pull_policy: Some("IfNotPresent".into()),
            command: vec!["/bin/busybox".into(), "httpd".into(), "-f".into()],
            ..RunArgs::default()
        })
        .unwrap();
        assert_eq!(pod.metadata.labels["run"], "web");
        assert_eq!(pod.spec.restart_policy.as_deref(), Some("Never"));
        let c = &pod.spec.containers[0];
        assert_eq!((c.name.as_str(), c.image.as_str()), ("web", "busybox"));
        assert_eq!(c.command, ["/bin/busybox", "httpd", "-f"]);
        assert_eq!(c.env[0].value.as_deref(), Some("1"));
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert!(
            run_pod(&RunArgs {
                image_pull_policy: Some("Sometimes".into()),
                ..RunArgs::default()
            })
            .is_err()
        );
        assert!(
            run_pod(&RunArgs {
                restart: Some("Sometimes".into()),
                ..RunArgs::default()
            })
            .is_err()
        );
        assert!(
            run_pod(&RunArgs {
                labels: vec!["novalue".into()],
                ..RunArgs::default()
            })
            .is_err()
        );
    }
}

/// `skiff token create NAME --role R [-n NS] [--ttl D]`: the token (shown only now), then
/// where it applies.
pub async fn token_create(client: &Client, new: &NewToken) -> Result<String, VerbError> {
    let (secret, info) = client.create_token(new).await?;
    let scope = match info.namespace.as_str() {
        "" => "cluster-wide".to_string(),
        ns => format!("namespace {ns}"),
    };
    let expiry = match info.expires_at.as_str() {
        "" => "never expires".to_string(),
        at => format!("expires {at}"),
    };
    Ok(format!(
        "{secret}\n# token/{} created: role {}, {scope}, {expiry}; it is not shown again\n",
        info.name, info.role
    ))
}

/// `skiff token ls [-n NS]`: NAME ROLE NAMESPACE EXPIRES AGE.
pub async fn token_list(client: &Client, namespace: Option<&str>) -> Result<String, VerbError> {
    let tokens = client.list_tokens(namespace).await?;
    if tokens.is_empty() {
        return Ok(match namespace {
            Some(ns) => format!("No tokens found in {ns} namespace.\n"),
            None => "No tokens found.\n".to_string(),
        });
    }
    let now = chrono::Utc::now();
    let age = |at: &str| match chrono::DateTime::parse_from_rfc3339(at) {
        Ok(t) => table::human_duration((now - t.to_utc()).num_seconds()),
        Err(_) => "<unknown>".to_string(),
    };
    let rows: Vec<Vec<String>> = tokens
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.role.clone(),
                if t.namespace.is_empty() {
                    "<all>".to_string()
                } else {
                    t.namespace.clone()
                },
                if t.expires_at.is_empty() {
                    "<never>".to_string()
                } else {
                    t.expires_at.clone()
                },
                age(&t.created_at),
            ]
        })
        .collect();
    let header = ["NAME", "ROLE", "NAMESPACE", "EXPIRES", "AGE"];
    Ok(Table::new(&header, rows).render())
}

/// `skiff token rm NAME`.
pub async fn token_remove(
    client: &Client,
    name: &str,
    namespace: Option<&str>,
) -> Result<String, VerbError> {
    client.delete_token(name, namespace).await?;
    Ok(format!("token/{name} deleted\n"))
}
