//! Compiles the node's Admin API (`proto/dengine/v1/admin.proto`) into a gRPC client with protox,
//! a pure-Rust protobuf compiler, so building the operator needs no system `protoc`. The
//! operator reads the proto files rather than linking the node crate: it only talks to nodes.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let files = ["dengine/v1/admin.proto"];
    for file in ["dengine/v1/admin.proto", "dengine/v1/raft.proto"] {
        println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    }
    let descriptors = protox::compile(files, [&proto_root])?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(descriptors)?;
    Ok(())
}
