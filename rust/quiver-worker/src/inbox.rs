//! The requests of one gRPC call, handed from the reader task to the call's execution thread.
//!
//! The inbox counts the requests waiting in it that stop the execution (a `Cancel`, a stop from
//! inside the worker), so a batch about to run can see that the engine already gave up on it.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

struct Queue<T> {
    items: VecDeque<T>,
    stops_waiting: usize,
}

/// A blocking queue of one call's requests.
pub struct Inbox<T> {
    queue: Mutex<Queue<T>>,
    ready: Condvar,
    /// Whether an item stops the execution.
    stops: fn(&T) -> bool,
}

impl<T> Inbox<T> {
    /// An empty inbox; `stops` tells which items stop the execution.
    pub fn new(stops: fn(&T) -> bool) -> Self {
        Inbox {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                stops_waiting: 0,
            }),
            ready: Condvar::new(),
            stops,
        }
    }

    /// Queue an item for the execution thread.
    pub fn push(&self, item: T) {
        let mut queue = self.queue.lock().expect("inbox lock");
        if (self.stops)(&item) {
            queue.stops_waiting += 1;
        }
        queue.items.push_back(item);
        self.ready.notify_one();
    }

    /// Take the next item, waiting for one.
    pub fn pop(&self) -> T {
        let mut queue = self.queue.lock().expect("inbox lock");
        loop {
            if let Some(item) = queue.items.pop_front() {
                if (self.stops)(&item) {
                    queue.stops_waiting -= 1;
                }
                return item;
            }
            queue = self.ready.wait(queue).expect("inbox lock");
        }
    }

    /// Whether an item that stops the execution waits in the inbox.
    pub fn stop_waiting(&self) -> bool {
        self.queue.lock().expect("inbox lock").stops_waiting > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_stops_waiting() {
        let inbox = Inbox::new(|item: &&str| *item == "cancel");
        inbox.push("finish");
        assert!(!inbox.stop_waiting());
        inbox.push("cancel");
        assert!(inbox.stop_waiting());
        assert_eq!(inbox.pop(), "finish");
        assert!(inbox.stop_waiting());
        assert_eq!(inbox.pop(), "cancel");
        assert!(!inbox.stop_waiting());
    }
}
