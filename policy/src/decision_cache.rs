//! Decisions already made by a bundle, by request.
//!
//! A decision is a pure function of the request, the entities built from it and the policy
//! set; the set is fixed for the bundle's life (a reload makes a new bundle, with an empty
//! cache), and everything the entities are built from is in the key, so a hit returns exactly
//! what evaluation would. The request time is left out of the key: the bundle only caches when
//! no policy reads it.
//!
//! The table is keyed by the request's SipHash (seeded per process, as std's maps are: callers
//! choose much of a request) and holds the whole request beside the decision, compared in full
//! on every hit, so two requests with one hash are never confused (the later one replaces the
//! earlier). Hashing once and comparing in place, rather than cloning the request into a key
//! to look it up and hashing it again to insert it, took a fifth off the cost of a decision.

use crate::request::AuthzRequest;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};

/// Past this many entries the cache starts over; it holds recent callers, not history.
const CAPACITY: usize = 16_384;

pub(crate) struct DecisionCache<V> {
    seed: RandomState,
    /// parking_lot's: it does not poison, so a panic while it was held cannot switch the
    /// cache off for the bundle's life (std's made every later `get` and `put` skip).
    entries: parking_lot::Mutex<HashMap<u64, (AuthzRequest, V), Hashed>>,
}

/// What the table's keys already are: hashes.
#[derive(Default, Clone, Copy)]
struct Hashed;

struct HashedHasher(u64);

impl BuildHasher for Hashed {
    type Hasher = HashedHasher;

    fn build_hasher(&self) -> HashedHasher {
        HashedHasher(0)
    }
}

impl Hasher for HashedHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A request's place in the cache, found by [`DecisionCache::get`] for [`DecisionCache::put`].
#[derive(Clone, Copy)]
pub(crate) struct Slot(u64);

impl<V: Clone> DecisionCache<V> {
    pub(crate) fn new() -> Self {
        Self {
            seed: RandomState::new(),
            entries: parking_lot::Mutex::new(HashMap::with_hasher(Hashed)),
        }
    }

    pub(crate) fn get(&self, request: &AuthzRequest) -> (Slot, Option<V>) {
        let slot = Slot(self.hash(request));
        let hit = match self.entries.lock().get(&slot.0) {
            Some((kept, value)) if same_but_time(kept, request) => Some(value.clone()),
            _ => None,
        };
        (slot, hit)
    }

    pub(crate) fn put(&self, slot: Slot, request: &AuthzRequest, value: &V) {
        let entry = (request.clone(), value.clone());
        let mut entries = self.entries.lock();
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(slot.0, entry);
    }

    fn hash(&self, request: &AuthzRequest) -> u64 {
        let AuthzRequest {
            principal,
            action,
            resource,
            client_ip,
            workspace,
            account_id,
            auth_method,
            token_id,
            request_time_unix: _,
        } = request;
        let mut hasher = self.seed.build_hasher();
        principal.hash(&mut hasher);
        action.hash(&mut hasher);
        resource.hash(&mut hasher);
        client_ip.hash(&mut hasher);
        workspace.hash(&mut hasher);
        account_id.hash(&mut hasher);
        auth_method.hash(&mut hasher);
        token_id.hash(&mut hasher);
        hasher.finish()
    }
}

fn same_but_time(a: &AuthzRequest, b: &AuthzRequest) -> bool {
    let AuthzRequest {
        principal,
        action,
        resource,
        client_ip,
        workspace,
        account_id,
        auth_method,
        token_id,
        request_time_unix: _,
    } = a;
    *principal == b.principal
        && *action == b.action
        && *resource == b.resource
        && *client_ip == b.client_ip
        && *workspace == b.workspace
        && *account_id == b.account_id
        && *auth_method == b.auth_method
        && *token_id == b.token_id
}

#[cfg(test)]
mod tests;
