//! `skiff apply -f`, `skiff create -f` and `skiff delete -f`: manifests from files,
//! directories or standard input, applied the way kubectl's client-side apply does it.
//!
//! Everything is read, parsed and validated before the first write, so a typo in the last
//! document of the last file leaves the cluster untouched. The verbs then work object by
//! object and, like kubectl, carry on past an object that fails: the objects that worked are
//! reported in [`ApplyError::Failed::done`], the failures (one kubectl-style line each) in
//! [`ApplyError::Failed::errors`].
//!
//! `apply` keeps the manifest it applied (JSON, namespace filled in) in the annotation
//! [`LAST_APPLIED`]. The next apply does a three-way merge of the live object, the new
//! manifest and that previous manifest: what the manifest says wins; what the previous
//! manifest said and the new one no longer does is removed; everything else on the live
//! object (labels from `skiff label`, a pod's `spec.nodeName`, a node's `spec.podCIDR`, a
//! deployment's replica count set by `skiff scale` when the manifest has none) is kept.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value};
use skiff_api::kind::Kind;
use skiff_api::manifest::{ManifestError, parse_entries};
use skiff_api::object::Object;
use skiff_api::validate::{self, ValidationError};
use skiff_client::Client;

use crate::error::{refusal, stderr_line};
use crate::verbs::{DeleteOptions, wait_all_gone};

/// Where `apply` keeps the manifest it applied last, as kubectl does.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// How often one object's read-modify-write starts over after a concurrent change.
const MAX_ATTEMPTS: usize = 10;

/// The name standard input goes by in messages, as in kubectl.
const STDIN: &str = "STDIN";

/// The objects of one manifest file (or of standard input), in document order.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The path as the user gave it (joined with the file name for a directory entry), or
    /// `STDIN`.
    pub name: String,
    pub objects: Vec<Object>,
}

/// Why `apply`, `create` or `delete -f` failed. The messages carry no `error: ` prefix,
/// except the lines of [`ApplyError::Failed`], which are complete as printed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the path \"{0}\" does not exist")]
    PathNotFound(String),
    #[error("{file}: {error}")]
    Read { file: String, error: std::io::Error },
    /// Unparseable document, unknown kind or unknown field: `pod.yaml: document 2:
    /// spec.containers[0].imagee: unknown field ...`.
    #[error("{file}: {error}")]
    Manifest { file: String, error: ManifestError },
    /// A document that parses but breaks a validation rule: `pod.yaml: document 1:
    /// metadata.name: Invalid value: ...` (several errors are joined with `; `).
    #[error("{file}: document {document}: {error}")]
    Invalid {
        file: String,
        document: usize,
        error: ValidationError,
    },
    /// An object the verb cannot handle, found before anything was written (a
    /// `generateName` without a name, for `apply` and `delete`).
    #[error("{file}: {message}")]
    Unsupported { file: String, message: String },
    #[error("no objects passed to {0}")]
    NoObjects(&'static str),
    /// A manifest names another namespace than the one `-n` gave, as kubectl refuses it.
    #[error(
        "the namespace from the provided object \"{object}\" does not match the namespace \"{given}\". You must pass '--namespace={object}' to perform this operation."
    )]
    NamespaceMismatch { object: String, given: String },
    #[error("{0}")]
    Wait(String),
    /// Some objects failed. `done` holds the lines of those that worked (print them to
    /// stdout first); `errors` one line per failure, already prefixed as kubectl prints it
    /// (`Error from server (NotFound): ...`, `The Pod "web" is invalid: ...` or
    /// `error: ...`): print the error as it is to stderr, then exit 1.
    #[error("{}", errors.join("\n"))]
    Failed {
        done: Vec<String>,
        errors: Vec<String>,
    },
}

impl ApplyError {
    /// The lines of the objects that were handled before the error (only `Failed` has any).
    pub fn done(&self) -> &[String] {
        match self {
            ApplyError::Failed { done, .. } => done,
            _ => &[],
        }
    }
}

// ------------------------------------------------------------------------- reading

/// Reads, parses and validates every manifest: each path is a file, a directory (its
/// `*.yaml`, `*.yml` and `*.json` files, sorted by name, not recursive) or `-` for standard
/// input. The first error stops reading and names the file, the document and the field.
pub fn read_sources(paths: &[String]) -> Result<Vec<Source>, ApplyError> {
    let mut sources = Vec::new();
    for path in paths {
        if path == "-" {
            let text =
                std::io::read_to_string(std::io::stdin()).map_err(|error| ApplyError::Read {
                    file: STDIN.into(),
                    error,
                })?;
            sources.push(parse_source(STDIN, &text)?);
            continue;
        }
        let dir = Path::new(path);
        let metadata = std::fs::metadata(dir).map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => ApplyError::PathNotFound(path.clone()),
            _ => ApplyError::Read {
                file: path.clone(),
                error,
            },
        })?;
        if !metadata.is_dir() {
            sources.push(read_file(path)?);
            continue;
        }
        let read_error = |error| ApplyError::Read {
            file: path.clone(),
            error,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            let manifest = Path::new(&entry.file_name())
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
            if manifest && !entry.path().is_dir() {
                files.push(entry.file_name());
            }
        }
        files.sort();
        for file in files {
            let name = dir.join(file).to_string_lossy().into_owned();
            sources.push(read_file(&name)?);
        }
    }
    Ok(sources)
}

fn read_file(path: &str) -> Result<Source, ApplyError> {
    let text = std::fs::read_to_string(path).map_err(|error| match error.kind() {
        std::io::ErrorKind::NotFound => ApplyError::PathNotFound(path.into()),
        _ => ApplyError::Read {
            file: path.into(),
            error,
        },
    })?;
    parse_source(path, &text)
}

/// Parses one file's text and validates each object as the server would on create.
pub fn parse_source(name: &str, text: &str) -> Result<Source, ApplyError> {
    let entries = parse_entries(text).map_err(|error| ApplyError::Manifest {
        file: name.into(),
        error,
    })?;
    for entry in &entries {
        let mut defaulted = entry.object.clone();
        defaulted.apply_defaults();
        if let Err(mut error) = validate::validate(&defaulted) {
            for field in &mut error.errors {
                field.path = entry.field_path(&field.path);
            }
            return Err(ApplyError::Invalid {
                file: name.into(),
                document: entry.document,
                error,
            });
        }
    }
    Ok(Source {
        name: name.into(),
        objects: entries.into_iter().map(|e| e.object).collect(),
    })
}

// ------------------------------------------------------------------------- naming

/// The object as it will be sent: namespaced kinds get `default_namespace` unless the
/// manifest names one; cluster-scoped kinds lose any namespace.
fn place(object: &Object, default_namespace: &str) -> Object {
    let mut object = object.clone();
    let namespaced = object.kind().is_namespaced();
    let meta = object.metadata_mut();
    if !namespaced {
        meta.namespace = None;
    } else if meta.namespace.as_deref().is_none_or(str::is_empty) {
        meta.namespace = Some(default_namespace.to_string());
    }
    object
}

fn namespace_of(object: &Object) -> &str {
    object.metadata().namespace.as_deref().unwrap_or_default()
}

/// One object to work on, with the file it came from.
struct Item<'a> {
    file: &'a str,
    object: Object,
}

/// Every object, placed in its namespace, namespaces first (`apply`, `create`) or last
/// (`delete`), otherwise in file and document order.
fn items<'a>(
    sources: &'a [Source],
    default_namespace: &str,
    verb: &'static str,
) -> Result<Vec<Item<'a>>, ApplyError> {
    let mut items: Vec<Item<'a>> = sources
        .iter()
        .flat_map(|source| {
            source.objects.iter().map(|object| Item {
                file: &source.name,
                object: place(object, default_namespace),
            })
        })
        .collect();
    if items.is_empty() {
        return Err(ApplyError::NoObjects(verb));
    }
    if verb != "create"
        && let Some(item) = items.iter().find(|i| i.object.metadata().name.is_empty())
    {
        let kind = item.object.kind();
        let message = match item.object.metadata().generate_name.as_deref() {
            Some(prefix) if verb == "apply" => {
                format!("{kind} with generateName {prefix:?}: cannot use generate name with apply")
            }
            _ => format!("{kind}: resource name may not be empty"),
        };
        return Err(ApplyError::Unsupported {
            file: item.file.into(),
            message,
        });
    }
    let namespaces_first = verb != "delete";
    items.sort_by_key(|i| (i.object.kind() == Kind::Namespace) != namespaces_first);
    Ok(items)
}

/// One failure as kubectl prints it.
fn error_line(object: &Object, error: &skiff_client::Error) -> String {
    use skiff_client::Error;
    let kind = object.kind();
    let name = &object.metadata().name;
    match error {
        Error::NotFound(m) => format!("Error from server (NotFound): {m}"),
        Error::AlreadyExists(m) => format!("Error from server (AlreadyExists): {m}"),
        Error::Conflict(m) => format!("Error from server (Conflict): {m}"),
        Error::Invalid(m) => format!("The {kind} {name:?} is invalid: {m}"),
        Error::Other { code, message } => format!("Error from server ({code}): {message}"),
        other => match refusal(other) {
            Some(message) => stderr_line(&message),
            None => format!("error: {}/{name}: {other}", kind.resource()),
        },
    }
}

/// The cluster cannot be reached: trying the remaining objects would only wait again.
fn is_fatal(error: &skiff_client::Error) -> bool {
    error.is_unavailable() || error.is_timeout() || error.is_unauthorized()
}

/// Runs `one` on every item, carrying on past failures unless the cluster is unreachable.
async fn each<'a, F, Fut>(items: &'a [Item<'a>], mut one: F) -> Result<Vec<String>, ApplyError>
where
    F: FnMut(&'a Item<'a>) -> Fut,
    Fut: Future<Output = Result<String, skiff_client::Error>>,
{
    let (mut done, mut errors) = (Vec::new(), Vec::new());
    for item in items {
        match one(item).await {
            Ok(line) => done.push(line),
            Err(error) => {
                errors.push(error_line(&item.object, &error));
                if is_fatal(&error) {
                    break;
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(done)
    } else {
        Err(ApplyError::Failed { done, errors })
    }
}

// ------------------------------------------------------------------------- verbs

/// `skiff apply -f`: creates what is missing and brings what exists in line with its
/// manifest. Returns `pod/web created`, `deployment.apps/web configured`,
/// `namespace/team-a unchanged`, one line per object.
pub async fn apply(
    client: &Client,
    sources: &[Source],
    default_namespace: &str,
) -> Result<Vec<String>, ApplyError> {
    let items = items(sources, default_namespace, "apply")?;
    each(&items, |item| apply_one(client, &item.object)).await
}

async fn apply_one(client: &Client, manifest: &Object) -> Result<String, skiff_client::Error> {
    let kind = manifest.kind();
    let name = &manifest.metadata().name;
    let line = |what: &str| format!("{}/{name} {what}", kind.resource());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let retry = attempt < MAX_ATTEMPTS;
        let live = match client.get_object(kind, namespace_of(manifest), name).await {
            Ok(live) => live,
            Err(e) if e.is_not_found() => {
                let mut object = manifest.clone();
                let applied = last_applied(manifest);
                object
                    .metadata_mut()
                    .annotations
                    .insert(LAST_APPLIED.into(), applied);
                match client.create_object(&object).await {
                    Ok(_) => return Ok(line("created")),
                    // Created by someone else in between: merge into theirs.
                    Err(e) if e.is_already_exists() && retry => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let previous = previous_applied(&live);
        let desired = merged(&live, manifest, previous.as_ref());
        if desired == live {
            return Ok(line("unchanged"));
        }
        match client.update_object(&desired).await {
            Ok(_) => return Ok(line("configured")),
            Err(e) if e.is_conflict() && retry => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `skiff create -f`: creates every object; one that exists already is an error
/// (`Error from server (AlreadyExists): pods "web" already exists`), reported after the
/// others were created. Returns `pod/web created` per object.
pub async fn create(
    client: &Client,
    sources: &[Source],
    default_namespace: &str,
) -> Result<Vec<String>, ApplyError> {
    let items = items(sources, default_namespace, "create")?;
    each(&items, |item| async move {
        let created = client.create_object(&item.object).await?;
        Ok(format!(
            "{}/{} created",
            created.kind().resource(),
            created.metadata().name
        ))
    })
    .await
}

/// `skiff delete -f`: deletes every object, namespaces last. Returns `pod "web" deleted`
/// per object; a missing one is reported as `Error from server (NotFound): pods "web" not
/// found` after the others were deleted.
/// With `-n` given, every namespaced object of the manifests must be in that namespace (or
/// name none): kubectl's check before it sends anything.
pub fn check_namespaces(sources: &[Source], given: &str) -> Result<(), ApplyError> {
    for object in sources.iter().flat_map(|s| &s.objects) {
        let named = object.metadata().namespace.as_deref().unwrap_or_default();
        if object.kind().is_namespaced() && !named.is_empty() && named != given {
            return Err(ApplyError::NamespaceMismatch {
                object: named.to_string(),
                given: given.to_string(),
            });
        }
    }
    Ok(())
}

/// `skiff delete -f`: `pod "web" deleted` per object; with `options.wait`, returns once every
/// object is gone (a namespace's pods too), as `delete TYPE NAME` does.
pub async fn delete_sources(
    client: &Client,
    sources: &[Source],
    default_namespace: &str,
    options: &DeleteOptions,
) -> Result<Vec<String>, ApplyError> {
    let items = items(sources, default_namespace, "delete")?;
    let result = each(&items, |item| async move {
        let object = &item.object;
        let (kind, name) = (object.kind(), &object.metadata().name);
        let deleted = client
            .delete_object(kind, namespace_of(object), name, &options.params)
            .await;
        match deleted {
            Ok(_) => Ok(format!("{} {name:?} deleted", kind.resource())),
            // Nothing to print for what was already gone.
            Err(e) if e.is_not_found() && options.ignore_not_found => Ok(String::new()),
            Err(e) => Err(e),
        }
    })
    .await;
    let result: Result<Vec<String>, ApplyError> = match result {
        Ok(done) => Ok(done.into_iter().filter(|l| !l.is_empty()).collect()),
        Err(ApplyError::Failed { done, errors }) => Err(ApplyError::Failed {
            done: done.into_iter().filter(|l| !l.is_empty()).collect(),
            errors,
        }),
        Err(e) => Err(e),
    };
    if let Some(timeout) = options.wait {
        let deadline = tokio::time::Instant::now() + timeout;
        let objects: Vec<(Kind, String, String)> = items
            .iter()
            .map(|i| {
                let meta = i.object.metadata();
                let ns = namespace_of(&i.object).to_string();
                (i.object.kind(), ns, meta.name.clone())
            })
            .collect();
        let gone = wait_all_gone(client, &objects, deadline).await;
        match gone {
            Ok(true) => {}
            Ok(false) => {
                let done = result.as_ref().map_or_else(|e| e.done(), Vec::as_slice);
                for line in done {
                    println!("{line}");
                }
                return Err(ApplyError::Wait(
                    "timed out waiting for the objects to be deleted".into(),
                ));
            }
            Err(e) => return Err(ApplyError::Wait(e.to_string())),
        }
    }
    result
}

// ------------------------------------------------------------------------- merging

/// The manifest as kept in [`LAST_APPLIED`]: JSON, without that annotation itself.
fn last_applied(manifest: &Object) -> String {
    let mut manifest = manifest.clone();
    manifest.metadata_mut().annotations.remove(LAST_APPLIED);
    String::from_utf8(manifest.to_json()).expect("serde_json writes UTF-8")
}

/// The manifest the live object was last applied from, if it was and it still parses.
fn previous_applied(live: &Object) -> Option<Object> {
    let text = live.metadata().annotations.get(LAST_APPLIED)?;
    Object::from_json(Some(live.kind()), text.as_bytes()).ok()
}

/// Top-level fields that are not the object's desired state.
const NOT_DESIRED: [&str; 4] = ["apiVersion", "kind", "metadata", "status"];

fn desired_part(object: &Object) -> Map<String, Value> {
    match object.to_value() {
        Value::Object(mut map) => {
            for key in NOT_DESIRED {
                map.remove(key);
            }
            map
        }
        _ => Map::new(),
    }
}

/// Labels or annotations: the live ones, minus those the previous manifest had and this one
/// has not, plus this manifest's.
fn merge_map(
    live: &BTreeMap<String, String>,
    manifest: &BTreeMap<String, String>,
    previous: Option<&BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let mut merged = live.clone();
    for key in previous.into_iter().flat_map(BTreeMap::keys) {
        if !manifest.contains_key(key) {
            merged.remove(key);
        }
    }
    merged.extend(manifest.iter().map(|(k, v)| (k.clone(), v.clone())));
    merged.remove(LAST_APPLIED);
    merged
}

/// Three-way merge of JSON mappings (kubectl's JSON merge patch semantics): the manifest's
/// fields win, mappings merge key by key, lists and scalars are replaced whole. A live field
/// the manifest lacks is dropped when the previous manifest set it, or when it still holds
/// the default the server gave the previous manifest (so it is defaulted afresh: switching
/// a deployment to `Recreate` drops the defaulted `rollingUpdate`); otherwise it stays.
fn three_way(
    live: &Map<String, Value>,
    manifest: &Map<String, Value>,
    previous: Option<&Map<String, Value>>,
    previous_defaulted: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut merged = Map::new();
    for (key, value) in live {
        if manifest.contains_key(key) {
            continue;
        }
        let set_before = previous.is_some_and(|p| p.contains_key(key));
        let old_default = previous_defaulted.and_then(|p| p.get(key)) == Some(value);
        if !set_before && !old_default {
            merged.insert(key.clone(), value.clone());
        }
    }
    for (key, wanted) in manifest {
        let value = match (live.get(key), wanted) {
            (Some(Value::Object(live)), Value::Object(wanted)) => Value::Object(three_way(
                live,
                wanted,
                previous.and_then(|p| p.get(key)).and_then(Value::as_object),
                previous_defaulted
                    .and_then(|p| p.get(key))
                    .and_then(Value::as_object),
            )),
            _ => wanted.clone(),
        };
        merged.insert(key.clone(), value);
    }
    merged
}

/// What `apply` writes for an existing object: the live object with its desired state
/// (spec) merged three ways with `manifest` and `previous_applied` (see [`three_way`]), its
/// labels and annotations merged the same way, [`LAST_APPLIED`] set to `manifest`, and
/// identity, resourceVersion, owners and status kept. Defaulted as the server stores it,
/// so `merged(..) == live` means there is nothing to do.
fn merged(live: &Object, manifest: &Object, previous_applied: Option<&Object>) -> Object {
    let mut meta = live.metadata().clone();
    let (wanted, before) = (manifest.metadata(), previous_applied.map(Object::metadata));
    meta.labels = merge_map(&meta.labels, &wanted.labels, before.map(|m| &m.labels));
    meta.annotations = merge_map(
        &meta.annotations,
        &wanted.annotations,
        before.map(|m| &m.annotations),
    );
    meta.annotations
        .insert(LAST_APPLIED.into(), last_applied(manifest));

    let previous_defaulted = previous_applied.map(|p| {
        let mut p = p.clone();
        p.apply_defaults();
        desired_part(&p)
    });
    let mut value = three_way(
        &desired_part(live),
        &desired_part(manifest),
        previous_applied.map(desired_part).as_ref(),
        previous_defaulted.as_ref(),
    );
    let live_value = live.to_value();
    for key in NOT_DESIRED {
        if let Some(v) = live_value.get(key) {
            value.insert(key.into(), v.clone());
        }
    }
    let mut desired = Object::from_value(Some(live.kind()), Value::Object(value))
        // Both sides decode, so a merge of them does; should it not, replace outright.
        .unwrap_or_else(|_| manifest.clone());
    *desired.metadata_mut() = meta;
    desired.apply_defaults();
    desired
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::manifest::parse_manifests;

    fn write(dir: &Path, name: &str, text: &str) -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn one(text: &str) -> Object {
        let mut objects = parse_manifests(text).unwrap();
        assert_eq!(objects.len(), 1);
        objects.remove(0)
    }

    const MULTI: &str = "\
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: team-a, labels: {app: web}}
spec:
  containers: [{name: web, image: busybox}]
---
# a comment only
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: busybox}]}
";

    #[test]
    fn reads_a_multi_document_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "all.yaml", MULTI);
        let sources = read_sources(std::slice::from_ref(&path)).unwrap();
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].name, path);
        let kinds: Vec<Kind> = sources[0].objects.iter().map(Object::kind).collect();
        assert_eq!(kinds, [Kind::Namespace, Kind::Pod, Kind::Deployment]);
        // Read as written: no defaults, no namespace filled in yet.
        let deployment = &sources[0].objects[2];
        assert_eq!(deployment.metadata().namespace, None);
        assert_eq!(deployment.as_deployment().unwrap().spec.replicas, None);
    }

    #[test]
    fn directories_are_read_in_name_order_without_recursing() {
        let dir = tempfile::tempdir().unwrap();
        let ns =
            |name: &str| format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n");
        write(dir.path(), "b.yaml", &ns("b"));
        write(dir.path(), "a.yml", &ns("a"));
        write(
            dir.path(),
            "c.json",
            r#"{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "c"}}"#,
        );
        write(dir.path(), "notes.txt", "not a manifest");
        write(dir.path(), "README", "neither");
        std::fs::create_dir(dir.path().join("nested.yaml")).unwrap();
        write(&dir.path().join("nested.yaml"), "d.yaml", &ns("d"));
        let root = dir.path().to_string_lossy().into_owned();
        let extra = write(dir.path(), "extra.manifest", &ns("e"));
        let sources = read_sources(&[root.clone(), extra.clone()]).unwrap();
        let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
        let expect = |f: &str| format!("{root}/{f}");
        assert_eq!(
            names,
            [
                expect("a.yml").as_str(),
                &expect("b.yaml"),
                &expect("c.json"),
                // A file named explicitly is read whatever its extension.
                &extra,
            ]
        );
        let objects: Vec<&str> = sources
            .iter()
            .map(|s| s.objects[0].metadata().name.as_str())
            .collect();
        assert_eq!(objects, ["a", "b", "c", "e"]);
        // An empty directory reads as nothing; the verbs refuse to work on nothing.
        let empty = tempfile::tempdir().unwrap();
        let none = read_sources(&[empty.path().to_string_lossy().into_owned()]).unwrap();
        assert!(none.iter().all(|s| s.objects.is_empty()));
        let err = items(&none, "default", "apply").err().unwrap();
        assert_eq!(err.to_string(), "no objects passed to apply");
    }

    #[test]
    fn a_typo_names_file_document_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let good = write(dir.path(), "good.yaml", MULTI);
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    imagee: busybox\n";
        let bad = write(dir.path(), "pod.yaml", text);
        // The good file before it does not matter: nothing is returned to write.
        let err = read_sources(&[good, bad.clone()]).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!(
                "{bad}: document 2: spec.containers[0].imagee: unknown field `imagee`"
            )),
            "{shown}"
        );
        assert!(matches!(err, ApplyError::Manifest { .. }));
    }

    #[test]
    fn unknown_kinds_and_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n";
        let path = write(dir.path(), "svc.yaml", text);
        let shown = read_sources(std::slice::from_ref(&path))
            .unwrap_err()
            .to_string();
        assert!(
            shown.starts_with(&format!(
                "{path}: document 3: kind: unknown kind \"Service\""
            )),
            "{shown}"
        );
        let path = write(
            dir.path(),
            "deploy.yaml",
            "apiVersion: v1\nkind: Deployment\nmetadata: {name: d}\n",
        );
        let shown = read_sources(std::slice::from_ref(&path))
            .unwrap_err()
            .to_string();
        assert!(
            shown.starts_with(&format!("{path}: document 1: apiVersion: ")),
            "{shown}"
        );
    }

    #[test]
    fn validation_errors_name_file_document_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: ok}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: Web_1}\nspec:\n  containers: [{name: c, image: busybox}]\n";
        let path = write(dir.path(), "pod.yaml", text);
        let err = read_sources(std::slice::from_ref(&path)).unwrap_err();
        assert!(
            matches!(err, ApplyError::Invalid { document: 2, .. }),
            "{err:?}"
        );
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!(
                "{path}: document 2: metadata.name: Invalid value: \"Web_1\": "
            )),
            "{shown}"
        );
        // A bad namespace name, a pod without containers, a selector that misses.
        for (text, field) in [
            (
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: team.a}\n",
                "metadata.name",
            ),
            (
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: []}\n",
                "spec.containers",
            ),
            (
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  selector: {matchLabels: {app: x}}\n  template:\n    metadata: {labels: {app: y}}\n    spec: {containers: [{name: c, image: i}]}\n",
                "spec.template.metadata.labels",
            ),
        ] {
            let path = write(dir.path(), "bad.yaml", text);
            let shown = read_sources(std::slice::from_ref(&path))
                .unwrap_err()
                .to_string();
            assert!(
                shown.starts_with(&format!("{path}: document 1: {field}: ")),
                "{shown}"
            );
        }
        // Inside a List, the item is part of the path.
        let list = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fine"}},
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Not_Fine"}}]}"#;
        let path = write(dir.path(), "list.json", list);
        let shown = read_sources(std::slice::from_ref(&path))
            .unwrap_err()
            .to_string();
        assert!(
            shown.starts_with(&format!(
                "{path}: document 1: items[1].metadata.name: Invalid value"
            )),
            "{shown}"
        );
    }

    #[test]
    fn missing_paths() {
        let err = read_sources(&["/nonexistent/skiff/pod.yaml".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the path \"/nonexistent/skiff/pod.yaml\" does not exist"
        );
    }

    fn source(text: &str) -> Source {
        Source {
            name: "m.yaml".into(),
            objects: parse_manifests(text).unwrap(),
        }
    }

    #[test]
    fn namespaces_and_order() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: i}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: team-b}\nspec: {containers: [{name: c, image: i}]}\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n1, namespace: stray}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: team-b}\n";
        let sources = [source(text)];
        let placed = |verb| {
            items(&sources, "dev", verb)
                .unwrap()
                .iter()
                .map(|i| {
                    format!(
                        "{}/{}@{}",
                        i.object.kind().resource(),
                        i.object.metadata().name,
                        namespace_of(&i.object)
                    )
                })
                .collect::<Vec<_>>()
        };
        // -n fills in, the manifest's own namespace wins, cluster-scoped kinds have none.
        assert_eq!(
            placed("apply"),
            ["namespace/team-b@", "pod/a@dev", "pod/b@team-b", "node/n1@"]
        );
        assert_eq!(placed("create"), placed("apply"));
        assert_eq!(
            placed("delete"),
            ["pod/a@dev", "pod/b@team-b", "node/n1@", "namespace/team-b@"]
        );
        // generateName: fine for create, refused by apply and delete before any write.
        let generated = [source(
            "apiVersion: v1\nkind: Pod\nmetadata: {generateName: web-}\nspec: {containers: [{name: c, image: i}]}\n",
        )];
        assert!(items(&generated, "default", "create").is_ok());
        let err = items(&generated, "default", "apply").err().unwrap();
        assert_eq!(
            err.to_string(),
            "m.yaml: Pod with generateName \"web-\": cannot use generate name with apply"
        );
        let err = items(&generated, "default", "delete").err().unwrap();
        assert_eq!(
            err.to_string(),
            "m.yaml: Pod: resource name may not be empty"
        );
    }

    #[test]
    fn errors_read_like_kubectl() {
        use skiff_client::Error;
        let pod = one("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n");
        let deploy = one("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\n");
        let table = [
            (
                &pod,
                Error::NotFound("pods \"web\" not found".into()),
                "Error from server (NotFound): pods \"web\" not found",
            ),
            (
                &pod,
                Error::AlreadyExists("pods \"web\" already exists".into()),
                "Error from server (AlreadyExists): pods \"web\" already exists",
            ),
            (
                &pod,
                Error::Invalid("spec: Forbidden: pod updates may not change fields".into()),
                "The Pod \"web\" is invalid: spec: Forbidden: pod updates may not change fields",
            ),
            (
                &deploy,
                Error::Unavailable("no quorum".into()),
                "error: deployment.apps/api: unavailable: no quorum",
            ),
            (
                &deploy,
                Error::Other {
                    code: "Internal".into(),
                    message: "boom".into(),
                },
                "Error from server (Internal): boom",
            ),
        ];
        for (object, error, line) in table {
            assert_eq!(error_line(object, &error), line);
        }
        assert!(is_fatal(&Error::Unavailable("x".into())));
        assert!(!is_fatal(&Error::NotFound("x".into())));
        let failed = ApplyError::Failed {
            done: vec!["pod/a created".into()],
            errors: vec![
                "Error from server (AlreadyExists): pods \"b\" already exists".into(),
                "error: pod/c: timed out: t".into(),
            ],
        };
        assert_eq!(
            failed.to_string(),
            "Error from server (AlreadyExists): pods \"b\" already exists\nerror: pod/c: timed out: t"
        );
        assert_eq!(failed.done(), ["pod/a created"]);
    }

    // ------------------------------------------------------------------- merging

    /// What the server stores for a created manifest: namespace, identity, defaults,
    /// the last-applied annotation, and whatever `extra` adds (status, scheduling...).
    fn stored(manifest: &Object, extra: impl FnOnce(&mut Object)) -> Object {
        let mut live = manifest.clone();
        live.metadata_mut()
            .annotations
            .insert(LAST_APPLIED.into(), last_applied(manifest));
        let meta = live.metadata_mut();
        meta.uid = Some("6f1c1a4e-0000-4000-8000-000000000001".into());
        meta.resource_version = Some("7".into());
        meta.generation = Some(1);
        live.apply_defaults();
        extra(&mut live);
        live
    }

    const POD: &str = "\
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  labels: {app: web, tier: front}
  annotations: {note: hello}
spec:
  restartPolicy: Never
  containers:
  - {name: web, image: 'nginx:1.27', ports: [{containerPort: 80}]}
  - {name: sidecar, image: busybox}
";

    fn scheduled(pod: &mut Object) {
        let pod = pod.as_pod_mut().unwrap();
        pod.spec.node_name = Some("node-1".into());
        pod.status = Some(Default::default());
        pod.status.as_mut().unwrap().phase = Some("Running".into());
    }

    #[test]
    fn identical_manifest_is_unchanged() {
        let manifest = one(POD);
        let live = stored(&manifest, scheduled);
        // The server's nodeName, defaults and status are all kept: nothing to write.
        assert_eq!(merged(&live, &manifest, Some(&manifest)), live);
        let previous = previous_applied(&live).unwrap();
        assert_eq!(previous, manifest);
        for text in [MULTI, NODE] {
            for manifest in parse_manifests(text).unwrap() {
                let manifest = place(&manifest, "default");
                let live = stored(&manifest, |_| {});
                let previous = previous_applied(&live);
                assert_eq!(
                    merged(&live, &manifest, previous.as_ref()),
                    live,
                    "{manifest:?}"
                );
            }
        }
    }

    #[test]
    fn dropped_labels_go_and_foreign_labels_stay() {
        let manifest = one(POD);
        let mut live = stored(&manifest, scheduled);
        // `skiff label` / `skiff annotate` and controllers added their own.
        let meta = live.metadata_mut();
        meta.labels.insert("owner".into(), "ops".into());
        meta.annotations
            .insert("deployment.kubernetes.io/revision".into(), "3".into());
        let mut next = manifest.clone();
        let meta = next.metadata_mut();
        meta.labels.remove("tier");
        meta.labels.insert("app".into(), "web2".into());
        meta.labels.insert("track".into(), "canary".into());
        meta.annotations.clear();
        let desired = merged(&live, &next, Some(&manifest));
        let labels: Vec<(&str, &str)> = desired
            .metadata()
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [("app", "web2"), ("owner", "ops"), ("track", "canary")]
        );
        let annotations: Vec<&str> = desired
            .metadata()
            .annotations
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            annotations,
            ["deployment.kubernetes.io/revision", LAST_APPLIED]
        );
        assert_eq!(
            desired.metadata().annotations[LAST_APPLIED],
            last_applied(&next)
        );
        // Identity, version and status are the live object's.
        assert_eq!(desired.metadata().uid, live.metadata().uid);
        assert_eq!(desired.metadata().resource_version.as_deref(), Some("7"));
        assert_eq!(
            desired.as_pod().unwrap().status,
            live.as_pod().unwrap().status
        );
        // Without a previous manifest nothing is removed, only added and overwritten.
        let desired = merged(&live, &next, None);
        assert!(desired.metadata().labels.contains_key("tier"));
        assert_eq!(desired.metadata().annotations["note"], "hello");
        // The manifest's own copy of the annotation (from `get -o yaml`) is not nested.
        let mut copied = next.clone();
        copied
            .metadata_mut()
            .annotations
            .insert(LAST_APPLIED.into(), "{}".into());
        assert_eq!(
            merged(&live, &copied, Some(&manifest))
                .metadata()
                .annotations[LAST_APPLIED],
            last_applied(&next)
        );
    }

    #[test]
    fn spec_follows_the_manifest() {
        let manifest = one(POD);
        let live = stored(&manifest, scheduled);
        // New image, ports gone, restartPolicy no longer set, one container fewer.
        let next = one(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default, labels: {app: web, tier: front}, annotations: {note: hello}}\nspec:\n  containers:\n  - {name: web, image: nginx}\n",
        );
        let desired = merged(&live, &next, Some(&manifest));
        assert_ne!(desired, live);
        let spec = &desired.as_pod().unwrap().spec;
        assert_eq!(spec.containers.len(), 1, "lists are replaced whole");
        assert_eq!(spec.containers[0].image, "nginx");
        assert!(spec.containers[0].ports.is_empty());
        // Defaults are worked out afresh for the new spec.
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("Always")
        );
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        // The scheduler's binding is not the manifest's to drop.
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        // Applying the result again changes nothing.
        let live = desired;
        assert_eq!(merged(&live, &next, previous_applied(&live).as_ref()), live);
    }

    const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: default}
spec:
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec: {containers: [{name: api, image: 'busybox:1.36'}]}
";

    #[test]
    fn deployments_scale_and_strategy() {
        let manifest = one(DEPLOYMENT);
        // `skiff scale` set 5 replicas; the manifest never named a count: it stays 5.
        let live = stored(&manifest, |d| {
            d.as_deployment_mut().unwrap().spec.replicas = Some(5);
        });
        assert_eq!(merged(&live, &manifest, Some(&manifest)), live);
        // A manifest that names a count wins.
        let three =
            one(&DEPLOYMENT.replace("spec:\n  selector", "spec:\n  replicas: 3\n  selector"));
        let desired = merged(&live, &three, Some(&manifest));
        assert_eq!(desired.as_deployment().unwrap().spec.replicas, Some(3));
        // Dropping it again from the manifest goes back to the default.
        let desired = merged(&desired, &manifest, Some(&three));
        assert_eq!(desired.as_deployment().unwrap().spec.replicas, Some(1));
        // Switching to Recreate drops the rollingUpdate the server defaulted.
        let recreate = one(&format!("{DEPLOYMENT}  strategy: {{type: Recreate}}\n"));
        let desired = merged(&live, &recreate, Some(&manifest));
        let strategy = desired
            .as_deployment()
            .unwrap()
            .spec
            .strategy
            .clone()
            .unwrap();
        assert_eq!(strategy.type_.as_deref(), Some("Recreate"));
        assert_eq!(strategy.rolling_update, None);
        validate::validate(&desired).unwrap();
        // A spec that was set by hand (no last-applied): only the manifest's fields change.
        let by_hand = stored(&manifest, |d| {
            let d = d.as_deployment_mut().unwrap();
            d.metadata.annotations.clear();
            d.spec.min_ready_seconds = Some(9);
        });
        let desired = merged(&by_hand, &three, None);
        let spec = &desired.as_deployment().unwrap().spec;
        assert_eq!((spec.replicas, spec.min_ready_seconds), (Some(3), Some(9)));
        assert!(desired.metadata().annotations.contains_key(LAST_APPLIED));
    }

    const NODE: &str = "\
apiVersion: v1
kind: Node
metadata: {name: node-1, labels: {zone: a}}
spec:
  taints: [{key: dedicated, value: gpu, effect: NoSchedule}]
";

    #[test]
    fn nodes_keep_what_the_cluster_gave_them() {
        let manifest = one(NODE);
        let live = stored(&manifest, |n| {
            let n = n.as_node_mut().unwrap();
            let spec = n.spec.as_mut().unwrap();
            spec.pod_cidr = Some("10.244.1.0/24".into());
            spec.unschedulable = Some(true);
        });
        assert_eq!(merged(&live, &manifest, Some(&manifest)), live);
        let untainted = one(
            "apiVersion: v1\nkind: Node\nmetadata: {name: node-1, labels: {zone: a}}\nspec: {}\n",
        );
        let desired = merged(&live, &untainted, Some(&manifest));
        let spec = desired.as_node().unwrap().spec.clone().unwrap();
        assert!(spec.taints.is_empty());
        assert_eq!(spec.pod_cidr.as_deref(), Some("10.244.1.0/24"));
        assert_eq!(spec.unschedulable, Some(true));
    }

    #[test]
    fn three_way_on_plain_json() {
        let map = |v: Value| v.as_object().unwrap().clone();
        let live = map(
            serde_json::json!({"a": 1, "b": {"x": 1, "y": 2, "z": 3}, "c": [1, 2], "d": "server", "e": "default"}),
        );
        let manifest = map(serde_json::json!({"b": {"x": 10}, "c": [3]}));
        let previous = map(serde_json::json!({"a": 1, "b": {"x": 1, "y": 2}, "c": [1, 2]}));
        let defaulted =
            map(serde_json::json!({"a": 1, "b": {"x": 1, "y": 2}, "c": [1, 2], "e": "default"}));
        assert_eq!(
            Value::Object(three_way(
                &live,
                &manifest,
                Some(&previous),
                Some(&defaulted)
            )),
            serde_json::json!({"b": {"x": 10, "z": 3}, "c": [3], "d": "server"})
        );
        // No previous manifest: nothing is removed.
        assert_eq!(
            Value::Object(three_way(&live, &manifest, None, None)),
            serde_json::json!({"a": 1, "b": {"x": 10, "y": 2, "z": 3}, "c": [3], "d": "server", "e": "default"})
        );
    }
}
