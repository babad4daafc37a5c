//! Deadlines on network awaits: every await on a peer runs under one of these.

use std::time::Duration;

use smol::future::FutureExt;

/// Runs `fut` with a deadline; running out becomes an `io::ErrorKind::TimedOut` error.
pub(crate) async fn with_deadline<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = std::io::Result<T>>,
) -> std::io::Result<T> {
    fut.or(async {
        smol::Timer::after(limit).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "deadline passed",
        ))
    })
    .await
}
