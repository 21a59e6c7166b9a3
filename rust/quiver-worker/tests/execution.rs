//! One execution of the Rust SDK, from `Init` to results, as a worker author relies on it:
//! symbols bound to registered functions, payload chunks, results checked against the
//! declared types and lengths, and each failure of the kind the protocol names.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch};
use arrow_buffer::Buffer;
use arrow_schema::{DataType, Field, Schema};
use quiver_worker::execution::{
    check_result_size, Execution, Failure, MAX_RESULT_BYTES, PROTOCOL_VERSION,
};
use quiver_worker::{ipc, proto, Registry, Returns};

fn registry() -> Registry {
    Registry::new()
        .scalar("identity", Returns::SameAsArg(0), |a: &[ArrayRef]| {
            Ok(a[0].clone())
        })
        .scalar("plus_one", DataType::Int64, |a: &[ArrayRef]| {
            let x = a[0].as_any().downcast_ref::<Int64Array>().unwrap();
            Ok(Arc::new(x.iter().map(|v| v.map(|v| v + 1)).collect::<Int64Array>()) as ArrayRef)
        })
        .scalar("short", DataType::Int64, |_: &[ArrayRef]| {
            Ok(Arc::new(Int64Array::from(vec![1])) as ArrayRef)
        })
        .scalar("panics", DataType::Int64, |_: &[ArrayRef]| panic!("boom"))
}

fn schema() -> Schema {
    Schema::new(vec![Field::new("x", DataType::Int64, true)])
}

fn udf(name: &str, symbol: &str, offsets: Vec<i32>) -> proto::UdfDefinition {
    proto::UdfDefinition {
        name: name.into(),
        payload_format: "symbol".into(),
        payload: symbol.as_bytes().to_vec(),
        argument_offsets: offsets,
        ..Default::default()
    }
}

fn init(udfs: Vec<proto::UdfDefinition>) -> proto::Init {
    proto::Init {
        protocol_version: PROTOCOL_VERSION,
        data_format: proto::DataFormat::ArrowIpcStream as i32,
        udfs,
        input_schema: ipc::encode_schema(&schema()).unwrap(),
        ..Default::default()
    }
}

fn batch(values: Vec<Option<i64>>) -> RecordBatch {
    RecordBatch::try_new(
        Arc::new(schema()),
        vec![Arc::new(Int64Array::from(values)) as ArrayRef],
    )
    .unwrap()
}

fn loaded(udfs: Vec<proto::UdfDefinition>) -> Execution {
    let mut execution = Execution::new(init(udfs));
    execution.load(&registry()).expect("Init accepted");
    execution
}

#[test]
fn results_come_in_the_order_of_the_udfs_and_are_counted() {
    let mut execution = loaded(vec![
        udf("same", "identity", vec![0]),
        udf("next", "plus_one", vec![0]),
    ]);
    let result = execution
        .run_decoded(&batch(vec![Some(1), None, Some(41)]))
        .unwrap();
    let result = ipc::decode_batch(Buffer::from(result)).unwrap();
    assert_eq!(result.schema().field(0).name(), "same");
    assert_eq!(result.schema().field(1).name(), "next");
    let next = result
        .column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap();
    assert_eq!(
        next.iter().collect::<Vec<_>>(),
        vec![Some(2), None, Some(42)]
    );
    assert_eq!(
        (execution.metrics.batches, execution.metrics.rows_in),
        (1, 3)
    );
}

#[test]
fn payload_chunks_complete_the_symbol_and_no_more_are_taken() {
    let mut first = udf("next", "plus_", vec![0]);
    first.payload = b"plus_".to_vec();
    let mut message = init(vec![first]);
    message.payload_chunk_count = 1;
    let mut execution = Execution::new(message);
    assert_eq!(execution.chunks_left(), 1);
    let chunk = |data: &[u8]| proto::PayloadChunk {
        udf_index: 0,
        data: data.to_vec(),
        ..Default::default()
    };
    execution.add_payload_chunk(chunk(b"one")).unwrap();
    execution
        .load(&registry())
        .expect("the chunked symbol names plus_one");
    assert!(matches!(
        execution.add_payload_chunk(chunk(b"x")),
        Err(Failure::Protocol(_))
    ));
}

#[test]
fn an_unknown_symbol_is_a_worker_error_naming_the_udf() {
    let mut execution = Execution::new(init(vec![udf("f", "no_such_function", vec![0])]));
    match execution.load(&registry()) {
        Err(Failure::Worker { udf, message }) => {
            assert_eq!(udf, "f");
            assert!(message.contains("no_such_function"), "{message}");
        }
        other => panic!("expected a worker error, got {other:?}"),
    }
}

#[test]
fn an_offset_outside_the_input_schema_is_refused_at_init() {
    let mut execution = Execution::new(init(vec![udf("f", "identity", vec![3])]));
    let failure = execution
        .load(&registry())
        .expect_err("offset 3 of 1 column");
    assert!(failure.to_string().contains('3'), "{failure}");
}

#[test]
fn a_result_of_the_wrong_length_is_a_worker_error_and_a_panic_a_user_error() {
    let mut execution = loaded(vec![udf("s", "short", vec![0])]);
    match execution.run_decoded(&batch(vec![Some(1), Some(2)])) {
        Err(Failure::Worker { udf, .. }) => assert_eq!(udf, "s"),
        other => panic!("expected a worker error, got {other:?}"),
    }
    quiver_worker::execution::install_panic_hook();
    let mut execution = loaded(vec![udf("p", "panics", vec![0])]);
    match execution.run_decoded(&batch(vec![Some(1)])) {
        Err(Failure::User { udf, message, .. }) => {
            assert_eq!(udf, "p");
            assert!(message.contains("boom"), "{message}");
        }
        other => panic!("expected a user error, got {other:?}"),
    }
}

#[test]
fn a_result_over_the_message_limit_is_a_worker_error_with_its_size() {
    let schema = Schema::new(vec![Field::new("loud", DataType::Utf8, true)]);
    assert!(check_result_size(&schema, 4096, 4096, "shout").is_ok());
    match check_result_size(&schema, 2_147_488_048, MAX_RESULT_BYTES, "shout") {
        Err(Failure::Worker { udf, message }) => {
            assert_eq!(udf, "shout");
            assert!(
                message.contains("('loud') is 2.00 GiB (2,147,488,048 bytes)"),
                "{message}"
            );
            assert!(
                message.contains("limit of 2.00 GiB (2,147,418,112 bytes)"),
                "{message}"
            );
            assert!(message.contains("smaller batches"), "{message}");
        }
        other => panic!("expected a worker error, got {other:?}"),
    }
}
