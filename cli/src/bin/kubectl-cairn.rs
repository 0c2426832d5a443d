//! `kubectl-cairn`: `cairnctl` as a kubectl plugin (`kubectl cairn backup list`).

fn main() -> std::process::ExitCode {
    cairn_cli::app::main("kubectl-cairn")
}
