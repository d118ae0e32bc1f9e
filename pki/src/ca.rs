//! The cluster CA and the certificates it signs.
//!
//! The CA's key is an Ed25519 key whose seed is HKDF-SHA256(token, "skiff cluster ca v1"),
//! and its certificate is built from fixed fields only, so every member that holds the token
//! produces the same CA certificate byte for byte (Ed25519 signatures are deterministic):
//! static bootstrap needs no member to hold a secret the others lack. A joiner checks the
//! CA it is handed against its own token ([`ClusterToken::verify_ca`]).
//!
//! Leaf keys are ECDSA P-256, generated where they are used; only agents' keys need a CSR,
//! since members (and the bootstrapping member, for `admin.conf`) derive the CA key.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ED25519, SanType,
    SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use x509_parser::prelude::*;

use crate::identity::{Identity, IdentityError, identity_from_names};
use crate::token::{ClusterToken, INFO_CA, fill_random};

/// The CA certificate's fixed fields: changing any of them changes every cluster's CA.
const CA_COMMON_NAME: &str = "skiff-ca";
const CA_SERIAL: u8 = 1;
const CA_NOT_BEFORE: (i32, u8, u8) = (2025, 1, 1);
const CA_NOT_AFTER: (i32, u8, u8) = (2125, 1, 1);
/// Leaf certificates live this long; there is no rotation yet, so long enough not to
/// matter, and a day of slack before "now" for skewed clocks.
const LEAF_DAYS: i64 = 10 * 365;
const LEAF_BACKDATE_DAYS: i64 = 1;

/// PKCS#8 v1 wrapping of a raw Ed25519 seed (RFC 8410): this prefix, then the 32 bytes.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the CA does not belong to this cluster token (fingerprint {0})")]
    WrongCa(String),
    #[error("not a PEM or DER certificate")]
    NotACertificate,
    #[error("invalid certificate signing request: {0}")]
    Csr(String),
    #[error("the CSR asks for {got:?}, expected {want:?}")]
    WrongNode { got: String, want: String },
    #[error("invalid identity: {0}")]
    Identity(#[from] IdentityError),
    #[error("a certificate carries at most one group, got {0}")]
    TooManyGroups(usize),
    #[error("invalid host {0:?}")]
    Host(String),
}

/// A certificate and the private key it was issued for, both PEM. The key is meant for
/// exactly one file: the config or data dir of whoever uses it.
#[derive(Clone, PartialEq, Eq)]
pub struct CertifiedKey {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let (y, m, d) = CA_NOT_BEFORE;
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = CA_NOT_AFTER;
    params.not_after = rcgen::date_time_ymd(y, m, d);
    params.serial_number = Some(SerialNumber::from_slice(&[CA_SERIAL]));
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = name;
    // No intermediates: the CA signs leaves only.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn ca_key(token: &ClusterToken) -> KeyPair {
    let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
    pkcs8.extend_from_slice(&token.derive(INFO_CA));
    KeyPair::from_pkcs8_der_and_sign_algo(&PrivatePkcs8KeyDer::from(pkcs8), &PKCS_ED25519)
        .expect("a 32-byte seed is always a valid Ed25519 key")
}

fn issuer(token: &ClusterToken) -> Issuer<'static, KeyPair> {
    Issuer::new(ca_params(), ca_key(token))
}

/// sha256 of a certificate's DER, lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// The DER of the first certificate in `pem_or_der` (PEM is recognised by its header).
pub fn certificate_der(pem_or_der: &[u8]) -> Result<Vec<u8>, CaError> {
    use rustls::pki_types::pem::PemObject;
    // DER starts with a SEQUENCE tag; PEM with "-----" (or whitespace).
    if pem_or_der.first() == Some(&0x30) {
        return Ok(pem_or_der.to_vec());
    }
    CertificateDer::from_pem_slice(pem_or_der)
        .map(|der| der.to_vec())
        .map_err(|_| CaError::NotACertificate)
}

impl ClusterToken {
    /// The cluster CA certificate (DER); the same on every member.
    pub fn ca_cert_der(&self) -> Vec<u8> {
        ca_params()
            .self_signed(&ca_key(self))
            .expect("the fixed CA parameters are valid")
            .der()
            .to_vec()
    }

    /// The cluster CA certificate, PEM.
    pub fn ca_cert_pem(&self) -> String {
        to_pem("CERTIFICATE", &self.ca_cert_der())
    }

    /// sha256 of the CA certificate's DER, hex: what a joiner can compare.
    pub fn ca_fingerprint(&self) -> String {
        fingerprint(&self.ca_cert_der())
    }

    /// Checks that a CA handed over the network is this token's CA, so a man in the middle
    /// cannot substitute one of its own.
    pub fn verify_ca(&self, pem_or_der: &[u8]) -> Result<(), CaError> {
        let given = certificate_der(pem_or_der)?;
        let want = self.ca_cert_der();
        // Public data, but compare without branching on content anyway.
        if given.len() == want.len()
            && bool::from(subtle::ConstantTimeEq::ct_eq(
                given.as_slice(),
                want.as_slice(),
            ))
        {
            Ok(())
        } else {
            Err(CaError::WrongCa(fingerprint(&given)))
        }
    }
}

pub(crate) fn to_pem(tag: &str, der: &[u8]) -> String {
    use data_encoding::BASE64;
    let body = BASE64.encode(der);
    let mut out = format!("-----BEGIN {tag}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ascii"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {tag}-----\n"));
    out
}

/// The host part of `HOST:PORT`, `[V6]:PORT`, a bare IP or a bare name.
pub fn host_of(endpoint: &str) -> Result<String, CaError> {
    let endpoint = endpoint.trim();
    let bad = || CaError::Host(endpoint.to_string());
    if endpoint.parse::<IpAddr>().is_ok() {
        return Ok(endpoint.to_string());
    }
    let host = if let Some(rest) = endpoint.strip_prefix('[') {
        let (host, tail) = rest.split_once(']').ok_or_else(bad)?;
        if !(tail.is_empty() || tail.strip_prefix(':').is_some_and(is_port)) {
            return Err(bad());
        }
        host.parse::<IpAddr>().map_err(|_| bad())?;
        host
    } else {
        match endpoint.rsplit_once(':') {
            Some((host, port)) if is_port(port) => host,
            Some(_) => return Err(bad()),
            None => endpoint,
        }
    };
    if host.is_empty() || host.contains(['/', ' ', '[', ']']) {
        return Err(bad());
    }
    Ok(host.to_string())
}

fn is_port(port: &str) -> bool {
    port.parse::<u16>().is_ok()
}

fn san(host: &str) -> Result<SanType, CaError> {
    Ok(match host.parse::<IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(
            host.to_string()
                .try_into()
                .map_err(|_| CaError::Host(host.to_string()))?,
        ),
    })
}

fn subject(identity: &Identity) -> Result<DistinguishedName, CaError> {
    identity.validate()?;
    let groups = identity.groups();
    // rcgen keeps one value per attribute type; no Skiff identity needs more than one group.
    if groups.len() > 1 {
        return Err(CaError::TooManyGroups(groups.len()));
    }
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, identity.user_name());
    if let Some(group) = groups.first() {
        name.push(DnType::OrganizationName, group.as_str());
    }
    Ok(name)
}

fn leaf_params(
    identity: &Identity,
    sans: Vec<SanType>,
    server: bool,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    let now = ::time::OffsetDateTime::now_utc();
    params.not_before = now - ::time::Duration::days(LEAF_BACKDATE_DAYS);
    params.not_after = now + ::time::Duration::days(LEAF_DAYS);
    let mut serial = [0u8; 16];
    fill_random(&mut serial);
    // A positive, full-length serial.
    serial[0] = (serial[0] & 0x7f) | 0x40;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.distinguished_name = subject(identity)?;
    params.subject_alt_names = sans;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if server {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn new_leaf_key() -> Result<KeyPair, CaError> {
    Ok(KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?)
}

/// A member's certificate (server and client use) with a fresh key. `hosts` are the names
/// and addresses it is reached by; `HOST:PORT` strings are accepted and the port dropped.
pub fn issue_member_cert(
    token: &ClusterToken,
    id: u64,
    hosts: &[String],
) -> Result<CertifiedKey, CaError> {
    let mut sans = Vec::new();
    for host in hosts {
        let san = san(&host_of(host)?)?;
        if !sans.contains(&san) {
            sans.push(san);
        }
    }
    let key = new_leaf_key()?;
    let cert =
        leaf_params(&Identity::Member { id }, sans, true)?.signed_by(&key, &issuer(token))?;
    Ok(CertifiedKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A client-only certificate for `identity` with a fresh key (e.g. `admin.conf`'s
/// [`Identity::admin`]). Member identities come from [`issue_member_cert`], which also
/// serves; here they are refused so a client cert never doubles as a member's.
pub fn issue_client_cert(
    token: &ClusterToken,
    identity: &Identity,
) -> Result<CertifiedKey, CaError> {
    if let Identity::Member { .. } = identity {
        return Err(CaError::Identity(IdentityError::InvalidName(
            identity.user_name(),
        )));
    }
    let key = new_leaf_key()?;
    let cert = leaf_params(identity, Vec::new(), false)?.signed_by(&key, &issuer(token))?;
    Ok(CertifiedKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// An agent's own key pair; the private half stays in the agent's data dir.
pub struct NodeKey {
    key: KeyPair,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeKey(<redacted>)")
    }
}

impl NodeKey {
    pub fn generate() -> Result<Self, CaError> {
        Ok(Self {
            key: new_leaf_key()?,
        })
    }

    /// Reads a key written by [`NodeKey::key_pem`].
    pub fn from_pem(pem: &str) -> Result<Self, CaError> {
        Ok(Self {
            key: KeyPair::from_pem(pem)?,
        })
    }

    /// The private key, PEM, for the agent's own `node.conf` only.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A CSR for `CN=system:node:<name>, O=system:nodes`, PEM.
    pub fn csr_pem(&self, node_name: &str) -> Result<String, CaError> {
        let identity = Identity::Node {
            name: node_name.to_string(),
        };
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(&identity)?;
        Ok(params.serialize_request(&self.key)?.pem()?)
    }
}

/// A member signs an agent's CSR, after [`crate::verify_join_proof`] accepted its proof.
/// The CSR only contributes its public key and must name `system:node:<expected_node_name>`;
/// the subject, SANs (`node_ip_sans`, decided by the member) and usages are the member's.
/// Returns the certificate, PEM.
pub fn sign_node_csr(
    token: &ClusterToken,
    csr_pem: &str,
    expected_node_name: &str,
    node_ip_sans: &[IpAddr],
) -> Result<String, CaError> {
    // Verifies the CSR's self-signature: the requester holds the key.
    let csr = CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| CaError::Csr(e.to_string()))?;
    let want = Identity::Node {
        name: expected_node_name.to_string(),
    };
    let got = csr_identity(csr_pem)?;
    if got != Some(want.clone()) {
        return Err(CaError::WrongNode {
            got: got.map(|i| i.user_name()).unwrap_or_default(),
            want: want.user_name(),
        });
    }
    let sans = node_ip_sans
        .iter()
        .map(|ip| SanType::IpAddress(*ip))
        .collect();
    let cert = leaf_params(&want, sans, true)?.signed_by(&csr.public_key, &issuer(token))?;
    Ok(cert.pem())
}

/// The identity a CSR's subject asks for, if it reads as one.
fn csr_identity(csr_pem: &str) -> Result<Option<Identity>, CaError> {
    use rustls::pki_types::CertificateSigningRequestDer;
    use rustls::pki_types::pem::PemObject;
    let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
        .map_err(|e| CaError::Csr(e.to_string()))?;
    let (_, csr) = X509CertificationRequest::from_der(der.as_ref())
        .map_err(|e| CaError::Csr(e.to_string()))?;
    let subject = &csr.certification_request_info.subject;
    let strings = |attrs: Vec<&AttributeTypeAndValue>| {
        attrs
            .into_iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| CaError::Csr("subject attribute is not a string".into()))
    };
    let cns = strings(subject.iter_common_name().collect())?;
    let groups = strings(subject.iter_organization().collect())?;
    let [cn] = cns.as_slice() else {
        return Ok(None);
    };
    Ok(identity_from_names(cn, groups).ok())
}

/// sha256 (lowercase hex) of a CSR's public key (its SubjectPublicKeyInfo DER): what a
/// member records to tie a node name to the first key that claimed it.
pub fn csr_key_fingerprint(csr_pem: &str) -> Result<String, CaError> {
    let der = csr_der(csr_pem)?;
    let (_, csr) =
        X509CertificationRequest::from_der(&der).map_err(|e| CaError::Csr(e.to_string()))?;
    Ok(fingerprint(csr.certification_request_info.subject_pki.raw))
}

/// The DER of a CSR in PEM (what [`crate::join_proof`] covers).
pub fn csr_der(csr_pem: &str) -> Result<Vec<u8>, CaError> {
    use rustls::pki_types::CertificateSigningRequestDer;
    use rustls::pki_types::pem::PemObject;
    CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
        .map(|der| der.as_ref().to_vec())
        .map_err(|e| CaError::Csr(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::identity_from_cert;
    use crate::token::generate_token;

    fn token() -> ClusterToken {
        ClusterToken::parse(&generate_token()).unwrap()
    }

    fn der_of(pem: &str) -> Vec<u8> {
        certificate_der(pem.as_bytes()).unwrap()
    }

    #[test]
    fn every_member_derives_a_byte_identical_ca_from_the_same_token() {
        let line = generate_token();
        let a = ClusterToken::parse(&line).unwrap();
        let b = ClusterToken::parse(&line).unwrap();
        assert_eq!(a.ca_cert_der(), b.ca_cert_der());
        assert_eq!(a.ca_cert_pem(), b.ca_cert_pem());
        assert_eq!(a.ca_fingerprint(), b.ca_fingerprint());
        assert_eq!(a.ca_fingerprint().len(), 64);
        assert_ne!(a.ca_cert_der(), token().ca_cert_der());
    }

    #[test]
    fn the_ca_is_a_ca_named_skiff_ca_with_fixed_fields() {
        let der = token().ca_cert_der();
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(cert.subject().to_string(), "CN=skiff-ca");
        assert_eq!(cert.issuer().to_string(), "CN=skiff-ca");
        assert!(cert.is_ca());
        assert_eq!(cert.raw_serial(), &[1]);
        let usage = cert.key_usage().unwrap().unwrap().value;
        assert!(usage.key_cert_sign());
        assert_eq!(cert.validity().not_before.to_datetime().year(), 2025);
        assert_eq!(cert.validity().not_after.to_datetime().year(), 2125);
    }

    #[test]
    fn verify_ca_accepts_the_tokens_ca_in_pem_or_der_and_refuses_another() {
        let t = token();
        t.verify_ca(t.ca_cert_pem().as_bytes()).unwrap();
        t.verify_ca(&t.ca_cert_der()).unwrap();
        let other = token();
        let err = t.verify_ca(other.ca_cert_pem().as_bytes()).unwrap_err();
        assert!(err.to_string().contains(&other.ca_fingerprint()), "{err}");
        assert!(t.verify_ca(b"garbage").is_err());
    }

    #[test]
    fn member_certs_carry_the_member_identity_and_the_hosts_without_ports() {
        let t = token();
        let issued = issue_member_cert(
            &t,
            7,
            &[
                "10.0.0.2:7000".into(),
                "cp-1".into(),
                "[::1]:7000".into(),
                "cp-1:7000".into(),
            ],
        )
        .unwrap();
        let der = der_of(&issued.cert_pem);
        assert_eq!(
            identity_from_cert(&der).unwrap(),
            Identity::Member { id: 7 }
        );
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let sans = cert.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = sans
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(issued.key_pem.contains("PRIVATE KEY"));
        assert!(!format!("{issued:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn client_certs_carry_their_identity_and_refuse_member_identities() {
        let t = token();
        let issued = issue_client_cert(&t, &Identity::admin()).unwrap();
        let der = der_of(&issued.cert_pem);
        assert_eq!(identity_from_cert(&der).unwrap(), Identity::admin());
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(issue_client_cert(&t, &Identity::Member { id: 1 }).is_err());
        let node = Identity::Node { name: "w1".into() };
        let der = der_of(&issue_client_cert(&t, &node).unwrap().cert_pem);
        assert_eq!(identity_from_cert(&der).unwrap(), node);
    }

    #[test]
    fn a_node_csr_is_signed_with_the_members_sans_and_only_for_the_expected_name() {
        let t = token();
        let key = NodeKey::generate().unwrap();
        let csr = key.csr_pem("w1").unwrap();
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        let cert_pem = sign_node_csr(&t, &csr, "w1", &[ip]).unwrap();
        let der = der_of(&cert_pem);
        assert_eq!(
            identity_from_cert(&der).unwrap(),
            Identity::Node { name: "w1".into() }
        );
        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        // The certificate is for the agent's own key.
        let spki = KeyPair::from_pem(&key.key_pem()).unwrap();
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            spki.public_key_raw()
        );

        let err = sign_node_csr(&t, &csr, "w2", &[ip])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("system:node:w1") && err.contains("system:node:w2"),
            "{err}"
        );
        assert!(sign_node_csr(&t, "not a csr", "w1", &[]).is_err());
    }

    #[test]
    fn a_csr_asking_for_a_member_or_user_identity_is_refused() {
        let t = token();
        let key = KeyPair::generate().unwrap();
        for (cn, o) in [
            ("skiff:member:1", Some("skiff:members")),
            ("admin", Some("system:masters")),
            ("system:node:w1", None),
        ] {
            let mut params = CertificateParams::default();
            let mut name = DistinguishedName::new();
            name.push(DnType::CommonName, cn);
            if let Some(o) = o {
                name.push(DnType::OrganizationName, o);
            }
            params.distinguished_name = name;
            let csr = params.serialize_request(&key).unwrap().pem().unwrap();
            assert!(sign_node_csr(&t, &csr, "w1", &[]).is_err(), "{cn}");
        }
    }

    #[test]
    fn node_keys_round_trip_through_pem_and_csr_der_is_what_the_proof_covers() {
        let key = NodeKey::generate().unwrap();
        let again = NodeKey::from_pem(&key.key_pem()).unwrap();
        assert_eq!(key.key_pem(), again.key_pem());
        assert!(!format!("{key:?}").contains("PRIVATE"));
        let csr = key.csr_pem("w1").unwrap();
        let t = token();
        let der = csr_der(&csr).unwrap();
        assert!(crate::token::verify_join_proof(
            &t,
            &der,
            &crate::token::join_proof(&t, &der)
        ));
    }

    #[test]
    fn host_of_strips_ports_and_keeps_bare_hosts() {
        let cases = [
            ("10.0.0.1:7000", "10.0.0.1"),
            ("10.0.0.1", "10.0.0.1"),
            ("[::1]:7000", "::1"),
            ("[fe80::1]", "fe80::1"),
            ("::1", "::1"),
            ("cp-1.example:7000", "cp-1.example"),
            ("localhost", "localhost"),
        ];
        for (given, want) in cases {
            assert_eq!(host_of(given).unwrap(), want, "{given}");
        }
        for bad in ["", ":7000", "host:port", "[::1", "[nothost]:1", "a b:1"] {
            assert!(host_of(bad).is_err(), "{bad}");
        }
    }
}
