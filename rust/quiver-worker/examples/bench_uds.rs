//! Measure a worker over uds, playing the engine: the median round trip of 1-row batches and the
//! throughput of 1 MiB identity batches.
//!
//!     cargo run --release --example bench_uds -- target/release/examples/udfs

use std::os::unix::net::UnixListener;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use prost::Message;
use quiver_worker::frame::{encode_header, FrameKind, Limits};
use quiver_worker::proto::{self, engine_message::Kind as In};
use quiver_worker::uds::{write_all_parts, FrameReader};
use quiver_worker::{ipc, proto::worker_message::Kind as Out};

fn send(stream: &mut std::os::unix::net::UnixStream, kind: In) {
    let metadata = proto::EngineMessage { kind: Some(kind) }.encode_to_vec();
    let header = encode_header(FrameKind::Control, 0, metadata.len() as u32, 0);
    write_all_parts(stream, &[&header, &metadata]).unwrap();
}

fn main() {
    let worker = std::env::args()
        .nth(1)
        .expect("usage: bench_uds WORKER_BINARY");
    let dir = std::env::temp_dir().join(format!("qvr-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("e.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let mut child = Command::new(worker)
        .args([
            "--id",
            "b",
            "--connection",
            &format!("unix:{}", path.display()),
        ])
        .env("QUIVER_WORKER_SECRET", "0".repeat(64))
        .spawn()
        .unwrap();
    let (mut stream, _) = listener.accept().unwrap();
    let mut reader = FrameReader::new(stream.try_clone().unwrap(), Limits::default());
    let mut recv = || reader.read_frame().unwrap().expect("a frame");
    assert!(!recv().metadata.is_empty(), "Hello");
    let make = |rows: i64| {
        let x: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
        ipc::encode_batch(&RecordBatch::try_from_iter([("x", x)]).unwrap()).unwrap()
    };
    let (one, big) = (make(1), make(1 << 17)); // 1 row; 131072 int64 = 1 MiB
    let schema = ipc::decode_schema(&one).unwrap();
    let udf = proto::UdfDefinition {
        name: "same".into(),
        payload_format: "symbol".into(),
        payload: b"identity".to_vec(),
        argument_offsets: vec![0],
        ..Default::default()
    };
    let init = proto::Init {
        protocol_version: 1,
        data_format: 1,
        udfs: vec![udf],
        input_schema: ipc::encode_schema(&schema).unwrap(),
        ..Default::default()
    };
    send(&mut stream, In::Init(init));
    let answer = proto::WorkerMessage::decode(recv().metadata.as_slice()).unwrap();
    assert!(
        matches!(answer.kind, Some(Out::InitResponse(_))),
        "{answer:?}"
    );
    let mut exchange = |sequence: u64, body: &[u8]| {
        let header = encode_header(FrameKind::Data, sequence, 0, body.len() as u64);
        write_all_parts(&mut stream, &[&header, body]).unwrap();
        let frame = recv();
        assert_eq!((frame.kind, frame.sequence), (FrameKind::Data, sequence));
    };
    let mut times: Vec<u128> = (0..20_000u64)
        .map(|sequence| {
            let started = Instant::now();
            exchange(sequence, &one);
            started.elapsed().as_nanos()
        })
        .collect();
    times.sort_unstable();
    let count = 500;
    let started = Instant::now();
    for sequence in 0..count {
        exchange(100_000 + sequence, &big);
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "1-row round trip: median {:.1} us, p99 {:.1} us",
        times[times.len() / 2] as f64 / 1e3,
        times[times.len() * 99 / 100] as f64 / 1e3
    );
    println!(
        "1 MiB identity: {:.0} MiB/s ({:.0} us per batch)",
        count as f64 * (1 << 20) as f64 / seconds / (1 << 20) as f64,
        seconds * 1e6 / count as f64
    );
    // Closing the connection ends the worker with status 0 (shutdown: the reader holds a clone).
    stream.shutdown(std::net::Shutdown::Both).unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}
