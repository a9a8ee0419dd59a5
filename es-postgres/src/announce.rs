//! When a store tells other processes about its commits (`NOTIFY` on its channel).
//!
//! Every `NOTIFY` costs the server a queue entry and a signal to each listening backend, and
//! a standalone one costs a transaction of its own on a pool connection besides. So a store
//! announces at most once per [`INTERVAL`], and the cheap way when it can: an append that
//! finds the interval over *claims* the announcement and carries the `pg_notify` in its own
//! statement, sent at its commit. Commits that come while the interval runs are *pending*:
//! the next claiming append announces them (its commit comes after theirs), and when no append
//! comes, the notifier task sends one `NOTIFY` itself after [`NOTIFIER_DELAY`].
//!
//! The notification is carried by one append in an interval, not by every one: until
//! PostgreSQL 17, a transaction that notifies holds a global lock from its pre-commit until its
//! commit is flushed, which would make concurrent appends commit one at a time.
//!
//! And a store announces only while some other process listens: a listening store registers
//! its instance in the `listeners` table, and the notifier looks there, at most once per
//! [`LISTENERS_CHECK`], whenever commits are pending. While nobody listens, no append claims
//! and the pending commits are simply dropped at the next check, since a reader that starts
//! listening later reads the log once it listens. A check that finds a listener announces
//! what is pending, so a reader that registered just after a check hears of the commits since
//! within [`LISTENERS_CHECK`]. An append that carries the announcement costs the server more to
//! bind and execute than one that does not (M14 in `es-bench/README.md`).

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// At most one announcement per interval.
pub(crate) const INTERVAL: Duration = Duration::from_millis(10);

/// How long after the last claim the notifier announces pending commits itself. Longer than
/// [`INTERVAL`], so a stream of appends carries its announcements and the notifier, waking at
/// the same moment, does not race it into a transaction of its own.
pub(crate) const NOTIFIER_DELAY: Duration = Duration::from_millis(20);

/// How often, at most, the notifier looks for other processes' listeners (and only while
/// commits are pending): the longest a reader that registers waits to hear of other stores'
/// commits, beyond its own first read.
pub(crate) const LISTENERS_CHECK: Duration = Duration::from_millis(250);

/// What the last look at the `listeners` table found. Until a look succeeds, a store announces
/// as if someone listened: a failed look (an unmigrated schema, a lost connection) must not
/// leave readers without notifications.
const LISTENERS_UNKNOWN: u8 = 0;
const NOBODY_LISTENS: u8 = 1;
const SOMEONE_LISTENS: u8 = 2;

/// The shared state of one store's announcements.
#[derive(Debug)]
pub(crate) struct Announcer {
    epoch: Instant,
    /// Microseconds from `epoch` to the last claim, plus [`INTERVAL`] (so 0 is a claim long
    /// enough ago: the first append may claim at once).
    claimed_at: AtomicU64,
    /// Commits since the last claim that no claim covers yet.
    pending: AtomicBool,
    /// Set when the store's last handle goes: the notifier announces what is pending at once,
    /// claim or no claim, and stops.
    closing: AtomicBool,
    /// Whether another process listens: [`LISTENERS_UNKNOWN`], [`NOBODY_LISTENS`] or
    /// [`SOMEONE_LISTENS`].
    listeners: AtomicU8,
    /// When (as [`Self::now`] counts) the notifier may look at the listeners again.
    next_check: AtomicU64,
    /// Wakes the notifier task when a commit becomes pending, or the store closes.
    pub(crate) signal: tokio::sync::Notify,
}

/// A claim on announcing, held by an append (or the notifier) until its commit. Dropped
/// without [`Claim::carried`] (the append failed, wrote nothing, or was cancelled), it hands
/// the pending commits it took over back, so none goes unannounced.
#[derive(Debug)]
#[must_use = "a claim is for announcing: call `carried` once the announcement committed"]
pub(crate) struct Claim<'a> {
    announcer: &'a Announcer,
    /// Whether pending commits were handed over to this claim.
    took_pending: bool,
    carried: bool,
}

impl Claim<'_> {
    /// The announcement committed: every commit before it is announced.
    pub(crate) fn carried(mut self) {
        self.carried = true;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.carried && self.took_pending {
            self.announcer.committed_unannounced();
        }
    }
}

impl Announcer {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            claimed_at: AtomicU64::new(0),
            pending: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            listeners: AtomicU8::new(LISTENERS_UNKNOWN),
            next_check: AtomicU64::new(0),
            signal: tokio::sync::Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        micros(self.epoch.elapsed().saturating_add(INTERVAL))
    }

    /// Claims the announcement if none was claimed for an [`INTERVAL`] and another process
    /// may listen: the claimant's commit then announces every commit before it, the pending
    /// ones included.
    pub(crate) fn claim(&self) -> Option<Claim<'_>> {
        self.claim_at(self.now())
    }

    fn claim_at(&self, now: u64) -> Option<Claim<'_>> {
        if self.nobody_listens() {
            return None;
        }
        let last = self.claimed_at.load(Ordering::Acquire);
        if now.saturating_sub(last) < micros(INTERVAL) {
            return None;
        }
        self.claimed_at
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .ok()?;
        Some(Claim {
            announcer: self,
            took_pending: self.pending.swap(false, Ordering::AcqRel),
            carried: false,
        })
    }

    /// After a commit that carried no announcement: it is pending, and the notifier is woken
    /// (once per change to pending: while commits are pending it has been woken already).
    pub(crate) fn committed_unannounced(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.signal.notify_one();
        }
    }

    /// Takes every interval from now on, and someone to listen: no append claims, and the
    /// notifier neither looks at the listeners nor announces (until the store closes), for
    /// tests of what carries no announcement.
    #[cfg(test)]
    pub(crate) fn silence(&self) {
        self.claimed_at.store(u64::MAX / 2, Ordering::Release);
        self.next_check.store(u64::MAX / 2, Ordering::Release);
        self.listeners.store(SOMEONE_LISTENS, Ordering::Release);
    }

    /// The store's last handle went: the notifier's last round.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.signal.notify_one();
    }

    /// Whether [`close`](Self::close) was called.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Whether commits wait for an announcement.
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Whether the last look found no other process listening: nothing needs announcing.
    pub(crate) fn nobody_listens(&self) -> bool {
        self.listeners.load(Ordering::Acquire) == NOBODY_LISTENS
    }

    /// How long until the notifier may look at the listeners again (zero: now).
    pub(crate) fn check_wait(&self) -> Duration {
        self.check_wait_at(self.now())
    }

    fn check_wait_at(&self, now: u64) -> Duration {
        Duration::from_micros(self.next_check.load(Ordering::Acquire).saturating_sub(now))
    }

    /// The notifier is about to look at the listeners: returns the pending commits, which
    /// that look covers (a reader that registers after it reads them from the log), and
    /// holds the next look off for [`LISTENERS_CHECK`].
    pub(crate) fn start_check(&self) -> bool {
        self.start_check_at(self.now())
    }

    fn start_check_at(&self, now: u64) -> bool {
        self.next_check.store(
            now.saturating_add(micros(LISTENERS_CHECK)),
            Ordering::Release,
        );
        self.pending.swap(false, Ordering::AcqRel)
    }

    /// What the look that [`start_check`](Self::start_check) began found (`None`: it
    /// failed). `covered` is what `start_check` returned: when someone may listen, those
    /// commits are pending again, to be announced.
    pub(crate) fn checked(&self, someone_listens: Option<bool>, covered: bool) {
        let state = match someone_listens {
            Some(true) => SOMEONE_LISTENS,
            Some(false) => NOBODY_LISTENS,
            None => LISTENERS_UNKNOWN,
        };
        self.listeners.store(state, Ordering::Release);
        if covered && state != NOBODY_LISTENS {
            self.pending.store(true, Ordering::Release);
        }
    }

    /// How long the notifier waits before it may announce pending commits itself.
    pub(crate) fn notifier_wait(&self) -> Duration {
        self.notifier_wait_at(self.now())
    }

    fn notifier_wait_at(&self, now: u64) -> Duration {
        let due = self
            .claimed_at
            .load(Ordering::Acquire)
            .saturating_add(micros(NOTIFIER_DELAY));
        Duration::from_micros(due.saturating_sub(now))
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000;

    #[test]
    fn the_first_append_claims_and_the_next_within_the_interval_does_not() {
        let announcer = Announcer::new();
        let first = announcer.claim_at(micros(INTERVAL));
        assert!(first.as_ref().is_some_and(|claim| !claim.took_pending));
        drop(first);
        assert!(announcer.claim_at(micros(INTERVAL) + 9 * MS).is_none());
        assert!(announcer.claim_at(micros(INTERVAL) + 10 * MS).is_some());
    }

    #[test]
    fn a_claim_takes_over_pending_commits_and_hands_them_back_when_it_fails() {
        let announcer = Announcer::new();
        let start = micros(INTERVAL);
        assert!(announcer.claim_at(start).is_some());
        announcer.committed_unannounced();
        assert!(announcer.is_pending());

        let claim = announcer.claim_at(start + 10 * MS);
        assert!(claim.as_ref().is_some_and(|claim| claim.took_pending));
        assert!(
            !announcer.is_pending(),
            "the claim covers the pending commit"
        );
        drop(claim);
        assert!(
            announcer.is_pending(),
            "a failed claim must not lose the pending commit"
        );

        let claim = announcer.claim_at(start + 20 * MS);
        assert!(claim.as_ref().is_some_and(|claim| claim.took_pending));
        if let Some(claim) = claim {
            claim.carried();
        }
        assert!(
            !announcer.is_pending(),
            "a carried claim announced the pending commit"
        );
    }

    #[test]
    fn nobody_listening_no_append_claims_and_a_look_drops_what_it_covers() {
        let announcer = Announcer::new();
        let start = micros(INTERVAL);
        assert_eq!(
            announcer.check_wait_at(start),
            Duration::ZERO,
            "never looked"
        );
        announcer.committed_unannounced();
        let covered = announcer.start_check_at(start);
        assert!(covered);
        assert_eq!(announcer.check_wait_at(start), LISTENERS_CHECK);
        // A commit while the look runs is not covered by it.
        announcer.committed_unannounced();
        announcer.checked(Some(false), covered);
        assert!(announcer.nobody_listens());
        assert!(
            announcer.is_pending(),
            "the commit during the look was dropped"
        );
        assert!(announcer.claim_at(start + 10 * MS).is_none());

        let covered = announcer.start_check_at(start + 250 * MS);
        announcer.checked(Some(false), covered);
        assert!(
            !announcer.is_pending(),
            "nobody listens: nothing to announce"
        );
    }

    #[test]
    fn a_look_that_finds_a_listener_or_fails_keeps_what_it_covers_pending() {
        for found in [Some(true), None] {
            let announcer = Announcer::new();
            let start = micros(INTERVAL);
            let covered = announcer.start_check_at(start);
            announcer.checked(Some(false), covered);
            announcer.committed_unannounced();
            let covered = announcer.start_check_at(start + 250 * MS);
            assert!(!announcer.is_pending(), "the look holds what it covers");
            announcer.checked(found, covered);
            assert!(!announcer.nobody_listens());
            assert!(
                announcer.is_pending(),
                "{found:?}: the covered commit was dropped"
            );
            let claim = announcer.claim_at(start + 250 * MS);
            assert!(claim.is_some_and(|claim| claim.took_pending));
        }
    }

    #[test]
    fn the_notifier_waits_two_intervals_after_the_last_claim() {
        let announcer = Announcer::new();
        let start = micros(INTERVAL);
        assert!(announcer.claim_at(start).is_some());
        assert_eq!(announcer.notifier_wait_at(start), NOTIFIER_DELAY);
        assert_eq!(
            announcer.notifier_wait_at(start + 5 * MS),
            NOTIFIER_DELAY - Duration::from_millis(5)
        );
        // A later claim by an append moves the notifier's deadline.
        assert!(announcer.claim_at(start + 12 * MS).is_some());
        assert_eq!(
            announcer.notifier_wait_at(start + 20 * MS),
            Duration::from_millis(12)
        );
        assert_eq!(announcer.notifier_wait_at(start + 40 * MS), Duration::ZERO);
    }
}
