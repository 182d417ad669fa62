//! A bounded queue between two threads that parks a waiting thread at once. (`std::sync::mpsc`
//! spins before it parks; with three threads on two cores the spinning took the CPU the
//! other threads needed, and the scan's time varied twofold from run to run.) A thread is woken
//! only when one waits: a condition variable's notification is a system call even when no
//! thread waits on it.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

struct State<T> {
    items: VecDeque<T>,
    tx_gone: bool,
    rx_gone: bool,
    /// Threads waiting on `changed` (counted under the lock, before they wait).
    waiting: usize,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    changed: Condvar,
    cap: usize,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a change (the lock released meanwhile).
    fn wait<'a>(&self, mut st: MutexGuard<'a, State<T>>) -> MutexGuard<'a, State<T>> {
        st.waiting += 1;
        let mut st = self.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        st.waiting -= 1;
        st
    }

    /// Releases the lock after a change, waking the other side if it waits. (A waiter counted
    /// itself under the lock before waiting, so it is either counted here or sees the change
    /// before it waits: no wake-up is lost.)
    fn release(&self, st: MutexGuard<'_, State<T>>) {
        let wake = st.waiting > 0;
        drop(st);
        if wake {
            self.changed.notify_all();
        }
    }
}

pub struct Tx<T>(Arc<Shared<T>>);
pub struct Rx<T>(Arc<Shared<T>>);

pub fn bounded<T>(cap: usize) -> (Tx<T>, Rx<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::with_capacity(cap),
            tx_gone: false,
            rx_gone: false,
            waiting: 0,
        }),
        changed: Condvar::new(),
        cap: cap.max(1),
    });
    (Tx(shared.clone()), Rx(shared))
}

impl<T> Tx<T> {
    /// Waits for room; gives the item back when the receiver is gone.
    pub fn send(&self, item: T) -> Result<(), T> {
        let mut st = self.0.lock();
        while st.items.len() >= self.0.cap && !st.rx_gone {
            st = self.0.wait(st);
        }
        if st.rx_gone {
            return Err(item);
        }
        st.items.push_back(item);
        self.0.release(st);
        Ok(())
    }

    /// The items waiting for the receiver now.
    pub fn queued(&self) -> usize {
        self.0.lock().items.len()
    }

    /// Sends if there is room now.
    pub fn try_send(&self, item: T) -> Result<(), T> {
        let mut st = self.0.lock();
        if st.rx_gone || st.items.len() >= self.0.cap {
            return Err(item);
        }
        st.items.push_back(item);
        self.0.release(st);
        Ok(())
    }
}

impl<T> Rx<T> {
    /// Waits for an item; `Err` once the sender is gone and nothing is left.
    pub fn recv(&self) -> Result<T, ()> {
        let mut st = self.0.lock();
        loop {
            if let Some(item) = st.items.pop_front() {
                self.0.release(st);
                return Ok(item);
            }
            if st.tx_gone {
                return Err(());
            }
            st = self.0.wait(st);
        }
    }

    /// An item if one is there now.
    pub fn try_recv(&self) -> Result<T, ()> {
        let mut st = self.0.lock();
        let item = st.items.pop_front().ok_or(())?;
        self.0.release(st);
        Ok(item)
    }
}

impl<T> Drop for Tx<T> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.tx_gone = true;
        self.0.release(st);
    }
}

impl<T> Drop for Rx<T> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.rx_gone = true;
        self.0.release(st);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    /// Runs `f` on a thread; a wake-up lost by the queue shows as a hang, reported as such.
    fn within_a_minute(what: &str, f: impl FnOnce() + Send + 'static) {
        let (done, finished) = mpsc::channel();
        thread::spawn(move || {
            f();
            let _ = done.send(());
        });
        finished
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{what}: a thread was never woken (or panicked)"));
    }

    #[test]
    fn items_pass_in_order_through_a_full_queue_and_both_ends_see_the_other_go() {
        within_a_minute("ping-pong through a queue of one", || {
            // Two queues of one item each, a value sent back and forth: every step waits for
            // the other thread, so each wait and wake is exercised 30,000 times.
            let (tx, rx) = bounded::<u64>(1);
            let (back_tx, back_rx) = bounded::<u64>(1);
            let echo = thread::spawn(move || {
                while let Ok(v) = rx.recv() {
                    back_tx.send(v + 1).expect("the sender waits for the echo");
                }
            });
            let mut v = 0;
            for _ in 0..30_000 {
                tx.send(v).expect("the echo thread is there");
                v = back_rx.recv().expect("the echo thread answers");
            }
            assert_eq!(v, 30_000);
            drop(tx);
            echo.join()
                .expect("the echo thread ends when its sender is gone");
            assert!(back_rx.recv().is_err(), "the echo's sender is gone");
        });
        within_a_minute("a stream through a queue of two", || {
            let (tx, rx) = bounded::<u64>(2);
            let producer = thread::spawn(move || {
                for i in 0..200_000 {
                    if i % 3 == 0 {
                        while tx.try_send(i).is_err() {
                            thread::yield_now();
                        }
                    } else {
                        tx.send(i).expect("the receiver is there");
                    }
                }
            });
            let mut next = 0;
            while let Ok(v) = rx.recv() {
                assert_eq!(v, next, "items arrive in the order sent");
                next += 1;
            }
            assert_eq!(next, 200_000, "every item arrives before the end is seen");
            producer.join().expect("the producer ends");
        });
        within_a_minute(
            "a sender waiting on a full queue when the receiver goes",
            || {
                let (tx, rx) = bounded::<u8>(1);
                tx.send(1).expect("room for one");
                let sender = thread::spawn(move || tx.send(2));
                thread::sleep(Duration::from_millis(50));
                drop(rx);
                assert_eq!(sender.join().expect("the sender wakes"), Err(2));
            },
        );
    }
}
