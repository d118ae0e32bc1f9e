//! The watch history: every change this node applied, kept for a bounded window so
//! watchers can resume from a resourceVersion after a disconnect.
//!
//! Every node applies the same log, so versions mean the same thing on every node and a
//! watch may resume on a different node than it started on.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::store::WatchRecord;

/// The requested version is older than the retained history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("resource version too old: {requested} is before the oldest retained version {oldest}")]
pub struct TooOld {
    pub requested: u64,
    pub oldest: u64,
}

struct History {
    records: VecDeque<WatchRecord>,
    /// Every change after this version is in `records`.
    complete_after: u64,
    capacity: usize,
}

pub struct WatchHub {
    history: Mutex<History>,
}

impl WatchHub {
    /// A hub whose history starts after `applied` (nothing before it is known).
    pub fn new(applied: u64, capacity: usize) -> WatchHub {
        WatchHub {
            history: Mutex::new(History {
                records: VecDeque::new(),
                complete_after: applied,
                capacity: capacity.max(1),
            }),
        }
    }

    pub fn publish(&self, records: impl IntoIterator<Item = WatchRecord>) {
        let mut h = self.history.lock().expect("watch history lock");
        h.records.extend(records);
        while h.records.len() > h.capacity {
            if let Some(dropped) = h.records.pop_front() {
                h.complete_after = dropped.version;
            }
        }
    }

    /// Forgets all history: used when a snapshot replaces the state wholesale.
    pub fn reset(&self, applied: u64) {
        let mut h = self.history.lock().expect("watch history lock");
        h.records.clear();
        h.complete_after = applied;
    }

    /// Changes with a version above `version`, in order.
    pub fn since(&self, version: u64) -> Result<Vec<WatchRecord>, TooOld> {
        let h = self.history.lock().expect("watch history lock");
        if version < h.complete_after {
            return Err(TooOld {
                requested: version,
                oldest: h.complete_after,
            });
        }
        let start = h.records.partition_point(|r| r.version <= version);
        Ok(h.records.range(start..).cloned().collect())
    }

    pub fn oldest_resumable(&self) -> u64 {
        self.history
            .lock()
            .expect("watch history lock")
            .complete_after
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use skiff_api::Kind;

    use super::*;
    use crate::store::StoredObject;
    use crate::store::objects::EventType;

    fn record(version: u64) -> WatchRecord {
        let value = json!({"metadata": {"name": format!("p{version}"), "namespace": "default",
            "resourceVersion": version.to_string()}});
        WatchRecord {
            version,
            event: EventType::Added,
            object: Arc::new(StoredObject::from_value(Kind::Pod, &value).unwrap()),
            previous: None,
        }
    }

    #[test]
    fn since_returns_only_later_versions() {
        let hub = WatchHub::new(0, 10);
        hub.publish((1..=5).map(record));
        let got: Vec<u64> = hub.since(3).unwrap().iter().map(|r| r.version).collect();
        assert_eq!(got, vec![4, 5]);
        assert!(hub.since(5).unwrap().is_empty());
    }

    #[test]
    fn trimmed_history_is_too_old() {
        let hub = WatchHub::new(0, 3);
        hub.publish((1..=5).map(record));
        assert_eq!(hub.oldest_resumable(), 2);
        assert_eq!(
            hub.since(1).unwrap_err(),
            TooOld {
                requested: 1,
                oldest: 2
            }
        );
        let got: Vec<u64> = hub.since(2).unwrap().iter().map(|r| r.version).collect();
        assert_eq!(got, vec![3, 4, 5]);
    }

    #[test]
    fn reset_forgets_history() {
        let hub = WatchHub::new(0, 10);
        hub.publish((1..=3).map(record));
        hub.reset(7);
        assert!(hub.since(3).is_err());
        assert!(hub.since(7).unwrap().is_empty());
    }
}
