//! Waking readers: the commits this process announces (`NOTIFY`) and the listener that wakes
//! this process's subscribers for other processes' commits.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};
use tokio::sync::watch;

use crate::announce::Announcer;
use crate::error::millis;
use crate::store::PostgresStore;

impl PostgresStore {
    /// Starts the task that announces this store's commits to other processes when no
    /// append did (see `crate::announce`).
    pub(crate) fn start_notifier(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                "no tokio runtime: other processes' readers find our commits by polling"
            );
            return;
        };
        // Not kept with the tasks the last handle aborts: it ends by itself once the announcer
        // closes, after its last announcement.
        drop(runtime.spawn(notify(Notifier {
            pool: self.pool.clone(),
            channel: self.inner.channel.clone(),
            instance: self.inner.instance.clone(),
            announcer: Arc::clone(&self.inner.announcer),
            others_listen: self.inner.queries.others_listen.clone(),
        })));
    }

    /// Starts listening for other processes' commits, once, when the first reader watches the
    /// log: only watchers need them, so a store that only writes holds no `LISTEN` connection
    /// and is sent no notifications. The listener wakes the watchers once it listens, so a
    /// commit between the first watch and the `LISTEN` is not missed.
    pub(crate) fn listen_once(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // A later watch inside a runtime starts it.
            tracing::warn!("no tokio runtime: live notifications are off, readers poll");
            return;
        };
        if self.inner.listening.swap(true, Ordering::AcqRel) {
            return;
        }
        let listener = runtime.spawn(listen(
            self.pool.clone(),
            self.inner.channel.clone(),
            self.inner.instance.clone(),
            Arc::downgrade(&self.inner.head),
        ));
        self.keep_task(listener);
        // Not kept with the tasks the last handle aborts: it removes the registration when
        // that handle goes (the sender kept in `Inner` drops), then ends.
        let (registered, store_gone) = tokio::sync::oneshot::channel();
        if self.inner.registered.set(registered).is_ok() {
            drop(runtime.spawn(register_listener(
                self.pool.clone(),
                self.inner.queries.register_listener.clone(),
                self.inner.queries.unregister_listener.clone(),
                self.inner.instance.clone(),
                store_gone,
            )));
        }
    }
}

/// The notifier's first pause after a failed `NOTIFY`; it doubles with each failure in a row.
pub(crate) const NOTIFY_RETRY_FIRST: Duration = Duration::from_millis(100);

/// The longest pause between attempts of a failing `NOTIFY`.
pub(crate) const NOTIFY_RETRY_MAX: Duration = Duration::from_secs(10);

/// What the notifier task works with.
pub(crate) struct Notifier {
    pool: PgPool,
    channel: String,
    instance: String,
    announcer: Arc<Announcer>,
    /// [`sql::OTHERS_LISTEN`] for the store's schema.
    others_listen: String,
}

/// Announces this store's pending commits to other processes when no append carried the
/// announcement in time (see `crate::announce`): one `NOTIFY` after a quiet spell, with the
/// store's `instance` as payload. Looks whether anybody listens first, at most once per
/// [`crate::announce::LISTENERS_CHECK`]; while nobody does, announces nothing.
pub(crate) async fn notify(notifier: Notifier) {
    let announcer = &notifier.announcer;
    let mut backoff = NOTIFY_RETRY_FIRST;
    let mut failing = false;
    loop {
        announcer.signal.notified().await;
        loop {
            if announcer.is_closing() {
                // The store's last handle went: what is pending is announced now, claimed or
                // not, if someone may listen (looked at again: a reader may have come since).
                if announcer.is_pending() && announcer.nobody_listens() {
                    notifier.check(&mut failing).await;
                }
                if announcer.is_pending() && !announcer.nobody_listens() {
                    match send_notify(&notifier.pool, &notifier.channel, &notifier.instance).await {
                        // The application closed the pool first: it is shutting down.
                        Ok(()) | Err(sqlx::Error::PoolClosed) => {}
                        Err(error) => {
                            tracing::warn!(%error, "a closed store's last NOTIFY failed");
                        }
                    }
                }
                return;
            }
            if !announcer.is_pending() {
                break;
            }
            let check_in = announcer.check_wait();
            if check_in.is_zero() {
                notifier.check(&mut failing).await;
                continue;
            }
            if announcer.nobody_listens() {
                // Commits stay pending until the next look; the store closing ends the wait.
                let _ = tokio::time::timeout(check_in, announcer.signal.notified()).await;
                continue;
            }
            // An append that claims meanwhile moves the deadline, and covers what is pending;
            // the store closing ends the wait early.
            let wait = announcer.notifier_wait();
            if !wait.is_zero() {
                let _ = tokio::time::timeout(wait, announcer.signal.notified()).await;
                continue;
            }
            let Some(claim) = announcer.claim() else {
                continue;
            };
            match send_notify(&notifier.pool, &notifier.channel, &notifier.instance).await {
                Ok(()) => {
                    claim.carried();
                    backoff = NOTIFY_RETRY_FIRST;
                }
                Err(error) => {
                    // Dropping the claim keeps the commits pending, and they are tried again
                    // after a growing pause (a pool closed for good must not be hammered);
                    // other processes' readers fall back to their poll meanwhile.
                    tracing::warn!(%error, retry_in = ?backoff, "NOTIFY failed");
                    drop(claim);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(NOTIFY_RETRY_MAX);
                }
            }
            break;
        }
    }
}

/// One `NOTIFY` of this store's commits on `channel`, in a transaction of its own.
pub(crate) async fn send_notify(
    pool: &PgPool,
    channel: &str,
    instance: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(instance)
        .execute(pool)
        .await
        .map(drop)
}

/// How long a listener's registration lasts unless renewed: a crashed process's registration
/// makes the other stores announce for at most this long.
pub(crate) const LISTENER_TTL: Duration = Duration::from_secs(30);

/// How often a listener renews its registration.
pub(crate) const LISTENER_RENEW: Duration = Duration::from_secs(10);

/// The pause before a failed registration is tried again.
pub(crate) const LISTENER_RETRY: Duration = Duration::from_secs(1);

/// Registers this store's listener in the `listeners` table, so that other processes' stores
/// announce their commits (see `crate::announce`), and renews it until `store_gone` fires (the
/// store's last handle went): then removes it.
pub(crate) async fn register_listener(
    pool: PgPool,
    register: String,
    unregister: String,
    instance: String,
    mut store_gone: tokio::sync::oneshot::Receiver<()>,
) {
    let ttl = millis(LISTENER_TTL);
    let mut failing = false;
    loop {
        let registered = sqlx::query(sqlx::AssertSqlSafe(register.as_str()))
            .bind(&instance)
            .bind(ttl)
            .execute(&pool)
            .await;
        let pause = match registered {
            Ok(_) => {
                failing = false;
                LISTENER_RENEW
            }
            Err(error) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(
                        %error,
                        "cannot register this store's listener; other processes may not announce their commits, and its readers poll"
                    );
                }
                LISTENER_RETRY
            }
        };
        // Both cancel-safe: a pause cut short by the store going loses nothing.
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = &mut store_gone => break,
        }
    }
    if let Err(error) = sqlx::query(sqlx::AssertSqlSafe(unregister.as_str()))
        .bind(&instance)
        .execute(&pool)
        .await
    {
        // The registration expires by itself.
        tracing::debug!(%error, "removing this store's listener registration failed");
    }
}

/// Wakes readers on every notification but this store's own (`instance`: its readers were woken
/// at the commit); reconnects after a lost connection (and wakes readers then too, since
/// notifications sent meanwhile are lost).
pub(crate) async fn listen(
    pool: PgPool,
    channel: String,
    instance: String,
    head: Weak<watch::Sender<u64>>,
) {
    let wake = |head: &Weak<watch::Sender<u64>>| match head.upgrade() {
        Some(sender) => {
            sender.send_modify(|n| *n = n.wrapping_add(1));
            true
        }
        None => false,
    };
    // A connection of its own, so the listener does not take one of the pool's.
    let own = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with((*pool.connect_options()).clone());
    loop {
        match PgListener::connect_with(&own).await.map(|mut listener| {
            listener.ignore_pool_close_event(true);
            listener
        }) {
            Ok(mut listener) => match listener.listen(&channel).await {
                Ok(()) => {
                    if !wake(&head) {
                        return;
                    }
                    while let Ok(notification) = listener.recv().await {
                        if notification.payload() != instance && !wake(&head) {
                            return;
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "LISTEN failed; retrying"),
            },
            Err(error) => tracing::warn!(%error, "notification listener cannot connect; retrying"),
        }
        if head.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

impl Notifier {
    /// Whether a process other than this store's has a live row in `listeners` (`None`: the
    /// look failed, and is logged the first time in a row).
    async fn others_listen(&self, failing: &mut bool) -> Option<bool> {
        let found = sqlx::query_scalar(sqlx::AssertSqlSafe(self.others_listen.as_str()))
            .bind(&self.instance)
            .fetch_one(&self.pool)
            .await;
        match found {
            Ok(found) => {
                *failing = false;
                Some(found)
            }
            Err(error) => {
                if !std::mem::replace(failing, true) {
                    tracing::warn!(
                        %error,
                        "cannot read the listeners table; announcing every commit meanwhile"
                    );
                }
                None
            }
        }
    }

    /// Looks at the listeners (see `crate::announce`).
    async fn check(&self, failing: &mut bool) {
        let covered = self.announcer.start_check();
        let found = self.others_listen(failing).await;
        self.announcer.checked(found, covered);
    }
}
