//! The Kubernetes patch formats, applied to an object's JSON: JSON merge patch (RFC 7386),
//! JSON patch (RFC 6902) and strategic merge patch with Kubernetes' merge keys and the
//! directives kubectl's client-side apply sends. Server-side apply's field sets live here
//! too ([`FieldSet`]): the managedFields FieldsV1 format, and what one applied configuration
//! owns.
//!
//! Everything here is pure and bounded: JSON patch has an operation cap and a byte budget
//! (a `copy` may not double an object past it), nesting is bounded by the JSON parser's
//! own recursion limit and by [`MAX_DEPTH`].

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// At most this many operations in one JSON patch (the apiserver's limit too).
pub const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// Deeper patches are refused rather than recursed into.
pub const MAX_DEPTH: usize = 100;

/// Which patch a request's Content-Type names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Merge,
    Json,
    Strategic,
    Apply,
}

impl PatchType {
    /// The patch type of a `Content-Type` header (parameters such as `charset` ignored).
    pub fn from_content_type(content_type: &str) -> Option<PatchType> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        match media.to_ascii_lowercase().as_str() {
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/json-patch+json" => Some(PatchType::Json),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

/// Why a patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document itself is malformed.
    #[error("{0}")]
    Malformed(String),
    /// The patch is well formed but does not apply to this object (a failed `test`, a path
    /// that does not exist).
    #[error("{0}")]
    Unapplicable(String),
}

fn malformed(message: impl Into<String>) -> PatchError {
    PatchError::Malformed(message.into())
}

fn too_deep() -> PatchError {
    malformed(format!(
        "the patch is nested deeper than {MAX_DEPTH} levels"
    ))
}

// ---------------------------------------------------------------------------------------
// JSON merge patch (RFC 7386)

/// Applies a JSON merge patch: objects merge key by key, `null` removes, anything else
/// replaces (arrays included).
pub fn merge_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    merge_at(target, patch, 0)
}

fn merge_at(target: &mut Value, patch: &Value, depth: usize) -> Result<(), PatchError> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let map = target.as_object_mut().expect("made an object above");
    for (key, value) in patch {
        if value.is_null() {
            map.remove(key);
        } else {
            let slot = map.entry(key.clone()).or_insert(Value::Null);
            merge_at(slot, value, depth + 1)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// JSON patch (RFC 6902)

/// Applies a JSON patch (an array of operations) to `target`. `budget` bounds, in bytes of
/// JSON, how much the operations may add (values added and copied): a patch of a few
/// thousand `copy` operations could otherwise double an object each time.
pub fn json_patch(target: &mut Value, patch: &Value, budget: usize) -> Result<(), PatchError> {
    let Value::Array(operations) = patch else {
        return Err(malformed(
            "a json patch must be an array of operations ({\"op\": …, \"path\": …})",
        ));
    };
    if operations.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(malformed(format!(
            "the json patch has {} operations, more than the limit of {MAX_JSON_PATCH_OPERATIONS}",
            operations.len()
        )));
    }
    let mut left = budget;
    for (i, operation) in operations.iter().enumerate() {
        apply_operation(target, operation, &mut left)
            .map_err(|e| annotate(e, &format!("operation {i}")))?;
    }
    Ok(())
}

fn annotate(e: PatchError, context: &str) -> PatchError {
    match e {
        PatchError::Malformed(m) => PatchError::Malformed(format!("{context}: {m}")),
        PatchError::Unapplicable(m) => PatchError::Unapplicable(format!("{context}: {m}")),
    }
}

fn json_len(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |v| v.len())
}

fn spend(left: &mut usize, value: &Value) -> Result<(), PatchError> {
    let cost = json_len(value);
    *left = left.checked_sub(cost).ok_or_else(|| {
        PatchError::Unapplicable("the patch makes the object larger than the limit".into())
    })?;
    Ok(())
}

fn apply_operation(
    target: &mut Value,
    operation: &Value,
    left: &mut usize,
) -> Result<(), PatchError> {
    let Some(operation) = operation.as_object() else {
        return Err(malformed("an operation must be an object"));
    };
    let string = |field: &str| -> Result<&str, PatchError> {
        operation
            .get(field)
            .and_then(Value::as_str)
            .ok_or_else(|| malformed(format!("missing or non-string {field:?}")))
    };
    let value = || {
        operation
            .get("value")
            .ok_or_else(|| malformed("missing \"value\""))
    };
    let op = string("op")?;
    let path = parse_pointer(string("path")?)?;
    match op {
        "add" => {
            let value = value()?;
            spend(left, value)?;
            add(target, &path, value.clone())
        }
        "remove" => remove(target, &path).map(drop),
        "replace" => {
            let value = value()?;
            spend(left, value)?;
            let slot = pointer_mut(target, &path)?;
            *slot = value.clone();
            Ok(())
        }
        "move" => {
            let from = parse_pointer(string("from")?)?;
            if path.len() > from.len() && path[..from.len()] == from[..] {
                return Err(malformed("\"move\" may not move a value into itself"));
            }
            let moved = remove(target, &from)?;
            add(target, &path, moved)
        }
        "copy" => {
            let from = parse_pointer(string("from")?)?;
            let copied = pointer_mut(target, &from)?.clone();
            spend(left, &copied)?;
            add(target, &path, copied)
        }
        "test" => {
            let expected = value()?;
            let found = pointer_mut(target, &path)?;
            match found == expected {
                true => Ok(()),
                false => Err(PatchError::Unapplicable(format!(
                    "test failed: {} is {found}, not {expected}",
                    display_pointer(&path)
                ))),
            }
        }
        other => Err(malformed(format!(
            "unsupported op {other:?}: expected add, remove, replace, move, copy or test"
        ))),
    }
}

/// A JSON pointer (RFC 6901) split into unescaped tokens.
fn parse_pointer(text: &str) -> Result<Vec<String>, PatchError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = text.strip_prefix('/') else {
        return Err(malformed(format!(
            "path {text:?} must be empty or start with \"/\""
        )));
    };
    rest.split('/')
        .map(|token| {
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                match c {
                    '~' => match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => {
                            return Err(malformed(format!(
                                "path {text:?}: \"~\" must be followed by 0 or 1"
                            )));
                        }
                    },
                    c => out.push(c),
                }
            }
            Ok(out)
        })
        .collect()
}

fn display_pointer(tokens: &[String]) -> String {
    tokens
        .iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

/// An array index token: digits only, no leading zero (RFC 6901).
fn index(token: &str, len: usize, path: &[String]) -> Result<usize, PatchError> {
    let valid = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    let at = valid.then(|| token.parse::<usize>().ok()).flatten();
    match at {
        Some(i) if i < len => Ok(i),
        _ => Err(PatchError::Unapplicable(format!(
            "{}: no array element {token:?} (the array has {len})",
            display_pointer(path)
        ))),
    }
}

fn pointer_mut<'a>(target: &'a mut Value, path: &[String]) -> Result<&'a mut Value, PatchError> {
    let mut here = target;
    for (depth, token) in path.iter().enumerate() {
        here = match here {
            Value::Object(map) => map.get_mut(token).ok_or_else(|| {
                PatchError::Unapplicable(format!(
                    "{}: no such field",
                    display_pointer(&path[..=depth])
                ))
            })?,
            Value::Array(items) => {
                let i = index(token, items.len(), &path[..=depth])?;
                &mut items[i]
            }
            _ => {
                return Err(PatchError::Unapplicable(format!(
                    "{}: not an object or array",
                    display_pointer(&path[..depth])
                )));
            }
        };
    }
    Ok(here)
}

fn add(target: &mut Value, path: &[String], value: Value) -> Result<(), PatchError> {
    let Some((last, parent)) = path.split_last() else {
        *target = value;
        return Ok(());
    };
    match pointer_mut(target, parent)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let at = match last.as_str() {
                "-" => items.len(),
                // Adding may insert at the end, one past the last index.
                token => index(token, items.len() + 1, path)?,
            };
            items.insert(at, value);
            Ok(())
        }
        _ => Err(PatchError::Unapplicable(format!(
            "{}: not an object or array",
            display_pointer(parent)
        ))),
    }
}

fn remove(target: &mut Value, path: &[String]) -> Result<Value, PatchError> {
    let Some((last, parent)) = path.split_last() else {
        return Err(malformed("the whole object may not be removed"));
    };
    match pointer_mut(target, parent)? {
        Value::Object(map) => map.remove(last).ok_or_else(|| {
            PatchError::Unapplicable(format!("{}: no such field", display_pointer(path)))
        }),
        Value::Array(items) => {
            let i = index(last, items.len(), path)?;
            Ok(items.remove(i))
        }
        _ => Err(PatchError::Unapplicable(format!(
            "{}: not an object or array",
            display_pointer(parent)
        ))),
    }
}

// ---------------------------------------------------------------------------------------
// Strategic merge patch

/// How a list field merges, as Kubernetes' `patchStrategy`/`patchMergeKey` tags say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// Replaced as a whole (no patch strategy: args, command, taints, …).
    Atomic,
    /// A list of objects merged element by element, matched by this key.
    MergeByKey(&'static str),
    /// A list of scalars merged as a set (finalizers).
    MergePrimitives,
}

/// The strategy of the list at `path` (field names from the object's root, array
/// positions left out), for the fields Skiff's kinds have. Pod specs sit at `spec` in a
/// pod and at `spec.template.spec` in a deployment, so the rules look at the path's end.
pub fn list_strategy(path: &[&str]) -> ListStrategy {
    use ListStrategy::*;
    const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];
    let n = path.len();
    let last = path.last().copied().unwrap_or_default();
    let parent = if n >= 2 { path[n - 2] } else { "" };
    let in_pod_spec = parent == "spec";
    let in_container = CONTAINER_LISTS.contains(&parent);
    match last {
        "finalizers" if parent == "metadata" => MergePrimitives,
        "ownerReferences" if parent == "metadata" => MergeByKey("uid"),
        l if CONTAINER_LISTS.contains(&l) && in_pod_spec => MergeByKey("name"),
        "volumes" | "imagePullSecrets" if in_pod_spec => MergeByKey("name"),
        "hostAliases" if in_pod_spec => MergeByKey("ip"),
        "ports" if in_container => MergeByKey("containerPort"),
        "env" if in_container => MergeByKey("name"),
        "volumeMounts" if in_container => MergeByKey("mountPath"),
        "volumeDevices" if in_container => MergeByKey("devicePath"),
        "resizePolicy" if in_container => MergeByKey("resourceName"),
        "conditions" if parent == "status" => MergeByKey("type"),
        "addresses" if parent == "status" => MergeByKey("type"),
        "podIPs" | "hostIPs" if parent == "status" => MergeByKey("ip"),
        _ => Atomic,
    }
}

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVES: &str = "$deleteFromPrimitiveList/";

/// Applies a strategic merge patch to `target` (an object's JSON).
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let Value::Object(patch) = patch else {
        return Err(malformed("a strategic merge patch must be a JSON object"));
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let mut path = Vec::new();
    let map = target.as_object_mut().expect("made an object above");
    match smp_map(map, patch, &mut path)? {
        Outcome::Keep => Ok(()),
        Outcome::Delete => Err(malformed("$patch: delete may not delete the whole object")),
    }
}

enum Outcome {
    Keep,
    /// The map carried `$patch: delete`: its parent removes it.
    Delete,
}

fn smp_map<'p>(
    target: &mut Map<String, Value>,
    patch: &'p Map<String, Value>,
    path: &mut Vec<&'p str>,
) -> Result<Outcome, PatchError> {
    if path.len() > MAX_DEPTH {
        return Err(too_deep());
    }
    match patch.get(DIRECTIVE) {
        None => {}
        Some(Value::String(d)) if d == "merge" => {}
        Some(Value::String(d)) if d == "delete" => return Ok(Outcome::Delete),
        Some(Value::String(d)) if d == "replace" => {
            // The map becomes the patch, directives resolved against nothing.
            target.clear();
            let mut rest = patch.clone();
            rest.remove(DIRECTIVE);
            return smp_map_owned(target, rest, path);
        }
        Some(other) => {
            return Err(malformed(format!(
                "{}: unknown $patch directive {other}: expected merge, replace or delete",
                dotted(path)
            )));
        }
    }
    for (key, value) in patch {
        if key == DIRECTIVE || key == RETAIN_KEYS || key.starts_with(SET_ORDER) {
            continue;
        }
        if let Some(field) = key.strip_prefix(DELETE_PRIMITIVES) {
            let Value::Array(gone) = value else {
                return Err(malformed(format!("{}.{key}: must be a list", dotted(path))));
            };
            if let Some(Value::Array(items)) = target.get_mut(field) {
                items.retain(|item| !gone.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            return Err(malformed(format!(
                "{}: unknown patch directive {key:?}",
                dotted(path)
            )));
        }
        if value.is_null() {
            target.remove(key);
            continue;
        }
        path.push(key.as_str());
        let slot = target.entry(key.clone()).or_insert(Value::Null);
        let outcome = smp_value(slot, value, path)?;
        path.pop();
        if let Outcome::Delete = outcome {
            target.remove(key);
        }
    }
    // `$setElementOrder/<field>`: the order the patch's author has the list in.
    for (key, order) in patch {
        if let Some(field) = key.strip_prefix(SET_ORDER) {
            let Value::Array(order) = order else {
                return Err(malformed(format!("{}.{key}: must be a list", dotted(path))));
            };
            if let Some(Value::Array(items)) = target.get_mut(field) {
                path.push(field);
                let strategy = list_strategy(path);
                path.pop();
                reorder(items, order, strategy);
            }
        }
    }
    // `$retainKeys`: fields not listed are cleared (a union type switching members).
    if let Some(keep) = patch.get(RETAIN_KEYS) {
        let Value::Array(keep) = keep else {
            return Err(malformed(format!(
                "{}.$retainKeys: must be a list",
                dotted(path)
            )));
        };
        let keep: BTreeSet<&str> = keep.iter().filter_map(Value::as_str).collect();
        target.retain(|k, _| keep.contains(k.as_str()));
    }
    Ok(Outcome::Keep)
}

/// [`smp_map`] for a patch this function owns (after `$patch: replace` stripped it).
fn smp_map_owned(
    target: &mut Map<String, Value>,
    patch: Map<String, Value>,
    path: &mut Vec<&str>,
) -> Result<Outcome, PatchError> {
    // Path segments must outlive the patch: keep them as owned strings for this subtree.
    let owned: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    let mut inner: Vec<&str> = owned.iter().map(String::as_str).collect();
    smp_map(target, &patch, &mut inner)
}

fn smp_value<'p>(
    slot: &mut Value,
    patch: &'p Value,
    path: &mut Vec<&'p str>,
) -> Result<Outcome, PatchError> {
    match patch {
        Value::Object(patch) => {
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            smp_map(slot.as_object_mut().expect("made an object"), patch, path)
        }
        Value::Array(items) => {
            let strategy = list_strategy(path);
            if !slot.is_array() || strategy == ListStrategy::Atomic {
                *slot = Value::Array(Vec::new());
            }
            let target = slot.as_array_mut().expect("made an array");
            smp_list(target, items, strategy, path)?;
            Ok(Outcome::Keep)
        }
        scalar => {
            *slot = scalar.clone();
            Ok(Outcome::Keep)
        }
    }
}

fn smp_list<'p>(
    target: &mut Vec<Value>,
    patch: &'p [Value],
    strategy: ListStrategy,
    path: &mut Vec<&'p str>,
) -> Result<(), PatchError> {
    // `[{"$patch": "replace"}, …]`: the list becomes the other elements.
    let replace = patch.iter().any(|item| {
        item.get(DIRECTIVE).and_then(Value::as_str) == Some("replace")
            && item.as_object().is_some_and(|m| m.len() == 1)
    });
    if replace {
        target.clear();
    }
    for item in patch {
        if replace
            && item.get(DIRECTIVE).is_some()
            && item.as_object().is_some_and(|m| m.len() == 1)
        {
            continue;
        }
        match strategy {
            ListStrategy::Atomic => target.push(resolved(item, path)?),
            ListStrategy::MergePrimitives => {
                if !target.contains(item) {
                    target.push(item.clone());
                }
            }
            ListStrategy::MergeByKey(key) => {
                let Some(fields) = item.as_object() else {
                    return Err(malformed(format!(
                        "{}: each element must be an object with {key:?}",
                        dotted(path)
                    )));
                };
                let Some(wanted) = fields.get(key) else {
                    return Err(malformed(format!(
                        "{}: an element has no merge key {key:?}",
                        dotted(path)
                    )));
                };
                let at = target.iter().position(|t| t.get(key) == Some(wanted));
                let delete = fields.get(DIRECTIVE).and_then(Value::as_str) == Some("delete");
                match (at, delete) {
                    (Some(i), true) => {
                        target.remove(i);
                        // Every element with the key goes, as Kubernetes does.
                        target.retain(|t| t.get(key) != Some(wanted));
                    }
                    (None, true) => {}
                    (Some(i), false) => {
                        let element = target[i].as_object_mut().expect("matched by key");
                        smp_map(element, fields, path)?;
                    }
                    (None, false) => target.push(resolved(item, path)?),
                }
            }
        }
    }
    Ok(())
}

/// A patch value merged into nothing: its directives resolved, as a new element gets them.
fn resolved<'p>(value: &'p Value, path: &mut Vec<&'p str>) -> Result<Value, PatchError> {
    let mut out = Value::Null;
    match smp_value(&mut out, value, path)? {
        Outcome::Keep => Ok(out),
        Outcome::Delete => Ok(Value::Object(Map::new())),
    }
}

/// Puts `items` in the order `order` gives (elements or their merge keys); elements it does
/// not name keep their place after those it does.
fn reorder(items: &mut Vec<Value>, order: &[Value], strategy: ListStrategy) {
    let position = |item: &Value| {
        order.iter().position(|o| match strategy {
            ListStrategy::MergeByKey(key) => o.get(key).is_some() && o.get(key) == item.get(key),
            _ => o == item,
        })
    };
    let mut keyed: Vec<(usize, usize, Value)> = std::mem::take(items)
        .into_iter()
        .enumerate()
        .map(|(i, item)| (position(&item).unwrap_or(usize::MAX), i, item))
        .collect();
    keyed.sort_by_key(|(p, i, _)| (*p, *i));
    *items = keyed.into_iter().map(|(_, _, item)| item).collect();
}

fn dotted(path: &[&str]) -> String {
    match path.is_empty() {
        true => "the patch".into(),
        false => path.join("."),
    }
}

// ---------------------------------------------------------------------------------------
// Server-side apply: field sets

/// One step of a field path, as FieldsV1 writes it: `f:<name>` for a field, `k:<json>` for
/// a list element by its merge key, `v:<json>` for a set member.
pub type Step = String;

/// The set of fields (leaf paths) an applied configuration sets, as managedFields records
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet(pub BTreeSet<Vec<Step>>);

impl FieldSet {
    /// The fields `config` sets. Maps name their fields; lists merged by key name their
    /// elements by key (and the key field itself); other lists are owned whole.
    pub fn of(config: &Value) -> FieldSet {
        let mut set = BTreeSet::new();
        let mut path = Vec::new();
        let mut names = Vec::new();
        collect(config, &mut path, &mut names, &mut set);
        FieldSet(set)
    }

    /// FieldsV1: a tree of steps, `{}` at each leaf, `".": {}` where an element is owned
    /// itself as well as through its fields.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = Map::new();
        for path in &self.0 {
            let mut here = &mut root;
            for step in path {
                here = here
                    .entry(step.clone())
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .expect("fields trees hold objects only");
            }
            if !here.is_empty() && path.last().is_some_and(|s| s.starts_with("k:")) {
                here.insert(".".into(), Value::Object(Map::new()));
            }
        }
        // An element with fields under it is also owned itself.
        mark_elements(&mut root);
        Value::Object(root)
    }

    /// Reads FieldsV1 back (unknown shapes are skipped: it is the server's own record).
    pub fn from_fields_v1(value: &Value) -> FieldSet {
        fn walk(value: &Value, path: &mut Vec<Step>, out: &mut BTreeSet<Vec<Step>>, depth: usize) {
            let Some(map) = value.as_object() else { return };
            if depth > MAX_DEPTH {
                return;
            }
            let leaf = map.is_empty() || map.contains_key(".");
            if leaf && !path.is_empty() {
                out.insert(path.clone());
            }
            for (step, child) in map {
                if step == "." {
                    continue;
                }
                path.push(step.clone());
                walk(child, path, out, depth + 1);
                path.pop();
            }
        }
        let mut out = BTreeSet::new();
        walk(value, &mut Vec::new(), &mut out, 0);
        FieldSet(out)
    }

    pub fn contains(&self, path: &[Step]) -> bool {
        self.0.iter().any(|p| p.as_slice() == path)
    }
}

fn mark_elements(map: &mut Map<String, Value>) {
    for (step, child) in map.iter_mut() {
        if let Value::Object(child) = child {
            if step.starts_with("k:") && !child.is_empty() {
                child.insert(".".into(), Value::Object(Map::new()));
            }
            mark_elements(child);
        }
    }
}

fn collect<'v>(
    value: &'v Value,
    path: &mut Vec<Step>,
    names: &mut Vec<&'v str>,
    out: &mut BTreeSet<Vec<Step>>,
) {
    if names.len() > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                // What the server sets, and the object's identity, belong to no one.
                if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "status") {
                    continue;
                }
                if path.len() == 1
                    && path[0] == "f:metadata"
                    && matches!(
                        key.as_str(),
                        "name"
                            | "namespace"
                            | "uid"
                            | "resourceVersion"
                            | "generation"
                            | "creationTimestamp"
                            | "managedFields"
                    )
                {
                    continue;
                }
                path.push(format!("f:{key}"));
                names.push(key);
                collect(child, path, names, out);
                names.pop();
                path.pop();
            }
        }
        Value::Array(items) => match list_strategy(names) {
            ListStrategy::MergeByKey(key) => {
                for item in items {
                    let Some(id) = item.get(key) else { continue };
                    path.push(format!("k:{}", serde_json::json!({ key: id })));
                    out.insert(path.clone());
                    collect(item, path, names, out);
                    path.pop();
                }
            }
            ListStrategy::MergePrimitives => {
                for item in items {
                    path.push(format!("v:{item}"));
                    out.insert(path.clone());
                    path.pop();
                }
            }
            ListStrategy::Atomic => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// The value at a field path in `object`, if it is there.
pub fn value_at<'a>(object: &'a Value, path: &[Step]) -> Option<&'a Value> {
    let mut here = object;
    for step in path {
        here = if let Some(name) = step.strip_prefix("f:") {
            here.get(name)?
        } else if let Some(key) = step.strip_prefix("k:") {
            let key: Map<String, Value> = serde_json::from_str(key).ok()?;
            let (field, id) = key.iter().next()?;
            here.as_array()?
                .iter()
                .find(|item| item.get(field) == Some(id))?
        } else if let Some(member) = step.strip_prefix("v:") {
            let member: Value = serde_json::from_str(member).ok()?;
            here.as_array()?.iter().find(|item| **item == member)?
        } else {
            return None;
        };
    }
    Some(here)
}

/// Removes the field at `path` from `object` (nothing when it is not there).
pub fn remove_at(object: &mut Value, path: &[Step]) {
    let Some((last, parent)) = path.split_last() else {
        return;
    };
    let mut here = object;
    for step in parent {
        let next = if let Some(name) = step.strip_prefix("f:") {
            here.get_mut(name)
        } else if let Some(key) = step.strip_prefix("k:") {
            let Ok(key) = serde_json::from_str::<Map<String, Value>>(key) else {
                return;
            };
            let Some((field, id)) = key.iter().next() else {
                return;
            };
            here.as_array_mut()
                .and_then(|items| items.iter_mut().find(|item| item.get(field) == Some(id)))
        } else {
            None
        };
        match next {
            Some(next) => here = next,
            None => return,
        }
    }
    if let Some(name) = last.strip_prefix("f:") {
        if let Some(map) = here.as_object_mut() {
            map.remove(name);
        }
    } else if let Some(key) = last.strip_prefix("k:") {
        if let (Ok(key), Some(items)) = (
            serde_json::from_str::<Map<String, Value>>(key),
            here.as_array_mut(),
        ) && let Some((field, id)) = key.iter().next()
        {
            items.retain(|item| item.get(field) != Some(id));
        }
    } else if let Some(member) = last.strip_prefix("v:")
        && let (Ok(member), Some(items)) =
            (serde_json::from_str::<Value>(member), here.as_array_mut())
    {
        items.retain(|item| *item != member);
    }
}

/// A field path as kubectl prints a conflict's field: `.spec.containers[name="web"].image`.
pub fn display_path(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        if let Some(name) = step.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = step.strip_prefix("k:") {
            let parsed: Map<String, Value> = serde_json::from_str(key).unwrap_or_default();
            let inner: Vec<String> = parsed.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", inner.join(",")));
        } else if let Some(member) = step.strip_prefix("v:") {
            out.push_str(&format!("[{member}]"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn content_types_name_their_patch_and_others_are_none() {
        assert_eq!(
            PatchType::from_content_type("application/merge-patch+json; charset=utf-8"),
            Some(PatchType::Merge)
        );
        assert_eq!(
            PatchType::from_content_type("application/json-patch+json"),
            Some(PatchType::Json)
        );
        assert_eq!(
            PatchType::from_content_type("application/strategic-merge-patch+json"),
            Some(PatchType::Strategic)
        );
        assert_eq!(
            PatchType::from_content_type("application/apply-patch+yaml"),
            Some(PatchType::Apply)
        );
        assert_eq!(PatchType::from_content_type("application/json"), None);
        assert_eq!(PatchType::from_content_type(""), None);
    }

    #[test]
    fn a_merge_patch_merges_objects_removes_nulls_and_replaces_lists() {
        let mut target = json!({"a": {"b": 1, "c": 2}, "l": [1, 2], "x": "y"});
        merge_patch(
            &mut target,
            &json!({"a": {"b": null, "d": 3}, "l": [3], "n": {"m": null}}),
        )
        .unwrap();
        assert_eq!(
            target,
            json!({"a": {"c": 2, "d": 3}, "l": [3], "x": "y", "n": {}})
        );
    }

    #[test]
    fn a_json_patch_adds_removes_replaces_moves_copies_and_tests() {
        let mut target = json!({"spec": {"list": ["a", "b"], "n": 1}, "m": {"k~/": 1}});
        let patch = json!([
            {"op": "test", "path": "/spec/n", "value": 1},
            {"op": "add", "path": "/spec/list/1", "value": "x"},
            {"op": "add", "path": "/spec/list/-", "value": "z"},
            {"op": "replace", "path": "/spec/n", "value": 2},
            {"op": "remove", "path": "/spec/list/0"},
            {"op": "copy", "from": "/spec/n", "path": "/copied"},
            {"op": "move", "from": "/m/k~0~1", "path": "/moved"},
        ]);
        json_patch(&mut target, &patch, 1 << 20).unwrap();
        assert_eq!(
            target,
            json!({"spec": {"list": ["x", "b", "z"], "n": 2}, "m": {}, "copied": 2, "moved": 1})
        );
    }

    #[test]
    fn a_failed_json_patch_test_is_unapplicable_and_names_the_path() {
        let mut target = json!({"spec": {"n": 1}});
        let patch = json!([{"op": "test", "path": "/spec/n", "value": 5}]);
        let err = json_patch(&mut target, &patch, 1 << 20).unwrap_err();
        assert!(
            matches!(&err, PatchError::Unapplicable(m) if m.contains("/spec/n")),
            "{err}"
        );
    }

    #[test]
    fn bad_pointers_and_operations_are_refused_with_what_is_wrong() {
        let mut target = json!({"a": [1, 2]});
        let cases = [
            (json!({"op": "add"}), "must be an array"),
            (
                json!([{"op": "add", "path": "a", "value": 1}]),
                "start with",
            ),
            (json!([{"op": "add", "path": "/a/~2", "value": 1}]), "~"),
            (
                json!([{"op": "remove", "path": "/a/01"}]),
                "no array element",
            ),
            (
                json!([{"op": "remove", "path": "/a/5"}]),
                "no array element",
            ),
            (
                json!([{"op": "replace", "path": "/nope/x", "value": 1}]),
                "no such field",
            ),
            (
                json!([{"op": "frobnicate", "path": "/a"}]),
                "unsupported op",
            ),
            (json!([{"op": "add", "path": "/a/0"}]), "missing \"value\""),
            (
                json!([{"op": "move", "from": "/a", "path": "/a/0"}]),
                "into itself",
            ),
            (json!([{"op": "remove", "path": ""}]), "whole object"),
            (json!(["not an object"]), "must be an object"),
        ];
        for (patch, expected) in cases {
            let err = json_patch(&mut target, &patch, 1 << 20).unwrap_err();
            assert!(err.to_string().contains(expected), "{patch}: {err}");
        }
        assert_eq!(
            target,
            json!({"a": [1, 2]}),
            "failed patches change nothing here"
        );
    }

    #[test]
    fn doubling_copies_run_out_of_budget_instead_of_memory() {
        let mut target = json!({"a": "x".repeat(1000)});
        let mut operations = vec![json!({"op": "add", "path": "/b", "value": []})];
        for _ in 0..60 {
            operations.push(json!({"op": "copy", "from": "/a", "path": "/b/-"}));
            operations.push(json!({"op": "copy", "from": "/b", "path": "/b/-"}));
        }
        let err = json_patch(&mut target, &Value::Array(operations), 1 << 20).unwrap_err();
        assert!(err.to_string().contains("larger than the limit"), "{err}");
    }

    #[test]
    fn too_many_operations_are_refused_before_any_is_applied() {
        let op = json!({"op": "add", "path": "/a", "value": 1});
        let patch = Value::Array(vec![op; MAX_JSON_PATCH_OPERATIONS + 1]);
        let mut target = json!({});
        let err = json_patch(&mut target, &patch, usize::MAX).unwrap_err();
        assert!(err.to_string().contains("operations"), "{err}");
        assert_eq!(target, json!({}));
    }

    #[test]
    fn deep_nesting_is_refused_by_every_patch_type() {
        let mut deep = json!(1);
        for _ in 0..(MAX_DEPTH + 5) {
            deep = json!({ "a": deep });
        }
        let mut target = json!({});
        assert!(merge_patch(&mut target, &deep).is_err());
        let mut target = json!({});
        assert!(strategic_merge_patch(&mut target, &deep).is_err());
    }

    #[test]
    fn a_huge_array_within_the_request_cap_merges_in_linear_passes() {
        let items: Vec<Value> = (0..50_000).map(|i| json!(i)).collect();
        let mut target = json!({"spec": {"containers": [{"name": "c", "args": []}]}});
        let patch = json!({"spec": {"containers": [{"name": "c", "args": items}]}});
        strategic_merge_patch(&mut target, &patch).unwrap();
        assert_eq!(
            target["spec"]["containers"][0]["args"]
                .as_array()
                .unwrap()
                .len(),
            50_000
        );
    }

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}, "finalizers": ["a"]},
            "spec": {
                "containers": [
                    {"name": "web", "image": "nginx:1", "args": ["a", "b"],
                     "ports": [{"containerPort": 80, "name": "http"}],
                     "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                    {"name": "side", "image": "busybox"}
                ],
                "volumes": [{"name": "data", "emptyDir": {}}]
            }
        })
    }

    #[test]
    fn a_strategic_patch_merges_containers_by_name_ports_by_port_and_env_by_name() {
        let mut target = pod();
        let patch = json!({"spec": {"containers": [
            {"name": "web", "image": "nginx:2", "args": ["c"],
             "ports": [{"containerPort": 443}],
             "env": [{"name": "B", "value": "3"}, {"name": "A", "$patch": "delete"}]},
            {"name": "new", "image": "alpine"}
        ]}});
        strategic_merge_patch(&mut target, &patch).unwrap();
        let containers = target["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 3);
        let web = &containers[0];
        assert_eq!(web["image"], "nginx:2");
        assert_eq!(
            web["args"],
            json!(["c"]),
            "lists without a strategy are replaced"
        );
        assert_eq!(
            web["ports"],
            json!([{"containerPort": 80, "name": "http"}, {"containerPort": 443}])
        );
        assert_eq!(web["env"], json!([{"name": "B", "value": "3"}]));
        assert_eq!(containers[1]["name"], "side");
        assert_eq!(containers[2], json!({"name": "new", "image": "alpine"}));
    }

    #[test]
    fn strategic_directives_replace_delete_retain_order_and_drop_primitives() {
        let mut target = pod();
        let patch = json!({
            "metadata": {
                "labels": {"tier": null},
                "$deleteFromPrimitiveList/finalizers": ["a"],
            },
            "spec": {
                "$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
                "containers": [{"name": "web", "env": [{"$patch": "replace"}, {"name": "C", "value": "x"}]}],
                "volumes": [{"name": "data", "hostPath": {"path": "/x"}, "$retainKeys": ["name", "hostPath"]}],
            }
        });
        strategic_merge_patch(&mut target, &patch).unwrap();
        assert_eq!(target["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(target["metadata"]["finalizers"], json!([]));
        let containers = target["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers[0]["name"], "side");
        assert_eq!(containers[1]["env"], json!([{"name": "C", "value": "x"}]));
        assert_eq!(
            target["spec"]["volumes"],
            json!([{"name": "data", "hostPath": {"path": "/x"}}])
        );
        let mut target = pod();
        let patch = json!({"spec": {"$patch": "replace", "containers": [{"name": "only"}]}});
        strategic_merge_patch(&mut target, &patch).unwrap();
        assert_eq!(target["spec"], json!({"containers": [{"name": "only"}]}));
    }

    #[test]
    fn strategic_patches_with_bad_directives_or_keys_are_malformed() {
        let cases = [
            json!({"spec": {"$patch": "explode"}}),
            json!({"spec": {"$frob": 1}}),
            json!({"spec": {"containers": [{"image": "x"}]}}),
            json!({"spec": {"containers": ["x"]}}),
            json!({"$patch": "delete"}),
            json!([1]),
        ];
        for patch in cases {
            let mut target = pod();
            let err = strategic_merge_patch(&mut target, &patch).unwrap_err();
            assert!(matches!(err, PatchError::Malformed(_)), "{patch}: {err}");
        }
    }

    #[test]
    fn deployments_merge_their_template_containers_by_name_too() {
        assert_eq!(
            list_strategy(&["spec", "template", "spec", "containers"]),
            ListStrategy::MergeByKey("name")
        );
        assert_eq!(
            list_strategy(&["spec", "template", "spec", "containers", "env"]),
            ListStrategy::MergeByKey("name")
        );
        assert_eq!(
            list_strategy(&["status", "conditions"]),
            ListStrategy::MergeByKey("type")
        );
        assert_eq!(list_strategy(&["spec", "taints"]), ListStrategy::Atomic);
        assert_eq!(
            list_strategy(&["spec", "containers", "args"]),
            ListStrategy::Atomic
        );
    }

    #[test]
    fn field_sets_round_trip_through_fields_v1_and_find_their_values() {
        let config = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx", "args": ["x"]}]}
        });
        let set = FieldSet::of(&config);
        let image: Vec<Step> = vec![
            "f:spec".into(),
            "f:containers".into(),
            r#"k:{"name":"web"}"#.into(),
            "f:image".into(),
        ];
        assert!(set.contains(&image));
        assert!(!set.0.iter().any(|p| p[0] == "f:apiVersion"));
        assert_eq!(value_at(&config, &image), Some(&json!("nginx")));
        assert_eq!(
            display_path(&image),
            r#".spec.containers[name="web"].image"#
        );
        let v1 = set.to_fields_v1();
        assert_eq!(v1["f:metadata"]["f:labels"]["f:app"], json!({}));
        assert_eq!(
            v1["f:spec"]["f:containers"][r#"k:{"name":"web"}"#]["."],
            json!({})
        );
        assert_eq!(FieldSet::from_fields_v1(&v1), set);
        let mut object = config.clone();
        remove_at(&mut object, &image);
        assert!(object["spec"]["containers"][0].get("image").is_none());
        remove_at(&mut object, &image[..3]);
        assert_eq!(object["spec"]["containers"], json!([]));
    }
}
