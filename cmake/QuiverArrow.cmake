# Finds Arrow C++: a system install when CMake finds one, else the libraries and
# headers bundled in the pyarrow wheel of the project environment (QUIVER_PYTHON).
# Either way the result is the targets quiver::arrow, quiver::arrow_compute,
# quiver::parquet, quiver::arrow_dataset and quiver::arrow_acero.

find_package(Arrow CONFIG QUIET)
if(Arrow_FOUND)
  find_package(Parquet CONFIG REQUIRED)
  find_package(ArrowDataset CONFIG REQUIRED)
  find_package(ArrowAcero CONFIG REQUIRED)
  find_package(ArrowCompute CONFIG QUIET)
  message(STATUS "quiver: Arrow ${Arrow_VERSION} from the system")
  add_library(quiver::arrow ALIAS Arrow::arrow_shared)
  add_library(quiver::parquet ALIAS Parquet::parquet_shared)
  add_library(quiver::arrow_dataset ALIAS ArrowDataset::arrow_dataset_shared)
  add_library(quiver::arrow_acero ALIAS ArrowAcero::arrow_acero_shared)
  if(TARGET ArrowCompute::arrow_compute_shared)
    add_library(quiver::arrow_compute ALIAS ArrowCompute::arrow_compute_shared)
  else()
    add_library(quiver::arrow_compute ALIAS Arrow::arrow_shared)
  endif()
  return()
endif()

if(NOT EXISTS "${QUIVER_PYTHON}")
  message(FATAL_ERROR "No system Arrow C++ and no Python at ${QUIVER_PYTHON}. "
                      "Run `bash scripts/setup.sh`, which creates .venv with pyarrow.")
endif()
execute_process(
  COMMAND "${QUIVER_PYTHON}" -c
          "import pyarrow as pa; pa.create_library_symlinks(); print(pa.__version__); print(pa.get_include()); print(pa.get_library_dirs()[0])"
  OUTPUT_VARIABLE _quiver_pyarrow_info
  RESULT_VARIABLE _quiver_pyarrow_rc
  OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _quiver_pyarrow_rc EQUAL 0)
  message(FATAL_ERROR "Cannot import pyarrow with ${QUIVER_PYTHON}; run `bash scripts/setup.sh`.")
endif()
string(REPLACE "\n" ";" _quiver_pyarrow_info "${_quiver_pyarrow_info}")
list(GET _quiver_pyarrow_info 0 QUIVER_ARROW_VERSION)
list(GET _quiver_pyarrow_info 1 QUIVER_ARROW_INCLUDE_DIR)
list(GET _quiver_pyarrow_info 2 QUIVER_ARROW_LIBRARY_DIR)
message(STATUS "quiver: Arrow ${QUIVER_ARROW_VERSION} from pyarrow at ${QUIVER_ARROW_LIBRARY_DIR}")

# Makes an imported target for one library of the wheel; the wheel's libraries
# find each other through their own RUNPATH ($ORIGIN), ours find them through
# the build RPATH CMake derives from the full library path.
function(quiver_import_arrow_library name)
  set(_library "${QUIVER_ARROW_LIBRARY_DIR}/lib${name}.so")
  if(NOT EXISTS "${_library}")
    message(FATAL_ERROR "pyarrow has no ${_library}")
  endif()
  add_library(quiver::${name} SHARED IMPORTED GLOBAL)
  set_target_properties(quiver::${name} PROPERTIES
    IMPORTED_LOCATION "${_library}"
    INTERFACE_INCLUDE_DIRECTORIES "${QUIVER_ARROW_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${ARGN}")
  # Arrow's headers are not ours to fix: include them as system headers.
  set_property(TARGET quiver::${name} PROPERTY
    INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${QUIVER_ARROW_INCLUDE_DIR}")
endfunction()

quiver_import_arrow_library(arrow)
quiver_import_arrow_library(arrow_compute quiver::arrow)
quiver_import_arrow_library(parquet quiver::arrow)
quiver_import_arrow_library(arrow_acero quiver::arrow_compute)
quiver_import_arrow_library(arrow_dataset quiver::arrow_acero quiver::parquet)
