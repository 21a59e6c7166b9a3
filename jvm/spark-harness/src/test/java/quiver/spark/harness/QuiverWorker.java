package quiver.spark.harness;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/** The three quiver workers the harness drives, as a Spark user would configure them. */
enum QuiverWorker {
  PYTHON("python/ref") {
    @Override
    List<String> command() {
      return List.of(root().resolve(".venv/bin/python").toString(), "-m", "quiver.worker");
    }

    @Override
    String reference(String function) {
      return "quiver.conformance_udfs:" + function;
    }

    @Override
    Optional<String> slowFunctionReference() {
      return Optional.of(slowUdfs() + ":sleep_then_identity");
    }

    @Override
    Optional<String> pausingFunctionReference() {
      return Optional.of(slowUdfs() + ":pause_then_identity");
    }

    private Path slowUdfs() {
      return Path.of(System.getProperty("user.dir"), "src/test/resources/slow_udfs.py");
    }
  },
  CPP("symbol") {
    @Override
    List<String> command() {
      return List.of(
          root().resolve("build/cpp/examples/udf_worker/quiver_example_udf_worker").toString());
    }
  },
  RUST("symbol") {
    @Override
    List<String> command() {
      return List.of(root().resolve("rust/target/release/examples/udfs").toString());
    }
  };

  /** The payload format quiver's docs/spark-protocol.md §2 names for this worker. */
  final String payloadFormat;

  QuiverWorker(String payloadFormat) {
    this.payloadFormat = payloadFormat;
  }

  /** The worker's command before the dialect flag (Spark adds --id and --connection). */
  abstract List<String> command();

  /** The runner of the DirectWorker: the command plus {@code --dialect spark}. */
  List<String> runner() {
    List<String> runner = new ArrayList<>(command());
    runner.add("--dialect");
    runner.add("spark");
    return runner;
  }

  /** The payload naming one of the four conformance functions every quiver worker offers. */
  String reference(String function) {
    return function;
  }

  /** A function that takes longer than any test waits, where the worker has one. */
  Optional<String> slowFunctionReference() {
    return Optional.empty();
  }

  /** A function that takes about half a second per batch, where the worker has one. */
  Optional<String> pausingFunctionReference() {
    return Optional.empty();
  }

  Map<String, String> environment() {
    return Map.of();
  }

  /** Why this worker cannot run here (its binary is not built), or empty when it can. */
  Optional<String> missing() {
    Path executable = Path.of(command().get(0));
    if (!Files.isExecutable(executable)) {
      return Optional.of(name() + " worker skipped: " + executable + " is not built "
          + "(scripts/setup.sh --tests builds it)");
    }
    return Optional.empty();
  }

  static Path root() {
    return Path.of(System.getProperty("quiver.root", "../..")).toAbsolutePath().normalize();
  }
}
