//! Runs what `skiff` was asked: maps parsed [`Flags`] to the verbs of this library, prints
//! what they return and turns failures into kubectl's lines and exit codes.

use std::process::ExitCode;
use std::time::Duration;

use skiff_client::{Client, DeleteParams, LogParams};

use crate::flags::{
    ClusterVerb, CreateVerb, Flags, ImageVerb, MetadataFlags, NetVerb, RolloutVerb, TokenVerb, Verb,
};
use crate::netcheck::{self, CheckOptions};
use crate::{apply, describe, endpoints, error, forward, get, image, local, target, verbs, wait};

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
            // cluster status) is worded here.
            let sdk = e.downcast_ref::<skiff_client::Error>();
            let message = sdk.map_or_else(|| format!("{e:#}"), error::api_message);
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
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Flags::command(), "skiff", &mut script);
            script.extend_from_slice(crate::completion::objects_script(*shell).as_bytes());
            std::io::Write::write_all(&mut std::io::stdout(), &script)?;
            return Ok(ExitCode::SUCCESS);
        }
        Verb::Complete { kind: None } => {
            print!("{}", crate::completion::types());
            return Ok(ExitCode::SUCCESS);
        }
        Verb::Explain { path, recursive } => {
            let text = if *recursive {
                skiff_api::explain::explain_recursive(path)?
            } else {
                skiff_api::explain::explain(path)?
            };
            print!("{text}");
            return Ok(ExitCode::SUCCESS);
        }
        Verb::ApiResources { output } => {
            print!("{}", verbs::api_resources(output.as_deref())?);
            return Ok(ExitCode::SUCCESS);
        }
        Verb::Version { client: true } => {
            print!("{}", verbs::client_version());
            return Ok(ExitCode::SUCCESS);
        }
        Verb::Version { client: false } => {
            // kubectl prints the client's version before it asks the server.
            print!("{}", verbs::client_version());
        }
        Verb::Kubeconfig {
            kube_port,
            kube_server,
        } => {
            let text = with_kube_options(&flags, *kube_port, kube_server, |options| {
                crate::kubeconfig::kubeconfig(options)
            })?;
            print!("{text}");
            return Ok(ExitCode::SUCCESS);
        }
        Verb::Dashboard {
            url,
            kube_port,
            kube_server,
        } => {
            let plan = with_kube_options(&flags, *kube_port, kube_server, crate::dashboard::plan)?;
            let token = match plan.token {
                Some(token) => token,
                None => {
                    let (client, _) = connect(&flags)?;
                    let (token, note) = crate::dashboard::mint(&client).await?;
                    eprintln!("{note}");
                    token
                }
            };
            if !*url {
                eprintln!("# open this URL in a browser to sign in to the console:");
            }
            println!("{}", crate::dashboard::url(&plan.base, &token));
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

/// What `kubeconfig` and `dashboard` read: the config, the servers and the credential.
fn with_kube_options<T>(
    flags: &Flags,
    kube_port: u16,
    kube_servers: &[String],
    f: impl FnOnce(&crate::kubeconfig::Options) -> T,
) -> T {
    let config_file = endpoints::config_path_from(flags.config.as_deref());
    let server_env = std::env::var("SKIFF_SERVER").ok();
    f(&crate::kubeconfig::Options {
        config_file: &config_file,
        server_flag: flags.server.as_deref(),
        server_env: server_env.as_deref(),
        token: token(flags),
        kube_port,
        kube_servers,
    })
}

/// The bearer token to act as: `--token`, else SKIFF_TOKEN; blank is none.
fn token(flags: &Flags) -> Option<String> {
    flags
        .token
        .clone()
        .or_else(|| std::env::var("SKIFF_TOKEN").ok())
        .filter(|t| !t.trim().is_empty())
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
    let target = target.with_token(token(flags));
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
        local::registry::entered_underlay();
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
            targets,
            output,
            selector,
            all_namespaces,
            field_selector,
            show_labels,
            no_headers,
            label_columns,
            watch,
            chunk_size,
        } => {
            let requests = target::parse(&targets, "get", true)?;
            let args = get::GetArgs {
                kind: requests[0].kind,
                names: requests[0].names.clone(),
                namespace,
                all_namespaces,
                selector,
                field_selector,
                show_labels,
                no_headers,
                label_columns,
                output: get::Output::parse(output.as_deref())?,
                chunk_size,
            };
            if !watch {
                let got = get::get_requests(client, &requests, &args).await?;
                return Ok(report(&got.out, &got.missing));
            } else if requests.len() > 1 {
                anyhow::bail!("you may only specify a single resource type");
            } else if matches!(args.output, get::Output::Table | get::Output::Wide) {
                get::watch(client, &args, &mut std::io::stdout()).await?;
                String::new()
            } else {
                anyhow::bail!("-w prints table rows: use it without -o, or with -o wide");
            }
        }
        Verb::Top { what } => crate::top::top(client, &what, &namespace).await?,
        Verb::Apply { files } => {
            let sources = apply::read_sources(&files)?;
            check_namespaces(&sources, &namespace, flags.namespace_given)?;
            return finish(apply::apply(client, &sources, &namespace).await);
        }
        Verb::Create { files, what } => match what {
            Some(CreateVerb::Namespace { name }) => {
                let mut created = skiff_api::types::Namespace::default();
                created.metadata.name = name;
                return create_one(client, &created).await;
            }
            Some(CreateVerb::Deployment {
                name,
                image,
                replicas,
                port,
                command,
            }) => {
                let new = verbs::NewDeployment {
                    name,
                    images: image,
                    replicas,
                    port,
                    command,
                };
                let mut deployment = verbs::new_deployment(&new)?;
                deployment.metadata.namespace = Some(namespace);
                return create_one(client, &deployment).await;
            }
            None if files.is_empty() => anyhow::bail!(
                "use skiff create -f FILE, skiff create namespace NAME or skiff create deployment NAME --image=IMAGE"
            ),
            None => {
                let sources = apply::read_sources(&files)?;
                check_namespaces(&sources, &namespace, flags.namespace_given)?;
                return finish(apply::create(client, &sources, &namespace).await);
            }
        },
        Verb::Run(what) => {
            let mut pod = verbs::run_pod(&what)?;
            pod.metadata.namespace = Some(namespace);
            return create_one(client, &pod).await;
        }
        Verb::PortForward {
            target,
            ports,
            address,
        } => {
            forward::port_forward(client, &namespace, &target, &address, &ports, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
            String::new()
        }
        Verb::Describe { targets, selector } => {
            let requests = target::parse(&targets, "describe", false)?;
            let got = describe::describe(client, &requests, &namespace, selector.as_deref());
            let got = got.await?;
            return Ok(report(&got.out, &got.missing));
        }
        Verb::Logs {
            pod,
            container_arg,
            container,
            follow,
            tail,
            previous,
            timestamps,
            since,
            since_time,
        } => {
            let pod = verbs::pod_for(client, &namespace, &pod, "logs").await?;
            let container = match (container, container_arg) {
                (Some(_), Some(_)) => {
                    anyhow::bail!("only one of -c or an inline container name is allowed")
                }
                (flag, arg) => flag.or(arg),
            };
            let container = verbs::pick_container(client, &namespace, &pod, container).await?;
            let params = LogParams {
                container: Some(container),
                follow,
                tail_lines: tail,
                previous,
                timestamps,
                since_seconds: since.map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
                since_time: since_time
                    .map(|t| verbs::parse_since_time(&t))
                    .transpose()?,
            };
            verbs::logs(client, &namespace, &pod, &params, &mut std::io::stdout()).await?;
            String::new()
        }
        Verb::Exec {
            pod,
            container,
            stdin,
            tty,
            deprecated_command,
            command,
        } => {
            let command = verbs::exec_command(deprecated_command, command)?;
            let pod = verbs::pod_for(client, &namespace, &pod, "exec").await?;
            let container = verbs::pick_container(client, &namespace, &pod, container).await?;
            let code = verbs::exec(
                client,
                &namespace,
                &pod,
                Some(&container),
                &command,
                stdin,
                tty,
            )
            .await?;
            if code != 0 {
                eprintln!("command terminated with exit code {code}");
            }
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        Verb::Delete {
            targets,
            selector,
            all,
            grace_period,
            force,
            files,
            wait,
            timeout,
            ignore_not_found,
        } => {
            let options = verbs::DeleteOptions {
                params: DeleteParams {
                    grace_period_seconds: grace_period,
                    force,
                },
                wait: wait.then_some(timeout),
                ignore_not_found,
            };
            if !files.is_empty() {
                if !targets.is_empty() || selector.is_some() || all {
                    anyhow::bail!("-f names the objects itself: give no type, -l or --all with it");
                }
                let sources = apply::read_sources(&files)?;
                check_namespaces(&sources, &namespace, flags.namespace_given)?;
                let deleted = apply::delete_sources(client, &sources, &namespace, &options).await;
                return finish(deleted);
            }
            if targets.is_empty() {
                anyhow::bail!("give a type and names, -l SELECTOR or --all, or -f FILE");
            }
            let requests = target::parse(&targets, "delete", false)?;
            let selection = verbs::Selection::from_flags(&requests, selector, all)?;
            let outcome = verbs::delete(client, &requests, &namespace, &selection, &options);
            let outcome = outcome.await?;
            return Ok(report(&outcome.out, &outcome.failed));
        }
        Verb::Scale { targets, replicas } => {
            verbs::scale(client, &namespace, &targets, replicas).await?
        }
        Verb::Label(what) => return metadata(client, &namespace, what, true).await,
        Verb::Annotate(what) => return metadata(client, &namespace, what, false).await,
        Verb::Cordon { node } => verbs::node_verb(client, "cordon", &node).await?,
        Verb::Uncordon { node } => verbs::node_verb(client, "uncordon", &node).await?,
        Verb::Drain { node, force } => {
            let outcome = verbs::drain(client, &node, force).await?;
            print!("{}", outcome.out);
            for line in &outcome.failed {
                eprintln!("{line}");
            }
            return Ok(success(outcome.failed.is_empty()));
        }
        Verb::Wait {
            targets,
            selector,
            all,
            until,
            timeout,
        } => {
            let until = wait::Until::parse(&until)?;
            let what = wait::WaitFor {
                requests: target::parse(&targets, "wait", false)?,
                selector,
                all,
            };
            wait::wait(client, &namespace, &what, &until, timeout).await?
        }
        Verb::Complete { kind: Some(kind) } => {
            crate::completion::names(client, &kind, &namespace).await?
        }
        Verb::Version { .. } => {
            let server = client.server_version().await?;
            format!("Server Version: {}\n", server.git_version)
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
        | Verb::ApiResources { .. }
        | Verb::Kubeconfig { .. }
        | Verb::Dashboard { .. }
        | Verb::Complete { kind: None }
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
                ImageVerb::Push {
                    source,
                    node,
                    plain_http,
                } => {
                    let file = std::path::Path::new(&source);
                    if file.is_file() {
                        if node.is_some() || plain_http {
                            return Err(verbs::VerbError::Usage(format!(
                                "{source} is a file: its images go to the local cluster's registry, without --node or --plain-http"
                            ))
                            .into());
                        }
                        image::push(file, &mut out, &mut err).await?
                    } else {
                        let node = node.as_deref();
                        image::push_image(client, &source, node, plain_http, &mut out).await?
                    }
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

/// Prints `out`, then each failure line (kubectl's own, or after `error: `) on standard
/// error: exit code 1 when there was any.
fn report(out: &str, failed: &[String]) -> ExitCode {
    print!("{out}");
    for line in failed {
        eprintln!("{}", error::stderr_line(line));
    }
    success(failed.is_empty())
}

/// kubectl's refusal of a manifest whose namespace is not the one -n gave.
fn check_namespaces(
    sources: &[apply::Source],
    namespace: &str,
    given: bool,
) -> Result<(), apply::ApplyError> {
    if given {
        apply::check_namespaces(sources, namespace)?;
    }
    Ok(())
}

/// `skiff label` and `skiff annotate`.
async fn metadata(
    client: &Client,
    namespace: &str,
    what: MetadataFlags,
    labels: bool,
) -> anyhow::Result<ExitCode> {
    let (objects, changes) = target::split_changes(&what.args);
    if changes.is_empty() {
        let word = if labels { "label" } else { "annotation" };
        anyhow::bail!("at least one {word} update is required");
    }
    let verb = if labels { "label" } else { "annotate" };
    let requests = target::parse(&objects, verb, false)?;
    let selection = verbs::Selection::from_flags(&requests, what.selector, what.all)?;
    let patch = verbs::metadata_patch(&changes, labels, what.overwrite)?;
    let patched = verbs::patch_metadata(client, &requests, namespace, &selection, &patch, labels);
    let outcome = patched.await?;
    Ok(report(&outcome.out, &outcome.failed))
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
