//! Unit tests of the store's internals: announcements, listeners, the pool's checkouts.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use es_core::store::EventLog;
use es_core::{
    AppendError, AppendRequest, EventId, ExpectedVersion, LogPosition, Metadata, StreamId,
    StreamVersion,
};
use sqlx::postgres::{PgListener, PgPool};
use uuid::Uuid;

use crate::error::millis;
use crate::notify::LISTENER_TTL;
use crate::store::PostgresStore;
use crate::test_common as common;

/// Long enough that the subscriber's own re-reads after its last wake-up (5 ms, 10 ms, 20
/// ms ... doubling) have spread out: its next one comes about 2 s after the append.
const SETTLE: Duration = Duration::from_secs(3);
/// Announcements go out within 20 ms; a subscriber that waits this long was not woken.
const WOKEN_WITHIN: Duration = Duration::from_millis(1_500);
/// The longest a test waits for the announcer to reach a state it reaches by itself within
/// a look or two (250 ms apart); generous, since only a failing test waits it out.
const SETTLED_WITHIN: Duration = Duration::from_secs(10);

fn ticks(count: usize) -> Vec<es_core::NewEvent> {
    (0..count)
        .map(|n| {
            let payload = serde_json::value::to_raw_value(&serde_json::json!({ "n": n }));
            es_core::NewEvent::new("tick", 1, payload.unwrap(), Metadata::new())
        })
        .collect()
}

/// Two stores on one fresh schema, as in two processes; a subscriber on the second, woken
/// only by notifications, has settled into waiting. `append` appends with the first store
/// and returns the first event's id, which the subscriber must then be woken for.
async fn announced_to_another_process<F, Fut>(append: F)
where
    F: FnOnce(PostgresStore) -> Fut,
    Fut: Future<Output = EventId>,
{
    common::with_schemas(4, |pool, schemas| async move {
        let schema = schemas.fresh();
        let open = || {
            PostgresStore::options()
                .schema(schema.clone())
                .with_pool(pool.clone())
        };
        let store = open().await.unwrap();
        let reader = open().await.unwrap();
        let mut subscription = es_core::Subscription::new(reader.clone(), LogPosition::START)
            .fallback_poll(Duration::from_secs(3_600));
        let waiting = tokio::spawn(async move { subscription.next().await });
        tokio::time::sleep(SETTLE).await;
        // The store stays open meanwhile: its notifier goes with its last handle.
        let id = append(store.clone()).await;
        let woken = tokio::time::timeout(WOKEN_WITHIN, waiting)
            .await
            .expect("the other store's subscriber was woken")
            .unwrap()
            .unwrap();
        assert_eq!(woken.id, id);
    })
    .await;
}

async fn append(store: &PostgresStore, expected: ExpectedVersion, events: usize) -> EventId {
    append_as(store, expected, events, false).await
}

/// [`append`], made [`without_position`](AppendRequest::without_position) (as the command
/// path's) or not.
async fn append_as(
    store: &PostgresStore,
    expected: ExpectedVersion,
    events: usize,
    without_position: bool,
) -> EventId {
    append_to(store, "quiet-1", expected, events, without_position).await
}

/// Appends `events` ticks to `stream`; returns the first event's id.
async fn append_to(
    store: &PostgresStore,
    stream: &str,
    expected: ExpectedVersion,
    events: usize,
    without_position: bool,
) -> EventId {
    let events = ticks(events);
    let id = events[0].id;
    let stream = StreamId::new(stream).unwrap();
    let request = AppendRequest::new(stream, expected, events);
    let request = if without_position {
        request.without_position()
    } else {
        request
    };
    store.append(request).await.unwrap();
    id
}

/// A lone append claims the announcement and carries it in its own statement: one event,
/// a batch, and the general statement (an `Any` append).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_append_of_one_event_announces_itself() {
    announced_to_another_process(|store| async move {
        append(&store, ExpectedVersion::NoStream, 1).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_append_of_a_batch_announces_itself() {
    announced_to_another_process(|store| async move {
        append(&store, ExpectedVersion::NoStream, 3).await
    })
    .await;
}

/// The command path's appends return no position; they announce all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_append_without_position_announces_itself() {
    announced_to_another_process(|store| async move {
        append_as(&store, ExpectedVersion::NoStream, 1, true).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_batch_without_position_announces_itself() {
    announced_to_another_process(|store| async move {
        append_as(&store, ExpectedVersion::NoStream, 3, true).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_general_append_announces_itself() {
    announced_to_another_process(
        |store| async move { append(&store, ExpectedVersion::Any, 2).await },
    )
    .await;
}

/// A store on a fresh schema whose appends never announce by themselves (the notifier
/// waits as well), and a listener on its channel.
async fn silenced_store(pool: &PgPool, schemas: &common::Schemas) -> (PostgresStore, PgListener) {
    let store = PostgresStore::options()
        .schema(schemas.fresh())
        .with_pool(pool.clone())
        .await
        .unwrap();
    store.inner.announcer.silence();
    let mut listener = PgListener::connect_with(pool).await.unwrap();
    listener.listen(&store.inner.channel).await.unwrap();
    (store, listener)
}

/// Sends a marker on `store`'s channel and checks that it is the next notification
/// `listener` gets: notifications arrive in commit order, so nothing was sent before it
/// (else fails with `failure`).
async fn nothing_notified_before_a_marker(
    pool: &PgPool,
    store: &PostgresStore,
    listener: &mut PgListener,
    failure: &str,
) {
    send_marker(pool, store).await;
    let next = next_notification(listener).await;
    assert_eq!(next.payload(), "marker", "{failure}");
}

/// Sends a notification with payload `marker` on `store`'s channel.
async fn send_marker(pool: &PgPool, store: &PostgresStore) {
    sqlx::query("SELECT pg_notify($1, 'marker')")
        .bind(&store.inner.channel)
        .execute(pool)
        .await
        .unwrap();
}

/// The next notification `listener` gets, within [`WOKEN_WITHIN`].
async fn next_notification(listener: &mut PgListener) -> sqlx::postgres::PgNotification {
    tokio::time::timeout(WOKEN_WITHIN, listener.recv())
        .await
        .expect("a notification arrived in time")
        .unwrap()
}

/// Without the claim the lean appends take their plain form, which sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_without_the_claim_notify_nobody() {
    common::with_schemas(2, |pool, schemas| async move {
        let (store, mut listener) = silenced_store(&pool, &schemas).await;
        let appends = [
            ("silent-1", 1, false),
            ("silent-2", 3, false),
            ("silent-3", 1, true),
            ("silent-4", 3, true),
        ];
        for (stream, events, without_position) in appends {
            append_to(
                &store,
                stream,
                ExpectedVersion::NoStream,
                events,
                without_position,
            )
            .await;
        }
        nothing_notified_before_a_marker(
            &pool,
            &store,
            &mut listener,
            "an append without the claim notified",
        )
        .await;
    })
    .await;
}

/// An append that claims the announcement but fails its version check (the guarded
/// statements, one event and a batch) sends no notification: the guard keeps the insert,
/// and with it the announcement, from running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claiming_append_that_conflicts_announces_nothing() {
    common::with_schemas(2, |pool, schemas| async move {
        let store = PostgresStore::options()
            .schema(schemas.fresh())
            .with_pool(pool.clone())
            .await
            .unwrap();
        let mut listener = PgListener::connect_with(&pool).await.unwrap();
        listener.listen(&store.inner.channel).await.unwrap();
        listen_as_another_process(&pool, &store).await;
        let stream = StreamId::new("guarded-1").unwrap();
        let placed = AppendRequest::new(stream.clone(), ExpectedVersion::NoStream, ticks(1));
        store.append(placed).await.unwrap();
        let first = tokio::time::timeout(WOKEN_WITHIN, listener.recv())
            .await
            .expect("the first append announced itself")
            .unwrap();
        assert_eq!(first.payload(), store.inner.instance);
        for (events, without_position) in [(1, false), (3, false), (1, true), (3, true)] {
            // Past the interval, so this append claims the announcement.
            tokio::time::sleep(crate::announce::INTERVAL * 5).await;
            // Behind the stream and not read from it: the guarded statement.
            let behind = AppendRequest::new(
                stream.clone(),
                ExpectedVersion::Exact(StreamVersion(5)),
                ticks(events),
            );
            let behind = if without_position {
                behind.without_position()
            } else {
                behind
            };
            match store.append(behind).await {
                Err(AppendError::Conflict { actual, .. }) => {
                    assert_eq!(actual, StreamVersion(1));
                }
                other => panic!("expected a conflict, got {other:?}"),
            }
        }
        assert!(
            !store.inner.announcer.is_pending(),
            "a failed append left a commit to announce"
        );
        nothing_notified_before_a_marker(
            &pool,
            &store,
            &mut listener,
            "a conflicting append notified",
        )
        .await;
        assert_eq!(
            store.stream_version(&stream).await.unwrap(),
            StreamVersion(1)
        );
    })
    .await;
}

/// Commits the notifier had yet to announce when the last handle went are announced then,
/// whether they returned a position or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_handle_announces_what_is_pending() {
    common::with_schemas(3, |pool, schemas| async move {
        for without_position in [false, true] {
            let (store, mut listener) = silenced_store(&pool, &schemas).await;
            let instance = store.inner.instance.clone();
            // Nothing announces while the store lives: the commit stays pending.
            append_as(&store, ExpectedVersion::NoStream, 1, without_position).await;
            assert!(store.inner.announcer.is_pending());
            drop(store);
            let announced = tokio::time::timeout(WOKEN_WITHIN, listener.recv())
                .await
                .expect("the dropped store announced its pending commit")
                .unwrap();
            assert_eq!(announced.payload(), instance);
        }
    })
    .await;
}

/// A commit that comes while another append holds this interval's announcement carries
/// none, and no append follows it: the notifier announces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_no_append_announces_is_announced_by_the_notifier() {
    announced_to_another_process(|store| async move {
        let claim = store.inner.announcer.claim();
        assert!(claim.is_some(), "no announcement was claimed before");
        let id = append(&store, ExpectedVersion::NoStream, 1).await;
        drop(claim);
        id
    })
    .await;
}

/// Registers a listener in `store`'s schema, as another process's listening store does.
async fn listen_as_another_process(pool: &PgPool, store: &PostgresStore) {
    sqlx::query(sqlx::AssertSqlSafe(
        store.inner.queries.register_listener.as_str(),
    ))
    .bind(Uuid::now_v7().to_string())
    .bind(millis(LISTENER_TTL))
    .execute(pool)
    .await
    .unwrap();
}

/// A store on a fresh schema that has looked and found nobody listening, with an
/// unregistered `LISTEN` on its channel that has received what the store sent before.
async fn store_nobody_listens_to(
    pool: &PgPool,
    schemas: &common::Schemas,
) -> (PostgresStore, PgListener) {
    let store = PostgresStore::options()
        .schema(schemas.fresh())
        .with_pool(pool.clone())
        .await
        .unwrap();
    let mut listener = PgListener::connect_with(pool).await.unwrap();
    listener.listen(&store.inner.channel).await.unwrap();
    // An append claims while nobody has looked; one inside the interval of the claim
    // leaves its commit pending, which makes the notifier look. On a busy machine the next
    // append may come after the interval and claim again, so this appends until the
    // notifier has something to look at.
    let announcer = &store.inner.announcer;
    let mut early = 0;
    tokio::time::timeout(SETTLED_WITHIN, async {
        while !announcer.nobody_listens() || announcer.is_pending() {
            if announcer.nobody_listens() || announcer.is_pending() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            } else {
                early += 1;
                let stream = format!("early-{early}");
                append_to(&store, &stream, ExpectedVersion::NoStream, 1, false).await;
            }
        }
    })
    .await
    .expect("the notifier looked and found nobody listening");
    // Takes the first append's announcement, up to a marker.
    send_marker(pool, &store).await;
    while next_notification(&mut listener).await.payload() != "marker" {}
    (store, listener)
}

/// While no other process listens, appends that would claim the announcement (past the
/// interval) and the notifier send nothing, and nothing stays pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_announced_while_nobody_listens() {
    common::with_schemas(2, |pool, schemas| async move {
        let (store, mut listener) = store_nobody_listens_to(&pool, &schemas).await;
        for (stream, events, without_position) in [
            ("alone-1", 1, true),
            ("alone-2", 3, false),
            ("alone-3", 1, false),
        ] {
            tokio::time::sleep(crate::announce::INTERVAL * 3).await;
            append_to(
                &store,
                stream,
                ExpectedVersion::NoStream,
                events,
                without_position,
            )
            .await;
        }
        // The notifier's next look drops them.
        let announcer = &store.inner.announcer;
        tokio::time::timeout(SETTLED_WITHIN, async {
            while announcer.is_pending() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("commits nobody listens for stayed pending");
        assert!(announcer.nobody_listens());
        nothing_notified_before_a_marker(
            &pool,
            &store,
            &mut listener,
            "an append notified though nobody listened",
        )
        .await;
    })
    .await;
}

/// A reader in another process that starts after the writer found nobody listening is
/// woken for the writer's next commit: the writer's next look finds its registration and
/// announces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_comes_later_is_woken_by_the_next_commit() {
    common::with_schemas(3, |pool, schemas| async move {
        let (store, _) = store_nobody_listens_to(&pool, &schemas).await;
        let reader = PostgresStore::options()
            .schema(store.schema().to_owned())
            .with_pool(pool.clone())
            .await
            .unwrap();
        let after = reader.head().await.unwrap().unwrap_or(LogPosition::START);
        let mut subscription = es_core::Subscription::new(reader.clone(), after)
            .fallback_poll(Duration::from_secs(3_600));
        let waiting = tokio::spawn(async move { subscription.next().await });
        tokio::time::sleep(SETTLE).await;
        assert!(
            store.inner.announcer.nobody_listens(),
            "the writer looked again though it committed nothing"
        );
        let id = append(&store, ExpectedVersion::NoStream, 1).await;
        let woken = tokio::time::timeout(WOKEN_WITHIN, waiting)
            .await
            .expect("the later reader was woken")
            .unwrap()
            .unwrap();
        assert_eq!(woken.id, id);
        assert!(!store.inner.announcer.nobody_listens());
    })
    .await;
}

/// A store registers its listener when something first watches the log, and removes the
/// registration when its last handle goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watching_store_registers_its_listener_until_it_closes() {
    common::with_schemas(2, |pool, schemas| async move {
        let store = PostgresStore::options()
            .schema(schemas.fresh())
            .with_pool(pool.clone())
            .await
            .unwrap();
        let table = format!("{}.listeners", store.inner.quoted_schema);
        let registered = |instance: String| {
            let pool = pool.clone();
            let table = table.clone();
            async move {
                sqlx::query_scalar::<_, bool>(sqlx::AssertSqlSafe(format!(
                    "SELECT EXISTS (SELECT 1 FROM {table} WHERE instance = $1 \
                     AND expires_at > clock_timestamp())"
                )))
                .bind(instance)
                .fetch_one(&pool)
                .await
                .unwrap()
            }
        };
        let instance = store.inner.instance.clone();
        assert!(
            !registered(instance.clone()).await,
            "registered before watching"
        );
        let watch = store.watch();
        tokio::time::timeout(WOKEN_WITHIN, async {
            while !registered(instance.clone()).await {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the watching store registered its listener");
        drop(watch);
        drop(store);
        tokio::time::timeout(WOKEN_WITHIN, async {
            while registered(instance.clone()).await {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the closed store removed its registration");
    })
    .await;
}

/// An append in the caller's transaction queues a notification only when someone may
/// listen; otherwise its commit is pending, and the notifier announces it once a look
/// finds a listener.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_in_a_transaction_notifies_only_when_someone_listens() {
    common::with_schemas(2, |pool, schemas| async move {
        let (store, mut listener) = store_nobody_listens_to(&pool, &schemas).await;
        let append_in = |stream: &'static str| {
            let pool = pool.clone();
            let store = store.clone();
            async move {
                let mut transaction = pool.begin().await.unwrap();
                let stream = StreamId::new(stream).unwrap();
                let request = AppendRequest::new(stream, ExpectedVersion::NoStream, ticks(1));
                store.append_in(&mut transaction, request).await.unwrap();
                transaction.commit().await.unwrap();
            }
        };
        append_in("outbox-1").await;
        tokio::time::sleep(crate::announce::LISTENERS_CHECK * 2).await;
        nothing_notified_before_a_marker(
            &pool,
            &store,
            &mut listener,
            "an append in a transaction notified though nobody listened",
        )
        .await;

        listen_as_another_process(&pool, &store).await;
        append_in("outbox-2").await;
        let announced = tokio::time::timeout(WOKEN_WITHIN, listener.recv())
            .await
            .expect("the notifier's look found the listener and announced")
            .unwrap();
        assert_eq!(announced.payload(), store.inner.instance);
        append_in("outbox-3").await;
        let notified = tokio::time::timeout(WOKEN_WITHIN, listener.recv())
            .await
            .expect("the append notified in its transaction")
            .unwrap();
        assert_eq!(
            notified.payload(),
            "",
            "not the transaction's own notification"
        );
    })
    .await;
}

/// The reads of a stream (both folds and the load) run, once their plan is generic (from a
/// statement's sixth execution on a connection), as an ordered scan of the stream's index:
/// no sort before the first row. The table holds one long stream and was never analyzed,
/// where PostgreSQL otherwise picks a bitmap scan and a sort (see `sql::IN_VERSION_ORDER`).
#[tokio::test]
async fn stream_reads_follow_the_index_without_a_sort() {
    common::with_schemas(2, |pool, schemas| async move {
        let store = schemas.store(&pool).await;
        let stream = StreamId::new("long-1").unwrap();
        let mut version = 0;
        for _ in 0..10 {
            let request = AppendRequest::new(
                stream.clone(),
                ExpectedVersion::Exact(StreamVersion(version)),
                ticks(1_000),
            );
            version = store.append(request).await.unwrap().version_after.get();
        }
        let mut connection = pool.acquire().await.unwrap();
        let queries = &store.inner.queries;
        // (parameter types, arguments) with and without the version condition
        let after = ("text, bigint, bigint", "'long-1', 0, NULL");
        let whole = ("text, bigint", "'long-1', NULL");
        for (name, statement, (types, arguments)) in [
            ("fold", &queries.fold_stream, after),
            ("fold_whole", &queries.fold_whole_stream, whole),
            ("load", &queries.load_stream, after),
        ] {
            let prepare = format!(
                "SET plan_cache_mode = force_generic_plan; \
                 PREPARE {name}({types}) AS {statement}"
            );
            sqlx::raw_sql(sqlx::AssertSqlSafe(prepare))
                .execute(&mut *connection)
                .await
                .unwrap();
            let explain = format!("EXPLAIN EXECUTE {name}({arguments})");
            let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(explain))
                .fetch_all(&mut *connection)
                .await
                .unwrap();
            let plan = plan.join("\n");
            assert!(
                plan.contains("Index Scan using events_stream_version_key")
                    && !plan.contains("Sort"),
                "the {name} statement's generic plan:\n{plan}"
            );
        }
        sqlx::raw_sql(
            "DEALLOCATE fold; DEALLOCATE fold_whole; DEALLOCATE load; RESET plan_cache_mode",
        )
        .execute(&mut *connection)
        .await
        .unwrap();
    })
    .await;
}
