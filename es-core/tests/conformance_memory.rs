//! The store conformance suite against [`MemoryStore`], once as one test per case and once
//! through `run_all`; and a check that the suite catches a store that breaks the contract.
#![cfg(feature = "testing")]

mod per_case {
    use es_core::MemoryStore;

    es_core::conformance_tests!(|| async { MemoryStore::new() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_all_passes_on_the_memory_store() {
    es_core::testing::conformance::run_all(|| async { es_core::MemoryStore::new() }).await;
}

/// A store that breaks one rule of the contract: the suite must name the cases that catch it.
mod mutants {
    use std::panic::AssertUnwindSafe;

    use es_core::snapshot::Snapshot;
    use es_core::store::{
        CommandLog, CommandRecord, EventLog, Lease, LeaseHolder, LeaseRenewal, LeaseStore,
        LogWatch, SnapshotStore,
    };
    use es_core::testing::conformance::run_all;
    use es_core::{AppendError, BackendError, LoadError};
    use es_core::{
        AppendRequest, CheckpointStore, Committed, EventFilter, ExpectedVersion, LogPosition,
        MemoryStore, RecordedEvent, StreamId, StreamVersion,
    };
    use futures_core::Stream;
    use futures_util::FutureExt as _;
    use std::time::Duration;
    use uuid::Uuid;

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Mutation {
        /// Appends as if every request expected `Any`.
        IgnoreExpectedVersion,
        /// `read_all` also returns the event at `after`.
        InclusiveReadAll,
        /// `load` ignores `after`.
        LoadIgnoresAfter,
        /// Command ids are neither recorded nor found.
        ForgetCommands,
        /// A batch refused for a duplicate event id still writes the events before it.
        NonAtomicBatch,
        /// `read_all` ignores the event type filter.
        IgnoreFilter,
    }

    #[derive(Clone)]
    struct Mutant {
        inner: MemoryStore,
        mutation: Mutation,
    }

    impl EventLog for Mutant {
        async fn append(&self, mut request: AppendRequest) -> Result<Committed, AppendError> {
            match self.mutation {
                Mutation::IgnoreExpectedVersion => request.expected = ExpectedVersion::Any,
                Mutation::ForgetCommands => request.command_id = None,
                _ => {}
            }
            let events = request.events.clone();
            let stream_id = request.stream_id.clone();
            let result = self.inner.append(request).await;
            if let (Mutation::NonAtomicBatch, Err(AppendError::DuplicateEventId { event_id, .. })) =
                (self.mutation, &result)
            {
                for event in events.into_iter().take_while(|event| event.id != *event_id) {
                    let partial =
                        AppendRequest::new(stream_id.clone(), ExpectedVersion::Any, vec![event]);
                    let _ = self.inner.append(partial).await;
                }
            }
            result
        }

        fn load<'a>(
            &'a self,
            stream_id: &'a StreamId,
            after: StreamVersion,
        ) -> impl Stream<Item = Result<RecordedEvent, LoadError>> + Send + 'a {
            let after = if self.mutation == Mutation::LoadIgnoresAfter {
                StreamVersion::INITIAL
            } else {
                after
            };
            self.inner.load(stream_id, after)
        }

        async fn stream_version(&self, stream_id: &StreamId) -> Result<StreamVersion, LoadError> {
            self.inner.stream_version(stream_id).await
        }

        async fn read_all(
            &self,
            after: LogPosition,
            limit: usize,
            filter: EventFilter<'_>,
        ) -> Result<Vec<RecordedEvent>, LoadError> {
            match self.mutation {
                Mutation::InclusiveReadAll => {
                    let all = self
                        .inner
                        .read_all(LogPosition::START, usize::MAX, filter)
                        .await?;
                    Ok(all
                        .into_iter()
                        .filter(|e| e.log_position() >= after)
                        .take(limit)
                        .collect())
                }
                Mutation::IgnoreFilter => self.inner.read_all(after, limit, EventFilter::All).await,
                _ => self.inner.read_all(after, limit, filter).await,
            }
        }

        async fn head(&self) -> Result<Option<LogPosition>, LoadError> {
            self.inner.head().await
        }

        fn watch(&self) -> LogWatch {
            self.inner.watch()
        }
    }

    impl SnapshotStore for Mutant {
        async fn save_snapshot(
            &self,
            stream_id: &StreamId,
            snapshot: Snapshot,
        ) -> Result<(), BackendError> {
            self.inner.save_snapshot(stream_id, snapshot).await
        }

        async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, LoadError> {
            self.inner.load_snapshot(stream_id).await
        }
    }

    impl CommandLog for Mutant {
        async fn find_command(&self, command_id: Uuid) -> Result<Option<CommandRecord>, LoadError> {
            if self.mutation == Mutation::ForgetCommands {
                return Ok(None);
            }
            self.inner.find_command(command_id).await
        }
    }

    impl CheckpointStore for Mutant {
        type Transaction = ();

        async fn checkpoint(&self, projection: &str) -> Result<LogPosition, BackendError> {
            self.inner.checkpoint(projection).await
        }

        async fn begin(&self, projection: &str) -> Result<(), BackendError> {
            self.inner.begin(projection).await
        }

        async fn commit(
            &self,
            (): (),
            projection: &str,
            checkpoint: LogPosition,
        ) -> Result<(), BackendError> {
            self.inner.commit((), projection, checkpoint).await
        }

        async fn reset_checkpoint(&self, projection: &str) -> Result<(), BackendError> {
            self.inner.reset_checkpoint(projection).await
        }

        async fn commit_fenced(
            &self,
            (): (),
            projection: &str,
            checkpoint: LogPosition,
            lease: &Lease,
        ) -> Result<(), BackendError> {
            self.inner
                .commit_fenced((), projection, checkpoint, lease)
                .await
        }
    }

    impl LeaseStore for Mutant {
        async fn acquire_lease(
            &self,
            projection: &str,
            owner: &str,
            ttl: Duration,
        ) -> Result<Option<Lease>, BackendError> {
            self.inner.acquire_lease(projection, owner, ttl).await
        }

        async fn renew_lease(
            &self,
            lease: &Lease,
            ttl: Duration,
        ) -> Result<LeaseRenewal, BackendError> {
            self.inner.renew_lease(lease, ttl).await
        }

        async fn release_lease(&self, lease: &Lease) -> Result<(), BackendError> {
            self.inner.release_lease(lease).await
        }

        async fn request_lease(
            &self,
            projection: &str,
            requester: &str,
            ttl: Duration,
        ) -> Result<Option<LeaseHolder>, BackendError> {
            self.inner.request_lease(projection, requester, ttl).await
        }

        async fn take_over_lease(
            &self,
            projection: &str,
            owner: &str,
            ttl: Duration,
        ) -> Result<Lease, BackendError> {
            self.inner.take_over_lease(projection, owner, ttl).await
        }

        async fn lease_owner(
            &self,
            projection: &str,
        ) -> Result<Option<(String, bool)>, BackendError> {
            self.inner.lease_owner(projection).await
        }
    }

    /// Runs the suite on `mutation` and returns its failure report.
    async fn report(mutation: Mutation) -> String {
        let outcome = AssertUnwindSafe(run_all(|| async move {
            Mutant {
                inner: MemoryStore::new(),
                mutation,
            }
        }))
        .catch_unwind()
        .await;
        let Err(panic) = outcome else {
            panic!("the suite passed a store with mutation {mutation:?}");
        };
        match panic.downcast::<String>() {
            Ok(message) => *message,
            Err(_) => panic!("run_all panicked without a report"),
        }
    }

    async fn assert_caught(mutation: Mutation, cases: &[&str]) {
        let report = report(mutation).await;
        for case in cases {
            assert!(
                report.contains(&format!("--- {case}\n")),
                "{mutation:?} should fail `{case}`; the report was:\n{report}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn ignoring_the_expected_version_is_caught() {
        assert_caught(
            Mutation::IgnoreExpectedVersion,
            &[
                "no_stream_conflicts_on_existing_stream",
                "exact_conflict_reports_actual_version",
                "read_expected_version_conflicts_when_behind",
                "stream_exists_conflicts_on_empty_stream",
                "conflict_writes_nothing",
                "concurrent_appends_to_one_stream_have_one_winner_per_version",
            ],
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_inclusive_read_all_is_caught() {
        assert_caught(
            Mutation::InclusiveReadAll,
            &["read_all_after_is_exclusive", "read_all_respects_the_limit"],
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_load_ignoring_after_is_caught() {
        assert_caught(
            Mutation::LoadIgnoresAfter,
            &[
                "load_after_a_version_returns_the_rest",
                "long_stream_loads_completely_in_order",
            ],
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn forgotten_commands_are_caught() {
        assert_caught(
            Mutation::ForgetCommands,
            &[
                "find_command_returns_the_record",
                "duplicate_command_is_refused_with_its_record",
                "no_op_command_is_recorded",
            ],
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_non_atomic_batch_is_caught() {
        assert_caught(
            Mutation::NonAtomicBatch,
            &[
                "failed_batch_writes_nothing",
                "failed_append_does_not_record_its_command",
            ],
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_ignored_filter_is_caught() {
        assert_caught(
            Mutation::IgnoreFilter,
            &[
                "read_all_filters_by_event_type",
                "awkward_event_types_round_trip",
            ],
        )
        .await;
    }
}
