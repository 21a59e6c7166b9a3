//! Spark's `org.apache.spark.udf.worker.UdfWorker` service (docs/spark-protocol.md): what a
//! worker started with `--dialect spark` serves, on a Unix socket (a path) or on loopback TCP (a
//! bare port, 127.0.0.1 and ::1).
//!
//! Each `Execute` stream is one [`Session`] on a thread of its own (UDFs are ordinary blocking
//! code); a reader task moves the stream's requests into an [`Inbox`], which lets a batch see
//! that a `Cancel` already waits behind it. `Manage` answers heartbeats in every state (it never
//! waits for a stream) and shuts the worker down.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream, UnixListenerStream};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::args::{Args, EXIT_CONNECTION_LOST, EXIT_OK};
use crate::grpc::{self, Endpoint};
use crate::inbox::Inbox;
use crate::registry::Registry;
use crate::serving;
use crate::spark_proto::{
    self as spark,
    udf_control_request::Control,
    udf_request::Request as Req,
    udf_worker_server::{UdfWorker, UdfWorkerServer},
    worker_request::Manage,
    worker_response,
};
use crate::spark_session::{Session, Sink, Totals, SHUTTING_DOWN};

/// Streams served at once, as the other quiver workers; one more `Execute` call is refused with
/// RESOURCE_EXHAUSTED rather than queued behind the others.
const MAX_STREAMS: usize = 8;
/// Messages may be up to 2 GiB - 1 bytes (gRPC's default is 4 MiB).
const MAX_MESSAGE_BYTES: usize = (1 << 31) - 1;
/// How long `ShutdownRequest(cancel_sessions)` waits for the streams to answer (they answer
/// between batches) before it says `sessions_settled=false`.
const SHUTDOWN_CANCEL_WAIT: Duration = Duration::from_secs(10);
/// How long the streams get to answer after SIGTERM before the worker exits anyway (well inside
/// the 5 s `graceful_termination_timeout_ms` docs/spark-protocol.md suggests).
const SIGTERM_GRACE: Duration = Duration::from_secs(2);
/// How long the connections get to close after the last answers left, before the worker exits.
const CLOSE_WAIT: Duration = Duration::from_millis(500);
/// Answers of one stream queued for gRPC before the session's thread waits.
const OUTBOX_DEPTH: usize = 16;
/// After the last stream ended, how long the server keeps running so that its answers reach the
/// engine before the connection goes.
const FLUSH_WAIT: Duration = Duration::from_millis(100);

/// Where a worker in Spark's dialect serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SparkEndpoint {
    /// A Unix socket to create at this path.
    Unix(String),
    /// A bare port: 127.0.0.1 and, where the machine has IPv6, ::1.
    LoopbackPort(u16),
    /// quiver's `grpc+tcp:HOST:PORT` (a loopback host).
    Tcp(String, u16),
}

/// Read `--connection` (section 1): decimal digits are a port, quiver's `grpc+unix:` and
/// `grpc+tcp:` forms are accepted, anything else is a socket path.
pub fn parse_connection(connection: &str) -> Result<SparkEndpoint, String> {
    if connection.is_empty() {
        return Err("--connection is empty: give a socket path or a port".to_owned());
    }
    if connection.bytes().all(|b| b.is_ascii_digit()) {
        return match connection.parse::<u16>() {
            Ok(port) if port > 0 => Ok(SparkEndpoint::LoopbackPort(port)),
            _ => Err(format!("--connection {connection}: a port is 1 to 65535")),
        };
    }
    if connection.starts_with("grpc+") {
        return grpc::parse_endpoint(connection).map(|endpoint| match endpoint {
            Endpoint::Unix(path) => SparkEndpoint::Unix(path),
            Endpoint::Tcp(host, port) => SparkEndpoint::Tcp(host, port),
        });
    }
    Ok(SparkEndpoint::Unix(connection.to_owned()))
}

/// What the session thread of a stream receives.
enum Item {
    /// A request of the stream.
    Request(spark::UdfRequest),
    /// A request that did not decode.
    Undecodable(String),
    /// Stop from inside the worker (a shutdown that cancels the sessions, SIGTERM).
    Stop,
    /// The requests ended; `broken` when the stream failed (nothing may be sent then).
    End { broken: bool },
}

fn stops(item: &Item) -> bool {
    match item {
        Item::Stop => true,
        Item::Request(spark::UdfRequest {
            request: Some(Req::Control(control)),
        }) => matches!(control.control, Some(Control::Cancel(_))),
        _ => false,
    }
}

/// The engine's side of one stream, as the session sees it.
struct StreamSink {
    outbox: mpsc::Sender<Result<spark::UdfResponse, Status>>,
    inbox: Arc<Inbox<Item>>,
}

impl Sink for StreamSink {
    fn send(&mut self, response: spark::UdfResponse) -> io::Result<()> {
        self.outbox
            .blocking_send(Ok(response))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the Execute stream is over"))
    }

    fn cancel_ahead(&mut self) -> bool {
        self.inbox.stop_waiting()
    }
}

/// Serve one stream until its terminator is sent or it broke.
fn run_stream(mut session: Session, inbox: Arc<Inbox<Item>>, mut sink: StreamSink) {
    let outcome: io::Result<()> = (|| loop {
        match inbox.pop() {
            Item::Request(request) => session.handle(request, &mut sink)?,
            Item::Undecodable(why) => session.violation(&why, &mut sink)?,
            Item::Stop => session.stop(SHUTTING_DOWN, &mut sink)?,
            Item::End { broken: true } => return Ok(()), // the stream is dead: send nothing
            Item::End { broken: false } => session.requests_ended(&mut sink)?,
        }
        if session.is_done() {
            return Ok(());
        }
    })();
    if let Err(err) = outcome {
        eprintln!("quiver-worker: an Execute stream ended early: {err}");
    }
}

/// How the worker stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stopping {
    /// Not stopping.
    No,
    /// `ShutdownRequest` without `cancel_sessions`: once the open streams end.
    WhenStreamsEnd,
    /// `ShutdownRequest(cancel_sessions)`, SIGTERM: streams are cancelled and get `grace` to
    /// answer.
    CancellingStreams { grace: Duration },
}

impl Stopping {
    /// How far along the way to stopping: a stop request only ever moves it forward.
    fn rank(self) -> u8 {
        match self {
            Stopping::No => 0,
            Stopping::WhenStreamsEnd => 1,
            Stopping::CancellingStreams { .. } => 2,
        }
    }

    /// How long the open streams get to end, when they do not get all the time they need.
    fn grace(self) -> Option<Duration> {
        match self {
            Stopping::CancellingStreams { grace } => Some(grace),
            _ => None,
        }
    }
}

/// The `UdfWorker` service.
struct Service {
    registry: Arc<Registry>,
    totals: Arc<Totals>,
    closing: AtomicBool,
    streams: Mutex<Vec<Weak<Inbox<Item>>>>,
    /// Session threads still running.
    open_streams: AtomicUsize,
    stop: watch::Sender<Stopping>,
}

impl Service {
    /// Register a new stream's inbox, or refuse it when stopping or at the limit.
    fn admit(&self) -> Result<Arc<Inbox<Item>>, Status> {
        let mut streams = self.streams.lock().expect("streams lock");
        if self.closing.load(Ordering::SeqCst) {
            return Err(Status::unavailable(SHUTTING_DOWN));
        }
        streams.retain(|stream| stream.strong_count() > 0);
        if streams.len() >= MAX_STREAMS {
            return Err(Status::resource_exhausted(format!(
                "the worker serves at most {MAX_STREAMS} Execute streams at once"
            )));
        }
        let inbox = Arc::new(Inbox::new(stops));
        streams.push(Arc::downgrade(&inbox));
        Ok(inbox)
    }

    /// Refuse new streams; when cancelling, tell every open stream to stop.
    fn close(&self, how: Stopping) {
        let streams = self.streams.lock().expect("streams lock");
        self.closing.store(true, Ordering::SeqCst);
        if how.grace().is_some() {
            for inbox in streams.iter().filter_map(Weak::upgrade) {
                inbox.push(Item::Stop);
            }
        }
        drop(streams);
        self.stop.send_if_modified(|now| {
            let further = how.rank() > now.rank();
            if further {
                *now = how;
            }
            further
        });
    }

    /// Wait until every session thread ended, or `grace` passed; whether they all ended.
    async fn streams_ended(&self, grace: Option<Duration>) -> bool {
        let deadline = grace.map(|grace| tokio::time::Instant::now() + grace);
        while self.open_streams.load(Ordering::SeqCst) > 0 {
            if deadline.is_some_and(|deadline| tokio::time::Instant::now() >= deadline) {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    fn heartbeat_metrics(&self) -> std::collections::HashMap<String, String> {
        let mut metrics = self.totals.to_metrics();
        metrics.insert("pid".to_owned(), std::process::id().to_string());
        metrics.insert(
            "sessions_active".to_owned(),
            self.open_streams.load(Ordering::SeqCst).to_string(),
        );
        metrics.insert(
            "peak_rss_bytes".to_owned(),
            crate::execution::peak_rss_bytes().to_string(),
        );
        metrics
    }
}

/// The service, shared by tonic's tasks.
struct Shared(Arc<Service>);

#[tonic::async_trait]
impl UdfWorker for Shared {
    type ExecuteStream = ReceiverStream<Result<spark::UdfResponse, Status>>;

    async fn execute(
        &self,
        request: Request<Streaming<spark::UdfRequest>>,
    ) -> Result<Response<Self::ExecuteStream>, Status> {
        let service = self.0.clone();
        let inbox = service.admit()?;
        let mut requests = request.into_inner();
        let reader_inbox = inbox.clone();
        tokio::spawn(async move {
            let mut broken = false;
            while let Some(next) = requests.next().await {
                match next {
                    Ok(request) => reader_inbox.push(Item::Request(request)),
                    Err(status) if status.code() == tonic::Code::Internal => {
                        reader_inbox.push(Item::Undecodable(format!(
                            "a message on the Execute stream is not a UdfRequest: {}",
                            status.message()
                        )));
                        break;
                    }
                    Err(_) => {
                        broken = true; // the engine cancelled the call, or the connection broke
                        break;
                    }
                }
            }
            reader_inbox.push(Item::End { broken });
        });
        let (outbox, answers) = mpsc::channel(OUTBOX_DEPTH);
        let sink = StreamSink {
            outbox,
            inbox: inbox.clone(),
        };
        let session = Session::new(service.registry.clone(), service.totals.clone());
        service.open_streams.fetch_add(1, Ordering::SeqCst);
        let thread_service = service.clone();
        std::thread::Builder::new()
            .name("quiver-spark-stream".into())
            .spawn(move || {
                run_stream(session, inbox, sink); // drops the stream's sender: its answers end
                thread_service.open_streams.fetch_sub(1, Ordering::SeqCst);
            })
            .map_err(|err| {
                service.open_streams.fetch_sub(1, Ordering::SeqCst);
                Status::resource_exhausted(format!("cannot start a session thread: {err}"))
            })?;
        Ok(Response::new(ReceiverStream::new(answers)))
    }

    async fn manage(
        &self,
        request: Request<spark::WorkerRequest>,
    ) -> Result<Response<spark::WorkerResponse>, Status> {
        let service = &self.0;
        let answer = match request.into_inner().manage {
            Some(Manage::Heartbeat(_)) => {
                worker_response::Manage::Heartbeat(spark::HeartbeatResponse {
                    metrics: service.heartbeat_metrics(),
                })
            }
            Some(Manage::Shutdown(shutdown)) => {
                let settled = if shutdown.cancel_sessions == Some(true) {
                    service.close(Stopping::CancellingStreams {
                        grace: SHUTDOWN_CANCEL_WAIT,
                    });
                    service.streams_ended(Some(SHUTDOWN_CANCEL_WAIT)).await
                } else {
                    let settled = service.open_streams.load(Ordering::SeqCst) == 0;
                    service.close(Stopping::WhenStreamsEnd);
                    settled
                };
                let reason = shutdown.reason.unwrap_or_default();
                eprintln!("quiver-worker: ShutdownRequest ({reason}); streams settled: {settled}");
                worker_response::Manage::Shutdown(spark::ShutdownResponse {
                    sessions_settled: settled,
                })
            }
            None => {
                return Err(Status::invalid_argument(
                    "WorkerRequest holds neither heartbeat nor shutdown",
                ))
            }
        };
        Ok(Response::new(spark::WorkerResponse {
            manage: Some(answer),
        }))
    }
}

/// Serve Spark's `UdfWorker` until a `ShutdownRequest`, SIGTERM/SIGINT, or the death of the
/// process that started the worker; return the exit status.
pub fn run(args: &Args, registry: Arc<Registry>) -> i32 {
    serving::run(args, parse_connection(&args.connection), |endpoint| {
        serve(args, endpoint, registry)
    })
}

async fn serve(args: &Args, endpoint: SparkEndpoint, registry: Arc<Registry>) -> i32 {
    let (stop, mut stopped) = watch::channel(Stopping::No);
    let service = Arc::new(Service {
        registry,
        totals: Arc::new(Totals::default()),
        closing: AtomicBool::new(false),
        streams: Mutex::new(Vec::new()),
        open_streams: AtomicUsize::new(0),
        stop,
    });
    let server = tonic::transport::Server::builder().add_service(
        UdfWorkerServer::new(Shared(service.clone()))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    );
    // The server stops once every stream has answered: stopping it at once could cut a
    // terminator still on its way, and the engine would see the stream broken instead.
    let mut until_stopped = stopped.clone();
    let draining = service.clone();
    let shutdown = async move {
        let how = *until_stopped
            .wait_for(|how| *how != Stopping::No)
            .await
            .expect("the service holds the sender");
        draining.streams_ended(how.grace()).await;
        tokio::time::sleep(FLUSH_WAIT).await;
    };
    let served = match &endpoint {
        SparkEndpoint::Unix(path) => {
            let listener = match tokio::net::UnixListener::bind(path) {
                Ok(listener) => listener,
                Err(err) => return serving::cannot_listen(args, &err),
            };
            serving::restrict_socket(path);
            // SAFETY: getuid cannot fail.
            let owner = unsafe { libc::getuid() };
            let incoming = UnixListenerStream::new(listener)
                .filter(move |connection| same_user(connection, owner));
            serving::announce(args, "spark");
            tokio::spawn(server.serve_with_incoming_shutdown(incoming, shutdown))
        }
        SparkEndpoint::LoopbackPort(port) => {
            let v4 = match bind_tcp("127.0.0.1", *port).await {
                Ok(listener) => listener,
                Err(err) => return serving::cannot_listen(args, &err),
            };
            let v6 = match bind_tcp("::1", *port).await {
                Ok(listener) => Some(listener),
                Err(err) if err.kind() == io::ErrorKind::AddrInUse => {
                    return serving::cannot_listen(args, &err)
                }
                Err(err) => {
                    eprintln!(
                        "quiver-worker[{}]: serving 127.0.0.1 only; [::1]:{port}: {err}",
                        args.id
                    );
                    None
                }
            };
            let incoming = TcpListenerStream::new(v4)
                .merge(optional_listener(v6))
                .map(serving::with_nodelay);
            serving::announce(args, "spark");
            tokio::spawn(server.serve_with_incoming_shutdown(incoming, shutdown))
        }
        SparkEndpoint::Tcp(host, port) => {
            let listener = match bind_tcp(host, *port).await {
                Ok(listener) => listener,
                Err(err) => return serving::cannot_listen(args, &err),
            };
            let incoming = TcpListenerStream::new(listener).map(serving::with_nodelay);
            serving::announce(args, "spark");
            tokio::spawn(server.serve_with_incoming_shutdown(incoming, shutdown))
        }
    };
    tokio::spawn(watch_for_stop(service.clone()));
    let how = *stopped
        .wait_for(|how| *how != Stopping::No)
        .await
        .expect("the service holds the sender");
    // The streams end (all the time they need, or the grace of a cancelling stop: a UDF that does
    // not return keeps its stream open), their last answers get FLUSH_WAIT to leave, then the
    // worker exits: an engine that keeps its idle connection open must not hold it.
    let settled = service.streams_ended(how.grace()).await;
    if !settled {
        eprintln!(
            "quiver-worker[{}]: streams did not stop within {:?}; exiting anyway",
            args.id,
            how.grace().unwrap_or_default()
        );
    }
    let status = match tokio::time::timeout(FLUSH_WAIT + CLOSE_WAIT, served).await {
        Ok(outcome) => exit_status(args, outcome),
        Err(_) => EXIT_OK,
    };
    if let SparkEndpoint::Unix(path) = endpoint {
        let _ = std::fs::remove_file(path);
    }
    status
}

type Served = Result<Result<(), tonic::transport::Error>, tokio::task::JoinError>;

fn exit_status(args: &Args, served: Served) -> i32 {
    match served {
        Ok(Err(err)) => {
            eprintln!("quiver-worker[{}]: the gRPC server failed: {err}", args.id);
            EXIT_CONNECTION_LOST
        }
        _ => EXIT_OK,
    }
}

/// The second listener of a bare port, or nothing when the machine has no IPv6 loopback.
fn optional_listener(
    listener: Option<tokio::net::TcpListener>,
) -> std::pin::Pin<Box<dyn tokio_stream::Stream<Item = io::Result<tokio::net::TcpStream>> + Send>> {
    match listener {
        Some(listener) => Box::pin(TcpListenerStream::new(listener)),
        None => Box::pin(tokio_stream::pending()),
    }
}

async fn bind_tcp(host: &str, port: u16) -> io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind((host, port)).await
}

/// Refuse a connection from another user (section 7), where the OS tells the peer's credentials.
fn same_user(connection: &io::Result<tokio::net::UnixStream>, owner: u32) -> bool {
    let Ok(stream) = connection else {
        return true; // the server reports accept errors
    };
    match stream.peer_cred() {
        Ok(peer) if peer.uid() != owner => {
            eprintln!(
                "quiver-worker: refused a connection from user {} (the worker runs as user {owner})",
                peer.uid()
            );
            false
        }
        _ => true,
    }
}

/// Cancel the streams and stop on SIGTERM/SIGINT, or when the process that started the worker
/// exits (a server has no connection whose end would tell).
async fn watch_for_stop(service: Arc<Service>) {
    let Some(reason) = serving::stop_signal().await else {
        return;
    };
    eprintln!("quiver-worker: {reason}; cancelling the open streams and stopping");
    service.close(Stopping::CancellingStreams {
        grace: SIGTERM_GRACE,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_paths_ports_or_quiver_endpoints() {
        assert_eq!(
            parse_connection("/tmp/q/w1.sock").unwrap(),
            SparkEndpoint::Unix("/tmp/q/w1.sock".into())
        );
        assert_eq!(
            parse_connection("w1.sock").unwrap(),
            SparkEndpoint::Unix("w1.sock".into())
        );
        assert_eq!(
            parse_connection("41235").unwrap(),
            SparkEndpoint::LoopbackPort(41235)
        );
        assert_eq!(
            parse_connection("grpc+unix:/tmp/w.sock").unwrap(),
            SparkEndpoint::Unix("/tmp/w.sock".into())
        );
        assert_eq!(
            parse_connection("grpc+tcp:[::1]:7000").unwrap(),
            SparkEndpoint::Tcp("::1".into(), 7000)
        );
        assert!(parse_connection("70000")
            .unwrap_err()
            .contains("1 to 65535"));
        assert!(parse_connection("0").is_err());
        assert!(parse_connection("").is_err());
        assert!(parse_connection("grpc+tcp:10.0.0.1:5000")
            .unwrap_err()
            .contains("other machines"));
    }

    #[test]
    fn cancels_and_stops_are_what_a_batch_looks_ahead_for() {
        let cancel = spark::UdfRequest {
            request: Some(Req::Control(spark::UdfControlRequest {
                control: Some(Control::Cancel(spark::Cancel::default())),
            })),
        };
        let finish = spark::UdfRequest {
            request: Some(Req::Control(spark::UdfControlRequest {
                control: Some(Control::Finish(spark::Finish {})),
            })),
        };
        assert!(stops(&Item::Request(cancel)));
        assert!(stops(&Item::Stop));
        assert!(!stops(&Item::Request(finish)));
        assert!(!stops(&Item::End { broken: false }));
    }
}
