//! Billing work that outlives the request that started it. A count of the tasks still running
//! lets shutdown wait for them before it closes the outbox. The charges the outbox failed to
//! store are kept here, in memory, until the worker stores or posts them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::task::spawn_named;

use super::ChargeRecord;

/// The state behind [`super::Biller::spawn_tracked`], shared by every clone of a biller.
#[derive(Default)]
pub(super) struct Background {
    running: AtomicUsize,
    idle: Notify,
    unstored: Mutex<Vec<ChargeRecord>>,
}

/// Counts one task as running until it is dropped.
struct RunningGuard(Arc<Background>);

impl RunningGuard {
    fn new(background: &Arc<Background>) -> RunningGuard {
        background.running.fetch_add(1, Ordering::AcqRel);
        RunningGuard(Arc::clone(background))
    }
}

/// Work that runs inside the task that awaits it, until that task drops it unfinished. Then
/// the rest goes on as a tracked task. Running inline saves a spawn and the wait until the
/// scheduler starts the new task, and a client that leaves still cancels nothing. The work
/// counts as running from its creation, so shutdown waits for it even while it runs inline
/// in a task that shutdown does not track, such as the task hyper gives an HTTP/2 request.
#[must_use = "a future does nothing unless awaited"]
pub struct Detachable<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// The unfinished work, and the guard that counts it as running until it finishes,
    /// inline or in its own task. `None` once the work has finished.
    work: Option<(Pin<Box<F>>, RunningGuard)>,
    name: &'static str,
}

impl<F> Future for Detachable<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        // Polling after completion is the caller's bug. It returns `Pending` instead of
        // panicking.
        let Some((work, _)) = this.work.as_mut() else {
            return Poll::Pending;
        };
        let output = std::task::ready!(work.as_mut().poll(cx));
        this.work = None;
        Poll::Ready(output)
    }
}

impl<F> Drop for Detachable<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        let Some((work, running)) = self.work.take() else {
            return;
        };
        // The work is boxed, so it moves to its own task without moving in memory.
        if tokio::runtime::Handle::try_current().is_ok() {
            drop(spawn_counted(self.name, work, running));
        } else {
            tracing::warn!(
                task = self.name,
                "unfinished billing work dropped outside the runtime"
            );
        }
    }
}

impl Background {
    /// Spawns `future` as a named task that [`Background::wait_idle`] waits for.
    pub(super) fn spawn<F>(self: &Arc<Self>, name: &'static str, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        spawn_counted(name, future, RunningGuard::new(self))
    }

    /// Wraps `future` to run inline, and in a tracked task if it is dropped unfinished.
    pub(super) fn detachable<F>(self: &Arc<Self>, name: &'static str, future: F) -> Detachable<F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Detachable {
            work: Some((Box::pin(future), RunningGuard::new(self))),
            name,
        }
    }

    pub(super) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Waits until no task spawned with [`Background::spawn`] is running.
    pub(super) async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Registers the waiter before reading the count, so a task that ends in between
            // still wakes this one.
            notified.as_mut().enable();
            if self.running() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Keeps a charge that is neither stored in the outbox nor recorded in Blnk.
    pub(super) fn keep_unstored(&self, record: ChargeRecord) {
        self.unstored().push(record);
    }

    /// Takes every charge kept by [`Background::keep_unstored`].
    pub(super) fn take_unstored(&self) -> Vec<ChargeRecord> {
        std::mem::take(&mut *self.unstored())
    }

    pub(super) fn unstored_count(&self) -> usize {
        self.unstored().len()
    }

    fn unstored(&self) -> std::sync::MutexGuard<'_, Vec<ChargeRecord>> {
        // A panic while the list is locked cannot leave a half-written record in it.
        self.unstored.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Spawns `future` as a named task that stays counted by `running` until it ends.
fn spawn_counted<F>(name: &'static str, future: F, running: RunningGuard) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // Boxed first, so the wrapper below moves a pointer instead of the whole future.
    let future = Box::pin(future);
    spawn_named(name, async move {
        let output = future.await;
        drop(running);
        output
    })
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wait_idle_returns_after_last_task() {
        let background = Arc::new(Background::default());
        let gate = Arc::new(Notify::new());
        let task_gate = Arc::clone(&gate);
        let task = background.spawn("test-task", async move { task_gate.notified().await });
        assert_eq!(background.running(), 1);

        let waiting = tokio::time::timeout(Duration::from_millis(50), background.wait_idle()).await;
        assert!(waiting.is_err(), "must wait while the task runs");

        gate.notify_one();
        task.await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), background.wait_idle())
            .await
            .expect("idle once the task ended");
        assert_eq!(background.running(), 0);
    }

    /// Polls `future` once and reports whether it finished.
    async fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<()> {
        std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *future).poll(cx).map(drop))).await
    }

    #[tokio::test]
    async fn inline_work_counts_as_running() {
        let background = Arc::new(Background::default());
        let gate = Arc::new(Notify::new());
        let task_gate = Arc::clone(&gate);
        let mut work = background.detachable("test-task", async move {
            task_gate.notified().await;
        });
        assert!(poll_once(&mut work).await.is_pending());
        assert_eq!(background.running(), 1, "counted while it runs inline");

        let waiting = tokio::time::timeout(Duration::from_millis(50), background.wait_idle()).await;
        assert!(waiting.is_err(), "shutdown waits for inline work");

        gate.notify_one();
        work.await;
        assert_eq!(background.running(), 0);
    }

    #[tokio::test]
    async fn awaited_work_runs_inline() {
        let background = Arc::new(Background::default());
        let output = background.detachable("test-task", async { 7 }).await;
        assert_eq!(output, 7);
        assert_eq!(background.running(), 0);
    }

    #[tokio::test]
    async fn dropped_work_moves_to_tracked_task() {
        let background = Arc::new(Background::default());
        let gate = Arc::new(Notify::new());
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let task_gate = Arc::clone(&gate);
        let mut work = background.detachable("test-task", async move {
            task_gate.notified().await;
            let _ = done_tx.send(());
        });
        // Polled once inline, so it has started, then dropped as a cancelled caller would.
        assert!(poll_once(&mut work).await.is_pending());
        drop(work);
        assert_eq!(background.running(), 1, "the rest runs as a tracked task");

        gate.notify_one();
        tokio::time::timeout(Duration::from_secs(1), done_rx)
            .await
            .expect("the detached work finished")
            .expect("the detached work sent its result");
        tokio::time::timeout(Duration::from_secs(1), background.wait_idle())
            .await
            .expect("idle once the detached work ended");
    }

    #[tokio::test]
    async fn finished_work_spawns_nothing_on_drop() {
        let background = Arc::new(Background::default());
        let mut work = background.detachable("test-task", async {});
        assert!(poll_once(&mut work).await.is_ready());
        drop(work);
        assert_eq!(background.running(), 0);
    }

    #[tokio::test]
    async fn aborted_task_is_no_longer_running() {
        let background = Arc::new(Background::default());
        let task = background.spawn("test-task", std::future::pending::<()>());
        task.abort();
        let _ = task.await;
        assert_eq!(background.running(), 0);
    }
}
