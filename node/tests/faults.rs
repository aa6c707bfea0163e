//! Fault injection against real `node` processes, checked for linearizability.
//!
//! Work in progress: the checker first.

#[path = "faults/history.rs"]
mod history;
#[path = "faults/linearizability.rs"]
mod linearizability;
#[path = "faults/rng.rs"]
mod rng;
#[path = "faults/shrink.rs"]
mod shrink;

#[cfg(test)]
#[path = "faults/checker_tests.rs"]
mod checker_tests;
