//! The watch history: every change this node applied, kept for a bounded window so
//! watchers can resume from a resourceVersion after a disconnect. The window is bounded by
//! a count of changes and by their bytes, whichever is reached first: objects may be up to
//! `--max-object-bytes` each, so a count alone does not bound memory.
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

/// How much history a hub keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Changes kept at most.
    pub records: usize,
    /// Bytes kept at most, as counted by [`record_bytes`].
    pub bytes: usize,
}

/// What a record costs the history: its object's JSON and the previous version's, which
/// the record keeps alive even after that version's own record left the window.
pub fn record_bytes(record: &WatchRecord) -> usize {
    record.object.json.len() + record.previous.as_ref().map_or(0, |p| p.json.len())
}

struct History {
    records: VecDeque<WatchRecord>,
    /// Every change after this version is in `records`.
    complete_after: u64,
    window: Window,
    /// The sum of [`record_bytes`] over `records`.
    bytes: usize,
}

pub struct WatchHub {
    history: Mutex<History>,
}

impl WatchHub {
    /// A hub whose history starts after `applied` (nothing before it is known).
    pub fn new(applied: u64, window: Window) -> WatchHub {
        WatchHub {
            history: Mutex::new(History {
                records: VecDeque::new(),
                complete_after: applied,
                window: Window {
                    records: window.records.max(1),
                    bytes: window.bytes,
                },
                bytes: 0,
            }),
        }
    }

    /// Adds changes and drops the oldest beyond the window. The newest change is always
    /// kept, even alone over the byte bound, so a watcher that is up to date misses nothing.
    pub fn publish(&self, records: impl IntoIterator<Item = WatchRecord>) {
        let mut h = self.history.lock().expect("watch history lock");
        for record in records {
            h.bytes += record_bytes(&record);
            h.records.push_back(record);
        }
        while h.records.len() > h.window.records
            || (h.bytes > h.window.bytes && h.records.len() > 1)
        {
            let Some(dropped) = h.records.pop_front() else {
                break;
            };
            h.bytes -= record_bytes(&dropped);
            h.complete_after = dropped.version;
        }
    }

    /// Forgets all history: used when a snapshot replaces the state wholesale.
    pub fn reset(&self, applied: u64) {
        let mut h = self.history.lock().expect("watch history lock");
        h.records.clear();
        h.bytes = 0;
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

    /// The bytes the history holds now, as counted by [`record_bytes`].
    pub fn bytes(&self) -> usize {
        self.history.lock().expect("watch history lock").bytes
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

    const ROOMY: Window = Window {
        records: 10,
        bytes: usize::MAX,
    };

    fn record(version: u64) -> WatchRecord {
        sized_record(version, 0)
    }

    /// A record whose object carries `padding` bytes in an annotation.
    fn sized_record(version: u64, padding: usize) -> WatchRecord {
        let value = json!({"metadata": {"name": format!("p{version}"), "namespace": "default",
            "resourceVersion": version.to_string(), "annotations": {"pad": "x".repeat(padding)}}});
        WatchRecord {
            version,
            event: EventType::Added,
            object: Arc::new(StoredObject::from_value(Kind::Pod, &value).unwrap()),
            previous: None,
        }
    }

    #[test]
    fn since_returns_only_later_versions() {
        let hub = WatchHub::new(0, ROOMY);
        hub.publish((1..=5).map(record));
        let got: Vec<u64> = hub.since(3).unwrap().iter().map(|r| r.version).collect();
        assert_eq!(got, vec![4, 5]);
        assert!(hub.since(5).unwrap().is_empty());
    }

    #[test]
    fn trimmed_history_is_too_old() {
        let hub = WatchHub::new(
            0,
            Window {
                records: 3,
                bytes: usize::MAX,
            },
        );
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
        let hub = WatchHub::new(0, ROOMY);
        hub.publish((1..=3).map(record));
        hub.reset(7);
        assert!(hub.since(3).is_err());
        assert!(hub.since(7).unwrap().is_empty());
        assert_eq!(hub.bytes(), 0);
    }

    #[test]
    fn history_over_its_byte_bound_drops_the_oldest_and_they_are_too_old() {
        let size = record_bytes(&sized_record(1, 10_000));
        // Room for three records of this size, not four.
        let hub = WatchHub::new(
            0,
            Window {
                records: 1000,
                bytes: 3 * size + size / 2,
            },
        );
        hub.publish((1..=10).map(|v| sized_record(v, 10_000)));
        let kept: usize = (8..=10)
            .map(|v| record_bytes(&sized_record(v, 10_000)))
            .sum();
        assert_eq!(hub.bytes(), kept);
        assert_eq!(hub.oldest_resumable(), 7);
        assert_eq!(
            hub.since(6).unwrap_err(),
            TooOld {
                requested: 6,
                oldest: 7
            }
        );
        let got: Vec<u64> = hub.since(7).unwrap().iter().map(|r| r.version).collect();
        assert_eq!(got, vec![8, 9, 10]);
    }

    #[test]
    fn the_newest_change_is_kept_even_when_alone_over_the_byte_bound() {
        let hub = WatchHub::new(
            0,
            Window {
                records: 1000,
                bytes: 100,
            },
        );
        hub.publish([sized_record(1, 10), sized_record(2, 1000)]);
        assert_eq!(hub.oldest_resumable(), 1);
        let got: Vec<u64> = hub.since(1).unwrap().iter().map(|r| r.version).collect();
        assert_eq!(got, vec![2]);
    }
}
