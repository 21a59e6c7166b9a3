"""Arrow and Spark schemas for ``quiver.spark.map``: the Arrow schema Spark hands a task, the
Spark schema of the result (from the types the UDFs declare), and the Arrow schema each
result batch is given to Spark in."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from quiver.errors import InvalidInput


def _arrow_options(spark: Any) -> dict[str, Any]:
    """The options Spark converts its types to Arrow with (as in mapInArrow)."""
    conf = spark.conf
    return {
        "timezone": conf.get("spark.sql.session.timeZone"),
        "prefers_large_types": conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false")
        == "true",
    }


def arrow_input_schema(df: Any) -> pa.Schema:
    """The Arrow schema of the batches ``mapInArrow`` gives a task of ``df``."""
    from pyspark.sql.pandas.types import to_arrow_type

    options = _arrow_options(df.sparkSession)
    fields = []
    for field in df.schema:
        try:
            arrow_type = to_arrow_type(field.dataType, **options)
        except Exception as error:
            raise InvalidInput(
                f"column {field.name!r} of the DataFrame is {field.dataType.simpleString()}, "
                f"which Spark does not hand to Python as Arrow ({error}); leave it out with "
                "df.drop(...) or cast it before quiver.spark.map"
            ) from None
        fields.append(pa.field(field.name, arrow_type, nullable=field.nullable))
    return pa.schema(fields)


def spark_schema(result: pa.Schema, udf_names: list[str]) -> Any:
    """The Spark schema of the result; a UDF type Spark has no equivalent of is an error
    that names the UDF, raised before the job starts. Every column is nullable."""
    from pyspark.sql.pandas.types import from_arrow_type
    from pyspark.sql.types import StructField, StructType

    fields = []
    for field in result:
        try:
            spark_type = from_arrow_type(field.type)
        except Exception:
            what = (
                f"UDF {field.name!r} returns"
                if field.name in udf_names
                else (f"column {field.name!r} is")
            )
            raise InvalidInput(
                f"{what} {field.type}, which has no Spark type; declare a type Spark has "
                "(int8-int64, float32/64, bool, string, binary, date32, timestamp, decimal128, "
                "list, struct, map) or cast in the UDF (docs/spark.md, Types)"
            ) from None
        fields.append(StructField(field.name, spark_type, nullable=True))
    return StructType(fields)


def arrow_output_schema(schema: Any, spark: Any) -> pa.Schema:
    """The Arrow schema Spark reads the result batches of a task in."""
    from pyspark.sql.pandas.types import to_arrow_schema

    return to_arrow_schema(schema, **_arrow_options(spark))
