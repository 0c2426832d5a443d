//! Generates the Rust code of Cairn's gRPC protocols with a vendored protoc (no system protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let protos = [
        "cairn/agent/v1/agent.proto",
        "cairn/datasafed/v1/storage.proto",
        "cairn/api/v1/common.proto",
        "cairn/api/v1/backup.proto",
        "cairn/api/v1/restore.proto",
        "cairn/api/v1/schedule.proto",
        "cairn/api/v1/repository.proto",
    ];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    // The public API's descriptors, served by gRPC server reflection (docs/API.md §2).
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("cairn_descriptor.bin"))
        .compile_protos(&protos, &["."])?;
    Ok(())
}
