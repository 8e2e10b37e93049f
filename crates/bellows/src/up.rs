//! `bellows up` and `bellows validate`.

use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Read, Seek, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use bellows_node::{NodeOptions, clock};
use nix::fcntl::{Flock, FlockArg};

use crate::context::{Context, DEFAULT_STATE_DIR};
use crate::stack_file::{DEFAULT_STACK, load, parse};

pub fn validate(files: &[PathBuf]) -> ExitCode {
    let mut code = ExitCode::SUCCESS;
    for f in files {
        match load(f) {
            Ok(s) => {
                let instances: u32 = s.groups.iter().map(|g| g.desired).sum();
                out!(
                    "{}: ok (stack {}, {} group(s), {instances} instance(s) desired)",
                    f.display(),
                    s.name,
                    s.groups.len()
                );
            }
            Err(c) => code = c,
        }
    }
    code
}

/// Every client connection through the load balancer is two descriptors (the client's and
/// the target's), so a soft limit of 1,024, the usual default, would cap it near 500
/// connections. Raise the soft limit to the hard one, as nginx's `worker_rlimit_nofile`
/// and Go's runtime do; instances inherit it.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(soft, hard, error = %e, "could not raise the open-file limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not read the open-file limit"),
    }
}

/// `bellows up`: the stack `file`, else the empty stack `empty` names (`--empty`, its
/// name and instance network), else the built-in default.
pub async fn up(
    ctx: &Context,
    file: Option<PathBuf>,
    empty: Option<(String, Option<String>)>,
    cgroups: bool,
) -> anyhow::Result<ExitCode> {
    let (source, stack) = match (&file, &empty) {
        (None, Some((name, network))) => match bellows_core::stack::Stack::empty(name)
            .and_then(|s| s.with_instance_network(network.as_deref()))
        {
            Ok(s) => (
                "--empty (no listener, target group or group yet)".to_owned(),
                s,
            ),
            Err(e) => {
                eprintln!("bellows up --empty: {e}");
                return Ok(ExitCode::from(2));
            }
        },
        (Some(f), _) => match load(f) {
            Ok(s) => (f.display().to_string(), s),
            Err(code) => return Ok(code),
        },
        (None, None) => match parse(DEFAULT_STACK.0, DEFAULT_STACK.1) {
            Ok(s) => (format!("{} (built in)", DEFAULT_STACK.0), s),
            Err(code) => return Ok(code),
        },
    };
    let state_dir = ctx
        .state_dir
        .clone()
        .or_else(|| stack.state_dir.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create the state directory {}", state_dir.display()))?;
    // The directory holds the token and the instances' logs: its owner's only.
    std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o700))?;
    let _lock = lock(&state_dir)?;
    let token = token(&state_dir)?;
    let bind = ctx.control.unwrap_or(stack.control);
    if !bind.ip().is_loopback() {
        bail!("--control {bind}: the control API only listens on loopback (127.0.0.0/8 or ::1)");
    }
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| {
        format!("cannot listen on {bind} for the control API: is another `bellows up` running? Set `control` in [stack] or pass --control to use another address")
    })?;
    let control = listener.local_addr()?;
    let stop = stop_signal();
    std::fs::write(state_dir.join("control"), format!("{control}\n"))?;

    init_tracing();
    raise_fd_limit();
    out!("bellows up: stack {} from {source}", stack.name);
    out!(
        "  dashboard    http://{control}/  (`bellows dashboard` prints a link that can make changes)"
    );
    out!(
        "  control API  http://{control}/api/v1/  (described at /api/v1/openapi.json; changes need the token in {})",
        state_dir.join("token").display()
    );
    for g in &stack.groups {
        out!(
            "  group {:<10} desired {} (min {}, max {}) of `{}`, {}, zones {}",
            g.name,
            g.desired,
            g.min,
            g.max,
            g.launch.command.join(" "),
            g.launch.instance_type.name,
            g.zones.join(", ")
        );
    }
    for l in &stack.listeners {
        // The page to open: the first forwarding rule's path, else the root.
        let path = l
            .rules
            .iter()
            .filter(|r| matches!(r.action, bellows_core::lb::rules::Action::Forward(_)))
            .find_map(|r| r.conditions.paths.first())
            .map_or("/".to_owned(), |p| p.trim_end_matches('*').to_owned());
        out!(
            "  open         http://{}{path}  (listener {})",
            l.address,
            l.name
        );
    }
    out!(
        "  state        {} (logs in {})",
        state_dir.display(),
        state_dir.join("logs").display()
    );
    if empty.is_some() {
        out!(
            "  empty        add everything with `bellows apply FILE` (a stack named {}) or through the AWS endpoint (`bellows aws-env`)",
            stack.name
        );
    }
    out!("  try          bellows instances, bellows activities, bellows scale GROUP --desired N");
    out!("Press Ctrl-C to stop; every instance stops with bellows.");

    let exe = std::env::current_exe().context("cannot find the bellows binary")?;
    // The AWS endpoint's key pair: the stack's own ([aws]), else one given in the
    // environment, else the one derived from the token.
    let given = match &stack.aws {
        Some(aws) => {
            let secret = std::env::var(&aws.secret_env).with_context(|| {
                format!(
                    "[aws] names the secret's variable {}, which is not set",
                    aws.secret_env
                )
            })?;
            Some((aws.access_key_id.clone(), secret))
        }
        None => match (
            std::env::var(bellows_node::aws::ACCESS_KEY_ENV),
            std::env::var(bellows_node::aws::SECRET_KEY_ENV),
        ) {
            (Ok(id), Ok(secret)) => Some((id, secret)),
            (Ok(_), Err(_)) | (Err(_), Ok(_)) => anyhow::bail!(
                "set both {} and {}, or neither",
                bellows_node::aws::ACCESS_KEY_ENV,
                bellows_node::aws::SECRET_KEY_ENV
            ),
            _ => None,
        },
    };
    let aws_credentials = bellows_node::aws::credentials(&token, given);
    let aws_region = stack.region.clone();
    let opts = NodeOptions {
        stack,
        state_dir: state_dir.clone(),
        exe,
        token,
        cgroups,
        aws_region,
        aws_credentials,
        empty: empty.is_some(),
    };
    bellows_node::run(opts, listener, stop).await?;
    let _ = std::fs::remove_file(state_dir.join("control"));
    out!("bellows stopped: every instance is gone");
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, SIGTERM or SIGHUP. The handlers are installed at the call, before the
/// control file says bellows is up, so a signal sent as soon as it is stops bellows
/// cleanly instead of killing it.
fn stop_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    );
    async move {
        match handlers {
            (Ok(mut int), Ok(mut term), Ok(mut hup)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                    _ = hup.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        tracing::info!("stopping: terminating every instance");
    }
}

/// One `up` per state directory: an exclusive lock held while it runs.
fn lock(dir: &Path) -> anyhow::Result<Flock<File>> {
    let path = dir.join("lock");
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    let mut holder = String::new();
    let _ = file.read_to_string(&mut holder);
    let mut locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((_, _)) => bail!(
            "another `bellows up` (pid {}) is using the state directory {}; stop it or pass --state-dir",
            // A lock file from before this was fixed may hold NUL bytes.
            holder.trim_matches(|c: char| c == '\0' || c.is_whitespace()),
            dir.display()
        ),
    };
    // The read above left the offset at the old pid's end: writing there after the
    // truncation would leave that many NUL bytes before the new pid.
    locked.set_len(0)?;
    locked.seek(std::io::SeekFrom::Start(0))?;
    write!(&mut *locked, "{}", std::process::id())?;
    Ok(locked)
}

/// The API token: kept across runs in the state directory, readable by its owner only.
fn token(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_owned();
        if t.len() >= 32 {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            return Ok(t);
        }
    }
    let token = bellows_node::token::random_hex::<32>()?;
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    writeln!(f, "{token}")?;
    Ok(token)
}

fn init_tracing() {
    struct Clock;
    impl tracing_subscriber::fmt::time::FormatTime for Clock {
        fn format_time(
            &self,
            w: &mut tracing_subscriber::fmt::format::Writer<'_>,
        ) -> std::fmt::Result {
            let now = clock::now().to_string();
            w.write_str(&now[11..19])
        }
    }
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_timer(Clock)
        .with_ansi(std::io::stdout().is_terminal())
        .with_writer(std::io::stdout)
        .try_init();
}
