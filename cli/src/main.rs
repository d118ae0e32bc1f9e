//! `skiff`: parses flags and runs a verb from the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use skiff_cli::netcheck::{self, CheckOptions};
use skiff_cli::{apply, describe, endpoints, get, image, local, verbs, wait};
use skiff_client::{Client, DeleteParams, LogParams};

#[derive(Parser)]
#[command(name = "skiff", about = "Drive a Skiff cluster", version)]
struct Flags {
    /// Control-plane endpoints HOST:PORT[,HOST:PORT…] (else SKIFF_SERVER, else the config's).
    #[arg(long, global = true)]
    server: Option<String>,
    /// The client config: servers, the cluster CA and a credential (a member's admin.conf,
    /// or what `skiff up` writes). Default: SKIFF_CONFIG, else ~/.skiff/config.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Namespace for namespaced objects.
    #[arg(short = 'n', long, global = true, default_value = "default")]
    namespace: String,
    /// Whether -n/--namespace was given (not the default): `token create` and `token ls`
    /// are cluster-wide without it.
    #[arg(skip)]
    namespace_given: bool,
    /// A bearer token to act as (`skiff token create`), instead of the config's credential
    /// (else SKIFF_TOKEN). The config still supplies the servers and the CA.
    #[arg(long, global = true)]
    token: Option<String>,
    /// How long a request may wait for the control plane.
    #[arg(long, global = true, default_value_t = 10)]
    request_timeout_secs: u64,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Start a local cluster: network-namespace hosts on one bridge, 3 control-plane
    /// members and 2 workers by default, plus a demo deployment (needs root).
    ///
    /// Writes the cluster into ~/.skiff/config as the current one, so plain `skiff get
    /// nodes` works afterwards. Examples: sudo skiff up; sudo skiff up --workers 4 --no-demo
    Up {
        /// Control-plane members (one host each).
        #[arg(long, default_value_t = 3)]
        control_planes: usize,
        /// Worker hosts (one agent each).
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// The cluster's name (its namespaces are skiff-NAME-*).
        #[arg(long, default_value = "local")]
        name: String,
        /// Where data, logs and the cluster's state live (DIR/NAME).
        #[arg(long, default_value = local::DEFAULT_DIR)]
        dir: PathBuf,
        /// Skip the demo deployment.
        #[arg(long)]
        no_demo: bool,
        /// How long to wait for the nodes and the demo pods.
        #[arg(long, default_value_t = 90)]
        timeout_secs: u64,
    },
    /// Stop a local cluster and remove every namespace, link, process and data dir it made.
    ///
    /// Example: sudo skiff down
    Down {
        #[arg(long, default_value = "local")]
        name: String,
        #[arg(long, default_value = local::DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// List objects as tables like kubectl's.
    ///
    /// Examples: skiff get pods -o wide; skiff get po -A -l app=web; skiff get nodes;
    /// skiff get deploy web -o yaml
    Get {
        /// pods (po), nodes (no), deployments (deploy), namespaces (ns).
        kind: String,
        /// Only these objects.
        names: Vec<String>,
        /// wide, json, yaml or name.
        #[arg(short = 'o', long)]
        output: Option<String>,
        /// Label selector (=, ==, !=, in, notin, exists, !exists).
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Field selector, e.g. spec.nodeName=host-1 or status.phase=Running.
        #[arg(long)]
        field_selector: Option<String>,
        /// Add a LABELS column.
        #[arg(long)]
        show_labels: bool,
        /// Add a column per label key (-L app,tier).
        #[arg(short = 'L', long = "label-columns", value_delimiter = ',')]
        label_columns: Vec<String>,
        /// After listing, print a row for every change (until interrupted).
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// Create or update objects from manifests (client-side apply, like kubectl's).
    ///
    /// Examples: skiff apply -f web.yaml; skiff apply -f manifests/; cat x.yaml | skiff apply -f -
    Apply {
        /// Files, directories (their *.yaml, *.yml, *.json) or - for stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
    },
    /// Create objects from manifests (an existing one is an error), or a namespace.
    ///
    /// Examples: skiff create -f pod.yaml; skiff create namespace team-a
    Create {
        #[arg(short = 'f', long = "filename")]
        files: Vec<String>,
        /// `namespace NAME`
        what: Vec<String>,
    },
    /// Start a pod running one container.
    ///
    /// Example: skiff run web --image=busybox --port=8080 --labels=app=web -- /bin/busybox httpd -f -p 8080
    Run {
        name: String,
        #[arg(long)]
        image: String,
        /// KEY=VALUE[,KEY=VALUE…] (default run=NAME).
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        /// NAME=VALUE, repeatable.
        #[arg(long)]
        env: Vec<String>,
        #[arg(long)]
        port: Option<u16>,
        /// Always, OnFailure or Never.
        #[arg(long)]
        restart: Option<String>,
        /// The command and its arguments.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Forward a local port to a port in a pod (through the control plane).
    ///
    /// Example: skiff port-forward web-1 8080:80
    PortForward {
        pod: String,
        /// LOCAL:REMOTE, or PORT for both (:REMOTE picks a free local port).
        ports: String,
        /// Local address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        address: String,
    },
    /// Show an object in detail, with its events at the end.
    ///
    /// Examples: skiff describe pod web-1; skiff describe deploy web; skiff describe node host-1
    Describe { kind: String, name: String },
    /// Print a container's log.
    ///
    /// Examples: skiff logs web-1; skiff logs web-1 -c sidecar -f --tail 20; skiff logs web-1 --previous
    Logs {
        pod: String,
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Keep streaming new output.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<i64>,
        /// The previous (crashed) instance of the container.
        #[arg(short = 'p', long)]
        previous: bool,
        #[arg(long)]
        timestamps: bool,
    },
    /// Run a command in a container; its exit code becomes skiff's.
    ///
    /// Examples: skiff exec web-1 -- ls /; skiff exec -i web-1 -c main -- sh
    Exec {
        pod: String,
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Pass standard input to the command.
        #[arg(short = 'i', long)]
        stdin: bool,
        /// Accepted for kubectl habits; output is not a terminal.
        #[arg(short = 't', long)]
        tty: bool,
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Delete objects by name, label selector or all of a type.
    ///
    /// Examples: skiff delete pod web-1; skiff delete pods -l app=web; skiff delete deploy --all;
    /// skiff delete pod web-1 --grace-period=0 --force
    Delete {
        /// The type (pods, deployments, namespaces, nodes); not with -f.
        kind: Option<String>,
        names: Vec<String>,
        #[arg(short = 'l', long)]
        selector: Option<String>,
        #[arg(long)]
        all: bool,
        /// Seconds the pod's containers get after SIGTERM (default: the pod's own).
        #[arg(long, allow_negative_numbers = true)]
        grace_period: Option<i64>,
        /// Remove from the API at once, without waiting for the node (with --grace-period=0).
        #[arg(long)]
        force: bool,
        /// Delete the objects these manifests name.
        #[arg(short = 'f', long = "filename")]
        files: Vec<String>,
        /// Return only once the objects are gone (pods: after their containers stopped).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, default_value = "2m", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Set a deployment's replica count.
    ///
    /// Example: skiff scale deploy/web --replicas=5
    Scale {
        target: String,
        #[arg(long)]
        replicas: i32,
    },
    /// Add (k=v), change (with --overwrite) or remove (k-) labels.
    ///
    /// Example: skiff label pod web-1 tier=frontend; skiff label node host-1 gpu=true
    Label {
        kind: String,
        name: String,
        pairs: Vec<String>,
        #[arg(long)]
        overwrite: bool,
    },
    /// Add (k=v), change (with --overwrite) or remove (k-) annotations.
    ///
    /// Example: skiff annotate deploy web owner=ops; skiff annotate pod web-1 note-
    Annotate {
        kind: String,
        name: String,
        pairs: Vec<String>,
        #[arg(long)]
        overwrite: bool,
    },
    /// Mark a node unschedulable.
    ///
    /// Example: skiff cordon host-2
    Cordon { node: String },
    /// Mark a node schedulable again.
    ///
    /// Example: skiff uncordon host-2
    Uncordon { node: String },
    /// Cordon a node and evict its pods (their deployments bring them back elsewhere).
    ///
    /// Example: skiff drain host-2
    Drain { node: String },
    /// Wait until a pod has a condition, or is gone.
    ///
    /// Examples: skiff wait --for=condition=Ready pod/web-1 --timeout=60s;
    /// skiff wait --for=delete pod/web-1
    Wait {
        /// pod/NAME
        target: String,
        /// condition=NAME[=STATUS] or delete.
        #[arg(long = "for")]
        until: String,
        /// How long to wait (30s, 2m, …).
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Deployment rollouts.
    Rollout {
        #[command(subcommand)]
        what: RolloutVerb,
    },
    /// Describe a kind or one of its fields: type, description and sub-fields, from the
    /// schema of the types the API decodes objects into.
    ///
    /// Examples: skiff explain pod; skiff explain pod.spec.containers; skiff explain deploy.spec.strategy
    Explain { path: String },
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell).
    ///
    /// Example: source <(skiff completion bash)
    Completion { shell: clap_complete::Shell },
    /// The control plane itself.
    Cluster {
        #[command(subcommand)]
        what: ClusterVerb,
    },
    /// The pod network.
    Net {
        #[command(subcommand)]
        what: NetVerb,
    },
    /// The nodes' image stores: import archives, list and remove images.
    Image {
        #[command(subcommand)]
        what: ImageVerb,
    },
    /// Cluster tokens.
    Token {
        #[command(subcommand)]
        what: TokenVerb,
    },
}

#[derive(Subcommand)]
enum TokenVerb {
    /// Print a fresh cluster token (one line). Give the same token to every control-plane
    /// member and agent with --token-file; keep the file 0600: the cluster CA derives from it.
    ///
    /// Example: umask 077; skiff token generate > /etc/skiff/token
    Generate,
    /// Make a bearer token for a person or a program and print it (once: the cluster keeps
    /// only its hash). With -n it is confined to that namespace.
    ///
    /// Examples: skiff token create ci --role edit -n team-a --ttl 24h;
    /// skiff token create ops --role cluster-admin
    Create {
        name: String,
        /// view, edit, admin or cluster-admin (Kubernetes' roles of the same names).
        #[arg(long)]
        role: String,
        /// How long it is valid: 90s, 30m, 24h. Default: until removed.
        #[arg(long, value_parser = parse_duration)]
        ttl: Option<Duration>,
    },
    /// List bearer tokens: every one, or with -n those confined to that namespace.
    #[command(alias = "list")]
    Ls,
    /// Remove a bearer token: no member accepts it once this returns.
    #[command(alias = "delete")]
    Rm { name: String },
}

#[derive(Subcommand)]
enum ImageVerb {
    /// Load a `docker save` archive or an OCI image-layout tarball (gzipped or not) into
    /// one node's store or every Ready node's.
    ///
    /// Examples: skiff image import busybox.tar --node node-1; skiff image import app.tar --all-nodes
    #[command(group(clap::ArgGroup::new("target").required(true).args(["node", "all_nodes"])))]
    Import {
        file: PathBuf,
        #[arg(long)]
        node: Option<String>,
        /// Every Ready node.
        #[arg(long)]
        all_nodes: bool,
    },
    /// List the images of one node, or of every Ready node.
    ///
    /// Examples: skiff image ls; skiff image ls --node node-1
    #[command(alias = "list")]
    Ls {
        #[arg(long)]
        node: Option<String>,
    },
    /// Untag a reference (deleting the image when that was its last), or delete the image
    /// an id or digest (or a unique prefix of one) names.
    ///
    /// Examples: skiff image rm busybox --node node-1; skiff image rm 0123456789ab --all-nodes
    #[command(alias = "remove")]
    #[command(group(clap::ArgGroup::new("target").required(true).args(["node", "all_nodes"])))]
    Rm {
        reference: String,
        #[arg(long)]
        node: Option<String>,
        /// Every Ready node.
        #[arg(long)]
        all_nodes: bool,
    },
}

#[derive(Subcommand)]
enum RolloutVerb {
    /// Restart every pod of a deployment by a rolling update (stamps the template).
    ///
    /// Example: skiff rollout restart deploy/web
    Restart {
        /// deploy/NAME
        target: String,
    },
    /// Follow a rollout until it finishes, printing its progress.
    ///
    /// Example: skiff rollout status deploy/web
    Status {
        /// deploy/NAME
        target: String,
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        timeout: Duration,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    skiff_api::duration::parse(text).map_err(|e| e.to_string())
}

#[derive(Subcommand)]
enum ClusterVerb {
    /// Members, leader, term, applied index and each member's health.
    ///
    /// Example: skiff cluster status --server 10.250.0.2:7000
    Status,
}

#[derive(Subcommand)]
enum NetVerb {
    /// Probe pod-to-pod and host-to-pod TCP between every pair of Ready nodes and flag NAT.
    ///
    /// Example: skiff net check --server 10.250.0.2:7000
    Check {
        /// The nodes' busybox (probes run it with the process runtime).
        #[arg(long, default_value = "/bin/busybox")]
        busybox: String,
        /// How long the probe pods may take to start.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
        /// Leave the probe pods running.
        #[arg(long)]
        keep: bool,
    },
}

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = Flags::command().get_matches();
    let mut flags = match Flags::from_arg_matches(&matches) {
        Ok(flags) => flags,
        Err(e) => e.exit(),
    };
    flags.namespace_given =
        matches.value_source("namespace") == Some(clap::parser::ValueSource::CommandLine);
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
        Verb::Down { name, dir } => Some(local::down(name, dir, &mut std::io::stdout()).and_then(
            |report| {
                if report.leftovers.is_empty() {
                    Ok(())
                } else {
                    Err(local::LocalError::Invalid(
                        "some things could not be removed (listed above)".into(),
                    ))
                }
            },
        )),
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
            let refused = e.downcast_ref().and_then(skiff_cli::error::refusal);
            let message = refused.unwrap_or_else(|| format!("{e:#}"));
            eprintln!("{}", skiff_cli::error::stderr_line(&message));
            ExitCode::FAILURE
        }
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
    if let Some(netns) = &target.netns {
        // A `skiff up` cluster: its addresses exist only inside that namespace. The runtime
        // is single-threaded, so this thread is where every connection is made.
        skiff_netplugin::netns::enter(netns).map_err(|e| {
            anyhow::anyhow!(
                "{e} (the config's cluster lives in a network namespace: is it still up, and are you root?)"
            )
        })?;
    }
    let servers = target.servers;
    let mut builder = Client::builder(servers)
        .tls(tls)
        .request_timeout(Duration::from_secs(flags.request_timeout_secs));
    if let Some(token) = bearer {
        builder = builder.bearer_token(token);
    }
    let client = builder.build()?;
    match flags.verb {
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
                namespace: flags.namespace,
                all_namespaces,
                selector,
                field_selector,
                show_labels,
                label_columns,
                output: get::Output::parse(output.as_deref())?,
            };
            if watch {
                if !matches!(args.output, get::Output::Table | get::Output::Wide) {
                    anyhow::bail!("-w prints table rows: use it without -o, or with -o wide");
                }
                get::watch(&client, &args, &mut std::io::stdout()).await?;
            } else {
                print!("{}", get::get(&client, &args).await?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Verb::Apply { files } => {
            let sources = apply::read_sources(&files)?;
            finish(apply::apply(&client, &sources, &flags.namespace).await)
        }
        Verb::Create { files, what } => {
            if files.is_empty() {
                let [kind, name] = what.as_slice() else {
                    anyhow::bail!("use skiff create -f FILE, or skiff create namespace NAME");
                };
                if skiff_api::Kind::parse(kind) != Some(skiff_api::Kind::Namespace) {
                    anyhow::bail!("skiff create {kind} is not supported: use -f FILE");
                }
                let mut namespace = skiff_api::types::Namespace::default();
                namespace.metadata.name = name.clone();
                return create_one(&client, &namespace).await;
            }
            if !what.is_empty() {
                anyhow::bail!("give either -f FILE or `namespace NAME`, not both");
            }
            let sources = apply::read_sources(&files)?;
            finish(apply::create(&client, &sources, &flags.namespace).await)
        }
        Verb::Run {
            name,
            image,
            labels,
            env,
            port,
            restart,
            command,
        } => {
            let pod = verbs::run_pod(&verbs::RunArgs {
                name: name.clone(),
                image,
                labels,
                env,
                port,
                restart,
                command,
            })?;
            let mut pod = pod;
            pod.metadata.namespace = Some(flags.namespace.clone());
            create_one(&client, &pod).await
        }
        Verb::PortForward {
            pod,
            ports,
            address,
        } => {
            let ports = verbs::parse_ports(&ports)?;
            verbs::port_forward(&client, &flags.namespace, &pod, &address, ports, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Verb::Describe { kind, name } => {
            print!(
                "{}",
                describe::describe(&client, &kind, &flags.namespace, &name).await?
            );
            Ok(ExitCode::SUCCESS)
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
            verbs::logs(
                &client,
                &flags.namespace,
                &pod,
                &params,
                &mut std::io::stdout(),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Verb::Exec {
            pod,
            container,
            stdin,
            tty: _,
            command,
        } => {
            let code = verbs::exec(
                &client,
                &flags.namespace,
                &pod,
                container.as_deref(),
                &command,
                stdin,
            )
            .await?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
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
                return finish(
                    apply::delete_sources(&client, &sources, &flags.namespace, &params).await,
                );
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
            print!(
                "{}",
                verbs::delete(
                    &client,
                    kind,
                    &flags.namespace,
                    &selection,
                    &params,
                    wait.then_some(timeout),
                )
                .await?
            );
            Ok(ExitCode::SUCCESS)
        }
        Verb::Scale { target, replicas } => {
            print!(
                "{}",
                verbs::scale(&client, &flags.namespace, &target, replicas).await?
            );
            Ok(ExitCode::SUCCESS)
        }
        Verb::Label {
            kind,
            name,
            pairs,
            overwrite,
        } => {
            metadata(
                &client,
                &flags.namespace,
                &kind,
                &name,
                &pairs,
                overwrite,
                true,
            )
            .await
        }
        Verb::Annotate {
            kind,
            name,
            pairs,
            overwrite,
        } => {
            metadata(
                &client,
                &flags.namespace,
                &kind,
                &name,
                &pairs,
                overwrite,
                false,
            )
            .await
        }
        Verb::Cordon { node } => node_verb(&client, "cordon", &node).await,
        Verb::Uncordon { node } => node_verb(&client, "uncordon", &node).await,
        Verb::Drain { node } => node_verb(&client, "drain", &node).await,
        Verb::Wait {
            target,
            until,
            timeout,
        } => {
            let until = wait::Until::parse(&until)?;
            let name = wait::pod_target(&target)?;
            print!(
                "{}",
                wait::wait_pod(&client, &flags.namespace, name, &until, timeout).await?
            );
            Ok(ExitCode::SUCCESS)
        }
        Verb::Rollout {
            what: RolloutVerb::Status { target, timeout },
        } => {
            wait::rollout_status(
                &client,
                &flags.namespace,
                &target,
                timeout,
                &mut std::io::stdout(),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Verb::Rollout {
            what: RolloutVerb::Restart { target },
        } => {
            print!(
                "{}",
                verbs::rollout_restart(&client, &flags.namespace, &target).await?
            );
            Ok(ExitCode::SUCCESS)
        }
        Verb::Completion { .. } | Verb::Explain { .. } | Verb::Up { .. } | Verb::Down { .. } => {
            unreachable!("handled before connecting")
        }
        Verb::Cluster {
            what: ClusterVerb::Status,
        } => {
            let status = client.cluster_status().await?;
            print!("{}", verbs::cluster_status_text(&status));
            Ok(ExitCode::SUCCESS)
        }
        Verb::Token { what } => {
            let namespace = flags.namespace_given.then(|| flags.namespace.clone());
            let out = match what {
                TokenVerb::Create { name, role, ttl } => {
                    let new = skiff_client::NewToken {
                        name,
                        role,
                        namespace,
                        ttl,
                    };
                    verbs::token_create(&client, &new).await?
                }
                TokenVerb::Ls => verbs::token_list(&client, namespace.as_deref()).await?,
                TokenVerb::Rm { name } => {
                    verbs::token_remove(&client, &name, namespace.as_deref()).await?
                }
                TokenVerb::Generate => unreachable!("handled before connecting"),
            };
            print!("{out}");
            Ok(ExitCode::SUCCESS)
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
                    image::import(&client, &file, &target, &mut out, &mut err).await?
                }
                ImageVerb::Ls { node } => {
                    image::ls(
                        &client,
                        node.as_deref(),
                        chrono::Utc::now(),
                        &mut out,
                        &mut err,
                    )
                    .await?
                }
                ImageVerb::Rm {
                    reference,
                    node,
                    all_nodes,
                } => {
                    let target = image::Target::from_flags(node, all_nodes)?;
                    image::rm(&client, &reference, &target, &mut out, &mut err).await?
                }
            };
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
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
                namespace: flags.namespace,
                busybox,
                timeout: Duration::from_secs(timeout_secs),
                keep,
            };
            let report = netcheck::run(&client, &options).await?;
            print!("{}", report.render());
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

async fn metadata(
    client: &Client,
    namespace: &str,
    kind: &str,
    name: &str,
    pairs: &[String],
    overwrite: bool,
    labels: bool,
) -> anyhow::Result<ExitCode> {
    let kind = get::parse_kind(kind)?;
    let patch = verbs::metadata_patch(pairs, labels, overwrite)?;
    print!(
        "{}",
        verbs::patch_metadata(client, kind, namespace, name, &patch, labels).await?
    );
    Ok(ExitCode::SUCCESS)
}

async fn node_verb(client: &Client, verb: &str, node: &str) -> anyhow::Result<ExitCode> {
    print!("{}", verbs::node_verb(client, verb, node).await?);
    Ok(ExitCode::SUCCESS)
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
