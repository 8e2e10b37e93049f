//! The real `terraform` binary for the end-to-end tests, with the `hashicorp/aws` provider
//! from the machine's filesystem mirror (found, not assumed) and nothing downloaded.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

/// Stops the test with a clear message when `terraform` is not on PATH (the machine image
/// ships one; `scripts/test` warns loudly without it).
pub fn need_terraform() {
    let out = Command::new("terraform").arg("version").output();
    assert!(
        out.as_ref().is_ok_and(|o| o.status.success()),
        "the `terraform` binary is missing from PATH: this test needs it (the machine image ships one)"
    );
}

/// The directory that holds the mirrored `registry.terraform.io/hashicorp/aws`:
/// `BELLOWS_TF_MIRROR`, then the filesystem mirror or plugin cache a CLI configuration
/// names, then the directories Terraform itself searches, then a shallow search of the
/// places machine images install into.
pub fn mirror() -> PathBuf {
    let has_aws = |d: &Path| d.join("registry.terraform.io/hashicorp/aws").is_dir();
    let home = PathBuf::from(std::env::var_os("HOME").unwrap_or_default());
    let mut candidates: Vec<PathBuf> = std::env::var_os("BELLOWS_TF_MIRROR")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    let configs = [
        std::env::var_os("TF_CLI_CONFIG_FILE").map(PathBuf::from),
        Some(home.join(".terraformrc")),
    ];
    for config in configs.into_iter().flatten() {
        let Ok(text) = std::fs::read_to_string(&config) else {
            continue;
        };
        // `path = "..."` in a filesystem_mirror block, or `plugin_cache_dir = "..."`.
        for line in text.lines() {
            if let Some((k, v)) = line.trim().split_once('=')
                && matches!(k.trim(), "path" | "plugin_cache_dir")
            {
                candidates.push(PathBuf::from(v.trim().trim_matches('"')));
            }
        }
    }
    candidates.extend(std::env::var_os("TF_PLUGIN_CACHE_DIR").map(PathBuf::from));
    candidates.extend([
        home.join(".terraform.d/plugins"),
        home.join(".local/share/terraform/plugins"),
        PathBuf::from("/usr/local/share/terraform/plugins"),
        PathBuf::from("/usr/share/terraform/plugins"),
    ]);
    if let Some(d) = candidates.iter().find(|d| has_aws(d)) {
        return d.clone();
    }
    for root in ["/opt", "/usr/local", "/usr/share", "/var/lib"] {
        let Ok(entries) = std::fs::read_dir(root) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if has_aws(&p) {
                return p;
            }
            if let Ok(inner) = std::fs::read_dir(&p)
                && let Some(d) = inner.flatten().map(|e| e.path()).find(|d| has_aws(d))
            {
                return d;
            }
        }
    }
    panic!(
        "no filesystem mirror of the hashicorp/aws provider was found (looked in \
         $BELLOWS_TF_MIRROR, the CLI configuration, {candidates:?} and under /opt, /usr/local, \
         /usr/share, /var/lib): set BELLOWS_TF_MIRROR to one"
    );
}

/// A Terraform working directory with a CLI configuration of its own (the mirror and
/// nothing else) and a debug log, both kept, with their paths printed, when the test fails.
pub struct Tf {
    pub dir: PathBuf,
    /// The variables the provider reads (`bellows aws-env`'s), added to a clean environment.
    pub env: Vec<(String, String)>,
}

impl Tf {
    /// A working directory of this test process's own, named after `label`, holding a
    /// copy of every `.tf` (and `.tf.json`) in `from`. It lies outside the node's
    /// directory, so a failed test keeps it after the node is gone.
    pub fn new(from: &Path, label: &str, env: Vec<(String, String)>) -> Tf {
        need_terraform();
        let dir =
            std::env::temp_dir().join(format!("bellows-terraform-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for f in std::fs::read_dir(from).unwrap().flatten() {
            if f.path()
                .extension()
                .is_some_and(|e| e == "tf" || e == "json")
            {
                std::fs::copy(f.path(), dir.join(f.file_name())).unwrap();
            }
        }
        let mirror = mirror();
        eprintln!("provider mirror: {}", mirror.display());
        std::fs::write(
            dir.join("cli.tfrc"),
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    \
                 include = [\"registry.terraform.io/hashicorp/aws\"]\n  }}\n  direct {{\n    \
                 exclude = [\"registry.terraform.io/*/*\"]\n  }}\n}}\n",
                mirror.display()
            ),
        )
        .unwrap();
        Tf { dir, env }
    }

    pub fn log(&self) -> PathBuf {
        self.dir.join("terraform.log")
    }

    /// `terraform ARGS -no-color` in a clean environment: PATH, a HOME of its own, the
    /// CLI configuration, no prompts, no metadata lookups, and `env`.
    pub fn run(&self, args: &[&str]) -> Output {
        let started = Instant::now();
        let out = Command::new("terraform")
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .env("TF_CLI_CONFIG_FILE", self.dir.join("cli.tfrc"))
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("TF_LOG", "debug")
            .env("TF_LOG_PATH", self.log())
            .env("CHECKPOINT_DISABLE", "1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .args(args)
            .arg("-no-color")
            .output()
            .expect("terraform runs");
        eprintln!(
            "terraform {} -> {:?} in {:.0?}",
            args.join(" "),
            out.status.code(),
            started.elapsed()
        );
        out
    }

    /// Runs and asserts success, with Terraform's output in the message; gives stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "terraform {args:?} failed ({:?}):\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `terraform plan -detailed-exitcode ARGS` must find nothing to change (exit 0).
    pub fn plan_is_empty(&self, when: &str, args: &[&str]) {
        let mut all = vec!["plan", "-detailed-exitcode"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert_eq!(
            out.status.code(),
            Some(0),
            "the plan {when} is not empty:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tf {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "Terraform's debug log and working directory are kept: {} (in {})",
                self.log().display(),
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
