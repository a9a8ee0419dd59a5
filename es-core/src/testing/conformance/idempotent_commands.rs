//! Idempotent commands: command ids, their records and fingerprints.

use crate::fingerprint::CommandFingerprint;
use crate::store::checkpoint::CheckpointStore;
use crate::store::command_log::CommandSession;
use crate::store::command_record::{CommandOutcome, CommandRecord};
use crate::store::error::AppendError;
use crate::store::event_store::EventStore;
use crate::store::log::{AppendRequest, Committed};
use crate::stream::{ExpectedVersion, StreamVersion};

use super::helpers::{
    Ids, OrFail as _, append_err, assert_conflict, assert_duplicate_event_id, find_command, head,
    numbered, start_stream, stream, version_of,
};

/// An append with a command id records which stream and versions the command wrote.
pub async fn find_command_returns_the_record<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("find_command_returns_the_record");
    let stream_id = stream("conformance-command");
    start_stream(&store, &stream_id, numbered(ids, 1..=3)).await;
    let command_id = ids.command(1);
    store
        .append(
            AppendRequest::new(
                stream_id.clone(),
                ExpectedVersion::Exact(StreamVersion(3)),
                numbered(ids, 4..=5),
            )
            .with_command_id(command_id),
        )
        .await
        .or_fail("appending with a command id");
    assert_eq!(
        find_command(&store, command_id).await,
        Some(CommandRecord::new(
            command_id,
            stream_id,
            StreamVersion(3),
            StreamVersion(5)
        ))
    );
}

/// An id never recorded finds nothing.
pub async fn unknown_command_is_not_found<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("unknown_command_is_not_found");
    assert_eq!(find_command(&store, ids.command(1)).await, None);
    store
        .append(
            AppendRequest::new(
                stream("conformance-some-command"),
                ExpectedVersion::Any,
                numbered(ids, [1]),
            )
            .with_command_id(ids.command(2)),
        )
        .await
        .or_fail("appending with a command id");
    assert_eq!(find_command(&store, ids.command(1)).await, None);
}

/// A second append with a recorded command id fails with the first append's record, whatever
/// stream or version it names, and writes nothing.
pub async fn duplicate_command_is_refused_with_its_record<S: EventStore + CheckpointStore>(
    store: S,
) {
    let ids = Ids::new("duplicate_command_is_refused_with_its_record");
    let stream_id = stream("conformance-dup-command");
    let other = stream("conformance-dup-command-other");
    let command_id = ids.command(1);
    store
        .append(
            AppendRequest::new(
                stream_id.clone(),
                ExpectedVersion::NoStream,
                numbered(ids, 1..=2),
            )
            .with_command_id(command_id),
        )
        .await
        .or_fail("appending with a command id");
    let record = CommandRecord::new(
        command_id,
        stream_id.clone(),
        StreamVersion(0),
        StreamVersion(2),
    );
    let head_before = head(&store).await;

    for (target, expected) in [
        (&stream_id, ExpectedVersion::Exact(StreamVersion(2))),
        (&stream_id, ExpectedVersion::NoStream),
        (&other, ExpectedVersion::Any),
    ] {
        let error = append_err(
            &store,
            AppendRequest::new(target.clone(), expected, numbered(ids, 3..=4))
                .with_command_id(command_id),
        )
        .await;
        match error {
            AppendError::DuplicateCommand(found) => {
                assert_eq!(found, record, "the duplicate reports another record")
            }
            other => panic!("expected a duplicate command, got: {other} ({other:?})"),
        }
    }
    assert_eq!(
        head(&store).await,
        head_before,
        "a duplicate command wrote to the log"
    );
    assert_eq!(version_of(&store, &stream_id).await, StreamVersion(2));
    assert_eq!(version_of(&store, &other).await, StreamVersion(0));
    assert_eq!(find_command(&store, command_id).await, Some(record));
    // The refused events' ids were not stored.
    start_stream(&store, &other, numbered(ids, 3..=4)).await;
}

/// A command that decided no events is recorded by an empty append with its id: the record
/// has equal versions, nothing is written, and the id is then refused as a duplicate.
pub async fn no_op_command_is_recorded<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("no_op_command_is_recorded");
    let stream_id = stream("conformance-no-op");
    let fresh = stream("conformance-no-op-fresh");
    start_stream(&store, &stream_id, numbered(ids, [1])).await;
    let head_before = head(&store).await;

    let committed = store
        .append(
            AppendRequest::new(
                stream_id.clone(),
                ExpectedVersion::Exact(StreamVersion(1)),
                Vec::new(),
            )
            .with_command_id(ids.command(1)),
        )
        .await
        .or_fail("recording a no-op command");
    assert_eq!(
        committed,
        Committed::new(StreamVersion(1), StreamVersion(1), None)
    );
    let committed = store
        .append(
            AppendRequest::new(fresh.clone(), ExpectedVersion::NoStream, Vec::new())
                .with_command_id(ids.command(2)),
        )
        .await
        .or_fail("recording a no-op command on a new stream");
    assert_eq!(
        committed,
        Committed::new(StreamVersion(0), StreamVersion(0), None)
    );

    let record = CommandRecord::new(
        ids.command(1),
        stream_id.clone(),
        StreamVersion(1),
        StreamVersion(1),
    );
    assert_eq!(
        find_command(&store, ids.command(1)).await,
        Some(record.clone())
    );
    assert_eq!(
        find_command(&store, ids.command(2)).await,
        Some(CommandRecord::new(
            ids.command(2),
            fresh.clone(),
            StreamVersion(0),
            StreamVersion(0)
        ))
    );
    assert_eq!(
        head(&store).await,
        head_before,
        "a no-op command wrote to the log"
    );
    assert_eq!(version_of(&store, &fresh).await, StreamVersion(0));

    let error = append_err(
        &store,
        AppendRequest::new(stream_id, ExpectedVersion::Any, Vec::new())
            .with_command_id(ids.command(1)),
    )
    .await;
    match error {
        AppendError::DuplicateCommand(found) => assert_eq!(found, record),
        other => panic!("expected a duplicate command, got: {other} ({other:?})"),
    }
}

/// A command id is recorded with the fingerprint and the outcome the append gives it, and read
/// back with them: by [`CommandLog::find_command`](crate::CommandLog::find_command), a session, and a duplicate's error.
pub async fn command_record_keeps_fingerprint_and_outcome<S: EventStore + CheckpointStore>(
    store: S,
) {
    let ids = Ids::new("command_record_keeps_fingerprint_and_outcome");
    let stream_id = stream("conformance-fingerprint");
    let fingerprint = CommandFingerprint::from_bytes([0xa5; 32]);
    store
        .append(
            AppendRequest::new(
                stream_id.clone(),
                ExpectedVersion::NoStream,
                numbered(ids, 1..=2),
            )
            .with_command_id(ids.command(1))
            .with_command_fingerprint(fingerprint),
        )
        .await
        .or_fail("appending with a command id and a fingerprint");
    let record = CommandRecord::new(
        ids.command(1),
        stream_id.clone(),
        StreamVersion(0),
        StreamVersion(2),
    )
    .with_fingerprint(Some(fingerprint));
    assert_eq!(
        find_command(&store, ids.command(1)).await,
        Some(record.clone())
    );
    let in_session = store
        .command_session()
        .find_command(ids.command(1))
        .await
        .or_fail("finding the command in a session");
    assert_eq!(
        in_session,
        Some(record.clone()),
        "a session reads another record"
    );
    let error = append_err(
        &store,
        AppendRequest::new(stream_id.clone(), ExpectedVersion::Any, numbered(ids, [3]))
            .with_command_id(ids.command(1))
            .with_command_fingerprint(CommandFingerprint::from_bytes([0x5a; 32])),
    )
    .await;
    match error {
        AppendError::DuplicateCommand(found) => assert_eq!(
            found, record,
            "the duplicate reports the record without its fingerprint"
        ),
        other => panic!("expected a duplicate command, got: {other} ({other:?})"),
    }
    // Without a fingerprint, none is recorded.
    store
        .append(
            AppendRequest::new(stream_id.clone(), ExpectedVersion::Any, numbered(ids, [4]))
                .with_command_id(ids.command(2)),
        )
        .await
        .or_fail("appending with a command id alone");
    assert_eq!(
        find_command(&store, ids.command(2)).await,
        Some(CommandRecord::new(
            ids.command(2),
            stream_id,
            StreamVersion(2),
            StreamVersion(3)
        ))
    );
}

/// A refusal ([`AppendRequest::refusal`]) records its command as refused at the version it
/// was decided on, writes no event, and is checked against that version: on a stream that
/// moved on it conflicts and records nothing.
pub async fn refusal_is_recorded_against_its_version<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("refusal_is_recorded_against_its_version");
    let stream_id = stream("conformance-refusal");
    start_stream(&store, &stream_id, numbered(ids, 1..=2)).await;
    let head_before = head(&store).await;
    let fingerprint = CommandFingerprint::from_bytes([7; 32]);

    let stale = append_err(
        &store,
        AppendRequest::refusal(
            stream_id.clone(),
            ExpectedVersion::Exact(StreamVersion(1)),
            ids.command(1),
            Some(fingerprint),
        ),
    )
    .await;
    assert_conflict(
        &stale,
        &stream_id,
        ExpectedVersion::Exact(StreamVersion(1)),
        StreamVersion(2),
    );
    assert_eq!(
        find_command(&store, ids.command(1)).await,
        None,
        "a refusal that conflicted was recorded"
    );

    let committed = store
        .append(AppendRequest::refusal(
            stream_id.clone(),
            ExpectedVersion::Exact(StreamVersion(2)),
            ids.command(1),
            Some(fingerprint),
        ))
        .await
        .or_fail("recording a refusal");
    assert_eq!(
        committed,
        Committed::new(StreamVersion(2), StreamVersion(2), None)
    );
    let record = CommandRecord::new(
        ids.command(1),
        stream_id.clone(),
        StreamVersion(2),
        StreamVersion(2),
    )
    .with_fingerprint(Some(fingerprint))
    .with_outcome(CommandOutcome::Refused);
    assert_eq!(
        find_command(&store, ids.command(1)).await,
        Some(record.clone())
    );
    assert_eq!(
        head(&store).await,
        head_before,
        "a refusal wrote to the log"
    );
    assert_eq!(version_of(&store, &stream_id).await, StreamVersion(2));

    let again = append_err(
        &store,
        AppendRequest::new(stream_id, ExpectedVersion::Any, numbered(ids, [3]))
            .with_command_id(ids.command(1)),
    )
    .await;
    match again {
        AppendError::DuplicateCommand(found) => assert_eq!(found, record),
        other => panic!("expected a duplicate command, got: {other} ({other:?})"),
    }
}

/// An append that fails (a conflict, a duplicate event id) does not record its command id:
/// the command may be retried with the same id.
pub async fn failed_append_does_not_record_its_command<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("failed_append_does_not_record_its_command");
    let stream_id = stream("conformance-failed-command");
    start_stream(&store, &stream_id, numbered(ids, [1])).await;
    let command_id = ids.command(1);

    let conflict = append_err(
        &store,
        AppendRequest::new(
            stream_id.clone(),
            ExpectedVersion::NoStream,
            numbered(ids, [2]),
        )
        .with_command_id(command_id),
    )
    .await;
    assert_conflict(
        &conflict,
        &stream_id,
        ExpectedVersion::NoStream,
        StreamVersion(1),
    );
    assert_eq!(
        find_command(&store, command_id).await,
        None,
        "a conflicting append recorded its command"
    );

    let duplicate = append_err(
        &store,
        AppendRequest::new(
            stream_id.clone(),
            ExpectedVersion::Any,
            numbered(ids, [2, 1]),
        )
        .with_command_id(command_id),
    )
    .await;
    assert_duplicate_event_id(&duplicate, &stream_id, ids.event(1));
    assert_eq!(
        find_command(&store, command_id).await,
        None,
        "a failed append recorded its command"
    );

    store
        .append(
            AppendRequest::new(
                stream_id.clone(),
                ExpectedVersion::Exact(StreamVersion(1)),
                numbered(ids, [2]),
            )
            .with_command_id(command_id),
        )
        .await
        .or_fail("retrying the command");
    assert_eq!(
        find_command(&store, command_id).await,
        Some(CommandRecord::new(
            command_id,
            stream_id,
            StreamVersion(1),
            StreamVersion(2)
        ))
    );
}
