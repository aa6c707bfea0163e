//! Compiles the node's client KV API (`proto/dengine/v1/kv.proto`) into a gRPC client with
//! protox, a pure-Rust protobuf compiler, as operator/build.rs does for the Admin API: the writer
//! application talks to its node's client listener on 127.0.0.1 and serves nothing itself.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../proto");
    let file = "dengine/v1/kv.proto";
    println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    let descriptors = protox::compile([file], [&proto_root])?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(descriptors)?;
    Ok(())
}
