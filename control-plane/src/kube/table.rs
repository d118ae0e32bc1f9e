//! Server-side tables (`meta.k8s.io/v1` Table), which `kubectl get` asks for with `Accept:
//! application/json;as=Table;v=v1;g=meta.k8s.io,…`: the columns are `skiff get`'s own
//! (`skiff_api::table`), so kubectl and skiff print the same. Wide columns have priority 1,
//! which kubectl shows under `-o wide` only; kubectl adds NAMESPACE (`-A`) and LABELS
//! (`--show-labels`, `-L`) itself from each row's object.

use axum::http::{HeaderMap, header};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use skiff_api::Kind;
use skiff_api::meta::{ObjectMeta, Time};
use skiff_api::table::{self, Table};
use skiff_api::types::{Deployment, Event, Namespace, Node, Pod};

use super::status::KubeError;

/// Whether the request asks for a Table first (kubectl lists it before plain JSON).
pub fn wanted(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|accept| accept.split(',').next())
        .is_some_and(|first| {
            let params: Vec<&str> = first.split(';').map(str::trim).collect();
            params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
        })
}

/// What each row carries besides its cells (`includeObject`): kubectl's default is the
/// object's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(value: Option<&str>) -> Result<Include, KubeError> {
        match value {
            None | Some("Metadata") => Ok(Include::Metadata),
            Some("None") => Ok(Include::None),
            Some("Object") => Ok(Include::Object),
            Some(other) => Err(KubeError::BadRequest(format!(
                "includeObject: Unsupported value: {other:?}: supported values: \"Object\", \"Metadata\", \"None\""
            ))),
        }
    }
}

fn decode<T: DeserializeOwned>(items: &[impl AsRef<[u8]>]) -> Result<Vec<T>, KubeError> {
    items
        .iter()
        .map(|item| serde_json::from_slice(item.as_ref()))
        .collect::<Result<_, _>>()
        .map_err(|e| KubeError::from(tonic::Status::internal(format!("stored object: {e}"))))
}

/// The table's cells and each row's object, from objects of one kind.
fn rows<T: Serialize>(
    objects: &[T],
    table: Table,
    base_columns: usize,
    meta: impl Fn(&T) -> &ObjectMeta,
    include: Include,
) -> (Vec<Value>, Vec<Value>) {
    let columns = table
        .header
        .iter()
        .enumerate()
        .map(|(i, name)| {
            json!({
                "name": name,
                "type": "string",
                "format": if name == "NAME" { "name" } else { "" },
                "description": "",
                "priority": if i < base_columns { 0 } else { 1 },
            })
        })
        .collect();
    let rows = table
        .rows
        .into_iter()
        .zip(objects)
        .map(|(cells, object)| {
            let object = match include {
                Include::None => Value::Null,
                Include::Metadata => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": meta(object),
                }),
                Include::Object => serde_json::to_value(object).unwrap_or(Value::Null),
            };
            json!({ "cells": cells, "object": object })
        })
        .collect();
    (columns, rows)
}

/// The Table of `items` (stored JSON of `kind`), as of `now`; `list_metadata` is the list's
/// (resourceVersion, continue), or empty for one object.
pub fn build(
    kind: Kind,
    items: &[impl AsRef<[u8]>],
    list_metadata: Value,
    include: Include,
    now: Time,
) -> Result<Value, KubeError> {
    let (columns, rows) = parts(kind, items, include, now)?;
    Ok(json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": columns,
        "rows": rows,
    }))
}

/// Whether a kind's rows can be made a part of the list at a time: each row depends on its
/// own object only. Events are sorted across the whole list, so they are not.
pub fn rows_stand_alone(kind: Kind) -> bool {
    kind != Kind::Event
}

/// A Table's column definitions and the rows of `items` (stored JSON of `kind`), as of
/// `now`: the columns do not depend on the items, so a long list's rows can be made a
/// part at a time (see [`rows_stand_alone`]).
pub fn parts(
    kind: Kind,
    items: &[impl AsRef<[u8]>],
    include: Include,
    now: Time,
) -> Result<(Vec<Value>, Vec<Value>), KubeError> {
    Ok(match kind {
        Kind::Pod => {
            let pods: Vec<Pod> = decode(items)?;
            let table = table::pods(&pods, true, false, now);
            rows(&pods, table, 5, |p| &p.metadata, include)
        }
        Kind::Node => {
            let nodes: Vec<Node> = decode(items)?;
            let table = table::nodes(&nodes, true, now);
            rows(&nodes, table, 5, |n| &n.metadata, include)
        }
        Kind::Deployment => {
            let deployments: Vec<Deployment> = decode(items)?;
            let table = table::deployments(&deployments, false, now);
            rows(&deployments, table, usize::MAX, |d| &d.metadata, include)
        }
        Kind::Namespace => {
            let namespaces: Vec<Namespace> = decode(items)?;
            let table = table::namespaces(&namespaces, now);
            rows(&namespaces, table, usize::MAX, |n| &n.metadata, include)
        }
        Kind::Event => {
            // Sorted oldest first in place, so the rows' objects stay with their cells.
            let mut events: Vec<Event> = decode(items)?;
            let table = table::events(&mut events, false, now);
            rows(&events, table, usize::MAX, |e| &e.metadata, include)
        }
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn kubectls_accept_header_asks_for_a_table_and_plain_json_does_not() {
        let mut headers = HeaderMap::new();
        assert!(!wanted(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
            ),
        );
        assert!(wanted(&headers));
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wanted(&headers));
    }

    #[test]
    fn a_pod_table_has_kubectls_columns_with_the_wide_ones_at_priority_one() {
        let pod = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default","labels":{"app":"web"}},"spec":{"nodeName":"node-1","containers":[{"name":"c","image":"busybox"}]},"status":{"phase":"Running","podIP":"10.244.1.5"}}"#;
        let table = build(
            Kind::Pod,
            &[pod.to_vec()],
            json!({"resourceVersion": "7"}),
            Include::Metadata,
            chrono::Utc::now(),
        )
        .unwrap();
        let names: Vec<(&str, i64)> = table["columnDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap(), c["priority"].as_i64().unwrap()))
            .collect();
        assert_eq!(
            names[..6],
            [
                ("NAME", 0),
                ("READY", 0),
                ("STATUS", 0),
                ("RESTARTS", 0),
                ("AGE", 0),
                ("IP", 1)
            ]
        );
        let row = &table["rows"][0];
        assert_eq!(row["cells"][0], "web");
        assert_eq!(row["cells"][1], "0/1");
        assert_eq!(row["cells"][2], "Running");
        assert_eq!(row["cells"][5], "10.244.1.5");
        assert_eq!(row["cells"][6], "node-1");
        assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(row["object"]["metadata"]["labels"]["app"], "web");
        assert_eq!(table["metadata"]["resourceVersion"], "7");
    }

    #[test]
    fn include_object_takes_only_kubernetes_values() {
        assert_eq!(Include::parse(None).unwrap(), Include::Metadata);
        assert_eq!(Include::parse(Some("Object")).unwrap(), Include::Object);
        assert!(Include::parse(Some("All")).is_err());
    }
}
