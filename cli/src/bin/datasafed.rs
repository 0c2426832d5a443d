//! `datasafed`: the KubeBlocks-compatible storage client used inside action containers.

fn main() -> std::process::ExitCode {
    cairn_cli::datasafed::main()
}
