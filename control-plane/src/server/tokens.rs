//! Bearer tokens for people: `skiff token create|ls|rm`. A token is a system record
//! `token/<name>` holding its [`TokenRecord`] (role, namespace, expiry and the hash of the
//! secret, never the secret). Names are unique across the cluster: the token names itself.

use chrono::{SecondsFormat, Utc};
use skiff_api::Kind;
use skiff_api::proto::{
    CreateTokenRequest, CreateTokenResponse, DeleteTokenRequest, ListTokensRequest,
    ListTokensResponse, TokenInfo,
};
use skiff_pki::{Attributes, BearerToken, NodeTarget, Role, Subject, TokenRecord, Verb, may_grant};
use tonic::Status;

use super::auth::check;
use crate::error::ApiError;
use crate::raft_node::ControlPlane;
use crate::raft_types::Command;

/// Where bearer tokens live among the system records: `token/<name>`.
const TOKEN_PREFIX: &str = "token/";

fn token_key(name: &str) -> String {
    format!("{TOKEN_PREFIX}{name}")
}

/// The longest `--ttl` taken: a hundred years is "never" in all but name.
const MAX_TTL_SECONDS: u64 = 100 * 365 * 24 * 3600;

fn attributes(verb: Verb, namespace: Option<&str>, name: Option<&str>) -> Attributes {
    let mut attributes = Attributes::new(verb, "tokens");
    if let Some(ns) = namespace {
        attributes = attributes.namespace(ns);
    }
    if let Some(name) = name {
        attributes = attributes.name(name);
    }
    attributes
}

/// Whether `subject` may do `verb` on tokens there (no node may: no object to look up).
fn allowed(
    subject: &Subject,
    verb: Verb,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<(), Status> {
    check(subject, &attributes(verb, namespace, name), || {
        Ok(NodeTarget::None)
    })
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn info(record: &TokenRecord) -> TokenInfo {
    TokenInfo {
        name: record.name.clone(),
        role: record.role.to_string(),
        namespace: record.namespace.clone().unwrap_or_default(),
        expires_at: record.expires_at.clone().unwrap_or_default(),
        created_at: record.created_at.clone().unwrap_or_default(),
    }
}

/// The stored record of token `name`, after a barrier (so a token made or removed before
/// this call is seen as such).
pub async fn stored(node: &ControlPlane, name: &str) -> Result<Option<TokenRecord>, Status> {
    node.read_barrier().await?;
    let bytes = node
        .shared
        .table
        .read()
        .expect("table lock")
        .system(&token_key(name))
        .map(<[u8]>::to_vec);
    bytes
        .map(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| Status::internal(format!("stored token {name:?} is unreadable: {e}")))
        })
        .transpose()
}

pub async fn create(
    node: &ControlPlane,
    subject: &Subject,
    request: CreateTokenRequest,
) -> Result<CreateTokenResponse, Status> {
    let CreateTokenRequest {
        name,
        role,
        namespace,
        ttl_seconds,
    } = request;
    let token =
        BearerToken::generate(&name).map_err(|e| Status::invalid_argument(format!("name: {e}")))?;
    let role: Role = role
        .parse()
        .map_err(|e| Status::invalid_argument(format!("role: {e}")))?;
    let namespace = non_empty(&namespace);
    allowed(subject, Verb::Create, namespace, Some(&name))?;
    may_grant(subject, &name, role, namespace)
        .map_err(|e| Status::permission_denied(e.to_string()))?;
    if ttl_seconds > MAX_TTL_SECONDS {
        return Err(Status::invalid_argument(format!(
            "ttl: Invalid value: {ttl_seconds}: must be at most {MAX_TTL_SECONDS} seconds"
        )));
    }
    if let Some(ns) = namespace {
        node.read_barrier().await?;
        let exists = node
            .shared
            .table
            .read()
            .expect("table lock")
            .get(Kind::Namespace, "", ns)
            .is_some();
        if !exists {
            return Err(ApiError::NotFound(format!("namespaces \"{ns}\" not found")).into());
        }
    }
    let now = Utc::now();
    let expires_at = (ttl_seconds > 0).then(|| now + chrono::Duration::seconds(ttl_seconds as i64));
    let mut record = TokenRecord::new(&token, role, namespace.map(String::from), expires_at);
    record.created_at = Some(now.to_rfc3339_opts(SecondsFormat::Secs, true));
    let value = serde_json::to_vec(&record).map_err(|e| Status::internal(e.to_string()))?;
    match node
        .propose(Command::CreateSystem {
            key: token_key(&name),
            value,
        })
        .await
    {
        Ok(_) => {}
        Err(ApiError::AlreadyExists(_)) => {
            return Err(Status::already_exists(format!(
                "tokens \"{name}\" already exists"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(token = %name, %role, namespace = ?namespace, by = %subject.user_name(), "token created");
    Ok(CreateTokenResponse {
        token: token.secret().to_string(),
        info: Some(info(&record)),
    })
}

pub async fn list(
    node: &ControlPlane,
    subject: &Subject,
    request: ListTokensRequest,
) -> Result<ListTokensResponse, Status> {
    let namespace = non_empty(&request.namespace);
    allowed(subject, Verb::List, namespace, None)?;
    node.read_barrier().await?;
    let table = node.shared.table.read().expect("table lock");
    let mut tokens = Vec::new();
    for (key, bytes) in table.system_prefixed(TOKEN_PREFIX) {
        let record: TokenRecord = serde_json::from_slice(bytes)
            .map_err(|e| Status::internal(format!("stored token {key:?} is unreadable: {e}")))?;
        if namespace.is_none_or(|ns| record.namespace.as_deref() == Some(ns)) {
            tokens.push(info(&record));
        }
    }
    Ok(ListTokensResponse { tokens })
}

pub async fn delete(
    node: &ControlPlane,
    subject: &Subject,
    request: DeleteTokenRequest,
) -> Result<(), Status> {
    let DeleteTokenRequest { name, namespace } = request;
    let record = stored(node, &name).await?;
    // Authorized against where the token really is; a missing one against where the
    // caller looked, so its absence is news only to whoever may see that namespace.
    let scope = match &record {
        Some(record) => record.namespace.clone(),
        None => non_empty(&namespace).map(String::from),
    };
    allowed(subject, Verb::Delete, scope.as_deref(), Some(&name))?;
    if record.is_none() {
        return Err(ApiError::NotFound(format!("tokens \"{name}\" not found")).into());
    }
    match node
        .propose(Command::DeleteSystem {
            key: token_key(&name),
        })
        .await
    {
        Ok(_) => {}
        Err(ApiError::NotFound(_)) => {
            return Err(ApiError::NotFound(format!("tokens \"{name}\" not found")).into());
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(token = %name, by = %subject.user_name(), "token removed");
    Ok(())
}
