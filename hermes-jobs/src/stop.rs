//! How a running job is asked to stop: one [`Stop`] shared by whoever asks
//! (a signal handler, a test) and the job's loop, which checks it between
//! units of work and wakes from any pause at once when it is set.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// A request to stop, set once and seen by every clone.
#[derive(Clone, Default)]
pub struct Stop {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    set: AtomicBool,
    woken: Notify,
}

impl Stop {
    /// A stop nobody has asked for yet.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// A stop set when `asked` resolves (such as a signal's arrival).
    pub fn when(asked: impl Future<Output = ()> + Send + 'static) -> Stop {
        let stop = Stop::new();
        let setter = stop.clone();
        tokio::spawn(async move {
            asked.await;
            setter.set();
        });
        stop
    }

    /// Asks the job to stop; every pause in progress ends now.
    pub fn set(&self) {
        self.inner.set.store(true, Ordering::SeqCst);
        self.inner.woken.notify_waiters();
    }

    /// Whether a stop was asked for.
    pub fn is_set(&self) -> bool {
        self.inner.set.load(Ordering::SeqCst)
    }

    /// Waits `pause`, or less if a stop is asked for meanwhile: whether the
    /// whole pause went by with no stop.
    pub async fn sleep(&self, pause: Duration) -> bool {
        let woken = self.inner.woken.notified();
        tokio::pin!(woken);
        // Registered before the check: a stop set in between still wakes it.
        woken.as_mut().enable();
        if self.is_set() {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => !self.is_set(),
            () = woken => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn a_pause_ends_when_the_stop_is_set_and_every_clone_sees_it() {
        let stop = Stop::new();
        assert!(stop.sleep(Duration::from_millis(1)).await, "no stop yet");
        let asker = stop.clone();
        let started = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            asker.set();
        });
        assert!(!stop.sleep(Duration::from_secs(30)).await, "stopped");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(stop.is_set());
        assert!(
            !stop.sleep(Duration::from_secs(30)).await,
            "already stopped"
        );
    }

    #[tokio::test]
    async fn a_stop_follows_its_future() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let stop = Stop::when(async move {
            let _ = rx.await;
        });
        assert!(!stop.is_set());
        tx.send(()).expect("sent");
        assert!(!stop.sleep(Duration::from_secs(30)).await);
    }
}
