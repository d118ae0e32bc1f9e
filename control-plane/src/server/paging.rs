//! List pagination: the continue token, which names where a list goes on and at which
//! version, as Kubernetes' does. Tokens come back from clients, so they are hostile input.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Tokens are a key and a number: anything much longer is not one of ours.
const MAX_TOKEN_CHARS: usize = 4096;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ContinueError {
    #[error("continue: Invalid value: the token is not one this server issued")]
    Malformed,
    #[error(
        "continue: Invalid value: the token belongs to another list (another kind or namespace)"
    )]
    OtherList,
}

impl From<ContinueError> for ApiError {
    fn from(e: ContinueError) -> Self {
        ApiError::InvalidArgument(e.to_string())
    }
}

/// Where a paged list goes on: after `start`, at version `version` (the first page's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContinueToken {
    #[serde(rename = "rv")]
    pub version: u64,
    #[serde(rename = "start")]
    pub after: String,
}

impl ContinueToken {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("a token always encodes"))
    }

    /// Reads a token given to a list whose keys all start with `prefix`.
    pub fn decode(text: &str, prefix: &str) -> Result<ContinueToken, ContinueError> {
        if text.len() > MAX_TOKEN_CHARS {
            return Err(ContinueError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| ContinueError::Malformed)?;
        let token: ContinueToken =
            serde_json::from_slice(&bytes).map_err(|_| ContinueError::Malformed)?;
        if token.version == 0 {
            return Err(ContinueError::Malformed);
        }
        if !token.after.starts_with(prefix) || token.after.len() == prefix.len() {
            return Err(ContinueError::OtherList);
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_reads_back_as_issued() {
        let token = ContinueToken {
            version: 42,
            after: "pods/default/web-1".into(),
        };
        let text = token.encode();
        assert!(!text.contains("pods"), "opaque: {text}");
        assert_eq!(
            ContinueToken::decode(&text, "pods/default/").unwrap(),
            token
        );
        assert_eq!(ContinueToken::decode(&text, "pods/").unwrap(), token);
    }

    #[test]
    fn a_hostile_token_is_refused_naming_continue() {
        let of = |value: serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
        for bad in [
            "not base64 at all!".to_string(),
            URL_SAFE_NO_PAD.encode("not json"),
            of(serde_json::json!({"rv": 0, "start": "pods/default/a"})),
            of(serde_json::json!({"rv": -1, "start": "pods/default/a"})),
            of(serde_json::json!({"start": "pods/default/a"})),
            "A".repeat(MAX_TOKEN_CHARS + 1),
        ] {
            let err = ContinueToken::decode(&bad, "pods/default/").unwrap_err();
            assert_eq!(err, ContinueError::Malformed, "{bad}");
            assert!(err.to_string().starts_with("continue: "), "{err}");
        }
        let other = ContinueToken {
            version: 3,
            after: "nodes//n1".into(),
        }
        .encode();
        assert_eq!(
            ContinueToken::decode(&other, "pods/default/").unwrap_err(),
            ContinueError::OtherList
        );
        let bare_prefix = ContinueToken {
            version: 3,
            after: "pods/default/".into(),
        }
        .encode();
        assert_eq!(
            ContinueToken::decode(&bare_prefix, "pods/default/").unwrap_err(),
            ContinueError::OtherList
        );
    }
}
