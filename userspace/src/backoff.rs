//! What every server loop does with failures that can repeat thousands of times a second: a
//! log limiter (one warning per interval, the rest counted) and the pause after a failed
//! accept (out of file descriptors, say), so that the loop neither spins nor floods the log.
use std::time::{Duration, Instant};

/// At most one warning per this interval per limiter; the rest are counted.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Pause after a failed accept: the condition (no file descriptors) rarely clears sooner.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Lets through one warning per [`LOG_INTERVAL`] and counts the ones it holds back.
#[derive(Debug, Default)]
pub struct LogLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    pub fn new() -> LogLimiter {
        LogLimiter::default()
    }

    /// Calls `log` with the number of warnings suppressed since the last one, if it is time.
    pub fn warn(&mut self, log: impl FnOnce(u64)) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < LOG_INTERVAL)
        {
            self.suppressed += 1;
            return;
        }
        log(self.suppressed);
        self.last = Some(now);
        self.suppressed = 0;
    }

    /// Warnings held back since the last one let through.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

/// A failed accept of the server `what`: warned (limited), then a pause before the next.
pub async fn accept_failed(what: &str, err: &std::io::Error, log: &mut LogLimiter) {
    log.warn(|suppressed| tracing::warn!(%err, suppressed, "{what}: accept failed"));
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_limiter_lets_one_through_per_interval() {
        let mut limiter = LogLimiter::new();
        let mut logged = Vec::new();
        for _ in 0..5 {
            limiter.warn(|suppressed| logged.push(suppressed));
        }
        assert_eq!(logged, [0]);
        assert_eq!(limiter.suppressed(), 4);
    }
}
