//! The bounds on what one caller and one warehouse may hold: live (pending or running)
//! statements, and the bytes of the results kept for them. A statement is counted from its
//! submission until it ends; its result's bytes from its success until it is closed.

use std::collections::HashMap;

/// The bounds (`[runtime]` `max_live_statements_per_caller` and friends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub(crate) live_per_caller: usize,
    pub(crate) live_per_warehouse: usize,
    pub(crate) result_bytes_per_caller: u64,
    pub(crate) result_bytes_per_warehouse: u64,
}

/// Which bound refused, with its value, worded for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Exhausted {
    #[error(
        "the caller already has {0} statements pending or running, the most allowed; \
         wait for some to finish or cancel them"
    )]
    CallerStatements(usize),
    #[error(
        "warehouse `{1}` already has {0} statements pending or running, the most allowed; \
         try again once some have finished"
    )]
    WarehouseStatements(usize, String),
    #[error(
        "the results kept for the caller's statements would exceed {0} bytes, the most \
         allowed; fetch and let older results expire, or narrow the result with row_limit or \
         byte_limit"
    )]
    CallerResults(u64),
    #[error(
        "the results kept on warehouse `{1}` would exceed {0} bytes, the most allowed; \
         try again once older results have expired"
    )]
    WarehouseResults(u64, String),
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub(crate) live: usize,
    pub(crate) bytes: u64,
}

#[derive(Debug)]
pub(super) struct Ledger {
    bounds: Bounds,
    callers: HashMap<String, Usage>,
    warehouses: HashMap<String, Usage>,
}

impl Ledger {
    pub(super) fn new(bounds: Bounds) -> Self {
        Ledger {
            bounds,
            callers: HashMap::new(),
            warehouses: HashMap::new(),
        }
    }

    pub(super) fn usage(&self, caller: &str, warehouse: &str) -> (Usage, Usage) {
        (
            self.callers.get(caller).copied().unwrap_or_default(),
            self.warehouses.get(warehouse).copied().unwrap_or_default(),
        )
    }

    /// Counts a new live statement, unless a bound is reached (a caller already holding its
    /// whole result budget may not start more either).
    pub(super) fn admit(&mut self, caller: &str, warehouse: &str) -> Result<(), Exhausted> {
        let (by_caller, by_warehouse) = self.usage(caller, warehouse);
        if by_caller.live >= self.bounds.live_per_caller {
            return Err(Exhausted::CallerStatements(self.bounds.live_per_caller));
        }
        if by_warehouse.live >= self.bounds.live_per_warehouse {
            return Err(Exhausted::WarehouseStatements(
                self.bounds.live_per_warehouse,
                warehouse.to_owned(),
            ));
        }
        if by_caller.bytes >= self.bounds.result_bytes_per_caller {
            return Err(Exhausted::CallerResults(
                self.bounds.result_bytes_per_caller,
            ));
        }
        if by_warehouse.bytes >= self.bounds.result_bytes_per_warehouse {
            return Err(Exhausted::WarehouseResults(
                self.bounds.result_bytes_per_warehouse,
                warehouse.to_owned(),
            ));
        }
        self.callers.entry(caller.to_owned()).or_default().live += 1;
        self.warehouses
            .entry(warehouse.to_owned())
            .or_default()
            .live += 1;
        Ok(())
    }

    pub(super) fn release_live(&mut self, caller: &str, warehouse: &str) {
        Self::update(&mut self.callers, caller, |u| {
            u.live = u.live.saturating_sub(1)
        });
        Self::update(&mut self.warehouses, warehouse, |u| {
            u.live = u.live.saturating_sub(1)
        });
    }

    /// Charges a finished result's bytes, unless they would exceed a bound.
    pub(super) fn charge(
        &mut self,
        caller: &str,
        warehouse: &str,
        bytes: u64,
    ) -> Result<(), Exhausted> {
        let (by_caller, by_warehouse) = self.usage(caller, warehouse);
        if by_caller.bytes.saturating_add(bytes) > self.bounds.result_bytes_per_caller {
            return Err(Exhausted::CallerResults(
                self.bounds.result_bytes_per_caller,
            ));
        }
        if by_warehouse.bytes.saturating_add(bytes) > self.bounds.result_bytes_per_warehouse {
            return Err(Exhausted::WarehouseResults(
                self.bounds.result_bytes_per_warehouse,
                warehouse.to_owned(),
            ));
        }
        self.callers.entry(caller.to_owned()).or_default().bytes += bytes;
        self.warehouses
            .entry(warehouse.to_owned())
            .or_default()
            .bytes += bytes;
        Ok(())
    }

    pub(super) fn release_bytes(&mut self, caller: &str, warehouse: &str, bytes: u64) {
        Self::update(&mut self.callers, caller, |u| {
            u.bytes = u.bytes.saturating_sub(bytes)
        });
        Self::update(&mut self.warehouses, warehouse, |u| {
            u.bytes = u.bytes.saturating_sub(bytes)
        });
    }

    /// Changes one entry and forgets it once it holds nothing.
    fn update(map: &mut HashMap<String, Usage>, key: &str, change: impl FnOnce(&mut Usage)) {
        if let Some(usage) = map.get_mut(key) {
            change(usage);
            if *usage == Usage::default() {
                map.remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> Bounds {
        Bounds {
            live_per_caller: 2,
            live_per_warehouse: 3,
            result_bytes_per_caller: 100,
            result_bytes_per_warehouse: 150,
        }
    }

    #[test]
    fn live_statements_are_bounded_per_caller_and_per_warehouse() {
        let mut ledger = Ledger::new(bounds());
        ledger.admit("a", "w").unwrap();
        ledger.admit("a", "w").unwrap();
        assert_eq!(ledger.admit("a", "w"), Err(Exhausted::CallerStatements(2)));
        ledger.admit("b", "w").unwrap();
        assert!(matches!(
            ledger.admit("c", "w"),
            Err(Exhausted::WarehouseStatements(3, _))
        ));
        ledger.admit("c", "other").unwrap();
        ledger.release_live("a", "w");
        ledger.admit("c", "w").unwrap();
    }

    #[test]
    fn result_bytes_are_bounded_and_released() {
        let mut ledger = Ledger::new(bounds());
        ledger.charge("a", "w", 60).unwrap();
        assert_eq!(
            ledger.charge("a", "w", 41),
            Err(Exhausted::CallerResults(100))
        );
        ledger.charge("a", "w", 40).unwrap();
        // A caller holding its whole budget starts nothing more.
        assert_eq!(ledger.admit("a", "w"), Err(Exhausted::CallerResults(100)));
        assert!(matches!(
            ledger.charge("b", "w", 51),
            Err(Exhausted::WarehouseResults(150, _))
        ));
        ledger.release_bytes("a", "w", 60);
        ledger.admit("a", "w").unwrap();
        ledger.release_live("a", "w");
        ledger.release_bytes("a", "w", 40);
        assert!(ledger.callers.is_empty() && ledger.warehouses.is_empty());
    }
}
