//! The openraft [`AsyncRuntime`] for detcd: every spawn, sleep and timeout goes through the
//! `tokio` alias (real tokio, or madsim-tokio under `--cfg madsim`), instants come from the
//! node's skewed [`Instant`](super::clock::Instant), and jitter from the seam's generator.
//! openraft's own `TokioRuntime` would bypass the simulator.

// The seam itself: the only place that reads the runtime's clock.
#![allow(clippy::disallowed_methods)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use openraft::async_runtime::AsyncOneshotSendExt;
use openraft::{AsyncRuntime, OptionalSend};

use super::clock::Instant;

/// detcd's runtime for openraft; see the module docs.
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
pub struct DetRuntime;

/// The sending half of a oneshot channel, wrapped so openraft can use it.
pub struct OneshotSender<T>(tokio::sync::oneshot::Sender<T>);

impl<T> std::fmt::Debug for OneshotSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneshotSender")
    }
}

impl<T: OptionalSend> AsyncOneshotSendExt<T> for OneshotSender<T> {
    fn send(self, t: T) -> Result<(), T> {
        self.0.send(t)
    }
}

/// A future bounded by a deadline (madsim-tokio has no `Timeout` type, so the seam has its own).
pub struct Timeout<F> {
    future: Pin<Box<F>>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

/// The error of a [`Timeout`] whose deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = self.future.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Bounds `future` by `deadline` on the runtime (global) clock; the rest of the server uses
/// [`super::clock::timeout_at`], on the node's clock.
pub(super) fn timeout_at<F: Future>(deadline: tokio::time::Instant, future: F) -> Timeout<F> {
    Timeout {
        future: Box::pin(future),
        sleep: Box::pin(tokio::time::sleep_until(deadline)),
    }
}

impl AsyncRuntime for DetRuntime {
    type JoinError = tokio::task::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = tokio::task::JoinHandle<T>;
    type Sleep = tokio::time::Sleep;
    type Instant = Instant;
    type TimeoutError = Elapsed;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = Timeout<T>;
    type ThreadLocalRng = super::rand::ThreadRng;
    type OneshotSender<T: OptionalSend> = OneshotSender<T>;
    type OneshotReceiverError = tokio::sync::oneshot::error::RecvError;
    type OneshotReceiver<T: OptionalSend> = tokio::sync::oneshot::Receiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        tokio::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        tokio::time::sleep_until((Instant::now() + duration).to_runtime())
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        tokio::time::sleep_until(deadline.to_runtime())
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        timeout_at((Instant::now() + duration).to_runtime(), future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        timeout_at(deadline.to_runtime(), future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        join_error.is_panic()
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        super::rand::thread_rng()
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (OneshotSender(tx), rx)
    }
}

/// Runs CPU-heavy work (password hashing) off the runtime's worker threads, so it cannot stall
/// raft or other requests. The simulator runs it inline: one thread, same order every seed.
pub async fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    #[cfg(not(madsim))]
    {
        match tokio::task::spawn_blocking(f).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    #[cfg(madsim)]
    {
        f()
    }
}
