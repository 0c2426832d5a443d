//! `cairn-control-plane`: reconciles the data-protection CRDs and serves the agent API.

fn main() -> std::process::ExitCode {
    eprintln!("cairn-control-plane: not implemented yet (issue 6)");
    std::process::ExitCode::FAILURE
}
