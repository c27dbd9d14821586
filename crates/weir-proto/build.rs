//! Compiles `proto/weir.proto` with the pure-Rust `protox` compiler, so no system `protoc` is needed.
//!
//! The manifest folder is read when the script runs, not when it is compiled: a target folder
//! shared by several clones (CI's persistent one) reuses this script's binary across them.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR")?;
    let proto_dir = format!("{manifest}/../../proto");
    let file = format!("{proto_dir}/weir.proto");
    println!("cargo:rerun-if-changed={file}");
    let descriptors = protox::compile([&file], [&proto_dir])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
