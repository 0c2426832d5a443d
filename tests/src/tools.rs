//! Finding the command-line tools the tests drive (`kubectl`, `weed`) on `PATH`.

use std::path::PathBuf;

/// The path of `name` on `PATH`, or an error saying which tool is missing and how to get it.
pub fn find(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "`{name}` is not on PATH; the end-to-end tests need it \
                 (./test.sh installs it into .tools/venv/bin and puts that first on PATH): run ./test.sh"
            )
        })
}
