//! Arrow IPC as quiver uses it: schema messages (`Init.input_schema`, `UdfDefinition.return_type`,
//! `InitResponse.result_schema`) and one-batch streams (`Data` bodies).

use std::io::Cursor;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::reader::{StreamDecoder, StreamReader};
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{ArrowError, Schema, SchemaRef};

/// Encode `schema` as one encapsulated IPC schema message (continuation marker, length,
/// flatbuffer, padding; no end-of-stream marker): what pyarrow's `Schema.serialize()` and
/// Arrow C++'s `ipc::SerializeSchema` write.
pub fn encode_schema(schema: &Schema) -> Result<Vec<u8>, ArrowError> {
    let writer = StreamWriter::try_new(Vec::new(), schema)?;
    // The writer has written the schema message and nothing else yet.
    Ok(writer.get_ref().clone())
}

/// Read an encapsulated IPC schema message (a stream that may end right after it).
pub fn decode_schema(bytes: &[u8]) -> Result<SchemaRef, ArrowError> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    Ok(reader.schema())
}

/// Read the one record batch of a `Data` body (schema, dictionaries, one batch, end-of-stream).
///
/// The batch's arrays are slices of `body`, not copies, where `body` is aligned (frame bodies are
/// read into 64-byte aligned buffers).
pub fn decode_batch(body: Buffer) -> Result<RecordBatch, String> {
    let mut batches = decode_stream(StreamDecoder::new(), body, "a Data body")?;
    if batches.len() != 1 {
        return Err(format!(
            "a Data body must hold exactly one record batch, but it holds {}",
            batches.len()
        ));
    }
    Ok(batches.pop().expect("one batch"))
}

/// The record batches of the IPC stream `body`, in order, read by `decoder` (which may have read
/// the stream's schema already); `what` names `body` in the errors.
pub(crate) fn decode_stream(
    mut decoder: StreamDecoder,
    body: Buffer,
    what: &str,
) -> Result<Vec<RecordBatch>, String> {
    let mut rest = body;
    let mut batches = Vec::with_capacity(1);
    while !rest.is_empty() {
        let before = rest.len();
        match decoder.decode(&mut rest) {
            Ok(Some(batch)) => batches.push(batch),
            Ok(None) if rest.len() == before => break, // the end-of-stream marker
            Ok(None) => {}
            Err(err) => return Err(format!("{what} is not a valid Arrow IPC stream: {err}")),
        }
    }
    decoder
        .finish()
        .map_err(|err| format!("{what} is not a complete Arrow IPC stream: {err}"))?;
    Ok(batches)
}

/// Write `batch` as one self-contained IPC stream (schema, batch, end-of-stream).
pub fn encode_batch(batch: &RecordBatch) -> Result<Vec<u8>, ArrowError> {
    let estimate = batch.get_array_memory_size() + 1024;
    let mut writer = StreamWriter::try_new(Vec::with_capacity(estimate), &batch.schema())?;
    writer.write(batch)?;
    writer.into_inner()
}

/// A schema shared by reference.
pub fn shared(schema: Schema) -> SchemaRef {
    Arc::new(schema)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{ArrayRef, Int64Array, StringArray};
    use arrow_schema::{DataType, Field};

    fn sample() -> RecordBatch {
        let x: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, Some(3)]));
        let s: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), Some("b"), None]));
        RecordBatch::try_from_iter([("x", x), ("s", s)]).unwrap()
    }

    #[test]
    fn schema_message_is_encapsulated_without_end_of_stream() {
        let schema = Schema::new(vec![Field::new("x", DataType::Int64, true)]);
        let bytes = encode_schema(&schema).unwrap();
        assert_eq!(&bytes[0..4], &[0xff; 4], "continuation marker");
        let length = i32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
        assert_eq!(bytes.len(), 8 + length, "nothing after the message");
        assert_eq!(bytes.len() % 8, 0);
        assert_eq!(*decode_schema(&bytes).unwrap(), schema);
    }

    #[test]
    fn batches_round_trip_through_one_stream() {
        let batch = sample();
        let bytes = encode_batch(&batch).unwrap();
        assert_eq!(
            &bytes[bytes.len() - 8..],
            &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]
        );
        assert_eq!(decode_batch(Buffer::from_vec(bytes)).unwrap(), batch);
    }

    #[test]
    fn bad_streams_are_refused() {
        let err = decode_batch(Buffer::from_vec(b"not arrow at all".to_vec())).unwrap_err();
        assert!(err.contains("Arrow IPC"), "{err}");
        let mut two = StreamWriter::try_new(Vec::new(), &sample().schema()).unwrap();
        two.write(&sample()).unwrap();
        two.write(&sample()).unwrap();
        let err = decode_batch(Buffer::from_vec(two.into_inner().unwrap())).unwrap_err();
        assert!(err.contains("holds 2"), "{err}");
        let bytes = encode_batch(&sample()).unwrap();
        let cut = Buffer::from_vec(bytes[..bytes.len() - 20].to_vec());
        assert!(decode_batch(cut).is_err());
    }
}
