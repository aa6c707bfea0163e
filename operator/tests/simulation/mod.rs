//! A small simulated world for the director: a StatefulSet controller, pods with volumes, and
//! a Raft group whose nodes start, join, catch up and elect leaders. Operator steps are applied
//! as the API server and the cluster's leader would apply them, with their refusals.

mod effects;
pub mod rng;
pub mod run;
pub mod world;
