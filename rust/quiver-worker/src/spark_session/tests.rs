//! Tests of one Spark `Execute` stream, driven through a recording sink.

use super::*;
use crate::ipc;
use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use spark::execution_error::Kind;

/// Records what the session sends; `cancel_next` makes the next look-ahead see a Cancel.
#[derive(Default)]
struct Recorder {
    sent: Vec<Response>,
    cancel_next: bool,
}

impl Sink for Recorder {
    fn send(&mut self, response: spark::UdfResponse) -> io::Result<()> {
        self.sent.push(response.response.expect("a response"));
        Ok(())
    }
    fn cancel_ahead(&mut self) -> bool {
        std::mem::take(&mut self.cancel_next)
    }
}

impl Recorder {
    fn take(&mut self) -> Vec<Response> {
        std::mem::take(&mut self.sent)
    }

    /// The control answers sent since the last call, without the data answers.
    fn controls(&mut self) -> Vec<Out> {
        self.take()
            .into_iter()
            .filter_map(|r| match r {
                Response::Control(c) => c.control,
                Response::Data(_) => None,
            })
            .collect()
    }
}

/// The one element of `items`.
fn one<T: std::fmt::Debug>(mut items: Vec<T>) -> T {
    assert_eq!(items.len(), 1, "expected one answer, got {items:?}");
    items.pop().unwrap()
}

fn registry() -> Arc<Registry> {
    Arc::new(
        Registry::new()
            .scalar(
                "identity",
                crate::Returns::SameAsArg(0),
                |a: &[ArrayRef]| Ok(a[0].clone()),
            )
            .scalar("fails", DataType::Int64, |_: &[ArrayRef]| {
                Err(crate::UdfError::new("ValueError", "no luck").into())
            })
            .scalar(
                "counts_rows",
                crate::Returns::SameAsArg(0),
                |a: &[ArrayRef]| {
                    crate::counter("spark_test_rows")?.add(a[0].len() as u64)?;
                    Ok(a[0].clone())
                },
            ),
    )
}

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("x", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
    ])
}

fn batch(rows: i64) -> RecordBatch {
    let x: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
    let s: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..rows).map(|i| format!("v{i}")),
    ));
    RecordBatch::try_new(Arc::new(schema()), vec![x, s]).unwrap()
}

fn init(symbol: &str) -> spark::Init {
    spark::Init {
        protocol_version: Some(1),
        data_format: spark::UdfWorkerDataFormat::Arrow as i32,
        udf: Some(spark::UdfPayload {
            payload: symbol.as_bytes().to_vec(),
            format: "symbol".into(),
            name: Some("out".into()),
            ..Default::default()
        }),
        input_schema: Some(ipc::encode_schema(&schema()).unwrap()),
        ..Default::default()
    }
}

fn request(control: In) -> spark::UdfRequest {
    spark::UdfRequest {
        request: Some(Request::Control(spark::UdfControlRequest {
            control: Some(control),
        })),
    }
}

fn data(bytes: Vec<u8>) -> spark::UdfRequest {
    spark::UdfRequest {
        request: Some(Request::Data(spark::DataRequest { data: bytes.into() })),
    }
}

fn chunk(bytes: &str, last: bool) -> spark::UdfRequest {
    request(In::Payload(spark::PayloadChunk {
        data: bytes.as_bytes().to_vec(),
        last: last.then_some(true),
    }))
}

fn session() -> (Session, Recorder) {
    (
        Session::new(registry(), Arc::new(Totals::default())),
        Recorder::default(),
    )
}

fn started(init: spark::Init) -> (Session, Recorder) {
    let (mut session, mut sink) = session();
    session.handle(request(In::Init(init)), &mut sink).unwrap();
    (session, sink)
}

/// The one `InitResponse.error` sent since the last call.
fn init_error(sink: &mut Recorder) -> Kind {
    match sink.controls().as_slice() {
        [Out::Init(spark::InitResponse {
            data: None,
            error: Some(spark::ExecutionError { kind: Some(kind) }),
        })] => kind.clone(),
        other => panic!("expected one failed InitResponse, got {other:?}"),
    }
}

/// The one `ErrorResponse` sent since the last call.
fn data_error(sink: &mut Recorder) -> Kind {
    match sink.controls().as_slice() {
        [Out::Error(spark::ErrorResponse {
            error: Some(spark::ExecutionError { kind: Some(kind) }),
        })] => kind.clone(),
        other => panic!("expected one ErrorResponse, got {other:?}"),
    }
}

fn cancel(session: &mut Session, sink: &mut Recorder) -> spark::CancelResponse {
    session
        .handle(request(In::Cancel(spark::Cancel::default())), sink)
        .unwrap();
    match sink.controls().as_slice() {
        [Out::Cancel(response)] => response.clone(),
        other => panic!("expected one CancelResponse, got {other:?}"),
    }
}

#[test]
fn the_udfs_own_counters_are_counter_keys_of_finish_metrics() {
    let (mut session, mut sink) = started(init("counts_rows"));
    one(sink.controls());
    for rows in [3, 1000] {
        session
            .handle(data(ipc::encode_batch(&batch(rows)).unwrap()), &mut sink)
            .unwrap();
        one(sink.take());
    }
    session
        .handle(request(In::Finish(spark::Finish {})), &mut sink)
        .unwrap();
    let Out::Finish(finish) = one(sink.controls()) else {
        panic!("no FinishResponse")
    };
    assert_eq!(
        finish
            .metrics
            .get("counter.spark_test_rows")
            .map(String::as_str),
        Some("1003"),
        "{:?}",
        finish.metrics
    );
}

#[test]
fn init_answers_the_result_schema_and_every_batch_is_answered_in_order() {
    let (mut session, mut sink) = started(init("identity"));
    let Out::Init(response) = one(sink.controls()) else {
        panic!("no InitResponse")
    };
    assert!(response.error.is_none());
    let result_schema = ipc::decode_schema(&response.data.unwrap()).unwrap();
    assert_eq!(
        result_schema.fields().to_vec(),
        vec![Arc::new(Field::new("out", DataType::Int64, true))]
    );
    for rows in [3, 0, 1000] {
        session
            .handle(data(ipc::encode_batch(&batch(rows)).unwrap()), &mut sink)
            .unwrap();
        let Response::Data(answer) = one(sink.take()) else {
            panic!("not one DataResponse")
        };
        let result = ipc::decode_batch(Buffer::from(answer.data)).unwrap();
        assert_eq!(result.num_rows() as i64, rows);
        assert_eq!(*result.schema(), *result_schema);
    }
    session
        .handle(request(In::Finish(spark::Finish {})), &mut sink)
        .unwrap();
    let Out::Finish(finish) = one(sink.controls()) else {
        panic!("no FinishResponse")
    };
    assert!(finish.error.is_none());
    let metric = |key: &str| finish.metrics[key].parse::<u64>().unwrap();
    assert_eq!(
        (metric("rows_in"), metric("rows_out")),
        (1003, 1003),
        "{:?}",
        finish.metrics
    );
    assert_eq!((metric("batches_in"), metric("batches_out")), (3, 3));
    assert!(metric("bytes_in") > 0 && metric("bytes_out") > 0);
    assert!(metric("peak_rss_bytes") > 0);
    for key in ["udf_time_ns", "codec_time_ns"] {
        assert!(finish.metrics.contains_key(key), "{key}");
    }
    assert!(session.is_done());
}

#[test]
fn a_stream_of_two_batches_gets_two_answers_and_a_bare_message_one() {
    let (mut session, mut sink) = started(init("identity"));
    sink.take();
    let mut writer =
        arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &Arc::new(schema())).unwrap();
    writer.write(&batch(2)).unwrap();
    writer.write(&batch(5)).unwrap();
    session
        .handle(data(writer.into_inner().unwrap()), &mut sink)
        .unwrap();
    let rows: Vec<usize> = sink
        .take()
        .into_iter()
        .map(|r| match r {
            Response::Data(d) => ipc::decode_batch(Buffer::from(d.data)).unwrap().num_rows(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(rows, vec![2, 5]);
    let stream = ipc::encode_batch(&batch(4)).unwrap();
    let schema_len = ipc::encode_schema(&schema()).unwrap().len();
    let bare = stream[schema_len..stream.len() - 8].to_vec();
    session.handle(data(bare), &mut sink).unwrap();
    assert!(matches!(sink.take().as_slice(), [Response::Data(_)]));
}

#[test]
fn a_chunked_payload_is_checked_and_answered_after_the_last_chunk() {
    let mut chunked = init("");
    chunked.is_chunking_payload = Some(true);
    let udf = chunked.udf.as_mut().unwrap();
    udf.payload = b"ide".to_vec();
    udf.payload_size = Some(8);
    udf.payload_crc32 = Some(crc32(b"identity"));
    let (mut session, mut sink) = started(chunked.clone());
    session.handle(chunk("nt", false), &mut sink).unwrap();
    session.handle(chunk("", false), &mut sink).unwrap();
    assert!(
        sink.take().is_empty(),
        "no InitResponse before the last chunk"
    );
    session.handle(chunk("ity", true), &mut sink).unwrap();
    let Out::Init(response) = one(sink.controls()) else {
        panic!("no InitResponse")
    };
    assert!(response.error.is_none() && response.data.is_some());

    // A chunk with other bytes: the size matches, the CRC-32 does not.
    let (mut session, mut sink) = started(chunked.clone());
    session.handle(chunk("ntiTY", true), &mut sink).unwrap();
    let Kind::Protocol(error) = init_error(&mut sink) else {
        panic!()
    };
    assert!(error.message.contains("payload_crc32"), "{}", error.message);
    assert!(cancel(&mut session, &mut sink).error.is_none());

    let (mut session, mut sink) = started(chunked);
    session.handle(chunk("ntity!", true), &mut sink).unwrap();
    let Kind::Protocol(error) = init_error(&mut sink) else {
        panic!()
    };
    assert!(
        error.message.contains("payload_size is 8"),
        "{}",
        error.message
    );
}

#[test]
fn a_refused_init_waits_for_the_last_chunk_too() {
    let mut future = init("identity");
    future.protocol_version = Some(99);
    future.is_chunking_payload = Some(true);
    let (mut session, mut sink) = started(future);
    assert!(sink.take().is_empty());
    session.handle(chunk("", true), &mut sink).unwrap();
    let Kind::Protocol(error) = init_error(&mut sink) else {
        panic!()
    };
    assert!(
        error.message.contains("protocol_version 99"),
        "{}",
        error.message
    );
    session
        .handle(data(ipc::encode_batch(&batch(1)).unwrap()), &mut sink)
        .unwrap();
    assert!(
        sink.take().is_empty(),
        "no DataResponse after a failed Init"
    );
    cancel(&mut session, &mut sink);
    assert!(session.is_done());
}

#[test]
fn init_fields_the_worker_cannot_serve_are_refused_with_their_kind() {
    let mut cases: Vec<(spark::Init, &str, &str)> = Vec::new();
    let mut unspecified = init("identity");
    unspecified.data_format = 0;
    cases.push((unspecified, "protocol", "data_format 0"));
    let mut no_schema = init("identity");
    no_schema.input_schema = None;
    cases.push((no_schema, "protocol", "input_schema"));
    let mut array_parameters = init("identity");
    array_parameters.parameters = Some(b"[1, 2]".to_vec());
    cases.push((array_parameters, "protocol", "JSON object"));
    let mut not_json = init("identity");
    not_json.parameters = Some(b"{nope".to_vec());
    cases.push((not_json, "protocol", "not UTF-8 JSON"));
    let mut python = init("identity");
    python.udf.as_mut().unwrap().format = "python/ref".into();
    cases.push((python, "worker", "'python/ref'"));
    let mut pandas = init("identity");
    pandas.udf.as_mut().unwrap().eval_type = Some("SCALAR_PANDAS".into());
    cases.push((pandas, "worker", "SCALAR_PANDAS"));
    let mut declared = init("identity");
    declared.output_schema = Some(
        ipc::encode_schema(&Schema::new(vec![Field::new("o", DataType::Utf8, true)])).unwrap(),
    );
    cases.push((declared, "worker", "declared return type Utf8"));
    cases.push((init("hash_name"), "worker", "'hash_name'"));
    for (init, kind, words) in cases {
        let (_, mut sink) = started(init);
        let (found, message) = match init_error(&mut sink) {
            Kind::Protocol(e) => ("protocol", e.message),
            Kind::Worker(e) => ("worker", e.message),
            Kind::User(e) => ("user", e.message),
        };
        assert_eq!(found, kind, "{message}");
        assert!(message.contains(words), "{message} lacks {words}");
    }
    let mut accepted = init("identity");
    accepted.parameters = Some(br#"{"constructor_args": {}}"#.to_vec());
    accepted.udf.as_mut().unwrap().eval_type = Some("SCALAR_ARROW".into());
    accepted.udf.as_mut().unwrap().name = None;
    let (_, mut sink) = started(accepted);
    let Out::Init(response) = one(sink.controls()) else {
        panic!()
    };
    let schema = ipc::decode_schema(&response.data.unwrap()).unwrap();
    assert_eq!(schema.field(0).name(), "identity", "unnamed: the symbol");
}

#[test]
fn a_udf_error_follows_the_answers_before_it_and_cancel_ends_the_stream() {
    let (mut session, mut sink) = started(init("fails"));
    sink.take();
    session
        .handle(data(ipc::encode_batch(&batch(3)).unwrap()), &mut sink)
        .unwrap();
    let Kind::User(error) = data_error(&mut sink) else {
        panic!()
    };
    assert_eq!(
        (error.message.as_str(), error.error_class.as_deref()),
        ("no luck", Some("ValueError"))
    );
    session
        .handle(data(ipc::encode_batch(&batch(3)).unwrap()), &mut sink)
        .unwrap();
    session
        .handle(request(In::Finish(spark::Finish {})), &mut sink)
        .unwrap();
    assert!(
        sink.take().is_empty(),
        "after an error: nothing until Cancel"
    );
    let response = cancel(&mut session, &mut sink);
    assert!(response.error.is_none());
    assert_eq!(response.metrics["batches_in"], "1");
    assert!(session.is_done());
}

#[test]
fn cancel_before_init_or_while_chunks_arrive_is_answered_alone() {
    let (mut session, mut sink) = session();
    cancel(&mut session, &mut sink);
    let mut chunked = init("identity");
    chunked.is_chunking_payload = Some(true);
    let (mut session, mut sink) = started(chunked);
    session.handle(chunk("x", false), &mut sink).unwrap();
    cancel(&mut session, &mut sink);
}

#[test]
fn messages_out_of_order_are_protocol_errors_where_the_proto_says() {
    let (mut session, mut sink) = session();
    session
        .handle(data(ipc::encode_batch(&batch(1)).unwrap()), &mut sink)
        .unwrap();
    let Kind::Protocol(error) = init_error(&mut sink) else {
        panic!()
    };
    assert!(
        error.message.contains("before InitResponse"),
        "{}",
        error.message
    );

    let (mut session, mut sink) = started(init("identity"));
    sink.take();
    session
        .handle(request(In::Init(init("identity"))), &mut sink)
        .unwrap();
    let Kind::Protocol(error) = data_error(&mut sink) else {
        panic!()
    };
    assert!(error.message.contains("second Init"), "{}", error.message);
    cancel(&mut session, &mut sink);

    let (mut session, mut sink) = started(init("identity"));
    sink.take();
    session.handle(chunk("x", true), &mut sink).unwrap();
    let Kind::Protocol(error) = data_error(&mut sink) else {
        panic!()
    };
    assert!(
        error.message.contains("after InitResponse"),
        "{}",
        error.message
    );

    let (mut session, mut sink) = started(init("identity"));
    sink.take();
    session
        .handle(data(b"not arrow".to_vec()), &mut sink)
        .unwrap();
    assert!(matches!(data_error(&mut sink), Kind::Protocol(_)));

    let (mut session, mut sink) = started(init("identity"));
    sink.take();
    let other = Schema::new(vec![Field::new("y", DataType::Utf8, true)]);
    let s: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
    let wrong = RecordBatch::try_new(Arc::new(other), vec![s]).unwrap();
    session
        .handle(data(ipc::encode_batch(&wrong).unwrap()), &mut sink)
        .unwrap();
    assert!(matches!(data_error(&mut sink), Kind::Protocol(_)));
}

#[test]
fn a_half_close_without_finish_is_a_cancel_with_a_protocol_error() {
    let (mut session, mut sink) = started(init("identity"));
    sink.take();
    session.requests_ended(&mut sink).unwrap();
    let Out::Cancel(response) = one(sink.controls()) else {
        panic!()
    };
    let Some(Kind::Protocol(error)) = response.error.and_then(|e| e.kind) else {
        panic!("no ProtocolError")
    };
    assert!(error.message.contains("without Finish or Cancel"));

    // After FinishResponse the stream is over: a half-close sends nothing.
    let (mut session, mut sink) = started(init("identity"));
    session
        .handle(request(In::Finish(spark::Finish {})), &mut sink)
        .unwrap();
    sink.take();
    session.requests_ended(&mut sink).unwrap();
    assert!(sink.take().is_empty());
}

#[test]
fn cancel_after_finish_is_answered_when_finish_was_not() {
    let (mut session, mut sink) = started(init("identity"));
    sink.take();
    sink.cancel_next = true; // a Cancel already waits behind the Finish
    session
        .handle(request(In::Finish(spark::Finish {})), &mut sink)
        .unwrap();
    assert!(sink.take().is_empty());
    assert_eq!(session.stage(), Stage::Finishing);
    cancel(&mut session, &mut sink);
    assert!(session.is_done());
}

#[test]
fn a_stop_from_inside_the_worker_is_a_worker_error_then_cancel_response() {
    let (mut session, mut sink) = started(init("identity"));
    sink.take();
    session.stop(SHUTTING_DOWN, &mut sink).unwrap();
    let controls = sink.controls();
    let [Out::Error(error), Out::Cancel(_)] = controls.as_slice() else {
        panic!("{controls:?}")
    };
    let Some(Kind::Worker(worker)) = error.error.clone().and_then(|e| e.kind) else {
        panic!()
    };
    assert_eq!(worker.message, SHUTTING_DOWN);

    // A stream that failed already gets only its terminator.
    let (mut session, mut sink) = started(init("hash_name"));
    sink.take();
    session.stop(SHUTTING_DOWN, &mut sink).unwrap();
    let Out::Cancel(response) = one(sink.controls()) else {
        panic!()
    };
    assert!(response.error.is_none());

    // Before InitResponse: the WorkerError rides on CancelResponse.
    let (mut session, mut sink) = super::tests::session();
    session.stop(SHUTTING_DOWN, &mut sink).unwrap();
    let Out::Cancel(response) = one(sink.controls()) else {
        panic!()
    };
    assert!(matches!(
        response.error.and_then(|e| e.kind),
        Some(Kind::Worker(_))
    ));
}

#[test]
fn batches_with_a_cancel_behind_them_are_dropped_and_totals_add_up() {
    let totals = Arc::new(Totals::default());
    let mut session = Session::new(registry(), totals.clone());
    let mut sink = Recorder::default();
    session
        .handle(request(In::Init(init("identity"))), &mut sink)
        .unwrap();
    session
        .handle(data(ipc::encode_batch(&batch(7)).unwrap()), &mut sink)
        .unwrap();
    sink.cancel_next = true;
    session
        .handle(data(ipc::encode_batch(&batch(5)).unwrap()), &mut sink)
        .unwrap();
    assert_eq!(sink.take().len(), 2, "InitResponse and one DataResponse");
    let totals = totals.to_metrics();
    assert_eq!(
        (totals["rows_in"].as_str(), totals["batches_in"].as_str()),
        ("7", "2")
    );
}
