//! `dengine-bench`: one workload, the same parameters, against d-engine's gRPC API, its
//! embedded API and etcd's v3 API; throughput, latency percentiles, memory and CPU of the
//! nodes, as text and as a JSON report. `scripts/bench-compare` runs the comparison and
//! `docs/benchmarks.md` holds the results.

pub mod cli;
pub mod driver;
pub mod mix;
pub mod procfs;
pub mod report;
pub mod stats;
pub mod targets;

/// etcd's v3 API, as compiled once in `dengine-proto`.
pub use dengine_proto::etcd as etcd_proto;
