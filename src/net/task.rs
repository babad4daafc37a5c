//! Spawning the server's tasks. Every task is boxed as one future type, so the executor's
//! task code (poll, wake, drop, cancel) is built once instead of once per kind of task; a
//! leaf module, so the modules that spawn (run, accept, mesh) need not import each other.

use std::future::Future;
use std::pin::Pin;

/// Every task the server spawns, behind one type (one indirect call per poll).
type BoxedTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Spawns `task` on `ex` as a [`BoxedTask`].
pub(crate) fn spawn(
    ex: &smol::Executor<'static>,
    task: impl Future<Output = ()> + Send + 'static,
) -> smol::Task<()> {
    ex.spawn(Box::pin(task) as BoxedTask)
}
