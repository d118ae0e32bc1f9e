//! Linearizability checking of recorded key/register histories.
//!
//! The chaos suite records every client operation into a [`History`] (invocation time, then
//! completion time and [`Outcome`]) and afterwards calls [`check`], which decides whether the
//! history could have been produced by a set of independent registers (one per key, each
//! starting absent) where every operation took effect atomically at some instant between its
//! invocation and its completion.
//!
//! How the check works, per key (linearizability is compositional, so keys are independent):
//! 1. Operations are classified: failed operations and reads without a value are dropped;
//!    acknowledged writes and reads must be linearized inside their interval; writes with an
//!    unknown outcome (or that never completed) are *optional* and may take effect at any time
//!    after their invocation, or never.
//! 2. Cheap pre-checks catch the obvious violations with a precise message (a read of a value
//!    never written, a read of a value whose write started after the read ended, a read of an
//!    absent key after a write was acknowledged).
//! 3. An optional write only matters if some read returns its value, and only up to the last
//!    such read; it is dropped otherwise and given that read's completion as a deadline. Every
//!    operation then has a finite interval, so the history splits at quiescent points (instants
//!    where nothing is pending, optional writes included) into segments that are searched one
//!    after the other, carrying the set of possible register values across each cut.
//! 4. Each segment is searched with the Wing & Gong / Lowe algorithm: configurations are (set of
//!    linearized operations, register value), deduplicated through a cache. The set is kept
//!    compact: a count of leading operations that are all linearized plus a small bitset for the
//!    window after it, plus the (few) optional writes used and still relevant. Because every
//!    reachable final value of a segment is needed, the configuration space is explored in
//!    layers (one linearized operation per layer), so only two layers are in memory at a time.
//!    Two reductions keep contended histories small, both losing no solution: a read that can
//!    be linearized right away is linearized first and alone (it cannot change the state), and
//!    an acknowledged write whose value no read returns is, when real-time order allows, placed
//!    just before the segment's last write instead of changing the value (its value could only
//!    be overwritten unseen), so bursts of concurrent writes do not multiply the search.
//!
//! The search is exact (it agrees with a brute-force checker on random small histories, with
//! unique and with repeated values). It is bounded by [`CheckLimits`]; a history that exceeds
//! them (e.g. dozens of mutually concurrent writes on one key, each seen by a concurrent read)
//! yields an *inconclusive* [`Violation`] (see [`Violation::is_inconclusive`]) rather than a
//! claim of success.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A value written to a register. The chaos suite makes them unique per history.
pub type Value = u64;

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Set the key's register to this value.
    Write(Value),
    /// Return the key's current value.
    Read,
}

/// What the client learned about an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The write was acknowledged.
    Written,
    /// The read returned this (`None` = key absent / initial state).
    ReadValue(Option<Value>),
    /// Definitely did not take effect (e.g. a validation error before any attempt).
    Failed,
    /// May or may not have taken effect (timeout, unavailable, conflict after an internal retry).
    Unknown,
}

/// One recorded operation.
#[derive(Clone, Debug)]
pub struct Operation {
    /// The client (logical process) that issued it; for messages only.
    pub process: usize,
    /// The key (register) it addressed.
    pub key: String,
    /// What was asked.
    pub op: Op,
    /// When it was invoked, since the history's start.
    pub invoked: Duration,
    /// When it completed, since the history's start; `None`: never completed (treated like
    /// [`Outcome::Unknown`] whatever `outcome` says).
    pub completed: Option<Duration>,
    /// What the client learned.
    pub outcome: Outcome,
}

/// Distinguishes histories so that an [`OpId`] from one is ignored by another.
static NEXT_HISTORY_ID: AtomicU64 = AtomicU64::new(0);

struct Recorder {
    start: Instant,
    ops: Vec<Operation>,
}

/// A concurrent history recorder. Cheap to clone, `Send + Sync`; all clones record into one
/// history.
#[derive(Clone)]
pub struct History {
    id: u64,
    inner: Arc<Mutex<Recorder>>,
}

/// Identifies an invoked operation of a [`History`], to complete it later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpId {
    history: u64,
    index: usize,
}

impl History {
    /// An empty history whose clock starts now.
    pub fn new() -> History {
        History {
            id: NEXT_HISTORY_ID.fetch_add(1, Ordering::Relaxed),
            inner: Arc::new(Mutex::new(Recorder {
                start: Instant::now(),
                ops: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Recorder> {
        // A panic elsewhere while holding the lock leaves the Vec consistent (every mutation is
        // a single push or field store), so the data is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records that `process` invokes `op` on `key` now; call it before sending the request.
    pub fn invoke(&self, process: usize, key: &str, op: Op) -> OpId {
        let mut recorder = self.lock();
        let invoked = recorder.start.elapsed();
        recorder.ops.push(Operation {
            process,
            key: key.to_owned(),
            op,
            invoked,
            completed: None,
            outcome: Outcome::Unknown,
        });
        OpId {
            history: self.id,
            index: recorder.ops.len() - 1,
        }
    }

    /// Records that the operation completed now with `outcome`; call it after the response.
    /// Only the first completion counts; an id from another history is ignored (the operation
    /// then stays pending, which the checker treats conservatively as unknown).
    pub fn complete(&self, id: OpId, outcome: Outcome) {
        if id.history != self.id {
            return;
        }
        let mut recorder = self.lock();
        let now = recorder.start.elapsed();
        if let Some(operation) = recorder.ops.get_mut(id.index)
            && operation.completed.is_none()
        {
            operation.completed = Some(now);
            operation.outcome = outcome;
        }
    }

    /// A snapshot of the recorded operations in invocation order; operations not completed yet
    /// come out with `completed: None` and `outcome: Unknown`.
    pub fn operations(&self) -> Vec<Operation> {
        self.lock().ops.clone()
    }

    /// The number of recorded (invoked) operations.
    pub fn len(&self) -> usize {
        self.lock().ops.len()
    }

    /// Whether nothing was recorded yet.
    pub fn is_empty(&self) -> bool {
        self.lock().ops.is_empty()
    }
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("History")
            .field("operations", &self.len())
            .finish()
    }
}

/// The summary of a successful check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckReport {
    /// Distinct keys in the history.
    pub keys: usize,
    /// Operations given to the checker (all of them, failed ones included).
    pub operations: usize,
    /// Operations whose outcome is unknown or that never completed.
    pub unknown: usize,
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "linearizable: {} operations on {} keys ({} with unknown outcome)",
            self.operations, self.keys, self.unknown
        )
    }
}

/// Why a history is not linearizable (or, see [`Violation::is_inconclusive`], why the check
/// could not decide).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The key whose history is at fault.
    pub key: String,
    /// What is wrong: the offending operation, the register values possible at that point and
    /// the writes around it.
    pub message: String,
}

/// The message prefix of a [`Violation`] that reports an inconclusive check.
const INCONCLUSIVE: &str = "inconclusive: ";

impl Violation {
    /// True when the check gave up (search limits exceeded) instead of finding a violation.
    pub fn is_inconclusive(&self) -> bool {
        self.message.starts_with(INCONCLUSIVE)
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_inconclusive() {
            write!(
                f,
                "linearizability check of key {:?} {}",
                self.key, self.message
            )
        } else {
            write!(
                f,
                "linearizability violation on key {:?}: {}",
                self.key, self.message
            )
        }
    }
}

impl std::error::Error for Violation {}

/// Bounds on the search, so that a pathological history cannot run for hours or exhaust
/// memory. Exceeding them makes the check inconclusive, never successful.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckLimits {
    /// Total configurations expanded over the whole check (a time bound).
    pub max_configurations: u64,
    /// Configurations held in one search layer (a memory bound).
    pub max_frontier: usize,
}

impl Default for CheckLimits {
    fn default() -> Self {
        CheckLimits {
            max_configurations: 5_000_000,
            max_frontier: 500_000,
        }
    }
}

/// Checks that `ops` is linearizable with respect to independent registers per key, each
/// starting absent, with the default [`CheckLimits`].
pub fn check(ops: &[Operation]) -> Result<CheckReport, Violation> {
    check_with_limits(ops, CheckLimits::default())
}

/// [`check`] with explicit search limits.
pub fn check_with_limits(ops: &[Operation], limits: CheckLimits) -> Result<CheckReport, Violation> {
    check_impl(ops, limits, true)
}

fn check_impl(
    ops: &[Operation],
    limits: CheckLimits,
    prechecks: bool,
) -> Result<CheckReport, Violation> {
    // BTreeMap: a deterministic key order makes the reported violation reproducible.
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        by_key.entry(op.key.as_str()).or_default().push(i);
    }
    // One budget for the whole check, so that many hard keys cannot add up to hours.
    let mut work = 0u64;
    for (key, indices) in &by_key {
        let checker = KeyCheck {
            key,
            ops,
            indices,
            limits,
        };
        checker.run(prechecks, &mut work)?;
    }
    Ok(CheckReport {
        keys: by_key.len(),
        operations: ops.len(),
        unknown: ops
            .iter()
            .filter(|op| op.completed.is_none() || op.outcome == Outcome::Unknown)
            .count(),
    })
}
/// The effect of an operation that the search has to place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Write(Value),
    /// A write whose value no read returns.
    Unread(Value),
    Read(Option<Value>),
}

/// An operation the search has to place: within `[inv, end]` (for an optional write, `end` is
/// the last instant at which taking effect can still matter). `src` indexes the input slice.
#[derive(Clone, Copy, Debug)]
struct Event {
    inv: Duration,
    end: Duration,
    step: Step,
    src: usize,
}

struct KeyCheck<'a> {
    key: &'a str,
    ops: &'a [Operation],
    indices: &'a [usize],
    limits: CheckLimits,
}

impl KeyCheck<'_> {
    fn violation(&self, message: String) -> Violation {
        Violation {
            key: self.key.to_owned(),
            message,
        }
    }

    fn run(&self, prechecks: bool, work: &mut u64) -> Result<(), Violation> {
        let (mut required, optional) = self.classify()?;
        if prechecks {
            self.precheck(&required, &optional)?;
        }
        let mut optional = self.prune_optional(&required, optional);
        mark_unread(&mut required);
        required.sort_by_key(|e| (e.inv, e.end, e.src));
        optional.sort_by_key(|e| (e.inv, e.end, e.src));

        let mut states = BTreeSet::from([None]);
        for (req, opt) in segments(&required, &optional) {
            let search = Search {
                req: &required[req.clone()],
                opt: &optional[opt],
            };
            states = match search.explore(&states, self.limits, work) {
                Ok(states) => states,
                Err(Failure::Stuck { blocker, values }) => {
                    return Err(self.stuck(search.req.get(blocker).map(|e| e.src), &values));
                }
                Err(Failure::Budget { configurations }) => {
                    return Err(self.inconclusive(&required[req], configurations));
                }
            };
        }
        Ok(())
    }

    /// Splits the key's operations into required events and optional writes, dropping those
    /// that carry no information.
    fn classify(&self) -> Result<(Vec<Event>, Vec<Event>), Violation> {
        let mut required = Vec::new();
        let mut optional = Vec::new();
        for &src in self.indices {
            let op = &self.ops[src];
            let inv = op.invoked;
            match (&op.op, op.completed, &op.outcome) {
                (_, Some(end), _) if end < inv => {
                    return Err(self.violation(format!(
                        "malformed history: {} completed before it was invoked",
                        describe(op)
                    )));
                }
                (Op::Read, Some(_), Outcome::Written)
                | (Op::Write(_), Some(_), Outcome::ReadValue(_)) => {
                    return Err(self.violation(format!(
                        "malformed history: {} has an outcome that does not fit the operation",
                        describe(op)
                    )));
                }
                (_, Some(_), Outcome::Failed) => {}
                (Op::Read, Some(end), Outcome::ReadValue(value)) => required.push(Event {
                    inv,
                    end,
                    step: Step::Read(*value),
                    src,
                }),
                // A read that returned nothing constrains nothing.
                (Op::Read, _, _) => {}
                (Op::Write(value), Some(end), Outcome::Written) => required.push(Event {
                    inv,
                    end,
                    step: Step::Write(*value),
                    src,
                }),
                // Unknown or never completed: may take effect at any time after invocation.
                (Op::Write(value), _, _) => optional.push(Event {
                    inv,
                    end: Duration::MAX,
                    step: Step::Write(*value),
                    src,
                }),
            }
        }
        Ok((required, optional))
    }

    /// Sound shortcuts with clear messages; the search would find these too.
    fn precheck(&self, required: &[Event], optional: &[Event]) -> Result<(), Violation> {
        let mut writes: HashMap<Value, Vec<&Event>> = HashMap::new();
        for event in required.iter().chain(optional) {
            if let Step::Write(value) = event.step {
                writes.entry(value).or_default().push(event);
            }
        }
        // Values never return to absent, so an acknowledged write ends all absent reads.
        let first_ack = required
            .iter()
            .filter(|e| matches!(e.step, Step::Write(_)))
            .min_by_key(|e| e.end);
        for read in required {
            let Step::Read(returned) = read.step else {
                continue;
            };
            let op = &self.ops[read.src];
            match returned {
                None => {
                    if let Some(write) = first_ack
                        && write.end < read.inv
                    {
                        return Err(self.violation(format!(
                            "{}, although {} before the read was invoked{}",
                            describe(op),
                            describe(&self.ops[write.src]),
                            self.writes_around(op, None)
                        )));
                    }
                }
                Some(value) => match writes.get(&value) {
                    None => {
                        return Err(self.violation(format!(
                            "{}, a value never written to this key{}{}",
                            describe(op),
                            self.written_elsewhere(value),
                            self.writes_around(op, Some(value))
                        )));
                    }
                    Some(candidates) if candidates.iter().all(|w| w.inv > read.end) => {
                        return Err(self.violation(format!(
                            "{}, but the write of {value} was only invoked after the read \
                             completed{}",
                            describe(op),
                            self.writes_around(op, Some(value))
                        )));
                    }
                    Some(_) => {}
                },
            }
        }
        Ok(())
    }

    /// Drops optional writes that no read can have observed and bounds the others by the last
    /// read of their value: taking effect later could only be overwritten unseen, which is the
    /// same as never taking effect.
    fn prune_optional(&self, required: &[Event], optional: Vec<Event>) -> Vec<Event> {
        let mut last_read: HashMap<Value, Duration> = HashMap::new();
        for event in required {
            if let Step::Read(Some(value)) = event.step {
                let last = last_read.entry(value).or_insert(event.end);
                *last = (*last).max(event.end);
            }
        }
        optional
            .into_iter()
            .filter_map(|mut event| {
                let Step::Write(value) = event.step else {
                    return None;
                };
                let deadline = *last_read.get(&value)?;
                (deadline >= event.inv).then(|| {
                    event.end = deadline;
                    event
                })
            })
            .collect()
    }

    fn stuck(&self, src: Option<usize>, values: &BTreeSet<Option<Value>>) -> Violation {
        let values: Vec<String> = values.iter().map(|value| show(*value)).collect();
        let Some(op) = src.and_then(|src| self.ops.get(src)) else {
            // Not expected: a segment with no operation to blame always has a solution.
            return self.violation(format!(
                "no linearization exists (the register could hold {})",
                values.join(" or ")
            ));
        };
        let read_value = match op.outcome {
            Outcome::ReadValue(value) => value,
            _ => None,
        };
        self.violation(format!(
            "no linearization explains {}: at that point the register could only hold {}{}",
            describe(op),
            values.join(" or "),
            self.writes_around(op, read_value)
        ))
    }

    fn inconclusive(&self, segment: &[Event], configurations: u64) -> Violation {
        let from = segment.iter().map(|e| e.inv).min().unwrap_or_default();
        let to = segment.iter().map(|e| e.end).max().unwrap_or_default();
        self.violation(format!(
            "{INCONCLUSIVE}the search gave up after {configurations} configurations (limits: \
             {:?}) in a stretch of {} overlapping operations from {from:?} to {to:?}; there is \
             too much concurrency on this key to check it exhaustively",
            self.limits,
            segment.len()
        ))
    }

    fn written_elsewhere(&self, value: Value) -> String {
        self.ops
            .iter()
            .find(|op| op.op == Op::Write(value) && op.key != self.key)
            .map(|op| format!(" (it was written to key {:?})", op.key))
            .unwrap_or_default()
    }

    /// Lists the writes of this key relevant to `focus`: those of the value it returned, the
    /// last few that completed before it and those overlapping it. A write that never completed
    /// (or whose outcome is unknown) overlaps everything after it, so it is only listed when
    /// invoked after the earliest of those last few.
    fn writes_around(&self, focus: &Operation, read_value: Option<Value>) -> String {
        const BEFORE: usize = 3;
        const MAX: usize = 12;
        let focus_end = focus.completed.unwrap_or(Duration::MAX);
        let writes: Vec<&Operation> = self
            .indices
            .iter()
            .map(|&i| &self.ops[i])
            .filter(|op| matches!(op.op, Op::Write(_)))
            .collect();
        // A definite end: acknowledged or failed.
        let known_end = |op: &Operation| match op.outcome {
            Outcome::Unknown => None,
            _ => op.completed,
        };
        let mut before: Vec<&Operation> = writes
            .iter()
            .copied()
            .filter(|op| known_end(op).is_some_and(|end| end < focus.invoked))
            .collect();
        before.sort_by_key(|op| known_end(op));
        let before = &before[before.len().saturating_sub(BEFORE)..];
        let horizon = before.iter().map(|op| op.invoked).min().unwrap_or_default();
        // (rank, distance from the focus, operation): lower ranks are listed first if too many.
        let mut chosen: Vec<(u8, Duration, &Operation)> = Vec::new();
        for &op in &writes {
            let distance = op.invoked.abs_diff(focus.invoked);
            let overlaps = op.invoked <= focus_end
                && match known_end(op) {
                    Some(end) => end >= focus.invoked,
                    None => op.invoked >= horizon,
                };
            if read_value.is_some_and(|value| op.op == Op::Write(value)) {
                chosen.push((0, distance, op));
            } else if overlaps {
                chosen.push((1, distance, op));
            } else if before.iter().any(|b| std::ptr::eq(*b, op)) {
                chosen.push((2, distance, op));
            }
        }
        if chosen.is_empty() {
            return "; no write of this key is near it".to_owned();
        }
        chosen.sort_by_key(|&(rank, distance, _)| (rank, distance));
        let left_out = chosen.len().saturating_sub(MAX);
        chosen.truncate(MAX);
        chosen.sort_by_key(|&(_, _, op)| op.invoked);
        let mut text = String::from("; writes around it:");
        for (_, _, op) in chosen {
            text.push_str("\n  ");
            text.push_str(&describe(op));
        }
        if left_out > 0 {
            text.push_str(&format!("\n  ... and {left_out} more"));
        }
        text
    }
}

/// Turns acknowledged writes whose value no read returns into [`Step::Unread`].
fn mark_unread(required: &mut [Event]) {
    let read: HashSet<Value> = required
        .iter()
        .filter_map(|event| match event.step {
            Step::Read(value) => value,
            _ => None,
        })
        .collect();
    for event in required {
        if let Step::Write(value) = event.step
            && !read.contains(&value)
        {
            event.step = Step::Unread(value);
        }
    }
}

fn show(value: Option<Value>) -> String {
    match value {
        Some(value) => value.to_string(),
        None => "nothing (absent)".to_owned(),
    }
}

fn describe(op: &Operation) -> String {
    let what = match op.op {
        Op::Write(value) => format!("write of {value}"),
        Op::Read => "read".to_owned(),
    };
    let end = match (op.completed, &op.outcome) {
        (None, _) => "never completed".to_owned(),
        (Some(t), Outcome::Written) => format!("acknowledged at {t:?}"),
        (Some(t), Outcome::ReadValue(value)) => format!("returned {} at {t:?}", show(*value)),
        (Some(t), Outcome::Failed) => format!("failed at {t:?}"),
        (Some(t), Outcome::Unknown) => format!("outcome unknown at {t:?}"),
    };
    format!(
        "the {what} by process {} invoked at {:?} and {end}",
        op.process, op.invoked
    )
}

/// Cuts the key's history where nothing is pending: every operation before a cut precedes every
/// operation after it, so the segments can be searched one after the other. Both inputs are
/// sorted by invocation, so each segment is a range of each.
fn segments(required: &[Event], optional: &[Event]) -> Vec<(Range<usize>, Range<usize>)> {
    let mut cuts = Vec::new();
    let (mut i, mut j, mut req_start, mut opt_start) = (0, 0, 0, 0);
    let mut pending_until: Option<Duration> = None;
    while i < required.len() || j < optional.len() {
        let from_required =
            j >= optional.len() || (i < required.len() && required[i].inv <= optional[j].inv);
        let event = if from_required {
            &required[i]
        } else {
            &optional[j]
        };
        // Strictly before: an operation invoked at the very instant another completes counts
        // as concurrent with it.
        if let Some(until) = pending_until
            && until < event.inv
        {
            cuts.push((req_start..i, opt_start..j));
            (req_start, opt_start) = (i, j);
        }
        pending_until = Some(pending_until.map_or(event.end, |until| until.max(event.end)));
        if from_required {
            i += 1;
        } else {
            j += 1;
        }
    }
    if i > req_start || j > opt_start {
        cuts.push((req_start..i, opt_start..j));
    }
    cuts
}

/// A search configuration: which operations are linearized and the register's value.
///
/// Required operations `0..k` are all linearized; `bits` has bit `i` set when `k + i` is (it is
/// short because a linearized operation is never invoked after the completion of one that is
/// not). `used` lists the optional writes taken that could otherwise still be taken; one whose
/// deadline has passed is equivalent taken or not, so it is left out to merge configurations.
/// `max_inv` is the latest invocation among linearized operations. `since` is the earliest
/// completion among the last write of the segment and the reads linearized after it (`None`
/// before the segment's first write): an unread write invoked no later than that can be placed
/// just before that last write.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Config {
    k: usize,
    bits: Box<[u64]>,
    used: Box<[u32]>,
    value: Option<Value>,
    max_inv: Duration,
    since: Option<Duration>,
}

impl Config {
    fn linearized(&self, j: usize) -> bool {
        j < self.k
            || self
                .bits
                .get((j - self.k) / 64)
                .is_some_and(|word| (word >> ((j - self.k) % 64)) & 1 == 1)
    }
}

enum Failure {
    /// No configuration completes; `blocker` (a required index) is the operation the furthest
    /// dead ends could not place, with the register values they had.
    Stuck {
        blocker: usize,
        values: BTreeSet<Option<Value>>,
    },
    Budget {
        configurations: u64,
    },
}

/// A fast hasher for configurations: SipHash's resistance to crafted keys is not needed here.
#[derive(Default)]
struct ConfigHasher(u64);

impl std::hash::Hasher for ConfigHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }
}

type ConfigSet = HashSet<Config, std::hash::BuildHasherDefault<ConfigHasher>>;

/// The search over one segment. `req` and `opt` are sorted by invocation.
struct Search<'a> {
    req: &'a [Event],
    opt: &'a [Event],
}

/// How a successor linearizes a required operation.
enum Place {
    /// At the current end of the linearization; the register then holds this.
    Now(Option<Value>),
    /// An unread write, just before the segment's last write: the register is unchanged.
    BeforeLastWrite,
}

impl Search<'_> {
    /// Returns register values that complete linearizations of the segment can end with,
    /// starting from any of `inputs`: all of them, except that a value no read returns may be
    /// replaced by another value (which allows everything it allows).
    fn explore(
        &self,
        inputs: &BTreeSet<Option<Value>>,
        limits: CheckLimits,
        work: &mut u64,
    ) -> Result<BTreeSet<Option<Value>>, Failure> {
        let n = self.req.len();
        let mut layer: ConfigSet = inputs
            .iter()
            .map(|&value| Config {
                k: 0,
                bits: Box::new([]),
                used: Box::new([]),
                value,
                max_inv: Duration::ZERO,
                since: None,
            })
            .collect();
        let mut outputs = BTreeSet::new();
        let mut stuck: Option<(usize, BTreeSet<Option<Value>>)> = None;
        let mut successors = Vec::new();
        // Every step linearizes exactly one operation, so a configuration's successors are all
        // in the next layer and earlier layers can be forgotten.
        while !layer.is_empty() {
            let mut next = ConfigSet::with_capacity_and_hasher(layer.len(), Default::default());
            for config in &layer {
                *work += 1;
                if *work > limits.max_configurations {
                    return Err(Failure::Budget {
                        configurations: *work,
                    });
                }
                if config.k == n {
                    outputs.insert(config.value);
                }
                successors.clear();
                let blocker = self.successors(config, &mut successors);
                if successors.is_empty()
                    && let Some(blocker) = blocker
                {
                    // Report the dead end that got furthest through the segment.
                    match &mut stuck {
                        Some((best, values)) if *best == blocker => {
                            values.insert(config.value);
                        }
                        Some((best, _)) if *best > blocker => {}
                        _ => stuck = Some((blocker, BTreeSet::from([config.value]))),
                    }
                }
                next.extend(successors.drain(..));
                if next.len() > limits.max_frontier {
                    return Err(Failure::Budget {
                        configurations: *work,
                    });
                }
            }
            layer = next;
        }
        if outputs.is_empty() {
            let (blocker, values) = stuck.unwrap_or_else(|| (0, inputs.clone()));
            return Err(Failure::Stuck { blocker, values });
        }
        Ok(outputs)
    }

    /// Pushes the configurations reachable by linearizing one more operation. Returns the
    /// pending required operation that completes first (the one that must go next at the
    /// latest), if any.
    ///
    /// Two kinds of step are taken alone when possible, because they lose no solution: a read
    /// that returns the current value (it changes nothing, and linearizing it early only
    /// satisfies real-time order better), and an unread write placed just before the last
    /// write (the register keeps its value, which allows everything the unread value allows;
    /// that placement is also the only one tried when valid). Both are skipped if they would
    /// close the window of a pending optional write.
    fn successors(&self, config: &Config, out: &mut Vec<Config>) -> Option<usize> {
        let n = self.req.len();
        // Only operations invoked no later than the earliest completion among the pending
        // required ones can go next; a later invocation has that operation before it.
        let mut min_end = Duration::MAX;
        let mut blocker = None;
        let mut hi = config.k;
        while hi < n && self.req[hi].inv <= min_end {
            if !config.linearized(hi) && self.req[hi].end < min_end {
                min_end = self.req[hi].end;
                blocker = Some(hi);
            }
            hi += 1;
        }

        let mut optional = Vec::new();
        let mut min_deadline = Duration::MAX;
        for (o, event) in self.opt.iter().enumerate() {
            if event.inv > min_end {
                break;
            }
            let taken = config.used.binary_search(&(o as u32)).is_ok();
            if event.end >= config.max_inv && !taken {
                optional.push(o);
                min_deadline = min_deadline.min(event.end);
            }
        }

        let pending =
            (config.k..hi).filter(|&j| !config.linearized(j) && self.req[j].inv <= min_end);
        let mut places = Vec::new();
        for j in pending {
            let event = &self.req[j];
            let place = match event.step {
                Step::Read(read) if read == config.value => Place::Now(read),
                Step::Read(_) => continue,
                Step::Write(value) => Place::Now(Some(value)),
                Step::Unread(_) if config.since.is_some_and(|since| event.inv <= since) => {
                    Place::BeforeLastWrite
                }
                Step::Unread(value) => Place::Now(Some(value)),
            };
            let alone = matches!(
                (&place, event.step),
                (Place::BeforeLastWrite, _) | (Place::Now(_), Step::Read(_))
            );
            if alone && event.inv <= min_deadline {
                out.push(self.after_required(config, j, place));
                return blocker;
            }
            places.push((j, place));
        }
        for (j, place) in places {
            out.push(self.after_required(config, j, place));
        }
        for o in optional {
            if let Step::Write(value) = self.opt[o].step {
                out.push(self.after_optional(config, o, value));
            }
        }
        blocker
    }

    fn after_required(&self, config: &Config, j: usize, place: Place) -> Config {
        let event = &self.req[j];
        let rel = j - config.k;
        let mut words = config.bits.to_vec();
        if words.len() <= rel / 64 {
            words.resize(rel / 64 + 1, 0);
        }
        words[rel / 64] |= 1 << (rel % 64);
        let done = low_ones(&words);
        shift_right(&mut words, done);
        while words.last() == Some(&0) {
            words.pop();
        }
        let (value, since) = match place {
            Place::BeforeLastWrite => (config.value, config.since),
            Place::Now(value) => match event.step {
                Step::Read(_) => (value, config.since.map(|since| since.min(event.end))),
                Step::Write(_) | Step::Unread(_) => (value, Some(event.end)),
            },
        };
        let max_inv = config.max_inv.max(event.inv);
        Config {
            k: config.k + done,
            bits: words.into_boxed_slice(),
            used: self.relevant_used(&config.used, max_inv, None),
            value,
            max_inv,
            since,
        }
    }

    fn after_optional(&self, config: &Config, o: usize, value: Value) -> Config {
        let event = &self.opt[o];
        let max_inv = config.max_inv.max(event.inv);
        Config {
            k: config.k,
            bits: config.bits.clone(),
            used: self.relevant_used(&config.used, max_inv, Some(o as u32)),
            value: Some(value),
            max_inv,
            since: Some(event.end),
        }
    }

    /// The sorted `used` list plus `add`, without writes whose deadline is before `max_inv`.
    fn relevant_used(&self, used: &[u32], max_inv: Duration, add: Option<u32>) -> Box<[u32]> {
        if used.is_empty() && add.is_none() {
            return Box::new([]);
        }
        let mut kept: Vec<u32> = used
            .iter()
            .copied()
            .chain(add)
            .filter(|&o| self.opt[o as usize].end >= max_inv)
            .collect();
        kept.sort_unstable();
        kept.into_boxed_slice()
    }
}

/// The number of consecutive set bits starting at bit 0.
fn low_ones(words: &[u64]) -> usize {
    let mut count = 0;
    for word in words {
        let ones = word.trailing_ones() as usize;
        count += ones;
        if ones < 64 {
            break;
        }
    }
    count
}

/// Shifts the bitset down by `n` bits (bit `n` becomes bit 0).
fn shift_right(words: &mut Vec<u64>, n: usize) {
    let whole = (n / 64).min(words.len());
    words.drain(..whole);
    let bits = n % 64;
    if bits > 0 {
        for i in 0..words.len() {
            let high = words.get(i + 1).copied().unwrap_or(0);
            words[i] = (words[i] >> bits) | (high << (64 - bits));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn op(
        process: usize,
        key: &str,
        op: Op,
        invoked: u64,
        completed: Option<u64>,
        outcome: Outcome,
    ) -> Operation {
        Operation {
            process,
            key: key.to_owned(),
            op,
            invoked: ms(invoked),
            completed: completed.map(ms),
            outcome,
        }
    }

    /// An acknowledged write.
    fn write(process: usize, key: &str, value: Value, invoked: u64, completed: u64) -> Operation {
        op(
            process,
            key,
            Op::Write(value),
            invoked,
            Some(completed),
            Outcome::Written,
        )
    }

    /// A write with an unknown outcome (`completed: None` = never completed).
    fn unknown_write(
        process: usize,
        key: &str,
        value: Value,
        invoked: u64,
        completed: Option<u64>,
    ) -> Operation {
        op(
            process,
            key,
            Op::Write(value),
            invoked,
            completed,
            Outcome::Unknown,
        )
    }

    fn read(
        process: usize,
        key: &str,
        value: Option<Value>,
        invoked: u64,
        completed: u64,
    ) -> Operation {
        op(
            process,
            key,
            Op::Read,
            invoked,
            Some(completed),
            Outcome::ReadValue(value),
        )
    }

    /// Asserts a genuine violation, both with the pre-checks and by the search alone.
    fn assert_violation(ops: &[Operation]) -> Violation {
        let violation = match check(ops) {
            Ok(report) => panic!("expected a violation, got {report}"),
            Err(violation) => violation,
        };
        assert!(!violation.is_inconclusive(), "{violation}");
        match check_impl(ops, CheckLimits::default(), false) {
            Ok(report) => panic!("the search alone accepted it: {report}"),
            Err(v) => assert!(!v.is_inconclusive(), "{v}"),
        }
        violation
    }

    /// Asserts the history is accepted, both with the pre-checks and by the search alone.
    fn assert_linearizable(ops: &[Operation]) -> CheckReport {
        let report = check(ops).unwrap_or_else(|v| panic!("{v}"));
        check_impl(ops, CheckLimits::default(), false).unwrap_or_else(|v| panic!("search: {v}"));
        report
    }

    #[test]
    fn stale_read_after_completed_write_fails() {
        let ops = [
            write(0, "k", 1, 0, 10),
            write(1, "k", 2, 20, 30),
            read(2, "k", Some(1), 40, 50),
        ];
        let violation = assert_violation(&ops);
        assert_eq!(violation.key, "k");
        let text = violation.to_string();
        assert!(text.contains("returned 1"), "{text}");
        assert!(text.contains("could only hold 2"), "{text}");
        assert!(text.contains("write of 2"), "{text}");
    }

    #[test]
    fn lost_acknowledged_write_fails() {
        let mut ops = vec![write(0, "k", 1, 0, 10), write(1, "k", 2, 20, 30)];
        for i in 0..20 {
            ops.push(read(
                2 + i % 3,
                "k",
                Some(1),
                1_000 + 100 * i as u64,
                1_010 + 100 * i as u64,
            ));
        }
        assert_violation(&ops);
        // Reading it while the second write is still in flight is fine.
        assert_linearizable(&[
            write(0, "k", 1, 0, 10),
            write(1, "k", 2, 20, 3_000),
            read(2, "k", Some(1), 1_000, 1_010),
            read(2, "k", Some(2), 2_000, 2_010),
        ]);
    }

    #[test]
    fn read_of_never_written_value_fails() {
        let ops = [
            write(0, "k", 1, 0, 10),
            write(0, "other", 7, 0, 10),
            read(1, "k", Some(7), 20, 30),
        ];
        let violation = assert_violation(&ops);
        assert!(violation.message.contains("never written"), "{violation}");
        assert!(violation.message.contains("\"other\""), "{violation}");
    }

    #[test]
    fn readers_seeing_writes_in_opposite_orders_fails() {
        // Two long concurrent writes; one reader sees a then b, the other b then a, and the
        // reads do not overlap: a register would have to hold a, b, then a again.
        let ops = [
            write(0, "k", 1, 0, 100),
            write(1, "k", 2, 0, 100),
            read(2, "k", Some(1), 10, 11),
            read(3, "k", Some(2), 12, 13),
            read(2, "k", Some(2), 20, 21),
            read(3, "k", Some(1), 22, 23),
        ];
        let violation = assert_violation(&ops);
        assert!(
            violation.message.contains("no linearization"),
            "{violation}"
        );
        // Both readers seeing the same order is fine.
        assert_linearizable(&[
            write(0, "k", 1, 0, 100),
            write(1, "k", 2, 0, 100),
            read(2, "k", Some(1), 10, 11),
            read(3, "k", Some(1), 12, 13),
            read(2, "k", Some(2), 20, 21),
            read(3, "k", Some(2), 22, 23),
        ]);
    }

    #[test]
    fn read_before_its_write_was_invoked_fails() {
        let ops = [read(0, "k", Some(5), 0, 10), write(1, "k", 5, 20, 30)];
        let violation = assert_violation(&ops);
        assert!(
            violation.message.contains("only invoked after"),
            "{violation}"
        );
        // The same with an unknown write, which may take effect late but not early.
        assert_violation(&[
            read(0, "k", Some(5), 0, 10),
            unknown_write(1, "k", 5, 20, Some(30)),
        ]);
    }

    #[test]
    fn concurrent_write_and_read_sees_old_or_new() {
        for seen in [Some(1), Some(2)] {
            assert_linearizable(&[
                write(0, "k", 1, 0, 10),
                write(1, "k", 2, 20, 40),
                read(2, "k", seen, 25, 35),
            ]);
        }
        for seen in [None, Some(1)] {
            assert_linearizable(&[write(0, "k", 1, 0, 40), read(1, "k", seen, 10, 20)]);
        }
        // A read of absent after the write was acknowledged is not.
        assert_violation(&[write(0, "k", 1, 0, 10), read(1, "k", None, 20, 30)]);
    }

    #[test]
    fn unknown_write_taking_effect_late_or_never() {
        // Took effect long after the client gave up on it.
        assert_linearizable(&[
            write(0, "k", 1, 0, 10),
            unknown_write(1, "k", 2, 20, Some(30)),
            read(2, "k", Some(1), 40, 50),
            read(2, "k", Some(1), 1_000, 1_010),
            read(3, "k", Some(2), 5_000, 5_010),
            read(2, "k", Some(2), 6_000, 6_010),
        ]);
        // Never took effect; the same for a write that never completed.
        for completed in [Some(30), None] {
            assert_linearizable(&[
                write(0, "k", 1, 0, 10),
                unknown_write(1, "k", 2, 20, completed),
                read(2, "k", Some(1), 40, 50),
                read(2, "k", Some(1), 5_000, 5_010),
            ]);
        }
        // But once observed, it cannot be undone...
        assert_violation(&[
            write(0, "k", 1, 0, 10),
            unknown_write(1, "k", 2, 20, Some(30)),
            read(2, "k", Some(2), 40, 50),
            read(2, "k", Some(1), 1_000, 1_010),
        ]);
        // ...nor take effect twice around another write (across quiescent points).
        assert_violation(&[
            unknown_write(0, "k", 1, 0, None),
            read(1, "k", Some(1), 10, 20),
            write(2, "k", 2, 30, 40),
            read(1, "k", Some(1), 50, 60),
        ]);
    }

    #[test]
    fn failed_operations_are_ignored() {
        let failed_write = op(1, "k", Op::Write(2), 20, Some(30), Outcome::Failed);
        let failed_read = op(3, "k", Op::Read, 20, Some(30), Outcome::Failed);
        let unknown_read = op(3, "k", Op::Read, 20, None, Outcome::Unknown);
        assert_linearizable(&[
            write(0, "k", 1, 0, 10),
            failed_write.clone(),
            failed_read,
            unknown_read,
            read(2, "k", Some(1), 40, 50),
        ]);
        // A failed write never happened, so reading its value is a violation.
        assert_violation(&[
            write(0, "k", 1, 0, 10),
            failed_write,
            read(2, "k", Some(2), 40, 50),
        ]);
    }

    #[test]
    fn keys_are_checked_independently() {
        let ops = [
            write(0, "a", 1, 0, 10),
            write(1, "b", 2, 5, 15),
            read(2, "a", Some(1), 12, 20),
            read(3, "b", None, 0, 4),
            write(0, "a", 3, 20, 30),
            read(3, "b", Some(2), 16, 25),
            read(2, "a", Some(3), 31, 40),
            read(1, "c", None, 0, 100),
        ];
        let report = assert_linearizable(&ops);
        assert_eq!(
            report,
            CheckReport {
                keys: 3,
                operations: 8,
                unknown: 0
            }
        );
        // Value 2 was written, but to another key.
        let mut bad = ops.to_vec();
        bad.push(read(2, "a", Some(2), 50, 60));
        let violation = assert_violation(&bad);
        assert_eq!(violation.key, "a");
    }

    #[test]
    fn equal_timestamps_are_concurrent() {
        // A write completing at the instant a read is invoked may still follow it.
        assert_linearizable(&[write(0, "k", 1, 0, 10), read(1, "k", None, 10, 20)]);
        // A read completing at the instant its write is invoked may still see it.
        assert_linearizable(&[read(0, "k", Some(1), 0, 10), write(1, "k", 1, 10, 20)]);
        // Everything at one instant, in any order.
        assert_linearizable(&[
            read(0, "k", Some(2), 5, 5),
            write(1, "k", 1, 5, 5),
            read(2, "k", Some(1), 5, 5),
            write(3, "k", 2, 5, 5),
            read(4, "k", None, 5, 5),
        ]);
        // One tick apart is ordered.
        assert_violation(&[write(0, "k", 1, 0, 10), read(1, "k", None, 11, 20)]);
    }

    #[test]
    fn possible_values_carry_across_quiescent_points() {
        // Concurrent writes leave either value; after a quiet gap, a read picks one, and from
        // then on the other is gone.
        let base = [
            write(0, "k", 1, 0, 20),
            write(1, "k", 2, 10, 30),
            read(2, "k", Some(2), 100, 110),
        ];
        assert_linearizable(&base);
        let mut other = base.to_vec();
        other[2] = read(2, "k", Some(1), 100, 110);
        assert_linearizable(&other);
        let mut bad = base.to_vec();
        bad.push(read(2, "k", Some(1), 200, 210));
        assert_violation(&bad);
        // An unknown write stays possible across quiet gaps until its value is read.
        assert_linearizable(&[
            write(0, "k", 1, 0, 10),
            unknown_write(1, "k", 2, 20, Some(30)),
            read(2, "k", Some(1), 100, 110),
            write(0, "k", 3, 200, 210),
            read(2, "k", Some(3), 300, 310),
            read(2, "k", Some(2), 400, 410),
            read(2, "k", Some(2), 500, 510),
        ]);
    }

    #[test]
    fn malformed_and_odd_histories() {
        assert_linearizable(&[]);
        // Completion before invocation is reported, not panicked on.
        let backwards = op(0, "k", Op::Write(1), 10, Some(5), Outcome::Written);
        assert!(
            check(&[backwards])
                .unwrap_err()
                .message
                .contains("malformed")
        );
        let mismatched = op(0, "k", Op::Read, 0, Some(5), Outcome::Written);
        assert!(
            check(&[mismatched])
                .unwrap_err()
                .message
                .contains("malformed")
        );
        // Never completed with a recorded outcome: treated as unknown.
        assert_linearizable(&[
            op(0, "k", Op::Write(1), 0, None, Outcome::Written),
            read(1, "k", None, 10, 20),
        ]);
    }

    #[test]
    fn limits_make_the_check_inconclusive() {
        // Many concurrent writes, each seen by a concurrent read: any order of the writes is a
        // candidate, so the configurations are all subsets of them.
        let mut ops: Vec<Operation> = Vec::new();
        for value in 1..=24 {
            ops.push(write(value as usize, "k", value, 0, 100));
            ops.push(read(100 + value as usize, "k", Some(value), 0, 100));
        }
        let limits = CheckLimits {
            max_configurations: 10_000,
            max_frontier: 100_000,
        };
        let violation = check_with_limits(&ops, limits).unwrap_err();
        assert!(violation.is_inconclusive(), "{violation}");
        assert!(
            violation.to_string().contains("inconclusive"),
            "{violation}"
        );
    }

    #[test]
    fn history_records_from_many_threads() {
        let history = History::new();
        assert!(history.is_empty());
        let threads: Vec<_> = (0..4)
            .map(|p| {
                let history = history.clone();
                std::thread::spawn(move || {
                    for i in 0..10 {
                        let id = history.invoke(p, "k", Op::Read);
                        if i % 5 != 4 {
                            history.complete(id, Outcome::ReadValue(None));
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(history.len(), 40);
        let ops = history.operations();
        let pending: Vec<_> = ops.iter().filter(|op| op.completed.is_none()).collect();
        assert_eq!(pending.len(), 8);
        assert!(pending.iter().all(|op| op.outcome == Outcome::Unknown));
        assert!(
            ops.iter()
                .all(|op| op.completed.is_none_or(|c| c >= op.invoked))
        );
        let report = check(&ops).unwrap();
        assert_eq!(report.unknown, 8);

        // Only the first completion counts; ids of another history are ignored.
        let id = history.invoke(0, "k", Op::Write(1));
        history.complete(id, Outcome::Written);
        history.complete(id, Outcome::Failed);
        History::new().complete(id, Outcome::Failed);
        let last = history.operations().pop().unwrap();
        assert_eq!(last.outcome, Outcome::Written);
    }

    /// Simulates a real register per key under concurrent processes: each operation takes effect
    /// at a random instant of its interval (unknown writes also late, or never), and reads return
    /// what the register holds then.
    fn simulated_history(seed: u64, count: usize, processes: usize, keys: usize) -> Vec<Operation> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut clocks = vec![0u64; processes];
        let mut ops = Vec::with_capacity(count);
        // (instant of effect in µs, op index)
        let mut effects: Vec<(u64, usize)> = Vec::with_capacity(count);
        let mut next_value: Value = 1;
        for index in 0..count {
            let process = (0..processes).min_by_key(|&p| clocks[p]).unwrap_or(0);
            let key = format!("key-{}", rng.random_range(0..keys));
            let invoked = clocks[process] + rng.random_range(0..100);
            let slow = rng.random_bool(0.02);
            let latency = if slow {
                rng.random_range(1_000..20_000)
            } else {
                rng.random_range(0..400)
            };
            let completed = invoked + latency;
            clocks[process] = completed;
            let during = rng.random_range(invoked..=completed);
            let (op, completed, outcome) = if rng.random_bool(0.4) {
                let value = next_value;
                next_value += 1;
                let (outcome, completed, effect) = if slow {
                    let completed = rng.random_bool(0.8).then_some(completed);
                    let effect = match rng.random_range(0..3) {
                        0 => None,
                        1 => Some(during),
                        _ => Some(invoked + rng.random_range(0..50_000)),
                    };
                    (Outcome::Unknown, completed, effect)
                } else if rng.random_bool(0.01) {
                    (Outcome::Failed, Some(completed), None)
                } else {
                    (Outcome::Written, Some(completed), Some(during))
                };
                if let Some(effect) = effect {
                    effects.push((effect, index));
                }
                (Op::Write(value), completed, outcome)
            } else if slow {
                (Op::Read, Some(completed), Outcome::Unknown)
            } else {
                effects.push((during, index));
                // Filled in below, once the effects are in order.
                (Op::Read, Some(completed), Outcome::ReadValue(None))
            };
            ops.push(Operation {
                process,
                key,
                op,
                invoked: Duration::from_micros(invoked),
                completed: completed.map(Duration::from_micros),
                outcome,
            });
        }
        effects.sort_unstable();
        let mut registers: HashMap<String, Value> = HashMap::new();
        for (_, index) in effects {
            let operation = &mut ops[index];
            match operation.op {
                Op::Write(value) => {
                    registers.insert(operation.key.clone(), value);
                }
                Op::Read => {
                    operation.outcome = Outcome::ReadValue(registers.get(&operation.key).copied());
                }
            }
        }
        ops
    }

    #[test]
    fn large_random_valid_history_passes() {
        let ops = simulated_history(7, 24_000, 12, 8);
        let unknown_writes = ops
            .iter()
            .filter(|op| matches!(op.op, Op::Write(_)) && op.outcome == Outcome::Unknown)
            .count();
        assert!(unknown_writes >= 50, "only {unknown_writes} unknown writes");
        let started = Instant::now();
        let report = check(&ops).unwrap_or_else(|v| panic!("{v}"));
        eprintln!("{report} in {:?}", started.elapsed());
        assert_eq!(report.keys, 8);
        assert_eq!(report.operations, 24_000);
    }

    #[test]
    fn stale_read_mutation_is_caught() {
        let mut ops = simulated_history(11, 24_000, 12, 8);
        check(&ops).unwrap_or_else(|v| panic!("the unmutated history fails: {v}"));
        // Pick a read in the middle; find an acknowledged write that was overwritten by another
        // acknowledged write before the read started, and make the read return the old value.
        let acknowledged = |op: &Operation| op.outcome == Outcome::Written;
        let target = (ops.len() / 2..ops.len())
            .find_map(|r| {
                let reader = &ops[r];
                if !matches!(reader.outcome, Outcome::ReadValue(_)) {
                    return None;
                }
                let newer = ops
                    .iter()
                    .filter(|w| w.key == reader.key && acknowledged(w))
                    .filter(|w| w.completed.is_some_and(|c| c < reader.invoked))
                    .max_by_key(|w| w.completed)?;
                let older = ops
                    .iter()
                    .filter(|w| w.key == reader.key && acknowledged(w))
                    .filter(|w| w.completed.is_some_and(|c| c < newer.invoked))
                    .max_by_key(|w| w.completed)?;
                match older.op {
                    Op::Write(stale) => Some((r, stale)),
                    Op::Read => None,
                }
            })
            .unwrap();
        let (r, stale) = target;
        ops[r].outcome = Outcome::ReadValue(Some(stale));
        let violation = check(&ops).unwrap_err();
        assert!(!violation.is_inconclusive(), "{violation}");
        assert_eq!(violation.key, ops[r].key);
        assert!(
            violation.message.contains(&format!("returned {stale}")),
            "{violation}"
        );
    }

    /// Decides linearizability of a one-key history by trying every order of every subset of
    /// the unknown writes together with the required operations.
    fn brute_force(ops: &[Operation]) -> bool {
        #[derive(Clone, Copy)]
        enum Effect {
            Write(Value),
            Read(Option<Value>),
        }
        type Item = (Duration, Duration, Effect);
        let mut required: Vec<Item> = Vec::new();
        let mut optional: Vec<Item> = Vec::new();
        for op in ops {
            match (&op.op, op.completed, &op.outcome) {
                (_, Some(_), Outcome::Failed) | (Op::Read, None, _) => {}
                (Op::Read, Some(_), Outcome::Unknown) => {}
                (Op::Read, Some(end), Outcome::ReadValue(v)) => {
                    required.push((op.invoked, end, Effect::Read(*v)));
                }
                (Op::Write(v), Some(end), Outcome::Written) => {
                    required.push((op.invoked, end, Effect::Write(*v)));
                }
                (Op::Write(v), _, _) => {
                    optional.push((op.invoked, Duration::MAX, Effect::Write(*v)))
                }
                _ => unreachable!("the generator makes no malformed operations"),
            }
        }
        fn search(rest: &mut Vec<Item>, value: Option<Value>) -> bool {
            if rest.is_empty() {
                return true;
            }
            for i in 0..rest.len() {
                let candidate = rest[i];
                // Nothing left may have to come before the candidate.
                if rest.iter().any(|other| other.1 < candidate.0) {
                    continue;
                }
                let next = match candidate.2 {
                    Effect::Write(written) => Some(written),
                    Effect::Read(read) if read == value => value,
                    Effect::Read(_) => continue,
                };
                let _ = rest.remove(i);
                let found = search(rest, next);
                rest.insert(i, candidate);
                if found {
                    return true;
                }
            }
            false
        }
        (0u32..1 << optional.len()).any(|subset| {
            let mut rest = required.clone();
            rest.extend(
                optional
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| subset >> i & 1 == 1)
                    .map(|(_, o)| *o),
            );
            search(&mut rest, None)
        })
    }

    #[test]
    fn agrees_with_brute_force_on_small_histories() {
        let mut rng = StdRng::seed_from_u64(42);
        let (mut passed, mut failed) = (0, 0);
        for round in 0..20_000 {
            // Half the histories reuse values: correctness must not depend on uniqueness.
            let unique = round % 2 == 0;
            let count = rng.random_range(1..=7);
            let mut ops = Vec::new();
            let mut written = vec![];
            for i in 0..count {
                let invoked = rng.random_range(0..12);
                let completed = invoked + rng.random_range(0..6);
                if rng.random_bool(0.45) {
                    let value = if unique {
                        i as Value + 1
                    } else {
                        rng.random_range(1..4)
                    };
                    written.push(value);
                    let (completed, outcome) = match rng.random_range(0..10) {
                        0..=5 => (Some(completed), Outcome::Written),
                        6 | 7 => (Some(completed), Outcome::Unknown),
                        8 => (None, Outcome::Unknown),
                        _ => (Some(completed), Outcome::Failed),
                    };
                    ops.push(op(i, "k", Op::Write(value), invoked, completed, outcome));
                } else {
                    let outcome = if rng.random_bool(0.1) {
                        Outcome::Unknown
                    } else if written.is_empty() || rng.random_bool(0.15) {
                        Outcome::ReadValue(None)
                    } else {
                        // Mostly values written so far, sometimes one written later.
                        let pick = rng.random_range(0..written.len() + 1);
                        Outcome::ReadValue(Some(written.get(pick).copied().unwrap_or(99)))
                    };
                    ops.push(op(i, "k", Op::Read, invoked, Some(completed), outcome));
                }
            }
            // Written values are read before their write too (invocation order is shuffled).
            let expected = brute_force(&ops);
            for prechecks in [true, false] {
                let got = check_impl(&ops, CheckLimits::default(), prechecks);
                assert_eq!(
                    got.is_ok(),
                    expected,
                    "prechecks {prechecks}: {got:?} for {ops:#?}"
                );
            }
            if expected {
                passed += 1;
            } else {
                failed += 1;
            }
        }
        eprintln!("{passed} linearizable, {failed} not");
        assert!(passed > 2_000 && failed > 2_000);
    }

    #[test]
    fn contended_single_key_passes() {
        // Every process on one key: few quiescent points, long segments.
        let ops = simulated_history(3, 6_000, 8, 1);
        let started = Instant::now();
        let report = check(&ops).unwrap_or_else(|v| panic!("{v}"));
        eprintln!("{report} in {:?}", started.elapsed());
    }
}
