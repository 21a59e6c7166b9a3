//! A UDF's own counters (docs/metrics.md), the Rust SDK's side of Python's
//! `quiver.metrics.counter`. Inside a UDF's body:
//!
//! ```
//! # fn body() -> Result<(), quiver_worker::BoxError> {
//! quiver_worker::counter("rows_skipped")?.add(3)?;
//! # Ok(()) }
//! ```
//!
//! The worker reports what every counter grew by during an execution in the protocol's
//! `Metrics.counters` (or as `counter.NAME` keys of the Spark dialect's metrics map); the engine
//! sums them over workers and batches.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use crate::registry::UdfError;

/// Most counter names one process may hold; the engine refuses more per execution.
pub const MAX_COUNTERS: usize = 256;

/// The class of the error a bad name or a bad `add` returns (`UserError.error_class`).
pub const COUNTER_ERROR_CLASS: &str = "CounterError";

// One table for the process: an execution reports the difference of two snapshots.
static TOTALS: Mutex<BTreeMap<String, u64>> = Mutex::new(BTreeMap::new());

fn totals() -> MutexGuard<'static, BTreeMap<String, u64>> {
    // A panic elsewhere while holding the lock leaves whole numbers behind: keep counting.
    TOTALS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Tell whether `name` can name a counter: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A named count that only grows, shared by every thread of the process; get one with
/// [`counter`].
#[derive(Clone, Debug)]
pub struct Counter {
    name: String,
}

/// The counter `name`, which must match `[a-zA-Z_][a-zA-Z0-9_]*`; at most [`MAX_COUNTERS`]
/// names per process. The error, returned from a UDF with `?`, fails the batch as a
/// `UserError`.
pub fn counter(name: &str) -> Result<Counter, UdfError> {
    if !is_metric_name(name) {
        return Err(UdfError::new(
            COUNTER_ERROR_CLASS,
            format!(
                "'{name}' is not a valid metric name: use letters, digits and '_', \
                 not starting with a digit (e.g. 'rows_skipped')"
            ),
        ));
    }
    let mut totals = totals();
    if !totals.contains_key(name) && totals.len() >= MAX_COUNTERS {
        return Err(UdfError::new(
            COUNTER_ERROR_CLASS,
            format!("counter '{name}': at most {MAX_COUNTERS} counter names per process"),
        ));
    }
    totals.entry(name.to_owned()).or_insert(0);
    Ok(Counter {
        name: name.to_owned(),
    })
}

impl Counter {
    /// The counter's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Add `n`; refused when the total would pass 2^63-1 (the protocol's bound).
    pub fn add(&self, n: u64) -> Result<(), UdfError> {
        let mut totals = totals();
        let total = totals.entry(self.name.clone()).or_insert(0);
        match total.checked_add(n).filter(|sum| *sum <= i64::MAX as u64) {
            Some(sum) => {
                *total = sum;
                Ok(())
            }
            None => Err(UdfError::new(
                COUNTER_ERROR_CLASS,
                format!(
                    "counter '{}' would pass 2^63-1 (it is at {total}, adding {n})",
                    self.name
                ),
            )),
        }
    }
}

/// Every counter's total so far in this process.
pub fn snapshot() -> BTreeMap<String, u64> {
    totals().clone()
}

/// What every counter grew by since `before` (a [`snapshot`]), without 0s.
pub fn since(before: &BTreeMap<String, u64>) -> HashMap<String, u64> {
    snapshot()
        .into_iter()
        .filter_map(|(name, total)| {
            let grown = total - before.get(&name).copied().unwrap_or(0);
            (grown > 0).then_some((name, grown))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_letters_digits_and_underscores() {
        assert!(is_metric_name("rows_skipped") && is_metric_name("_x9"));
        for bad in ["", "9lives", "rows-skipped", "rows skipped", "é"] {
            assert!(!is_metric_name(bad), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_bad_name_fails_at_the_call_saying_what_is_allowed() {
        let error = counter("rows-skipped").unwrap_err();
        assert_eq!(error.class, COUNTER_ERROR_CLASS);
        assert!(
            error
                .message
                .starts_with("'rows-skipped' is not a valid metric name"),
            "{}",
            error.message
        );
    }

    #[test]
    fn adds_up_and_refuses_overflow() {
        let before = snapshot();
        let total = counter("counters_test_total").unwrap();
        total.add(3).unwrap();
        total.add(1).unwrap();
        assert_eq!(since(&before).get("counters_test_total"), Some(&4));
        assert!(total.add(i64::MAX as u64).is_err());
        assert_eq!(since(&before).get("counters_test_total"), Some(&4));
    }
}
