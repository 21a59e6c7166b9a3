"""A result over what one message may carry (2 GiB) is reported as what it is, on any transport.

The run fails with the result's size, the limit, the UDF and what to do (smaller batches) - not
as a lost worker or a cancelled gRPC call. The UDF's result (tests/e2e/udfs/oversized.py) is a
buffer never written, so the test costs little memory.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from quiver_e2e import assert_failed, spec, write_table


@pytest.mark.parametrize("transport", ["uds", "shm", "grpc", "grpc+tcp"])
def test_a_result_over_the_message_limit_says_its_size_and_what_to_do(quiver, tmp_path, transport):
    source = write_table(pa.table({"x": pa.array([1], pa.int64())}), tmp_path / "in.parquet")
    out = tmp_path / "out.arrow"
    result = quiver(
        "run", source, "--udf", spec("big", "oversized", "huge", "x"), "--transport", transport,
        "-q", "-o", out,
    )  # fmt: skip
    assert_failed(result, out, "2.00 GiB (2,147,488,048 bytes)")
    message = result.stderr
    assert "over the limit of 2.00 GiB" in message, message
    assert "UDF 'big'" in message, message
    assert "--batch-bytes" in message, message
    for misleading in ("worker lost", "CANCELLED", "still running", "connection failed"):
        assert misleading not in message, message
