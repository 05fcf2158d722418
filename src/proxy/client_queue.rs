//! The queue between a stream's relay task and the client's response body: one sender, one
//! receiver, at most [`CAPACITY`] chunks. A stream keeps its queue open for as long as it
//! runs, so its size counts once per open stream. tokio's mpsc channel allocates room for 32
//! messages up front, about 1.4 KB per stream. This queue allocates only for the chunks that
//! wait, which are usually none or one.
//!
//! Both ends take one uncontended lock per chunk. The relay task waits on two things at
//! once, room in the queue and the client leaving, so each has its own waker: taking a chunk
//! wakes only a sender that waits for room.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

/// Chunks queued toward a slow client before the relay stops reading upstream.
pub const CAPACITY: usize = 64;

/// The relay's end.
pub struct Sender {
    shared: Arc<Mutex<State>>,
}

/// The response body's end.
pub struct Receiver {
    shared: Arc<Mutex<State>>,
}

/// The receiver is gone: the client closed its connection or hyper dropped the body.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

/// The reason [`Sender::try_send`] did not queue a chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError {
    /// The queue is full, so the chunk is returned.
    Full(Bytes),
    Closed,
}

struct State {
    chunks: VecDeque<Bytes>,
    /// The receiver, waiting for a chunk or for the end.
    receiver: Option<Waker>,
    /// The sender, waiting for room.
    room: Option<Waker>,
    /// The sender, waiting in [`Sender::closed`].
    closed: Option<Waker>,
    sender_alive: bool,
    receiver_alive: bool,
}

/// Creates an empty queue.
pub fn channel() -> (Sender, Receiver) {
    let shared = Arc::new(Mutex::new(State {
        chunks: VecDeque::new(),
        receiver: None,
        room: None,
        closed: None,
        sender_alive: true,
        receiver_alive: true,
    }));
    let sender = Sender {
        shared: Arc::clone(&shared),
    };
    (sender, Receiver { shared })
}

fn lock(shared: &Mutex<State>) -> MutexGuard<'_, State> {
    // The lock guards no invariant that a panic could break halfway.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Stores the waker of `cx` in `slot`, unless the one there already wakes the same task.
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

fn wake(waker: Option<Waker>) {
    if let Some(waker) = waker {
        waker.wake();
    }
}

impl Sender {
    /// Waits for room, then queues `chunk`. Fails, dropping the chunk, once the receiver is
    /// gone.
    pub fn send(&mut self, chunk: Bytes) -> impl Future<Output = Result<(), Closed>> + '_ {
        let mut pending = Some(chunk);
        poll_fn(move |cx| self.poll_send(cx, &mut pending))
    }

    /// Queues `chunk` if there is room, without waiting.
    pub fn try_send(&mut self, chunk: Bytes) -> Result<(), TrySendError> {
        let mut state = lock(&self.shared);
        if !state.receiver_alive {
            return Err(TrySendError::Closed);
        }
        if state.chunks.len() >= CAPACITY {
            return Err(TrySendError::Full(chunk));
        }
        state.chunks.push_back(chunk);
        let receiver = state.receiver.take();
        drop(state);
        wake(receiver);
        Ok(())
    }

    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        pending: &mut Option<Bytes>,
    ) -> Poll<Result<(), Closed>> {
        let mut state = lock(&self.shared);
        if !state.receiver_alive {
            return Poll::Ready(Err(Closed));
        }
        if state.chunks.len() >= CAPACITY {
            register(&mut state.room, cx);
            return Poll::Pending;
        }
        if let Some(chunk) = pending.take() {
            state.chunks.push_back(chunk);
        }
        let receiver = state.receiver.take();
        drop(state);
        wake(receiver);
        Poll::Ready(Ok(()))
    }

    /// Completes once the receiver is gone.
    pub async fn closed(&self) {
        poll_fn(|cx| {
            let mut state = lock(&self.shared);
            if state.receiver_alive {
                register(&mut state.closed, cx);
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        state.sender_alive = false;
        let receiver = state.receiver.take();
        // The sender's own wakers would keep its finished task allocated.
        let own = (state.room.take(), state.closed.take());
        drop(state);
        drop(own);
        wake(receiver);
    }
}

impl Receiver {
    /// Takes the next chunk; `None` once the sender is gone and every chunk was taken.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut state = lock(&self.shared);
        if let Some(chunk) = state.chunks.pop_front() {
            let room = state.room.take();
            drop(state);
            wake(room);
            return Poll::Ready(Some(chunk));
        }
        if !state.sender_alive {
            return Poll::Ready(None);
        }
        register(&mut state.receiver, cx);
        Poll::Pending
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        state.receiver_alive = false;
        let queued = std::mem::take(&mut state.chunks);
        let own = state.receiver.take();
        let room = state.room.take();
        let closed = state.closed.take();
        drop(state);
        drop((queued, own));
        wake(room);
        wake(closed);
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    /// A waker that counts how often it was woken.
    #[derive(Default)]
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Counter {
        fn woken(&self) -> usize {
            self.0.load(Ordering::SeqCst)
        }
    }

    fn context(counter: &Arc<Counter>) -> Waker {
        Waker::from(Arc::clone(counter))
    }

    fn chunk(n: usize) -> Bytes {
        Bytes::from(format!("chunk {n}"))
    }

    #[tokio::test]
    async fn queue_delivers_chunks_then_end() {
        let (mut sender, mut receiver) = channel();
        for n in 0..3 {
            sender.send(chunk(n)).await.expect("the receiver is alive");
        }
        drop(sender);
        let mut received = Vec::new();
        while let Some(chunk) = poll_fn(|cx| receiver.poll_recv(cx)).await {
            received.push(chunk);
        }
        assert_eq!(received, vec![chunk(0), chunk(1), chunk(2)]);
    }

    #[test]
    fn full_queue_blocks_sender() {
        let (mut sender, mut receiver) = channel();
        let relay = Arc::new(Counter::default());
        let relay_waker = context(&relay);
        let mut relay_cx = Context::from_waker(&relay_waker);
        for n in 0..CAPACITY {
            let send = pin!(sender.send(chunk(n)));
            assert_eq!(send.poll(&mut relay_cx), Poll::Ready(Ok(())));
        }

        let mut blocked = Box::pin(sender.send(chunk(CAPACITY)));
        assert!(blocked.as_mut().poll(&mut relay_cx).is_pending());

        let body = Arc::new(Counter::default());
        let body_waker = context(&body);
        let mut body_cx = Context::from_waker(&body_waker);
        assert_eq!(
            receiver.poll_recv(&mut body_cx),
            Poll::Ready(Some(chunk(0)))
        );
        assert_eq!(
            relay.woken(),
            1,
            "taking a chunk makes room and wakes the sender"
        );
        assert_eq!(blocked.as_mut().poll(&mut relay_cx), Poll::Ready(Ok(())));
    }

    #[test]
    fn recv_skips_closed_watcher() {
        let (mut sender, mut receiver) = channel();
        let relay = Arc::new(Counter::default());
        let relay_waker = context(&relay);
        let mut relay_cx = Context::from_waker(&relay_waker);
        assert!(pin!(sender.send(chunk(0))).poll(&mut relay_cx).is_ready());
        assert!(pin!(sender.closed()).poll(&mut relay_cx).is_pending());

        let body = Arc::new(Counter::default());
        let body_waker = context(&body);
        assert!(
            receiver
                .poll_recv(&mut Context::from_waker(&body_waker))
                .is_ready()
        );
        assert_eq!(relay.woken(), 0);
    }

    #[test]
    fn receiver_woken_by_chunk_and_end() {
        let (mut sender, mut receiver) = channel();
        let body = Arc::new(Counter::default());
        let body_waker = context(&body);
        let mut body_cx = Context::from_waker(&body_waker);
        assert!(receiver.poll_recv(&mut body_cx).is_pending());

        let relay_waker = Waker::noop();
        let mut relay_cx = Context::from_waker(relay_waker);
        assert!(pin!(sender.send(chunk(1))).poll(&mut relay_cx).is_ready());
        assert_eq!(body.woken(), 1);
        assert_eq!(
            receiver.poll_recv(&mut body_cx),
            Poll::Ready(Some(chunk(1)))
        );
        assert!(receiver.poll_recv(&mut body_cx).is_pending());

        drop(sender);
        assert_eq!(body.woken(), 2);
        assert_eq!(receiver.poll_recv(&mut body_cx), Poll::Ready(None));
    }

    #[test]
    fn receiver_drop_closes_sender() {
        let (mut sender, receiver) = channel();
        let relay = Arc::new(Counter::default());
        let relay_waker = context(&relay);
        let mut relay_cx = Context::from_waker(&relay_waker);
        let mut closed = Box::pin(sender.closed());
        assert!(closed.as_mut().poll(&mut relay_cx).is_pending());

        drop(receiver);
        assert_eq!(relay.woken(), 1);
        assert!(closed.as_mut().poll(&mut relay_cx).is_ready());
        drop(closed);
        assert_eq!(
            pin!(sender.send(chunk(0))).poll(&mut relay_cx),
            Poll::Ready(Err(Closed))
        );
    }

    #[test]
    fn try_send_reports_full_and_closed() {
        let (mut sender, receiver) = channel();
        for n in 0..CAPACITY {
            assert_eq!(sender.try_send(chunk(n)), Ok(()));
        }
        assert_eq!(
            sender.try_send(chunk(CAPACITY)),
            Err(TrySendError::Full(chunk(CAPACITY)))
        );

        drop(receiver);
        assert_eq!(sender.try_send(chunk(0)), Err(TrySendError::Closed));
    }

    #[test]
    fn sender_drop_releases_its_wakers() {
        let (sender, receiver) = channel();
        let relay = Arc::new(Counter::default());
        {
            let relay_waker = context(&relay);
            let mut relay_cx = Context::from_waker(&relay_waker);
            assert!(pin!(sender.closed()).poll(&mut relay_cx).is_pending());
        }
        assert_eq!(Arc::strong_count(&relay), 2, "the queue keeps the waker");

        drop(sender);
        assert_eq!(Arc::strong_count(&relay), 1);
        drop(receiver);
    }

    #[test]
    fn receiver_drop_frees_chunks() {
        let (mut sender, receiver) = channel();
        let queued = chunk(0);
        let relay_waker = Waker::noop();
        let mut relay_cx = Context::from_waker(relay_waker);
        assert!(
            pin!(sender.send(queued.clone()))
                .poll(&mut relay_cx)
                .is_ready()
        );
        assert!(!queued.is_unique());
        drop(receiver);
        assert!(queued.is_unique());
    }
}
