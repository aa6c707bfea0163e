//! A harness for tests that run the real `node` and `dengine` binaries as child processes.
//!
//! Every node gets free loopback ports, its own data directory in a temporary directory and a
//! log file that is printed when the test fails. Tests wait on conditions (a leader agreed on,
//! an applied index reached), never on fixed sleeps: a slow machine makes them slower, not
//! flaky.

// Each test crate uses a different part of the harness.
#![allow(dead_code, unused_imports)]

mod cli;
mod client;
mod cluster;
mod http;
mod node;
mod ports;
mod wait;

pub use cli::{cli_binary, dengine, dengine_with_env, CliRun};
pub use client::{
    assert_etcd_error, assert_same_state, b, eventual_state, get, is_retryable, key_value_map,
    now_unix_ms, put, revision_of, scan_all, store_revision, ClusterClients, Keys,
};
pub use cluster::{agreed_leader, Cluster};
pub use http::{http, metric_value, metrics_address};
pub use node::{node_command, send_signal, LogFile, Node, NodeExit, NodeSpec};
pub use ports::free_ports;
pub use wait::{wait_for, wait_for_within, wait_for_writes, DEADLINE, POLL};
