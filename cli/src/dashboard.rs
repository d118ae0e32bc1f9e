//! `skiff dashboard [--url]`: the web console's address, signed in, as `minikube dashboard
//! --url` prints it: `https://HOST:6443/ui/#token=…`. The token rides in the URL's fragment,
//! which a browser never sends to the server (so it is in no request line or server log);
//! the console moves it into the tab's sessionStorage and out of the address bar.
//!
//! The credential is the current one (`--token`, `SKIFF_TOKEN`, or the config's). A browser
//! cannot present the config's client certificate, so when that is all there is, a
//! short-lived cluster-admin token (`dashboard-<random>`, [`MINTED_TTL`]) is made through the
//! token API, as `skiff token create` makes one, and said so on stderr.

use std::time::Duration;

use skiff_client::{Client, NewToken};
use skiff_pki::config::Credential;

use crate::endpoints::{self, EndpointsError};
use crate::kubeconfig::{self, KubeconfigError};

/// How long a token minted for a certificate-only config lives.
pub const MINTED_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("{0}")]
    Endpoints(#[from] EndpointsError),
    #[error("{0}")]
    Config(#[from] skiff_pki::config::ConfigError),
    #[error("{0}")]
    Kubeconfig(#[from] KubeconfigError),
    #[error("no credential in {0}: give --token, set SKIFF_TOKEN, or use a config with one")]
    NoCredential(String),
    #[error("no server to point the console at")]
    NoServer,
    #[error("cannot make a token for the console: {0}")]
    Mint(#[from] skiff_client::Error),
}

/// Where the console is and what signs it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `https://HOST:PORT` of the first member's Kubernetes API.
    pub base: String,
    /// The bearer token to sign in with; `None`: the config holds a client certificate
    /// only, and one must be minted ([`mint`]).
    pub token: Option<String>,
}

/// The console's server and credential, resolved as `skiff kubeconfig` resolves them.
pub fn plan(options: &kubeconfig::Options) -> Result<Plan, DashboardError> {
    let target =
        endpoints::resolve_target(options.server_flag, options.server_env, options.config_file)?
            .with_token(options.token.clone());
    let shown = options.config_file.display().to_string();
    let base = match options.kube_servers.first() {
        Some(url) => kubeconfig::check_url(url)?,
        None => {
            let server = target.servers.first().ok_or(DashboardError::NoServer)?;
            kubeconfig::kube_url(server, options.kube_port)?
        }
    };
    let credential = match &target.cluster {
        Some((name, entry)) => entry.credential(options.config_file, name)?,
        None => None,
    };
    let token = match credential {
        Some(Credential::Bearer(token)) => Some(token.trim().to_string()),
        Some(Credential::Certificate { .. }) => None,
        None => return Err(DashboardError::NoCredential(shown)),
    };
    Ok(Plan { base, token })
}

/// A cluster-admin token for the console, made with the caller's certificate: its secret
/// and a note for stderr.
pub async fn mint(client: &Client) -> Result<(String, String), DashboardError> {
    let suffix: String = skiff_pki::generate_token()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .take(8)
        .collect();
    let new = NewToken {
        name: format!("dashboard-{suffix}"),
        role: "cluster-admin".into(),
        namespace: None,
        ttl: Some(MINTED_TTL),
    };
    let (secret, info) = client.create_token(&new).await?;
    let note = format!(
        "# the config holds a client certificate, which a browser cannot use: made token/{} (cluster-admin, expires {}; skiff token rm {} ends it sooner)",
        info.name, info.expires_at, info.name
    );
    Ok((secret, note))
}

/// The URL that signs a browser in with `token`.
pub fn url(base: &str, token: &str) -> String {
    format!("{base}/ui/#token={}", fragment_escape(token))
}

/// `text` with every byte outside RFC 3986's unreserved set percent-encoded.
fn fragment_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_rides_in_the_fragment_escaped() {
        assert_eq!(
            url("https://10.0.0.2:6443", "skt.ops.abc"),
            "https://10.0.0.2:6443/ui/#token=skt.ops.abc"
        );
        assert_eq!(
            url("https://h:1", "a b&c#d"),
            "https://h:1/ui/#token=a%20b%26c%23d"
        );
    }

    #[test]
    fn a_bearer_config_signs_in_with_its_token_and_a_kube_server_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "current: c\nclusters:\n  c:\n    servers: [\"10.0.0.5:7000\"]\n    ca: CA\n    token: skt.a.b\n",
        )
        .unwrap();
        let options = kubeconfig::Options {
            config_file: &path,
            server_flag: None,
            server_env: None,
            token: None,
            kube_port: 6443,
            kube_servers: &[],
        };
        let planned = plan(&options).unwrap();
        assert_eq!(planned.base, "https://10.0.0.5:6443");
        assert_eq!(planned.token.as_deref(), Some("skt.a.b"));
        let servers = ["https://k:9443".to_string()];
        let options = kubeconfig::Options {
            kube_servers: &servers,
            token: Some("skt.x.y".into()),
            ..options
        };
        let planned = plan(&options).unwrap();
        assert_eq!(planned.base, "https://k:9443");
        assert_eq!(planned.token.as_deref(), Some("skt.x.y"));
    }
}
