//! `cairnctl`: the Cairn command line.

fn main() -> std::process::ExitCode {
    eprintln!("cairnctl: not implemented yet");
    std::process::ExitCode::FAILURE
}
