//! Compiles etcd's v3 API (`proto/third_party`, see its README) into a gRPC client with
//! protox, a pure-Rust protobuf compiler, so building the benchmark needs no system `protoc`.
//! The d-engine client comes from the `dengine` crate itself (`dengine::proto`).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto/third_party");
    println!("cargo:rerun-if-changed={}", root.display());
    let descriptors = protox::compile(["etcd/api/etcdserverpb/rpc.proto"], [&root])?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(descriptors)?;
    Ok(())
}
