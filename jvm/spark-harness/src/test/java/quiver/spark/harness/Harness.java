package quiver.spark.harness;

import com.google.protobuf.ByteString;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;
import org.apache.spark.udf.worker.DataRequest;
import org.apache.spark.udf.worker.DataResponse;
import org.apache.spark.udf.worker.Init;
import org.apache.spark.udf.worker.UDFWorkerDataFormat;
import org.apache.spark.udf.worker.UdfPayload;
import org.apache.spark.udf.worker.core.WorkerSecurityScope;
import org.apache.spark.udf.worker.core.WorkerSession;
import scala.Option;
import scala.collection.Iterator;
import scala.jdk.javaapi.CollectionConverters;

/**
 * One quiver worker behind Spark's released DirectWorkerDispatcher, and the Arrow batches and
 * Init messages the tests send it.
 */
final class Harness implements AutoCloseable {
  static final ArrowType INT64 = new ArrowType.Int(64, true);
  static final ArrowType UTF8 = ArrowType.Utf8.INSTANCE;

  final QuiverWorker worker;
  final BufferAllocator allocator = new RootAllocator();
  final RecordingLogger logger = new RecordingLogger();
  final QuiverWorkerDispatcher dispatcher;

  Harness(QuiverWorker worker, WorkerTransport transport) {
    this.worker = worker;
    this.dispatcher = new QuiverWorkerDispatcher(
        WorkerSpecs.direct(worker.runner(), worker.environment(), transport), logger);
  }

  /** Spark's createSession: spawns a worker, waits until it is ready, opens a session. */
  GrpcWorkerSession newSession() {
    WorkerSession session = dispatcher.createSession(Option.<WorkerSecurityScope>empty());
    return (GrpcWorkerSession) session;
  }

  Process processOf(GrpcWorkerSession session) {
    return dispatcher.process(session.connection().address());
  }

  /** Init for one of the conformance functions over one column of {@code type}. */
  Init init(String function, ArrowType argument, ArrowType result) {
    return init(worker.reference(function), function, argument, result);
  }

  Init init(String reference, String name, ArrowType argument, ArrowType result) {
    byte[] payload = reference.getBytes(StandardCharsets.UTF_8);
    CRC32 crc = new CRC32();
    crc.update(payload);
    return Init.newBuilder()
        .setProtocolVersion(1)
        .setDataFormat(UDFWorkerDataFormat.ARROW)
        .setUdf(UdfPayload.newBuilder()
            .setFormat(worker.payloadFormat)
            .setPayload(ByteString.copyFrom(payload))
            .setPayloadSize(payload.length)
            .setPayloadCrc32((int) crc.getValue())
            .setName(name))
        .setInputSchema(ByteString.copyFrom(ArrowIpc.schemaMessage(schema("x", argument))))
        .setOutputSchema(ByteString.copyFrom(ArrowIpc.schemaMessage(schema(name, result))))
        .putTaskContext("partition_id", "0")
        .putTaskContext("task_attempt_id", "1")
        .setTimezone("UTC")
        .build();
  }

  static Schema schema(String name, ArrowType type) {
    return new Schema(List.of(new Field(name, FieldType.nullable(type), null)));
  }

  /** One int64 batch of column x, as Arrow Java's stream writer writes it. */
  DataRequest int64Batch(Long... values) {
    try (BigIntVector x = new BigIntVector("x", allocator)) {
      x.allocateNew(values.length);
      for (int i = 0; i < values.length; i++) {
        if (values[i] == null) {
          x.setNull(i);
        } else {
          x.set(i, values[i]);
        }
      }
      x.setValueCount(values.length);
      return request(x);
    }
  }

  /** int64 batch of {@code rows} rows: 0, 1, 2, ... */
  DataRequest int64Range(long start, int rows) {
    Long[] values = new Long[rows];
    for (int i = 0; i < rows; i++) {
      values[i] = start + i;
    }
    return int64Batch(values);
  }

  DataRequest stringBatch(String... values) {
    try (VarCharVector x = new VarCharVector("x", allocator)) {
      x.allocateNew(values.length);
      for (int i = 0; i < values.length; i++) {
        if (values[i] == null) {
          x.setNull(i);
        } else {
          x.setSafe(i, values[i].getBytes(StandardCharsets.UTF_8));
        }
      }
      x.setValueCount(values.length);
      return request(x);
    }
  }

  private static DataRequest request(org.apache.arrow.vector.FieldVector column) {
    try (VectorSchemaRoot root = VectorSchemaRoot.of(column)) {
      return DataRequest.newBuilder().setData(ByteString.copyFrom(ArrowIpc.stream(root))).build();
    }
  }

  static Iterator<DataRequest> scalaIterator(List<DataRequest> batches) {
    return CollectionConverters.asScala(batches.iterator());
  }

  static Iterator<DataRequest> scalaIterator(java.util.Iterator<DataRequest> batches) {
    return CollectionConverters.asScala(batches);
  }

  ArrowIpc.Batch decode(DataResponse response) {
    return ArrowIpc.read(response.getData().toByteArray(), allocator);
  }

  /** Every DataResponse of a session's output, decoded. */
  List<ArrowIpc.Batch> drain(Iterator<DataResponse> output) {
    List<ArrowIpc.Batch> batches = new ArrayList<>();
    while (output.hasNext()) {
      batches.add(decode(output.next()));
    }
    return batches;
  }

  @Override
  public void close() {
    dispatcher.close();
    allocator.close();
  }
}
