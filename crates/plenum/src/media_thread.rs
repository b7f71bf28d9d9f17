//! A room's media tasks (audio, video) each run on a thread of their own: encoding,
//! decoding, echo cancellation and file writes are CPU work that would otherwise hold one
//! of the async runtime's few workers and delay every room's IO. The task is still a
//! future (it waits on bounded channels and timers, and writes to webrtc-rs tracks), driven
//! by `Handle::block_on` on that thread.

use std::future::Future;

/// An owned media thread: joined by [`join`](Self::join) after its task was told to stop.
#[derive(Debug)]
pub(crate) struct MediaThread {
    name: &'static str,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MediaThread {
    /// Runs `task` on a new thread named `name`, on the current runtime's timers and IO.
    pub(crate) fn spawn(
        name: &'static str,
        task: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        let handle = tokio::runtime::Handle::current();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || handle.block_on(task));
        match thread {
            Ok(thread) => Self {
                name,
                thread: Some(thread),
            },
            Err(e) => {
                // Out of threads: the room goes on without this medium.
                tracing::error!(error = %e, name, "no media thread; this medium is off");
                Self { name, thread: None }
            }
        }
    }

    /// Waits (off the runtime's workers) for the thread to end; its task must have been told
    /// to stop, or have lost its handles.
    pub(crate) async fn join(mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let name = self.name;
        match tokio::task::spawn_blocking(move || thread.join()).await {
            Ok(Ok(())) => tracing::debug!(name, "media thread ended"),
            Ok(Err(_)) => tracing::error!(name, "media thread panicked"),
            Err(e) => tracing::debug!(name, error = %e, "media thread not joined"),
        }
    }
}
