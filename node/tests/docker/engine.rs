//! The `docker` command line, one run's resources and their cleanup, and the images.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

/// How long one docker command may take (an image build sends the binaries to the engine).
const DOCKER_TIMEOUT: Duration = Duration::from_secs(300);
/// Lines of each container's log printed when the test fails.
const LOG_LINES_ON_FAILURE: usize = 150;

fn describe(args: &[&str]) -> String {
    format!("docker {}", args.join(" "))
}

fn outcome(args: &[&str], output: std::process::Output) -> Result<String, String> {
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(format!(
            "{} failed ({}): {}",
            describe(args),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Runs `docker ARGS` and returns its standard output, trimmed; Err names the command and
/// carries what it printed on standard error.
pub async fn docker(args: &[&str]) -> Result<String, String> {
    let mut command = tokio::process::Command::new("docker");
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(DOCKER_TIMEOUT, command.output())
        .await
        .map_err(|_| format!("{} took over {DOCKER_TIMEOUT:?}", describe(args)))?
        .map_err(|e| format!("cannot run docker: {e}"))?;
    outcome(args, output)
}

/// [`docker`] for places that cannot await (cleanup in `Drop`).
pub fn docker_blocking(args: &[&str]) -> Result<String, String> {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run docker: {e}"))?;
    outcome(args, output)
}

/// Whether a Docker engine answers; Err says why not.
pub fn engine_available() -> Result<String, String> {
    docker_blocking(&["info", "--format", "{{.ServerVersion}}"])
}

/// One test run: a unique id that prefixes every name and labels every resource, a temporary
/// directory, and cleanup of everything labelled with the id when dropped.
pub struct Run {
    pub id: String,
    dir: TempDir,
    /// The logs of containers removed during the run (replaced by a new version), printed
    /// with the others if the test fails.
    saved_logs: Mutex<Vec<(String, String)>>,
    images: Mutex<Vec<String>>,
}

impl Run {
    pub fn new() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let id = format!("dengine-e2e-{:x}{:05x}", std::process::id(), nanos >> 12);
        let dir = tempfile::Builder::new()
            .prefix("dengine-e2e-")
            .tempdir()
            .expect("create a temporary directory");
        Self {
            id,
            dir,
            saved_logs: Mutex::new(Vec::new()),
            images: Mutex::new(Vec::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The label every resource of this run carries.
    pub fn label(&self) -> String {
        format!("dengine-e2e.run={}", self.id)
    }

    /// A resource name unique to this run.
    pub fn name(&self, what: &str) -> String {
        format!("{}-{what}", self.id)
    }

    /// Keeps a container's log before it is removed, for the failure report.
    pub async fn save_logs(&self, container: &str) {
        let logs = container_logs(container).await;
        self.saved_logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((container.to_string(), logs));
    }

    /// Makes the build context of the node image from the test's own binaries with
    /// scripts/lib/make-rootfs.sh (the script scripts/build-images uses), plus the admin token
    /// at /etc/dengine/admin-token. Returns the context directory.
    pub fn node_image_context(&self, admin_token: &str) -> PathBuf {
        let context = self.dir().join("node-image");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lib/make-rootfs.sh");
        let output = Command::new("bash")
            .arg(&script)
            .args(["--data-dir", "/var/lib/dengine"])
            .args(["--env", "DENGINE_DATA_DIR=/var/lib/dengine"])
            .args(["--entrypoint", "node"])
            .arg(&context)
            .arg(env!("CARGO_BIN_EXE_node"))
            .arg(crate::common::cli_binary())
            .output()
            .expect("run scripts/lib/make-rootfs.sh");
        assert!(
            output.status.success(),
            "{} failed ({}):\n{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let token_dir = context.join("rootfs/etc/dengine");
        std::fs::create_dir_all(&token_dir).expect("create /etc/dengine in the root filesystem");
        std::fs::write(token_dir.join("admin-token"), admin_token).expect("write the admin token");
        context
    }

    /// Builds `context` as `tag` with the label `dengine-e2e.version=<version>` (and this run's
    /// label, so that two runs never share an image) and returns the image id. Containers are
    /// started by id, so another run re-tagging the same name changes nothing here.
    pub async fn build_image(&self, context: &Path, tag: &str, version: &str) -> String {
        let iid_file = self.dir().join(format!("iid-{version}"));
        let version_label = format!("dengine-e2e.version={version}");
        docker(&[
            "build",
            "--quiet",
            "--iidfile",
            &iid_file.display().to_string(),
            "--tag",
            tag,
            "--label",
            &version_label,
            "--label",
            &self.label(),
            &context.display().to_string(),
        ])
        .await
        .unwrap_or_else(|e| panic!("build image {tag}: {e}"));
        let id = std::fs::read_to_string(&iid_file)
            .expect("docker build writes the image id")
            .trim()
            .to_string();
        self.images
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id.clone());
        id
    }

    fn labelled(&self, kind: &str) -> Vec<String> {
        let filter = format!("label={}", self.label());
        let args: Vec<&str> = match kind {
            "container" => vec!["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"],
            "volume" => vec!["volume", "ls", "-q", "--filter", &filter],
            _ => vec!["network", "ls", "-q", "--filter", &filter],
        };
        docker_blocking(&args)
            .map(|out| out.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }
}

async fn container_logs(container: &str) -> String {
    let output = tokio::process::Command::new("docker")
        .args([
            "logs",
            "--tail",
            &LOG_LINES_ON_FAILURE.to_string(),
            container,
        ])
        .stdin(Stdio::null())
        .output()
        .await;
    match output {
        // The node logs to standard error; docker keeps both streams.
        Ok(output) => format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) => format!("(cannot read the log: {e})"),
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let containers = self.labelled("container");
        if std::thread::panicking() {
            for (name, logs) in self
                .saved_logs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
            {
                eprintln!("\n---------- {name} (removed during the run), last {LOG_LINES_ON_FAILURE} lines ----------\n{logs}");
            }
            for name in &containers {
                let logs = Command::new("docker")
                    .args(["logs", "--tail", &LOG_LINES_ON_FAILURE.to_string(), name])
                    .output()
                    .map(|o| {
                        format!(
                            "{}{}",
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr)
                        )
                    })
                    .unwrap_or_else(|e| format!("(cannot read the log: {e})"));
                eprintln!(
                    "\n---------- {name}, last {LOG_LINES_ON_FAILURE} lines ----------\n{logs}"
                );
            }
        }
        let mut problems = Vec::new();
        if !containers.is_empty() {
            let mut args = vec!["rm", "--force", "--volumes"];
            args.extend(containers.iter().map(String::as_str));
            problems.extend(docker_blocking(&args).err());
        }
        let volumes = self.labelled("volume");
        if !volumes.is_empty() {
            let mut args = vec!["volume", "rm", "--force"];
            args.extend(volumes.iter().map(String::as_str));
            problems.extend(docker_blocking(&args).err());
        }
        for network in self.labelled("network") {
            problems.extend(docker_blocking(&["network", "rm", &network]).err());
        }
        let images = std::mem::take(&mut *self.images.lock().unwrap_or_else(|e| e.into_inner()));
        for image in images {
            // Untags and deletes; an image another run's container still uses stays.
            let _ = docker_blocking(&["rmi", "--force", &image]);
        }
        for problem in problems {
            eprintln!("cleanup of {}: {problem}", self.id);
        }
    }
}
