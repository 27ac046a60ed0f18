//! The fixed pool of threads that does the CPU work (decoding, networks, RANSAC), apart from the
//! I/O runtime: a bounded queue in front, a reply channel per job, panics caught per job.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

/// What a worker reports for a job.
pub enum Outcome<T> {
    /// The job ran.
    Done(T),
    /// The job panicked (answered 500; the worker goes on).
    Panicked(String),
    /// The request's deadline passed while the job waited in the queue.
    Expired,
}

type Task<T> = Box<dyn FnOnce() -> T + Send>;

struct Job<T> {
    task: Task<T>,
    deadline: Instant,
    reply: oneshot::Sender<Outcome<T>>,
}

/// Why a job was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// The queue is full (answered 503 with `Retry-After`).
    Full,
    /// The pool is shutting down.
    Closed,
}

/// A fixed set of worker threads behind a bounded queue.
pub struct Pool<T: Send + 'static> {
    sender: Mutex<Option<SyncSender<Job<T>>>>,
    queued: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl<T: Send + 'static> Pool<T> {
    /// `workers` threads behind a queue of `capacity` waiting jobs.
    pub fn new(workers: usize, capacity: usize) -> Self {
        let (sender, receiver) = sync_channel::<Job<T>>(capacity);
        let receiver = Arc::new(Mutex::new(receiver));
        let queued = Arc::new(AtomicUsize::new(0));
        let running = Arc::new(AtomicUsize::new(0));
        let threads = (0..workers)
            .map(|i| {
                let (receiver, queued, running) = (receiver.clone(), queued.clone(), running.clone());
                std::thread::Builder::new()
                    .name(format!("glace-worker-{i}"))
                    .spawn(move || work(&receiver, &queued, &running))
                    .expect("spawn a worker thread")
            })
            .collect();
        Pool { sender: Mutex::new(Some(sender)), queued, running, threads: Mutex::new(threads) }
    }

    /// Queues `task`, to run before `deadline`; the outcome arrives on the returned channel.
    pub fn submit(
        &self,
        deadline: Instant,
        task: impl FnOnce() -> T + Send + 'static,
    ) -> Result<oneshot::Receiver<Outcome<T>>, Rejected> {
        let (reply, outcome) = oneshot::channel();
        let guard = self.sender.lock().unwrap_or_else(|p| p.into_inner());
        let sender = guard.as_ref().ok_or(Rejected::Closed)?;
        self.queued.fetch_add(1, Ordering::SeqCst);
        match sender.try_send(Job { task: Box::new(task), deadline, reply }) {
            Ok(()) => Ok(outcome),
            Err(e) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                Err(match e {
                    TrySendError::Full(_) => Rejected::Full,
                    TrySendError::Disconnected(_) => Rejected::Closed,
                })
            }
        }
    }

    /// Jobs waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Jobs being worked on.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::SeqCst)
    }

    /// Lets the queued jobs finish, then stops the workers.
    pub fn shutdown(&self) {
        self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|p| p.into_inner()));
        for t in threads {
            let _ = t.join();
        }
    }
}

fn work<T>(receiver: &Mutex<Receiver<Job<T>>>, queued: &AtomicUsize, running: &AtomicUsize) {
    loop {
        let job = {
            let r = receiver.lock().unwrap_or_else(|p| p.into_inner());
            match r.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        queued.fetch_sub(1, Ordering::SeqCst);
        // The client hung up: its slot is free and nobody waits for the work.
        if job.reply.is_closed() {
            continue;
        }
        if Instant::now() > job.deadline {
            let _ = job.reply.send(Outcome::Expired);
            continue;
        }
        running.fetch_add(1, Ordering::SeqCst);
        let outcome = match catch_unwind(AssertUnwindSafe(job.task)) {
            Ok(v) => Outcome::Done(v),
            Err(p) => Outcome::Panicked(
                p.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a worker panicked".into()),
            ),
        };
        running.fetch_sub(1, Ordering::SeqCst);
        let _ = job.reply.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn full_queue_rejects_panics_are_caught_and_expired_jobs_skipped() {
        let pool: Pool<u32> = Pool::new(1, 1);
        let later = Instant::now() + Duration::from_secs(10);
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // Hold the only worker until released.
        let first = pool.submit(later, move || {
            rx.recv().unwrap();
            1
        });
        while pool.running() == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let second = pool.submit(later, || 2).unwrap();
        assert_eq!(pool.submit(later, || 3).err(), Some(Rejected::Full));
        tx.send(()).unwrap();
        assert!(matches!(first.unwrap().blocking_recv(), Ok(Outcome::Done(1))));
        assert!(matches!(second.blocking_recv(), Ok(Outcome::Done(2))));
        let panicked = pool.submit(later, || panic!("boom")).unwrap();
        assert!(matches!(panicked.blocking_recv(), Ok(Outcome::Panicked(m)) if m == "boom"));
        let expired = pool.submit(Instant::now(), || 4).unwrap();
        assert!(matches!(expired.blocking_recv(), Ok(Outcome::Expired)));
        assert!(matches!(pool.submit(later, || 5).unwrap().blocking_recv(), Ok(Outcome::Done(5))), "still serving");
        pool.shutdown();
        assert_eq!(pool.submit(later, || 6).err(), Some(Rejected::Closed));
    }
}
