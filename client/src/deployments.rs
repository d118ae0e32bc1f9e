//! Deployment operations that kubectl has verbs for.

use skiff_api::types::Deployment;

use crate::client::Client;
use crate::error::Error;

impl Client {
    /// Sets a deployment's replica count (`kubectl scale`), retrying when the deployment
    /// controller's status writes race with ours.
    pub async fn scale(
        &self,
        namespace: &str,
        name: &str,
        replicas: i32,
    ) -> Result<Deployment, Error> {
        self.modify(namespace, name, |d: &mut Deployment| {
            let changed = d.spec.replicas != Some(replicas);
            d.spec.replicas = Some(replicas);
            changed
        })
        .await
    }
}
