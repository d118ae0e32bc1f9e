//! Skiff's identity and access, as pure pieces the daemons, the SDK and the CLI share:
//!
//! - [`token`]: the cluster token, keys derived from it, and the agent's join proof;
//! - [`ca`]: the cluster CA, derived from the token, and the certificates it signs;
//! - [`identity`]: who a certificate speaks for (Kubernetes' CN/O encoding);
//! - [`bearer`]: bearer tokens for people, stored only as hashes;
//! - [`authz`]: roles (view/edit/admin/cluster-admin), kubectl's forbidden wording, and
//!   NodeRestriction;
//! - [`config`]: the client config file (`admin.conf`, `node.conf`, `~/.skiff/config`);
//! - [`tls`]: rustls server and client configs, serving tonic over them, and channels.
//!
//! # One CA, and an identity check where only members may connect
//!
//! Every certificate chains to one cluster CA. Where only members may connect (the agent's
//! port), the server's client-certificate verifier first verifies the chain with rustls' own
//! WebPKI verifier and then requires the subject to read as [`Identity::Member`]; anything
//! else fails the TLS handshake. A second, members-only CA was considered and not taken:
//!
//! - it guards no secret: both CA keys would derive from the same token, so whoever can mint
//!   one can mint the other;
//! - the control plane serves the public API and Raft on one port, so the Raft methods need
//!   a per-request identity check after the handshake either way ([`Identity::Member`]
//!   from the peer certificate, the same rule as the verifier's);
//! - a member's certificate is also a server certificate that every client verifies; with two
//!   CAs, clients would trust both (and the split would mean nothing for servers) or each
//!   member would carry two certificates;
//! - one CA means one `ca` in every config file, one fingerprint, one [`ClusterToken::verify_ca`].
//!
//! What a separate CA would have bought, that no signing bug can mint a member certificate,
//! is kept by construction: every signing path builds the subject from a typed [`Identity`]
//! ([`sign_node_csr`] takes only the CSR's public key, and [`issue_client_cert`] refuses
//! member identities), and [`identity_from_cert`] refuses subjects that mix reserved names
//! and groups. Clients can demand the same of servers ([`tls::ServerCheck::Member`]), so an
//! agent's certificate for the same IP cannot stand in for a member.
//!
//! # Wiring it in (not done here)
//!
//! - Daemons: `ClusterToken::from_file` (print the error, exit 2); members call
//!   [`issue_member_cert`] once and keep cert and key in their data dir; serve with
//!   [`tls::server_config`] (`Optional` on the control plane, `RequiredMembers` on the agent)
//!   and [`tls::serve_tls`] / [`tls::tls_incoming`]; per request, [`tls::peer_identity`] or
//!   the bearer token → [`Subject`] → [`authorize`] (and [`node_may`] for nodes' writes).
//! - Agents: [`NodeKey::generate`], send `csr_pem` with [`join_proof`] over its DER; check the
//!   returned CA with [`ClusterToken::verify_ca`]; keep all of it in `node.conf`.
//! - CLI: `cli/src/endpoints.rs`'s `CliConfig`/`ClusterEntry` become [`config::SkiffConfig`]
//!   / [`config::ClusterEntry`] (a superset: same fields, same YAML), `read_config` becomes
//!   [`config::load`] and `write_config` [`config::save`] (which adds 0600 and the atomic
//!   write); channels come from [`config::ClusterEntry::tls_config`] and [`tls::connect`].

pub mod authz;
pub mod bearer;
pub mod ca;
pub mod config;
pub mod identity;
pub mod tls;
pub mod token;

pub use authz::{
    Attributes, Escalation, Forbidden, NodeForbidden, NodeTarget, Role, Subject, Verb, authorize,
    may_grant, node_may,
};
pub use bearer::{BearerError, BearerToken, TokenRecord, parse_bearer, token_hash, verify_bearer};
pub use ca::{
    CaError, CertifiedKey, NodeKey, csr_der, csr_key_fingerprint, fingerprint, host_of,
    issue_client_cert, issue_member_cert, sign_node_csr,
};
pub use identity::{Identity, IdentityError, identity_from_cert};
pub use token::{ClusterToken, TokenError, generate_token, join_proof, verify_join_proof};
