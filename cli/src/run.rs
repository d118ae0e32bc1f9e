//! Runs what `skiff` was asked: maps parsed [`Flags`] to the verbs of this library, prints
//! what they return and turns failures into kubectl's lines and exit codes.

use std::process::ExitCode;
use std::time::Duration;

use skiff_api::Kind;
use skiff_client::{Client, DeleteParams, LogParams};

use crate::flags::{
    ClusterVerb, Flags, ImageVerb, MetadataFlags, NetVerb, RolloutVerb, TokenVerb, Verb,
};
use crate::netcheck::{self, CheckOptions};
use crate::{apply, describe, endpoints, error, get, image, local, verbs, wait};

/// Runs the verb and returns `skiff`'s exit code, having printed its output and, on failure,
/// one error line.
pub fn main(flags: Flags) -> ExitCode {
    // These run their own runtime, inside a namespace.
    let local = match &flags.verb {
        Verb::Up {
            control_planes,
            workers,
            name,
            dir,
            no_demo,
            timeout_secs,
        } => Some(
            local::up(
                &local::UpOptions {
                    name: name.clone(),
                    control_planes: *control_planes,
                    workers: *workers,
                    dir: dir.clone(),
                    demo: !no_demo,
                    timeout: Duration::from_secs(*timeout_secs),
                    config: endpoints::config_path_from(flags.config.as_deref()),
                },
                &mut std::io::stdout(),
            )
            .map(|_| ()),
        ),
        Verb::Start {
            cluster,
            timeout_secs,
        } => Some(local::start(
            &cluster.name,
            &cluster.dir,
            Duration::from_secs(*timeout_secs),
            &mut std::io::stdout(),
        )),
        Verb::Stop { cluster } => Some(
            local::stop(&cluster.name, &cluster.dir, &mut std::io::stdout()).and_then(nothing_left),
        ),
        Verb::Down { cluster } => Some(
            local::down(&cluster.name, &cluster.dir, &mut std::io::stdout()).and_then(nothing_left),
        ),
        _ => None,
    };
    if let Some(result) = local {
        return match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(flags)) {
        Ok(code) => code,
        Err(e) => {
            // The verbs' own errors word the server's answers; a bare SDK error (create,
            // cluster status) only its refusals.
            let refused = e.downcast_ref().and_then(error::refusal);
            let message = refused.unwrap_or_else(|| format!("{e:#}"));
            eprintln!("{}", error::stderr_line(&message));
            ExitCode::FAILURE
        }
    }
}

/// `skiff stop` and `skiff down` fail when something could not be stopped or removed.
fn nothing_left(report: local::DownReport) -> Result<(), local::LocalError> {
    if report.leftovers.is_empty() {
        Ok(())
    } else {
        Err(local::LocalError::Invalid(
            "some things could not be stopped or removed (listed above)".into(),
        ))
    }
}

async fn run(flags: Flags) -> anyhow::Result<ExitCode> {
    // Verbs that need no control plane.
    match &flags.verb {
        Verb::Completion { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                *shell,
                &mut Flags::command(),
                "skiff",
                &mut std::io::stdout(),
            );
            return Ok(ExitCode::SUCCESS);
        }
        Verb::Explain { path } => {
            print!("{}", skiff_api::explain::explain(path)?);
            return Ok(ExitCode::SUCCESS);
        }
        Verb::Token {
            what: TokenVerb::Generate,
        } => {
            println!("{}", skiff_pki::generate_token());
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let (client, local) = connect(&flags)?;
    if let Some(status) = local {
        if let Some(warning) = status.warning() {
            eprintln!("warning: {warning}");
        }
        if matches!(
            flags.verb,
            Verb::Cluster {
                what: ClusterVerb::Status
            }
        ) {
            println!("{}", status.render());
        }
    }
    dispatch(&client, flags).await
}

/// The client for the endpoints and credential `--server`, `--config`, `--token` and the
/// environment name; inside the network namespace of a `skiff up` cluster, with what of
/// that cluster runs (one that does not is an error that says how to start it).
fn connect(flags: &Flags) -> anyhow::Result<(Client, Option<local::Status>)> {
    let config_file = endpoints::config_path_from(flags.config.as_deref());
    let target = endpoints::resolve_target(
        flags.server.as_deref(),
        std::env::var("SKIFF_SERVER").ok().as_deref(),
        &config_file,
    )?;
    let token = flags
        .token
        .clone()
        .or_else(|| std::env::var("SKIFF_TOKEN").ok())
        .filter(|t| !t.trim().is_empty());
    let target = target.with_token(token);
    let tls = target.tls_config(&config_file)?;
    let bearer = target.bearer_token().map(String::from);
    let mut local = None;
    if let Some(netns) = &target.netns {
        let name = target
            .cluster
            .as_ref()
            .map_or("", |(name, _)| name.as_str());
        local = local::check_config_cluster(name, netns, target.local_state.as_deref())?;
        // A `skiff up` cluster: its addresses exist only inside that namespace. The runtime
        // is single-threaded, so this thread is where every connection is made.
        skiff_netplugin::netns::enter(netns).map_err(|e| {
            anyhow::anyhow!(
                "{e} (the config's cluster lives in a network namespace: is it still up, and are you root?)"
            )
        })?;
    }
    let mut builder = Client::builder(target.servers)
        .tls(tls)
        .request_timeout(Duration::from_secs(flags.request_timeout_secs));
    if let Some(token) = bearer {
        builder = builder.bearer_token(token);
    }
    Ok((builder.build()?, local))
}

/// Runs a verb that talks to the cluster. Most return their output, printed here; the rest
/// print as they go and return their exit code.
async fn dispatch(client: &Client, flags: Flags) -> anyhow::Result<ExitCode> {
    let namespace = flags.namespace;
    let out = match flags.verb {
        Verb::Get {
            kind,
            names,
            output,
            selector,
            all_namespaces,
            field_selector,
            show_labels,
            label_columns,
            watch,
        } => {
            let args = get::GetArgs {
                kind: get::parse_kind(&kind)?,
                names,
                namespace,
                all_namespaces,
                selector,
                field_selector,
                show_labels,
                label_columns,
                output: get::Output::parse(output.as_deref())?,
            };
            if !watch {
                get::get(client, &args).await?
            } else if matches!(args.output, get::Output::Table | get::Output::Wide) {
                get::watch(client, &args, &mut std::io::stdout()).await?;
                String::new()
            } else {
                anyhow::bail!("-w prints table rows: use it without -o, or with -o wide");
            }
        }
        Verb::Apply { files } => {
            let sources = apply::read_sources(&files)?;
            return finish(apply::apply(client, &sources, &namespace).await);
        }
        Verb::Create { files, what } => {
            if files.is_empty() {
                let [kind, name] = what.as_slice() else {
                    anyhow::bail!("use skiff create -f FILE, or skiff create namespace NAME");
                };
                if Kind::parse(kind) != Some(Kind::Namespace) {
                    anyhow::bail!("skiff create {kind} is not supported: use -f FILE");
                }
                let mut created = skiff_api::types::Namespace::default();
                created.metadata.name = name.clone();
                return create_one(client, &created).await;
            }
            if !what.is_empty() {
                anyhow::bail!("give either -f FILE or `namespace NAME`, not both");
            }
            let sources = apply::read_sources(&files)?;
            return finish(apply::create(client, &sources, &namespace).await);
        }
        Verb::Run(what) => {
            let mut pod = verbs::run_pod(&what)?;
            pod.metadata.namespace = Some(namespace);
            return create_one(client, &pod).await;
        }
        Verb::PortForward {
            pod,
            ports,
            address,
        } => {
            let ports = verbs::parse_ports(&ports)?;
            verbs::port_forward(client, &namespace, &pod, &address, ports, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
            String::new()
        }
        Verb::Describe { kind, name } => {
            describe::describe(client, &kind, &namespace, &name).await?
        }
        Verb::Logs {
            pod,
            container,
            follow,
            tail,
            previous,
            timestamps,
        } => {
            let params = LogParams {
                container,
                follow,
                tail_lines: tail,
                previous,
                timestamps,
            };
            verbs::logs(client, &namespace, &pod, &params, &mut std::io::stdout()).await?;
            String::new()
        }
        Verb::Exec {
            pod,
            container,
            stdin,
            tty: _,
            command,
        } => {
            let container = container.as_deref();
            let code = verbs::exec(client, &namespace, &pod, container, &command, stdin).await?;
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        Verb::Delete {
            kind,
            names,
            selector,
            all,
            grace_period,
            force,
            files,
            wait,
            timeout,
        } => {
            let params = DeleteParams {
                grace_period_seconds: grace_period,
                force,
            };
            if !files.is_empty() {
                if kind.is_some() || selector.is_some() || all {
                    anyhow::bail!("-f names the objects itself: give no type, -l or --all with it");
                }
                let sources = apply::read_sources(&files)?;
                let deleted = apply::delete_sources(client, &sources, &namespace, &params);
                return finish(deleted.await);
            }
            let Some(kind) = kind else {
                anyhow::bail!("give a type and names, -l SELECTOR or --all, or -f FILE");
            };
            let selection = match (names.is_empty(), selector, all) {
                (false, None, false) => verbs::Selection::Names(names),
                (true, Some(selector), false) => verbs::Selection::Selector(selector),
                (true, None, true) => verbs::Selection::All,
                _ => anyhow::bail!("give names, or -l SELECTOR, or --all (exactly one of them)"),
            };
            let kind = get::parse_kind(&kind)?;
            let wait = wait.then_some(timeout);
            verbs::delete(client, kind, &namespace, &selection, &params, wait).await?
        }
        Verb::Scale { target, replicas } => {
            verbs::scale(client, &namespace, &target, replicas).await?
        }
        Verb::Label(what) => metadata(client, &namespace, &what, true).await?,
        Verb::Annotate(what) => metadata(client, &namespace, &what, false).await?,
        Verb::Cordon { node } => verbs::node_verb(client, "cordon", &node).await?,
        Verb::Uncordon { node } => verbs::node_verb(client, "uncordon", &node).await?,
        Verb::Drain { node } => verbs::node_verb(client, "drain", &node).await?,
        Verb::Wait {
            target,
            until,
            timeout,
        } => {
            let until = wait::Until::parse(&until)?;
            let name = wait::pod_target(&target)?;
            wait::wait_pod(client, &namespace, name, &until, timeout).await?
        }
        Verb::Rollout {
            what: RolloutVerb::Status { target, timeout },
        } => {
            let mut out = std::io::stdout();
            wait::rollout_status(client, &namespace, &target, timeout, &mut out).await?;
            String::new()
        }
        Verb::Rollout {
            what: RolloutVerb::Restart { target },
        } => verbs::rollout_restart(client, &namespace, &target).await?,
        Verb::Completion { .. }
        | Verb::Explain { .. }
        | Verb::Up { .. }
        | Verb::Start { .. }
        | Verb::Stop { .. }
        | Verb::Down { .. } => unreachable!("handled before connecting"),
        Verb::Cluster {
            what: ClusterVerb::Status,
        } => verbs::cluster_status_text(&client.cluster_status().await?),
        Verb::Token { what } => {
            let namespace = flags.namespace_given.then_some(namespace);
            match what {
                TokenVerb::Create { name, role, ttl } => {
                    let new = skiff_client::NewToken {
                        name,
                        role,
                        namespace,
                        ttl,
                    };
                    verbs::token_create(client, &new).await?
                }
                TokenVerb::Ls => verbs::token_list(client, namespace.as_deref()).await?,
                TokenVerb::Rm { name } => {
                    verbs::token_remove(client, &name, namespace.as_deref()).await?
                }
                TokenVerb::Generate => unreachable!("handled before connecting"),
            }
        }
        Verb::Image { what } => {
            let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
            let ok = match what {
                ImageVerb::Import {
                    file,
                    node,
                    all_nodes,
                } => {
                    let target = image::Target::from_flags(node, all_nodes)?;
                    image::import(client, &file, &target, &mut out, &mut err).await?
                }
                ImageVerb::Ls { node } => {
                    let now = chrono::Utc::now();
                    image::ls(client, node.as_deref(), now, &mut out, &mut err).await?
                }
                ImageVerb::Rm {
                    reference,
                    node,
                    all_nodes,
                } => {
                    let target = image::Target::from_flags(node, all_nodes)?;
                    image::rm(client, &reference, &target, &mut out, &mut err).await?
                }
            };
            return Ok(success(ok));
        }
        Verb::Net {
            what:
                NetVerb::Check {
                    busybox,
                    timeout_secs,
                    keep,
                },
        } => {
            let options = CheckOptions {
                busybox,
                timeout: Duration::from_secs(timeout_secs),
                keep,
            };
            let report = netcheck::run(client, &options).await?;
            print!("{}", report.render());
            return Ok(success(report.passed()));
        }
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn success(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `skiff label` and `skiff annotate`.
async fn metadata(
    client: &Client,
    namespace: &str,
    what: &MetadataFlags,
    labels: bool,
) -> anyhow::Result<String> {
    let kind = get::parse_kind(&what.kind)?;
    let patch = verbs::metadata_patch(&what.pairs, labels, what.overwrite)?;
    let patched = verbs::patch_metadata(client, kind, namespace, &what.name, &patch, labels);
    Ok(patched.await?)
}

/// Prints what a manifest verb did; on partial failure the objects done go to stdout and
/// each failure (already worded like kubectl's) to stderr, with exit code 1.
fn finish(result: Result<Vec<String>, apply::ApplyError>) -> anyhow::Result<ExitCode> {
    match result {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ apply::ApplyError::Failed { .. }) => {
            for line in e.done() {
                println!("{line}");
            }
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

/// Creates one object, printing kubectl's `pod/x created` or its error line.
async fn create_one<T: skiff_client::Resource>(
    client: &Client,
    object: &T,
) -> anyhow::Result<ExitCode> {
    let (kind, name) = (T::KIND, &object.metadata().name);
    match client.create(object).await {
        Ok(_) => {
            println!("{}/{name} created", kind.resource());
            Ok(ExitCode::SUCCESS)
        }
        Err(skiff_client::Error::AlreadyExists(m)) => {
            eprintln!("Error from server (AlreadyExists): {m}");
            Ok(ExitCode::FAILURE)
        }
        Err(skiff_client::Error::Invalid(m)) => {
            eprintln!("The {kind} \"{name}\" is invalid: {m}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}
