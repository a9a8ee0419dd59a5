//! [`RunnerSettings`]: batch size, polling, back-off and lease time of the workers.

use std::time::Duration;

const MIN_DELAY: Duration = Duration::from_millis(1);

/// How projections are run. Build it with the setters; zero values are raised to the minimum
/// (one event per batch, one millisecond between polls and retries).
#[derive(Clone, Debug)]
pub struct RunnerSettings {
    batch_size: usize,
    poll_interval: Duration,
    retry_backoff: Duration,
    max_retry_backoff: Duration,
    lease_ttl: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            retry_backoff: Duration::from_millis(100),
            max_retry_backoff: Duration::from_secs(30),
            lease_ttl: Duration::from_secs(6),
        }
    }
}

impl RunnerSettings {
    /// Events per batch, one unit of work each (at least 1; default 500).
    #[must_use]
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// How long a caught-up projection waits for a wake-up before it reads anyway, in case a
    /// notification was lost (default 1 s).
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(MIN_DELAY);
        self
    }

    /// The first delay after a failed batch, doubled after each further failure up to
    /// `longest` (defaults 100 ms and 30 s).
    #[must_use]
    pub fn retry_backoff(mut self, first: Duration, longest: Duration) -> Self {
        self.retry_backoff = first.max(MIN_DELAY);
        self.max_retry_backoff = longest.max(self.retry_backoff);
        self
    }

    /// How long a worker's lease on a projection lasts without renewal (at least 100 ms;
    /// default 6 s). Workers renew every third of it, and a standby worker tries to take it as
    /// often, so after the owner dies another worker takes over within about 4/3 of this
    /// (8 s by default). A batch must finish within it, or its commit is refused and retried.
    #[must_use]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(100));
        self
    }

    pub(crate) const fn lease(&self) -> Duration {
        self.lease_ttl
    }

    pub(crate) const fn batch(&self) -> usize {
        self.batch_size
    }

    pub(crate) const fn poll(&self) -> Duration {
        self.poll_interval
    }

    pub(crate) const fn first_backoff(&self) -> Duration {
        self.retry_backoff
    }

    pub(crate) const fn longest_backoff(&self) -> Duration {
        self.max_retry_backoff
    }
}
