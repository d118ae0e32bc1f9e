//! `skiff kubeconfig`: a kubeconfig for kubectl (and client-go, the Python client, k9s…)
//! from the CLI's own config: one cluster and context per member, each at its Kubernetes
//! API URL, the cluster CA, and the current credential (the config's client certificate, or
//! the bearer token of `--token`/`SKIFF_TOKEN`/the config).
//!
//! A member serves the Kubernetes API on its `--listen` host at port 6443 unless told
//! otherwise (`--kube-listen`), so each server's URL is `https://HOST:6443`; `--kube-port`
//! and `--kube-server` say where members serve it when that is not so.

use std::path::Path;

use serde_json::{Value, json};
use skiff_pki::config::Credential;

use crate::endpoints::{self, EndpointsError};

/// The Kubernetes API port members serve on by default (`--kube-listen`'s).
pub const DEFAULT_KUBE_PORT: u16 = 6443;

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("{0}")]
    Endpoints(#[from] EndpointsError),
    #[error("{0}")]
    Config(#[from] skiff_pki::config::ConfigError),
    #[error(
        "no cluster CA in {0}: kubectl needs it to verify the members (use --config with a member's admin.conf)"
    )]
    NoCa(String),
    #[error("no credential in {0}: give --token, set SKIFF_TOKEN, or use a config with one")]
    NoCredential(String),
    #[error("--kube-server: {0:?} is not an https://HOST:PORT URL")]
    BadUrl(String),
    #[error("server {0:?} is not HOST:PORT")]
    BadServer(String),
}

/// Where the kubeconfig points and with what.
pub struct Options<'a> {
    pub config_file: &'a Path,
    pub server_flag: Option<&'a str>,
    pub server_env: Option<&'a str>,
    pub token: Option<String>,
    pub kube_port: u16,
    pub kube_servers: &'a [String],
}

/// The kubeconfig text (YAML) for the current cluster.
pub fn kubeconfig(options: &Options) -> Result<String, KubeconfigError> {
    let target =
        endpoints::resolve_target(options.server_flag, options.server_env, options.config_file)?
            .with_token(options.token.clone());
    let shown = options.config_file.display().to_string();
    let (name, entry) = target
        .cluster
        .clone()
        .ok_or_else(|| KubeconfigError::NoCa(shown.clone()))?;
    let ca = entry
        .ca
        .clone()
        .ok_or_else(|| KubeconfigError::NoCa(shown.clone()))?;
    let credential = entry
        .credential(options.config_file, &name)?
        .ok_or(KubeconfigError::NoCredential(shown))?;
    let urls = match options.kube_servers {
        [] => target
            .servers
            .iter()
            .map(|server| kube_url(server, options.kube_port))
            .collect::<Result<Vec<_>, _>>()?,
        given => given
            .iter()
            .map(|url| check_url(url))
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(render(&name, &urls, &ca, &credential))
}

/// `https://HOST:PORT` for a member reached at `server` (`HOST:PORT`).
pub fn kube_url(server: &str, port: u16) -> Result<String, KubeconfigError> {
    let host =
        skiff_pki::host_of(server).map_err(|_| KubeconfigError::BadServer(server.to_string()))?;
    Ok(match host.contains(':') {
        true => format!("https://[{host}]:{port}"),
        false => format!("https://{host}:{port}"),
    })
}

pub fn check_url(url: &str) -> Result<String, KubeconfigError> {
    let url = url.trim().trim_end_matches('/');
    let ok = url
        .strip_prefix("https://")
        .is_some_and(|rest| skiff_pki::host_of(rest).is_ok() && rest.contains(':'));
    match ok {
        true => Ok(url.to_string()),
        false => Err(KubeconfigError::BadUrl(url.to_string())),
    }
}

fn base64(text: &str) -> String {
    data_encoding::BASE64.encode(text.as_bytes())
}

/// The kubeconfig: cluster and context `NAME-I` for member I (the first is current), one
/// user `NAME` with the credential.
fn render(name: &str, urls: &[String], ca_pem: &str, credential: &Credential) -> String {
    let each = |i: usize| format!("{name}-{}", i + 1);
    let clusters: Vec<Value> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            json!({
                "name": each(i),
                "cluster": {
                    "server": url,
                    "certificate-authority-data": base64(ca_pem),
                },
            })
        })
        .collect();
    let contexts: Vec<Value> = (0..urls.len())
        .map(|i| json!({ "name": each(i), "context": { "cluster": each(i), "user": name } }))
        .collect();
    let user = match credential {
        Credential::Bearer(token) => json!({ "token": token }),
        Credential::Certificate { cert_pem, key_pem } => json!({
            "client-certificate-data": base64(cert_pem),
            "client-key-data": base64(key_pem),
        }),
    };
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": clusters,
        "contexts": contexts,
        "current-context": each(0),
        "users": [{ "name": name, "user": user }],
        "preferences": {},
    });
    serde_yaml_ng::to_string(&config).expect("a JSON value is YAML")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_member_gets_a_cluster_and_context_at_its_kube_port() {
        let urls: Vec<String> = ["10.0.0.2:7000", "[fd00::3]:7000"]
            .iter()
            .map(|s| kube_url(s, 6443).unwrap())
            .collect();
        assert_eq!(urls, ["https://10.0.0.2:6443", "https://[fd00::3]:6443"]);
        let text = render("prod", &urls, "CA", &Credential::Bearer("skt.a.b".into()));
        let config: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(config["current-context"], "prod-1");
        assert_eq!(
            config["clusters"][1]["cluster"]["server"],
            "https://[fd00::3]:6443"
        );
        assert_eq!(
            config["clusters"][0]["cluster"]["certificate-authority-data"],
            "Q0E="
        );
        assert_eq!(config["contexts"][1]["context"]["cluster"], "prod-2");
        assert_eq!(config["users"][0]["user"]["token"], "skt.a.b");
    }

    #[test]
    fn a_client_certificate_is_carried_as_data() {
        let credential = Credential::Certificate {
            cert_pem: "CERT".into(),
            key_pem: "KEY".into(),
        };
        let text = render("c", &["https://h:1".into()], "CA", &credential);
        let config: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(
            config["users"][0]["user"]["client-certificate-data"],
            base64("CERT")
        );
        assert_eq!(config["users"][0]["user"]["client-key-data"], base64("KEY"));
    }

    #[test]
    fn a_kube_server_must_be_an_https_url_with_a_port() {
        assert_eq!(check_url("https://h:6443/").unwrap(), "https://h:6443");
        for bad in ["http://h:6443", "h:6443", "https://h", "https://"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(kube_url("no port here/", 6443).is_err());
    }
}
