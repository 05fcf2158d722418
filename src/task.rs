//! Named background tasks. Every task tollgate starts has a name that appears in logs, so a
//! stuck or failing task can be traced to its owner.

use std::future::Future;

use tokio::task::JoinHandle;

/// Spawns `future` on the current runtime under `name`. The future is boxed first, so a
/// large state machine is moved as a pointer rather than copied into the task.
#[allow(clippy::disallowed_methods)]
pub fn spawn_named<F>(name: &'static str, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    use tracing::Instrument;
    tokio::spawn(Box::pin(future).instrument(tracing::debug_span!("task", name)))
}
