//! What both gRPC servers of the worker (quiver.v1's `grpc` transport and Spark's dialect) do
//! around their service: start the async runtime, report where they serve or why they cannot,
//! and notice when they must stop.

use std::future::Future;
use std::io;
use std::time::Duration;

use crate::args::{Args, EXIT_CONNECTION_LOST, EXIT_USAGE};

/// Serve `endpoint` (`--connection` as the server reads it) with `serve` on a new runtime; the
/// exit status (a usage error when the endpoint is not one the server serves).
pub(crate) fn run<E, F>(args: &Args, endpoint: Result<E, String>, serve: impl FnOnce(E) -> F) -> i32
where
    F: Future<Output = i32>,
{
    let endpoint = match endpoint {
        Ok(endpoint) => endpoint,
        Err(problem) => {
            eprintln!("quiver-worker[{}]: {problem}", args.id);
            return EXIT_USAGE;
        }
    };
    match start_runtime(args) {
        Ok(runtime) => runtime.block_on(serve(endpoint)),
        Err(status) => status,
    }
}

/// The runtime a server runs on (two threads: the UDFs run on threads of their own), or the
/// exit status when it cannot start.
fn start_runtime(args: &Args) -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|err| {
            eprintln!(
                "quiver-worker[{}]: cannot start the gRPC runtime: {err}",
                args.id
            );
            EXIT_CONNECTION_LOST
        })
}

/// A TCP connection as accepted, with Nagle's algorithm off (small answers must not wait).
pub(crate) fn with_nodelay(
    connection: io::Result<tokio::net::TcpStream>,
) -> io::Result<tokio::net::TcpStream> {
    connection.inspect(|stream| drop(stream.set_nodelay(true)))
}

/// Report that `--connection` cannot be listened on; the exit status.
pub(crate) fn cannot_listen(args: &Args, err: &io::Error) -> i32 {
    eprintln!(
        "quiver-worker[{}]: cannot listen on {}: {err}",
        args.id, args.connection
    );
    EXIT_CONNECTION_LOST
}

/// Exactly the line the Python worker prints (`serving grpc on ...`, `serving spark on ...`):
/// people and scripts look for it.
pub(crate) fn announce(args: &Args, what: &str) {
    eprintln!(
        "quiver-worker[{}] serving {what} on {}",
        args.id, args.connection
    );
}

/// Let only this user connect (the engine's folder should be private already; calls carry the
/// secret anyway).
pub(crate) fn restrict_socket(path: &str) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

/// Wait for SIGTERM/SIGINT, or for the process that started the worker to exit (a server has no
/// connection whose end would tell: the worker is handed to another parent instead); the reason
/// to stop, or `None` when the signals cannot be watched.
pub(crate) async fn stop_signal() -> Option<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let parent = std::os::unix::process::parent_id();
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("quiver-worker: cannot watch for SIGTERM");
        return None;
    };
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = term.recv() => return Some("the worker got SIGTERM"),
            _ = int.recv() => return Some("the worker got SIGINT"),
            _ = tick.tick() => {
                if parent != 1 && std::os::unix::process::parent_id() != parent {
                    return Some("the engine is gone");
                }
            }
        }
    }
}
