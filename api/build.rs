// Generates the gRPC code with a vendored protoc, so no system protoc is needed.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    unsafe_env_set("PROTOC", protoc);
    tonic_prost_build::configure()
        // A list's items are the stored objects' bytes, shared into the response rather
        // than copied, and on the client sliced out of the received message.
        .bytes(".skiff.v1.ListResponse.items")
        .compile_protos(&["proto/skiff.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/skiff.proto");
    Ok(())
}

#[allow(unsafe_code)]
fn unsafe_env_set(key: &str, value: std::path::PathBuf) {
    // Edition 2024 marks set_var unsafe because of other threads; a build script has none.
    unsafe { std::env::set_var(key, value) }
}
