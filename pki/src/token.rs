//! The cluster token: one secret line that every member and agent is given (like k3s's
//! `--token`). Everything a member needs to be a certificate authority derives from it, and
//! an agent proves it holds it without sending it (see [`join_proof`]).

use std::fmt;
use std::path::Path;

use ring::hkdf;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The token's version prefix; a later format gets a new one.
const PREFIX: &str = "skiff1.";
/// Random bytes in a token's secret.
const SECRET_LEN: usize = 32;
/// Base32 characters for [`SECRET_LEN`] bytes without padding.
const ENCODED_LEN: usize = 52;

/// HKDF labels: one per purpose, so no derived key can stand in for another.
pub(crate) const INFO_CA: &[u8] = b"skiff cluster ca v1";
pub(crate) const INFO_JOIN: &[u8] = b"skiff join v1";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token file {path}: {message}")]
    File { path: String, message: String },
    #[error("malformed cluster token: {0}")]
    Malformed(&'static str),
    #[error("--token-file is required ({0})")]
    NoFile(&'static str),
}

/// A cluster token. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterToken {
    secret: [u8; SECRET_LEN],
}

impl fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterToken(<redacted>)")
    }
}

/// A fresh token, one line: `skiff1.<52 base32 characters>`.
pub fn generate_token() -> String {
    let mut secret = [0u8; SECRET_LEN];
    fill_random(&mut secret);
    ClusterToken { secret }.to_line()
}

pub(crate) fn fill_random(out: &mut [u8]) {
    // The system RNG failing is not something to carry on from.
    SystemRandom::new()
        .fill(out)
        .expect("the system random number generator failed");
}

/// Lowercase base32 (RFC 4648, no padding): case-insensitive, no ambiguous punctuation.
pub(crate) fn base32(bytes: &[u8]) -> String {
    data_encoding::BASE32_NOPAD
        .encode(bytes)
        .to_ascii_lowercase()
}

pub(crate) fn base32_decode(text: &str) -> Option<Vec<u8>> {
    data_encoding::BASE32_NOPAD
        .decode(text.to_ascii_uppercase().as_bytes())
        .ok()
}

impl ClusterToken {
    /// Parses a token line (surrounding whitespace is ignored).
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(TokenError::Malformed("empty"));
        }
        let Some(encoded) = text.strip_prefix(PREFIX) else {
            return Err(TokenError::Malformed("it does not start with \"skiff1.\""));
        };
        if encoded.len() != ENCODED_LEN {
            return Err(TokenError::Malformed("wrong length"));
        }
        let bytes = base32_decode(encoded)
            .ok_or(TokenError::Malformed("it is not base32 after \"skiff1.\""))?;
        let secret = bytes
            .try_into()
            .map_err(|_| TokenError::Malformed("wrong length"))?;
        Ok(Self { secret })
    }

    /// Reads a token file: readable, non-empty after trimming, one well-formed token. Errors
    /// are one line and name the file, for the daemons to print before exiting.
    pub fn from_file(path: &Path) -> Result<Self, TokenError> {
        let failed = |message: String| TokenError::File {
            path: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| failed(e.to_string()))?;
        if text.trim().is_empty() {
            return Err(failed("is empty".into()));
        }
        Self::parse(&text).map_err(|e| failed(e.to_string()))
    }

    /// The token of a daemon's `--token-file`, which it cannot start without; `hint` says
    /// where the token comes from.
    pub fn from_required_file(path: Option<&Path>, hint: &'static str) -> Result<Self, TokenError> {
        Self::from_file(path.ok_or(TokenError::NoFile(hint))?)
    }

    /// The token as written to a file (and printed by `skiff token generate`).
    pub fn to_line(&self) -> String {
        format!("{PREFIX}{}", base32(&self.secret))
    }

    /// 32 bytes derived from the secret for one purpose (`info`).
    pub(crate) fn derive(&self, info: &[u8]) -> [u8; 32] {
        struct Len32;
        impl hkdf::KeyType for Len32 {
            fn len(&self) -> usize {
                32
            }
        }
        let mut out = [0u8; 32];
        let info = [info];
        hkdf::Salt::new(hkdf::HKDF_SHA256, &[])
            .extract(&self.secret)
            .expand(&info, Len32)
            .and_then(|okm| okm.fill(&mut out))
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }
}

/// What an agent sends with its CSR to show it holds the token without revealing it:
/// HMAC-SHA256 over the CSR's DER under a key derived from the token. It binds the proof to
/// this CSR, so a captured proof is useless for any other key.
pub fn join_proof(token: &ClusterToken, csr_der: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &token.derive(INFO_JOIN));
    hmac::sign(&key, csr_der).as_ref().to_vec()
}

/// Checks a [`join_proof`] in constant time.
pub fn verify_join_proof(token: &ClusterToken, csr_der: &[u8], proof: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &token.derive(INFO_JOIN));
    hmac::verify(&key, csr_der, proof).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_is_one_line_that_parses_back() {
        let line = generate_token();
        assert!(line.starts_with("skiff1."), "{line}");
        assert_eq!(line.len(), "skiff1.".len() + 52);
        assert!(!line.contains('\n'));
        let token = ClusterToken::parse(&format!("  {line}\n")).unwrap();
        assert_eq!(token.to_line(), line);
        assert_ne!(generate_token(), line);
    }

    #[test]
    fn debug_never_shows_the_token() {
        let line = generate_token();
        let token = ClusterToken::parse(&line).unwrap();
        let shown = format!("{token:?}");
        assert!(!shown.contains(&line[7..]), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn token_files_must_exist_be_non_empty_and_well_formed_and_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let missing = ClusterToken::from_file(&path).unwrap_err().to_string();
        assert!(missing.contains(&path.display().to_string()), "{missing}");

        std::fs::write(&path, " \n\n").unwrap();
        let empty = ClusterToken::from_file(&path).unwrap_err().to_string();
        assert!(
            empty.contains("is empty") && empty.contains("token"),
            "{empty}"
        );

        for bad in [
            "hunter2",
            "skiff1.abc",
            &format!("skiff1.{}", "1".repeat(52)),
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = ClusterToken::from_file(&path).unwrap_err().to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }

        let line = generate_token();
        std::fs::write(&path, format!("{line}\n")).unwrap();
        assert_eq!(ClusterToken::from_file(&path).unwrap().to_line(), line);
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_by_token() {
        let a = ClusterToken::parse(&generate_token()).unwrap();
        let b = ClusterToken::parse(&generate_token()).unwrap();
        assert_eq!(a.derive(INFO_CA), a.derive(INFO_CA));
        assert_ne!(a.derive(INFO_CA), a.derive(INFO_JOIN));
        assert_ne!(a.derive(INFO_CA), b.derive(INFO_CA));
    }

    #[test]
    fn a_join_proof_verifies_only_for_its_token_and_its_csr() {
        let a = ClusterToken::parse(&generate_token()).unwrap();
        let b = ClusterToken::parse(&generate_token()).unwrap();
        let proof = join_proof(&a, b"csr bytes");
        assert!(verify_join_proof(&a, b"csr bytes", &proof));
        assert!(!verify_join_proof(&b, b"csr bytes", &proof));
        assert!(!verify_join_proof(&a, b"other csr", &proof));
        assert!(!verify_join_proof(&a, b"csr bytes", &proof[..31]));
    }
}
