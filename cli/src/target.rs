//! kubectl's ways of naming objects on the command line: `TYPE NAME…`, `TYPE/NAME…`,
//! `TYPE1,TYPE2 [NAME…]` and `all`, parsed once for every verb that takes them.

use skiff_api::Kind;

/// Why the arguments name no objects, in kubectl's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the server doesn't have a resource type \"{0}\"")]
    UnknownType(String),
    #[error(
        "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'skiff {0} resource/<resource_name>' instead of 'skiff {0} resource resource/<resource_name>'"
    )]
    Mixed(String),
    #[error("arguments in resource/name form must have a single resource and name")]
    BadSlash,
    #[error(
        "You must specify the type of resource to {0}. Use \"skiff api-resources\" for a complete list of supported resources.\n\nerror: Required resource not specified."
    )]
    NoType(String),
    #[error("{0}")]
    Usage(String),
}

/// The kinds `skiff get all` shows, in kubectl's order.
pub const ALL: [Kind; 2] = [Kind::Pod, Kind::Deployment];

/// One kind and the objects of it the arguments name (none: every object, or those a
/// selector picks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: Kind,
    pub names: Vec<String>,
}

/// kubectl's TYPE: a kind's name, plural or short name in any case, or its resource name
/// with the group (`deployment.apps`, `deployments.apps`).
pub fn parse_kind(text: &str) -> Result<Kind, TargetError> {
    let lower = text.trim().to_ascii_lowercase();
    let bare = match lower.split_once('.') {
        Some((name, group)) => {
            let kind = Kind::parse(name).filter(|k| k.group() == group && !group.is_empty());
            return kind.ok_or_else(|| TargetError::UnknownType(text.to_string()));
        }
        None => lower,
    };
    Kind::parse(&bare).ok_or_else(|| TargetError::UnknownType(text.to_string()))
}

/// The objects `args` name: `TYPE[,TYPE…] [NAME…]` (with `all` for [`ALL`] when
/// `allow_all`), or only `TYPE/NAME` arguments (grouped by kind, in order of appearance).
/// `verb` words the errors.
pub fn parse(args: &[String], verb: &str, allow_all: bool) -> Result<Vec<Request>, TargetError> {
    let Some(first) = args.first() else {
        return Err(TargetError::NoType(verb.to_string()));
    };
    if args.iter().any(|a| a.contains('/')) {
        if !first.contains('/') {
            return Err(TargetError::Mixed(verb.to_string()));
        }
        let mut requests: Vec<Request> = Vec::new();
        for arg in args {
            let (kind, name) = one_slash(arg)?;
            match requests.iter_mut().find(|r| r.kind == kind) {
                Some(request) => request.names.push(name),
                None => requests.push(Request {
                    kind,
                    names: vec![name],
                }),
            }
        }
        return Ok(requests);
    }
    let mut kinds: Vec<Kind> = Vec::new();
    for word in first.split(',').filter(|w| !w.is_empty()) {
        let expanded = if allow_all && word.eq_ignore_ascii_case("all") {
            ALL.to_vec()
        } else {
            vec![parse_kind(word)?]
        };
        for kind in expanded {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    if kinds.is_empty() {
        return Err(TargetError::NoType(verb.to_string()));
    }
    let names = args[1..].to_vec();
    Ok(kinds
        .into_iter()
        .map(|kind| Request {
            kind,
            names: names.clone(),
        })
        .collect())
}

/// `TYPE/NAME` → the kind and the name.
fn one_slash(arg: &str) -> Result<(Kind, String), TargetError> {
    match arg.split_once('/') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((parse_kind(kind)?, name.to_string()))
        }
        _ => Err(TargetError::BadSlash),
    }
}

/// Exactly one object: `TYPE NAME` or `TYPE/NAME`.
pub fn one(args: &[String], verb: &str) -> Result<(Kind, String), TargetError> {
    let requests = parse(args, verb, false)?;
    match requests.as_slice() {
        [Request { kind, names }] if names.len() == 1 => Ok((*kind, names[0].clone())),
        _ => Err(TargetError::Usage(format!(
            "{verb} takes one object: TYPE NAME or TYPE/NAME"
        ))),
    }
}

/// The arguments of `label` and `annotate` split as kubectl splits them: those with `=` or a
/// trailing `-` are the changes, the rest name the objects.
pub fn split_changes(args: &[String]) -> (Vec<String>, Vec<String>) {
    args.iter()
        .cloned()
        .partition(|a| !(a.contains('=') || (a.ends_with('-') && !a.contains('/'))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn request(kind: Kind, names: &[&str]) -> Request {
        Request {
            kind,
            names: args(names),
        }
    }

    #[test]
    fn objects_are_named_in_every_form_kubectl_takes() {
        assert_eq!(
            parse(&args(&["pods", "a", "b"]), "get", false).unwrap(),
            [request(Kind::Pod, &["a", "b"])]
        );
        assert_eq!(
            parse(&args(&["pod/a", "deploy/web", "po/b"]), "get", false).unwrap(),
            [
                request(Kind::Pod, &["a", "b"]),
                request(Kind::Deployment, &["web"])
            ]
        );
        assert_eq!(
            parse(&args(&["pod,node"]), "get", false).unwrap(),
            [request(Kind::Pod, &[]), request(Kind::Node, &[])]
        );
        assert_eq!(
            parse(&args(&["all"]), "get", true).unwrap(),
            [request(Kind::Pod, &[]), request(Kind::Deployment, &[])]
        );
        assert_eq!(
            parse(&args(&["deployment.apps/web"]), "get", false).unwrap(),
            [request(Kind::Deployment, &["web"])]
        );
        assert_eq!(
            parse(&args(&["all"]), "delete", false).unwrap_err(),
            TargetError::UnknownType("all".into())
        );
        assert_eq!(
            parse(&args(&["pod", "pod/x"]), "get", false)
                .unwrap_err()
                .to_string(),
            "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'skiff get resource/<resource_name>' instead of 'skiff get resource resource/<resource_name>'"
        );
        assert_eq!(
            parse(&args(&["pod/"]), "get", false).unwrap_err(),
            TargetError::BadSlash
        );
        assert_eq!(
            parse(&args(&["pdos", "x"]), "get", false).unwrap_err(),
            TargetError::UnknownType("pdos".into())
        );
        assert!(matches!(
            parse(&[], "get", false).unwrap_err(),
            TargetError::NoType(_)
        ));
        assert_eq!(
            parse_kind("pod.apps"),
            Err(TargetError::UnknownType("pod.apps".into()))
        );
        assert_eq!(parse_kind("Deployments.apps"), Ok(Kind::Deployment));
    }

    #[test]
    fn one_object_in_either_form() {
        assert_eq!(
            one(&args(&["deploy", "web"]), "scale").unwrap(),
            (Kind::Deployment, "web".to_string())
        );
        assert_eq!(
            one(&args(&["deploy/web"]), "scale").unwrap(),
            (Kind::Deployment, "web".to_string())
        );
        assert!(one(&args(&["deploy", "a", "b"]), "scale").is_err());
        assert!(one(&args(&["deploy"]), "scale").is_err());
    }

    #[test]
    fn label_arguments_split_into_objects_and_changes() {
        let (objects, changes) = split_changes(&args(&["pod", "web", "a=1", "b-", "pod/x"]));
        assert_eq!(objects, ["pod", "web", "pod/x"]);
        assert_eq!(changes, ["a=1", "b-"]);
    }
}
