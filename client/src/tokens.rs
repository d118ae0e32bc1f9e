//! Bearer tokens for people: make one (its secret is shown once), list, remove.

use std::time::Duration;

use skiff_api::proto::cluster_client::ClusterClient;
use skiff_api::proto::{CreateTokenRequest, DeleteTokenRequest, ListTokensRequest, TokenInfo};

use crate::client::Client;
use crate::error::Error;

/// A token as the cluster lists it (never its secret).
pub type Token = TokenInfo;

/// What `skiff token create` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewToken {
    pub name: String,
    /// `view`, `edit`, `admin` or `cluster-admin`.
    pub role: String,
    /// Confined to this namespace; `None`: cluster-wide.
    pub namespace: Option<String>,
    /// Expires this long after it is made; `None`: never.
    pub ttl: Option<Duration>,
}

impl Client {
    /// Makes a token and returns its secret (`skt.<name>.<secret>`, shown only now) and
    /// what the cluster keeps of it.
    pub async fn create_token(&self, new: &NewToken) -> Result<(String, Token), Error> {
        let request = CreateTokenRequest {
            name: new.name.clone(),
            role: new.role.clone(),
            namespace: new.namespace.clone().unwrap_or_default(),
            // A sub-second ttl still expires (rounded up to a second).
            ttl_seconds: new
                .ttl
                .map(|t| t.as_secs() + u64::from(t.subsec_nanos() > 0))
                .unwrap_or(0),
        };
        let response = self
            .with_failover_write(|channel| {
                let request = request.clone();
                async move { ClusterClient::new(channel).create_token(request).await }
            })
            .await?
            .into_inner();
        let info = response
            .info
            .ok_or_else(|| Error::Decode("the created token's record is missing".into()))?;
        Ok((response.token, info))
    }

    /// The tokens confined to `namespace`, or every token (`None`, cluster-admins only).
    pub async fn list_tokens(&self, namespace: Option<&str>) -> Result<Vec<Token>, Error> {
        let request = ListTokensRequest {
            namespace: namespace.unwrap_or_default().to_string(),
        };
        let response = self
            .with_failover(|channel| {
                let request = request.clone();
                async move { ClusterClient::new(channel).list_tokens(request).await }
            })
            .await?;
        Ok(response.into_inner().tokens)
    }

    /// Removes token `name`: once this returns, no member accepts it. `namespace` is where
    /// the caller expects it (what a namespaced admin may look at).
    pub async fn delete_token(&self, name: &str, namespace: Option<&str>) -> Result<(), Error> {
        let request = DeleteTokenRequest {
            name: name.to_string(),
            namespace: namespace.unwrap_or_default().to_string(),
        };
        self.with_failover_write(|channel| {
            let request = request.clone();
            async move { ClusterClient::new(channel).delete_token(request).await }
        })
        .await?;
        Ok(())
    }
}
