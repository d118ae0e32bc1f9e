//! A tour of the SDK against a running cluster:
//! `cargo run -p skiff-client --example basic -- CONFIG [HOST:PORT,...]`
//! CONFIG is a Skiff client config: a member's `<data-dir>/admin.conf` (servers, the
//! cluster CA and an admin certificate) or `~/.skiff/config`; default `$SKIFF_CONFIG`.
//! Endpoints, as one comma-separated argument or several, override the config's servers.

use std::time::Duration;

use futures::StreamExt;
use skiff_api::meta::ObjectMeta;
use skiff_api::types::{Container, Namespace, Pod, PodSpec};
use skiff_client::{Client, DeleteParams, ListParams, MetadataPatch, WatchEvent, WatchParams};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let config = args
        .next()
        .or_else(|| std::env::var("SKIFF_CONFIG").ok())
        .ok_or("usage: basic CONFIG [HOST:PORT,...] (or set SKIFF_CONFIG)")?;
    let endpoints: Vec<String> = args.collect();
    let mut builder = Client::builder_from_config(&config, None)?;
    if !endpoints.is_empty() {
        builder = builder.endpoints(&endpoints);
    }
    let client = builder.build()?;
    client.wait_ready(Duration::from_secs(10)).await?;

    let namespace = Namespace {
        metadata: ObjectMeta {
            name: "sdk-demo".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    match client.create(&namespace).await {
        Ok(ns) => println!("namespace/{} created", ns.metadata.name),
        Err(e) if e.is_already_exists() => println!("namespace/sdk-demo unchanged"),
        Err(e) => return Err(e.into()),
    }

    // Watch the namespace's pods from now on, then make changes to see.
    let list = client
        .list::<Pod>(&ListParams::namespace("sdk-demo"))
        .await?;
    let mut events =
        client.watch::<Pod>(WatchParams::namespace("sdk-demo").from_version(list.resource_version));

    let pod = Pod {
        metadata: ObjectMeta {
            generate_name: Some("hello-".into()),
            namespace: Some("sdk-demo".into()),
            labels: [("app".to_string(), "hello".to_string())].into(),
            ..Default::default()
        },
        spec: PodSpec {
            containers: vec![Container {
                name: "main".into(),
                image: "busybox".into(),
                command: vec!["sleep".into(), "3600".into()],
                ..Default::default()
            }],
            ..Default::default()
        },
        ..Default::default()
    };
    let created = client.create(&pod).await?;
    let name = created.metadata.name.clone();
    println!(
        "pod/{name} created at version {:?}",
        created.metadata.resource_version
    );

    let patch = MetadataPatch::default().set_label("tier", "demo");
    client
        .patch_metadata::<Pod>("sdk-demo", &name, &patch)
        .await?;

    let selected = client
        .list::<Pod>(&ListParams::namespace("sdk-demo").labels("app=hello,tier in (demo)"))
        .await?;
    println!(
        "{} pod(s) match app=hello,tier in (demo)",
        selected.items.len()
    );

    client
        .delete::<Pod>("sdk-demo", &name, &DeleteParams::default())
        .await?;
    // Expect ADDED, MODIFIED (the label) and the deletion (DELETED, or MODIFIED with a
    // deletion timestamp while a node stops the pod); give up after a few seconds.
    let mut seen = 0;
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(5), events.next()).await {
        match event? {
            WatchEvent::Added(p) => println!("watch: ADDED {}", p.metadata.name),
            WatchEvent::Modified(p) => println!(
                "watch: MODIFIED {} labels={:?}",
                p.metadata.name, p.metadata.labels
            ),
            WatchEvent::Deleted(p) => println!("watch: DELETED {}", p.metadata.name),
            WatchEvent::Bookmark(_) => continue,
        }
        seen += 1;
        if seen == 3 {
            break;
        }
    }
    client
        .delete::<Namespace>("", "sdk-demo", &DeleteParams::default())
        .await?;
    println!("namespace/sdk-demo deleted");
    Ok(())
}
