//! What a UDF author writes against: a [`Registry`] of named scalar functions over Arrow arrays.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_schema::DataType;

/// Any error a UDF returns; `?` converts most error types into it, and so does `.into()` on a
/// `&str` or `String`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a scalar UDF returns for one batch: one array with as many rows as its arguments.
pub type UdfResult = Result<ArrayRef, BoxError>;

type ScalarFn = dyn Fn(&[ArrayRef]) -> UdfResult + Send + Sync;
type ReturnRule = dyn Fn(&[DataType]) -> Result<DataType, String> + Send + Sync;

/// The return type of a UDF, settled at `Init` from the types of its arguments.
#[derive(Clone)]
pub enum Returns {
    /// Always this type.
    Type(DataType),
    /// The type of argument `i` (e.g. an identity or a numeric function that keeps its type).
    SameAsArg(usize),
    /// Computed from the argument types; an `Err` refuses the execution at `Init` with a
    /// `WorkerError` carrying its message (e.g. "expects int64 or float64, got utf8").
    Rule(Arc<ReturnRule>),
}

impl Returns {
    /// A return type computed from the argument types (see [`Returns::Rule`]).
    pub fn rule<F>(rule: F) -> Self
    where
        F: Fn(&[DataType]) -> Result<DataType, String> + Send + Sync + 'static,
    {
        Returns::Rule(Arc::new(rule))
    }

    /// Settle the return type for these argument types.
    pub fn resolve(&self, args: &[DataType]) -> Result<DataType, String> {
        match self {
            Returns::Type(data_type) => Ok(data_type.clone()),
            Returns::SameAsArg(index) => args.get(*index).cloned().ok_or_else(|| {
                format!(
                    "returns the type of argument {index}, but it has {} argument(s)",
                    args.len()
                )
            }),
            Returns::Rule(rule) => rule(args),
        }
    }
}

impl From<DataType> for Returns {
    fn from(data_type: DataType) -> Self {
        Returns::Type(data_type)
    }
}

impl fmt::Debug for Returns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Returns::Type(t) => write!(f, "Type({t})"),
            Returns::SameAsArg(i) => write!(f, "SameAsArg({i})"),
            Returns::Rule(_) => write!(f, "Rule(..)"),
        }
    }
}

/// An error with a class name of the UDF's choosing (reported as `UserError.error_class`).
#[derive(Debug, Clone)]
pub struct UdfError {
    /// e.g. "ValueError"; other errors are reported with a class derived from their type.
    pub class: String,
    /// What went wrong, for the person reading the engine's error.
    pub message: String,
}

impl UdfError {
    /// An error of class `class`.
    pub fn new(class: impl Into<String>, message: impl Into<String>) -> Self {
        UdfError {
            class: class.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for UdfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UdfError {}

/// One registered scalar UDF: N arrays in, one array of the same length out, per batch.
#[derive(Clone)]
pub struct ScalarUdf {
    pub(crate) name: String,
    pub(crate) returns: Returns,
    pub(crate) func: Arc<ScalarFn>,
}

impl ScalarUdf {
    /// The name the engine refers to this UDF by (the `symbol` payload).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Call the function on one batch's arguments.
    pub fn call(&self, args: &[ArrayRef]) -> UdfResult {
        (self.func)(args)
    }
}

/// The UDFs a worker offers, by name. Built once in `main`, then handed to [`crate::serve`].
///
/// ```
/// use std::sync::Arc;
/// use arrow_array::{ArrayRef, Int64Array};
/// use arrow_schema::DataType;
/// use quiver_worker::Registry;
///
/// let registry = Registry::new()
///     .scalar("identity", quiver_worker::Returns::SameAsArg(0), |args: &[ArrayRef]| {
///         Ok(args[0].clone())
///     })
///     .scalar("forty_two", DataType::Int64, |args: &[ArrayRef]| {
///         Ok(Arc::new(Int64Array::from(vec![42; args[0].len()])) as ArrayRef)
///     });
/// assert!(registry.get("identity").is_some());
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    udfs: HashMap<String, ScalarUdf>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a scalar UDF under `name`; a second registration of a name replaces the first.
    pub fn scalar<F>(mut self, name: &str, returns: impl Into<Returns>, func: F) -> Self
    where
        F: Fn(&[ArrayRef]) -> UdfResult + Send + Sync + 'static,
    {
        let udf = ScalarUdf {
            name: name.to_owned(),
            returns: returns.into(),
            func: Arc::new(func),
        };
        self.udfs.insert(name.to_owned(), udf);
        self
    }

    /// The UDF registered under `name`.
    pub fn get(&self, name: &str) -> Option<&ScalarUdf> {
        self.udfs.get(name)
    }

    /// The registered names, sorted (quoted in the error for an unknown name).
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.udfs.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}
