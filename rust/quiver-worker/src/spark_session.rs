//! One `Execute` stream of Spark's protocol (docs/spark-protocol.md, sections 2-4 and 6): the
//! order of its messages, the payload's assembly and checks, and the translation of its `Init`
//! into the quiver.v1 [`Execution`] that binds and runs the UDF. It knows nothing of gRPC: a
//! transport feeds it the engine's requests and gives it a [`Sink`] for its answers.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use arrow_buffer::Buffer;

use crate::execution::{self, Execution, Failure, SYMBOL_PAYLOAD};
use crate::proto;
use crate::registry::Registry;
use crate::spark_crc::crc32;
use crate::spark_data;
use crate::spark_proto::{
    self as spark, udf_control_request::Control as In, udf_control_response::Control as Out,
    udf_request::Request, udf_response::Response,
};

/// The one version of Spark's protocol there is.
pub const SPARK_PROTOCOL_VERSION: u32 = 1;
/// The eval type of the SDKs' functions: Arrow arrays in, one Arrow array out.
pub const SCALAR_ARROW: &str = "SCALAR_ARROW";
/// What a stream cancelled from inside the worker is told.
pub const SHUTTING_DOWN: &str = "the worker is shutting down";

/// The engine's side of a stream, as the session sees it.
pub trait Sink {
    /// Send one answer.
    fn send(&mut self, response: spark::UdfResponse) -> io::Result<()>;
    /// Whether a `Cancel` (or a stop from inside the worker) already waits behind the request
    /// being handled: batches in between are dropped, a `Finish` is not answered.
    fn cancel_ahead(&mut self) -> bool {
        false
    }
}

/// The per-execution counters of section 6, in the order of [`METRIC_KEYS`].
const METRIC_KEYS: [&str; 8] = [
    "rows_in",
    "rows_out",
    "batches_in",
    "batches_out",
    "bytes_in",
    "bytes_out",
    "udf_time_ns",
    "codec_time_ns",
];

/// The worker-wide totals of every stream's counters (`HeartbeatResponse.metrics`).
#[derive(Default)]
pub struct Totals {
    values: [AtomicU64; METRIC_KEYS.len()],
}

impl Totals {
    /// The totals as metrics entries.
    pub fn to_metrics(&self) -> HashMap<String, String> {
        METRIC_KEYS
            .iter()
            .zip(&self.values)
            .map(|(key, value)| (key.to_string(), value.load(Ordering::Relaxed).to_string()))
            .collect()
    }
}

/// Where the stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Waits for `Init`.
    AwaitingInit,
    /// `Init` said the payload comes in chunks: waits for the one carrying `last`.
    Chunking,
    /// `InitResponse` sent without error: answers batches.
    Running,
    /// `Finish` came with a `Cancel` already behind it: `CancelResponse` will end the stream.
    Finishing,
    /// An error was sent (`InitResponse.error` or `ErrorResponse`): waits for `Cancel`.
    Failed,
    /// The terminator was sent: the stream is over.
    Done,
}

/// The `Init` of a stream whose payload still arrives in chunks.
struct PendingInit {
    init: spark::Init,
    payload: Vec<u8>,
}

/// One `Execute` stream.
pub struct Session {
    registry: Arc<Registry>,
    totals: Arc<Totals>,
    stage: Stage,
    pending: Option<PendingInit>,
    execution: Option<Execution>,
    /// The encapsulated `Init.input_schema`, which bare record-batch messages are read against.
    input_schema: Buffer,
    batches_in: u64,
    batches_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    /// The counters already added to the worker-wide totals.
    published: [u64; METRIC_KEYS.len()],
    finish_seen: bool,
    /// A violation seen while finishing, reported in the terminator's `error`.
    terminator_error: Option<Failure>,
}

impl Session {
    /// A stream that waits for its `Init`.
    pub fn new(registry: Arc<Registry>, totals: Arc<Totals>) -> Self {
        Session {
            registry,
            totals,
            stage: Stage::AwaitingInit,
            pending: None,
            execution: None,
            input_schema: Buffer::from_vec(Vec::<u8>::new()),
            batches_in: 0,
            batches_out: 0,
            bytes_in: 0,
            bytes_out: 0,
            published: [0; METRIC_KEYS.len()],
            finish_seen: false,
            terminator_error: None,
        }
    }

    /// Where the stream is.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Whether the terminator was sent.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Handle one request of the engine.
    pub fn handle(&mut self, request: spark::UdfRequest, sink: &mut dyn Sink) -> io::Result<()> {
        match request.request {
            Some(Request::Data(data)) => self.on_data(data.data, sink),
            Some(Request::Control(spark::UdfControlRequest {
                control: Some(control),
            })) => match control {
                In::Init(init) => self.on_init(init, sink),
                In::Payload(chunk) => self.on_chunk(chunk, sink),
                In::Finish(_) => self.on_finish(sink),
                In::Cancel(_) => self.terminate(sink),
            },
            Some(Request::Control(_)) => {
                self.violation("a UdfControlRequest holds no message", sink)
            }
            None => self.violation("a UdfRequest holds neither control nor data", sink),
        }
    }

    /// The engine ended its requests (a half-close): as `Cancel`, and a `ProtocolError` unless it
    /// sent `Finish` first.
    pub fn requests_ended(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        if self.stage == Stage::Done {
            return Ok(());
        }
        if !self.finish_seen && self.terminator_error.is_none() {
            self.terminator_error = Some(Failure::Protocol(
                "the request stream ended without Finish or Cancel".to_owned(),
            ));
        }
        self.terminate(sink)
    }

    /// Stop the stream from inside the worker (a shutdown that cancels the sessions, SIGTERM):
    /// in the data phase `ErrorResponse` with a `WorkerError`, then `CancelResponse`; before
    /// `InitResponse` the `WorkerError` rides on `CancelResponse` (an `ErrorResponse` belongs to
    /// the data phase); a stream that failed already gets its `CancelResponse` only.
    pub fn stop(&mut self, reason: &str, sink: &mut dyn Sink) -> io::Result<()> {
        let failure = Failure::Worker {
            udf: String::new(),
            message: reason.to_owned(),
        };
        match self.stage {
            Stage::Done => return Ok(()),
            Stage::Failed => {}
            Stage::AwaitingInit | Stage::Chunking => self.terminator_error = Some(failure),
            Stage::Running | Stage::Finishing => {
                sink.send(control(Out::Error(spark::ErrorResponse {
                    error: Some(execution_error(&failure)),
                })))?;
            }
        }
        self.terminate(sink)
    }

    /// A request that breaks the protocol where it arrives: reported where the `.proto` says.
    pub fn violation(&mut self, message: &str, sink: &mut dyn Sink) -> io::Result<()> {
        let failure = Failure::Protocol(message.to_owned());
        match self.stage {
            Stage::AwaitingInit | Stage::Chunking => self.fail_init(failure, sink),
            Stage::Running => self.fail(failure, sink),
            Stage::Finishing => {
                self.terminator_error.get_or_insert(failure);
                Ok(())
            }
            Stage::Failed | Stage::Done => {
                eprintln!(
                    "quiver-worker: ignoring (the stream already failed or ended): {message}"
                );
                Ok(())
            }
        }
    }

    fn on_init(&mut self, init: spark::Init, sink: &mut dyn Sink) -> io::Result<()> {
        match self.stage {
            Stage::AwaitingInit => {}
            Stage::Chunking => {
                return self.violation("a second Init while the payload's chunks arrive", sink)
            }
            _ => return self.violation("a second Init on the stream", sink),
        }
        if init.is_chunking_payload == Some(true) {
            let payload = init
                .udf
                .as_ref()
                .map(|udf| udf.payload.clone())
                .unwrap_or_default();
            self.pending = Some(PendingInit { init, payload });
            self.stage = Stage::Chunking;
            return Ok(());
        }
        let payload = init
            .udf
            .as_ref()
            .map(|udf| udf.payload.clone())
            .unwrap_or_default();
        self.load(init, payload, sink)
    }

    fn on_chunk(&mut self, chunk: spark::PayloadChunk, sink: &mut dyn Sink) -> io::Result<()> {
        match self.stage {
            Stage::Chunking => {}
            Stage::AwaitingInit => {
                return self.violation(
                    "a PayloadChunk before Init (chunks follow an Init with is_chunking_payload)",
                    sink,
                )
            }
            _ => return self.violation("a PayloadChunk after InitResponse", sink),
        }
        let pending = self.pending.as_mut().expect("chunking");
        pending.payload.extend_from_slice(&chunk.data);
        if chunk.last != Some(true) {
            return Ok(());
        }
        let PendingInit { init, payload } = self.pending.take().expect("chunking");
        self.load(init, payload, sink)
    }

    /// Check the `Init` and its payload, bind the UDF, answer `InitResponse`.
    fn load(&mut self, init: spark::Init, payload: Vec<u8>, sink: &mut dyn Sink) -> io::Result<()> {
        let definition = match quiver_init(&init, payload) {
            Ok(definition) => definition,
            Err(failure) => return self.fail_init(failure, sink),
        };
        self.input_schema = Buffer::from_vec(definition.input_schema.clone());
        let mut execution = Execution::new(definition);
        let loaded = execution.load(&self.registry);
        self.execution = Some(execution);
        match loaded {
            Ok(result_schema) => {
                self.stage = Stage::Running;
                sink.send(control(Out::Init(spark::InitResponse {
                    data: Some(result_schema),
                    error: None,
                })))
            }
            Err(failure) => self.fail_init(failure, sink),
        }
    }

    fn on_data(&mut self, body: prost::bytes::Bytes, sink: &mut dyn Sink) -> io::Result<()> {
        match self.stage {
            Stage::Running => {}
            Stage::Failed => return Ok(()), // after an error, batches are not answered
            Stage::AwaitingInit | Stage::Chunking => {
                return self.violation("a DataRequest before InitResponse", sink)
            }
            Stage::Finishing | Stage::Done => {
                return self.violation("a DataRequest after Finish", sink)
            }
        }
        self.batches_in += 1;
        self.bytes_in += body.len() as u64;
        let outcome = if sink.cancel_ahead() {
            Ok(()) // a Cancel follows: the engine discards this batch's answer anyway
        } else {
            self.run(Buffer::from(body), sink)
        };
        self.publish();
        outcome
    }

    /// Answer every record batch of one `DataRequest`, in order.
    fn run(&mut self, body: Buffer, sink: &mut dyn Sink) -> io::Result<()> {
        let execution = self.execution.as_mut().expect("running");
        let started = Instant::now();
        let decoded = spark_data::decode_batches(&self.input_schema, body);
        execution.metrics.codec_nanos += elapsed_nanos(started);
        let batches = match decoded {
            Ok(batches) => batches,
            Err(message) => return self.fail(Failure::Protocol(message), sink),
        };
        for batch in &batches {
            let execution = self.execution.as_mut().expect("running");
            let result = execution
                .check_batch(batch)
                .and_then(|()| execution.run_decoded(batch));
            match result {
                Ok(encoded) => {
                    self.batches_out += 1;
                    self.bytes_out += encoded.len() as u64;
                    sink.send(spark::UdfResponse {
                        response: Some(Response::Data(spark::DataResponse {
                            data: encoded.into(),
                        })),
                    })?;
                }
                Err(failure) => return self.fail(failure, sink),
            }
        }
        Ok(())
    }

    fn on_finish(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        let first = !self.finish_seen;
        self.finish_seen = true;
        match self.stage {
            Stage::Running if sink.cancel_ahead() => {
                self.stage = Stage::Finishing;
                Ok(())
            }
            Stage::Running => {
                self.stage = Stage::Done;
                sink.send(control(Out::Finish(spark::FinishResponse {
                    metrics: self.metrics(),
                    data: None,
                    error: None,
                })))
            }
            Stage::Failed => Ok(()), // the engine still sends Cancel: Cancel-after-Finish
            Stage::AwaitingInit | Stage::Chunking => {
                self.violation("Finish before InitResponse", sink)
            }
            Stage::Finishing | Stage::Done if first => Ok(()),
            Stage::Finishing | Stage::Done => self.violation("a second Finish", sink),
        }
    }

    /// Send `CancelResponse` (the answer to `Cancel`, and the terminator after any error).
    fn terminate(&mut self, sink: &mut dyn Sink) -> io::Result<()> {
        if self.stage == Stage::Done {
            return Ok(()); // Cancel after FinishResponse arrives too late and is ignored
        }
        self.stage = Stage::Done;
        self.publish();
        let error = self.terminator_error.take().map(|f| execution_error(&f));
        sink.send(control(Out::Cancel(spark::CancelResponse {
            metrics: self.metrics(),
            error,
        })))
    }

    /// An error before `InitResponse`: `InitResponse.error`, then wait for `Cancel`.
    fn fail_init(&mut self, failure: Failure, sink: &mut dyn Sink) -> io::Result<()> {
        eprintln!("quiver-worker: {failure}");
        self.stage = Stage::Failed;
        self.pending = None;
        sink.send(control(Out::Init(spark::InitResponse {
            data: None,
            error: Some(execution_error(&failure)),
        })))
    }

    /// An error of the data phase: the one `ErrorResponse`, then wait for `Cancel`.
    fn fail(&mut self, failure: Failure, sink: &mut dyn Sink) -> io::Result<()> {
        eprintln!("quiver-worker: {failure}");
        self.stage = Stage::Failed;
        sink.send(control(Out::Error(spark::ErrorResponse {
            error: Some(execution_error(&failure)),
        })))
    }

    /// The stream's counters, in the order of [`METRIC_KEYS`].
    fn counters(&self) -> [u64; METRIC_KEYS.len()] {
        let run = self
            .execution
            .as_ref()
            .map(|e| e.metrics)
            .unwrap_or_default();
        [
            run.rows_in,
            run.rows_out,
            self.batches_in,
            self.batches_out,
            self.bytes_in,
            self.bytes_out,
            run.udf_nanos,
            run.codec_nanos,
        ]
    }

    /// Add what the stream did since the last call to the worker-wide totals.
    fn publish(&mut self) {
        let now = self.counters();
        for ((total, value), published) in
            self.totals.values.iter().zip(now).zip(&mut self.published)
        {
            total.fetch_add(value - *published, Ordering::Relaxed);
            *published = value;
        }
    }

    /// `FinishResponse.metrics` / `CancelResponse.metrics` (section 6).
    fn metrics(&self) -> HashMap<String, String> {
        let mut metrics: HashMap<String, String> = METRIC_KEYS
            .iter()
            .zip(self.counters())
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        metrics.insert(
            "peak_rss_bytes".to_owned(),
            execution::peak_rss_bytes().to_string(),
        );
        // The UDFs' own counters, one `counter.NAME` key each (docs/spark-protocol.md, section 6).
        if let Some(execution) = &self.execution {
            for (name, grown) in execution.user_counters() {
                metrics.insert(format!("counter.{name}"), grown.to_string());
            }
        }
        metrics
    }
}

/// Check a Spark `Init` (section 2) and say it as the quiver.v1 `Init` of one UDF whose
/// arguments are every input column, in order.
fn quiver_init(init: &spark::Init, payload: Vec<u8>) -> Result<proto::Init, Failure> {
    let version = init.protocol_version.unwrap_or(SPARK_PROTOCOL_VERSION);
    if version != SPARK_PROTOCOL_VERSION {
        return Err(Failure::Protocol(format!(
            "Init has protocol_version {version}; this worker speaks version {SPARK_PROTOCOL_VERSION}"
        )));
    }
    if init.data_format != spark::UdfWorkerDataFormat::Arrow as i32 {
        return Err(Failure::Protocol(format!(
            "Init has data_format {}; this worker reads and writes ARROW (1) only",
            init.data_format
        )));
    }
    let udf = init
        .udf
        .as_ref()
        .ok_or_else(|| Failure::Protocol("Init carries no udf (UdfPayload)".to_owned()))?;
    check_payload(udf, &payload)?;
    let symbol = String::from_utf8_lossy(&payload).into_owned();
    let name = udf
        .name
        .clone()
        .filter(|name| !name.is_empty())
        .unwrap_or(symbol);
    if udf.format != SYMBOL_PAYLOAD {
        return Err(Failure::Worker {
            udf: name.clone(),
            message: format!(
                "UDF '{name}' has payload format '{}'; this Rust worker accepts '{SYMBOL_PAYLOAD}' \
                 (the name of a registered function)",
                udf.format
            ),
        });
    }
    if let Some(eval_type) = udf.eval_type.as_deref().filter(|e| *e != SCALAR_ARROW) {
        return Err(Failure::Worker {
            udf: name.clone(),
            message: format!(
                "UDF '{name}' has eval_type '{eval_type}'; this Rust worker runs '{SCALAR_ARROW}' only"
            ),
        });
    }
    let input_schema = init
        .input_schema
        .clone()
        .filter(|schema| !schema.is_empty())
        .ok_or_else(|| {
            Failure::Protocol(
                "Init has no input_schema; this worker needs the Arrow IPC schema of the batches"
                    .to_owned(),
            )
        })?;
    let columns = crate::ipc::decode_schema(&input_schema)
        .map_err(|err| {
            Failure::Protocol(format!(
                "Init.input_schema is not an Arrow IPC schema message: {err}"
            ))
        })?
        .fields()
        .len();
    check_parameters(init.parameters.as_deref())?;
    let definition = proto::UdfDefinition {
        name,
        payload_format: SYMBOL_PAYLOAD.to_owned(),
        payload,
        eval_type: proto::EvalType::ScalarArrow as i32,
        argument_offsets: (0..columns as i32).collect(),
        return_type: init.output_schema.clone().unwrap_or_default(),
        ..Default::default()
    };
    Ok(proto::Init {
        protocol_version: crate::execution::PROTOCOL_VERSION,
        data_format: proto::DataFormat::ArrowIpcStream as i32,
        udfs: vec![definition],
        input_schema,
        task_context: None,
        configuration: init.session_conf.clone(),
        session_time_zone: init.timezone.clone().unwrap_or_default(),
        payload_chunk_count: 0,
    })
}

/// `payload_size` and `payload_crc32`, when set, must match the assembled payload.
fn check_payload(udf: &spark::UdfPayload, payload: &[u8]) -> Result<(), Failure> {
    if let Some(size) = udf.payload_size {
        if size != payload.len() as i64 {
            return Err(Failure::Protocol(format!(
                "UdfPayload.payload_size is {size}, but the assembled payload has {} bytes",
                payload.len()
            )));
        }
    }
    if let Some(expected) = udf.payload_crc32 {
        let actual = crc32(payload);
        if actual != expected {
            return Err(Failure::Protocol(format!(
                "UdfPayload.payload_crc32 is {expected:#010x}, but the assembled payload's CRC-32 \
                 is {actual:#010x}"
            )));
        }
    }
    Ok(())
}

/// `Init.parameters`, when set, must be a UTF-8 JSON object (its keys are for class UDFs, which
/// this SDK does not have).
fn check_parameters(parameters: Option<&[u8]>) -> Result<(), Failure> {
    let Some(bytes) = parameters else {
        return Ok(());
    };
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(other) => Err(Failure::Protocol(format!(
            "Init.parameters must be a JSON object, it is {}",
            json_kind(&other)
        ))),
        Err(err) => Err(Failure::Protocol(format!(
            "Init.parameters is not UTF-8 JSON: {err}"
        ))),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Say a failure as Spark's `ExecutionError`.
pub fn execution_error(failure: &Failure) -> spark::ExecutionError {
    use spark::execution_error::Kind;
    let kind = match failure.clone() {
        Failure::User {
            class,
            message,
            traceback,
            ..
        } => Kind::User(spark::UserError {
            message,
            traceback: Some(traceback).filter(|t| !t.is_empty()),
            error_class: Some(class),
        }),
        Failure::Worker { message, .. } => Kind::Worker(spark::WorkerError {
            message,
            traceback: None,
        }),
        Failure::Protocol(message) => Kind::Protocol(spark::ProtocolError { message }),
    };
    spark::ExecutionError { kind: Some(kind) }
}

fn control(message: Out) -> spark::UdfResponse {
    spark::UdfResponse {
        response: Some(Response::Control(spark::UdfControlResponse {
            control: Some(message),
        })),
    }
}

fn elapsed_nanos(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
