//! `DataRequest.data` as Spark's dialect allows it (docs/spark-protocol.md, section 3): an Arrow
//! IPC stream of one or more record batches, or a bare encapsulated record-batch message that
//! is read against `Init.input_schema`.

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::MessageHeader;

/// The record batches of one `DataRequest.data`, in order; `input_schema` is the encapsulated
/// schema message of `Init.input_schema`.
pub fn decode_batches(input_schema: &Buffer, body: Buffer) -> Result<Vec<RecordBatch>, String> {
    let mut decoder = StreamDecoder::new();
    if !starts_with_schema(&body)? {
        // A bare record-batch message: the stream's schema is Init's.
        let mut schema = input_schema.clone();
        decoder
            .decode(&mut schema)
            .map_err(|err| format!("Init.input_schema cannot start an Arrow IPC stream: {err}"))?;
    }
    let batches = crate::ipc::decode_stream(decoder, body, "DataRequest.data")?;
    if batches.is_empty() {
        return Err("DataRequest.data holds no record batch".to_owned());
    }
    Ok(batches)
}

/// Whether the first IPC message of `body` is a schema message (a stream) rather than a record
/// batch or dictionary batch (a bare message).
fn starts_with_schema(body: &[u8]) -> Result<bool, String> {
    let word = |at: usize| -> Option<u32> {
        body.get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("four bytes")))
    };
    // An encapsulated message: 0xFFFFFFFF, the metadata's length, the metadata (a flatbuffer).
    // The pre-1.0 form has no 0xFFFFFFFF.
    let (length, start) = match word(0) {
        Some(0xFFFF_FFFF) => (word(4), 8),
        first => (first, 4),
    };
    let header = length
        .and_then(|length| body.get(start..start + length as usize))
        .ok_or("DataRequest.data is too short for an Arrow IPC message")?;
    let message = arrow_ipc::root_as_message(header).map_err(|err| {
        format!("DataRequest.data does not start with an Arrow IPC message: {err}")
    })?;
    Ok(message.header_type() == MessageHeader::Schema)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array};
    use arrow_ipc::writer::StreamWriter;

    fn batch(values: Vec<i64>) -> RecordBatch {
        let x: ArrayRef = Arc::new(Int64Array::from(values));
        RecordBatch::try_from_iter([("x", x)]).unwrap()
    }

    fn schema_message(batch: &RecordBatch) -> Buffer {
        Buffer::from_vec(crate::ipc::encode_schema(&batch.schema()).unwrap())
    }

    #[test]
    fn a_stream_of_several_batches_is_that_many_batches() {
        let (a, b) = (batch(vec![1, 2]), batch(vec![3]));
        let mut writer = StreamWriter::try_new(Vec::new(), &a.schema()).unwrap();
        writer.write(&a).unwrap();
        writer.write(&b).unwrap();
        let body = Buffer::from_vec(writer.into_inner().unwrap());
        let batches = decode_batches(&schema_message(&a), body).unwrap();
        assert_eq!(batches, vec![a, b]);
    }

    #[test]
    fn a_bare_record_batch_message_is_read_against_the_input_schema() {
        let a = batch(vec![7, 8, 9]);
        let schema = schema_message(&a);
        // A stream is the schema message, the batch's message, the end-of-stream marker.
        let stream = crate::ipc::encode_batch(&a).unwrap();
        let bare = stream[schema.len()..stream.len() - 8].to_vec();
        let batches = decode_batches(&schema, Buffer::from_vec(bare)).unwrap();
        assert_eq!(batches, vec![a]);
    }

    #[test]
    fn what_is_not_a_batch_is_refused_with_the_reason() {
        let a = batch(vec![1]);
        let schema = schema_message(&a);
        let err = decode_batches(&schema, Buffer::from_vec(b"not".to_vec())).unwrap_err();
        assert!(err.contains("too short"), "{err}");
        let err = decode_batches(&schema, Buffer::from_vec(vec![0xAB; 64])).unwrap_err();
        assert!(err.contains("Arrow IPC"), "{err}");
        let only_schema = StreamWriter::try_new(Vec::new(), &a.schema())
            .unwrap()
            .into_inner()
            .unwrap();
        let err = decode_batches(&schema, Buffer::from_vec(only_schema)).unwrap_err();
        assert!(err.contains("no record batch"), "{err}");
    }
}
