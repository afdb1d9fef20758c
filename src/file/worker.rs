//! A thread that serves jobs from a channel in batches, and the handle that
//! sends it jobs and awaits their replies. The writer and the reader of a
//! database are each one of these.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::{Error, Result};

/// The reply channel a job carries.
pub(super) type Reply<R> = oneshot::Sender<Result<R>>;

/// The handle to a worker thread serving jobs `J`. Dropping it closes the
/// channel, which lets the thread finish the jobs already queued and return,
/// and waits for that.
pub(super) struct Worker<J> {
    jobs: Option<mpsc::Sender<J>>,
    thread: Option<JoinHandle<()>>,
    name: &'static str,
    path: PathBuf,
}

impl<J: Send + 'static> Worker<J> {
    /// Starts a thread running `serve` on the receiving end of the channel;
    /// `serve` returns once the channel is closed and drained.
    pub(super) fn start(
        name: &'static str,
        path: PathBuf,
        serve: impl FnOnce(mpsc::Receiver<J>) + Send + 'static,
    ) -> Result<Self> {
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("kvstores-file-{name}"))
            .spawn(move || serve(queue))
            .map_err(|source| Error::Io {
                path: path.clone(),
                action: "start a thread for",
                source,
            })?;
        Ok(Worker {
            jobs: Some(jobs),
            thread: Some(thread),
            name,
            path,
        })
    }

    /// Sends the job `make` builds around a reply channel, and waits for
    /// the reply.
    pub(super) async fn call<R>(&self, make: impl FnOnce(Reply<R>) -> J) -> Result<R> {
        match self.send(make) {
            Some(replied) => replied.await.unwrap_or_else(|_| Err(self.stopped())),
            None => Err(self.stopped()),
        }
    }

    /// [`call`](Self::call) for a plain thread; it must not run inside an
    /// async runtime, where blocking would stall a worker.
    pub(super) fn call_blocking<R>(&self, make: impl FnOnce(Reply<R>) -> J) -> Result<R> {
        match self.send(make) {
            Some(replied) => replied
                .blocking_recv()
                .unwrap_or_else(|_| Err(self.stopped())),
            None => Err(self.stopped()),
        }
    }

    /// Sends the job, returning where its reply will come, or `None` when
    /// the thread has stopped.
    fn send<R>(&self, make: impl FnOnce(Reply<R>) -> J) -> Option<oneshot::Receiver<Result<R>>> {
        let (reply, replied) = oneshot::channel();
        let jobs = self.jobs.as_ref()?;
        jobs.send(make(reply)).ok()?;
        Some(replied)
    }

    fn stopped(&self) -> Error {
        Error::Database {
            path: self.path.clone(),
            message: format!(
                "the {} thread has stopped (it panicked); reopen the store",
                self.name
            ),
            source: None,
        }
    }
}

impl<J> Drop for Worker<J> {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            // A panic on the thread has already failed its callers.
            let _ = thread.join();
        }
    }
}

/// Takes the jobs already queued behind `first`, up to `max` in all, without
/// waiting for more.
pub(super) fn drain<J>(first: J, queue: &mpsc::Receiver<J>, max: usize) -> Vec<J> {
    let mut batch = vec![first];
    while batch.len() < max {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    batch
}
