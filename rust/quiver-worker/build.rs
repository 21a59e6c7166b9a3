//! Generates the quiver.v1 messages (prost) and the UdfWorker service (tonic) from the one
//! `.proto` the engine and the Python worker are generated from too.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let proto = proto_dir.join("quiver/v1/quiver.proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    // Hello.runtime names the compiler the worker was built with.
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()?;
    let version = String::from_utf8_lossy(&version.stdout);
    let number = version.split_whitespace().nth(1).unwrap_or("unknown");
    println!("cargo:rustc-env=QUIVER_RUSTC_VERSION={number}");
    tonic_prost_build::configure()
        .build_client(false)
        // Data.arrow_ipc as `bytes::Bytes`: a slice of what gRPC received, not a copy.
        .bytes(".quiver.v1.Data.arrow_ipc")
        .compile_protos(&[proto], &[proto_dir])?;
    Ok(())
}
