//! Leader and followers: how a daemon process's worker threads share one event source.
//!
//! A worker takes an event already waiting without sleeping. When there is none, it becomes the
//! leader (the one worker blocking in the source's wait) or, if there is one, parks as a
//! follower. A leader that takes an event wakes a follower to lead in its place, and so does a
//! worker that takes a waiting event while no one leads.
//!
//! With every idle worker blocking in `epoll_wait`, each event woke an idle thread (which then
//! queued for the GIL) while the worker that had just finished a request went to sleep: 15
//! threads served a hello-world application at 60% of the rate of 2. Here the worker that
//! finishes a request takes the next waiting one itself.
//!
//! The state machine knows nothing of sockets: the daemon's epoll set is one [`Events`], the
//! unit tests use a queue.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

/// Where workers get their events from (tokens).
pub trait Events {
    /// An event that is already waiting, without blocking.
    fn take_ready(&self) -> Option<u64>;
    /// Blocks for the next event, up to the source's own timeout.
    fn wait(&self) -> Option<u64>;
}

#[derive(Default)]
pub struct LeaderFollowers {
    /// A worker blocks in [`Events::wait`]. Changed only with `followers` locked; read without
    /// the lock where a stale answer is harmless.
    has_leader: AtomicBool,
    /// Workers parked on `wake`.
    followers: Mutex<usize>,
    wake: Condvar,
}

impl LeaderFollowers {
    pub fn new() -> LeaderFollowers {
        LeaderFollowers::default()
    }

    /// The calling worker's next event (it may lead or follow while it waits for one).
    pub fn next(&self, events: &impl Events) -> u64 {
        loop {
            if let Some(token) = events.take_ready() {
                // Read without the lock: if it is stale, a leader that just left has woken a
                // follower itself (or one that just came is seen under the lock).
                if !self.has_leader.load(Ordering::Relaxed) {
                    self.took_event(*self.followers.lock().unwrap());
                }
                return token;
            }
            let mut followers = self.followers.lock().unwrap();
            if self.has_leader.load(Ordering::Relaxed) {
                *followers += 1;
                followers = self.wake.wait(followers).unwrap();
                *followers -= 1;
                continue;
            }
            self.has_leader.store(true, Ordering::Relaxed);
            drop(followers);
            let event = events.wait();
            let followers = self.followers.lock().unwrap();
            self.has_leader.store(false, Ordering::Relaxed);
            if let Some(token) = event {
                self.took_event(*followers);
                return token;
            }
        }
    }

    /// A worker took an event (`followers` locked): if no one leads, wake a follower to lead.
    fn took_event(&self, followers: usize) {
        if !self.has_leader.load(Ordering::Relaxed) && followers > 0 {
            self.wake.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::time::Duration;

    /// A queue of tokens that counts how many workers block in `wait` at once.
    #[derive(Default)]
    struct Queue {
        tokens: Mutex<VecDeque<u64>>,
        arrived: Condvar,
        waiting: AtomicUsize,
        most_waiting: AtomicUsize,
        waits: AtomicUsize,
    }

    impl Queue {
        fn push(&self, token: u64) {
            self.tokens.lock().unwrap().push_back(token);
            self.arrived.notify_all();
        }
    }

    impl Events for Queue {
        fn take_ready(&self) -> Option<u64> {
            self.tokens.lock().unwrap().pop_front()
        }
        fn wait(&self) -> Option<u64> {
            let now = self.waiting.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_waiting.fetch_max(now, Ordering::SeqCst);
            self.waits.fetch_add(1, Ordering::SeqCst);
            let tokens = self.tokens.lock().unwrap();
            let (mut tokens, _) =
                self.arrived.wait_timeout_while(tokens, Duration::from_millis(20), |t| t.is_empty()).unwrap();
            let token = tokens.pop_front();
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            token
        }
    }

    const STOP: u64 = u64::MAX;

    /// Runs `workers` threads until each has taken one STOP; returns the tokens each handled.
    /// A worker that never ends (a lost wake-up) fails the test after a bound.
    fn run(workers: usize, tokens: &[u64], queue: &Arc<Queue>) -> Vec<Vec<u64>> {
        let lf = Arc::new(LeaderFollowers::new());
        let (done, results) = std::sync::mpsc::channel();
        for _ in 0..workers {
            let (lf, queue, done) = (lf.clone(), queue.clone(), done.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                loop {
                    match lf.next(&*queue) {
                        STOP => break,
                        t => seen.push(t),
                    }
                }
                let _ = done.send(seen);
            });
        }
        for &t in tokens {
            queue.push(t);
        }
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..workers {
            queue.push(STOP);
        }
        (0..workers)
            .map(|i| {
                results
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap_or_else(|_| panic!("{i} of {workers} workers ended"))
            })
            .collect()
    }

    #[test]
    fn every_event_goes_to_exactly_one_worker() {
        let queue = Arc::new(Queue::default());
        let tokens: Vec<u64> = (0..2000).collect();
        let mut all: Vec<u64> = run(4, &tokens, &queue).into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, tokens);
    }

    #[test]
    fn only_one_worker_blocks_in_wait() {
        let queue = Arc::new(Queue::default());
        run(8, &(0..500).collect::<Vec<_>>(), &queue);
        assert!(queue.waits.load(Ordering::SeqCst) > 0);
        assert_eq!(queue.most_waiting.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_leader_that_takes_an_event_wakes_a_follower_to_lead() {
        // Every worker must end: each STOP taken by a leader hands the lead to a parked
        // follower, so all eight come to take one. A lost wake-up hangs here.
        let queue = Arc::new(Queue::default());
        let seen = run(8, &[], &queue);
        assert_eq!(seen.len(), 8);
    }

    #[test]
    fn a_waiting_event_is_taken_without_waiting() {
        let queue = Arc::new(Queue::default());
        queue.push(7);
        let lf = LeaderFollowers::new();
        assert_eq!(lf.next(&*queue), 7);
        assert_eq!(queue.waits.load(Ordering::SeqCst), 0);
    }
}
