//! The `datasafed` command line, flag for flag as KubeBlocks' action scripts call it.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The default config file (a Secret mounted by KubeBlocks' Tool access method).
pub const DEFAULT_CONFIG: &str = "/etc/datasafed/datasafed.conf";

/// datasafed: push, pull and list backup files in a BackupRepo (Cairn's KubeBlocks-compatible
/// client).
#[derive(Debug, Parser)]
#[command(name = "datasafed", disable_version_flag = true)]
pub struct Args {
    /// The datasafed config file (`[storage]` section).
    #[arg(short = 'c', long = "conf", global = true, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Upload a local file, or stdin with `-`, to a remote path.
    Push {
        /// Compress with this algorithm (zstd-fastest, zstd, gzip, lz4, …).
        #[arg(short = 'z', long = "compress")]
        compress: Option<String>,
        /// Local file, or `-` for stdin.
        local: String,
        /// Remote path (relative to DATASAFED_BACKEND_BASE_PATH).
        remote: String,
    },
    /// Download a remote file to a local path, or stdout with `-`.
    Pull {
        /// Decompress with this algorithm.
        #[arg(short = 'd', long = "decompress")]
        decompress: Option<String>,
        /// Remote path.
        remote: String,
        /// Local file, or `-` for stdout.
        local: String,
    },
    /// List files and directories.
    #[command(alias = "ls")]
    List(ListArgs),
    /// Show the total size and number of entries under a path.
    Stat {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Remote path (default: the base path).
        #[arg(default_value = "/")]
        path: String,
    },
    /// Remove a file, or a directory tree with -r.
    Rm {
        /// Remove directories and their contents recursively.
        #[arg(short = 'r', long = "recursive")]
        recursive: bool,
        /// Remote path.
        path: String,
    },
    /// Remove an empty directory.
    Rmdir {
        /// Remote path.
        path: String,
    },
    /// Create a directory.
    Mkdir {
        /// Remote path.
        path: String,
    },
    /// Print the value of a configuration item `section.field` (datasafed's form, e.g.
    /// `storage.type`), or without an item the whole effective configuration (secrets
    /// redacted).
    Getconf {
        /// `section.field`.
        item: Option<String>,
    },
    /// Print the version.
    Version {
        /// Also the build details.
        #[arg(short = 'v', long)]
        verbose: bool,
    },
}

/// `list` flags.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only directories.
    #[arg(short = 'd', long = "dirs-only", conflicts_with = "files_only")]
    pub dirs_only: bool,
    /// Only files.
    #[arg(short = 'f', long = "files-only")]
    pub files_only: bool,
    /// Recurse into sub-directories.
    #[arg(short = 'r', long = "recursive")]
    pub recursive: bool,
    /// Maximum recursion depth (1 = the directory's own entries).
    #[arg(long = "max-depth")]
    pub max_depth: Option<usize>,
    /// Sort by path, size or mtime.
    #[arg(short = 's', long = "sort", default_value = "path")]
    pub sort: String,
    /// Reverse the order.
    #[arg(long)]
    pub reverse: bool,
    /// Only entries modified after this time (RFC 3339 or unix seconds).
    #[arg(long = "newer-than")]
    pub newer_than: Option<String>,
    /// Only entries modified before this time (RFC 3339 or unix seconds).
    #[arg(long = "older-than")]
    pub older_than: Option<String>,
    /// Only entries whose name matches this glob.
    #[arg(long = "name")]
    pub name: Option<String>,
    /// Output format: short, long or json.
    #[arg(
        short = 'o',
        long = "output-format",
        visible_alias = "output",
        default_value = "short"
    )]
    pub output: String,
    /// Remote path (default: the base path).
    #[arg(default_value = "/")]
    pub path: String,
}
