"""Class UDFs in a real worker process: setup once per worker, reuse, constructor
arguments, the three flavours, setup errors at Init and close() at shutdown."""

from __future__ import annotations

import json

import cloudpickle
import pyarrow as pa
import pytest
from engine_harness import EngineHarness, batches_xy, ref_udf

import quiver
from quiver._proto import pb


def class_udf(name: str, cls: str, offsets: list[int], **kwargs: object) -> pb.UdfDefinition:
    definition = ref_udf(name, f"classes.py:{cls}", offsets)
    if kwargs:
        definition.constructor_args = json.dumps(kwargs)
    return definition


def test_instance_is_built_once_per_worker_and_reused_across_executions(
    engine: EngineHarness,
) -> None:
    batches = batches_xy(count=3)
    udfs = [class_udf("plus", "Offset", [1], amount=10), class_udf("setups", "SetupCount", [1])]
    for _ in range(3):  # three executions (partitions) on one worker
        results, _ = engine.run(udfs, batches)
        for batch, result in zip(batches, results, strict=True):
            assert result.column("plus").to_pylist() == [
                v + 10 for v in batch.column(1).to_pylist()
            ]
            # Offset(amount=10) is the one setup (SetupCount has no __init__), ever.
            assert set(result.column("setups").to_pylist()) == {1}
    engine.send(shutdown=pb.Shutdown())
    engine.expect("shutdown")
    assert engine.wait() == 0
    assert "Offset(amount=10) closed after 9 calls" in engine.log()


def test_other_constructor_arguments_make_another_instance(engine: EngineHarness) -> None:
    batches = batches_xy(count=1)
    udfs = [
        class_udf("one", "Offset", [1], amount=1),
        class_udf("two", "Offset", [1], amount=2),
        class_udf("default", "Offset", [1]),
    ]
    (result,), _ = engine.run(udfs, batches)
    y = batches[0].column(1).to_pylist()
    assert result.column("one").to_pylist() == [v + 1 for v in y]
    assert result.column("two").to_pylist() == [v + 2 for v in y]
    assert result.column("default").to_pylist() == [v + 1 for v in y]


def test_pandas_and_iterator_class_udfs(engine: EngineHarness) -> None:
    batches = batches_xy(count=3)
    udfs = [
        class_udf("loud", "Suffix", [2], suffix="?!"),
        class_udf("running", "RunningTotal", [1], start=100),
    ]
    results, _ = engine.run(udfs, batches)
    total = 100
    for batch, result in zip(batches, results, strict=True):
        assert result.column("loud").to_pylist() == [
            None if s is None else s + "?!" for s in batch.column(2).to_pylist()
        ]
        expected = []
        for value in batch.column(1).to_pylist():
            total += value
            expected.append(total)
        assert result.column("running").to_pylist() == expected


def test_setup_error_is_a_worker_error_at_init_naming_the_class(engine: EngineHarness) -> None:
    schema = batches_xy(count=1)[0].schema
    answer = engine.init([class_udf("m", "BrokenSetup", [0], model_path="/nope/model.bin")], schema)
    assert answer.kind == "error"
    error = answer.message.error
    assert error.WhichOneof("kind") == "worker_error"
    assert "BrokenSetup" in error.worker_error.message
    assert "FileNotFoundError" in error.worker_error.message
    assert "/nope/model.bin" in error.worker_error.message


def test_constructor_arguments_the_class_does_not_take(engine: EngineHarness) -> None:
    schema = batches_xy(count=1)[0].schema
    answer = engine.init([class_udf("m", "Offset", [0], amout=3)], schema)
    assert answer.kind == "error"
    message = answer.message.error.worker_error.message
    assert "Offset" in message and "amout" in message


def test_constructor_arguments_on_a_function_are_refused(engine: EngineHarness) -> None:
    definition = ref_udf("f", "arith.py:identity", [0])
    definition.constructor_args = json.dumps({"amount": 1})
    answer = engine.init([definition], batches_xy(count=1)[0].schema)
    assert answer.kind == "error"
    assert "only class UDFs take them" in answer.message.error.worker_error.message


@pytest.mark.parametrize("text", ["{not json", "[1, 2]"])
def test_malformed_constructor_arguments(engine: EngineHarness, text: str) -> None:
    definition = ref_udf("m", "classes.py:Offset", [0])
    definition.constructor_args = text
    answer = engine.init([definition], batches_xy(count=1)[0].schema)
    assert answer.kind == "error"
    assert "constructor_args" in answer.message.error.worker_error.message


def test_close_error_is_logged_at_shutdown(engine: EngineHarness) -> None:
    engine.run([class_udf("b", "BrokenClose", [0])], batches_xy(count=1))
    engine.send(shutdown=pb.Shutdown())
    engine.expect("shutdown")
    assert engine.wait() == 0
    log = engine.log()
    assert "class UDF BrokenClose: close() raised RuntimeError: cannot flush the model cache" in log


def test_close_runs_on_sigterm(engine: EngineHarness) -> None:
    engine.run([class_udf("plus", "Offset", [0], amount=5)], batches_xy(count=2))
    engine.terminate()
    assert engine.wait() == 0
    assert "Offset(amount=5) closed after 2 calls" in engine.log()


def test_pickled_class_bound_with_arguments_is_built_once(engine: EngineHarness) -> None:
    @quiver.udf(returns="int64")
    class Scale:
        def __init__(self, factor: int) -> None:
            print(f"Scale set up with factor {factor}")
            self.factor = factor

        def __call__(self, x: pa.Array) -> pa.Array:
            return pa.array([(v or 0) * self.factor for v in x.to_pylist()], pa.int64())

    definition = pb.UdfDefinition(
        name="scaled",
        payload_format="python/cloudpickle",
        payload=cloudpickle.dumps(Scale.bind(factor=3)),
        argument_offsets=[1],
    )
    batches = batches_xy(count=2)
    for _ in range(2):  # a new unpickling per execution, one instance per worker
        results, _ = engine.run([definition], batches)
        for batch, result in zip(batches, results, strict=True):
            want = [v * 3 for v in batch.column(1).to_pylist()]
            assert result.column("scaled").to_pylist() == want
    assert engine.log().count("Scale set up with factor 3") == 1


def test_bind_is_for_classes_only() -> None:
    @quiver.udf(returns="int64")
    def f(x: pa.Array) -> pa.Array:
        return x

    with pytest.raises(TypeError, match="only class UDFs"):
        f.bind(a=1)


def test_a_class_without_call_is_refused() -> None:
    with pytest.raises(TypeError, match="has no __call__"):

        @quiver.udf(returns="int64")
        class NoCall:
            pass
