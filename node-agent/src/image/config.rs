//! An image's runtime defaults (Entrypoint, Cmd, Env, WorkingDir, User, ExposedPorts) and
//! the Kubernetes rules that combine them with a container's `command`, `args`, `env` and
//! `workingDir` ([`resolve_process`], pure).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::types::null_default;
use super::{ImageError, Result};

/// The PATH a container gets when neither the image nor the container sets one (what
/// containerd's and Docker's default specs use).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A port the image declares (`EXPOSE 80/tcp`): informational, as in Docker.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ExposedPort {
    pub port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
}

/// The runtime defaults of an image, from its config JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value` entries in the image's order, split at the first `=`.
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`, resolved against the image's
    /// `/etc/passwd` by the runtime.
    pub user: Option<String>,
    pub exposed_ports: Vec<ExposedPort>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
    pub architecture: String,
    pub os: String,
}

#[derive(Deserialize)]
struct RawConfigFile {
    #[serde(default, deserialize_with = "null_default")]
    architecture: String,
    #[serde(default, deserialize_with = "null_default")]
    os: String,
    #[serde(default, deserialize_with = "null_default")]
    config: RawConfig,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawConfig {
    #[serde(default, deserialize_with = "null_default")]
    entrypoint: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    cmd: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    env: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    working_dir: String,
    #[serde(default, deserialize_with = "null_default")]
    user: String,
    #[serde(default, deserialize_with = "null_default")]
    exposed_ports: BTreeMap<String, serde_json::Value>,
    #[serde(default, deserialize_with = "null_default")]
    labels: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "null_default")]
    stop_signal: String,
}

impl ImageConfig {
    /// Parses an image config blob (OCI `application/vnd.oci.image.config.v1+json` or
    /// Docker's `application/vnd.docker.container.image.v1+json`).
    pub fn parse(json: &[u8]) -> Result<ImageConfig> {
        let raw: RawConfigFile =
            serde_json::from_slice(json).map_err(|e| ImageError::InvalidConfig(e.to_string()))?;
        let c = raw.config;
        let env = c
            .env
            .iter()
            .map(|entry| match entry.split_once('=') {
                Some((name, value)) => (name.to_string(), value.to_string()),
                None => (entry.clone(), String::new()),
            })
            .collect();
        let mut exposed_ports = c
            .exposed_ports
            .keys()
            .map(|key| parse_exposed_port(key))
            .collect::<Result<Vec<_>>>()?;
        exposed_ports.sort();
        let non_empty = |s: String| (!s.is_empty()).then_some(s);
        Ok(ImageConfig {
            entrypoint: c.entrypoint,
            cmd: c.cmd,
            env,
            working_dir: non_empty(c.working_dir),
            user: non_empty(c.user),
            exposed_ports,
            labels: c.labels,
            stop_signal: non_empty(c.stop_signal),
            architecture: raw.architecture,
            os: raw.os,
        })
    }
}

/// `80/tcp`, `53/udp`, `80` (tcp).
fn parse_exposed_port(key: &str) -> Result<ExposedPort> {
    let (port, protocol) = key.split_once('/').unwrap_or((key, "tcp"));
    let protocol = protocol.to_ascii_lowercase();
    match (port.parse::<u16>(), protocol.as_str()) {
        (Ok(port), "tcp" | "udp" | "sctp") if port != 0 => Ok(ExposedPort { port, protocol }),
        _ => Err(ImageError::InvalidConfig(format!(
            "invalid exposed port {key:?} (want <port>[/tcp|udp|sctp])"
        ))),
    }
}

/// What a pod's container says about its process: the inputs Kubernetes combines with the
/// image's config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerSpec {
    pub command: Vec<String>,
    pub args: Vec<String>,
    /// In the pod spec's order; a later entry of the same name wins.
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
}

impl From<&skiff_api::types::Container> for ContainerSpec {
    fn from(c: &skiff_api::types::Container) -> Self {
        ContainerSpec {
            command: c.command.clone(),
            args: c.args.clone(),
            env: c
                .env
                .iter()
                .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
                .collect(),
            working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        }
    }
}

/// The process a container runs: what the runtime puts in the OCI spec's `process`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    pub argv: Vec<String>,
    /// The image's variables in its order (values replaced by the container's), then the
    /// container's new ones in its order.
    pub env: Vec<(String, String)>,
    /// Absolute, inside the container.
    pub working_dir: String,
    /// The image's `User`, if any (a pod's securityContext would override it).
    pub user: Option<String>,
}

/// Combines an image's config with a container's spec as Kubernetes does:
///
/// - argv: neither `command` nor `args` → Entrypoint + Cmd; `command` only → command (the
///   image's Entrypoint and Cmd are both ignored); `args` only → Entrypoint + args;
///   both → command + args. Empty → [`ImageError::NoCommand`].
/// - `$(VAR)` in `command` and `args` expands to the container's env (after its own
///   expansion); `$$` is a literal `$`; an unknown `$(VAR)` stays as written. Env values
///   expand `$(VAR)` from the container's earlier entries. The image's env is not used for
///   expansion (kubelet does not see it).
/// - env: the image's, with the container's values winning; a later container entry of
///   the same name wins over an earlier one; PATH defaults to [`DEFAULT_PATH`].
/// - working dir: the container's, else the image's WorkingDir, else `/`; must be absolute.
pub fn resolve_process(image: &ImageConfig, container: &ContainerSpec) -> Result<ProcessSpec> {
    // The container's env, each value expanded against the entries before it.
    let mut container_env: Vec<(String, String)> = Vec::new();
    let mut defined: HashMap<String, String> = HashMap::new();
    for (name, value) in &container.env {
        let value = expand(value, &defined);
        defined.insert(name.clone(), value.clone());
        match container_env.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value,
            None => container_env.push((name.clone(), value)),
        }
    }
    let command: Vec<String> = container
        .command
        .iter()
        .map(|s| expand(s, &defined))
        .collect();
    let args: Vec<String> = container.args.iter().map(|s| expand(s, &defined)).collect();
    let argv: Vec<String> = match (command.is_empty(), args.is_empty()) {
        (true, true) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
        (false, true) => command,
        (true, false) => image.entrypoint.iter().cloned().chain(args).collect(),
        (false, false) => command.into_iter().chain(args).collect(),
    };
    if argv.is_empty() {
        return Err(ImageError::NoCommand);
    }

    let mut env: Vec<(String, String)> = Vec::new();
    for (name, value) in image.env.iter().chain(&container_env) {
        match env.iter_mut().find(|(n, _)| n == name) {
            Some(entry) => entry.1 = value.clone(),
            None => env.push((name.clone(), value.clone())),
        }
    }
    if !env.iter().any(|(n, _)| n == "PATH") {
        env.insert(0, ("PATH".to_string(), DEFAULT_PATH.to_string()));
    }

    let working_dir = container
        .working_dir
        .clone()
        .or_else(|| image.working_dir.clone())
        .unwrap_or_else(|| "/".to_string());
    if !working_dir.starts_with('/') {
        return Err(ImageError::InvalidConfig(format!(
            "working dir {working_dir:?} is not absolute"
        )));
    }
    Ok(ProcessSpec {
        argv,
        env,
        working_dir,
        user: image.user.clone(),
    })
}

/// Kubernetes' `$(VAR)` expansion: `$$` → `$`, `$(NAME)` → its value when defined (else
/// left as written), any other `$` kept.
fn expand(input: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(after_dollar) = after.strip_prefix('$') {
            out.push('$');
            rest = after_dollar;
        } else if let Some(open) = after.strip_prefix('(')
            && let Some(close) = open.find(')')
        {
            let name = &open[..close];
            match vars.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &open[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn kv(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn image() -> ImageConfig {
        ImageConfig {
            entrypoint: s(&["/entry"]),
            cmd: s(&["default", "cmd"]),
            env: kv(&[("PATH", "/bin"), ("A", "image"), ("B", "image")]),
            working_dir: Some("/app".into()),
            user: Some("1000:1000".into()),
            ..ImageConfig::default()
        }
    }

    fn container(command: &[&str], args: &[&str]) -> ContainerSpec {
        ContainerSpec {
            command: s(command),
            args: s(args),
            ..ContainerSpec::default()
        }
    }

    #[test]
    fn parses_docker_and_oci_configs() {
        let json = br#"{
            "architecture": "amd64", "os": "linux",
            "config": {
                "Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"],
                "Env": ["PATH=/usr/bin:/bin", "EMPTY=", "NOVALUE", "EQ=a=b"],
                "WorkingDir": "/srv", "User": "nobody",
                "ExposedPorts": {"80/tcp": {}, "53/udp": {}, "8080": {}},
                "Labels": {"a": "b"}, "StopSignal": "SIGQUIT"
            },
            "rootfs": {"type": "layers", "diff_ids": []}
        }"#;
        let c = ImageConfig::parse(json).unwrap();
        assert_eq!(c.entrypoint, s(&["/bin/sh", "-c"]));
        assert_eq!(c.cmd, s(&["echo hi"]));
        assert_eq!(
            c.env,
            kv(&[
                ("PATH", "/usr/bin:/bin"),
                ("EMPTY", ""),
                ("NOVALUE", ""),
                ("EQ", "a=b")
            ])
        );
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.user.as_deref(), Some("nobody"));
        let port = |port, protocol: &str| ExposedPort {
            port,
            protocol: protocol.into(),
        };
        assert_eq!(
            c.exposed_ports,
            vec![port(53, "udp"), port(80, "tcp"), port(8080, "tcp")]
        );
        assert_eq!(c.labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!((c.architecture.as_str(), c.os.as_str()), ("amd64", "linux"));
    }

    #[test]
    fn nulls_and_missing_fields_are_empty() {
        let json = br#"{"config": {"Entrypoint": null, "Cmd": null, "Env": null,
            "WorkingDir": "", "ExposedPorts": null, "Labels": null, "User": ""}}"#;
        let c = ImageConfig::parse(json).unwrap();
        assert_eq!(c, ImageConfig::default());
        assert_eq!(ImageConfig::parse(b"{}").unwrap(), ImageConfig::default());
        assert_eq!(
            ImageConfig::parse(br#"{"config": null}"#).unwrap(),
            ImageConfig::default()
        );
        let err = ImageConfig::parse(b"not json").unwrap_err().to_string();
        assert!(err.starts_with("invalid image config"), "{err}");
        let err = ImageConfig::parse(br#"{"config": {"ExposedPorts": {"http/tcp": {}}}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid exposed port \"http/tcp\""), "{err}");
    }

    #[test]
    fn command_and_args_rules() {
        let img = image();
        let argv = |c: ContainerSpec| resolve_process(&img, &c).unwrap().argv;
        // Neither: Entrypoint + Cmd.
        assert_eq!(argv(container(&[], &[])), s(&["/entry", "default", "cmd"]));
        // command only: overrides Entrypoint and drops Cmd.
        assert_eq!(argv(container(&["/bin/x"], &[])), s(&["/bin/x"]));
        // args only: Entrypoint + args (Cmd replaced).
        assert_eq!(argv(container(&[], &["a", "b"])), s(&["/entry", "a", "b"]));
        // Both: command + args.
        assert_eq!(argv(container(&["/bin/x"], &["a"])), s(&["/bin/x", "a"]));
        // An image without Entrypoint: Cmd alone; args alone replace it.
        let cmd_only = ImageConfig {
            entrypoint: vec![],
            ..image()
        };
        let argv = |c: ContainerSpec| resolve_process(&cmd_only, &c).unwrap().argv;
        assert_eq!(argv(container(&[], &[])), s(&["default", "cmd"]));
        assert_eq!(argv(container(&[], &["sh"])), s(&["sh"]));
    }

    #[test]
    fn no_command_is_an_error() {
        let empty = ImageConfig::default();
        let err = resolve_process(&empty, &container(&[], &[])).unwrap_err();
        assert!(matches!(err, ImageError::NoCommand));
        assert!(err.to_string().starts_with("no command specified"), "{err}");
        assert!(resolve_process(&empty, &container(&[], &["x"])).is_ok());
    }

    #[test]
    fn env_merges_with_the_container_winning() {
        let c = ContainerSpec {
            env: kv(&[
                ("B", "container"),
                ("C", "new"),
                ("A", "first"),
                ("A", "second"),
            ]),
            ..container(&[], &[])
        };
        let p = resolve_process(&image(), &c).unwrap();
        assert_eq!(
            p.env,
            kv(&[
                ("PATH", "/bin"),
                ("A", "second"),
                ("B", "container"),
                ("C", "new")
            ])
        );
        // PATH defaults when nobody sets it; a container's PATH wins over the image's.
        let no_path = ImageConfig {
            env: kv(&[("X", "1")]),
            ..image()
        };
        let p = resolve_process(&no_path, &container(&[], &[])).unwrap();
        assert_eq!(p.env, kv(&[("PATH", DEFAULT_PATH), ("X", "1")]));
        let c = ContainerSpec {
            env: kv(&[("PATH", "/mine")]),
            ..container(&[], &[])
        };
        assert_eq!(
            resolve_process(&image(), &c).unwrap().env[0],
            ("PATH".into(), "/mine".into())
        );
    }

    #[test]
    fn working_dir_and_user() {
        let p = resolve_process(&image(), &container(&[], &[])).unwrap();
        assert_eq!(p.working_dir, "/app");
        assert_eq!(p.user.as_deref(), Some("1000:1000"));
        let c = ContainerSpec {
            working_dir: Some("/work".into()),
            ..container(&[], &[])
        };
        assert_eq!(resolve_process(&image(), &c).unwrap().working_dir, "/work");
        let bare = ImageConfig {
            working_dir: None,
            user: None,
            ..image()
        };
        let p = resolve_process(&bare, &container(&[], &[])).unwrap();
        assert_eq!((p.working_dir.as_str(), p.user), ("/", None));
        let c = ContainerSpec {
            working_dir: Some("relative".into()),
            ..container(&[], &[])
        };
        let err = resolve_process(&image(), &c).unwrap_err().to_string();
        assert!(err.contains("\"relative\" is not absolute"), "{err}");
    }

    #[test]
    fn dollar_variables_expand_as_kubernetes_expands_them() {
        let c = ContainerSpec {
            command: s(&[
                "/bin/echo",
                "$(GREETING)",
                "$(UNKNOWN)",
                "$$(GREETING)",
                "a$b",
                "$",
            ]),
            args: s(&["$(NAME)-$(GREETING)", "$(unterminated"]),
            env: kv(&[
                ("NAME", "world"),
                ("GREETING", "hello $(NAME)"),
                ("LATER", "$(AFTER)"),
                ("AFTER", "x"),
            ]),
            working_dir: None,
        };
        let p = resolve_process(&image(), &c).unwrap();
        assert_eq!(
            p.argv,
            s(&[
                "/bin/echo",
                "hello world",
                "$(UNKNOWN)",
                "$(GREETING)",
                "a$b",
                "$",
                "world-hello world",
                "$(unterminated",
            ])
        );
        // Only earlier entries expand in env values; the image's env is not a source.
        let env: HashMap<_, _> = p.env.into_iter().collect();
        assert_eq!(env["LATER"], "$(AFTER)");
        let c = ContainerSpec {
            args: s(&["$(A)"]),
            ..ContainerSpec::default()
        };
        assert_eq!(
            resolve_process(&image(), &c).unwrap().argv,
            s(&["/entry", "$(A)"])
        );
    }

    #[test]
    fn from_api_container() {
        let c = skiff_api::types::Container {
            name: "c".into(),
            command: s(&["x"]),
            args: s(&["y"]),
            env: vec![skiff_api::types::EnvVar {
                name: "A".into(),
                value: None,
            }],
            working_dir: Some(String::new()),
            ..Default::default()
        };
        let spec = ContainerSpec::from(&c);
        assert_eq!(spec.env, kv(&[("A", "")]));
        assert_eq!(spec.working_dir, None);
        assert_eq!((spec.command, spec.args), (s(&["x"]), s(&["y"])));
    }
}
