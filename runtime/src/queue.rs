//! Fair queueing of a warehouse's waiting statements: callers are served round-robin, each
//! caller's statements in the order they came, so one caller submitting a hundred statements
//! does not make everyone else wait behind all of them.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

#[derive(Debug)]
pub struct FairQueue<C, T> {
    /// Callers with waiting items, in the order they are next served.
    turns: VecDeque<C>,
    waiting: HashMap<C, VecDeque<T>>,
}

impl<C: Clone + Eq + Hash, T: PartialEq> Default for FairQueue<C, T> {
    fn default() -> Self {
        FairQueue {
            turns: VecDeque::new(),
            waiting: HashMap::new(),
        }
    }
}

impl<C: Clone + Eq + Hash, T: PartialEq> FairQueue<C, T> {
    pub fn push(&mut self, caller: C, item: T) {
        let queue = self.waiting.entry(caller.clone()).or_default();
        if queue.is_empty() {
            self.turns.push_back(caller);
        }
        queue.push_back(item);
    }

    /// The next item: the oldest of the caller whose turn it is.
    pub fn pop(&mut self) -> Option<T> {
        let caller = self.turns.pop_front()?;
        let queue = self.waiting.get_mut(&caller)?;
        let item = queue.pop_front();
        if queue.is_empty() {
            self.waiting.remove(&caller);
        } else {
            self.turns.push_back(caller);
        }
        item
    }

    /// Takes `item` out wherever it waits; `false` if it was not waiting.
    pub fn remove(&mut self, item: &T) -> bool {
        let mut emptied = None;
        let mut found = false;
        for (caller, queue) in &mut self.waiting {
            if let Some(pos) = queue.iter().position(|i| i == item) {
                queue.remove(pos);
                found = true;
                if queue.is_empty() {
                    emptied = Some(caller.clone());
                }
                break;
            }
        }
        if let Some(caller) = emptied {
            self.waiting.remove(&caller);
            self.turns.retain(|c| *c != caller);
        }
        found
    }

    /// Empties the queue, oldest turns first.
    pub fn drain(&mut self) -> Vec<T> {
        let mut out = Vec::new();
        while let Some(item) = self.pop() {
            out.push(item);
        }
        out
    }

    pub fn len(&self) -> usize {
        self.waiting.values().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_take_turns_and_each_keeps_its_order() {
        let mut q = FairQueue::default();
        for i in 1..=4 {
            q.push("alice", format!("a{i}"));
        }
        q.push("bob", "b1".to_owned());
        q.push("carol", "c1".to_owned());
        q.push("bob", "b2".to_owned());
        assert_eq!(q.len(), 7);
        let order = q.drain();
        assert_eq!(order, ["a1", "b1", "c1", "a2", "b2", "a3", "a4"]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_caller_returning_goes_to_the_back() {
        let mut q = FairQueue::default();
        q.push(1, 10);
        q.push(2, 20);
        assert_eq!(q.pop(), Some(10));
        q.push(1, 11);
        q.push(3, 30);
        assert_eq!(q.drain(), [20, 11, 30]);
    }

    #[test]
    fn removing_a_cancelled_item() {
        let mut q = FairQueue::default();
        q.push(1, 10);
        q.push(2, 20);
        q.push(1, 11);
        assert!(q.remove(&20));
        assert!(!q.remove(&20));
        assert!(q.remove(&10));
        assert_eq!(q.drain(), [11]);
        assert_eq!(q.pop(), None);
    }
}
