//! The rate at which one source may write events about one object, as client-go's
//! `EventSourceObjectSpamFilter` has it: a token bucket per (source, involved object) with a
//! burst of 25 and one more every 5 minutes. Repeats of one event are already merged by
//! count (`skiff_api::events`); this bounds how often even a merged event is written.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use skiff_api::types::Event;

use crate::error::ApiError;

/// Writes a (source, object) pair may make at once.
pub const BURST: u32 = 25;
/// How long it takes to earn one more write.
pub const REFILL: Duration = Duration::from_secs(5 * 60);
/// Buckets kept, as client-go's LRU (4096): the keys come from clients, so the table must
/// not grow with them.
const MAX_BUCKETS: usize = 4096;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "events from {reporter} about {object} are limited to a burst of {BURST} and one more every {} minutes; this one was dropped",
    REFILL.as_secs() / 60
)]
pub struct TooManyEvents {
    /// The reporting component and host.
    pub reporter: String,
    pub object: String,
}

impl From<TooManyEvents> for ApiError {
    fn from(e: TooManyEvents) -> Self {
        ApiError::ResourceExhausted(e.to_string())
    }
}

struct Bucket {
    tokens: u32,
    /// When the last token was earned (or the bucket made).
    since: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let earned = now.duration_since(self.since).as_secs() / REFILL.as_secs();
        if earned > 0 {
            self.tokens = BURST.min(self.tokens.saturating_add(earned as u32));
            self.since += REFILL * earned as u32;
        }
    }
}

#[derive(Default)]
pub struct EventLimiter {
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

impl EventLimiter {
    /// Takes a token for a write of `event`, or refuses it.
    pub fn admit(&self, event: &Event, now: Instant) -> Result<(), TooManyEvents> {
        let source = event.source.clone().unwrap_or_default();
        let source = format!(
            "{:?} on {:?}",
            source.component.unwrap_or_default(),
            source.host.unwrap_or_default()
        );
        let involved = &event.involved_object;
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let object = format!(
            "{} {}/{} (uid {:?})",
            text(&involved.kind),
            text(&involved.namespace),
            text(&involved.name),
            text(&involved.uid)
        );
        let mut buckets = self.buckets.lock().expect("event buckets lock");
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&(source.clone(), object.clone()))
        {
            make_room(&mut buckets, now);
        }
        let bucket = buckets
            .entry((source.clone(), object.clone()))
            .or_insert(Bucket {
                tokens: BURST,
                since: now,
            });
        bucket.refill(now);
        if bucket.tokens == 0 {
            return Err(TooManyEvents {
                reporter: source,
                object,
            });
        }
        if bucket.tokens == BURST {
            // A full bucket earns nothing: its clock starts with the first token taken.
            bucket.since = now;
        }
        bucket.tokens -= 1;
        Ok(())
    }
}

/// Drops buckets that refilled (the same as new ones); if none did, the half used longest
/// ago.
fn make_room(buckets: &mut HashMap<(String, String), Bucket>, now: Instant) {
    buckets.retain(|_, b| {
        b.refill(now);
        b.tokens < BURST
    });
    if buckets.len() >= MAX_BUCKETS {
        let mut ages: Vec<Instant> = buckets.values().map(|b| b.since).collect();
        ages.sort();
        let cut = ages[ages.len() / 2];
        buckets.retain(|_, b| b.since > cut);
    }
}

#[cfg(test)]
mod tests {
    use skiff_api::types::{EventSource, ObjectReference};

    use super::*;

    fn event(component: &str, pod: &str) -> Event {
        Event {
            source: Some(EventSource {
                component: Some(component.into()),
                host: Some("node-1".into()),
            }),
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some("default".into()),
                name: Some(pod.into()),
                uid: Some(format!("uid-{pod}")),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_source_gets_a_burst_of_25_about_one_object_then_one_every_5_minutes() {
        let limiter = EventLimiter::default();
        let start = Instant::now();
        let web = event("skiff-agent", "web");
        for i in 0..BURST {
            limiter
                .admit(&web, start)
                .unwrap_or_else(|e| panic!("write {i}: {e}"));
        }
        let refused = limiter.admit(&web, start).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "events from \"skiff-agent\" on \"node-1\" about Pod default/web (uid \"uid-web\") are limited to a burst of 25 and one more every 5 minutes; this one was dropped"
        );
        // Another object, and another source, have their own buckets.
        limiter.admit(&event("skiff-agent", "db"), start).unwrap();
        limiter.admit(&event("someone-else", "web"), start).unwrap();

        let later = start + REFILL - Duration::from_secs(1);
        assert!(limiter.admit(&web, later).is_err());
        limiter.admit(&web, start + REFILL).unwrap();
        assert!(limiter.admit(&web, start + REFILL).is_err());
        // An idle hour earns 12, not more than the burst.
        let hour = start + REFILL + Duration::from_secs(3600);
        for _ in 0..12 {
            limiter.admit(&web, hour).unwrap();
        }
        assert!(limiter.admit(&web, hour).is_err());
    }

    #[test]
    fn the_buckets_stay_bounded_whatever_the_keys() {
        let limiter = EventLimiter::default();
        let now = Instant::now();
        for i in 0..3 * MAX_BUCKETS {
            limiter
                .admit(&event("spammer", &format!("p{i}")), now)
                .unwrap();
        }
        assert!(limiter.buckets.lock().unwrap().len() <= MAX_BUCKETS);
    }
}
