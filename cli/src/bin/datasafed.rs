//! `datasafed`: the KubeBlocks-compatible storage client used inside action containers.

fn main() -> std::process::ExitCode {
    eprintln!("datasafed: not implemented yet (issue 5)");
    std::process::ExitCode::FAILURE
}
