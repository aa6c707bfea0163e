//! The CRD committed in `crds/` is the one the types generate, and the binary prints it.

use std::path::PathBuf;
use std::process::Command;

use dengine_operator::crdgen::{crd_yaml, CRD_PATH, REGENERATE};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(CRD_PATH)
}

fn committed() -> String {
    let path = committed_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} cannot be read ({e}); create it with: {REGENERATE}",
            path.display()
        )
    })
}

#[test]
fn the_committed_crd_is_up_to_date_with_the_types() {
    let generated = crd_yaml().expect("the CRD renders");
    let committed = committed();
    if generated != committed {
        let first_difference = generated
            .lines()
            .zip(committed.lines())
            .position(|(g, c)| g != c)
            .map_or_else(
                || "one is a prefix of the other".to_string(),
                |i| format!("first difference at line {}", i + 1),
            );
        panic!("{CRD_PATH} is out of date with operator/src/crd ({first_difference}); regenerate it with:\n    {REGENERATE}");
    }
}

#[test]
fn the_committed_crd_reads_back_as_a_crd() {
    let crd: CustomResourceDefinition =
        serde_yaml_ng::from_str(&committed()).expect("the committed file is a CRD");
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("dengineclusters.dengine.io")
    );
}

#[test]
fn the_crd_subcommand_prints_the_crd() {
    let output = Command::new(env!("CARGO_BIN_EXE_dengine-operator"))
        .arg("crd")
        .output()
        .expect("the binary runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8(output.stdout).expect("UTF-8"),
        crd_yaml().expect("the CRD renders")
    );
}
