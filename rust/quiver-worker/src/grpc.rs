//! The gRPC transport: serve the `quiver.v1.UdfWorker` service (docs/protocol.md, section 5).
//!
//! Each `Execute` call is one execution, driven by its own [`Machine`] on a thread of its own
//! (UDFs are ordinary blocking code); a reader task moves the call's requests into an [`Inbox`],
//! which lets a batch see that a `Cancel` already waits behind it. `Manage` answers heartbeats
//! and shuts the worker down. Every call must carry the secret in the `quiver-secret` metadata.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream, UnixListenerStream};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::args::{Args, EXIT_CONNECTION_LOST, EXIT_OK};
use crate::inbox::Inbox;
use crate::machine::{message_of, Machine, Peer, State};
use crate::proto::udf_worker_server::{UdfWorker, UdfWorkerServer};
use crate::proto::{
    self, engine_message::Kind as In, manage_request, manage_response, worker_message::Kind as Out,
};
use crate::registry::Registry;
use crate::serving;

/// The call metadata key that carries the worker's secret.
pub const SECRET_METADATA_KEY: &str = "quiver-secret";
/// Executions served at once; one more `Execute` call is refused with RESOURCE_EXHAUSTED.
const MAX_EXECUTIONS: usize = 8;
/// Messages may be up to 2 GiB - 1 bytes, like a uds frame body (gRPC's default is 4 MiB).
const MAX_MESSAGE_BYTES: usize = (1 << 31) - 1;
/// How long a stopping worker lets running executions answer before it exits anyway.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Answers of one call queued for gRPC before the execution thread waits.
const OUTBOX_DEPTH: usize = 16;
/// After the last execution thread has handed over its final answer, how long the server keeps
/// running so that the answer and the call's status reach the engine before the connection goes.
const FLUSH_WAIT: Duration = Duration::from_millis(100);

/// What the execution thread of a call receives.
enum Item {
    /// A request of the call.
    Message(proto::EngineMessage),
    /// A request that did not decode (answered with a ProtocolError).
    Undecodable(String),
    /// Stop from inside the worker (Shutdown with cancel_running, SIGTERM, orphaned).
    Stop(String),
    /// The requests ended; `broken` when the engine cancelled the call.
    End { broken: bool },
}

fn stops(item: &Item) -> bool {
    matches!(
        item,
        Item::Stop(_)
            | Item::Message(proto::EngineMessage {
                kind: Some(In::Cancel(_))
            })
    )
}

/// The engine's side of one call, as the state machine sees it.
struct CallPeer {
    outbox: mpsc::Sender<Result<proto::WorkerMessage, Status>>,
    inbox: Arc<Inbox<Item>>,
}

impl Peer for CallPeer {
    fn send_message(&mut self, message: proto::WorkerMessage) -> io::Result<()> {
        self.outbox
            .blocking_send(Ok(message))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the Execute call is over"))
    }

    fn send_data(&mut self, sequence: u64, body: Vec<u8>) -> io::Result<()> {
        let data = proto::Data {
            sequence,
            arrow_ipc: body.into(),
        };
        self.send_message(message_of(Out::Data(data)))
    }

    fn cancel_ahead(&mut self) -> bool {
        self.inbox.stop_waiting()
    }
}

/// Serve one call's execution until it ended or the requests ran out.
fn run_call(registry: Arc<Registry>, inbox: Arc<Inbox<Item>>, mut peer: CallPeer) {
    let mut machine = Machine::new(registry);
    let outcome: io::Result<()> = (|| loop {
        match inbox.pop() {
            Item::Message(proto::EngineMessage {
                kind: Some(In::Shutdown(_)),
            }) => machine.reject(
                "Shutdown is not a message of the Execute call: over grpc it is a Manage call",
                None,
                &mut peer,
            )?,
            Item::Message(message) => machine.handle(message, &mut peer)?,
            Item::Undecodable(why) => machine.reject(&why, None, &mut peer)?,
            Item::Stop(reason) if machine.state() == State::Idle => {
                let status = Status::unavailable(format!("{reason}; no execution ran"));
                let _ = peer.outbox.blocking_send(Err(status));
                return Ok(());
            }
            Item::Stop(reason) => machine.cancel_running(&reason, &mut peer)?,
            Item::End { broken: true } => return Ok(()),
            Item::End { broken: false } => {
                if machine.state() == State::Running {
                    machine.reject(
                        "the Execute call's requests ended before Finish or Cancel",
                        None,
                        &mut peer,
                    )?;
                }
                return Ok(());
            }
        }
        // One execution per call: the call ends with its FinishResponse or CancelResponse.
        if machine.executions_ended > 0 {
            return Ok(());
        }
    })();
    if let Err(err) = outcome {
        eprintln!("quiver-worker: an Execute call ended early: {err}");
    }
}

/// The `UdfWorker` service.
struct Service {
    registry: Arc<Registry>,
    secret: Vec<u8>,
    hello: proto::Hello,
    refused_calls: AtomicU64,
    closing: AtomicBool,
    calls: Mutex<Vec<Weak<Inbox<Item>>>>,
    // Execution threads still running: the server stops only once they have answered.
    running_calls: AtomicUsize,
    stop: watch::Sender<bool>,
}

impl Service {
    /// Fail the call with UNAUTHENTICATED unless it carries the worker's secret.
    fn authorize<T>(&self, request: &Request<T>, method: &str) -> Result<(), Status> {
        let given: Vec<_> = request
            .metadata()
            .get_all(SECRET_METADATA_KEY)
            .iter()
            .collect();
        let problem = match given.as_slice() {
            [] => format!("the call carries no {SECRET_METADATA_KEY} metadata"),
            [one] if constant_time_eq(one.as_bytes(), &self.secret) => return Ok(()),
            _ => format!("the {SECRET_METADATA_KEY} metadata is wrong"),
        };
        self.refused_calls.fetch_add(1, Ordering::SeqCst);
        eprintln!("quiver-worker: refused a {method} call: {problem}");
        Err(Status::unauthenticated(format!(
            "{problem}: every call must carry the worker's secret (QUIVER_WORKER_SECRET)"
        )))
    }

    /// Register a new call's inbox, or refuse it when stopping or at the limit.
    fn admit(&self) -> Result<Arc<Inbox<Item>>, Status> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(Status::unavailable("the worker is shutting down"));
        }
        let mut calls = self.calls.lock().expect("calls lock");
        calls.retain(|call| call.strong_count() > 0);
        if calls.len() >= MAX_EXECUTIONS {
            return Err(Status::resource_exhausted(format!(
                "the worker runs at most {MAX_EXECUTIONS} executions at once"
            )));
        }
        let inbox = Arc::new(Inbox::new(stops));
        calls.push(Arc::downgrade(&inbox));
        Ok(inbox)
    }

    /// Refuse new calls; with `cancel`, ask every running execution to stop.
    fn close(&self, cancel: Option<&str>) {
        self.closing.store(true, Ordering::SeqCst);
        if let Some(reason) = cancel {
            for call in self
                .calls
                .lock()
                .expect("calls lock")
                .iter()
                .filter_map(Weak::upgrade)
            {
                call.push(Item::Stop(reason.to_owned()));
            }
        }
        self.stop.send_replace(true);
    }

    fn manage_response(&self, kind: manage_response::Kind) -> proto::ManageResponse {
        proto::ManageResponse {
            kind: Some(kind),
            worker: Some(self.hello.clone()),
            refused_calls: self.refused_calls.load(Ordering::SeqCst),
        }
    }
}

/// Compare without an early exit, so the time taken says nothing about the secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The service, shared by tonic's tasks.
struct Shared(Arc<Service>);

#[tonic::async_trait]
impl UdfWorker for Shared {
    type ExecuteStream = ReceiverStream<Result<proto::WorkerMessage, Status>>;

    async fn execute(
        &self,
        request: Request<Streaming<proto::EngineMessage>>,
    ) -> Result<Response<Self::ExecuteStream>, Status> {
        let service = &self.0;
        service.authorize(&request, "Execute")?;
        let inbox = service.admit()?;
        let mut requests = request.into_inner();
        let reader_inbox = inbox.clone();
        tokio::spawn(async move {
            let mut broken = false;
            while let Some(next) = requests.next().await {
                match next {
                    Ok(message) => reader_inbox.push(Item::Message(message)),
                    Err(status) if status.code() == tonic::Code::Internal => {
                        let why = format!(
                            "a message on the Execute call is not an EngineMessage: {}",
                            status.message()
                        );
                        reader_inbox.push(Item::Undecodable(why));
                        break;
                    }
                    Err(_) => {
                        broken = true; // the engine cancelled the call, or it broke
                        break;
                    }
                }
            }
            reader_inbox.push(Item::End { broken });
        });
        let (outbox, answers) = mpsc::channel(OUTBOX_DEPTH);
        let peer = CallPeer {
            outbox,
            inbox: inbox.clone(),
        };
        let registry = service.registry.clone();
        let shared = self.0.clone();
        shared.running_calls.fetch_add(1, Ordering::SeqCst);
        std::thread::Builder::new()
            .name("quiver-execute".into())
            .spawn(move || {
                run_call(registry, inbox, peer); // drops the call's sender: its stream ends
                shared.running_calls.fetch_sub(1, Ordering::SeqCst);
            })
            .map_err(|err| {
                self.0.running_calls.fetch_sub(1, Ordering::SeqCst);
                Status::resource_exhausted(format!("cannot start an execution thread: {err}"))
            })?;
        Ok(Response::new(ReceiverStream::new(answers)))
    }

    async fn manage(
        &self,
        request: Request<proto::ManageRequest>,
    ) -> Result<Response<proto::ManageResponse>, Status> {
        let service = &self.0;
        service.authorize(&request, "Manage")?;
        match request.into_inner().kind {
            Some(manage_request::Kind::Heartbeat(beat)) => Ok(Response::new(
                service.manage_response(manage_response::Kind::Heartbeat(beat)),
            )),
            Some(manage_request::Kind::Shutdown(shutdown)) => {
                let response = service.manage_response(manage_response::Kind::Shutdown(shutdown));
                // Answered first; the server then stops once the running calls are done.
                service.close(
                    shutdown
                        .cancel_running
                        .then_some("the worker is shutting down"),
                );
                Ok(Response::new(response))
            }
            None => Err(Status::invalid_argument(
                "ManageRequest holds neither heartbeat nor shutdown",
            )),
        }
    }
}

/// Where the worker serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `grpc+unix:PATH`
    Unix(String),
    /// `grpc+tcp:HOST:PORT` (an empty HOST is 127.0.0.1)
    Tcp(String, u16),
}

/// Read `grpc+unix:/path` or `grpc+tcp:HOST:PORT`.
pub fn parse_endpoint(endpoint: &str) -> Result<Endpoint, String> {
    if let Some(path) = endpoint.strip_prefix("grpc+unix:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        return if path.is_empty() {
            Err(format!("endpoint '{endpoint}' names no socket path"))
        } else {
            Ok(Endpoint::Unix(path.to_owned()))
        };
    }
    if let Some(rest) = endpoint.strip_prefix("grpc+tcp:") {
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (host, port) = rest.rsplit_once(':').ok_or(format!(
            "endpoint '{endpoint}' has no port: write grpc+tcp:HOST:PORT"
        ))?;
        let port: u16 = port.parse().map_err(|_| {
            format!("endpoint '{endpoint}' has no valid port: write grpc+tcp:HOST:PORT")
        })?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let host = if host.is_empty() { "127.0.0.1" } else { host };
        let loopback = host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(format!(
                "endpoint '{endpoint}' is reachable from other machines: this Rust worker serves plaintext gRPC on loopback and Unix sockets only"
            ));
        }
        return Ok(Endpoint::Tcp(host.to_owned(), port));
    }
    Err(format!("unsupported endpoint '{endpoint}': the grpc transport listens on grpc+unix:/path/to/socket or grpc+tcp:HOST:PORT"))
}

/// Serve until `Manage(shutdown)`, SIGTERM/SIGINT, or the death of the process that started the
/// worker; return the exit status.
pub fn run(args: &Args, secret: Vec<u8>, registry: Arc<Registry>) -> i32 {
    serving::run(args, parse_endpoint(&args.connection), |endpoint| {
        serve(args, endpoint, secret, registry)
    })
}

async fn serve(args: &Args, endpoint: Endpoint, secret: Vec<u8>, registry: Arc<Registry>) -> i32 {
    let (stop, mut stopped) = watch::channel(false);
    let service = Arc::new(Service {
        registry,
        secret,
        hello: crate::hello(&args.id, Vec::new()),
        refused_calls: AtomicU64::new(0),
        closing: AtomicBool::new(false),
        calls: Mutex::new(Vec::new()),
        running_calls: AtomicUsize::new(0),
        stop,
    });
    let server = tonic::transport::Server::builder().add_service(
        UdfWorkerServer::new(Shared(service.clone()))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    );
    let mut until_stopped = stopped.clone();
    let draining = service.clone();
    // The server stops once every execution thread has answered (a Shutdown with
    // cancel_running makes them answer CancelResponse): stopping it at once could cut an answer
    // still on its way, and the engine would see the call cancelled instead.
    let shutdown = async move {
        let _ = until_stopped.wait_for(|stop| *stop).await;
        let deadline = tokio::time::Instant::now() + STOP_GRACE;
        while draining.running_calls.load(Ordering::SeqCst) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(FLUSH_WAIT).await;
    };
    let served = match &endpoint {
        Endpoint::Unix(path) => {
            let listener = match tokio::net::UnixListener::bind(path) {
                Ok(listener) => listener,
                Err(err) => return serving::cannot_listen(args, &err),
            };
            serving::restrict_socket(path);
            serving::announce(args, "grpc");
            tokio::spawn(watch_for_stop(service.clone()));
            tokio::spawn(
                server.serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown),
            )
        }
        Endpoint::Tcp(host, port) => {
            let listener = match tokio::net::TcpListener::bind((host.as_str(), *port)).await {
                Ok(listener) => listener,
                Err(err) => return serving::cannot_listen(args, &err),
            };
            serving::announce(args, "grpc");
            tokio::spawn(watch_for_stop(service.clone()));
            let incoming = TcpListenerStream::new(listener).map(serving::with_nodelay);
            tokio::spawn(server.serve_with_incoming_shutdown(incoming, shutdown))
        }
    };
    // After a stop, running calls get a grace period to answer; then the worker exits anyway.
    let _ = stopped.wait_for(|stop| *stop).await;
    let status = match tokio::time::timeout(
        STOP_GRACE + FLUSH_WAIT + Duration::from_secs(1),
        served,
    )
    .await
    {
        Ok(Ok(Err(err))) => {
            eprintln!("quiver-worker[{}]: the gRPC server failed: {err}", args.id);
            EXIT_CONNECTION_LOST
        }
        Ok(_) => EXIT_OK,
        Err(_) => {
            eprintln!(
                "quiver-worker[{}]: executions did not stop within {STOP_GRACE:?}; exiting anyway",
                args.id
            );
            EXIT_OK
        }
    };
    if let Endpoint::Unix(path) = endpoint {
        let _ = std::fs::remove_file(path);
    }
    status
}

/// Stop on SIGTERM/SIGINT, or when the process that started the worker exits (a server has no
/// connection whose end would tell: the worker is handed to another parent instead).
async fn watch_for_stop(service: Arc<Service>) {
    let Some(reason) = serving::stop_signal().await else {
        return;
    };
    eprintln!("quiver-worker: {reason}; stopping");
    service.close(Some(reason));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("grpc+unix:/tmp/w.sock").unwrap(),
            Endpoint::Unix("/tmp/w.sock".into())
        );
        assert_eq!(
            parse_endpoint("grpc+tcp::5000").unwrap(),
            Endpoint::Tcp("127.0.0.1".into(), 5000)
        );
        assert_eq!(
            parse_endpoint("grpc+tcp:[::1]:7").unwrap(),
            Endpoint::Tcp("::1".into(), 7)
        );
        assert!(parse_endpoint("grpc+tcp:10.1.2.3:5000")
            .unwrap_err()
            .contains("other machines"));
        assert!(parse_endpoint("grpc+tcp:127.0.0.1")
            .unwrap_err()
            .contains("port"));
        assert!(parse_endpoint("unix:/x")
            .unwrap_err()
            .contains("unsupported"));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
