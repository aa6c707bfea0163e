//! Interaction tests of the core: several nodes on a network the test controls (`net.rs`).
//! Each file holds the scenarios of one promise; every scenario that reproduces a bug found in
//! review says so, and failed before its fix.

mod net;

mod admission;
mod lease;
mod persistence;
mod scripts;
