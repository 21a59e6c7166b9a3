//! Generates the quiver.v1 messages (prost) and the UdfWorker service (tonic) from the one
//! `.proto` the engine and the Python worker are generated from too, and Spark's
//! `org.apache.spark.udf.worker` messages and service from the `.proto` files vendored in
//! `proto/spark` (docs/spark-protocol.md).

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
        .compile_protos(&[proto], &[proto_dir.clone()])?;
    let spark_dir = proto_dir.join("spark");
    let spark_protos: Vec<_> = ["common.proto", "udf_message.proto", "udf_service.proto"]
        .iter()
        .map(|name| spark_dir.join(name))
        .collect();
    for proto in &spark_protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    tonic_prost_build::configure()
        .build_client(false)
        // The batches as `bytes::Bytes`: slices of what gRPC received, not copies.
        .bytes(".org.apache.spark.udf.worker.DataRequest.data")
        .bytes(".org.apache.spark.udf.worker.DataResponse.data")
        .compile_protos(&spark_protos, &[spark_dir])?;
    Ok(())
}
