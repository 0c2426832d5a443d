//! `cairnctl`: the Cairn command line.

fn main() -> std::process::ExitCode {
    cairn_cli::app::main("cairnctl")
}
