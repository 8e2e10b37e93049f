//! README.md runs as written: every `sh` and `toml` block in it is run against the built
//! binary, in a scratch directory that holds a copy of the repository's `examples/` and
//! its `traces/`, the way a newcomer would follow it in a fresh clone. A block that
//! breaks fails this test, so the README cannot drift from the program.
//!
//! A block is steered by one HTML comment on the line before its fence (invisible on
//! GitHub): `<!-- readme-test: ITEM; ITEM -->`, where an item is
//!
//! - `skip: REASON`: the block is not run (it builds a release, runs the whole suite,
//!   streams until Ctrl-C, ...); the reason must be given;
//! - `up=FILE`: the block runs while `bellows up FILE` runs in the scratch directory
//!   (started if another stack or none runs, after stopping that one with Ctrl-C, as
//!   the README tells a reader to);
//! - `replace=FROM=>TO`: text of the block replaced before it runs, to shorten a long
//!   duration; the command is otherwise the README's;
//! - `id=NAME` and `with=#NAME` or `with=FILE` (TOML): the block is a fragment, checked
//!   by `bellows validate` appended to that block or file.
//!
//! Shell blocks run in `bash -e -o pipefail`, with the binary first on `PATH`. A line
//! `bellows up [FILE]` in a block starts that stack in the background (stopping the one
//! that ran) and the rest of the block runs once its instances serve. Stacks listen on
//! ephemeral ports: the README's `127.0.0.1:8080` and `127.0.0.1:9900` are rewritten to
//! the addresses the running stack got, in the copied examples and in the blocks.

// End-to-end tests measure real time.
#![allow(clippy::disallowed_methods)]

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, scratch};

/// How long one block may take (the tour runs a scenario of its own).
const BLOCK_TIMEOUT: Duration = Duration::from_secs(300);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[derive(Debug, Default)]
struct Block {
    /// The line of the opening fence, 1-based.
    line: usize,
    lang: String,
    text: String,
    skip: Option<String>,
    up: Option<String>,
    replace: Vec<(String, String)>,
    id: Option<String>,
    with: Option<String>,
}

/// The `sh` and `toml` blocks of the README, with their directives.
fn blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].strip_prefix("```") else {
            i += 1;
            continue;
        };
        let lang = info.split_whitespace().next().unwrap_or("").to_owned();
        let start = i;
        let mut text = String::new();
        i += 1;
        while i < lines.len() && !lines[i].starts_with("```") {
            text += lines[i];
            text += "\n";
            i += 1;
        }
        i += 1;
        if lang != "sh" && lang != "toml" {
            continue;
        }
        let mut b = Block {
            line: start + 1,
            lang,
            text,
            ..Block::default()
        };
        let before = lines[..start]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim());
        if let Some(d) = before
            .and_then(|l| l.strip_prefix("<!-- readme-test:"))
            .and_then(|l| l.strip_suffix("-->"))
        {
            // A skip's reason is the rest of the comment, semicolons and all.
            let items: Vec<&str> = match d.trim().strip_prefix("skip:") {
                Some(reason) => {
                    b.skip = Some(reason.trim().to_owned());
                    Vec::new()
                }
                None => d
                    .split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect(),
            };
            for item in items {
                if let Some(reason) = item.strip_prefix("skip:") {
                    b.skip = Some(reason.trim().to_owned());
                } else if let Some(f) = item.strip_prefix("up=") {
                    b.up = Some(f.to_owned());
                } else if let Some(r) = item.strip_prefix("replace=") {
                    let (from, to) = r
                        .split_once("=>")
                        .unwrap_or_else(|| panic!("README.md:{}: replace=FROM=>TO", b.line));
                    b.replace.push((from.to_owned(), to.to_owned()));
                } else if let Some(n) = item.strip_prefix("id=") {
                    b.id = Some(n.to_owned());
                } else if let Some(w) = item.strip_prefix("with=") {
                    b.with = Some(w.to_owned());
                } else {
                    panic!("README.md:{}: unknown readme-test item `{item}`", b.line);
                }
            }
        }
        out.push(b);
    }
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The scratch directory a reader works in: a copy of `examples/` whose listeners and
/// instance networks are this test's own, and the repository's traces.
struct World {
    dir: PathBuf,
    lb: String,
    bin: PathBuf,
    up: Option<Running>,
}

struct Running {
    child: Child,
    file: String,
}

fn copy_examples(from: &Path, to: &Path, lb: &str, network: &str) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_examples(&entry.path(), &target, lb, network);
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let mut text = text.replace("127.0.0.1:8080", lb);
        if !text.contains("instance_network") {
            text = text.replacen(
                "[stack]\n",
                &format!("[stack]\ninstance_network = \"{network}\"\n"),
                1,
            );
        }
        std::fs::write(target, text).unwrap();
    }
}

impl World {
    fn new() -> World {
        let (dir, network) = scratch();
        let lb = format!("127.0.0.1:{}", free_port());
        copy_examples(
            &repo().join("examples"),
            &dir.join("examples"),
            &lb,
            &network,
        );
        std::os::unix::fs::symlink(repo().join("traces"), dir.join("traces")).unwrap();
        World {
            dir,
            lb,
            bin: Path::new(BIN).parent().unwrap().to_owned(),
            up: None,
        }
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .current_dir(&self.dir)
            .env_remove("BELLOWS_STATE_DIR")
            .env_remove("BELLOWS_CONTROL")
            .args(args)
            .output()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("up.log")).unwrap_or_default()
    }

    /// Ctrl-C to the running stack, as the README says before starting another one;
    /// it must stop every instance and exit 0.
    fn stop(&mut self, at: usize) {
        let Some(mut up) = self.up.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &up.child.id().to_string()])
            .status();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = up.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "README.md:{at}: `bellows up {}` did not exit 0 on Ctrl-C ({status}); log:\n{}",
                    up.file,
                    self.log()
                );
                return;
            }
            if Instant::now() >= end {
                let _ = up.child.kill();
                panic!(
                    "README.md:{at}: `bellows up {}` did not stop within 30 s of Ctrl-C",
                    up.file
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Makes `file` the running stack (the embedded default when empty, which is
    /// examples/ip-tracker.toml), and waits until its instances serve.
    fn ensure_up(&mut self, file: &str, at: usize) {
        let file = if file.is_empty() {
            "examples/ip-tracker.toml"
        } else {
            file
        };
        if self.up.as_ref().is_some_and(|u| u.file == file) {
            return;
        }
        self.stop(at);
        let child = Command::new(BIN)
            .current_dir(&self.dir)
            .env_remove("BELLOWS_STATE_DIR")
            // Only `up` gets an ephemeral control port; the CLI finds it through the
            // state directory of the current directory, as the README says.
            .env("BELLOWS_CONTROL", "127.0.0.1:0")
            .args(["up", file])
            .stdout(std::fs::File::create(self.dir.join("up.log")).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.up = Some(Running {
            child,
            file: file.to_owned(),
        });
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if self.ready() {
                return;
            }
            if let Some(status) = self.up.as_mut().unwrap().child.try_wait().unwrap() {
                panic!(
                    "README.md:{at}: `bellows up {file}` exited ({status}); log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < end,
                "README.md:{at}: `bellows up {file}` did not serve within 60 s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every group at desired in service, and every registered target healthy.
    fn ready(&self) -> bool {
        let status = self.cli(&["status", "--json"]);
        let targets = self.cli(&["targets", "--json"]);
        if !status.status.success() || !targets.status.success() {
            return false;
        }
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        let targets: serde_json::Value = serde_json::from_slice(&targets.stdout).unwrap();
        let groups = status["groups"].as_array().cloned().unwrap_or_default();
        groups
            .iter()
            .all(|g| g["in_service"].as_u64() >= g["desired"].as_u64())
            && targets
                .as_array()
                .into_iter()
                .flatten()
                .all(|t| t["state"] == "healthy")
    }

    fn control(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join(".bellows/control"))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    /// Runs a piece of a shell block; panics with its output if it fails.
    fn sh(&self, b: &Block, script: &str) {
        let mut script = script.replace("127.0.0.1:8080", &self.lb);
        if let Some(c) = self.control() {
            script = script.replace("127.0.0.1:9900", &c);
        }
        let path = format!(
            "{}:{}",
            self.bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut child = Command::new("bash")
            .args(["-e", "-o", "pipefail", "-c", &script])
            .current_dir(&self.dir)
            .env("PATH", path)
            .env_remove("BELLOWS_STATE_DIR")
            .env_remove("BELLOWS_CONTROL")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Read both pipes on threads so that a chatty command cannot block on them.
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let o = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            s
        });
        let e = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let end = Instant::now() + BLOCK_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() >= end {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let (stdout, stderr) = (o.join().unwrap(), e.join().unwrap());
        match status {
            Some(s) if s.success() => {}
            Some(s) => panic!(
                "README.md:{}: the block failed ({s}):\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- bellows up\n{}",
                b.line,
                self.log()
            ),
            None => panic!(
                "README.md:{}: the block ran over {BLOCK_TIMEOUT:?}:\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
                b.line
            ),
        }
    }

    fn run_sh(&mut self, b: &Block) {
        if let Some(f) = &b.up {
            self.ensure_up(f, b.line);
        }
        let mut text = b.text.clone();
        for (from, to) in &b.replace {
            assert!(
                text.contains(from.as_str()),
                "README.md:{}: replace={from}=>{to}, but the block has no `{from}`",
                b.line
            );
            text = text.replace(from.as_str(), to);
        }
        // `bellows up` runs in the foreground: start it, then run the rest against it.
        let mut piece = String::new();
        for line in text.lines() {
            let command = line.split('#').next().unwrap_or("").trim();
            if let Some(rest) = command
                .strip_prefix("bellows up")
                .filter(|r| r.is_empty() || r.starts_with(' '))
            {
                if !piece.trim().is_empty() {
                    self.sh(b, &piece);
                }
                piece.clear();
                self.ensure_up(rest.trim(), b.line);
                continue;
            }
            piece += line;
            piece += "\n";
        }
        if !piece.trim().is_empty() {
            self.sh(b, &piece);
        }
    }

    fn run_toml(&self, b: &Block, all: &[Block]) {
        let base = match b.with.as_deref() {
            None => String::new(),
            Some(w) => match w.strip_prefix('#') {
                Some(id) => all
                    .iter()
                    .find(|o| o.id.as_deref() == Some(id))
                    .unwrap_or_else(|| panic!("README.md:{}: no block with id={id}", b.line))
                    .text
                    .clone(),
                None => std::fs::read_to_string(repo().join(w))
                    .unwrap_or_else(|e| panic!("README.md:{}: with={w}: {e}", b.line)),
            },
        };
        let file = self.dir.join(format!("readme-{}.toml", b.line));
        std::fs::write(&file, format!("{base}\n{}", b.text)).unwrap();
        let out = self.cli(&["validate", file.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "README.md:{}: `bellows validate` refuses the block{}:\n{}\n--- block\n{}",
            b.line,
            b.with
                .as_ref()
                .map(|w| format!(" (appended to {w})"))
                .unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr),
            b.text
        );
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(mut up) = self.up.take() {
            let _ = up.child.kill();
            let _ = up.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn every_shell_and_toml_block_of_the_readme_runs_as_written() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let all = blocks(&readme);
    assert!(all.len() >= 15, "found only {} blocks", all.len());
    let mut world = World::new();
    let mut ran = 0;
    for b in &all {
        if let Some(reason) = &b.skip {
            assert!(
                reason.len() >= 10,
                "README.md:{}: a block not run says why",
                b.line
            );
            continue;
        }
        eprintln!("README.md:{}: running the {} block", b.line, b.lang);
        let start = Instant::now();
        match b.lang.as_str() {
            "sh" => world.run_sh(b),
            _ => world.run_toml(b, &all),
        }
        eprintln!("README.md:{}: ok in {:.1?}", b.line, start.elapsed());
        ran += 1;
    }
    world.stop(readme.lines().count());
    assert!(
        ran * 4 >= all.len() * 3,
        "only {ran} of {} blocks ran",
        all.len()
    );
}

/// The harness itself: a block that breaks fails, a skip needs a reason, and the
/// directives are read as documented.
#[test]
fn the_readme_harness_reads_directives_and_fails_a_broken_block() {
    let text = "intro\n\n<!-- readme-test: up=examples/mp2-stress.toml; replace=30s=>1s -->\n```sh\nbellows status\n```\n\n<!-- readme-test: skip: it builds a release -->\n```sh\ncargo build --release\n```\n\n```toml\n[stack]\n```\n\n```\nnot run\n```\n";
    let b = blocks(text);
    assert_eq!(b.len(), 3);
    assert_eq!(b[0].up.as_deref(), Some("examples/mp2-stress.toml"));
    assert_eq!(b[0].replace, vec![("30s".to_owned(), "1s".to_owned())]);
    assert_eq!(b[0].line, 4);
    assert_eq!(b[1].skip.as_deref(), Some("it builds a release"));
    assert_eq!((b[2].lang.as_str(), b[2].skip.is_none()), ("toml", true));
    let world = World::new();
    let broken = Block {
        line: 1,
        lang: "sh".into(),
        text: "bellows validate examples/no-such-stack.toml\n".into(),
        ..Block::default()
    };
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        world.sh(&broken, &broken.text)
    }));
    assert!(failed.is_err(), "a failing command fails its block");
    let bad_toml = Block {
        line: 2,
        lang: "toml".into(),
        text: "[target_groups.web]\n[target_groups.web]\n".into(),
        ..Block::default()
    };
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        world.run_toml(&bad_toml, &[])
    }));
    assert!(failed.is_err(), "a TOML block bellows refuses fails");
}

/// The README's table of the control API lists every route of the OpenAPI document
/// (which a test of the node checks against the router), and nothing else.
#[test]
fn the_readme_api_table_lists_every_route() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("crates/bellows-node/assets/openapi.json")).unwrap(),
    )
    .unwrap();
    // `{listener}` and `{name}` are the same route: compare with the names left out.
    let shape = |p: &str| {
        let mut out = String::new();
        let mut inside = false;
        for c in p.chars() {
            match c {
                '{' => {
                    inside = true;
                    out.push_str("{}");
                }
                '}' => inside = false,
                _ if !inside => out.push(c),
                _ => {}
            }
        }
        out
    };
    let mut documented = std::collections::BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                documented.insert(format!("{} {}", method.to_uppercase(), shape(path)));
            }
        }
    }
    let mut table = std::collections::BTreeSet::new();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let cell = line.split('|').nth(1).unwrap_or("");
        let mut methods: Vec<String> = Vec::new();
        for span in cell.split('`').skip(1).step_by(2) {
            let (m, path) = match span.split_once(' ') {
                Some((m, p)) if m.chars().all(|c| c.is_ascii_uppercase() || c == '/') => {
                    methods = m.split('/').map(str::to_owned).collect();
                    (methods.clone(), p)
                }
                _ => (methods.clone(), span),
            };
            if !path.starts_with('/') {
                continue;
            }
            let path = path.split('?').next().unwrap();
            for method in m {
                table.insert(format!("{method} {}", shape(path)));
            }
        }
    }
    let missing: Vec<_> = documented.difference(&table).collect();
    let extra: Vec<_> = table.difference(&documented).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "README.md's API table and openapi.json differ: missing from the table {missing:?}, not in the document {extra:?}"
    );
}

/// The project carries the data it documents: no README line, example or script names a
/// path outside the repository (`../shared/...`, which a fresh clone does not have), every
/// trace they name is in `traces/`, and `traces/README.md` says where the traces come from
/// and on what terms. The README opens with the two commands and the tour.
#[test]
fn the_readme_and_examples_name_only_data_inside_the_repository() {
    let root = repo();
    let mut files = vec![root.join("README.md")];
    let mut dirs = vec![root.join("examples"), root.join("scripts")];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    let mut traces_named = 0;
    for f in &files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        let shown = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        for (n, line) in text.lines().enumerate() {
            assert!(
                !line.contains("../shared"),
                "{shown}:{}: names a path outside the repository: {line}",
                n + 1
            );
            for (at, _) in line.match_indices("traces/") {
                let name: String = line[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || "._/-".contains(*c))
                    .collect();
                if name.ends_with(".gz") || name.ends_with(".txt") {
                    traces_named += 1;
                    assert!(
                        root.join(&name).is_file(),
                        "{shown}:{}: names {name}, which the repository does not hold",
                        n + 1
                    );
                }
            }
        }
    }
    assert!(traces_named >= 3, "only {traces_named} trace paths found");
    let about = std::fs::read_to_string(root.join("traces/README.md")).unwrap();
    for heading in ["## Provenance", "## Licence"] {
        assert!(about.contains(heading), "traces/README.md has no {heading}");
    }
    for entry in std::fs::read_dir(root.join("traces")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name != "README.md" {
            assert!(
                about.contains(&format!("`{name}`")),
                "traces/README.md does not describe {name}"
            );
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let sections: Vec<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .take(2)
        .collect();
    assert_eq!(
        sections,
        ["Two commands", "A 5-minute tour"],
        "README.md opens with the two commands and the tour"
    );
}
