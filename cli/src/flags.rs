//! `skiff`'s flags and verbs, as clap parses them (`main.rs` parses, [`crate::run`] runs).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::local;

#[derive(Parser)]
#[command(name = "skiff", about = "Drive a Skiff cluster", version)]
pub struct Flags {
    /// Control-plane endpoints HOST:PORT[,HOST:PORT…] (else SKIFF_SERVER, else the config's).
    #[arg(long, global = true)]
    pub server: Option<String>,
    /// The client config: servers, the cluster CA and a credential (a member's admin.conf,
    /// or what `skiff up` writes). Default: SKIFF_CONFIG, else ~/.skiff/config.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Namespace for namespaced objects.
    #[arg(short = 'n', long, global = true, default_value = "default")]
    pub namespace: String,
    /// Whether -n/--namespace was given (not the default): `token create` and `token ls`
    /// are cluster-wide without it.
    #[arg(skip)]
    pub namespace_given: bool,
    /// A bearer token to act as (`skiff token create`), instead of the config's credential
    /// (else SKIFF_TOKEN). The config still supplies the servers and the CA.
    #[arg(long, global = true)]
    pub token: Option<String>,
    /// How long a request may wait for the control plane.
    #[arg(long, global = true, default_value_t = 10)]
    pub request_timeout_secs: u64,
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Subcommand)]
pub enum Verb {
    /// Start a local cluster: network-namespace hosts on one bridge, 3 control-plane
    /// members and 2 workers by default, plus a demo deployment (needs root).
    ///
    /// Writes the cluster into ~/.skiff/config as the current one, so plain `skiff get
    /// nodes` works afterwards. On a cluster that exists but does not run (after a reboot
    /// or `skiff stop`) it does what `skiff start` does. Examples: sudo skiff up;
    /// sudo skiff up --workers 4 --no-demo
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
    /// Start a stopped local cluster again, with its data: after a reboot or `skiff stop`
    /// (needs root).
    ///
    /// Makes its namespaces again, starts the members and agents on their data dirs (what
    /// still runs is reused) and waits for the nodes and the pods. `skiff up` on a stopped
    /// cluster does the same. Example: sudo skiff start
    Start {
        #[command(flatten)]
        cluster: LocalCluster,
        /// How long to wait for the nodes and the pods.
        #[arg(long, default_value_t = 90)]
        timeout_secs: u64,
    },
    /// Stop a local cluster and keep its data: the agents and members get SIGTERM, every
    /// container its pod's grace period; the namespaces go (needs root).
    ///
    /// The pods stay; `skiff start` brings everything back. Example: sudo skiff stop
    Stop {
        #[command(flatten)]
        cluster: LocalCluster,
    },
    /// Stop a local cluster and remove every namespace, link, process and data dir it made.
    ///
    /// Example: sudo skiff down
    Down {
        #[command(flatten)]
        cluster: LocalCluster,
    },
    /// List objects as tables like kubectl's.
    ///
    /// Examples: skiff get pods -o wide; skiff get po -A -l app=web; skiff get nodes;
    /// skiff get deploy web -o yaml
    Get {
        /// TYPE[,TYPE…] [NAME…] or TYPE/NAME…: pods (po), nodes (no), deployments (deploy),
        /// namespaces (ns), events (ev), or all (pods and deployments).
        targets: Vec<String>,
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
        /// Print tables without their header line.
        #[arg(long)]
        no_headers: bool,
        /// Add a column per label key (-L app,tier).
        #[arg(short = 'L', long = "label-columns", value_delimiter = ',')]
        label_columns: Vec<String>,
        /// After listing, print a row for every change (until interrupted).
        #[arg(short = 'w', long)]
        watch: bool,
        /// Fetch lists in pages of this many objects (0: all at once), as kubectl's.
        #[arg(long, default_value_t = 500)]
        chunk_size: u64,
    },
    /// CPU and memory of nodes or pods, as `kubectl top` shows them, from the agents'
    /// cgroup readings.
    ///
    /// Examples: skiff top nodes; skiff top pods -A; skiff top pods -l app=web
    Top {
        #[command(subcommand)]
        what: crate::top::TopVerb,
    },
    /// Create or update objects from manifests (client-side apply, like kubectl's).
    ///
    /// Examples: skiff apply -f web.yaml; skiff apply -f manifests/; cat x.yaml | skiff apply -f -
    Apply {
        /// Files, directories (their *.yaml, *.yml, *.json) or - for stdin.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<String>,
    },
    /// Create objects from manifests (an existing one is an error), a namespace or a
    /// deployment.
    ///
    /// Examples: skiff create -f pod.yaml; skiff create namespace team-a;
    /// skiff create deployment web --image=busybox --replicas=3 -- httpd -f -p 8080
    #[command(args_conflicts_with_subcommands = true)]
    Create {
        #[arg(short = 'f', long = "filename")]
        files: Vec<String>,
        #[command(subcommand)]
        what: Option<CreateVerb>,
    },
    /// Start a pod running one container.
    ///
    /// Example: skiff run web --image=busybox --port=8080 --labels=app=web -- /bin/busybox httpd -f -p 8080
    Run(crate::verbs::RunArgs),
    /// Forward local ports to ports of a pod (through the control plane), listening in
    /// this shell's own network namespace, also for a `skiff up` cluster.
    ///
    /// Examples: skiff port-forward pod/web 8080:80; skiff port-forward deploy/web 8080:80 9090
    PortForward {
        /// pod/NAME, NAME (a pod) or deployment/NAME (one of its ready pods).
        target: String,
        /// LOCAL:REMOTE, or PORT for both (:REMOTE picks a free local port); several allowed.
        #[arg(required = true)]
        ports: Vec<String>,
        /// Addresses to listen on (comma-separated IP addresses or localhost, which is
        /// 127.0.0.1 and ::1).
        #[arg(long, default_value = "localhost")]
        address: String,
    },
    /// Show an object in detail, with its events at the end.
    ///
    /// Examples: skiff describe pod web-1; skiff describe deploy web; skiff describe node host-1
    Describe {
        /// TYPE [NAME…] or TYPE/NAME…
        targets: Vec<String>,
        /// Label selector (with TYPE alone).
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
    /// Print a container's log.
    ///
    /// Examples: skiff logs web-1; skiff logs web-1 -c sidecar -f --tail 20; skiff logs web-1 --previous
    Logs {
        /// POD, pod/POD or deployment/NAME (its first pod).
        pod: String,
        /// The container (as -c names it).
        #[arg(value_name = "CONTAINER")]
        container_arg: Option<String>,
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
        /// Prefix each line with its RFC3339 timestamp.
        #[arg(long)]
        timestamps: bool,
        /// Only lines newer than this (5s, 2m, 3h).
        #[arg(long, value_parser = parse_duration, conflicts_with = "since_time")]
        since: Option<Duration>,
        /// Only lines after this RFC3339 time.
        #[arg(long)]
        since_time: Option<String>,
    },
    /// Run a command in a container; its exit code becomes skiff's.
    ///
    /// Examples: skiff exec web-1 -- ls /; skiff exec -it web-1 -c main -- sh
    Exec {
        /// POD, pod/POD or deployment/NAME (its first pod).
        pod: String,
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Pass standard input to the command.
        #[arg(short = 'i', long)]
        stdin: bool,
        /// Stdin is a TTY: with -i, the command runs on a terminal (a shell's prompt, raw
        /// keys, the window's size).
        #[arg(short = 't', long)]
        tty: bool,
        /// The deprecated form's command, without `--` (kubectl still runs it, warning).
        #[arg(hide = true)]
        deprecated_command: Vec<String>,
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Delete objects by name, label selector or all of a type.
    ///
    /// Examples: skiff delete pod web-1; skiff delete pods -l app=web; skiff delete deploy --all;
    /// skiff delete pod web-1 --grace-period=0 --force
    Delete {
        /// TYPE [NAME…] or TYPE/NAME… (pods, deployments, namespaces, nodes); not with -f.
        targets: Vec<String>,
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
        /// A name that does not exist is not an error.
        #[arg(long)]
        ignore_not_found: bool,
    },
    /// Set a deployment's replica count.
    ///
    /// Example: skiff scale deploy/web --replicas=5; skiff scale deployment web --replicas=0
    Scale {
        /// deploy/NAME or deploy NAME.
        targets: Vec<String>,
        #[arg(long)]
        replicas: i32,
    },
    /// Add (k=v), change (with --overwrite) or remove (k-) labels.
    ///
    /// Example: skiff label pod web-1 tier=frontend; skiff label node host-1 gpu=true
    Label(MetadataFlags),
    /// Add (k=v), change (with --overwrite) or remove (k-) annotations.
    ///
    /// Example: skiff annotate deploy web owner=ops; skiff annotate pod web-1 note-
    Annotate(MetadataFlags),
    /// Mark a node unschedulable.
    ///
    /// Example: skiff cordon host-2
    Cordon { node: String },
    /// Mark a node schedulable again.
    ///
    /// Example: skiff uncordon host-2
    Uncordon { node: String },
    /// Cordon a node and evict its pods (their deployments bring them back elsewhere).
    /// Pods no controller owns are refused unless --force.
    ///
    /// Example: skiff drain host-2
    Drain {
        node: String,
        /// Also delete pods that no controller owns (they do not come back).
        #[arg(long)]
        force: bool,
    },
    /// Wait until objects have a condition, or are gone.
    ///
    /// Examples: skiff wait --for=condition=Ready pod/web-1 --timeout=60s;
    /// skiff wait --for=condition=Available deploy/web; skiff wait --for=delete pod -l app=web
    Wait {
        /// TYPE/NAME…, TYPE NAME…, or TYPE with -l or --all.
        targets: Vec<String>,
        /// Label selector.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Every object of the type.
        #[arg(long)]
        all: bool,
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
    Explain {
        path: String,
        /// Every field below, as a tree of names and types.
        #[arg(long)]
        recursive: bool,
    },
    /// The kinds of object the cluster serves: NAME SHORTNAMES APIVERSION NAMESPACED KIND.
    ///
    /// Example: skiff api-resources
    ApiResources {
        /// Only the names, as `-o name` prints them.
        #[arg(short = 'o', long)]
        output: Option<String>,
    },
    /// The client's version and the cluster's.
    ///
    /// Example: skiff version; skiff version --client
    Version {
        /// Only the client's version (no cluster needed).
        #[arg(long)]
        client: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish or powershell). Bash's,
    /// zsh's and fish's also complete resource types and the names of objects in the cluster.
    ///
    /// Example: source <(skiff completion bash)
    Completion { shell: clap_complete::Shell },
    /// For completion scripts: the resource types, or the names of the objects of one.
    #[command(name = "__complete", hide = true)]
    Complete { kind: Option<String> },
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
    /// Print a kubeconfig for kubectl: every member's Kubernetes API URL, the cluster CA,
    /// and the current credential (the config's, or --token / SKIFF_TOKEN).
    ///
    /// Example: skiff kubeconfig > ~/.kube/config; kubectl get pods
    Kubeconfig {
        /// The port members serve the Kubernetes API on (their --kube-listen), at the host of
        /// each server.
        #[arg(long, default_value_t = crate::kubeconfig::DEFAULT_KUBE_PORT)]
        kube_port: u16,
        /// The members' Kubernetes API URLs (https://HOST:PORT,…), when they do not serve it
        /// at their server's host and --kube-port.
        #[arg(long, value_delimiter = ',')]
        kube_server: Vec<String>,
    },
    /// The web console: print its URL, signed in with the current credential (a bearer
    /// token; with a client certificate only, a cluster-admin token for an hour is made).
    /// The token is in the URL's fragment, which the browser never sends.
    ///
    /// Example: skiff dashboard --url
    Dashboard {
        /// Print the URL only (the verb never starts a browser: it prints the URL either way).
        #[arg(long)]
        url: bool,
        /// The port members serve the Kubernetes API on (their --kube-listen).
        #[arg(long, default_value_t = crate::kubeconfig::DEFAULT_KUBE_PORT)]
        kube_port: u16,
        /// The member's Kubernetes API URL (https://HOST:PORT), when not at the server's host
        /// and --kube-port.
        #[arg(long, value_delimiter = ',')]
        kube_server: Vec<String>,
    },
    /// Cluster tokens.
    Token {
        #[command(subcommand)]
        what: TokenVerb,
    },
}

/// Which local cluster `start`, `stop` and `down` act on.
#[derive(clap::Args)]
pub struct LocalCluster {
    /// The cluster's name, as given to `skiff up`.
    #[arg(long, default_value = "local")]
    pub name: String,
    /// Where its data, logs and state live (DIR/NAME), as given to `skiff up`.
    #[arg(long, default_value = local::DEFAULT_DIR)]
    pub dir: PathBuf,
}

// `label` and `annotate`: TYPE NAME… | TYPE/NAME… | TYPE -l SEL | TYPE --all, then
// k=v|k- … [--overwrite].
#[derive(clap::Args)]
pub struct MetadataFlags {
    /// The objects (TYPE NAME…, TYPE/NAME…) and the changes (KEY=VALUE, KEY-), in any order.
    #[arg(required = true)]
    pub args: Vec<String>,
    #[arg(long)]
    pub overwrite: bool,
    /// Label selector (with TYPE alone).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Every object of the type.
    #[arg(long)]
    pub all: bool,
}

#[derive(Subcommand)]
pub enum CreateVerb {
    /// Create a namespace.
    ///
    /// Example: skiff create namespace team-a
    #[command(alias = "ns")]
    Namespace { name: String },
    /// Create a deployment of the given images (one container each, named after its image),
    /// labelled and selected by app=NAME.
    ///
    /// Example: skiff create deployment web --image=busybox --replicas=2 -- httpd -f -p 8080
    #[command(alias = "deploy")]
    Deployment {
        name: String,
        /// Image to run (repeat for several containers).
        #[arg(long, required = true)]
        image: Vec<String>,
        #[arg(short = 'r', long, default_value_t = 1)]
        replicas: i32,
        /// The containerPort the deployment exposes.
        #[arg(long)]
        port: Option<u16>,
        /// The command and its arguments (one image only).
        #[arg(last = true)]
        command: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum TokenVerb {
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
pub enum ImageVerb {
    /// Load a `docker save` archive or an OCI image-layout tarball (gzipped or not) into
    /// one node's store or every Ready node's (on a `skiff up` cluster, also into its
    /// registry).
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
    /// Push images into a registry. A FILE (a `docker save` archive or an OCI image-layout
    /// tarball): its images into the registry of the `skiff up` cluster the config names,
    /// under their Docker Hub names, where agents pull them from (`imagePullPolicy: Always`,
    /// what `:latest` means). An IMAGE of a node's store (`--node`, else the first Ready
    /// node that has it): to the registry its name names (`HOST:PORT/REPOSITORY:TAG`), or
    /// for a Docker Hub name to that local registry, as `docker push` does.
    ///
    /// Examples: skiff image push app.tar; skiff image push me/app:v2; skiff image push registry.lan:5000/me/app:v2 --node node-1
    Push {
        /// An archive file, or an image in a node's store.
        #[arg(value_name = "FILE|IMAGE")]
        source: String,
        /// The node whose image to push (not for a FILE).
        #[arg(long)]
        node: Option<String>,
        /// Speak plain HTTP to the registry (loopback registries and a `skiff up`
        /// cluster's always are).
        #[arg(long)]
        plain_http: bool,
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
pub enum RolloutVerb {
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

/// What `skiff TYPO` prints, as kubectl (cobra) words it: `Error: unknown command "gett"
/// for "skiff"`, then `Did you mean this?` and each verb within two edits of it (or that it
/// starts), tab-indented.
pub fn unknown_verb_text(typed: &str) -> String {
    use clap::CommandFactory;
    let command = Flags::command();
    let lower = typed.to_lowercase();
    let suggestions: Vec<String> = command
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| c.get_name().to_string())
        .filter(|name| edit_distance(&lower, name) <= 2 || name.starts_with(&lower))
        .collect();
    let mut text = format!("Error: unknown command \"{typed}\" for \"skiff\"\n");
    if !suggestions.is_empty() {
        text.push_str("\nDid you mean this?\n");
        for name in suggestions {
            text.push_str(&format!("\t{name}\n"));
        }
        text.push('\n');
    }
    text
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    skiff_api::duration::parse(text).map_err(|e| e.to_string())
}

#[derive(Subcommand)]
pub enum ClusterVerb {
    /// Members, leader, term, applied index and each member's health.
    ///
    /// Example: skiff cluster status --server 10.250.0.2:7000
    Status,
}

#[derive(Subcommand)]
pub enum NetVerb {
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_flags_are_consistent() {
        Flags::command().debug_assert();
    }

    #[test]
    fn a_typoed_verb_gets_kubectls_suggestions() {
        // Verbs in the order they are listed, as cobra lists them.
        assert_eq!(
            unknown_verb_text("gett"),
            "Error: unknown command \"gett\" for \"skiff\"\n\nDid you mean this?\n\tget\n\tnet\n\n"
        );
        assert_eq!(
            unknown_verb_text("dscribe"),
            "Error: unknown command \"dscribe\" for \"skiff\"\n\nDid you mean this?\n\tdescribe\n\n"
        );
        assert_eq!(
            unknown_verb_text("zzzz"),
            "Error: unknown command \"zzzz\" for \"skiff\"\n"
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn label_and_annotate_take_the_same_arguments() {
        for verb in ["label", "annotate"] {
            let flags =
                Flags::try_parse_from(["skiff", verb, "pod", "web", "a=1", "b-", "--overwrite"])
                    .unwrap();
            let (Verb::Label(what) | Verb::Annotate(what)) = flags.verb else {
                panic!("{verb}");
            };
            assert_eq!(what.args, ["pod", "web", "a=1", "b-"]);
            assert!(what.overwrite);
        }
    }
}
