//! Large AppendEntries out of band. openraft 0.9 gives every AppendEntries one heartbeat
//! interval (50 ms by default) and sends heartbeats on the same stream, so one entry that
//! cannot cross the link in that time would time out forever, and starve the follower of
//! heartbeats until it calls an election (a "request of death"). Instead the leader uploads
//! such a request in chunks on a connection of its own, for as long as the link needs,
//! while the replication stream keeps sending small heartbeats; once the follower holds the
//! whole request, a small AppendStaged call names it and the follower applies it.
//!
//! A staged request is named by a digest of its entry's log id: within a term a log id
//! names one entry, so the leader never hashes (or even encodes) megabytes on the
//! replication stream's clock, whose every call must finish within a heartbeat interval.
//! [`StagingArea`] is the follower's side: bounded in bytes, chunks in order.
//! [`Uploads`] is the leader's: one upload task per (peer, name).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::raft_transport::{PeerPool, RaftMethod, call};

/// Requests up to this size go inline; larger ones are staged.
pub const INLINE_APPEND_BYTES: usize = 256 * 1024;
/// One Stage call carries at most this much: large, since each chunk costs a round trip.
pub const STAGE_CHUNK_BYTES: usize = 4 * 1024 * 1024;
/// What one chunk may take before the upload is retried: generous, so slow links work.
const CHUNK_TIMEOUT: Duration = Duration::from_secs(30);
/// A staged request nobody asked for in this long is dropped.
const STAGED_TTL: Duration = Duration::from_secs(120);

pub type Digest32 = [u8; 32];

/// The name of a staged request: a digest of something that identifies its bytes.
pub fn digest(data: &[u8]) -> Digest32 {
    Sha256::digest(data).into()
}

/// One Stage call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageChunk {
    pub digest: Digest32,
    pub total: u64,
    pub offset: u64,
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum StageError {
    #[error("staged request of {total} bytes exceeds the staging area's {limit} bytes")]
    TooLarge { total: u64, limit: u64 },
    #[error("chunk at offset {offset} does not follow the {have} bytes staged so far")]
    OutOfOrder { offset: u64, have: u64 },
    #[error("no staged request with digest {0}")]
    Missing(String),
}

struct Staged {
    data: Vec<u8>,
    total: u64,
    touched: Instant,
}

impl Staged {
    fn complete(&self) -> bool {
        self.data.len() as u64 == self.total
    }
}

/// The follower's staged requests, bounded in total bytes.
pub struct StagingArea {
    limit: u64,
    staged: Mutex<HashMap<Digest32, Staged>>,
}

impl StagingArea {
    pub fn new(limit: u64) -> StagingArea {
        StagingArea {
            limit,
            staged: Mutex::new(HashMap::new()),
        }
    }

    /// Adds one chunk. Returns whether the request is now complete.
    pub fn put(&self, chunk: StageChunk) -> Result<bool, StageError> {
        if chunk.total > self.limit {
            return Err(StageError::TooLarge {
                total: chunk.total,
                limit: self.limit,
            });
        }
        let mut staged = self.staged.lock().expect("staging lock");
        let now = Instant::now();
        staged.retain(|_, s| now.duration_since(s.touched) < STAGED_TTL);
        if chunk.offset == 0 {
            staged.remove(&chunk.digest);
            // Make room: oldest first.
            while staged.values().map(|s| s.total).sum::<u64>() + chunk.total > self.limit {
                let Some(oldest) = staged
                    .iter()
                    .min_by_key(|(_, s)| s.touched)
                    .map(|(d, _)| *d)
                else {
                    break;
                };
                staged.remove(&oldest);
            }
            staged.insert(
                chunk.digest,
                Staged {
                    data: Vec::with_capacity(chunk.total as usize),
                    total: chunk.total,
                    touched: now,
                },
            );
        }
        let entry = staged
            .get_mut(&chunk.digest)
            .ok_or(StageError::OutOfOrder {
                offset: chunk.offset,
                have: 0,
            })?;
        let have = entry.data.len() as u64;
        if chunk.offset != have || have + chunk.bytes.len() as u64 > entry.total {
            staged.remove(&chunk.digest);
            return Err(StageError::OutOfOrder {
                offset: chunk.offset,
                have,
            });
        }
        entry.data.extend_from_slice(&chunk.bytes);
        entry.touched = now;
        Ok(entry.complete())
    }

    /// The complete request with this digest. It stays staged (a lost answer may make the
    /// leader ask again) until it ages out or makes room for another.
    pub fn get(&self, digest: &Digest32) -> Result<Vec<u8>, StageError> {
        let mut staged = self.staged.lock().expect("staging lock");
        match staged.get_mut(digest) {
            Some(s) if s.complete() => {
                s.touched = Instant::now();
                Ok(s.data.clone())
            }
            _ => Err(StageError::Missing(hex::encode(&digest[..8]))),
        }
    }
}

/// Where one upload stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadState {
    Running,
    Done,
    Failed(String),
}

struct Upload {
    state: watch::Receiver<UploadState>,
    started: Instant,
}

/// The leader's uploads, one per (peer address, digest); finished or failed ones are
/// kept a little while so the replication stream can see how they ended.
#[derive(Default)]
pub struct Uploads {
    uploads: Mutex<HashMap<(String, Digest32), Upload>>,
}

impl Uploads {
    /// The state of the upload named `digest` to `address`, starting it (again, if it
    /// failed) on the bulk connection; `data` makes the bytes, off the caller's clock.
    pub fn ensure(
        self: &Arc<Self>,
        bulk: &Arc<PeerPool>,
        address: &str,
        digest: Digest32,
        data: impl FnOnce() -> Vec<u8> + Send + 'static,
    ) -> watch::Receiver<UploadState> {
        let mut uploads = self.uploads.lock().expect("uploads lock");
        let now = Instant::now();
        uploads.retain(|_, u| {
            *u.state.borrow() == UploadState::Running || now.duration_since(u.started) < STAGED_TTL
        });
        let key = (address.to_string(), digest);
        if let Some(u) = uploads.get(&key)
            && !matches!(*u.state.borrow(), UploadState::Failed(_))
        {
            return u.state.clone();
        }
        let (tx, rx) = watch::channel(UploadState::Running);
        uploads.insert(
            key,
            Upload {
                state: rx.clone(),
                started: now,
            },
        );
        let bulk = bulk.clone();
        let address = address.to_string();
        tokio::spawn(async move {
            let data = data();
            let outcome = upload(&bulk, &address, digest, &data).await;
            let _ = tx.send(match outcome {
                Ok(()) => UploadState::Done,
                Err(e) => {
                    tracing::debug!(%address, "staging an append failed: {e}");
                    UploadState::Failed(e)
                }
            });
        });
        rx
    }

    /// Forgets an upload whose result the follower no longer has.
    pub fn forget(&self, address: &str, digest: Digest32) {
        self.uploads
            .lock()
            .expect("uploads lock")
            .remove(&(address.to_string(), digest));
    }
}

async fn upload(
    bulk: &PeerPool,
    address: &str,
    digest: Digest32,
    data: &[u8],
) -> Result<(), String> {
    let mut client = bulk.client(address)?;
    let total = data.len() as u64;
    for (i, piece) in data.chunks(STAGE_CHUNK_BYTES).enumerate() {
        let chunk = StageChunk {
            digest,
            total,
            offset: (i * STAGE_CHUNK_BYTES) as u64,
            bytes: piece.to_vec(),
        };
        let answer: Result<bool, StageError> =
            call(&mut client, RaftMethod::Stage, &chunk, CHUNK_TIMEOUT)
                .await
                .map_err(|s| format!("{}: {}", s.code(), s.message()))?;
        answer.map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(data: &[u8], size: usize) -> Vec<StageChunk> {
        let d = digest(data);
        data.chunks(size)
            .enumerate()
            .map(|(i, b)| StageChunk {
                digest: d,
                total: data.len() as u64,
                offset: (i * size) as u64,
                bytes: b.to_vec(),
            })
            .collect()
    }

    #[test]
    fn a_request_staged_in_order_is_served_whole() {
        let area = StagingArea::new(1 << 20);
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let parts = chunks(&data, 3000);
        let last = parts.len() - 1;
        for (i, c) in parts.into_iter().enumerate() {
            assert_eq!(area.put(c).unwrap(), i == last);
        }
        assert_eq!(area.get(&digest(&data)).unwrap(), data);
        // Still there for a leader that lost the first answer.
        assert_eq!(area.get(&digest(&data)).unwrap(), data);
    }

    #[test]
    fn a_chunk_out_of_order_drops_the_partial_request() {
        let area = StagingArea::new(1 << 20);
        let data = vec![7u8; 9000];
        let parts = chunks(&data, 3000);
        area.put(parts[0].clone()).unwrap();
        assert!(matches!(
            area.put(parts[2].clone()),
            Err(StageError::OutOfOrder {
                offset: 6000,
                have: 3000
            })
        ));
        assert!(area.get(&digest(&data)).is_err());
    }

    #[test]
    fn a_chunk_beyond_the_announced_length_is_refused() {
        let area = StagingArea::new(1 << 20);
        let mut c = chunks(b"hello", 5).remove(0);
        c.bytes = b"hello!".to_vec();
        assert!(matches!(area.put(c), Err(StageError::OutOfOrder { .. })));
    }

    #[test]
    fn the_staging_area_stays_within_its_bound() {
        let area = StagingArea::new(10_000);
        let big = vec![1u8; 20_000];
        assert!(matches!(
            area.put(chunks(&big, 20_000).remove(0)),
            Err(StageError::TooLarge { .. })
        ));
        let a = vec![2u8; 6000];
        let b = vec![3u8; 6000];
        area.put(chunks(&a, 6000).remove(0)).unwrap();
        area.put(chunks(&b, 6000).remove(0)).unwrap();
        // The older one made room for the newer.
        assert!(area.get(&digest(&a)).is_err());
        assert_eq!(area.get(&digest(&b)).unwrap(), b);
    }
}
