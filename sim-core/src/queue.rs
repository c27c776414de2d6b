//! The discrete-event queue.
//!
//! # Ordering contract
//!
//! Events leave the queue in order of their key `(time, seq)`, where `seq` is a counter
//! incremented by every [`EventQueue::schedule`] call. Consequently:
//!
//! 1. an event never leaves before an event with an earlier time;
//! 2. events scheduled for the **same time leave in the order they were scheduled** (FIFO),
//!    whatever their payload and whoever scheduled them.
//!
//! Nothing else (host threads, hashing, allocation addresses) influences the order, so a run is
//! a pure function of the scenario and its seed. Scheduling in the past is refused with
//! [`QueueError::InPast`] rather than silently reordered.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap};

use thiserror::Error;

use crate::time::SimTime;

/// Handle to a scheduled event, usable to cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(u64);

/// Why the queue refused a request.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum QueueError {
    /// The event was scheduled before the current time.
    #[error("cannot schedule an event at {at}: the queue is already at {now}")]
    InPast {
        /// Requested time.
        at: SimTime,
        /// The queue's current time.
        now: SimTime,
    },
}

struct Entry<E> {
    time: SimTime,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, o: &Self) -> bool {
        self.time == o.time && self.seq == o.seq
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<E> Ord for Entry<E> {
    /// Reversed so that `BinaryHeap` (a max-heap) pops the smallest key first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.time, o.seq).cmp(&(self.time, self.seq))
    }
}

/// A priority queue of timed events with a deterministic order (see the module docs).
pub struct EventQueue<E> {
    heap: BinaryHeap<Entry<E>>,
    cancelled: BTreeSet<u64>,
    next_seq: u64,
    now: SimTime,
    delivered: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> EventQueue<E> {
    /// An empty queue at time zero.
    pub fn new() -> Self {
        EventQueue {
            heap: BinaryHeap::new(),
            cancelled: BTreeSet::new(),
            next_seq: 0,
            now: SimTime::ZERO,
            delivered: 0,
        }
    }

    /// The time of the last event popped (the simulation's present).
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Number of events delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Number of events waiting (cancelled ones included until they are skipped).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no event is waiting.
    pub fn is_empty(&self) -> bool {
        self.heap.len() == self.cancelled.len()
    }

    /// Schedules `event` at `at`, which must not be before [`now`](Self::now).
    pub fn schedule(&mut self, at: SimTime, event: E) -> Result<EventId, QueueError> {
        if at < self.now {
            return Err(QueueError::InPast { at, now: self.now });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Entry {
            time: at,
            seq,
            event,
        });
        Ok(EventId(seq))
    }

    /// Cancels a scheduled event; returns whether it was still pending.
    pub fn cancel(&mut self, id: EventId) -> bool {
        if id.0 >= self.next_seq || self.heap.iter().all(|e| e.seq != id.0) {
            return false;
        }
        self.cancelled.insert(id.0)
    }

    /// The time of the next event to leave, if any.
    pub fn peek_time(&mut self) -> Option<SimTime> {
        self.skip_cancelled();
        self.heap.peek().map(|e| e.time)
    }

    /// Removes and returns the next event, advancing [`now`](Self::now) to its time.
    pub fn pop(&mut self) -> Option<(SimTime, E)> {
        self.skip_cancelled();
        let e = self.heap.pop()?;
        self.now = e.time;
        self.delivered += 1;
        Some((e.time, e.event))
    }

    fn skip_cancelled(&mut self) {
        while let Some(top) = self.heap.peek() {
            if self.cancelled.remove(&top.seq) {
                self.heap.pop();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn equal_times_leave_in_scheduling_order() {
        let mut q = EventQueue::new();
        let t = SimTime::from_nanos(10);
        for i in 0..5 {
            q.schedule(t, i).unwrap();
        }
        q.schedule(SimTime::from_nanos(5), 99).unwrap();
        let order: Vec<_> = std::iter::from_fn(|| q.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, vec![99, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn scheduling_in_the_past_is_refused() {
        let mut q = EventQueue::new();
        q.schedule(SimTime::from_nanos(10), ()).unwrap();
        q.pop();
        let err = q.schedule(SimTime::from_nanos(9), ()).unwrap_err();
        assert_eq!(
            err,
            QueueError::InPast {
                at: SimTime::from_nanos(9),
                now: SimTime::from_nanos(10)
            }
        );
        assert!(err.to_string().contains("t=9ns"));
    }

    #[test]
    fn cancelled_events_never_leave() {
        let mut q = EventQueue::new();
        let a = q.schedule(SimTime::from_nanos(1), 'a').unwrap();
        q.schedule(SimTime::from_nanos(2), 'b').unwrap();
        assert!(q.cancel(a));
        assert!(!q.cancel(a), "second cancel reports nothing pending");
        assert_eq!(q.peek_time(), Some(SimTime::from_nanos(2)));
        assert_eq!(q.pop().map(|(_, e)| e), Some('b'));
        assert!(q.pop().is_none());
        assert!(q.is_empty());
    }

    proptest! {
        #[test]
        fn pops_are_sorted_by_time_then_seq(times in proptest::collection::vec(0u64..50, 0..200)) {
            let mut q = EventQueue::new();
            for (i, t) in times.iter().enumerate() {
                q.schedule(SimTime::from_nanos(*t), i).unwrap();
            }
            let mut last: Option<(u64, usize)> = None;
            while let Some((t, i)) = q.pop() {
                let key = (t.as_nanos(), i);
                if let Some(prev) = last {
                    prop_assert!(prev < key, "{prev:?} then {key:?}");
                }
                last = Some(key);
            }
        }
    }
}
