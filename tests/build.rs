// Generates the etcd KV client the benchmark uses, with a vendored protoc.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    set_protoc(protoc);
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&["proto/etcd_kv.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto/etcd_kv.proto");
    Ok(())
}

#[allow(unsafe_code)]
fn set_protoc(path: std::path::PathBuf) {
    // Edition 2024 marks set_var unsafe because of other threads; a build script has none.
    unsafe { std::env::set_var("PROTOC", path) }
}
