//! Write quiver UDF workers in Rust.
//!
//! A worker is a program that registers functions over Arrow arrays and hands them to [`serve`],
//! which speaks the quiver.v1 protocol (docs/protocol.md) with the engine that started it: the
//! command line, `Hello` and the secret, the execution state machine, errors, cancellation and
//! shutdown, over the `uds` framing or as a gRPC server.
//!
//! ```no_run
//! use arrow_array::ArrayRef;
//! use quiver_worker::{Registry, Returns};
//!
//! fn main() {
//!     let registry = Registry::new()
//!         .scalar("identity", Returns::SameAsArg(0), |args: &[ArrayRef]| Ok(args[0].clone()));
//!     quiver_worker::serve(registry)
//! }
//! ```
//!
//! The engine names a function with a UDF whose `payload_format` is `"symbol"` and whose payload
//! is the registered name.

pub mod args;
pub mod cli;
pub mod counters;
pub mod execution;
pub mod frame;
pub mod grpc;
mod inbox;
pub mod ipc;
pub mod machine;
mod registry;
mod serving;
pub mod shm;
mod spark_crc;
pub mod spark_data;
pub mod spark_server;
pub mod spark_session;
pub mod uds;

/// The quiver.v1 messages and the `UdfWorker` service, generated from `proto/quiver/v1/quiver.proto`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("quiver.v1");
}

/// Spark's `org.apache.spark.udf.worker` messages and `UdfWorker` service, generated from the
/// `.proto` files vendored in `proto/spark` (docs/spark-protocol.md).
#[allow(missing_docs, clippy::all)]
pub mod spark_proto {
    tonic::include_proto!("org.apache.spark.udf.worker");
}

pub use counters::{counter, Counter};
pub use registry::{BoxError, Registry, Returns, ScalarUdf, UdfError, UdfResult};

/// The arrow-rs major version this crate is built with (reported in `Hello.runtime`).
pub const ARROW_VERSION: &str = "60";

/// Run the worker with the functions of `registry`: the whole of a worker's `main`.
///
/// Reads the command line the engine starts workers with (`--id ID --connection ENDPOINT`,
/// optionally `--transport grpc`) and the secret from `QUIVER_WORKER_SECRET`, serves until the
/// engine is done, and exits the process (0 on a normal end, 1 when the connection broke, 2 on a
/// usage error).
pub fn serve(registry: Registry) -> ! {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let status = cli::run(&argv, registry);
    std::process::exit(status)
}

/// The `Hello` of this process (`secret` empty for gRPC's `ManageResponse.worker`).
pub fn hello(worker_id: &str, secret: Vec<u8>) -> proto::Hello {
    proto::Hello {
        protocol_version: execution::PROTOCOL_VERSION,
        worker_id: worker_id.to_owned(),
        secret,
        runtime: cli::runtime_description(),
        pid: std::process::id(),
    }
}
