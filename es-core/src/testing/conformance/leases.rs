//! Cases on projection leases: one holder at a time, a new epoch whenever the lease is taken
//! anew, a fence that keeps a worker that lost its lease from committing, and the hand-over a
//! rebuild asks for.

use std::time::{Duration, Instant};

use super::helpers::{OrFail as _, checkpoint};
use crate::store::checkpoint::CheckpointStore;
use crate::store::error::BackendErrorKind;
use crate::store::event_store::EventStore;
use crate::store::lease::{Lease, LeaseRenewal};
use crate::stream::{GlobalPosition, LogPosition};

/// Long enough that no case's lease runs out while it works.
const LONG: Duration = Duration::from_secs(60);

async fn acquire<S: CheckpointStore>(store: &S, owner: &str, ttl: Duration) -> Option<Lease> {
    store
        .acquire_lease("conformance-projection", owner, ttl)
        .await
        .or_fail(format_args!("{owner} taking the lease"))
}

async fn renew<S: CheckpointStore>(store: &S, lease: &Lease) -> LeaseRenewal {
    store
        .renew_lease(lease, LONG)
        .await
        .or_fail(format_args!("{} renewing the lease", lease.owner))
}

/// Waits until `owner` takes the lease (it must expire first), with a deadline.
async fn acquire_when_free<S: CheckpointStore>(store: &S, owner: &str) -> Lease {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(lease) = acquire(store, owner, LONG).await {
            return lease;
        }
        assert!(
            Instant::now() < deadline,
            "{owner} never took the expired lease"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One holder at a time: another owner is refused while the lease is held, its owner renews
/// it and takes it again with the same epoch, and once released it goes to the next owner
/// with a new epoch; the old owner's renewal then finds it lost.
pub async fn a_lease_has_one_holder_and_a_new_epoch_each_time_it_is_taken<
    S: EventStore + CheckpointStore,
>(
    store: S,
) {
    let first = acquire(&store, "a", LONG)
        .await
        .unwrap_or_else(|| panic!("a free lease was refused"));
    assert!(
        acquire(&store, "b", LONG).await.is_none(),
        "a held lease went to another owner"
    );
    assert_eq!(renew(&store, &first).await, LeaseRenewal::Renewed);
    let again = acquire(&store, "a", LONG)
        .await
        .unwrap_or_else(|| panic!("its owner could not take the lease again"));
    assert_eq!(again.epoch, first.epoch, "a renewal changed the epoch");
    assert_eq!(
        store
            .lease_owner("conformance-projection")
            .await
            .or_fail("reading the owner"),
        Some(("a".to_owned(), true))
    );

    store
        .release_lease(&first)
        .await
        .or_fail("releasing the lease");
    let second = acquire(&store, "b", LONG)
        .await
        .unwrap_or_else(|| panic!("a released lease was refused"));
    assert!(second.epoch > first.epoch, "a new owner kept the epoch");
    assert_eq!(renew(&store, &first).await, LeaseRenewal::Lost);
    // Releasing a lost lease leaves the holder's alone.
    store
        .release_lease(&first)
        .await
        .or_fail("releasing a lost lease");
    assert_eq!(renew(&store, &second).await, LeaseRenewal::Renewed);
}

/// A lease that runs out goes to the next owner with a new epoch, and its old owner can then
/// neither renew it nor commit under it.
pub async fn an_expired_lease_goes_to_the_next_owner<S: EventStore + CheckpointStore>(store: S) {
    let first = acquire(&store, "a", Duration::from_millis(200))
        .await
        .unwrap_or_else(|| panic!("a free lease was refused"));
    let second = acquire_when_free(&store, "b").await;
    assert!(second.epoch > first.epoch, "the next owner kept the epoch");
    assert_eq!(renew(&store, &first).await, LeaseRenewal::Lost);
    assert_commit_refused(&store, &first, "under an expired lease").await;
}

/// Opens a batch and commits it under `lease`, which must be refused as lost and leave the
/// checkpoint at the start.
async fn assert_commit_refused<S: CheckpointStore>(store: &S, lease: &Lease, when: &str) {
    let batch = store
        .begin("conformance-projection")
        .await
        .or_fail("opening a batch");
    let at = LogPosition::new(9, GlobalPosition(9));
    let refused = store
        .commit_fenced(batch, "conformance-projection", at, lease)
        .await
        .err()
        .unwrap_or_else(|| panic!("a batch committed {when}"));
    assert_eq!(refused.kind(), BackendErrorKind::LeaseLost);
    assert_eq!(
        checkpoint(store, "conformance-projection").await,
        LogPosition::START
    );
}

/// A takeover gives the lease a new epoch at once, whoever held it: from then on the old
/// holder's batches commit nothing and its renewal finds the lease lost, while the new holder
/// commits. A batch in flight when the takeover comes either commits before it (the takeover
/// waits for it) or commits nothing; never after it.
pub async fn a_taken_over_lease_fences_its_old_holder<S: EventStore + CheckpointStore>(store: S) {
    let first = acquire(&store, "a", LONG)
        .await
        .unwrap_or_else(|| panic!("a free lease was refused"));
    let in_flight = store
        .begin("conformance-projection")
        .await
        .or_fail("opening a batch");
    let taking_over = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .take_over_lease("conformance-projection", "rebuild", LONG)
                .await
        })
    };
    let at = LogPosition::new(5, GlobalPosition(5));
    let in_flight_outcome = store
        .commit_fenced(in_flight, "conformance-projection", at, &first)
        .await;
    let taken = super::helpers::join(taking_over)
        .await
        .or_fail("taking the lease over");
    assert!(taken.epoch > first.epoch, "a takeover kept the epoch");
    match in_flight_outcome {
        Ok(()) => assert_eq!(checkpoint(&store, "conformance-projection").await, at),
        Err(error) => {
            assert_eq!(error.kind(), BackendErrorKind::LeaseLost, "{error}");
            assert_eq!(
                checkpoint(&store, "conformance-projection").await,
                LogPosition::START
            );
        }
    }
    assert_eq!(renew(&store, &first).await, LeaseRenewal::Lost);
    assert!(
        acquire(&store, "a", LONG).await.is_none(),
        "the old holder took the lease back"
    );
    let stale = store
        .begin("conformance-projection")
        .await
        .or_fail("opening a batch");
    let later = LogPosition::new(7, GlobalPosition(7));
    let refused = store
        .commit_fenced(stale, "conformance-projection", later, &first)
        .await
        .err()
        .unwrap_or_else(|| panic!("the old holder committed after a takeover"));
    assert_eq!(refused.kind(), BackendErrorKind::LeaseLost);
    let batch = store
        .begin("conformance-projection")
        .await
        .or_fail("opening a batch");
    store
        .commit_fenced(batch, "conformance-projection", later, &taken)
        .await
        .or_fail("the new holder committing");
    assert_eq!(checkpoint(&store, "conformance-projection").await, later);
}

/// A request for the lease (a rebuild's) is answered by its holder at its next renewal, which
/// hands it over instead of renewing; until the request runs out nobody but the requester can
/// take the lease, and the requester takes it with a new epoch once it is released.
pub async fn a_requested_lease_is_handed_to_the_requester<S: EventStore + CheckpointStore>(
    store: S,
) {
    assert_eq!(
        store
            .request_lease("conformance-projection", "rebuild", LONG)
            .await
            .or_fail("asking for a free lease"),
        None,
        "a free lease has a holder"
    );
    let held = acquire(&store, "worker", LONG)
        .await
        .unwrap_or_else(|| panic!("a free lease was refused"));
    let holder = store
        .request_lease("conformance-projection", "rebuild", LONG)
        .await
        .or_fail("asking for the lease")
        .unwrap_or_else(|| panic!("a held lease has no holder"));
    assert_eq!(
        (
            holder.owner.as_str(),
            holder.epoch,
            holder.requested_by.as_deref()
        ),
        ("worker", held.epoch, Some("rebuild"))
    );
    assert!(holder.expires_in <= LONG, "{:?}", holder.expires_in);
    // A second requester does not displace the first.
    let second = store
        .request_lease("conformance-projection", "another-rebuild", LONG)
        .await
        .or_fail("asking again")
        .unwrap_or_else(|| panic!("a held lease has no holder"));
    assert_eq!(second.requested_by.as_deref(), Some("rebuild"));

    assert_eq!(
        renew(&store, &held).await,
        LeaseRenewal::HandOver {
            requested_by: "rebuild".to_owned()
        }
    );
    assert!(
        acquire(&store, "rebuild", LONG).await.is_none(),
        "the requester took a lease its holder had not released"
    );
    store
        .release_lease(&held)
        .await
        .or_fail("handing the lease over");
    assert!(
        acquire(&store, "worker", LONG).await.is_none(),
        "the old holder took back a lease it handed over"
    );
    assert!(
        acquire(&store, "bystander", LONG).await.is_none(),
        "another worker took a lease handed to the requester"
    );
    let rebuild = acquire(&store, "rebuild", LONG)
        .await
        .unwrap_or_else(|| panic!("the requester could not take the released lease"));
    assert!(rebuild.epoch > held.epoch, "the hand-over kept the epoch");
    assert_eq!(
        renew(&store, &rebuild).await,
        LeaseRenewal::Renewed,
        "the requester's own request stayed"
    );
    store
        .release_lease(&rebuild)
        .await
        .or_fail("releasing after the rebuild");
    let back = acquire(&store, "worker", LONG)
        .await
        .unwrap_or_else(|| panic!("the worker could not take the lease after the rebuild"));
    assert!(back.epoch > rebuild.epoch);
}

/// A request that runs out (its requester died) stops standing in the way: the holder renews
/// again, and a released lease goes to anyone.
pub async fn an_expired_request_stands_in_no_ones_way<S: EventStore + CheckpointStore>(store: S) {
    let held = acquire(&store, "worker", LONG)
        .await
        .unwrap_or_else(|| panic!("a free lease was refused"));
    store
        .request_lease(
            "conformance-projection",
            "dead-rebuild",
            Duration::from_millis(200),
        )
        .await
        .or_fail("asking for the lease");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match renew(&store, &held).await {
            LeaseRenewal::Renewed => break,
            LeaseRenewal::HandOver { .. } => {
                assert!(Instant::now() < deadline, "the request never ran out");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("the holder's renewal found {other:?}"),
        }
    }
    store
        .release_lease(&held)
        .await
        .or_fail("releasing the lease");
    assert!(
        acquire(&store, "bystander", LONG).await.is_some(),
        "an expired request kept a released lease from others"
    );
}
