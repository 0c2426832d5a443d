//! `datasafed`: the KubeBlocks-compatible storage client used inside action containers.

fn main() -> std::process::ExitCode {
    cairn_repo::memory::tune_allocator();
    cairn_cli::datasafed::main()
}
