//! The agent's events (Created, Started, Killing, BackOff, Unhealthy), recorded through the
//! API in the background: an event that cannot be written is logged, never waited for.

use skiff_api::Kind;
use skiff_api::events::Note;
use skiff_api::types::{Event, Pod};
use skiff_client::Client;

pub const COMPONENT: &str = "skiff-agent";

#[derive(Clone)]
pub struct Recorder {
    client: Client,
    node_name: String,
}

impl Recorder {
    pub fn new(client: Client, node_name: String) -> Recorder {
        Recorder { client, node_name }
    }

    /// Records an event about a pod (or one of its containers).
    pub fn pod(&self, pod: &Pod, type_: &'static str, reason: &'static str, message: String) {
        let note = Note::about(
            Kind::Pod,
            &pod.metadata,
            type_,
            reason,
            message,
            COMPONENT,
            Some(self.node_name.clone()),
        );
        let client = self.client.clone();
        tokio::spawn(async move {
            if let Err(e) = record(&client, &note).await {
                tracing::debug!(reason = note.reason, "event not recorded: {e}");
            }
        });
    }
}

async fn record(client: &Client, note: &Note) -> Result<(), skiff_client::Error> {
    let namespace = note.event_namespace().to_string();
    let name = note.event_name();
    for _ in 0..3 {
        let existing = match client.get::<Event>(&namespace, &name).await {
            Ok(e) => Some(e),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        let event = note.merged_into(existing.as_ref(), chrono::Utc::now());
        let result = match existing {
            Some(_) => client.update(&event).await,
            None => client.create(&event).await,
        };
        match result {
            Err(e) if e.is_conflict() || e.is_already_exists() => continue,
            other => return other.map(drop),
        }
    }
    Ok(())
}
