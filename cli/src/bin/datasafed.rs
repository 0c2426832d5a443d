//! `datasafed`: the KubeBlocks-compatible storage client used inside action containers.

fn main() -> std::process::ExitCode {
    cairn_repo::memory::limit_malloc_arenas();
    cairn_cli::datasafed::main()
}
