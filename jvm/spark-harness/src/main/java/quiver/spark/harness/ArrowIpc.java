package quiver.spark.harness;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.Channels;
import java.util.ArrayList;
import java.util.List;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.ipc.ArrowStreamReader;
import org.apache.arrow.vector.ipc.ArrowStreamWriter;
import org.apache.arrow.vector.ipc.WriteChannel;
import org.apache.arrow.vector.ipc.message.MessageSerializer;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.Schema;

/**
 * Arrow IPC as docs/spark-protocol.md §2–3 puts it on the wire, written and read with Arrow
 * Java: schemas as one encapsulated schema message, batches as one IPC stream each.
 */
public final class ArrowIpc {
  private ArrowIpc() {}

  /** One encapsulated Arrow IPC schema message (Init.input_schema, Init.output_schema). */
  public static byte[] schemaMessage(Schema schema) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try {
      MessageSerializer.serialize(new WriteChannel(Channels.newChannel(out)), schema);
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out.toByteArray();
  }

  /** One Arrow IPC stream: the schema, the batch in {@code root}, end-of-stream. */
  public static byte[] stream(VectorSchemaRoot root) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try (ArrowStreamWriter writer = new ArrowStreamWriter(root, null, out)) {
      writer.start();
      writer.writeBatch();
      writer.end();
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
    return out.toByteArray();
  }

  /** A decoded DataResponse: its schema's fields and each column's values. */
  public record Batch(List<Field> fields, List<List<Object>> columns, int rows) {
    public List<Object> column(int index) {
      return columns.get(index);
    }
  }

  /** Decodes an Arrow IPC stream (a DataResponse); every batch's rows, appended. */
  public static Batch read(byte[] bytes, BufferAllocator allocator) {
    try (ArrowStreamReader reader =
        new ArrowStreamReader(new ByteArrayInputStream(bytes), allocator)) {
      VectorSchemaRoot root = reader.getVectorSchemaRoot();
      List<List<Object>> columns = new ArrayList<>();
      for (int i = 0; i < root.getFieldVectors().size(); i++) {
        columns.add(new ArrayList<>());
      }
      int rows = 0;
      while (reader.loadNextBatch()) {
        rows += root.getRowCount();
        for (int c = 0; c < columns.size(); c++) {
          FieldVector vector = root.getVector(c);
          for (int r = 0; r < root.getRowCount(); r++) {
            Object value = vector.getObject(r);
            // Strings come back as Arrow's Text; compare as Java strings.
            columns.get(c).add(value instanceof org.apache.arrow.vector.util.Text
                ? value.toString() : value);
          }
        }
      }
      return new Batch(root.getSchema().getFields(), columns, rows);
    } catch (IOException e) {
      throw new UncheckedIOException("a DataResponse is not an Arrow IPC stream", e);
    }
  }

  /** Reads one encapsulated schema message (InitResponse.data). */
  public static Schema readSchemaMessage(byte[] bytes) {
    try {
      return MessageSerializer.deserializeSchema(
          new org.apache.arrow.vector.ipc.ReadChannel(
              Channels.newChannel(new ByteArrayInputStream(bytes))));
    } catch (IOException e) {
      throw new UncheckedIOException("InitResponse.data is not an Arrow IPC schema message", e);
    }
  }
}
