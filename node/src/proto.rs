//! Types and services generated from `proto/dengine/v1/*.proto`.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("dengine.v1");

/// The encoded descriptor set of every service, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("dengine_descriptor");
