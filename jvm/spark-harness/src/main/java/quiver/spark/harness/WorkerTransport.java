package quiver.spark.harness;

import io.grpc.ManagedChannel;
import io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder;
import io.grpc.netty.shaded.io.netty.channel.EventLoopGroup;
import io.grpc.netty.shaded.io.netty.channel.epoll.Epoll;
import io.grpc.netty.shaded.io.netty.channel.epoll.EpollDomainSocketChannel;
import io.grpc.netty.shaded.io.netty.channel.unix.DomainSocketAddress;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import org.apache.spark.udf.worker.UDFWorkerSpecification;
import org.apache.spark.udf.worker.WorkerConnectionSpec;

/**
 * The two endpoints a {@code DirectWorker} may expose (worker_spec.proto's
 * {@code WorkerConnectionSpec}): what the engine passes as {@code --connection}, and how it
 * connects there.
 */
public enum WorkerTransport {
  /** A Unix socket: {@code --connection /dir/ID.sock}; gRPC over Netty's epoll domain sockets. */
  UNIX_SOCKET {
    @Override
    String newAddress(String workerId, Path socketDir) {
      return socketDir.resolve(workerId + ".sock").toString();
    }

    @Override
    ManagedChannel connect(String address, EventLoopGroup epollGroup) {
      if (!Epoll.isAvailable()) {
        throw new IllegalStateException(
            "Unix sockets need Netty's epoll transport, which failed to load here",
            Epoll.unavailabilityCause());
      }
      return configure(NettyChannelBuilder.forAddress(new DomainSocketAddress(address)))
          .eventLoopGroup(epollGroup)
          .channelType(EpollDomainSocketChannel.class)
          .overrideAuthority("localhost")
          .build();
    }
  },

  /** Loopback TCP: {@code --connection PORT}, a port free when the worker is started. */
  TCP {
    @Override
    String newAddress(String workerId, Path socketDir) {
      try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
        return Integer.toString(probe.getLocalPort());
      } catch (IOException e) {
        throw new UncheckedIOException("no free loopback port for a worker", e);
      }
    }

    @Override
    ManagedChannel connect(String address, EventLoopGroup epollGroup) {
      return configure(NettyChannelBuilder.forAddress("127.0.0.1", Integer.parseInt(address)))
          .build();
    }
  };

  /**
   * gRPC asks every channel for SO_KEEPALIVE, which a Unix socket does not have; Netty warns
   * about it once per connection. Kept referenced so the level is not lost to GC.
   */
  private static final java.util.logging.Logger BOOTSTRAP_LOG = quietBootstrapLog();

  private static java.util.logging.Logger quietBootstrapLog() {
    java.util.logging.Logger log =
        java.util.logging.Logger.getLogger("io.grpc.netty.shaded.io.netty.bootstrap");
    log.setLevel(java.util.logging.Level.SEVERE);
    return log;
  }

  /** Larger than any batch the tests send (16 MiB and its Arrow framing). */
  private static final int MAX_MESSAGE_BYTES = 64 << 20;

  abstract String newAddress(String workerId, Path socketDir);

  abstract ManagedChannel connect(String address, EventLoopGroup epollGroup);

  private static NettyChannelBuilder configure(NettyChannelBuilder builder) {
    BOOTSTRAP_LOG.getName();
    return builder.usePlaintext().maxInboundMessageSize(MAX_MESSAGE_BYTES);
  }

  /** The transport a worker specification names; Spark's spec has exactly these two. */
  static WorkerTransport of(UDFWorkerSpecification spec) {
    WorkerConnectionSpec connection = spec.getDirect().getProperties().getConnection();
    switch (connection.getTransportCase()) {
      case UNIX_DOMAIN_SOCKET:
        return UNIX_SOCKET;
      case TCP:
        return TCP;
      default:
        throw new IllegalArgumentException(
            "the worker specification names no connection (unix_domain_socket or tcp)");
    }
  }
}
