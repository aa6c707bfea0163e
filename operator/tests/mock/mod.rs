// Each test binary uses part of the shared mock.
#![allow(dead_code)]

//! A mocked Kubernetes API server and a simulated cluster behind it, for driving the real
//! reconciler: the operator's kube `Client` talks to an in-memory API server (through
//! tower-test's mock service), a simulated StatefulSet controller and kubelet make pods and
//! claims from what the operator applies, and a simulated Raft group answers the Admin API.

pub mod api_server;
pub mod raft;
pub mod world;
