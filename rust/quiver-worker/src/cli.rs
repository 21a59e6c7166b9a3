//! The command line the engine starts a worker with, and the process around the transports.

use std::sync::Arc;

pub use crate::args::{Args, Dialect, Transport, EXIT_CONNECTION_LOST, EXIT_OK, EXIT_USAGE};
use crate::registry::Registry;
use crate::{grpc, spark_server, uds};

/// The environment variable that may hold the worker's secret (hand-started and remote workers).
pub const SECRET_ENV: &str = "QUIVER_WORKER_SECRET";
/// The environment variable naming an inherited descriptor to read the secret from (the engine's way).
pub const SECRET_FD_ENV: &str = "QUIVER_WORKER_SECRET_FD";
/// The shm endpoint an engine offers beside `unix:PATH` (docs/protocol.md, section 10).
pub const SHM_OFFER_ENV: &str = "QUIVER_SHM_CONNECTION";

const USAGE: &str =
    "usage: WORKER --id ID --connection ENDPOINT [--transport uds|grpc] [--dialect quiver|spark]
              [--log-level LEVEL]
  uds (default):  --connection unix:/path/to/socket     (the engine listens; the worker connects)
                  or shm:/path/to/socket (the same, batches in shared memory); an engine that
                  offers shm beside unix:PATH names it in QUIVER_SHM_CONNECTION: taken
  grpc:           --connection grpc+unix:/path/to/socket or grpc+tcp:HOST:PORT (the worker serves)
  The secret is read from the descriptor named by QUIVER_WORKER_SECRET_FD, or else taken from
  QUIVER_WORKER_SECRET.
  --dialect spark: serve Spark's UdfWorker service (docs/spark-protocol.md) on --connection PATH
                   (a Unix socket) or PORT (loopback TCP); no secret.";

/// Parse the engine's command line (without the program name).
pub fn parse_args(argv: &[String]) -> Result<Args, String> {
    let (mut id, mut connection, mut transport, mut dialect) = (None, None, None, Dialect::Quiver);
    let mut rest = argv.iter();
    while let Some(flag) = rest.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) if name.starts_with("--") => (name, Some(value.to_owned())),
            _ => (flag.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| rest.next().cloned())
                .ok_or(format!("{name} needs a value"))
        };
        match name {
            "--id" => id = Some(value()?),
            "--connection" => connection = Some(value()?),
            "--transport" => {
                transport = Some(match value()?.as_str() {
                    "uds" => Transport::Uds,
                    "grpc" => Transport::Grpc,
                    other => return Err(format!("--transport {other}: this worker speaks uds and grpc")),
                })
            }
            "--dialect" => {
                dialect = match value()?.as_str() {
                    "quiver" => Dialect::Quiver,
                    "spark" => Dialect::Spark,
                    other => {
                        return Err(format!("--dialect {other}: this worker speaks quiver and spark"))
                    }
                }
            }
            "--log-level" => drop(value()?),
            "--tls-cert" | "--tls-key" => {
                return Err(format!("{name}: this Rust worker serves gRPC in plaintext only (Unix sockets and loopback)"))
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    let id = id.ok_or("--id is required")?;
    let connection = connection.ok_or("--connection is required")?;
    let transport = match (dialect, transport) {
        // Spark's protocol is gRPC only, its endpoints bare paths and ports.
        (Dialect::Spark, Some(Transport::Uds)) => {
            return Err("--transport uds: Spark's protocol is served over gRPC only".to_owned())
        }
        (Dialect::Spark, _) => Transport::Grpc,
        (Dialect::Quiver, Some(transport)) => transport,
        (Dialect::Quiver, None) if connection.starts_with("grpc+") => Transport::Grpc,
        (Dialect::Quiver, None) => Transport::Uds,
    };
    Ok(Args {
        id,
        connection,
        transport,
        dialect,
    })
}

/// What `Hello.runtime` says about this worker.
pub fn runtime_description() -> String {
    format!(
        "rust {} quiver-worker {} arrow-rs {}",
        env!("QUIVER_RUSTC_VERSION"),
        env!("CARGO_PKG_VERSION"),
        crate::ARROW_VERSION
    )
}

/// Run the worker the engine started; return the exit status.
pub fn run(argv: &[String], registry: Registry) -> i32 {
    let args = match parse_args(argv) {
        Ok(args) => args,
        Err(problem) => {
            eprintln!("quiver-worker: {problem}\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    // Spark's protocol carries no secret: access is the transport's (docs/spark-protocol.md §7).
    let secret = match args.dialect {
        Dialect::Spark => Vec::new(),
        Dialect::Quiver => match take_secret() {
            Ok(secret) => secret,
            Err(problem) => {
                eprintln!("quiver-worker[{}]: {problem}", args.id);
                return EXIT_USAGE;
            }
        },
    };
    // The protocol owns the socket, not stdout; what UDFs print belongs in the worker log (stderr).
    // SAFETY: dup2 on the process's own standard descriptors.
    unsafe { libc::dup2(2, 1) };
    crate::execution::install_panic_hook();
    let registry = Arc::new(registry);
    match (args.dialect, args.transport) {
        (Dialect::Spark, _) => spark_server::run(&args, registry),
        (Dialect::Quiver, Transport::Uds) => run_uds(&args, &secret, registry),
        (Dialect::Quiver, Transport::Grpc) => grpc::run(&args, secret, registry),
    }
}

/// Take the secret (docs/protocol.md, section 1): from the descriptor named by
/// QUIVER_WORKER_SECRET_FD when set (read to its end once, then closed), else from
/// QUIVER_WORKER_SECRET. Both variables leave the environment, so UDFs and the processes they
/// start never see them.
fn take_secret() -> Result<Vec<u8>, String> {
    let fd = std::env::var_os(SECRET_FD_ENV);
    let value = std::env::var_os(SECRET_ENV);
    std::env::remove_var(SECRET_FD_ENV);
    std::env::remove_var(SECRET_ENV);
    if let Some(fd) = fd {
        let fd: i32 = fd
            .to_str()
            .and_then(|text| text.trim().parse().ok())
            .filter(|fd| *fd > 2)
            .ok_or_else(|| format!("{SECRET_FD_ENV}={fd:?} is not a descriptor number"))?;
        use std::io::Read;
        use std::os::fd::FromRawFd;
        // SAFETY: the engine handed this descriptor to the worker for this one read; the File
        // takes it over and closes it when dropped.
        let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
        let mut secret = Vec::new();
        file.read_to_end(&mut secret).map_err(|err| {
            format!("cannot read the secret from descriptor {fd} ({SECRET_FD_ENV}): {err}")
        })?;
        return without_trailing_whitespace(secret);
    }
    let secret = value.map(|value| value.into_encoded_bytes()).ok_or_else(|| {
        format!("neither {SECRET_FD_ENV} nor {SECRET_ENV} is set; the engine passes the worker's secret in one of them")
    })?;
    without_trailing_whitespace(secret)
}

/// Trailing whitespace (a newline from `echo` or a file) is not part of the secret; an empty
/// secret is refused.
fn without_trailing_whitespace(mut secret: Vec<u8>) -> Result<Vec<u8>, String> {
    while secret.last().is_some_and(|byte| byte.is_ascii_whitespace()) {
        secret.pop();
    }
    if secret.is_empty() {
        return Err(format!(
            "the worker's secret ({SECRET_FD_ENV} or {SECRET_ENV}) is empty"
        ));
    }
    Ok(secret)
}

/// Connect, say Hello, serve; exit 0 on SIGTERM/SIGINT at any point.
fn run_uds(args: &Args, secret: &[u8], registry: Arc<Registry>) -> i32 {
    exit_on_stop_signals();
    let connection = take_shm_offer(&args.connection);
    let mut conn = match uds::Connection::connect(&connection) {
        Ok(conn) => conn,
        Err(err) if err.kind() == std::io::ErrorKind::InvalidInput => {
            eprintln!("quiver-worker[{}]: {err}", args.id);
            return EXIT_USAGE;
        }
        Err(err) => {
            eprintln!(
                "quiver-worker[{}]: cannot connect to {connection}: {err}",
                args.id
            );
            return EXIT_CONNECTION_LOST;
        }
    };
    let hello = crate::hello(&args.id, secret.to_vec());
    if let Err(err) = conn.send(&crate::machine::message_of(
        crate::proto::worker_message::Kind::Hello(hello),
    )) {
        eprintln!("quiver-worker[{}]: cannot send Hello: {err}", args.id);
        return EXIT_CONNECTION_LOST;
    }
    if let Err(err) = conn.open_shared_memory() {
        eprintln!(
            "quiver-worker[{}]: cannot set up shared memory with the engine: {err}",
            args.id
        );
        return EXIT_CONNECTION_LOST;
    }
    match uds::serve_connection(&mut conn, registry) {
        uds::Ending::Done => EXIT_OK,
        uds::Ending::Lost(why) => {
            eprintln!(
                "quiver-worker[{}]: connection to the engine lost: {why}",
                args.id
            );
            EXIT_CONNECTION_LOST
        }
    }
}

/// The endpoint to connect to: the shm endpoint the engine offers beside a `unix:` one (this
/// worker speaks shm), else `endpoint`. The variable leaves the environment either way, so UDFs
/// and their children do not inherit it.
fn take_shm_offer(endpoint: &str) -> String {
    let offer = std::env::var(SHM_OFFER_ENV).unwrap_or_default();
    std::env::remove_var(SHM_OFFER_ENV);
    if endpoint.starts_with("unix:") && offer.starts_with("shm:") {
        offer
    } else {
        endpoint.to_owned()
    }
}

extern "C" fn exit_now(_signal: libc::c_int) {
    // SAFETY: _exit is async-signal-safe; a worker stopped by its engine has nothing to flush.
    unsafe { libc::_exit(EXIT_OK) }
}

/// SIGTERM and SIGINT end the worker with status 0, even inside a UDF.
fn exit_on_stop_signals() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: installs a handler that only calls _exit.
        unsafe { libc::signal(signal, exit_now as *const () as libc::sighandler_t) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Result<Args, String> {
        parse_args(
            &text
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn the_engine_command_lines_parse() {
        let uds = args("--id 3 --connection unix:/tmp/x.sock").unwrap();
        assert_eq!((uds.id.as_str(), uds.transport), ("3", Transport::Uds));
        let grpc = args("--transport grpc --id 4 --connection grpc+tcp:127.0.0.1:5000").unwrap();
        assert_eq!(grpc.transport, Transport::Grpc);
        assert_eq!(
            args("--id=5 --connection=grpc+unix:/s").unwrap().transport,
            Transport::Grpc
        );
    }

    #[test]
    fn the_spark_dialect_serves_grpc_on_a_path_or_a_port() {
        let spark = args("--dialect spark --id w1 --connection /tmp/q/w1.sock").unwrap();
        assert_eq!(
            (spark.dialect, spark.transport, spark.connection.as_str()),
            (Dialect::Spark, Transport::Grpc, "/tmp/q/w1.sock")
        );
        assert_eq!(
            args("--id w --connection 41235 --dialect=spark")
                .unwrap()
                .transport,
            Transport::Grpc
        );
        assert_eq!(
            args("--id 3 --connection unix:/x").unwrap().dialect,
            Dialect::Quiver
        );
        assert!(
            args("--dialect spark --transport uds --id w --connection /x")
                .unwrap_err()
                .contains("gRPC only")
        );
        assert!(args("--dialect pyspark --id w --connection /x")
            .unwrap_err()
            .contains("pyspark"));
    }

    #[test]
    fn a_trailing_newline_is_not_part_of_the_secret_and_empty_is_refused() {
        let secret = b"ab".repeat(32);
        let mut written = secret.clone();
        written.extend_from_slice(b"\r\n");
        assert_eq!(without_trailing_whitespace(written).unwrap(), secret);
        assert!(without_trailing_whitespace(b"\n".to_vec())
            .unwrap_err()
            .contains("empty"));
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        assert!(args("--connection unix:/x").unwrap_err().contains("--id"));
        assert!(args("--id 1").unwrap_err().contains("--connection"));
        assert!(args("--id 1 --connection unix:/x --bogus")
            .unwrap_err()
            .contains("--bogus"));
        assert!(args("--id").unwrap_err().contains("needs a value"));
        assert!(args("--id 1 --connection unix:/x --transport tcp")
            .unwrap_err()
            .contains("tcp"));
    }
}
