//! Image references, parsed and normalized as Docker does: `busybox` is
//! `docker.io/library/busybox:latest`, `registry:5000/x/y:tag` keeps its registry, and
//! `name@sha256:…` pins a digest.
//!
//! Grammar (Docker's distribution/reference):
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path-component [ "/" path-component ]*
//! domain     := host [ ":" port ]          host: DNS labels, or [IPv6]
//! path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! ```
//!
//! The first component is a registry when it contains `.` or `:`, is `localhost`, or has
//! an uppercase letter (which a path component may not); otherwise the image is on Docker
//! Hub, where single-component names live under `library/`.

use std::fmt;
use std::str::FromStr;

use super::ImageError;
use super::digest::{Digest, is_sha256_hex};

/// Docker Hub, as references are normalized.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// The tag of a reference that names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
const LEGACY_DEFAULT_REGISTRY: &str = "index.docker.io";
const OFFICIAL_REPOSITORY_PREFIX: &str = "library/";
const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// A normalized image reference. `Display` gives the full form
/// (`docker.io/library/busybox:latest`), [`Reference::familiar`] the short one (`busybox:latest`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalizes a reference; one without a tag or digest gets `:latest`.
    pub fn parse(input: &str) -> Result<Reference, ImageError> {
        let invalid = |reason: &str| ImageError::InvalidReference {
            reference: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(invalid("empty"));
        }
        if input.trim() != input || input.chars().any(|c| c.is_whitespace()) {
            return Err(invalid("contains whitespace"));
        }
        if is_sha256_hex(input) {
            // As Docker: a bare image id is not a repository name.
            return Err(invalid(
                "a 64-digit hex string is an image id, not a repository name",
            ));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => (rest, Some(parse_digest(input, digest)?)),
            None => (input, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a registry's port.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|reason| invalid(&reason))?;
        }
        if name.is_empty() {
            return Err(invalid("missing repository name"));
        }
        if name.len() > NAME_MAX {
            return Err(invalid(&format!(
                "repository name longer than {NAME_MAX} characters"
            )));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if looks_like_registry(first) => (first, path),
            _ => (DEFAULT_REGISTRY, name),
        };
        validate_registry(registry).map_err(|reason| invalid(&reason))?;
        validate_path(path).map_err(|reason| invalid(&reason))?;
        let registry = if registry == LEGACY_DEFAULT_REGISTRY {
            DEFAULT_REGISTRY
        } else {
            registry
        };
        let repository = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("{OFFICIAL_REPOSITORY_PREFIX}{path}")
        } else {
            path.to_string()
        };
        let full_len = registry.len() + 1 + repository.len();
        if full_len > NAME_MAX {
            return Err(invalid(&format!(
                "repository name longer than {NAME_MAX} characters"
            )));
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_string()),
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// The registry host (and port): `docker.io`, `registry:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry: `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// `docker.io/library/busybox`: registry and repository.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag; `None` only for a digest reference without one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The pinned digest (`@sha256:…`), if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The same name with another tag (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ImageError> {
        validate_tag(tag).map_err(|reason| ImageError::InvalidReference {
            reference: format!("{}:{tag}", self.name()),
            reason,
        })?;
        Ok(Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// The short form Docker shows: `busybox:latest`, `user/app:1`, `registry:5000/x/y:tag`.
    pub fn familiar(&self) -> String {
        let name = if self.registry == DEFAULT_REGISTRY {
            self.repository
                .strip_prefix(OFFICIAL_REPOSITORY_PREFIX)
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        self.with_suffix(name)
    }

    fn with_suffix(&self, mut s: String) -> String {
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            s.push('@');
            s.push_str(&digest.to_string());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.with_suffix(self.name()))
    }
}

impl FromStr for Reference {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Reference, ImageError> {
        Reference::parse(s)
    }
}

fn parse_digest(input: &str, digest: &str) -> Result<Digest, ImageError> {
    Digest::parse(digest).map_err(|e| match e {
        ImageError::InvalidDigest { reason, .. } => ImageError::InvalidReference {
            reference: input.to_string(),
            reason: format!("invalid digest {digest:?}: {reason}"),
        },
        other => other,
    })
}

fn looks_like_registry(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    match chars.next() {
        None => Err("empty tag".into()),
        _ if tag.len() > TAG_MAX => Err(format!("tag longer than {TAG_MAX} characters")),
        Some(first) if !word(first) => Err(format!(
            "invalid tag {tag:?}: must start with a letter, digit or '_'"
        )),
        _ if !chars.all(|c| word(c) || c == '.' || c == '-') => Err(format!(
            "invalid tag {tag:?}: only letters, digits, '_', '.' and '-' are allowed"
        )),
        _ => Ok(()),
    }
}

fn validate_registry(registry: &str) -> Result<(), String> {
    let bad = || Err(format!("invalid registry {registry:?}"));
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        // [IPv6]:port
        let Some((addr, after)) = rest.split_once(']') else {
            return bad();
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return bad();
        }
        match after {
            "" => return Ok(()),
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return bad(),
            },
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(registry), None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return bad();
    }
    if let Some(host) = host {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !host.split('.').all(label_ok) {
            return bad();
        }
    }
    Ok(())
}

fn validate_path(path: &str) -> Result<(), String> {
    for component in path.split('/') {
        if component.is_empty() {
            return Err("empty path component (leading, trailing or double '/')".into());
        }
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(format!("repository name must be lowercase ({component:?})"));
        }
        if !path_component_ok(component) {
            return Err(format!(
                "invalid path component {component:?}: lowercase letters and digits, separated by '.', '_', '__' or dashes"
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*`
fn path_component_ok(component: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let mut chars = component.chars().peekable();
    loop {
        // One run of alphanumerics.
        let mut run = 0;
        while chars.peek().is_some_and(|&c| alnum(c)) {
            chars.next();
            run += 1;
        }
        if run == 0 {
            return false;
        }
        // Then the end, or a separator followed by another run.
        let separator: String = std::iter::from_fn(|| chars.next_if(|&c| !alnum(c))).collect();
        match separator.as_str() {
            "" => return chars.peek().is_none(),
            "." | "_" | "__" => {}
            s if s.chars().all(|c| c == '-') => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalizes_like_docker() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("user/app:v1", "docker.io/user/app:v1"),
            ("registry:5000/x/y:tag", "registry:5000/x/y:tag"),
            ("registry:5000/x/y", "registry:5000/x/y:latest"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:1", "localhost:5000/app:1"),
            ("quay.io/coreos/etcd:v3.4", "quay.io/coreos/etcd:v3.4"),
            ("[::1]:5000/app:1", "[::1]:5000/app:1"),
            ("127.0.0.1:5000/a/b/c", "127.0.0.1:5000/a/b/c:latest"),
            ("a-b/c__d---e/f_g.h", "docker.io/a-b/c__d---e/f_g.h:latest"),
            ("UPPER/app", "UPPER/app:latest"),
            ("app:V_1.2-rc", "docker.io/library/app:V_1.2-rc"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input), want, "{input}");
        }
    }

    #[test]
    fn references_by_digest_keep_the_digest_and_no_tag() {
        let r = Reference::parse(&format!("busybox@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().hex(), HEX);
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/busybox@sha256:{HEX}")
        );
        assert_eq!(r.familiar(), format!("busybox@sha256:{HEX}"));
        let r = Reference::parse(&format!("registry:5000/x:1@sha256:{HEX}")).unwrap();
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.to_string(), format!("registry:5000/x:1@sha256:{HEX}"));
    }

    #[test]
    fn parts_and_familiar_form() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "library/busybox");
        assert_eq!(r.name(), "docker.io/library/busybox");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(
            Reference::parse("user/app:1").unwrap().familiar(),
            "user/app:1"
        );
        assert_eq!(
            Reference::parse("registry:5000/x/y:t").unwrap().familiar(),
            "registry:5000/x/y:t"
        );
        assert_eq!(
            r.with_tag("2").unwrap().to_string(),
            "docker.io/library/busybox:2"
        );
        assert!(r.with_tag("-bad").is_err());
        // Round trip: the normalized form parses to itself.
        for s in ["busybox", "registry:5000/x/y:tag", "[::1]:5000/app:1"] {
            let n = norm(s);
            assert_eq!(norm(&n), n);
        }
    }

    #[test]
    fn invalid_ones_say_why() {
        let cases = [
            ("", "empty"),
            (" busybox", "whitespace"),
            ("busy box", "whitespace"),
            ("Busybox", "lowercase"),
            ("docker.io/Library/busybox", "lowercase"),
            ("busybox:", "empty tag"),
            ("busybox:-x", "must start"),
            ("busybox:a+b", "only letters"),
            ("busybox@sha256:abc", "invalid digest"),
            ("busybox@md5", "invalid digest"),
            ("/busybox", "empty path component"),
            ("busybox/", "empty path component"),
            ("a//b", "empty path component"),
            ("a/b_-c", "invalid path component"),
            ("a/.b", "invalid path component"),
            ("a/b.", "invalid path component"),
            ("a/b___c", "invalid path component"),
            ("reg:port/x", "invalid registry"),
            ("-reg.io/x", "invalid registry"),
            ("[zz]:5000/x", "invalid registry"),
            (":tag", "missing repository"),
            (HEX, "image id"),
        ];
        for (input, want) in cases {
            let err = Reference::parse(input).unwrap_err().to_string();
            assert!(err.contains(want), "{input:?}: {err}");
            assert!(err.starts_with("invalid image reference"), "{err}");
        }
        let long_tag = format!("busybox:{}", "a".repeat(129));
        assert!(Reference::parse(&long_tag).is_err());
        let long_name = format!("x/{}", "a".repeat(260));
        assert!(
            Reference::parse(&long_name)
                .unwrap_err()
                .to_string()
                .contains("longer")
        );
        let err = Reference::parse("busybox@sha512:abcd").unwrap_err();
        assert!(matches!(err, ImageError::Unsupported(_)), "{err}");
    }
}
