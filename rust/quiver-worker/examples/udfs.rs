//! An example quiver worker with five UDFs: identity, upper, add_one, count_even and raise_error.
//!
//! Build with `cargo build --release --example udfs`; the engine starts
//! `rust/target/release/examples/udfs` and names a UDF with payload format "symbol".

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{ArrayRef, StringArray};
use arrow_schema::DataType;
use quiver_worker::{Registry, Returns, UdfError, UdfResult};

/// Returns its argument unchanged (any type).
fn identity(args: &[ArrayRef]) -> UdfResult {
    Ok(args[0].clone())
}

/// Upper-cases a string column; nulls stay null.
fn upper(args: &[ArrayRef]) -> UdfResult {
    let strings = args[0].as_string::<i32>();
    let result: StringArray = strings.iter().map(|s| s.map(str::to_uppercase)).collect();
    Ok(Arc::new(result))
}

/// Adds one to an int64 or float64 column, keeping its type.
fn add_one(args: &[ArrayRef]) -> UdfResult {
    Ok(match args[0].data_type() {
        DataType::Int64 => Arc::new(
            args[0]
                .as_primitive::<Int64Type>()
                .unary::<_, Int64Type>(|v| v.wrapping_add(1)),
        ),
        _ => Arc::new(
            args[0]
                .as_primitive::<Float64Type>()
                .unary::<_, Float64Type>(|v| v + 1.0),
        ),
    })
}

/// Returns its int64 argument unchanged and counts its even values in the UDF's own counter
/// `even_values` (docs/metrics.md).
fn count_even(args: &[ArrayRef]) -> UdfResult {
    let values = args[0].as_primitive::<Int64Type>();
    let even = values.iter().flatten().filter(|v| v % 2 == 0).count();
    quiver_worker::counter("even_values")?.add(even as u64)?;
    Ok(args[0].clone())
}

/// Fails on every batch: shows how an error reaches the engine.
fn raise_error(_args: &[ArrayRef]) -> UdfResult {
    Err(UdfError::new("ValueError", "raise_error always fails").into())
}

/// add_one takes int64 or float64; anything else is refused at Init.
fn numeric(args: &[DataType]) -> Result<DataType, String> {
    match args {
        [t @ (DataType::Int64 | DataType::Float64)] => Ok(t.clone()),
        other => Err(format!(
            "add_one takes one int64 or float64 argument, got {other:?}"
        )),
    }
}

fn main() {
    let registry = Registry::new()
        .scalar("identity", Returns::SameAsArg(0), identity)
        .scalar("upper", DataType::Utf8, upper)
        .scalar("add_one", Returns::rule(numeric), add_one)
        .scalar("count_even", DataType::Int64, count_even)
        .scalar("raise_error", Returns::SameAsArg(0), raise_error);
    quiver_worker::serve(registry)
}
