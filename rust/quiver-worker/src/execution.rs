//! One execution: bind the UDFs an `Init` names to the registry, run them over batches, count.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_buffer::Buffer;
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::counters;
use crate::ipc;
use crate::proto;
use crate::registry::{BoxError, Registry, ScalarUdf, UdfError};

/// The protocol version this worker speaks.
pub const PROTOCOL_VERSION: u32 = 1;
/// The payload format of a UDF that names a function registered in the worker.
pub const SYMBOL_PAYLOAD: &str = "symbol";
/// The largest result one message may carry (docs/protocol.md, section 4, "A result too large"):
/// the 2 GiB frame body less 64 KiB for the message around it, so that it fits every transport
/// (gRPC's limit is 2^31 - 1 bytes for the whole message).
pub const MAX_RESULT_BYTES: usize = (1 << 31) - (1 << 16);

/// Why an execution stops: becomes the execution's one `Error` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The UDF returned an error or panicked.
    User {
        udf: String,
        class: String,
        message: String,
        traceback: String,
    },
    /// The worker cannot run the UDF (unknown name, wrong result length or type, ...).
    Worker { udf: String, message: String },
    /// The engine sent something the protocol does not allow here.
    Protocol(String),
}

impl Failure {
    fn worker(udf: &str, message: String) -> Self {
        Failure::Worker {
            udf: udf.to_owned(),
            message,
        }
    }

    /// The `Error` message, naming batch `sequence` when there is one.
    pub fn to_proto(&self, sequence: Option<u64>) -> proto::Error {
        use proto::error::Kind;
        let kind = match self.clone() {
            Failure::User {
                udf,
                class,
                message,
                traceback,
            } => Kind::UserError(proto::UserError {
                udf_name: udf,
                message,
                error_class: class,
                traceback,
            }),
            Failure::Worker { udf, message } => Kind::WorkerError(proto::WorkerError {
                message,
                udf_name: udf,
            }),
            Failure::Protocol(message) => Kind::ProtocolError(proto::ProtocolError { message }),
        };
        proto::Error {
            sequence: sequence.unwrap_or(0),
            has_sequence: sequence.is_some(),
            kind: Some(kind),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::User {
                udf,
                class,
                message,
                ..
            } => write!(f, "UDF '{udf}' failed: {class}: {message}"),
            Failure::Worker { message, .. } => write!(f, "worker error: {message}"),
            Failure::Protocol(message) => write!(f, "protocol error: {message}"),
        }
    }
}

/// Counters of one execution, reported in `FinishResponse` / `CancelResponse`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Metrics {
    pub batches: u64,
    pub rows_in: u64,
    pub rows_out: u64,
    pub udf_nanos: u64,
    pub codec_nanos: u64,
}

impl Metrics {
    /// The `Metrics` message, with the process's peak resident set size.
    pub fn to_proto(self) -> proto::Metrics {
        proto::Metrics {
            batches: self.batches,
            rows_in: self.rows_in,
            rows_out: self.rows_out,
            udf_nanos: self.udf_nanos,
            codec_nanos: self.codec_nanos,
            peak_rss_bytes: peak_rss_bytes(),
            // The UDFs' own counters: see [`Execution::user_counters`].
            counters: Default::default(),
        }
    }
}

/// The peak resident set size of this process, in bytes (Linux reports KiB).
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage only writes into the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    let kib = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    if cfg!(target_os = "macos") {
        kib
    } else {
        kib * 1024
    }
}

/// A UDF of the execution, ready to be called on batches.
struct BoundUdf {
    /// The `UdfDefinition.name`: the result column, quoted in errors.
    name: String,
    udf: ScalarUdf,
    offsets: Vec<usize>,
    return_type: DataType,
}

/// The state of one execution between `Init` and `FinishResponse` / `CancelResponse`.
pub struct Execution {
    init: proto::Init,
    payloads: Vec<Vec<u8>>,
    chunks_left: u32,
    udfs: Option<Vec<BoundUdf>>,
    input_schema: Option<SchemaRef>,
    result_schema: SchemaRef,
    /// What the execution did so far.
    pub metrics: Metrics,
    /// The UDFs' own counters when the execution began: it reports what they grew by.
    counters_before: std::collections::BTreeMap<String, u64>,
}

impl Execution {
    /// Hold `init`; nothing is checked or bound until [`Execution::load`].
    pub fn new(mut init: proto::Init) -> Self {
        let payloads = init
            .udfs
            .iter_mut()
            .map(|udf| std::mem::take(&mut udf.payload))
            .collect();
        let chunks_left = init.payload_chunk_count;
        Execution {
            init,
            payloads,
            chunks_left,
            udfs: None,
            input_schema: None,
            result_schema: ipc::shared(Schema::empty()),
            metrics: Metrics::default(),
            counters_before: counters::snapshot(),
        }
    }

    /// What the UDFs' own counters ([`crate::counter`]) grew by during this execution.
    pub fn user_counters(&self) -> std::collections::HashMap<String, u64> {
        counters::since(&self.counters_before)
    }

    /// Whether the UDFs are bound (`InitResponse` was sent).
    pub fn loaded(&self) -> bool {
        self.udfs.is_some()
    }

    /// `PayloadChunk` messages still to come before the UDFs can be bound.
    pub fn chunks_left(&self) -> u32 {
        self.chunks_left
    }

    /// Append a `PayloadChunk` to its UDF's payload.
    pub fn add_payload_chunk(&mut self, chunk: proto::PayloadChunk) -> Result<(), Failure> {
        if self.chunks_left == 0 {
            return Err(Failure::Protocol(format!(
                "PayloadChunk beyond the {} announced by Init",
                self.init.payload_chunk_count
            )));
        }
        let count = self.payloads.len();
        let payload = self
            .payloads
            .get_mut(chunk.udf_index as usize)
            .ok_or_else(|| {
                Failure::Protocol(format!(
                    "PayloadChunk for udf_index {}, but Init has {count} UDFs",
                    chunk.udf_index
                ))
            })?;
        payload.extend_from_slice(&chunk.data);
        self.chunks_left -= 1;
        Ok(())
    }

    /// Check the `Init`, bind every UDF and return the serialized result schema.
    pub fn load(&mut self, registry: &Registry) -> Result<Vec<u8>, Failure> {
        self.check_init()?;
        if !self.init.input_schema.is_empty() {
            let schema = ipc::decode_schema(&self.init.input_schema).map_err(|err| {
                Failure::Protocol(format!(
                    "Init.input_schema is not an Arrow IPC schema message: {err}"
                ))
            })?;
            self.input_schema = Some(schema);
        }
        let mut udfs = Vec::with_capacity(self.init.udfs.len());
        for index in 0..self.init.udfs.len() {
            udfs.push(self.bind(index, registry)?);
        }
        let fields: Vec<Field> = udfs
            .iter()
            .map(|u| Field::new(&u.name, u.return_type.clone(), true))
            .collect();
        self.result_schema = ipc::shared(Schema::new(fields));
        let encoded = ipc::encode_schema(&self.result_schema).map_err(|err| {
            Failure::worker("", format!("cannot encode the result schema: {err}"))
        })?;
        self.udfs = Some(udfs);
        Ok(encoded)
    }

    /// Reject an unsupported protocol version or data format, and an empty UDF list.
    fn check_init(&self) -> Result<(), Failure> {
        let init = &self.init;
        if init.protocol_version != PROTOCOL_VERSION {
            return Err(Failure::Protocol(format!(
                "Init has protocol_version {}; this worker speaks {PROTOCOL_VERSION}",
                init.protocol_version
            )));
        }
        if init.data_format != proto::DataFormat::ArrowIpcStream as i32 {
            return Err(Failure::worker(
                "",
                format!(
                    "Init has data_format {}; this worker reads ARROW_IPC_STREAM (1) only",
                    init.data_format
                ),
            ));
        }
        if init.udfs.is_empty() {
            return Err(Failure::Protocol("Init has no UDFs".to_owned()));
        }
        Ok(())
    }

    /// Find one UDF in the registry and settle its arguments and return type.
    fn bind(&self, index: usize, registry: &Registry) -> Result<BoundUdf, Failure> {
        let definition = &self.init.udfs[index];
        let name = definition.name.as_str();
        check_eval_type(definition)?;
        if definition.payload_format != SYMBOL_PAYLOAD {
            return Err(Failure::worker(
                name,
                format!(
                    "UDF '{name}' has payload format '{}'; this Rust worker loads '{SYMBOL_PAYLOAD}' \
                     payloads only (the name of a registered function)",
                    definition.payload_format
                ),
            ));
        }
        let symbol = std::str::from_utf8(&self.payloads[index]).map_err(|_| {
            Failure::worker(
                name,
                format!("UDF '{name}' has a symbol payload that is not UTF-8"),
            )
        })?;
        let udf = registry.get(symbol).ok_or_else(|| {
            Failure::worker(
                name,
                format!(
                    "UDF '{name}' names function '{symbol}', which this worker does not register; \
                     it registers: {}",
                    registry.names().join(", ")
                ),
            )
        })?;
        let offsets = self.offsets(name, &definition.argument_offsets)?;
        let return_type = self.return_type(name, udf, &offsets)?;
        if !definition.return_type.is_empty() {
            check_declared(name, &definition.return_type, &return_type)?;
        }
        Ok(BoundUdf {
            name: name.to_owned(),
            udf: udf.clone(),
            offsets,
            return_type,
        })
    }

    /// Check argument offsets against the input schema.
    fn offsets(&self, name: &str, offsets: &[i32]) -> Result<Vec<usize>, Failure> {
        let width = self.input_schema.as_ref().map(|s| s.fields().len());
        offsets
            .iter()
            .map(|&offset| match usize::try_from(offset) {
                Ok(at) if width.is_none_or(|w| at < w) => Ok(at),
                _ => Err(Failure::Protocol(format!(
                    "UDF '{name}' has argument offset {offset}, but the input schema has {} columns",
                    width.map_or("no".to_owned(), |w| w.to_string())
                ))),
            })
            .collect()
    }

    /// Settle the UDF's return type from its argument types.
    fn return_type(
        &self,
        name: &str,
        udf: &ScalarUdf,
        offsets: &[usize],
    ) -> Result<DataType, Failure> {
        let args: Vec<DataType> = match &self.input_schema {
            Some(schema) => offsets.iter().map(|&at| schema.field(at).data_type().clone()).collect(),
            None if matches!(udf.returns, crate::Returns::Type(_)) => Vec::new(),
            None => {
                return Err(Failure::worker(
                    name,
                    format!("UDF '{name}' has a return type that depends on its arguments, but Init has no input_schema"),
                ))
            }
        };
        udf.returns.resolve(&args).map_err(|why| {
            let types: Vec<String> = args.iter().map(ToString::to_string).collect();
            Failure::worker(
                name,
                format!(
                    "UDF '{name}' cannot take arguments ({}): {why}",
                    types.join(", ")
                ),
            )
        })
    }

    /// Run every UDF over the batch in `body`; return the result as one IPC stream.
    pub fn run_batch(&mut self, body: Buffer) -> Result<Vec<u8>, Failure> {
        let started = Instant::now();
        let batch = self.decode(body)?;
        self.metrics.codec_nanos += elapsed_nanos(started);
        self.run_decoded(&batch)
    }

    /// Run every UDF over a batch the transport decoded and [`Execution::check_batch`] accepted;
    /// return the result as one IPC stream.
    pub fn run_decoded(&mut self, batch: &RecordBatch) -> Result<Vec<u8>, Failure> {
        let udfs = self.udfs.as_ref().expect("run_decoded after load");
        let mut columns = Vec::with_capacity(udfs.len());
        for udf in udfs {
            let args: Vec<ArrayRef> = udf
                .offsets
                .iter()
                .map(|&at| batch.column(at).clone())
                .collect();
            let started = Instant::now();
            let result = call_user(&udf.udf, &udf.name, &args);
            self.metrics.udf_nanos += elapsed_nanos(started);
            columns.push(check_result(udf, result?, batch.num_rows())?);
        }
        let started = Instant::now();
        let result = RecordBatch::try_new(self.result_schema.clone(), columns).map_err(|err| {
            Failure::worker("", format!("cannot assemble the result batch: {err}"))
        })?;
        let encoded = ipc::encode_batch(&result)
            .map_err(|err| Failure::worker("", format!("cannot encode the result batch: {err}")))?;
        let first = udfs.first().map_or("", |udf| udf.name.as_str());
        check_result_size(&result.schema(), encoded.len(), MAX_RESULT_BYTES, first)?;
        self.metrics.codec_nanos += elapsed_nanos(started);
        self.metrics.batches += 1;
        self.metrics.rows_in += batch.num_rows() as u64;
        self.metrics.rows_out += result.num_rows() as u64;
        Ok(encoded)
    }

    /// Read the batch and check it against the input schema and the argument offsets.
    fn decode(&self, body: Buffer) -> Result<RecordBatch, Failure> {
        let batch = ipc::decode_batch(body).map_err(Failure::Protocol)?;
        self.check_batch(&batch)?;
        Ok(batch)
    }

    /// Check a batch against the input schema and the argument offsets.
    pub fn check_batch(&self, batch: &RecordBatch) -> Result<(), Failure> {
        if let Some(expected) = &self.input_schema {
            let same = batch.schema().fields().len() == expected.fields().len()
                && batch
                    .schema()
                    .fields()
                    .iter()
                    .zip(expected.fields())
                    .all(|(a, b)| a.data_type() == b.data_type());
            if !same {
                return Err(Failure::Protocol(format!(
                    "a Data batch has column types ({}), but Init.input_schema has ({})",
                    types_text(&batch.schema()),
                    types_text(expected)
                )));
            }
        }
        for udf in self.udfs.iter().flatten() {
            if udf.offsets.iter().any(|&at| at >= batch.num_columns()) {
                return Err(Failure::Protocol(format!(
                    "UDF '{}' has argument offsets {:?}, but the Data batch has {} columns",
                    udf.name,
                    udf.offsets,
                    batch.num_columns()
                )));
            }
        }
        Ok(())
    }
}

/// Accept the eval types a scalar Rust function can serve.
fn check_eval_type(definition: &proto::UdfDefinition) -> Result<(), Failure> {
    let eval = definition.eval_type;
    if eval == proto::EvalType::Unspecified as i32 || eval == proto::EvalType::ScalarArrow as i32 {
        return Ok(());
    }
    let shown = proto::EvalType::try_from(eval).map_or(eval.to_string(), |e| {
        format!("{} ({eval})", e.as_str_name())
    });
    Err(Failure::worker(
        &definition.name,
        format!(
            "UDF '{}' has eval_type {shown}; this Rust worker runs SCALAR_ARROW (or unspecified) only",
            definition.name
        ),
    ))
}

/// Reject a return type that differs from the one the engine declared.
fn check_declared(name: &str, declared: &[u8], resolved: &DataType) -> Result<(), Failure> {
    let schema = ipc::decode_schema(declared).map_err(|err| {
        Failure::Protocol(format!(
            "return_type of UDF '{name}' is not an Arrow IPC schema message: {err}"
        ))
    })?;
    if schema.fields().len() != 1 {
        return Err(Failure::Protocol(format!(
            "return_type of UDF '{name}' must be a schema with one field, it has {}",
            schema.fields().len()
        )));
    }
    let declared = schema.field(0).data_type();
    if declared != resolved {
        return Err(Failure::worker(
            name,
            format!(
                "UDF '{name}' returns {resolved}, but the engine declared return type {declared}"
            ),
        ));
    }
    Ok(())
}

/// Check a UDF's result: the declared type and one value per input row.
fn check_result(udf: &BoundUdf, array: ArrayRef, rows: usize) -> Result<ArrayRef, Failure> {
    if array.data_type() != &udf.return_type {
        return Err(Failure::worker(
            &udf.name,
            format!(
                "UDF '{}' returned an array of type {}, but its return type is {}",
                udf.name,
                array.data_type(),
                udf.return_type
            ),
        ));
    }
    if array.len() != rows {
        return Err(Failure::worker(
            &udf.name,
            format!(
                "UDF '{}' returned {} values for a batch of {rows} rows",
                udf.name,
                array.len()
            ),
        ));
    }
    Ok(array)
}

thread_local! {
    /// Where the last panic on this thread happened, recorded by [`install_panic_hook`].
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Record where panics happen (for `UserError.traceback`), then let the default hook print them
/// to stderr, which is the worker's log.
pub fn install_panic_hook() {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
        PANIC_LOCATION.with(|cell| *cell.borrow_mut() = location);
        previous(info);
    }));
}

/// Call user code; an `Err` or a panic becomes a `UserError` naming the UDF.
fn call_user(udf: &ScalarUdf, name: &str, args: &[ArrayRef]) -> Result<ArrayRef, Failure> {
    match panic::catch_unwind(AssertUnwindSafe(|| udf.call(args))) {
        Ok(Ok(array)) => Ok(array),
        Ok(Err(err)) => Err(user_failure(name, &err)),
        Err(payload) => {
            let location = PANIC_LOCATION.with(|cell| cell.borrow_mut().take());
            Err(Failure::User {
                udf: name.to_owned(),
                class: "panic".to_owned(),
                message: panic_message(payload.as_ref()),
                traceback: location
                    .map(|at| format!("panicked at {at}"))
                    .unwrap_or_default(),
            })
        }
    }
}

/// Describe an error a UDF returned: its class, message and chain of causes.
fn user_failure(name: &str, err: &BoxError) -> Failure {
    let class = if let Some(own) = err.downcast_ref::<UdfError>() {
        own.class.clone()
    } else if err.is::<arrow_schema::ArrowError>() {
        "ArrowError".to_owned()
    } else if err.is::<std::io::Error>() {
        "std::io::Error".to_owned()
    } else {
        "Error".to_owned()
    };
    let mut traceback = String::new();
    let mut source = err.source();
    while let Some(cause) = source {
        traceback.push_str(&format!("caused by: {cause}\n"));
        source = cause.source();
    }
    Failure::User {
        udf: name.to_owned(),
        class,
        message: err.to_string(),
        traceback,
    }
}

/// The text a panic was raised with.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

fn elapsed_nanos(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

fn types_text(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.data_type().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuse a result of `size` bytes that cannot go in one message, saying its size and `limit`
/// (a transport would cut it off, and over gRPC the engine would see only a failed call).
pub fn check_result_size(
    schema: &Schema,
    size: usize,
    limit: usize,
    udf: &str,
) -> Result<(), Failure> {
    if size <= limit {
        return Ok(());
    }
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|field| format!("'{}'", field.name()))
        .collect();
    Err(Failure::worker(
        udf,
        format!(
            "the result of one batch ({}) is {} in Arrow IPC form, over the limit of {} for one \
             message to the engine; give the UDF smaller batches (quiver run --batch-rows or \
             --batch-bytes)",
            columns.join(", "),
            bytes_text(size),
            bytes_text(limit)
        ),
    ))
}

/// Say a byte count in GiB and exactly: `2.00 GiB (2,147,488,048 bytes)`.
fn bytes_text(size: usize) -> String {
    let digits = size.to_string();
    let mut grouped = String::new();
    for (at, digit) in digits.chars().enumerate() {
        if at > 0 && (digits.len() - at) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!(
        "{:.2} GiB ({grouped} bytes)",
        size as f64 / f64::from(1u32 << 30)
    )
}
