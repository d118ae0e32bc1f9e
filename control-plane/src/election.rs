//! Pre-vote (the Raft thesis, §9.6), which openraft 0.9 lacks. A voter that no longer hears
//! a leader first asks the other voters whether they would elect it, and stands only when a
//! majority would. openraft's own election timer is off (`enable_elect: false` in
//! `Config::raft_config`): [`run`] is what starts every election after the first.
//!
//! Why: without it the follower whose random timeout ran out first stood even with the
//! shorter log. It was refused, had raised the term for everyone, and the longer log's holder
//! could only win a round later, so one leader kill in a hundred took over 1.5 s. Now a voter
//! with the shorter log never stands, and the voter it asked, holding the longer log, stands
//! at once. A member cut off from the others also stops raising the term, so it no longer
//! unseats a healthy leader when it comes back.
//!
//! Safety is Raft's vote alone: a pre-vote grants nothing, so a wrong answer costs time only.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use openraft::ServerState;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics::{METRICS, ResultLabel};
use crate::raft_node::{ControlPlane, member_address};
use crate::raft_transport::{RaftMethod, call};
use crate::raft_types::{LogId, NodeId};

/// "Would you elect me?", sent before standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreVoteRequest {
    pub candidate: NodeId,
    pub last_log: Option<LogId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PreVoteAnswer {
    /// This voter has lost its leader too, and the candidate's log is at least as long.
    Granted,
    /// This voter leads, or heard its leader within the lease.
    LeaderAlive,
    /// This voter's log is longer: it stands itself, now.
    LogAhead,
    /// This voter is asking too, with a log as long, and goes first (the higher id does).
    Standing,
    /// This voter votes in no election (a learner, or rejoining after losing its data).
    NoVote,
}

/// A voter's own state when it answers or decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Local {
    pub id: NodeId,
    pub voter: bool,
    pub leader: bool,
    /// No leader's word within the lease: its vote is not a leader's, or the leader's lease
    /// (openraft's: the maximum election timeout since the last message) has run out. Raft's
    /// own vote refuses a candidate on the same grounds.
    pub leader_silent: bool,
    pub last_log: Option<LogId>,
    /// In a pre-vote round of its own.
    pub standing: bool,
}

/// How a voter answers a pre-vote: as it would answer the vote, plus the tie-break.
pub fn answer(local: &Local, request: &PreVoteRequest) -> PreVoteAnswer {
    if !local.voter {
        PreVoteAnswer::NoVote
    } else if local.leader || !local.leader_silent {
        PreVoteAnswer::LeaderAlive
    } else if request.last_log < local.last_log {
        PreVoteAnswer::LogAhead
    } else if local.standing && (local.last_log, local.id) > (request.last_log, request.candidate) {
        PreVoteAnswer::Standing
    } else {
        PreVoteAnswer::Granted
    }
}

/// Whether grants from `granted` other voters, with the candidate's own, make a majority.
pub fn won(voters: usize, granted: usize) -> bool {
    granted + 1 > voters / 2
}

/// The election timings, as openraft's config gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a voter trusts a leader after its last message (openraft: the maximum
    /// election timeout).
    pub lease: Duration,
    pub min: Duration,
    pub max: Duration,
}

impl Timing {
    /// How long a voter waits since its vote last changed or was confirmed, before asking;
    /// `draw` in [0, 1) is random, drawn once for each such moment. After a leader's lease
    /// the spread is short: the pre-vote settles who goes first. Without a leader (a lost
    /// election) it is Raft's randomized timeout.
    pub fn wait(&self, leader_vote: bool, draw: f64) -> Duration {
        let spread = self.max.saturating_sub(self.min);
        if leader_vote {
            self.lease + spread.mul_f64(draw / 4.0)
        } else {
            self.min + spread.mul_f64(draw)
        }
    }

    /// How soon a voter asks again after a round it did not win.
    pub fn retry(&self, draw: f64) -> Duration {
        let base = self.min / 10;
        base + base.mul_f64(draw)
    }
}

/// The driver's state shared with the pre-vote handler.
pub struct Elections {
    timing: Timing,
    standing: AtomicBool,
    /// After granting a pre-vote this voter does not ask for itself for a while, so it does
    /// not race the candidate it just encouraged.
    held_until: Mutex<Option<Instant>>,
    /// Rung when a candidate with a shorter log asked: this voter should stand now.
    wake: Notify,
}

/// openraft's view of this voter's vote: whether it is a leader's, and when it last changed
/// or was confirmed by that leader.
struct VoteState {
    leader_vote: bool,
    since: Option<Instant>,
}

impl Elections {
    pub fn new(timing: Timing) -> Elections {
        Elections {
            timing,
            standing: AtomicBool::new(false),
            held_until: Mutex::new(None),
            wake: Notify::new(),
        }
    }

    /// Answers a candidate's pre-vote (the `Raft/PreVote` call).
    pub async fn answer(&self, node: &ControlPlane, request: &PreVoteRequest) -> PreVoteAnswer {
        if node.rejoin.is_active() {
            return PreVoteAnswer::NoVote;
        }
        let Some((local, _)) = self.local(node).await else {
            return PreVoteAnswer::NoVote;
        };
        let reply = answer(&local, request);
        match reply {
            PreVoteAnswer::Granted => {
                *self.held_until.lock().expect("election lock") =
                    Some(Instant::now() + self.timing.min);
            }
            PreVoteAnswer::LogAhead => self.wake.notify_one(),
            _ => {}
        }
        reply
    }

    async fn local(&self, node: &ControlPlane) -> Option<(Local, VoteState)> {
        let vote = node
            .raft
            .with_raft_state(|st| VoteState {
                leader_vote: st.vote_ref().is_committed(),
                since: st.vote_last_modified(),
            })
            .await
            .ok()?;
        let metrics = node.raft.metrics().borrow().clone();
        let last_log = node.raft.data_metrics().borrow().last_log;
        let now = Instant::now();
        let leader_silent =
            !vote.leader_vote || vote.since.is_none_or(|t| now > t + self.timing.lease);
        let local = Local {
            id: node.id,
            voter: metrics
                .membership_config
                .membership()
                .voter_ids()
                .any(|v| v == node.id),
            leader: metrics.state == ServerState::Leader,
            leader_silent,
            last_log,
            standing: self.standing.load(Ordering::SeqCst),
        };
        Some((local, vote))
    }

    fn held(&self) -> bool {
        self.held_until
            .lock()
            .expect("election lock")
            .is_some_and(|t| Instant::now() < t)
    }
}

/// Starts elections on this member when its leader falls silent, after a pre-vote; ends
/// when Raft shuts down.
pub async fn run(node: std::sync::Arc<ControlPlane>) {
    let elections = &node.elections;
    let timing = elections.timing;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The vote moment the current wait was drawn for, and the earliest next round.
    let mut drawn_for: Option<Option<Instant>> = None;
    let mut next_round = Instant::now();
    loop {
        let woken = tokio::select! {
            _ = tick.tick() => false,
            _ = elections.wake.notified() => true,
        };
        let state = node.raft.metrics().borrow().state;
        match state {
            ServerState::Shutdown => return,
            ServerState::Leader | ServerState::Learner => continue,
            ServerState::Follower | ServerState::Candidate => {}
        }
        if node.rejoin.is_active() {
            continue;
        }
        let Some((local, vote)) = elections.local(&node).await else {
            return;
        };
        if !local.voter || !local.leader_silent {
            continue;
        }
        let now = Instant::now();
        if drawn_for != Some(vote.since) {
            drawn_for = Some(vote.since);
            let wait = timing.wait(vote.leader_vote, rand::random::<f64>());
            next_round = vote.since.map_or(now, |t| t + wait);
        }
        if !woken && (now < next_round || elections.held()) {
            continue;
        }
        elections.standing.store(true, Ordering::SeqCst);
        let won = pre_vote_round(&node, local.last_log).await;
        elections.standing.store(false, Ordering::SeqCst);
        METRICS
            .pre_votes
            .get_or_create(&ResultLabel {
                result: if won { "won" } else { "lost" },
            })
            .inc();
        next_round = Instant::now() + timing.retry(rand::random::<f64>());
        if won {
            // Only if no leader spoke up during the round.
            let still = elections.local(&node).await;
            if still.is_some_and(|(l, v)| l.leader_silent && !l.leader && v.since == vote.since) {
                tracing::info!(last_log = ?local.last_log, "pre-vote won: standing for election");
                if node.raft.trigger().elect().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Asks every other voter; true once a majority (this voter included) would elect it.
async fn pre_vote_round(node: &ControlPlane, last_log: Option<LogId>) -> bool {
    let metrics = node.raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: Vec<NodeId> = membership.voter_ids().collect();
    let request = PreVoteRequest {
        candidate: node.id,
        last_log,
    };
    let mut asks: FuturesUnordered<_> = voters
        .iter()
        .filter(|v| **v != node.id)
        .filter_map(|v| {
            let address = member_address(membership, &node.initial_peers, *v)?;
            let mut client = node.peers.client(&address).ok()?;
            Some(async move {
                let reply = call::<_, PreVoteAnswer>(
                    &mut client,
                    RaftMethod::PreVote,
                    &request,
                    Duration::from_millis(100),
                )
                .await;
                if let Err(status) = &reply {
                    node.peers.after_failure(&address, status);
                }
                reply
            })
        })
        .collect();
    let mut granted = 0;
    if won(voters.len(), granted) {
        return true;
    }
    while let Some(reply) = asks.next().await {
        if let Ok(PreVoteAnswer::Granted) = reply {
            granted += 1;
            if won(voters.len(), granted) {
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn log(term: u64, index: u64) -> Option<LogId> {
        Some(LogId::new(CommittedLeaderId::new(term, 0), index))
    }

    fn silent(id: NodeId, last_log: Option<LogId>) -> Local {
        Local {
            id,
            voter: true,
            leader: false,
            leader_silent: true,
            last_log,
            standing: false,
        }
    }

    fn ask(candidate: NodeId, last_log: Option<LogId>) -> PreVoteRequest {
        PreVoteRequest {
            candidate,
            last_log,
        }
    }

    #[test]
    fn a_voter_that_lost_its_leader_too_grants_a_candidate_with_as_long_a_log() {
        assert_eq!(
            answer(&silent(2, log(3, 10)), &ask(1, log(3, 10))),
            PreVoteAnswer::Granted
        );
        assert_eq!(
            answer(&silent(2, log(3, 10)), &ask(1, log(3, 11))),
            PreVoteAnswer::Granted
        );
        assert_eq!(
            answer(&silent(2, log(3, 10)), &ask(1, log(4, 5))),
            PreVoteAnswer::Granted
        );
        assert_eq!(
            answer(&silent(2, None), &ask(1, None)),
            PreVoteAnswer::Granted
        );
    }

    #[test]
    fn a_voter_that_still_hears_a_leader_or_leads_grants_nothing() {
        let mut hears = silent(2, log(3, 10));
        hears.leader_silent = false;
        assert_eq!(
            answer(&hears, &ask(1, log(3, 99))),
            PreVoteAnswer::LeaderAlive
        );
        let mut leads = silent(2, log(3, 10));
        leads.leader = true;
        assert_eq!(
            answer(&leads, &ask(1, log(3, 99))),
            PreVoteAnswer::LeaderAlive
        );
    }

    #[test]
    fn a_voter_with_the_longer_log_refuses_and_says_it_stands_itself() {
        assert_eq!(
            answer(&silent(2, log(3, 11)), &ask(1, log(3, 10))),
            PreVoteAnswer::LogAhead
        );
        // A later term outranks a longer log of an earlier one, as in Raft's vote.
        assert_eq!(
            answer(&silent(2, log(4, 1)), &ask(1, log(3, 50))),
            PreVoteAnswer::LogAhead
        );
        assert_eq!(
            answer(&silent(2, log(1, 1)), &ask(1, None)),
            PreVoteAnswer::LogAhead
        );
    }

    #[test]
    fn two_voters_asking_at_once_with_equal_logs_let_the_higher_id_go_first() {
        let mut two = silent(2, log(3, 10));
        two.standing = true;
        let mut one = silent(1, log(3, 10));
        one.standing = true;
        assert_eq!(answer(&two, &ask(1, log(3, 10))), PreVoteAnswer::Standing);
        assert_eq!(answer(&one, &ask(2, log(3, 10))), PreVoteAnswer::Granted);
        // A longer log goes first whatever the ids.
        assert_eq!(answer(&two, &ask(1, log(3, 11))), PreVoteAnswer::Granted);
    }

    #[test]
    fn a_learner_votes_in_no_election() {
        let mut learner = silent(4, None);
        learner.voter = false;
        assert_eq!(answer(&learner, &ask(1, log(3, 10))), PreVoteAnswer::NoVote);
    }

    #[test]
    fn a_majority_counts_the_candidates_own_vote() {
        assert!(won(1, 0));
        assert!(!won(3, 0));
        assert!(won(3, 1));
        assert!(!won(5, 1));
        assert!(won(5, 2));
        assert!(!won(4, 1));
        assert!(won(4, 2));
    }

    #[test]
    fn after_a_leaders_lease_voters_ask_within_a_quarter_of_the_spread() {
        let timing = Timing {
            lease: Duration::from_millis(400),
            min: Duration::from_millis(200),
            max: Duration::from_millis(400),
        };
        assert_eq!(timing.wait(true, 0.0), Duration::from_millis(400));
        assert_eq!(timing.wait(true, 0.999), Duration::from_micros(449_950));
        assert_eq!(timing.wait(false, 0.0), Duration::from_millis(200));
        assert_eq!(timing.wait(false, 0.5), Duration::from_millis(300));
        assert_eq!(timing.retry(0.0), Duration::from_millis(20));
        assert_eq!(timing.retry(0.5), Duration::from_millis(30));
    }
}
