//! `skiff get TYPE [NAME…]`: tables like kubectl's, or the objects as JSON / YAML / names.

use skiff_api::meta::Time;
use skiff_api::types::{Deployment, Event, Namespace, Node, Pod};
use skiff_client::{Client, ListParams, Resource};

use crate::error::api_message;
use crate::table;

#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error("the server doesn't have a resource type \"{0}\"")]
    UnknownType(String),
    #[error(
        "unable to match a printer suitable for the output format \"{0}\", allowed formats are: json,name,wide,yaml"
    )]
    UnknownOutput(String),
    #[error("{}", api_message(.0))]
    Api(skiff_client::Error),
    #[error("{0}")]
    Print(String),
}

impl From<skiff_client::Error> for GetError {
    fn from(e: skiff_client::Error) -> GetError {
        GetError::Api(e)
    }
}

/// kubectl's TYPE argument: a kind's name, plural or short name, in any case.
pub fn parse_kind(text: &str) -> Result<skiff_api::Kind, GetError> {
    skiff_api::Kind::parse(text).ok_or_else(|| GetError::UnknownType(text.to_string()))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Table,
    Wide,
    Json,
    Yaml,
    Name,
    /// `jsonpath=TEMPLATE`
    JsonPath(String),
    /// `custom-columns=NAME:.path,…`
    CustomColumns(String),
}

impl Output {
    pub fn parse(text: Option<&str>) -> Result<Output, GetError> {
        Ok(match text {
            None => Output::Table,
            Some("wide") => Output::Wide,
            Some("json") => Output::Json,
            Some("yaml") => Output::Yaml,
            Some("name") => Output::Name,
            Some(other) => match other.split_once('=') {
                Some(("jsonpath", template)) => Output::JsonPath(template.to_string()),
                Some(("custom-columns", spec)) => Output::CustomColumns(spec.to_string()),
                _ => return Err(GetError::UnknownOutput(other.to_string())),
            },
        })
    }
}

#[derive(Debug, Clone)]
pub struct GetArgs {
    pub kind: skiff_api::Kind,
    pub names: Vec<String>,
    pub namespace: String,
    pub all_namespaces: bool,
    pub selector: Option<String>,
    pub field_selector: Option<String>,
    /// Add a LABELS column (tables only).
    pub show_labels: bool,
    /// Add a column per label key (tables only).
    pub label_columns: Vec<String>,
    pub output: Output,
}

async fn fetch<T: Resource>(
    client: &Client,
    args: &GetArgs,
    scoped: bool,
) -> Result<Vec<T>, GetError> {
    let namespace = if scoped { args.namespace.as_str() } else { "" };
    if !args.names.is_empty() {
        let mut objects = Vec::new();
        for name in &args.names {
            objects.push(client.get::<T>(namespace, name).await?);
        }
        return Ok(objects);
    }
    let mut params = if scoped && !args.all_namespaces {
        ListParams::namespace(namespace)
    } else {
        ListParams::all_namespaces()
    };
    if let Some(selector) = &args.selector {
        params = params.labels(selector.clone());
    }
    if let Some(selector) = &args.field_selector {
        params = params.fields(selector.clone());
    }
    Ok(client.list::<T>(&params).await?.items)
}

fn print<T: Resource>(objects: &[T], args: &GetArgs) -> Result<String, GetError> {
    let single = args.names.len() == 1;
    let value = |objects: &[T]| -> Result<serde_json::Value, GetError> {
        let items = objects
            .iter()
            .map(|o| serde_json::to_value(o).map_err(|e| GetError::Print(e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(if single {
            items.into_iter().next().unwrap_or_default()
        } else {
            serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items})
        })
    };
    match &args.output {
        Output::Json => serde_json::to_string_pretty(&value(objects)?)
            .map(|s| s + "\n")
            .map_err(|e| GetError::Print(e.to_string())),
        Output::Yaml => {
            serde_yaml_ng::to_string(&value(objects)?).map_err(|e| GetError::Print(e.to_string()))
        }
        Output::Name => Ok(objects
            .iter()
            .map(|o| format!("{}/{}\n", args.kind.resource(), o.metadata().name))
            .collect()),
        Output::JsonPath(template) => crate::jsonpath::jsonpath(template, &value(objects)?)
            .map_err(|e| GetError::Print(e.to_string())),
        Output::CustomColumns(spec) => {
            let items = objects
                .iter()
                .map(|o| serde_json::to_value(o).map_err(|e| GetError::Print(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            crate::jsonpath::custom_columns(spec, &items)
                .map_err(|e| GetError::Print(e.to_string()))
        }
        Output::Table | Output::Wide => unreachable!("tables are printed by the caller"),
    }
}

/// The kinds `skiff get` prints tables of, and which table.
trait Tabular: Resource {
    /// The table of `objects` (which it may reorder: they stay in row order).
    fn table(objects: &mut [Self], args: &GetArgs, now: Time) -> table::Table;
}

impl Tabular for Pod {
    fn table(objects: &mut [Pod], args: &GetArgs, now: Time) -> table::Table {
        table::pods(
            objects,
            args.output == Output::Wide,
            args.all_namespaces,
            now,
        )
    }
}

impl Tabular for Node {
    fn table(objects: &mut [Node], args: &GetArgs, now: Time) -> table::Table {
        table::nodes(objects, args.output == Output::Wide, now)
    }
}

impl Tabular for Deployment {
    fn table(objects: &mut [Deployment], args: &GetArgs, now: Time) -> table::Table {
        table::deployments(objects, args.all_namespaces, now)
    }
}

impl Tabular for Namespace {
    fn table(objects: &mut [Namespace], _: &GetArgs, now: Time) -> table::Table {
        table::namespaces(objects, now)
    }
}

impl Tabular for Event {
    fn table(objects: &mut [Event], args: &GetArgs, now: Time) -> table::Table {
        table::events(objects, args.all_namespaces, now)
    }
}

/// One kind's objects as `args` asks (kubectl's "No resources found" included).
async fn show<T: Tabular>(client: &Client, args: &GetArgs) -> Result<String, GetError> {
    let mut objects: Vec<T> = fetch(client, args, args.kind.is_namespaced()).await?;
    if !matches!(args.output, Output::Table | Output::Wide) {
        return print(&objects, args);
    }
    if objects.is_empty() {
        let scope = if args.kind.is_namespaced() && !args.all_namespaces {
            format!(" in {} namespace", args.namespace)
        } else {
            String::new()
        };
        return Ok(format!("No resources found{scope}.\n"));
    }
    let mut table = T::table(&mut objects, args, chrono::Utc::now());
    let labels: Vec<_> = objects.iter().map(|o| &o.metadata().labels).collect();
    table.add_label_columns(&labels, &args.label_columns, args.show_labels);
    Ok(table.render())
}

/// The text `skiff get` prints.
pub async fn get(client: &Client, args: &GetArgs) -> Result<String, GetError> {
    match args.kind {
        skiff_api::Kind::Pod => show::<Pod>(client, args).await,
        skiff_api::Kind::Node => show::<Node>(client, args).await,
        skiff_api::Kind::Deployment => show::<Deployment>(client, args).await,
        skiff_api::Kind::Namespace => show::<Namespace>(client, args).await,
        skiff_api::Kind::Event => show::<Event>(client, args).await,
    }
}

/// `skiff get … -w`: after the listing, one table row per change, until the stream ends.
pub async fn watch(
    client: &Client,
    args: &GetArgs,
    out: &mut impl std::io::Write,
) -> Result<(), GetError> {
    match args.kind {
        skiff_api::Kind::Pod => follow::<Pod>(client, args, out).await,
        skiff_api::Kind::Node => follow::<Node>(client, args, out).await,
        skiff_api::Kind::Deployment => follow::<Deployment>(client, args, out).await,
        skiff_api::Kind::Namespace => follow::<Namespace>(client, args, out).await,
        skiff_api::Kind::Event => follow::<Event>(client, args, out).await,
    }
}

async fn follow<T: Tabular>(
    client: &Client,
    args: &GetArgs,
    out: &mut impl std::io::Write,
) -> Result<(), GetError> {
    use futures::StreamExt;
    let scoped = args.kind.is_namespaced() && !args.all_namespaces;
    let mut params = if scoped {
        skiff_client::WatchParams::namespace(&args.namespace)
    } else {
        skiff_client::WatchParams::all_namespaces()
    };
    if let Some(selector) = &args.selector {
        params = params.labels(selector.clone());
    }
    if let Some(selector) = &args.field_selector {
        params = params.fields(selector.clone());
    }
    let wanted = |o: &T| args.names.is_empty() || args.names.contains(&o.metadata().name);
    // Without a version the watch starts with every object (then a bookmark): the listing.
    let mut events = client.watch::<T>(params);
    let mut header_printed = false;
    while let Some(event) = events.next().await {
        let mut object = match event.map_err(GetError::from)? {
            skiff_client::WatchEvent::Added(o)
            | skiff_client::WatchEvent::Modified(o)
            | skiff_client::WatchEvent::Deleted(o) => o,
            skiff_client::WatchEvent::Bookmark(_) => continue,
        };
        if !wanted(&object) {
            continue;
        }
        // Each row is laid out on its own; the header, as laid out with the first one.
        let table = T::table(std::slice::from_mut(&mut object), args, chrono::Utc::now());
        let lines = table.lines();
        let skip = if header_printed { 1 } else { 0 };
        header_printed = true;
        for line in &lines[skip..] {
            writeln!(out, "{line}").map_err(|e| GetError::Print(e.to_string()))?;
        }
        out.flush().map_err(|e| GetError::Print(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(output: Output, names: &[&str]) -> GetArgs {
        GetArgs {
            kind: skiff_api::Kind::Pod,
            names: names.iter().map(|s| s.to_string()).collect(),
            namespace: "default".into(),
            all_namespaces: false,
            selector: None,
            field_selector: None,
            show_labels: false,
            label_columns: vec![],
            output,
        }
    }

    fn pods() -> Vec<Pod> {
        ["a", "b"]
            .iter()
            .map(|name| {
                serde_json::from_value(serde_json::json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}
                }))
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn name_json_yaml_golden() {
        let pods = pods();
        assert_eq!(
            print(&pods, &args(Output::Name, &[])).unwrap(),
            "pod/a\npod/b\n"
        );
        // One named object prints the object itself.
        assert_eq!(
            print(&pods[..1], &args(Output::Json, &["a"])).unwrap(),
            "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Pod\",\n  \"metadata\": {\n    \"name\": \"a\",\n    \"namespace\": \"default\"\n  },\n  \"spec\": {\n    \"containers\": [\n      {\n        \"image\": \"busybox\",\n        \"name\": \"c\"\n      }\n    ]\n  }\n}\n"
        );
        // Several print as a List.
        assert_eq!(
            print(&pods, &args(Output::Yaml, &[])).unwrap(),
            "\
apiVersion: v1
items:
- apiVersion: v1
  kind: Pod
  metadata:
    name: a
    namespace: default
  spec:
    containers:
    - image: busybox
      name: c
- apiVersion: v1
  kind: Pod
  metadata:
    name: b
    namespace: default
  spec:
    containers:
    - image: busybox
      name: c
kind: List
"
        );
    }

    #[test]
    fn types_and_outputs() {
        assert_eq!(parse_kind("po").unwrap(), skiff_api::Kind::Pod);
        assert_eq!(parse_kind("Deploy").unwrap(), skiff_api::Kind::Deployment);
        assert_eq!(
            parse_kind("deployments").unwrap(),
            skiff_api::Kind::Deployment
        );
        assert_eq!(
            parse_kind("pdos").unwrap_err().to_string(),
            "the server doesn't have a resource type \"pdos\""
        );
        assert_eq!(Output::parse(Some("wide")).unwrap(), Output::Wide);
        assert!(
            Output::parse(Some("xml"))
                .unwrap_err()
                .to_string()
                .contains("\"xml\"")
        );
    }
}
