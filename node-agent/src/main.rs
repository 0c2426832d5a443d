//! `cairn-agent`: the per-node agent.

fn main() -> std::process::ExitCode {
    eprintln!("cairn-agent: not implemented yet (issue 6)");
    std::process::ExitCode::FAILURE
}
