//! Acknowledgement tracking for buses whose cursor is one offset per group.
//!
//! Deliveries leave in position order but are acknowledged in any order (the dispatcher has a
//! window of events in flight). The group's cursor may only move past a position once every
//! position before it was acknowledged, so an event in flight is never skipped by a restart.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug)]
pub struct AckTracker {
    state: Mutex<State>,
    dirty: AtomicBool,
}

#[derive(Debug)]
struct State {
    /// Every position below this one is acknowledged.
    committed: u64,
    /// Acknowledged positions above `committed`, waiting for the gap before them to close.
    ahead: BTreeSet<u64>,
}

impl AckTracker {
    pub fn new(committed: u64) -> Self {
        Self {
            state: Mutex::new(State {
                committed,
                ahead: BTreeSet::new(),
            }),
            dirty: AtomicBool::new(false),
        }
    }

    pub fn ack(&self, position: u64) {
        let mut state = self.state.lock().unwrap();
        if position < state.committed {
            return; // a duplicate of something already covered by the cursor
        }
        if position == state.committed {
            state.committed += 1;
            while state.ahead.first() == Some(&state.committed) {
                state.ahead.pop_first();
                state.committed += 1;
            }
            self.dirty.store(true, Ordering::Release);
        } else {
            state.ahead.insert(position);
        }
    }

    /// The first position not yet acknowledged contiguously.
    pub fn committed(&self) -> u64 {
        self.state.lock().unwrap().committed
    }

    /// Returns the cursor if it moved since the last call (for lazy persistence).
    pub fn take_if_moved(&self) -> Option<u64> {
        if self.dirty.swap(false, Ordering::AcqRel) {
            Some(self.committed())
        } else {
            None
        }
    }

    /// Moves the cursor forward to `position` (retention deleted what lay before it).
    pub fn skip_to(&self, position: u64) {
        let mut state = self.state.lock().unwrap();
        if position > state.committed {
            state.committed = position;
            state.ahead = state.ahead.split_off(&position);
            self.dirty.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_waits_for_the_gap_to_close() {
        let tracker = AckTracker::new(10);
        tracker.ack(12);
        tracker.ack(11);
        assert_eq!(tracker.committed(), 10);
        tracker.ack(10);
        assert_eq!(tracker.committed(), 13);
    }

    #[test]
    fn duplicate_acks_are_ignored() {
        let tracker = AckTracker::new(0);
        tracker.ack(0);
        tracker.ack(0);
        assert_eq!(tracker.committed(), 1);
        assert_eq!(tracker.take_if_moved(), Some(1));
        assert_eq!(tracker.take_if_moved(), None);
    }
}
