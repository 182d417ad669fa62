//! A bounded queue between two threads that parks a waiting thread at once. (`std::sync::mpsc`
//! spins before it parks; with three threads on two cores the spinning took the CPU the
//! other threads needed, and the scan's time varied twofold from run to run.)

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

struct State<T> {
    items: VecDeque<T>,
    tx_gone: bool,
    rx_gone: bool,
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
}

pub struct Tx<T>(Arc<Shared<T>>);
pub struct Rx<T>(Arc<Shared<T>>);

pub fn bounded<T>(cap: usize) -> (Tx<T>, Rx<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::with_capacity(cap),
            tx_gone: false,
            rx_gone: false,
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
            st = self.0.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        if st.rx_gone {
            return Err(item);
        }
        st.items.push_back(item);
        drop(st);
        self.0.changed.notify_all();
        Ok(())
    }

    /// Sends if there is room now.
    pub fn try_send(&self, item: T) -> Result<(), T> {
        let mut st = self.0.lock();
        if st.rx_gone || st.items.len() >= self.0.cap {
            return Err(item);
        }
        st.items.push_back(item);
        drop(st);
        self.0.changed.notify_all();
        Ok(())
    }
}

impl<T> Rx<T> {
    /// Waits for an item; `Err` once the sender is gone and nothing is left.
    pub fn recv(&self) -> Result<T, ()> {
        let mut st = self.0.lock();
        loop {
            if let Some(item) = st.items.pop_front() {
                drop(st);
                self.0.changed.notify_all();
                return Ok(item);
            }
            if st.tx_gone {
                return Err(());
            }
            st = self.0.changed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// An item if one is there now.
    pub fn try_recv(&self) -> Result<T, ()> {
        let item = self.0.lock().items.pop_front().ok_or(())?;
        self.0.changed.notify_all();
        Ok(item)
    }
}

impl<T> Drop for Tx<T> {
    fn drop(&mut self) {
        self.0.lock().tx_gone = true;
        self.0.changed.notify_all();
    }
}

impl<T> Drop for Rx<T> {
    fn drop(&mut self) {
        self.0.lock().rx_gone = true;
        self.0.changed.notify_all();
    }
}
