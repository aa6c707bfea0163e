//! Compiles `dengine/v1/*.proto` and etcd's v3 API (`third_party/etcd`) with protox (a
//! pure-Rust protobuf compiler), so no build needs a system `protoc`. Which gRPC stubs are
//! generated follows the crate's features; the messages are always there. The encoded
//! descriptor set of `dengine.v1` is kept for the server's gRPC reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let files = [
        "dengine/v1/kv.proto",
        "dengine/v1/raft.proto",
        "dengine/v1/admin.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let client = std::env::var_os("CARGO_FEATURE_CLIENT").is_some();
    let server = std::env::var_os("CARGO_FEATURE_SERVER").is_some();
    let descriptors = protox::compile(files, [&root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("dengine_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(client)
        .build_server(server)
        .bytes(".dengine.v1")
        .compile_fds(descriptors)?;

    // etcd's messages as etcd's own Go and Rust clients have them (byte fields as Vec<u8>).
    let third_party = root.join("third_party");
    println!("cargo:rerun-if-changed={}", third_party.display());
    let etcd = protox::compile(
        [
            "etcd/api/etcdserverpb/rpc.proto",
            "etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto",
            "etcd/server/etcdserver/api/v3election/v3electionpb/v3election.proto",
        ],
        [&third_party],
    )?;
    tonic_prost_build::configure()
        .build_client(client)
        .build_server(server)
        .compile_fds(etcd)?;
    Ok(())
}
