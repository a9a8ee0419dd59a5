//! The global log: commit order, filters, no gaps, no repeats.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::event::RecordedEvent;
use crate::store::checkpoint::CheckpointStore;
use crate::store::event_store::EventStore;
use crate::store::log::EventFilter;
use crate::stream::{ExpectedVersion, LogPosition, StreamVersion};

use super::helpers::{
    Ids, NUMBERED, OrFail as _, append_any, append_ok, assert_strictly_increasing, find_command,
    head, id_list, join, load_all, new_event, numbered, payload, read_all, read_log, stream,
};

/// An empty store has no head, reads nothing and finds no commands.
pub async fn empty_store_has_no_head_and_reads_nothing<S: EventStore + CheckpointStore>(store: S) {
    assert_eq!(head(&store).await, None);
    assert!(
        read_all(&store, LogPosition::START, 10, EventFilter::All)
            .await
            .is_empty()
    );
    assert!(
        read_all(
            &store,
            LogPosition::START,
            10,
            EventFilter::Types(&[NUMBERED])
        )
        .await
        .is_empty()
    );
    assert_eq!(
        find_command(&store, Ids::new("empty").command(1)).await,
        None
    );
}

/// `read_all` returns the events of all streams in the order they were appended.
pub async fn read_all_follows_global_order_across_streams<S: EventStore + CheckpointStore>(
    store: S,
) {
    let ids = Ids::new("read_all_follows_global_order_across_streams");
    let plan: [(&str, &[u64]); 6] = [
        ("conformance-a", &[1, 2]),
        ("conformance-b", &[3]),
        ("conformance-a", &[4]),
        ("conformance-c", &[5, 6, 7]),
        ("conformance-b", &[8]),
        ("conformance-a", &[9]),
    ];
    for (name, numbers) in plan {
        append_any(
            &store,
            &stream(name),
            numbered(ids, numbers.iter().copied()),
        )
        .await;
    }
    let log = read_log(&store, EventFilter::All).await;
    assert_eq!(
        id_list(&log),
        (1..=9).map(|n| ids.event(n)).collect::<Vec<_>>(),
        "the log is not in append order"
    );
    let placement: Vec<(String, u64)> = log
        .iter()
        .map(|e| (e.stream_id.to_string(), e.stream_version.get()))
        .collect();
    let expected: Vec<(String, u64)> = [
        ("conformance-a", 1),
        ("conformance-a", 2),
        ("conformance-b", 1),
        ("conformance-a", 3),
        ("conformance-c", 1),
        ("conformance-c", 2),
        ("conformance-c", 3),
        ("conformance-b", 2),
        ("conformance-a", 4),
    ]
    .into_iter()
    .map(|(name, version)| (name.to_owned(), version))
    .collect();
    assert_eq!(placement, expected);
    assert_strictly_increasing(&log, "read_all");
}

/// Reading after a log position excludes the event at that position.
pub async fn read_all_after_is_exclusive<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("read_all_after_is_exclusive");
    append_any(&store, &stream("conformance-after-1"), numbered(ids, 1..=3)).await;
    append_any(&store, &stream("conformance-after-2"), numbered(ids, 4..=5)).await;
    let log = read_log(&store, EventFilter::All).await;
    assert_eq!(log.len(), 5);
    for (index, event) in log.iter().enumerate() {
        let rest = read_all(&store, event.log_position(), 100, EventFilter::All).await;
        assert_eq!(
            id_list(&rest),
            id_list(&log[index + 1..]),
            "reading after the position of event {} of 5",
            index + 1
        );
    }
    let from_start = read_all(&store, LogPosition::START, 100, EventFilter::All).await;
    assert_eq!(
        id_list(&from_start),
        id_list(&log),
        "reading from the start"
    );
}

/// `read_all` returns at most `limit` events: paging with limit 1 visits each event once, a
/// limit beyond the log returns all of it, and limit 0 returns nothing.
pub async fn read_all_respects_the_limit<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("read_all_respects_the_limit");
    append_any(&store, &stream("conformance-limit-1"), numbered(ids, 1..=4)).await;
    append_any(&store, &stream("conformance-limit-2"), numbered(ids, 5..=7)).await;
    let everything = (1..=7).map(|n| ids.event(n)).collect::<Vec<_>>();

    let mut paged = Vec::new();
    let mut after = LogPosition::START;
    loop {
        let page = read_all(&store, after, 1, EventFilter::All).await;
        let Some(last) = page.last() else { break };
        assert_eq!(page.len(), 1);
        after = last.log_position();
        paged.extend(id_list(&page));
        assert!(paged.len() <= 7, "paging with limit 1 does not end");
    }
    assert_eq!(paged, everything, "paging with limit 1");

    let first_three = read_all(&store, LogPosition::START, 3, EventFilter::All).await;
    assert_eq!(id_list(&first_three), everything[..3]);
    let all = read_all(&store, LogPosition::START, 1_000, EventFilter::All).await;
    assert_eq!(id_list(&all), everything, "a limit beyond the log");
    assert!(
        read_all(&store, LogPosition::START, 0, EventFilter::All)
            .await
            .is_empty(),
        "limit 0 returned events"
    );
}

/// A type filter returns exactly the events with those names (exact match, not a pattern),
/// in log order, and the limit counts only matching events.
pub async fn read_all_filters_by_event_type<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("read_all_filters_by_event_type");
    let types = ["t.a", "t.b", "t.c", "t.a", "t.b", "t.a", "t.c", "t.b"];
    for (n, event_type) in (1..).zip(types) {
        let name = if n % 2 == 0 {
            "conformance-filter-even"
        } else {
            "conformance-filter-odd"
        };
        let event = new_event(ids.event(n), event_type, &json!({ "n": n }));
        append_ok(&store, &stream(name), ExpectedVersion::Any, vec![event]).await;
    }
    let numbers_of = |events: &[RecordedEvent]| -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| payload(e)["n"].as_u64())
            .collect()
    };

    let a_and_c = read_log(&store, EventFilter::Types(&["t.a", "t.c"])).await;
    assert_eq!(
        numbers_of(&a_and_c),
        [1, 3, 4, 6, 7],
        "filtering on t.a and t.c"
    );
    assert!(
        a_and_c
            .iter()
            .all(|e| e.event_type == "t.a" || e.event_type == "t.c")
    );

    let mut b_paged = Vec::new();
    let mut after = LogPosition::START;
    while let Some(last) = read_all(&store, after, 1, EventFilter::Types(&["t.b"]))
        .await
        .pop()
    {
        after = last.log_position();
        b_paged.push(last);
        assert!(b_paged.len() <= 3, "paging a filtered read does not end");
    }
    assert_eq!(
        numbers_of(&b_paged),
        [2, 5, 8],
        "paging the t.b events one by one"
    );

    let first_two_b = read_all(&store, LogPosition::START, 2, EventFilter::Types(&["t.b"])).await;
    assert_eq!(
        numbers_of(&first_two_b),
        [2, 5],
        "the limit counts only matching events"
    );

    for no_match in [
        &[][..],
        &["t.z"],
        &["t"],
        &["t.%"],
        &["t._"],
        &["T.A"],
        &["t.a "],
    ] {
        assert!(
            read_all(
                &store,
                LogPosition::START,
                100,
                EventFilter::Types(no_match)
            )
            .await
            .is_empty(),
            "filter {no_match:?} matched events"
        );
    }
}

/// Log positions strictly increase in the order `read_all` and `load` return events, and no
/// two events share one.
pub async fn log_positions_strictly_increase<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("log_positions_strictly_increase");
    let names = [
        "conformance-pos-1",
        "conformance-pos-2",
        "conformance-pos-3",
    ];
    let mut n = 0;
    for round in 0..4_u64 {
        for name in names {
            let size = 1 + (round + n) % 3;
            append_any(&store, &stream(name), numbered(ids, n..n + size)).await;
            n += size;
        }
    }
    let log = read_log(&store, EventFilter::All).await;
    assert_eq!(log.len() as u64, n);
    assert_strictly_increasing(&log, "read_all");
    let distinct: BTreeSet<_> = log.iter().map(|e| e.position).collect();
    assert_eq!(
        distinct.len(),
        log.len(),
        "two events share a global position"
    );
    for name in names {
        assert_strictly_increasing(&load_all(&store, &stream(name)).await, name);
    }
}

/// After every append, the head is the commit's last position and the last event of the log.
pub async fn head_is_the_last_event_position<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("head_is_the_last_event_position");
    let plan = [
        ("conformance-head-1", 2),
        ("conformance-head-2", 1),
        ("conformance-head-1", 3),
        ("conformance-head-3", 1),
    ];
    let mut n = 0;
    for (name, size) in plan {
        let committed = append_any(&store, &stream(name), numbered(ids, n..n + size)).await;
        n += size;
        let head = head(&store).await;
        assert!(head.is_some(), "no head after an append");
        assert_eq!(
            head, committed.last_position,
            "the head is not the commit's last position"
        );
        let log = read_log(&store, EventFilter::All).await;
        assert_eq!(
            head,
            log.last().map(RecordedEvent::log_position),
            "the head is not the last event"
        );
    }
}

/// `read_with_head` returns the head of the whole log (also when the filter skips its last
/// events) with the same events as `read_all`, and never the head as an event.
pub async fn read_with_head_reads_the_head_with_the_events<S: EventStore + CheckpointStore>(
    store: S,
) {
    let ids = Ids::new("read_with_head_reads_the_head_with_the_events");
    let read = |after, limit, filter| {
        let store = store.clone();
        async move {
            store
                .read_with_head(after, limit, filter)
                .await
                .or_fail(format_args!(
                    "reading the head and the log after {after} (limit {limit}, filter {filter:?})"
                ))
        }
    };
    assert_eq!(
        read(LogPosition::START, 10, EventFilter::All).await,
        (None, Vec::new()),
        "an empty store has no head and no events"
    );
    let types = ["t.a", "t.b", "t.a", "t.b", "t.c"];
    for (n, event_type) in (1..).zip(types) {
        let event = new_event(ids.event(n), event_type, &json!({ "n": n }));
        append_any(
            &store,
            &stream(&format!("conformance-with-head-{}", n % 2)),
            vec![event],
        )
        .await;
    }
    let log = read_log(&store, EventFilter::All).await;
    let last = log.last().map(RecordedEvent::log_position);
    let only_b = EventFilter::Types(&["t.b"]);
    for (after, limit, filter) in [
        (LogPosition::START, 10, EventFilter::All),
        (LogPosition::START, 2, EventFilter::All),
        (LogPosition::START, 10, only_b),
        (LogPosition::START, 1, only_b),
        (log[1].log_position(), 10, only_b),
    ] {
        let (head, events) = read(after, limit, filter).await;
        assert_eq!(
            head, last,
            "the head read after {after} (limit {limit}, filter {filter:?}) is not the last event"
        );
        assert_eq!(
            events,
            read_all(&store, after, limit, filter).await,
            "read_with_head after {after} (limit {limit}, filter {filter:?}) differs from read_all"
        );
    }
    let past_the_end = read(last.unwrap_or(LogPosition::START), 10, EventFilter::All).await;
    assert_eq!(
        past_the_end,
        (last, Vec::new()),
        "reading after the head returns the head and nothing else"
    );
}

/// Appends to many streams at once interleave in the log, but each stream's events appear in
/// version order without holes, and none is lost.
pub async fn concurrent_appends_to_many_streams_keep_stream_order<
    S: EventStore + CheckpointStore,
>(
    store: S,
) {
    const STREAMS: u64 = 8;
    const APPENDS: u64 = 25;
    let ids = Ids::new("concurrent_appends_to_many_streams_keep_stream_order");
    let mut tasks = Vec::new();
    for task in 0..STREAMS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let stream_id = stream(&format!("conformance-many-{task}"));
            let mut version = StreamVersion::INITIAL;
            for append in 0..APPENDS {
                let size = 1 + (task + append) % 2;
                let numbers = (0..size).map(|i| task * 10_000 + append * 10 + i);
                // Each task owns its stream: any conflict here is a bug in the store.
                let committed = append_ok(
                    &store,
                    &stream_id,
                    ExpectedVersion::Exact(version),
                    numbered(ids, numbers),
                )
                .await;
                version = committed.version_after;
                tokio::task::yield_now().await;
            }
            version.get()
        }));
    }
    let mut expected_counts = BTreeMap::new();
    for (task, handle) in tasks.into_iter().enumerate() {
        expected_counts.insert(format!("conformance-many-{task}"), join(handle).await);
    }
    let log = read_log(&store, EventFilter::All).await;
    assert_eq!(
        log.len() as u64,
        expected_counts.values().sum::<u64>(),
        "events were lost"
    );
    assert_strictly_increasing(&log, "read_all");
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for event in &log {
        let last = seen.entry(event.stream_id.to_string()).or_default();
        assert_eq!(
            event.stream_version.get(),
            *last + 1,
            "stream `{}` appears out of version order in the log",
            event.stream_id
        );
        *last += 1;
    }
    assert_eq!(seen, expected_counts);
}
