//! Bearer tokens for people: `skt.<name>.<secret>`, printed once by `skiff token create`.
//! The replicated state keeps only [`token_hash`] of the whole token, in a [`TokenRecord`],
//! and checks a presented token against it in constant time.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::authz::Role;
use crate::token::{base32, fill_random};

const PREFIX: &str = "skt";
const SECRET_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BearerError {
    #[error("invalid token name {0:?}: use 1-63 lowercase letters, digits and '-'")]
    InvalidName(String),
    #[error("malformed bearer token")]
    Malformed,
    #[error("bearer token does not match")]
    Mismatch,
    #[error("bearer token {name:?} expired at {at}")]
    Expired { name: String, at: String },
    #[error("invalid expiry {0:?}: want an RFC 3339 time")]
    InvalidExpiry(String),
}

/// A freshly made bearer token. `Debug` shows only the name.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken {
    name: String,
    token: String,
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BearerToken({:?}, <redacted>)", self.name)
    }
}

/// Token names: a DNS label, so they never contain the `.` that separates the parts.
pub fn validate_name(name: &str) -> Result<(), BearerError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(BearerError::InvalidName(name.to_string()))
    }
}

impl BearerToken {
    pub fn generate(name: &str) -> Result<Self, BearerError> {
        validate_name(name)?;
        let mut secret = [0u8; SECRET_LEN];
        fill_random(&mut secret);
        Ok(Self {
            name: name.to_string(),
            token: format!("{PREFIX}.{name}.{}", base32(&secret)),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The token to print once and never store.
    pub fn secret(&self) -> &str {
        &self.token
    }

    /// What the replicated state keeps.
    pub fn hash(&self) -> String {
        token_hash(&self.token)
    }
}

/// sha256 of the whole token string, hex. The token carries 256 random bits, so a plain
/// hash is enough (no salt or slow hash needed, unlike passwords).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Splits `skt.<name>.<secret>` (surrounding whitespace ignored) into name and secret.
pub fn parse_bearer(token: &str) -> Result<(String, String), BearerError> {
    let mut parts = token.trim().splitn(3, '.');
    let (Some(PREFIX), Some(name), Some(secret)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(BearerError::Malformed);
    };
    validate_name(name).map_err(|_| BearerError::Malformed)?;
    if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(BearerError::Malformed);
    }
    Ok((name.to_string(), secret.to_string()))
}

/// Whether `token` hashes to `hash`, compared in constant time.
pub fn verify_bearer(token: &str, hash: &str) -> bool {
    let presented = token_hash(token.trim());
    presented.len() == hash.len() && bool::from(presented.as_bytes().ct_eq(hash.as_bytes()))
}

/// A bearer token as the control plane stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenRecord {
    pub name: String,
    pub role: Role,
    /// Confined to this namespace, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// RFC 3339; never expires if unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// [`token_hash`] of the token.
    pub hash: String,
    /// RFC 3339, set by the control plane that made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

impl TokenRecord {
    /// The record for a new token.
    pub fn new(
        token: &BearerToken,
        role: Role,
        namespace: Option<String>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            name: token.name.clone(),
            role,
            namespace,
            expires_at: expires_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            hash: token.hash(),
            created_at: None,
        }
    }

    /// Checks a presented token against this record at `now`: its name, its hash (in
    /// constant time) and the expiry.
    pub fn authenticate(&self, token: &str, now: DateTime<Utc>) -> Result<(), BearerError> {
        let (name, _) = parse_bearer(token)?;
        if name != self.name || !verify_bearer(token, &self.hash) {
            return Err(BearerError::Mismatch);
        }
        if let Some(at) = &self.expires_at {
            let expiry = DateTime::parse_from_rfc3339(at)
                .map_err(|_| BearerError::InvalidExpiry(at.clone()))?;
            if now >= expiry {
                return Err(BearerError::Expired {
                    name: name.clone(),
                    at: at.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_names_itself_and_parses_back() {
        let token = BearerToken::generate("ci-bot").unwrap();
        assert!(
            token.secret().starts_with("skt.ci-bot."),
            "{}",
            token.secret()
        );
        let (name, secret) = parse_bearer(token.secret()).unwrap();
        assert_eq!(name, "ci-bot");
        assert_eq!(secret.len(), 52);
        assert_ne!(BearerToken::generate("ci-bot").unwrap(), token);
        assert!(!format!("{token:?}").contains(&secret));
    }

    #[test]
    fn token_names_are_dns_labels() {
        for bad in ["", "Alice", "a.b", "-a", "a-", "a b", &"a".repeat(64)] {
            assert!(BearerToken::generate(bad).is_err(), "{bad:?}");
        }
        BearerToken::generate("a").unwrap();
    }

    #[test]
    fn malformed_bearer_tokens_are_refused() {
        for bad in [
            "",
            "skt",
            "skt.alice",
            "skt.alice.",
            "xyz.alice.abc",
            "skt.Alice.abc",
            "skt.alice.a-b",
        ] {
            assert_eq!(parse_bearer(bad), Err(BearerError::Malformed), "{bad:?}");
        }
    }

    #[test]
    fn only_the_hash_is_stored_and_the_token_verifies_against_it() {
        let token = BearerToken::generate("viewer").unwrap();
        let record = TokenRecord::new(&token, Role::View, Some("default".into()), None);
        assert_eq!(record.hash, token_hash(token.secret()));
        assert_eq!(record.hash.len(), 64);
        let json = serde_json::to_string(&record).unwrap();
        assert!(!json.contains(parse_bearer(token.secret()).unwrap().1.as_str()));
        assert_eq!(
            json,
            format!(
                r#"{{"name":"viewer","role":"view","namespace":"default","hash":"{}"}}"#,
                record.hash
            )
        );
        assert_eq!(serde_json::from_str::<TokenRecord>(&json).unwrap(), record);

        let now = Utc::now();
        record.authenticate(token.secret(), now).unwrap();
        let made_up = BearerToken::generate("viewer").unwrap();
        assert_eq!(
            record.authenticate(made_up.secret(), now),
            Err(BearerError::Mismatch)
        );
        let other_name = format!("skt.other.{}", parse_bearer(token.secret()).unwrap().1);
        assert_eq!(
            record.authenticate(&other_name, now),
            Err(BearerError::Mismatch)
        );
        assert_eq!(
            record.authenticate("nonsense", now),
            Err(BearerError::Malformed)
        );
    }

    #[test]
    fn an_expired_token_is_refused_from_its_expiry_on() {
        let token = BearerToken::generate("temp").unwrap();
        let at = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let record = TokenRecord::new(&token, Role::Edit, None, Some(at));
        assert_eq!(record.expires_at.as_deref(), Some("2030-01-01T00:00:00Z"));
        record
            .authenticate(token.secret(), at - chrono::Duration::seconds(1))
            .unwrap();
        let err = record.authenticate(token.secret(), at).unwrap_err();
        assert!(matches!(err, BearerError::Expired { .. }), "{err}");
        let broken = TokenRecord {
            expires_at: Some("tomorrow".into()),
            ..record
        };
        assert!(matches!(
            broken.authenticate(token.secret(), at),
            Err(BearerError::InvalidExpiry(_))
        ));
    }
}
