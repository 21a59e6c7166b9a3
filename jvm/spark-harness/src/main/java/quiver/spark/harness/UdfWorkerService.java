package quiver.spark.harness;

import io.grpc.MethodDescriptor;
import io.grpc.protobuf.ProtoUtils;
import org.apache.spark.udf.worker.UdfRequest;
import org.apache.spark.udf.worker.UdfResponse;
import org.apache.spark.udf.worker.WorkerRequest;
import org.apache.spark.udf.worker.WorkerResponse;

/**
 * The two methods of {@code org.apache.spark.udf.worker.UdfWorker} (udf_service.proto).
 *
 * <p>Spark's released proto jar carries the messages but no gRPC stubs, so the method descriptors
 * are written here from the service definition: two methods do not justify running protoc and
 * its grpc-java plugin at build time.
 */
final class UdfWorkerService {
  static final String SERVICE_NAME = "org.apache.spark.udf.worker.UdfWorker";

  static final MethodDescriptor<UdfRequest, UdfResponse> EXECUTE =
      MethodDescriptor.<UdfRequest, UdfResponse>newBuilder()
          .setType(MethodDescriptor.MethodType.BIDI_STREAMING)
          .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE_NAME, "Execute"))
          .setRequestMarshaller(ProtoUtils.marshaller(UdfRequest.getDefaultInstance()))
          .setResponseMarshaller(ProtoUtils.marshaller(UdfResponse.getDefaultInstance()))
          .build();

  static final MethodDescriptor<WorkerRequest, WorkerResponse> MANAGE =
      MethodDescriptor.<WorkerRequest, WorkerResponse>newBuilder()
          .setType(MethodDescriptor.MethodType.UNARY)
          .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE_NAME, "Manage"))
          .setRequestMarshaller(ProtoUtils.marshaller(WorkerRequest.getDefaultInstance()))
          .setResponseMarshaller(ProtoUtils.marshaller(WorkerResponse.getDefaultInstance()))
          .build();

  private UdfWorkerService() {}
}
