//! Compiles `proto/converge.proto` with the pure-Rust protox (no protoc
//! needed) into the tonic client and server code.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/converge.proto");
    let fds = protox::compile(["proto/converge.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
