//! The store conformance suite: the contract of [`EventStore`] and [`CheckpointStore`] as
//! executable cases. Every back end passes it before anything else.
//!
//! Run it from a store's tests in one of two ways. One `#[tokio::test]` per case, so each case
//! shows up by name in the test runner (see [`conformance_tests!`](crate::conformance_tests)
//! for what the calling crate needs):
//!
//! ```no_run
//! use es_core::MemoryStore;
//!
//! es_core::conformance_tests!(|| async { MemoryStore::new() });
//! # fn main() {}
//! ```
//!
//! Or every case in one test with [`run_all`], which runs them all, then panics with a report
//! naming each failed case:
//!
//! ```
//! use es_core::MemoryStore;
//! use es_core::testing::conformance;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 4)]
//! # async fn main() {
//! conformance::run_all(|| async { MemoryStore::new() }).await;
//! # }
//! ```
//!
//! Each case is also a public `async fn` taking a store ([`CASES`] lists their names), to run
//! one on its own while chasing a bug.
//!
//! # What a case needs
//!
//! - A fresh, empty store per case: cases assert on the whole log (its head, its order), so the
//!   factory must hand out a store no other case writes to (on PostgreSQL, a schema or a
//!   database of its own).
//! - A Tokio runtime with timers enabled (`#[tokio::test]` has one). Some cases race tasks
//!   against each other with `tokio::spawn`; a multi-threaded runtime makes those races real.
//!
//! Test data is deterministic: ids are derived from the case's name, nothing is random. A
//! case fails by panicking with a message that says what step failed and what was expected.
//!
//! Upcasting and decoding belong to [`crate::codec`], not to a store, but a store that mangles
//! schema versions or payloads breaks them, so the suite also runs them end to end on rows read
//! back from the store.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;

use crate::store::checkpoint::CheckpointStore;
use crate::store::event_store::EventStore;

mod append_load;
mod awkward_data;
mod checkpoints;
mod command_sessions;
mod decoding;
mod expected_versions;
mod global_log;
mod helpers;
mod idempotent_commands;
mod live_notification;
mod snapshots;
pub use append_load::{
    append_then_load_round_trips, committed_reports_versions_and_position,
    fold_stream_visits_what_load_returns, load_after_a_version_returns_the_rest,
    load_returns_only_the_streams_events, long_stream_loads_completely_in_order,
    stream_version_follows_appends, unknown_stream_loads_empty_at_version_zero,
    versions_run_from_one_without_holes,
};
pub use awkward_data::{
    awkward_event_types_round_trip, awkward_payloads_round_trip, awkward_stream_ids_round_trip,
    batches_keep_each_events_type_and_schema_version, metadata_round_trips,
};
pub use checkpoints::{checkpoint_commit_and_reset, checkpoint_starts_at_start};
pub use command_sessions::{
    a_session_appends_again_after_a_conflict, a_session_folds_appends_and_finds_commands,
    concurrent_sessions_on_one_stream_lose_no_append,
};
pub use decoding::{
    corrupt_payload_fails_to_decode, future_schema_version_is_unsupported,
    old_schema_versions_upcast_on_load,
};
pub use expected_versions::{
    any_always_appends, appends_without_position_keep_versions_and_conflicts,
    concurrent_appends_to_one_stream_have_one_winner_per_version, conflict_writes_nothing,
    duplicate_event_id_is_refused, duplicate_event_id_within_a_batch_is_refused,
    empty_append_without_command_writes_nothing, exact_conflict_reports_actual_version,
    expected_versions_that_hold_append, failed_batch_writes_nothing,
    no_stream_conflicts_on_existing_stream, read_expected_version_conflicts_when_behind,
    stream_exists_conflicts_on_empty_stream,
};
pub use global_log::{
    concurrent_appends_to_many_streams_keep_stream_order,
    empty_store_has_no_head_and_reads_nothing, head_is_the_last_event_position,
    log_positions_strictly_increase, read_all_after_is_exclusive, read_all_filters_by_event_type,
    read_all_follows_global_order_across_streams, read_all_respects_the_limit,
    read_with_head_reads_the_head_with_the_events,
};
use helpers::Ids;
pub use idempotent_commands::{
    command_record_keeps_fingerprint_and_outcome, duplicate_command_is_refused_with_its_record,
    failed_append_does_not_record_its_command, find_command_returns_the_record,
    no_op_command_is_recorded, refusal_is_recorded_against_its_version,
    unknown_command_is_not_found,
};
pub use live_notification::watch_wakes_after_append;
pub use snapshots::{
    latest_snapshot_wins, snapshot_of_unknown_stream_is_none, snapshot_round_trips,
};

mod command_path;
mod leases;

pub use command_path::{
    command_id_answers_only_its_command, commands_of_one_app_on_one_stream_never_conflict,
    refusal_replays_as_the_same_refusal, snapshot_beyond_the_stream_is_ignored,
    unrepresentable_payload_is_refused_before_append,
};
pub use leases::{
    a_lease_has_one_holder_and_a_new_epoch_each_time_it_is_taken,
    a_requested_lease_is_handed_to_the_requester, a_taken_over_lease_fences_its_old_holder,
    an_expired_lease_goes_to_the_next_owner, an_expired_request_stands_in_no_ones_way,
};

/// The one list of case names; every other list (the [`CASES`] constant, [`run_all`], the
/// [`conformance_tests!`](crate::conformance_tests) macro) is generated from it, so they cannot
/// drift apart. Calls `$crate::$callback! { $args [case, case, ...] }`.
#[doc(hidden)]
#[macro_export]
macro_rules! __es_core_conformance_cases {
    ($callback:ident ! $args:tt) => {
        $crate::$callback! { $args [
            append_then_load_round_trips,
            versions_run_from_one_without_holes,
            committed_reports_versions_and_position,
            stream_version_follows_appends,
            unknown_stream_loads_empty_at_version_zero,
            load_after_a_version_returns_the_rest,
            load_returns_only_the_streams_events,
            fold_stream_visits_what_load_returns,
            long_stream_loads_completely_in_order,
            no_stream_conflicts_on_existing_stream,
            exact_conflict_reports_actual_version,
            read_expected_version_conflicts_when_behind,
            stream_exists_conflicts_on_empty_stream,
            expected_versions_that_hold_append,
            appends_without_position_keep_versions_and_conflicts,
            any_always_appends,
            conflict_writes_nothing,
            concurrent_appends_to_one_stream_have_one_winner_per_version,
            failed_batch_writes_nothing,
            duplicate_event_id_is_refused,
            duplicate_event_id_within_a_batch_is_refused,
            empty_append_without_command_writes_nothing,
            find_command_returns_the_record,
            unknown_command_is_not_found,
            duplicate_command_is_refused_with_its_record,
            no_op_command_is_recorded,
            command_record_keeps_fingerprint_and_outcome,
            refusal_is_recorded_against_its_version,
            failed_append_does_not_record_its_command,
            a_session_folds_appends_and_finds_commands,
            a_session_appends_again_after_a_conflict,
            concurrent_sessions_on_one_stream_lose_no_append,
            empty_store_has_no_head_and_reads_nothing,
            read_all_follows_global_order_across_streams,
            read_all_after_is_exclusive,
            read_all_respects_the_limit,
            read_all_filters_by_event_type,
            log_positions_strictly_increase,
            head_is_the_last_event_position,
            read_with_head_reads_the_head_with_the_events,
            concurrent_appends_to_many_streams_keep_stream_order,
            snapshot_round_trips,
            latest_snapshot_wins,
            snapshot_of_unknown_stream_is_none,
            checkpoint_starts_at_start,
            checkpoint_commit_and_reset,
            watch_wakes_after_append,
            awkward_stream_ids_round_trip,
            awkward_payloads_round_trip,
            metadata_round_trips,
            awkward_event_types_round_trip,
            batches_keep_each_events_type_and_schema_version,
            old_schema_versions_upcast_on_load,
            corrupt_payload_fails_to_decode,
            future_schema_version_is_unsupported,
            unrepresentable_payload_is_refused_before_append,
            command_id_answers_only_its_command,
            refusal_replays_as_the_same_refusal,
            commands_of_one_app_on_one_stream_never_conflict,
            snapshot_beyond_the_stream_is_ignored,
            a_lease_has_one_holder_and_a_new_epoch_each_time_it_is_taken,
            an_expired_lease_goes_to_the_next_owner,
            a_taken_over_lease_fences_its_old_holder,
            a_requested_lease_is_handed_to_the_requester,
            an_expired_request_stands_in_no_ones_way,
        ] }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __es_core_conformance_names {
    (() [$($case:ident),* $(,)?]) => {
        /// The name of every case, in the order [`run_all`] runs them.
        pub const CASES: &[&str] = &[$(::core::stringify!($case)),*];
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __es_core_conformance_run_all {
    (($make_store:ident, $failures:ident) [$($case:ident),* $(,)?]) => {
        $(
            $crate::testing::conformance::__run_case(
                ::core::stringify!($case),
                &mut $failures,
                async { $crate::testing::conformance::$case($make_store().await).await },
            )
            .await;
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __es_core_conformance_tests {
    (($make_store:expr) [$($case:ident),* $(,)?]) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let store = ($make_store)().await;
                $crate::testing::conformance::$case(store).await;
            }
        )*
    };
}

/// Expands to one `#[tokio::test]` per conformance case, each on a fresh store.
///
/// `$make_store` is what [`run_all`](crate::testing::conformance::run_all) takes: something
/// callable with no arguments that returns a future of a store (an `async fn` or a closure
/// `|| async { ... }`). It is called once per case.
///
/// The tests are generated in the calling module with the cases' names, so invoke the macro
/// once per module (put each store's suite in a `mod` of its own). The generated tests use the
/// `#[tokio::test]` attribute by the path `::tokio::test`, on the multi-threaded runtime: the
/// calling crate needs `tokio` among its (dev-)dependencies with the `macros` and
/// `rt-multi-thread` features.
///
/// ```no_run
/// mod memory {
///     use es_core::MemoryStore;
///
///     es_core::conformance_tests!(|| async { MemoryStore::new() });
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($make_store:expr $(,)?) => {
        $crate::__es_core_conformance_cases! { __es_core_conformance_tests! ($make_store) }
    };
}

crate::__es_core_conformance_cases! { __es_core_conformance_names! () }

/// Runs every case, each on a fresh store from `make_store`, one after another.
///
/// # Panics
/// After all cases have run, when any failed: the message names every failed case with its
/// own failure message.
pub async fn run_all<S, F, Fut>(make_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: EventStore + CheckpointStore,
{
    let mut failures: Vec<(&'static str, String)> = Vec::new();
    crate::__es_core_conformance_cases! { __es_core_conformance_run_all! (make_store, failures) }
    if !failures.is_empty() {
        let mut report = format!(
            "{} of {} store conformance cases failed:",
            failures.len(),
            CASES.len()
        );
        for (case, message) in &failures {
            report.push_str(&format!("\n\n--- {case}\n{message}"));
        }
        panic!("{report}");
    }
}

/// Runs one case and records its panic, if any; for [`run_all`].
pub(crate) async fn __run_case(
    name: &'static str,
    failures: &mut Vec<(&'static str, String)>,
    case: impl Future<Output = ()>,
) {
    if let Err(panic) = AssertUnwindSafe(case).catch_unwind().await {
        let message = if let Some(message) = panic.downcast_ref::<&str>() {
            (*message).to_owned()
        } else if let Some(message) = panic.downcast_ref::<String>() {
            message.clone()
        } else {
            "the case panicked with a value that is not a string".to_owned()
        };
        failures.push((name, message));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn case_names_are_unique() {
        let unique: BTreeSet<&str> = CASES.iter().copied().collect();
        assert_eq!(unique.len(), CASES.len());
        assert!(CASES.len() >= 30);
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(Ids::new("a").0, Ids::new("a").0);
        assert_ne!(Ids::new("a").0, Ids::new("b").0);
        assert_ne!(Ids::new("a").event(1), Ids::new("a").event(2));
        assert_ne!(Ids::new("a").event(1).0, Ids::new("a").command(1));
    }
}
