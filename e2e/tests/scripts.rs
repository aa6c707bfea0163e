//! What can be checked of the suite's scripts and workflows without a Kubernetes cluster: their
//! syntax, that `e2e/run --help` documents every option and setting the script reads, the kind
//! cluster's shape, and that the workflows run the suite's commands.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_scripts_parse() {
    for script in ["e2e/run", "e2e/build-app-image"] {
        let out = Command::new("bash")
            .arg("-n")
            .arg(root().join(script))
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mode = std::fs::metadata(root().join(script)).expect("exists");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert!(
                mode.permissions().mode() & 0o111 != 0,
                "{script} is not executable"
            );
        }
        #[cfg(not(unix))]
        let _ = mode;
    }
}

/// Runs a project script with bash and one argument.
fn run_script(script: &str, argument: &str) -> std::process::Output {
    Command::new("bash")
        .arg(root().join(script))
        .arg(argument)
        .output()
        .unwrap_or_else(|e| panic!("{script} does not run: {e}"))
}

#[test]
fn run_help_documents_every_option_and_setting() {
    let out = run_script("e2e/run", "--help");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let help = String::from_utf8_lossy(&out.stdout);
    let script = read("e2e/run");

    // Every option the argument loop accepts is in the help, and the other way round.
    let parsed: Vec<&str> = script
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("--") && l.contains(')'))
        .filter_map(|l| l.split(')').next())
        .flat_map(|l| l.split('|').map(str::trim))
        .filter(|o| {
            o.len() > 2
                && o.starts_with("--")
                && o[2..].chars().all(|c| c.is_ascii_lowercase() || c == '-')
        })
        .collect();
    assert!(parsed.len() >= 5, "the argument loop: {parsed:?}");
    for option in &parsed {
        assert!(help.contains(option), "--help does not mention {option}");
    }
    for option in [
        "--use-current-context",
        "--keep",
        "--scenario N",
        "--skip-build",
        "--delete-cluster",
        "-h, --help",
    ] {
        assert!(help.contains(option), "--help does not mention {option}");
        let flag = option
            .split(' ')
            .next()
            .expect("a flag")
            .trim_end_matches(',');
        assert!(
            script.contains(&format!("{flag})")) || script.contains(&format!("{flag} |")),
            "the script does not take {flag}"
        );
    }
    // Every setting it reads from the environment.
    for variable in [
        "DENGINE_E2E_TAG",
        "DENGINE_E2E_REGISTRY",
        "KIND_CLUSTER_NAME",
        "KIND_NODE_IMAGE",
        "DENGINE_E2E_OPERATOR_NAMESPACE",
        "DENGINE_E2E_ARTIFACTS",
    ] {
        assert!(
            script.contains(&format!("${{{variable}")),
            "the script does not read {variable}"
        );
        assert!(
            help.contains(variable),
            "--help does not mention {variable}"
        );
    }
    // What it runs.
    for command in [
        "kind create cluster",
        "kind load docker-image",
        "helm upgrade --install",
        "scripts/build-images",
        "e2e/build-app-image",
        "cargo build --release --locked -p dengine -p dengine-cli -p dengine-operator -p dengine-e2e --bins",
    ] {
        assert!(
            script.contains(command),
            "the script does not run {command}"
        );
    }
}

#[test]
fn run_refuses_an_unknown_argument_before_touching_anything() {
    let out = run_script("e2e/run", "--no-such-option");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument --no-such-option"));
}

#[test]
fn build_app_image_help_names_the_image() {
    let out = run_script("e2e/build-app-image", "--help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for words in [
        "--tag TAG",
        "--profile",
        "--binary",
        "ghcr.io/d-engine/dengine-e2e-app",
        "scripts/lib/make-rootfs.sh",
    ] {
        assert!(help.contains(words), "--help lacks {words}");
    }
}

#[test]
fn the_kind_cluster_has_three_workers_for_three_spread_members() {
    let config: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("e2e/kind.yaml")).expect("YAML");
    assert_eq!(config["kind"].as_str(), Some("Cluster"));
    assert_eq!(
        config["apiVersion"].as_str(),
        Some("kind.x-k8s.io/v1alpha4")
    );
    let roles: Vec<&str> = config["nodes"]
        .as_sequence()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["role"].as_str())
        .collect();
    assert_eq!(roles, ["control-plane", "worker", "worker", "worker"]);
}

fn steps_running(workflow: &str) -> Vec<String> {
    let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read(workflow)).expect("YAML");
    parsed["jobs"]
        .as_mapping()
        .expect("jobs")
        .values()
        .flat_map(|job| job["steps"].as_sequence().cloned().unwrap_or_default())
        .filter_map(|step| step["run"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn the_e2e_workflow_installs_kind_and_helm_and_runs_the_suite() {
    let runs = steps_running(".github/workflows/e2e.yml").join("\n");
    assert!(runs.contains("kind"), "{runs}");
    assert!(runs.contains("helm"), "{runs}");
    assert!(
        runs.lines().any(|l| l.trim_start().starts_with("e2e/run")),
        "{runs}"
    );
}

#[test]
fn the_ci_workflow_runs_the_ci_script() {
    let runs = steps_running(".github/workflows/ci.yml").join("\n");
    assert!(
        runs.lines()
            .any(|l| l.trim() == ".ci/run" || l.trim() == "bash .ci/run"),
        "{runs}"
    );
}

/// The Kubernetes floor is decided once, in `dengine_operator::KUBERNETES_FLOOR_MINOR`; the
/// chart's `kubeVersion` and the operations guide say the same.
#[test]
fn the_kubernetes_floor_is_the_same_everywhere_it_is_stated() {
    let floor = dengine_operator::KUBERNETES_FLOOR_MINOR;
    let sidecars = dengine_operator::SIDECARS_ON_BY_DEFAULT_MINOR;
    let chart = read("charts/dengine-operator/Chart.yaml");
    assert!(
        chart.contains(&format!("kubeVersion: \">=1.{floor}.0-0\"")),
        "Chart.yaml's kubeVersion is not >=1.{floor}.0-0"
    );
    let guide = read("docs/operator.md");
    assert!(
        guide.contains(&format!(
            "Kubernetes 1.{sidecars} or newer, or 1.{floor} with the `SidecarContainers` feature gate on"
        )),
        "docs/operator.md does not state the floor"
    );
    // Nowhere else names a version of its own.
    for path in [
        "e2e/kind.yaml",
        "charts/dengine-operator/README.md",
        "README.md",
        "e2e/README.md",
    ] {
        let text = read(path);
        for minor in (floor - 4)..(floor + 12) {
            if minor == floor || minor == sidecars {
                continue;
            }
            assert!(
                !text.contains(&format!("Kubernetes 1.{minor}")),
                "{path} states Kubernetes 1.{minor}"
            );
        }
    }
}
