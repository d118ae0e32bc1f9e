//! The real kubectl against a test cluster's Kubernetes API, through the kubeconfig that
//! `skiff kubeconfig` prints.

use std::path::PathBuf;
use std::process::Command;

use crate::cluster::{ControlPlaneCluster, skiff_cli};

/// kubectl on PATH, unless missing (then what to install).
pub fn missing_kubectl() -> Option<String> {
    let found = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    (!found).then(|| "kubectl v1.32 on PATH".to_string())
}

/// A kubeconfig file from `skiff kubeconfig`, with the admin credential or `token`.
pub struct Kubectl {
    dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    /// kubectl's discovery and OpenAPI cache, when not its default (~/.kube/cache, shared
    /// by every kubectl on the machine and keyed by host and port, which tests reuse).
    cache: Option<PathBuf>,
}

impl Kubectl {
    /// kubectl acting as a new cluster-wide bearer token `name` with `role`.
    pub async fn with_new_token(cluster: &ControlPlaneCluster, name: &str, role: &str) -> Kubectl {
        let (secret, _) = cluster
            .client()
            .create_token(&skiff_client::NewToken {
                name: name.into(),
                role: role.into(),
                namespace: None,
                ttl: None,
            })
            .await
            .expect("create token");
        Kubectl::new(cluster, Some(&secret))
    }

    pub fn new(cluster: &ControlPlaneCluster, token: Option<&str>) -> Kubectl {
        let urls: Vec<String> = cluster
            .ids()
            .iter()
            .map(|id| cluster.kube_url(*id))
            .collect();
        let urls = urls.join(",");
        let mut args = vec!["kubeconfig", "--kube-server", &urls];
        if let Some(token) = token {
            args.extend(["--token", token]);
        }
        let (code, out, err) = skiff_cli(&cluster.endpoints().join(","), &args);
        assert_eq!(code, 0, "skiff kubeconfig: {err}");
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, out).unwrap();
        Kubectl {
            dir,
            kubeconfig,
            cache: None,
        }
    }

    /// The same, with a discovery and OpenAPI cache of its own that starts empty: what
    /// kubectl fetches is then what this server answers now.
    pub fn with_own_cache(mut self) -> Kubectl {
        self.cache = Some(self.dir.path().join("cache"));
        self
    }

    /// kubectl with this kubeconfig (and cache), to add arguments to.
    pub fn command(&self) -> Command {
        let mut command = Command::new("kubectl");
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env_remove("KUBECONFIG");
        if let Some(cache) = &self.cache {
            command.arg("--cache-dir").arg(cache);
        }
        command
    }

    /// Runs kubectl: (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let output = self.command().args(args).output().expect("run kubectl");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Runs kubectl and wants it to succeed: its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "kubectl {args:?} failed:\n{out}{err}");
        out
    }

    /// Runs kubectl and wants it to fail: its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_ne!(code, 0, "kubectl {args:?} succeeded:\n{out}");
        err
    }
}

/// Three members and two agents (`node-1`, `node-2`) whose nodes are Ready within `settle`:
/// the cluster every kubectl and Kubernetes-client test runs against.
pub async fn cluster_with_ready_agents(
    settle: std::time::Duration,
) -> (ControlPlaneCluster, Vec<crate::agent::AgentProcess>) {
    let cluster = ControlPlaneCluster::start_ready(3).await;
    let agents = crate::agent::start_ready(&cluster, &["node-1", "node-2"], &[], settle).await;
    (cluster, agents)
}
