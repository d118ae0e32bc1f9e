//! `skiff get TYPE[,TYPE…] [NAME…]`, `TYPE/NAME…`, `all`: tables like kubectl's, or the
//! objects as JSON / YAML / names.

use serde_json::Value;
use skiff_api::Kind;
use skiff_api::meta::Time;
use skiff_api::types::{Deployment, Event, Namespace, Node, Pod};
use skiff_client::{Client, ListParams, Resource};

use crate::error::api_message;
use crate::table;
use crate::target::{Request, TargetError};

#[derive(Debug, thiserror::Error)]
pub enum GetError {
    #[error(transparent)]
    Target(#[from] TargetError),
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
    /// Leave out the header line (tables only), `--no-headers`.
    pub no_headers: bool,
    /// Add a column per label key (tables only).
    pub label_columns: Vec<String>,
    pub output: Output,
    /// Lists come in pages of this many objects (0: one request), `--chunk-size`.
    pub chunk_size: u64,
}

/// The objects `args` name (a missing one adds kubectl's NotFound line to `missing`), or
/// those its selectors pick.
async fn fetch<T: Resource>(
    client: &Client,
    args: &GetArgs,
    scoped: bool,
    missing: &mut Vec<String>,
) -> Result<Vec<T>, GetError> {
    let namespace = if scoped { args.namespace.as_str() } else { "" };
    if !args.names.is_empty() {
        let mut objects = Vec::new();
        for name in &args.names {
            match client.get::<T>(namespace, name).await {
                Ok(object) => objects.push(object),
                Err(e) if e.is_not_found() => missing.push(api_message(&e)),
                Err(e) => return Err(e.into()),
            }
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
    Ok(client
        .list::<T>(&params.page_size(args.chunk_size))
        .await?
        .items)
}

/// The objects (each with its kind) in a format other than a table; `single`: one object
/// was asked for by name, and prints as itself rather than in a List.
fn print(objects: &[(Kind, Value)], single: bool, output: &Output) -> Result<String, GetError> {
    let items = || objects.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>();
    let value = || match objects {
        [(_, object)] if single => object.clone(),
        _ => serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items()}),
    };
    match output {
        Output::Json => serde_json::to_string_pretty(&value())
            .map(|s| s + "\n")
            .map_err(|e| GetError::Print(e.to_string())),
        Output::Yaml => Ok(crate::yaml::to_string(&value())),
        Output::Name => Ok(objects
            .iter()
            .map(|(kind, o)| {
                let name = o["metadata"]["name"].as_str().unwrap_or_default();
                format!("{}/{name}\n", kind.resource())
            })
            .collect()),
        Output::JsonPath(template) => crate::jsonpath::jsonpath(template, &value())
            .map_err(|e| GetError::Print(e.to_string())),
        Output::CustomColumns(spec) => crate::jsonpath::custom_columns(spec, &items())
            .map_err(|e| GetError::Print(e.to_string())),
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

/// One kind's objects as `args` asks: a table (None when there are none) for table
/// outputs, else the objects as JSON values.
async fn show<T: Tabular>(
    client: &Client,
    args: &GetArgs,
    missing: &mut Vec<String>,
) -> Result<(Option<table::Table>, Vec<Value>), GetError> {
    let mut objects: Vec<T> = fetch(client, args, args.kind.is_namespaced(), missing).await?;
    if !matches!(args.output, Output::Table | Output::Wide) {
        let values = objects
            .iter()
            .map(|o| serde_json::to_value(o).map_err(|e| GetError::Print(e.to_string())))
            .collect::<Result<_, _>>()?;
        return Ok((None, values));
    }
    if objects.is_empty() {
        return Ok((None, Vec::new()));
    }
    let mut table = T::table(&mut objects, args, chrono::Utc::now());
    let labels: Vec<_> = objects.iter().map(|o| &o.metadata().labels).collect();
    table.add_label_columns(&labels, &args.label_columns, args.show_labels);
    Ok((Some(table), Vec::new()))
}

/// What `skiff get` prints: `out` on standard output, then each of `missing` (kubectl's
/// NotFound lines) on standard error, which makes the exit code 1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Got {
    pub out: String,
    pub missing: Vec<String>,
}

/// The text `skiff get` prints for `args`' one kind (a missing name is an error).
pub async fn get(client: &Client, args: &GetArgs) -> Result<String, GetError> {
    let request = Request {
        kind: args.kind,
        names: args.names.clone(),
    };
    let got = get_requests(client, &[request], args).await?;
    if got.missing.is_empty() {
        Ok(got.out)
    } else {
        Err(GetError::Print(got.missing.join("\n")))
    }
}

/// `skiff get` of every request in turn, with `args`' namespace, selectors and output
/// (its `kind` and `names` are the requests'). Tables of several kinds name each object
/// `kind/name` and are a blank line apart, as kubectl prints them.
pub async fn get_requests(
    client: &Client,
    requests: &[Request],
    args: &GetArgs,
) -> Result<Got, GetError> {
    let mut missing = Vec::new();
    let mut tables = Vec::new();
    let mut values = Vec::new();
    for request in requests {
        let args = GetArgs {
            kind: request.kind,
            names: request.names.clone(),
            ..args.clone()
        };
        let (table, objects) = match request.kind {
            Kind::Pod => show::<Pod>(client, &args, &mut missing).await?,
            Kind::Node => show::<Node>(client, &args, &mut missing).await?,
            Kind::Deployment => show::<Deployment>(client, &args, &mut missing).await?,
            Kind::Namespace => show::<Namespace>(client, &args, &mut missing).await?,
            Kind::Event => show::<Event>(client, &args, &mut missing).await?,
        };
        tables.extend(table.map(|t| (request.kind, t)));
        values.extend(objects.into_iter().map(|o| (request.kind, o)));
    }
    if !matches!(args.output, Output::Table | Output::Wide) {
        let single = matches!(requests, [r] if r.names.len() == 1);
        let out = if values.is_empty() && !missing.is_empty() {
            String::new()
        } else {
            print(&values, single, &args.output)?
        };
        return Ok(Got { out, missing });
    }
    let with_kind = requests.len() > 1;
    let mut out = String::new();
    for (i, (kind, mut table)) in tables.into_iter().enumerate() {
        if with_kind {
            table.prefix_names(&format!("{}/", kind.resource()));
        }
        if args.no_headers {
            table.header.clear();
        }
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&table.render());
    }
    if out.is_empty() && missing.is_empty() {
        let namespaced = requests.iter().any(|r| r.kind.is_namespaced());
        let scope = if namespaced && !args.all_namespaces {
            format!(" in {} namespace", args.namespace)
        } else {
            String::new()
        };
        out = format!("No resources found{scope}.\n");
    }
    Ok(Got { out, missing })
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
        let mut table = T::table(std::slice::from_mut(&mut object), args, chrono::Utc::now());
        let labels = [&object.metadata().labels];
        table.add_label_columns(&labels, &args.label_columns, args.show_labels);
        if args.no_headers {
            table.header.clear();
        }
        let lines = table.lines();
        let skip = usize::from(header_printed && !args.no_headers);
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
        let pods: Vec<(Kind, Value)> = pods()
            .iter()
            .map(|p| (Kind::Pod, serde_json::to_value(p).unwrap()))
            .collect();
        assert_eq!(
            print(&pods, false, &Output::Name).unwrap(),
            "pod/a\npod/b\n"
        );
        // One named object prints the object itself.
        assert_eq!(
            print(&pods[..1], true, &Output::Json).unwrap(),
            "{\n  \"apiVersion\": \"v1\",\n  \"kind\": \"Pod\",\n  \"metadata\": {\n    \"name\": \"a\",\n    \"namespace\": \"default\"\n  },\n  \"spec\": {\n    \"containers\": [\n      {\n        \"image\": \"busybox\",\n        \"name\": \"c\"\n      }\n    ]\n  }\n}\n"
        );
        // Several print as a List.
        assert_eq!(
            print(&pods, false, &Output::Yaml).unwrap(),
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
    fn outputs() {
        assert_eq!(Output::parse(Some("wide")).unwrap(), Output::Wide);
        assert!(
            Output::parse(Some("xml"))
                .unwrap_err()
                .to_string()
                .contains("\"xml\"")
        );
    }
}
