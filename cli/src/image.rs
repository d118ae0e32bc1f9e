//! `skiff image import | push | ls | rm`: the nodes' image stores, and registries (a
//! `skiff up` cluster's, or the one an image's name names). One node (`--node`) or every
//! Ready node (`--all-nodes`; `ls` without `--node`); with several nodes a node's failure is
//! reported on stderr (`node-2: Error from server (…): …`) and the others go on, and the
//! verb fails at the end. The texts are pure functions of the answers, tested with fixed
//! inputs.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Utc};
use skiff_api::meta::Time;
use skiff_api::types::Node;
use skiff_client::{Client, Image, ImportedImageInfo, ListParams, RemovedImages};
use skiff_image::ArchiveImage;

use crate::table::{Table, human_duration};
use crate::verbs::VerbError;

/// The largest archive a node takes (its agent refuses more).
pub const MAX_ARCHIVE_BYTES: u64 = 4 << 30;

/// Which nodes an image verb acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Node(String),
    /// Every Ready node.
    AllNodes,
}

impl Target {
    /// `--node N` or `--all-nodes` (exactly one; `ls` takes neither for every node).
    pub fn from_flags(node: Option<String>, all_nodes: bool) -> Result<Target, VerbError> {
        match (node, all_nodes) {
            (Some(node), false) => Ok(Target::Node(node)),
            (None, true) => Ok(Target::AllNodes),
            _ => Err(VerbError::Usage(
                "give --node NODE or --all-nodes (exactly one of them)".into(),
            )),
        }
    }
}

/// The nodes `target` names: the one given (checked by the server), or every Ready node
/// by name.
pub async fn nodes(client: &Client, target: &Target) -> Result<Vec<String>, VerbError> {
    if let Target::Node(node) = target {
        return Ok(vec![node.clone()]);
    }
    let mut names: Vec<String> = client
        .list::<Node>(&ListParams::all_namespaces())
        .await?
        .items
        .into_iter()
        .filter(Node::is_ready)
        .map(|n| n.metadata.name)
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(VerbError::Usage("no Ready nodes".into()));
    }
    Ok(names)
}

/// Docker's short image id: 12 hex digits of `sha256:…`.
pub fn short_id(id: &str) -> String {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.chars().take(12).collect()
}

/// Docker's human sizes: decimal units, three significant digits (`730kB`, `4.26MB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    // Three significant digits, trailing zeros dropped (printf's %.3g).
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

fn created(image: &Image, now: Time) -> String {
    match DateTime::parse_from_rfc3339(&image.created) {
        Ok(at) => format!(
            "{} ago",
            human_duration((now - at.with_timezone(&Utc)).num_seconds())
        ),
        Err(_) => "<unknown>".into(),
    }
}

/// `skiff image ls`: one row per reference (an unnamed image: `<none>`), nodes in the
/// order given.
pub fn images_table(nodes: &[(String, Vec<Image>)], now: Time) -> String {
    let mut rows = Vec::new();
    for (node, images) in nodes {
        for image in images {
            let names: Vec<String> = if image.references.is_empty() {
                vec!["<none>".into()]
            } else {
                image.references.clone()
            };
            for name in names {
                rows.push(vec![
                    node.clone(),
                    name,
                    short_id(&image.id),
                    human_size(image.size),
                    created(image, now),
                ]);
            }
        }
    }
    Table::new(&["NODE", "IMAGE", "ID", "SIZE", "CREATED"], rows).render()
}

/// `skiff image import`'s lines for one node: one per image of the archive.
pub fn import_lines(node: &str, images: &[ImportedImageInfo]) -> String {
    let mut out = String::new();
    for imported in images {
        let image = imported.image.clone().unwrap_or_default();
        let names = if !imported.names.is_empty() {
            imported.names.join(", ")
        } else if !image.references.is_empty() {
            image.references.join(", ")
        } else {
            "<none>".into()
        };
        let verb = if imported.existed {
            "unchanged"
        } else {
            "imported"
        };
        out.push_str(&format!(
            "{node}: {verb} {names} (sha256:{})\n",
            short_id(&image.id)
        ));
    }
    if images.is_empty() {
        out.push_str(&format!("{node}: the archive holds no image\n"));
    }
    out
}

/// `skiff image rm`'s lines for one node, as `docker rmi` reports.
pub fn remove_lines(node: &str, removed: &RemovedImages) -> String {
    let mut out = String::new();
    for reference in &removed.untagged {
        out.push_str(&format!("{node}: untagged {reference}\n"));
    }
    for digest in &removed.deleted {
        out.push_str(&format!("{node}: deleted {digest}\n"));
    }
    out
}

/// With several nodes, reports a node's failure on `err` and goes on; with one, fails.
fn per_node<T>(
    result: Result<T, skiff_client::Error>,
    node: &str,
    several: bool,
    err: &mut impl Write,
    failed: &mut bool,
) -> Result<Option<T>, VerbError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if several => {
            writeln!(err, "{node}: {}", VerbError::from(e))?;
            *failed = true;
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Refuses what is not a readable archive file of at most [`MAX_ARCHIVE_BYTES`].
fn check_archive(file: &Path) -> Result<(), VerbError> {
    let shown = file.display();
    let metadata = match std::fs::metadata(file) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(VerbError::Usage(format!(
                "the path \"{shown}\" does not exist"
            )));
        }
        Err(e) => return Err(VerbError::Usage(format!("cannot read \"{shown}\": {e}"))),
    };
    if !metadata.is_file() {
        return Err(VerbError::Usage(format!("\"{shown}\" is not a file")));
    }
    if metadata.len() > MAX_ARCHIVE_BYTES {
        return Err(VerbError::Usage(format!(
            "\"{shown}\" is {} bytes: image archives may be at most 4 GiB",
            metadata.len()
        )));
    }
    Ok(())
}

/// `skiff image import FILE (--node N | --all-nodes)`; on a `skiff up` cluster the images
/// also go into its registry, as `kind load` and `k3d image import` do, so that pulls
/// (`imagePullPolicy: Always`, what `:latest` means) find them. Ok(false): some node failed
/// (its error is on `err`).
pub async fn import(
    client: &Client,
    file: &Path,
    target: &Target,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<bool, VerbError> {
    check_archive(file)?;
    let shown = file.display();
    let nodes = nodes(client, target).await?;
    let several = matches!(target, Target::AllNodes);
    let mut failed = false;
    for node in &nodes {
        let archive = tokio::fs::File::open(file)
            .await
            .map_err(|e| VerbError::Usage(format!("cannot read \"{shown}\": {e}")))?;
        let result = client.import_image(node, archive).await;
        if let Some(images) = per_node(result, node, several, err, &mut failed)? {
            out.write_all(import_lines(node, &images).as_bytes())?;
        }
    }
    if let Some(registry) = crate::local::registry::reachable() {
        failed |= !push_archive(file, &registry.to_string(), out, err).await?;
    }
    Ok(!failed)
}

/// `skiff image push FILE`: every named image of a `docker save` archive or an OCI layout
/// tarball into the registry of the `skiff up` cluster this config names, under each of
/// its names.
pub async fn push(
    file: &Path,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<bool, VerbError> {
    check_archive(file)?;
    let Some(registry) = crate::local::registry::reachable() else {
        return Err(VerbError::Usage(
            "skiff image push puts images into a local cluster's registry (skiff up), and the current config names no local cluster".into(),
        ));
    };
    push_archive(file, &registry.to_string(), out, err).await
}

/// Where `skiff image push IMAGE` sends an image, as `docker push` reads its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// `HOST:PORT`.
    pub registry: String,
    pub repository: String,
    pub tag: String,
    /// Plain HTTP rather than HTTPS.
    pub plain_http: bool,
}

/// Where `image` goes: a name with a registry host (`HOST[:PORT]/REPOSITORY[:TAG]`) to that
/// registry; a Docker Hub name to `local`, the registry of the `skiff up` cluster this
/// process talks to, which stands in for Docker Hub. Loopback registries and the local one
/// speak plain HTTP, others HTTPS unless `plain_http`.
pub fn destination(
    image: &str,
    local: Option<&str>,
    plain_http: bool,
) -> Result<Destination, VerbError> {
    if image.contains('@') {
        return Err(VerbError::Usage(format!(
            "{image}: a digest names no tag to push: name the image by a tag"
        )));
    }
    if let Some((repository, tag)) = skiff_image::push::hub_repository(image) {
        let Some(local) = local else {
            return Err(VerbError::Usage(format!(
                "{image} is a Docker Hub name, and the current config names no local cluster (skiff up) whose registry stands in for Docker Hub: name the registry, as in HOST:PORT/{}:{tag}",
                repository.trim_start_matches("library/")
            )));
        };
        return Ok(Destination {
            registry: local.to_string(),
            repository,
            tag,
            plain_http: true,
        });
    }
    let invalid = || VerbError::Usage(format!("{image}: not an image name"));
    let (registry, rest) = image.split_once('/').ok_or_else(invalid)?;
    let (repository, tag) = skiff_image::push::split_tag(rest);
    if registry.is_empty() || repository.is_empty() || tag.is_empty() {
        return Err(invalid());
    }
    let host = registry
        .rsplit_once(':')
        .map_or(registry, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    Ok(Destination {
        registry: registry.to_string(),
        repository: repository.to_string(),
        tag: tag.to_string(),
        plain_http: plain_http || loopback || Some(registry) == local,
    })
}

/// `skiff image push IMAGE [--node N]`: the image IMAGE names in a node's store (`node`,
/// else the first Ready node, by name, that has it) into the registry [`destination`] picks,
/// streamed out of the node's store with its manifest as it is there.
pub async fn push_image(
    client: &Client,
    image: &str,
    node: Option<&str>,
    plain_http: bool,
    out: &mut impl Write,
) -> Result<bool, VerbError> {
    let local = crate::local::registry::reachable().map(|a| a.to_string());
    let to = destination(image, local.as_deref(), plain_http)?;
    let candidates = match node {
        Some(node) => vec![node.to_string()],
        None => nodes(client, &Target::AllNodes).await?,
    };
    let mut found = None;
    for candidate in candidates {
        let mut archive = Vec::new();
        match client.export_image(&candidate, image, &mut archive).await {
            Ok(_) => {
                found = Some((candidate, archive));
                break;
            }
            // Without --node: the next node may have it.
            Err(e) if e.is_not_found() && node.is_none() => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let Some((from, archive)) = found else {
        return Err(VerbError::Usage(format!(
            "no file \"{image}\", and no Ready node has an image {image}"
        )));
    };
    let exported = skiff_image::archive_images(&archive)
        .map_err(|e| VerbError::Usage(format!("{from}: the exported image: {e}")))?;
    let manifest = exported
        .into_iter()
        .next()
        .map(|i| i.manifest)
        .ok_or_else(|| VerbError::Usage(format!("{from}: the export holds no image")))?;
    let digest = skiff_image::push::push(
        &to.registry,
        &to.repository,
        &to.tag,
        &manifest,
        to.plain_http,
    )
    .await
    .map_err(|e| VerbError::Usage(format!("{}: {e}", to.registry)))?;
    writeln!(
        out,
        "{from}: pushed {image} to {}/{}:{} ({digest})",
        to.registry, to.repository, to.tag
    )?;
    Ok(true)
}

/// Which names of `images` go to the registry (name, index of the image), and a line for
/// each that cannot: an unnamed image, a name of another registry than Docker Hub.
pub fn push_plan(images: &[ArchiveImage]) -> (Vec<(String, usize)>, Vec<String>) {
    let mut pushes = Vec::new();
    let mut refused = Vec::new();
    for (index, image) in images.iter().enumerate() {
        if image.names.is_empty() {
            refused.push(format!(
                "image {} (sha256:{}) has no name in the archive: not pushed",
                index + 1,
                short_id(&skiff_image::sha256(&image.manifest.config))
            ));
        }
        for name in &image.names {
            if skiff_image::push::hub_repository(name).is_some() {
                pushes.push((name.clone(), index));
            } else {
                refused.push(format!(
                    "{name}: not pushed: the local registry stands in for Docker Hub, and this name is another registry's"
                ));
            }
        }
    }
    (pushes, refused)
}

/// Pushes the images of `file` into `registry` (a Docker Hub mirror); Ok(false) when some
/// image was not pushed (said on `err`).
async fn push_archive(
    file: &Path,
    registry: &str,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<bool, VerbError> {
    let shown = file.display();
    let bytes = tokio::fs::read(file)
        .await
        .map_err(|e| VerbError::Usage(format!("cannot read \"{shown}\": {e}")))?;
    let images = skiff_image::archive_images(&bytes)
        .map_err(|e| VerbError::Usage(format!("\"{shown}\": {e}")))?;
    drop(bytes);
    let (pushes, refused) = push_plan(&images);
    for line in &refused {
        writeln!(err, "{line}")?;
    }
    let mut ok = refused.is_empty();
    for (name, index) in pushes {
        match skiff_image::push::push_hub_name(registry, &name, &images[index].manifest).await {
            Ok(digest) => writeln!(out, "{registry}: pushed {name} ({digest})")?,
            Err(e) => {
                writeln!(err, "{registry}: {e}")?;
                ok = false;
            }
        }
    }
    Ok(ok)
}

/// `skiff image ls [--node N]` (every Ready node without `--node`).
pub async fn ls(
    client: &Client,
    node: Option<&str>,
    now: Time,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<bool, VerbError> {
    let target = match node {
        Some(node) => Target::Node(node.into()),
        None => Target::AllNodes,
    };
    let names = nodes(client, &target).await?;
    let several = node.is_none();
    let mut failed = false;
    let mut listed = Vec::new();
    for node in names {
        let result = client.list_images(&node).await;
        if let Some(images) = per_node(result, &node, several, err, &mut failed)? {
            listed.push((node, images));
        }
    }
    out.write_all(images_table(&listed, now).as_bytes())?;
    Ok(!failed)
}

/// `skiff image rm REF (--node N | --all-nodes)`.
pub async fn rm(
    client: &Client,
    reference: &str,
    target: &Target,
    out: &mut impl Write,
    err: &mut impl Write,
) -> Result<bool, VerbError> {
    let nodes = nodes(client, target).await?;
    let several = matches!(target, Target::AllNodes);
    let mut failed = false;
    for node in &nodes {
        let result = client.remove_image(node, reference).await;
        if let Some(removed) = per_node(result, node, several, err, &mut failed)? {
            out.write_all(remove_lines(node, &removed).as_bytes())?;
        }
    }
    Ok(!failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const DIGEST: &str = "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    fn now() -> Time {
        "2026-11-23T12:00:00Z".parse().unwrap()
    }

    fn image(references: &[&str], size: u64, created: &str) -> Image {
        Image {
            references: references.iter().map(|r| r.to_string()).collect(),
            id: ID.into(),
            digest: DIGEST.into(),
            size,
            created: created.into(),
            unpacked_size: size * 2,
            architecture: "amd64".into(),
            os: "linux".into(),
        }
    }

    #[test]
    fn a_pushed_image_goes_where_its_name_says_as_docker_push_reads_it() {
        let local = Some("10.250.0.1:5000");
        let to = |image: &str, local: Option<&str>, plain: bool| {
            destination(image, local, plain).map(|d| {
                format!(
                    "{}/{}:{} {}",
                    d.registry,
                    d.repository,
                    d.tag,
                    if d.plain_http { "http" } else { "https" }
                )
            })
        };
        assert_eq!(
            to("busybox", local, false).unwrap(),
            "10.250.0.1:5000/library/busybox:latest http"
        );
        assert_eq!(
            to("me/app:v2", local, false).unwrap(),
            "10.250.0.1:5000/me/app:v2 http"
        );
        assert_eq!(
            to("registry.lan:5000/x/y:1", local, false).unwrap(),
            "registry.lan:5000/x/y:1 https"
        );
        assert_eq!(
            to("registry.lan:5000/x/y:1", None, true).unwrap(),
            "registry.lan:5000/x/y:1 http"
        );
        assert_eq!(
            to("127.0.0.1:5000/x", None, false).unwrap(),
            "127.0.0.1:5000/x:latest http"
        );
        assert_eq!(
            to("localhost:5000/a/b:c", None, false).unwrap(),
            "localhost:5000/a/b:c http"
        );
        assert_eq!(
            to("10.250.0.1:5000/x:1", local, false).unwrap(),
            "10.250.0.1:5000/x:1 http"
        );
        let err = to("busybox", None, false).unwrap_err().to_string();
        assert!(err.contains("names no local cluster"), "{err}");
        assert!(err.contains("HOST:PORT/busybox:latest"), "{err}");
        let err = to("x.io/a@sha256:00", local, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a digest names no tag"), "{err}");
        assert!(to("x.io/", local, false).is_err());
    }

    #[test]
    fn human_sizes_like_docker() {
        let cases = [
            (0, "0B"),
            (999, "999B"),
            (1000, "1kB"),
            (730_000, "730kB"),
            (4_260_000, "4.26MB"),
            (12_345_678, "12.3MB"),
            (123_456_789, "123MB"),
            (1_500_000_000, "1.5GB"),
        ];
        for (bytes, text) in cases {
            assert_eq!(human_size(bytes), text, "{bytes}");
        }
    }

    #[test]
    fn ls_table_golden() {
        let nodes = vec![
            (
                "node-1".to_string(),
                vec![
                    image(
                        &[
                            "docker.io/library/busybox:latest",
                            "docker.io/library/busybox:1.36",
                        ],
                        2_145_000,
                        "2026-11-20T12:00:00Z",
                    ),
                    image(&[], 730_000, ""),
                ],
            ),
            ("node-2".to_string(), vec![]),
            (
                "node-3".to_string(),
                vec![image(
                    &["registry.local:5000/team/app:v2"],
                    123_456_789,
                    "2026-11-23T11:58:30Z",
                )],
            ),
        ];
        assert_eq!(
            images_table(&nodes, now()),
            "\
NODE     IMAGE                              ID             SIZE     CREATED
node-1   docker.io/library/busybox:latest   0123456789ab   2.15MB   3d ago
node-1   docker.io/library/busybox:1.36     0123456789ab   2.15MB   3d ago
node-1   <none>                             0123456789ab   730kB    <unknown>
node-3   registry.local:5000/team/app:v2    0123456789ab   123MB    90s ago
"
        );
        assert_eq!(
            images_table(&[], now()),
            "NODE   IMAGE   ID   SIZE   CREATED\n"
        );
    }

    #[test]
    fn import_lines_golden() {
        let busybox = ImportedImageInfo {
            image: Some(image(
                &["docker.io/library/busybox:latest"],
                1,
                "2026-11-20T12:00:00Z",
            )),
            names: vec!["docker.io/library/busybox:latest".into()],
            existed: false,
        };
        let again = ImportedImageInfo {
            existed: true,
            ..busybox.clone()
        };
        let unnamed = ImportedImageInfo {
            image: Some(image(&[], 1, "")),
            names: vec![],
            existed: false,
        };
        assert_eq!(
            import_lines("node-1", &[busybox, unnamed]),
            "\
node-1: imported docker.io/library/busybox:latest (sha256:0123456789ab)
node-1: imported <none> (sha256:0123456789ab)
"
        );
        assert_eq!(
            import_lines("node-2", &[again]),
            "node-2: unchanged docker.io/library/busybox:latest (sha256:0123456789ab)\n"
        );
        assert_eq!(
            import_lines("node-3", &[]),
            "node-3: the archive holds no image\n"
        );
    }

    #[test]
    fn remove_lines_golden() {
        let removed = RemovedImages {
            untagged: vec!["docker.io/library/busybox:latest".into()],
            deleted: vec![DIGEST.into()],
        };
        assert_eq!(
            remove_lines("node-1", &removed),
            format!(
                "node-1: untagged docker.io/library/busybox:latest\nnode-1: deleted {DIGEST}\n"
            )
        );
        let untag_only = RemovedImages {
            untagged: vec!["docker.io/library/busybox:1.36".into()],
            deleted: vec![],
        };
        assert_eq!(
            remove_lines("node-2", &untag_only),
            "node-2: untagged docker.io/library/busybox:1.36\n"
        );
    }

    #[test]
    fn a_push_goes_by_each_docker_hub_name_and_reports_what_it_cannot_push() {
        let manifest = skiff_image::OciManifest::new(b"{}".to_vec(), vec![]);
        let image = |names: &[&str]| ArchiveImage {
            names: names.iter().map(|n| n.to_string()).collect(),
            manifest: manifest.clone(),
        };
        let images = [
            image(&["busybox:latest", "me/app:v1"]),
            image(&[]),
            image(&["ghcr.io/x/y:1"]),
        ];
        let (pushes, refused) = push_plan(&images);
        assert_eq!(
            pushes,
            [
                ("busybox:latest".to_string(), 0),
                ("me/app:v1".to_string(), 0)
            ]
        );
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(
            refused[0].starts_with("image 2 (sha256:44136fa355b3) has no name"),
            "{refused:?}"
        );
        assert!(
            refused[1].starts_with("ghcr.io/x/y:1: not pushed"),
            "{refused:?}"
        );
    }

    #[test]
    fn image_commands_target_one_node_or_all() {
        assert_eq!(
            Target::from_flags(Some("n1".into()), false).unwrap(),
            Target::Node("n1".into())
        );
        assert_eq!(Target::from_flags(None, true).unwrap(), Target::AllNodes);
        assert!(Target::from_flags(None, false).is_err());
        assert!(Target::from_flags(Some("n1".into()), true).is_err());
        assert_eq!(short_id(ID), "0123456789ab");
    }
}
