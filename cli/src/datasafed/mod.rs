//! `datasafed`: the storage client KubeBlocks action scripts call, with the same commands,
//! flags, config file, environment and output formats (ARCHITECTURE.md §K5.6).

pub mod args;
pub mod backend;
pub mod output;
pub mod settings;
pub mod socket;

use std::process::ExitCode;

use anyhow::Context;
use cairn_repo::plain::{ListOptions, SortBy};
use clap::Parser;
use tokio::io::AsyncWriteExt;

use args::{Args, Command, ListArgs};
use backend::Backend;
use output::{ListFormat, parse_time, render_list, render_stat};

/// The process entry point of the `datasafed` binary.
pub fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(err) => return usage_error(&err),
    };
    if matches!(args.command, Command::Pull { .. }) {
        cairn_repo::memory::tune_allocator_for_restores();
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("Error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("Error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// A command line clap refused, or `--help`: datasafed (cobra) prints help on stdout and exits
/// 0, and exits 1 for every usage error, as for any other failure.
fn usage_error(err: &clap::Error) -> ExitCode {
    let _ = err.print();
    if err.use_stderr() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs one command.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Command::Version { verbose } = args.command {
        print!("{}", version_text(verbose));
        return Ok(ExitCode::SUCCESS);
    }
    let env = |name: &str| std::env::var(name).ok();
    let backend = if let Some(agent) = socket::SocketSettings::from_env(&env)? {
        if let Command::Getconf { item } = &args.command {
            match item {
                None => print!("{}", agent.describe()),
                Some(item) => println!("{}", agent.getconf(item)?),
            }
            return Ok(ExitCode::SUCCESS);
        }
        Backend::Socket(socket::SocketClient::connect(&agent).await?)
    } else {
        if let Command::Getconf { item: Some(item) } = &args.command {
            println!("{}", settings::getconf(&args.config, &env, item)?);
            return Ok(ExitCode::SUCCESS);
        }
        let settings = settings::resolve(&args.config, &env)?;
        if let Command::Getconf { item: None } = args.command {
            print!("{}", settings.describe());
            return Ok(ExitCode::SUCCESS);
        }
        Backend::connect(&settings).await?
    };
    let files = &backend;
    match args.command {
        Command::Push {
            compress,
            local,
            remote,
        } => {
            let compression = compress.as_deref();
            let bytes = if local == "-" {
                let stdin = readable_stdin().with_context(|| format!("pushing {remote}"))?;
                files.put(&remote, stdin, compression).await
            } else {
                let file = tokio::fs::File::open(&local)
                    .await
                    .with_context(|| format!("opening {local}"))?;
                files.put(&remote, file, compression).await
            }
            .with_context(|| format!("pushing {remote}"))?;
            tracing::debug!(bytes, "pushed");
        }
        Command::Pull {
            decompress,
            remote,
            local,
        } => {
            let decompression = decompress.as_deref();
            if local == "-" {
                widen_stdout_pipe();
                files
                    .get(&remote, tokio::io::stdout(), decompression)
                    .await
                    .with_context(|| format!("pulling {remote}"))?;
            } else {
                pull_to_file(files, &remote, &local, decompression)
                    .await
                    .with_context(|| format!("pulling {remote}"))?;
            }
        }
        Command::List(list) => {
            let format = ListFormat::parse(&list.output)?;
            let options = list_options(&list)?;
            let entries = files.list(&list.path, &options).await?;
            write_stdout(render_list(&entries, format)?).await?;
        }
        Command::Stat { json, path } => {
            let summary = files.stat(&path).await?;
            write_stdout(render_stat(&summary, json)?).await?;
        }
        Command::Rm { recursive, path } => {
            files.remove(&path, recursive).await?;
        }
        Command::Rmdir { path } => files.rmdir(&path).await?,
        Command::Mkdir { path } => files.mkdir(&path).await?,
        Command::Getconf { .. } | Command::Version { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// `version [-v]`: datasafed's first line (`datasafed: VERSION`), and with `-v` the build
/// details in its layout.
fn version_text(verbose: bool) -> String {
    let mut out = format!("datasafed: {}-cairn\n", env!("CARGO_PKG_VERSION"));
    if verbose {
        out.push_str(&format!(
            "  Implementation: Cairn\n  Platform: {}/{}\n",
            std::env::consts::OS,
            std::env::consts::ARCH
        ));
    }
    out
}

/// The pipe size `pull -` asks for when its stdout is a pipe.
const PULL_PIPE_SIZE: i32 = 1 << 20;

/// `pull REMOTE -` into a pipe (`| tar -x`): a 1 MiB pipe instead of the default 64 KiB lets
/// datasafed and the reader each move a large block per wake-up; the restore of the quickstart's
/// PostgreSQL backup spent a third of its system time on the small one (bench/README.md
/// "quickstart restore"). Best effort: Linux caps it at `/proc/sys/fs/pipe-max-size` for
/// unprivileged users, and anything but a pipe is left alone.
fn widen_stdout_pipe() {
    use nix::fcntl::{FcntlArg, fcntl};
    use nix::sys::stat::{SFlag, fstat};
    use std::os::fd::AsFd;

    let stdout = std::io::stdout();
    let fd = stdout.as_fd();
    let is_pipe = fstat(fd)
        .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFIFO)
        .unwrap_or(false);
    if is_pipe && let Err(err) = fcntl(fd, FcntlArg::F_SETPIPE_SZ(PULL_PIPE_SIZE)) {
        tracing::debug!(error = %err, "keeping stdout's pipe size");
    }
}

/// Standard input for `push -`, refused when it cannot be read: a closed stdin (which the Rust
/// runtime replaces with `/dev/null` opened read-write before `main`, so it would otherwise
/// read as an empty file) or one open for writing only.
fn readable_stdin() -> anyhow::Result<tokio::io::Stdin> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    use nix::sys::stat::{SFlag, fstat, stat};
    use std::os::fd::AsFd;

    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    let flags = fcntl(fd, FcntlArg::F_GETFL)
        .map(OFlag::from_bits_truncate)
        .map_err(|e| {
            anyhow::anyhow!("stdin is closed ({e}); give the data on stdin or a file to push")
        })?;
    let access = flags & OFlag::O_ACCMODE;
    if access == OFlag::O_WRONLY {
        anyhow::bail!("stdin is not open for reading; give the data on stdin or a file to push");
    }
    if access == OFlag::O_RDWR {
        let is_null = match (fstat(fd), stat("/dev/null")) {
            (Ok(ours), Ok(null)) => {
                SFlag::from_bits_truncate(ours.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR
                    && ours.st_rdev == null.st_rdev
            }
            _ => false,
        };
        if is_null {
            anyhow::bail!(
                "stdin is closed; give the data on stdin or a file to push (an empty file: push - NAME </dev/null)"
            );
        }
    }
    Ok(tokio::io::stdin())
}

/// `pull REMOTE LOCAL`: the data goes to a temporary file next to `LOCAL`, renamed over it only
/// once the pull succeeded, so a failed pull leaves an existing file as it was. A destination
/// that is not a regular file (`/dev/null`, a FIFO) is written in place.
async fn pull_to_file(
    files: &Backend,
    remote: &str,
    local: &str,
    decompression: Option<&str>,
) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

    let named = std::path::Path::new(local);
    // A link the user names is followed: the destination is the link's target.
    let target = std::fs::canonicalize(named).unwrap_or_else(|_| named.to_path_buf());
    let existing = std::fs::metadata(&target).ok();
    if let Some(meta) = &existing
        && !meta.is_file()
    {
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&target)
            .await
            .with_context(|| format!("opening {local}"))?;
        files.get(remote, file, decompression).await?;
        return Ok(());
    }
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    // As apecloud/datasafed (`os.MkdirAll(filepath.Dir(lpath), 0755)`): KubeBlocks' scripts
    // pull a directory's files to paths below directories that do not exist yet.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)
        .with_context(|| format!("creating the directory {} for {local}", dir.display()))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".datasafed-pull")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(&dir)
        .with_context(|| format!("creating a temporary file in {} for {local}", dir.display()))?;
    if let Some(meta) = &existing {
        std::fs::set_permissions(temp.path(), meta.permissions())
            .with_context(|| format!("copying the permissions of {local}"))?;
    }
    let file = tokio::fs::File::from_std(
        temp.as_file()
            .try_clone()
            .with_context(|| format!("opening a temporary file for {local}"))?,
    );
    // On failure `temp` is dropped, which removes it; the existing file is untouched.
    files.get(remote, file, decompression).await?;
    temp.persist(&target)
        .map_err(|e| e.error)
        .with_context(|| format!("replacing {local}"))?;
    Ok(())
}

fn list_options(list: &ListArgs) -> anyhow::Result<ListOptions> {
    Ok(ListOptions {
        dirs_only: list.dirs_only,
        files_only: list.files_only,
        recursive: list.recursive,
        max_depth: list.max_depth,
        sort_by: SortBy::parse(&list.sort)?,
        reverse: list.reverse,
        newer_than: list
            .newer_than
            .as_deref()
            .map(|t| parse_time("--newer-than", t))
            .transpose()?
            .flatten(),
        older_than: list
            .older_than
            .as_deref()
            .map(|t| parse_time("--older-than", t))
            .transpose()?
            .flatten(),
        name_glob: list.name.clone(),
    })
}

async fn write_stdout(text: String) -> anyhow::Result<()> {
    let mut stdout = tokio::io::stdout();
    stdout
        .write_all(text.as_bytes())
        .await
        .context("writing to stdout")?;
    stdout.flush().await.context("writing to stdout")?;
    Ok(())
}
