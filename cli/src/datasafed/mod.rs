//! `datasafed`: the storage client KubeBlocks action scripts call, with the same commands,
//! flags, config file, environment and output formats (kubeblocks-semantics §5.6).

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
    let args = Args::parse();
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

/// Runs one command.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Command::Version = args.command {
        println!("datasafed version {} (cairn)", env!("CARGO_PKG_VERSION"));
        return Ok(ExitCode::SUCCESS);
    }
    let env = |name: &str| std::env::var(name).ok();
    let backend = if let Some(agent) = socket::SocketSettings::from_env(&env)? {
        if let Command::Getconf = args.command {
            print!("{}", agent.describe());
            return Ok(ExitCode::SUCCESS);
        }
        Backend::Socket(socket::SocketClient::connect(&agent).await?)
    } else {
        let settings = settings::resolve(&args.config, &env)?;
        if let Command::Getconf = args.command {
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
                files.put(&remote, tokio::io::stdin(), compression).await
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
                files
                    .get(&remote, tokio::io::stdout(), decompression)
                    .await
                    .with_context(|| format!("pulling {remote}"))?;
            } else {
                let file = tokio::fs::File::create(&local)
                    .await
                    .with_context(|| format!("creating {local}"))?;
                let result = files.get(&remote, file, decompression).await;
                if let Err(err) = result {
                    // Never leave a half-written file that looks like a good one.
                    let _ = tokio::fs::remove_file(&local).await;
                    return Err(err).with_context(|| format!("pulling {remote}"));
                }
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
        Command::Getconf | Command::Version => {}
    }
    Ok(ExitCode::SUCCESS)
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
            .transpose()?,
        older_than: list
            .older_than
            .as_deref()
            .map(|t| parse_time("--older-than", t))
            .transpose()?,
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
