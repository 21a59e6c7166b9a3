//! The worker's parsed command line and its exit statuses: what the transports are handed by
//! `cli` (which parses the command line and picks the transport) and what they exit with.

/// Exit status after `Shutdown`, SIGTERM/SIGINT or the engine closing the connection.
pub const EXIT_OK: i32 = 0;
/// Exit status when the connection breaks or cannot be made.
pub const EXIT_CONNECTION_LOST: i32 = 1;
/// Exit status for a usage error.
pub const EXIT_USAGE: i32 = 2;

/// Which transport the worker speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Connect to the engine's Unix socket and speak frames.
    Uds,
    /// Serve the `UdfWorker` gRPC service.
    Grpc,
}

/// Which protocol the worker speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// quiver.v1 (docs/protocol.md), the default.
    Quiver,
    /// Spark's `UdfWorker` protocol (docs/spark-protocol.md): gRPC only, no secret.
    Spark,
}

/// The parsed command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Args {
    /// The worker id the engine gave.
    pub id: String,
    /// Where to connect (uds) or serve (grpc).
    pub connection: String,
    /// uds or grpc.
    pub transport: Transport,
    /// quiver.v1 or Spark's protocol.
    pub dialect: Dialect,
}
