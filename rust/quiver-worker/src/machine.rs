//! The worker's state machine (docs/protocol.md, section 2): idle, running, failed. It knows
//! nothing of sockets: a transport feeds it the engine's messages and batches, and gives it a
//! [`Peer`] that carries its answers away.

use std::io;
use std::sync::Arc;

use arrow_buffer::Buffer;

use crate::execution::{Execution, Failure};
use crate::proto::{self, engine_message::Kind as In, worker_message::Kind as Out};
use crate::registry::Registry;

/// The engine's side of a transport, as the state machine sees it.
pub trait Peer {
    /// Send one control message.
    fn send_message(&mut self, message: proto::WorkerMessage) -> io::Result<()>;
    /// Send the result batch of `sequence` (one Arrow IPC stream).
    fn send_data(&mut self, sequence: u64, body: Vec<u8>) -> io::Result<()>;
    /// Whether a `Cancel` has already arrived behind the batch about to run: the batches in
    /// between are dropped instead of run.
    fn cancel_ahead(&mut self) -> bool {
        false
    }
}

/// Where the worker is in the life of an execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Between executions: waits for `Init`.
    Idle,
    /// In an execution: answers batches.
    Running,
    /// In an execution that sent its one `Error`: waits for `Finish` or `Cancel`.
    Failed,
}

/// Drives executions one after another from the engine's messages.
pub struct Machine {
    registry: Arc<Registry>,
    state: State,
    execution: Option<Execution>,
    /// `FinishResponse` / `CancelResponse` sent so far (a gRPC call ends after its first).
    pub executions_ended: u64,
}

impl Machine {
    /// An idle machine that binds UDFs from `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Machine {
            registry,
            state: State::Idle,
            execution: None,
            executions_ended: 0,
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Handle one `EngineMessage` other than `Shutdown` (a transport's business).
    pub fn handle(&mut self, message: proto::EngineMessage, peer: &mut dyn Peer) -> io::Result<()> {
        match message.kind {
            None => self.reject(
                "an EngineMessage holds no message (unknown or empty 'kind')",
                None,
                peer,
            ),
            Some(In::Init(init)) => self.on_init(init, peer),
            Some(In::PayloadChunk(chunk)) => self.on_payload_chunk(chunk, peer),
            Some(In::Data(data)) => {
                self.on_batch(data.sequence, Buffer::from(data.arrow_ipc), peer)
            }
            Some(In::Finish(_)) => self.on_finish(peer),
            Some(In::Cancel(cancel)) => self.on_cancel(&cancel.reason, peer),
            Some(In::Heartbeat(beat)) => peer.send_message(message_of(Out::Heartbeat(beat))),
            Some(In::Shutdown(_)) => self.reject("Shutdown is not accepted here", None, peer),
            // This SDK does not speak the shm transport (docs/protocol.md section 10).
            Some(In::ShmSetup(_) | In::ShmData(_) | In::ShmRelease(_)) => self.reject(
                "shm transport messages are not accepted by this worker",
                None,
                peer,
            ),
        }
    }

    fn on_init(&mut self, init: proto::Init, peer: &mut dyn Peer) -> io::Result<()> {
        if self.state != State::Idle {
            return self.reject(
                "Init during an execution (a worker serves one execution at a time)",
                None,
                peer,
            );
        }
        let chunks = init.payload_chunk_count;
        self.execution = Some(Execution::new(init));
        self.state = State::Running;
        if chunks == 0 {
            return self.load(peer);
        }
        Ok(())
    }

    fn on_payload_chunk(
        &mut self,
        chunk: proto::PayloadChunk,
        peer: &mut dyn Peer,
    ) -> io::Result<()> {
        match self.state {
            State::Failed => return Ok(()),
            State::Idle => return self.reject("PayloadChunk outside an execution", None, peer),
            State::Running => {}
        }
        let execution = self.execution.as_mut().expect("running");
        if execution.loaded() {
            return self.reject(
                "PayloadChunk after the UDFs were loaded (more than Init announced)",
                None,
                peer,
            );
        }
        if let Err(failure) = execution.add_payload_chunk(chunk) {
            return self.fail(failure, None, peer);
        }
        if execution.chunks_left() == 0 {
            return self.load(peer);
        }
        Ok(())
    }

    /// Answer one batch with one result batch of the same sequence (or the execution's Error).
    pub fn on_batch(&mut self, sequence: u64, body: Buffer, peer: &mut dyn Peer) -> io::Result<()> {
        match self.state {
            State::Failed => return Ok(()), // after an Error, batches are ignored
            State::Idle => {
                return self.reject(
                    &format!("Data (sequence {sequence}) outside an execution"),
                    Some(sequence),
                    peer,
                )
            }
            State::Running => {}
        }
        let execution = self.execution.as_mut().expect("running");
        if !execution.loaded() {
            let message =
                format!("Data (sequence {sequence}) before all PayloadChunk messages arrived");
            return self.reject(&message, Some(sequence), peer);
        }
        if peer.cancel_ahead() {
            return Ok(()); // a Cancel follows: the engine will discard this batch's answer anyway
        }
        match execution.run_batch(body) {
            Ok(result) => peer.send_data(sequence, result),
            Err(failure) => self.fail(failure, Some(sequence), peer),
        }
    }

    fn on_finish(&mut self, peer: &mut dyn Peer) -> io::Result<()> {
        if self.state == State::Idle {
            return self.reject("Finish outside an execution", None, peer);
        }
        let loaded = self.execution.as_ref().is_some_and(Execution::loaded);
        if self.state == State::Running && !loaded {
            self.reject(
                "Finish before all PayloadChunk messages arrived",
                None,
                peer,
            )?;
        }
        let metrics = self.end_execution();
        peer.send_message(message_of(Out::FinishResponse(proto::FinishResponse {
            metrics: Some(metrics),
        })))
    }

    fn on_cancel(&mut self, _reason: &str, peer: &mut dyn Peer) -> io::Result<()> {
        if self.state == State::Idle {
            return self.reject("Cancel outside an execution", None, peer);
        }
        let metrics = self.end_execution();
        peer.send_message(message_of(Out::CancelResponse(proto::CancelResponse {
            metrics: Some(metrics),
        })))
    }

    /// Stop the running execution from inside the worker (Shutdown with `cancel_running`, the
    /// end of a gRPC call): answers `CancelResponse` when an execution was running.
    pub fn cancel_running(&mut self, reason: &str, peer: &mut dyn Peer) -> io::Result<()> {
        if self.state == State::Idle {
            return Ok(());
        }
        self.on_cancel(reason, peer)
    }

    fn load(&mut self, peer: &mut dyn Peer) -> io::Result<()> {
        let execution = self.execution.as_mut().expect("running");
        match execution.load(&self.registry) {
            Ok(schema) => {
                let response = proto::InitResponse {
                    result_schema: schema,
                };
                peer.send_message(message_of(Out::InitResponse(response)))
            }
            Err(failure) => self.fail(failure, None, peer),
        }
    }

    /// Answer a message that is not allowed in the current state with a `ProtocolError`.
    pub fn reject(
        &mut self,
        message: &str,
        sequence: Option<u64>,
        peer: &mut dyn Peer,
    ) -> io::Result<()> {
        match self.state {
            // At most one Error per execution: after it, stray messages are only logged.
            State::Failed => {
                eprintln!("quiver-worker: ignoring (execution already failed): {message}");
                Ok(())
            }
            // Outside an execution there is nothing to fail: report and stay idle.
            State::Idle => {
                eprintln!("quiver-worker: protocol error: {message}");
                let error = Failure::Protocol(message.to_owned()).to_proto(sequence);
                peer.send_message(message_of(Out::Error(error)))
            }
            State::Running => self.fail(Failure::Protocol(message.to_owned()), sequence, peer),
        }
    }

    /// Send the execution's one `Error` and wait for `Finish` or `Cancel`.
    fn fail(
        &mut self,
        failure: Failure,
        sequence: Option<u64>,
        peer: &mut dyn Peer,
    ) -> io::Result<()> {
        let at = sequence
            .map(|s| format!(" (batch {s})"))
            .unwrap_or_default();
        eprintln!("quiver-worker: {failure}{at}");
        self.state = State::Failed;
        peer.send_message(message_of(Out::Error(failure.to_proto(sequence))))
    }

    fn end_execution(&mut self) -> proto::Metrics {
        let (metrics, counters) = self
            .execution
            .take()
            .map(|e| (e.metrics, e.user_counters()))
            .unwrap_or_default();
        self.state = State::Idle;
        self.executions_ended += 1;
        proto::Metrics {
            counters,
            ..metrics.to_proto()
        }
    }
}

/// Wrap one kind of worker message in its envelope.
pub fn message_of(kind: Out) -> proto::WorkerMessage {
    proto::WorkerMessage { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipc;
    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use proto::error::Kind as ErrorKind;

    /// Records what the machine sends; `cancel_next` makes the next batch see a Cancel ahead.
    #[derive(Default)]
    struct Recorder {
        sent: Vec<Out>,
        cancel_next: bool,
    }

    impl Peer for Recorder {
        fn send_message(&mut self, message: proto::WorkerMessage) -> io::Result<()> {
            self.sent.push(message.kind.expect("a kind"));
            Ok(())
        }
        fn send_data(&mut self, sequence: u64, body: Vec<u8>) -> io::Result<()> {
            self.sent.push(Out::Data(proto::Data {
                sequence,
                arrow_ipc: body.into(),
            }));
            Ok(())
        }
        fn cancel_ahead(&mut self) -> bool {
            std::mem::take(&mut self.cancel_next)
        }
    }

    impl Recorder {
        fn take(&mut self) -> Vec<Out> {
            std::mem::take(&mut self.sent)
        }
        fn error(&mut self) -> proto::Error {
            match self.take().as_slice() {
                [Out::Error(error)] => error.clone(),
                other => panic!("expected one Error, got {other:?}"),
            }
        }
    }

    fn registry() -> Arc<Registry> {
        Arc::new(
            Registry::new()
                .scalar(
                    "identity",
                    crate::Returns::SameAsArg(0),
                    |a: &[ArrayRef]| Ok(a[0].clone()),
                )
                .scalar("fails", DataType::Int64, |_: &[ArrayRef]| {
                    Err("no luck".into())
                })
                .scalar("panics", DataType::Int64, |_: &[ArrayRef]| panic!("boom"))
                .scalar(
                    "counts_rows",
                    crate::Returns::SameAsArg(0),
                    |a: &[ArrayRef]| {
                        crate::counter("machine_test_rows")?.add(a[0].len() as u64)?;
                        Ok(a[0].clone())
                    },
                )
                .scalar("bad_counter", DataType::Int64, |_: &[ArrayRef]| {
                    crate::counter("not a name")?.add(1)?;
                    unreachable!("the name is refused")
                })
                .scalar("short", DataType::Int64, |_: &[ArrayRef]| {
                    Ok(Arc::new(Int64Array::from(vec![1])) as ArrayRef)
                }),
        )
    }

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("x", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ])
    }

    fn udf(name: &str, symbol: &str, offsets: Vec<i32>) -> proto::UdfDefinition {
        proto::UdfDefinition {
            name: name.into(),
            payload_format: "symbol".into(),
            payload: symbol.as_bytes().to_vec(),
            argument_offsets: offsets,
            ..Default::default()
        }
    }

    fn init(udfs: Vec<proto::UdfDefinition>) -> proto::EngineMessage {
        let init = proto::Init {
            protocol_version: 1,
            data_format: proto::DataFormat::ArrowIpcStream as i32,
            udfs,
            input_schema: ipc::encode_schema(&schema()).unwrap(),
            ..Default::default()
        };
        proto::EngineMessage {
            kind: Some(In::Init(init)),
        }
    }

    fn engine(kind: In) -> proto::EngineMessage {
        proto::EngineMessage { kind: Some(kind) }
    }

    fn batch(rows: i64) -> Buffer {
        let x: ArrayRef = Arc::new(Int64Array::from_iter(
            (0..rows).map(|i| (i % 3 != 0).then_some(i)),
        ));
        let s: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("v{i}")),
        ));
        let batch = RecordBatch::try_new(Arc::new(schema()), vec![x, s]).unwrap();
        Buffer::from_vec(ipc::encode_batch(&batch).unwrap())
    }

    fn started(udfs: Vec<proto::UdfDefinition>) -> (Machine, Recorder) {
        let mut machine = Machine::new(registry());
        let mut peer = Recorder::default();
        machine.handle(init(udfs), &mut peer).unwrap();
        (machine, peer)
    }

    #[test]
    fn finish_reports_what_each_udf_counter_grew_by_in_this_execution() {
        let mut machine = Machine::new(registry());
        let mut peer = Recorder::default();
        for _ in 0..2 {
            // the second execution counts from 0 again
            machine
                .handle(init(vec![udf("c", "counts_rows", vec![0])]), &mut peer)
                .unwrap();
            machine.on_batch(0, batch(3), &mut peer).unwrap();
            machine.on_batch(1, batch(1000), &mut peer).unwrap();
            machine
                .handle(engine(In::Finish(proto::Finish {})), &mut peer)
                .unwrap();
            let Some(Out::FinishResponse(finish)) = peer.take().pop() else {
                panic!("no FinishResponse")
            };
            // Only this test's counter: the tests of this process run at once.
            let counters = finish.metrics.unwrap().counters;
            assert_eq!(counters.get("machine_test_rows"), Some(&1003));
        }
    }

    #[test]
    fn a_bad_counter_name_in_a_udf_is_a_user_error_naming_the_udf() {
        let (mut machine, mut peer) = started(vec![udf("c", "bad_counter", vec![0])]);
        peer.take();
        machine.on_batch(0, batch(3), &mut peer).unwrap();
        let Some(proto::error::Kind::UserError(user)) = peer.error().kind else {
            panic!("no UserError")
        };
        assert_eq!(
            (user.udf_name.as_str(), user.error_class.as_str()),
            ("c", crate::counters::COUNTER_ERROR_CLASS)
        );
        assert!(user
            .message
            .contains("'not a name' is not a valid metric name"));
    }

    #[test]
    fn an_execution_answers_every_batch_then_finishes() {
        let (mut machine, mut peer) = started(vec![
            udf("a", "identity", vec![1]),
            udf("b", "identity", vec![0]),
        ]);
        let Out::InitResponse(response) = &peer.take()[0] else {
            panic!("no InitResponse")
        };
        let result_schema = ipc::decode_schema(&response.result_schema).unwrap();
        assert_eq!(
            result_schema.field(0),
            &Field::new("a", DataType::Utf8, true)
        );
        assert_eq!(
            result_schema.field(1),
            &Field::new("b", DataType::Int64, true)
        );
        for (sequence, rows) in [(5u64, 3), (9, 0), (12, 1000)] {
            machine.on_batch(sequence, batch(rows), &mut peer).unwrap();
            let Out::Data(data) = &peer.take()[0] else {
                panic!("no Data")
            };
            assert_eq!(data.sequence, sequence);
            let result = ipc::decode_batch(Buffer::from(data.arrow_ipc.clone())).unwrap();
            assert_eq!(result.num_rows() as i64, rows);
            assert_eq!(*result.schema(), *result_schema);
        }
        machine
            .handle(engine(In::Finish(proto::Finish {})), &mut peer)
            .unwrap();
        let Out::FinishResponse(finish) = &peer.take()[0] else {
            panic!("no FinishResponse")
        };
        let metrics = finish.metrics.as_ref().unwrap();
        assert_eq!(
            (metrics.batches, metrics.rows_in, metrics.rows_out),
            (3, 1003, 1003)
        );
        assert!(metrics.peak_rss_bytes > 0);
        assert_eq!(machine.state(), State::Idle);
    }

    #[test]
    fn an_unknown_function_is_a_worker_error_at_init_naming_it() {
        let (mut machine, mut peer) = started(vec![udf("h", "hash_name", vec![0])]);
        let error = peer.error();
        let Some(ErrorKind::WorkerError(worker)) = error.kind else {
            panic!("{error:?}")
        };
        assert_eq!(worker.udf_name, "h");
        assert!(
            worker.message.contains("'hash_name'") && worker.message.contains("identity"),
            "{}",
            worker.message
        );
        assert_eq!(machine.state(), State::Failed);
        machine.on_batch(0, batch(2), &mut peer).unwrap();
        assert!(peer.take().is_empty(), "batches after an Error are ignored");
        machine
            .handle(engine(In::Finish(proto::Finish {})), &mut peer)
            .unwrap();
        assert!(matches!(peer.take()[..], [Out::FinishResponse(_)]));
        assert_eq!(machine.state(), State::Idle);
    }

    #[test]
    fn an_err_or_a_panic_is_a_user_error_with_the_udf_name_and_batch() {
        for (symbol, class, message) in [("fails", "Error", "no luck"), ("panics", "panic", "boom")]
        {
            let (mut machine, mut peer) = started(vec![udf("u", symbol, vec![0])]);
            peer.take();
            machine.on_batch(7, batch(3), &mut peer).unwrap();
            let error = peer.error();
            assert!(error.has_sequence && error.sequence == 7);
            let Some(ErrorKind::UserError(user)) = error.kind else {
                panic!("{error:?}")
            };
            assert_eq!(
                (
                    user.udf_name.as_str(),
                    user.error_class.as_str(),
                    user.message.as_str()
                ),
                ("u", class, message)
            );
            machine
                .handle(engine(In::Cancel(proto::Cancel::default())), &mut peer)
                .unwrap();
            assert!(matches!(peer.take()[..], [Out::CancelResponse(_)]));
        }
    }

    #[test]
    fn wrong_results_and_declared_types_are_worker_errors() {
        let (mut machine, mut peer) = started(vec![udf("s", "short", vec![0])]);
        peer.take();
        machine.on_batch(0, batch(3), &mut peer).unwrap();
        let Some(ErrorKind::WorkerError(worker)) = peer.error().kind else {
            panic!()
        };
        assert!(
            worker
                .message
                .contains("returned 1 values for a batch of 3 rows"),
            "{}",
            worker.message
        );

        let mut declared = udf("d", "identity", vec![0]);
        declared.return_type =
            ipc::encode_schema(&Schema::new(vec![Field::new("d", DataType::Utf8, true)])).unwrap();
        let (_, mut peer) = started(vec![declared]);
        let Some(ErrorKind::WorkerError(worker)) = peer.error().kind else {
            panic!()
        };
        assert!(
            worker.message.contains("declared return type Utf8"),
            "{}",
            worker.message
        );

        let mut iter = udf("i", "identity", vec![0]);
        iter.eval_type = proto::EvalType::ScalarArrowIter as i32;
        let (_, mut peer) = started(vec![iter]);
        let Some(ErrorKind::WorkerError(worker)) = peer.error().kind else {
            panic!()
        };
        assert!(
            worker.message.contains("SCALAR_ARROW_ITER"),
            "{}",
            worker.message
        );
    }

    #[test]
    fn messages_out_of_place_are_protocol_errors() {
        let mut machine = Machine::new(registry());
        let mut peer = Recorder::default();
        machine.on_batch(3, batch(1), &mut peer).unwrap();
        assert!(matches!(
            peer.error().kind,
            Some(ErrorKind::ProtocolError(_))
        ));
        assert_eq!(machine.state(), State::Idle, "idle stays idle");
        machine
            .handle(engine(In::Finish(proto::Finish {})), &mut peer)
            .unwrap();
        assert!(matches!(
            peer.error().kind,
            Some(ErrorKind::ProtocolError(_))
        ));

        let (mut machine, mut peer) = started(vec![udf("a", "identity", vec![0])]);
        peer.take();
        machine
            .handle(init(vec![udf("a", "identity", vec![0])]), &mut peer)
            .unwrap();
        let Some(ErrorKind::ProtocolError(error)) = peer.error().kind else {
            panic!()
        };
        assert!(error.message.contains("Init during an execution"));
        assert_eq!(machine.state(), State::Failed);
        machine.handle(init(vec![]), &mut peer).unwrap();
        assert!(peer.take().is_empty(), "at most one Error per execution");

        let (mut machine, mut peer) = started(vec![udf("a", "identity", vec![0])]);
        peer.take();
        machine
            .on_batch(0, Buffer::from_vec(b"not arrow".to_vec()), &mut peer)
            .unwrap();
        let Some(ErrorKind::ProtocolError(error)) = peer.error().kind else {
            panic!()
        };
        assert!(error.message.contains("Arrow IPC"), "{}", error.message);
    }

    #[test]
    fn payload_chunks_complete_the_symbol_before_init_is_answered() {
        let mut machine = Machine::new(registry());
        let mut peer = Recorder::default();
        let mut message = init(vec![udf("a", "iden", vec![0])]);
        if let Some(In::Init(init)) = &mut message.kind {
            init.payload_chunk_count = 2;
        }
        machine.handle(message, &mut peer).unwrap();
        assert!(peer.take().is_empty());
        for piece in ["ti", "ty"] {
            let chunk = proto::PayloadChunk {
                udf_index: 0,
                data: piece.as_bytes().to_vec(),
            };
            machine
                .handle(engine(In::PayloadChunk(chunk)), &mut peer)
                .unwrap();
        }
        assert!(matches!(peer.take()[..], [Out::InitResponse(_)]));
        let extra = proto::PayloadChunk {
            udf_index: 0,
            data: vec![],
        };
        machine
            .handle(engine(In::PayloadChunk(extra)), &mut peer)
            .unwrap();
        assert!(matches!(
            peer.error().kind,
            Some(ErrorKind::ProtocolError(_))
        ));
    }

    #[test]
    fn heartbeats_are_echoed_and_batches_before_a_cancel_are_dropped() {
        let (mut machine, mut peer) = started(vec![udf("a", "identity", vec![0])]);
        peer.take();
        machine
            .handle(
                engine(In::Heartbeat(proto::Heartbeat { nonce: 42 })),
                &mut peer,
            )
            .unwrap();
        assert!(matches!(
            peer.take()[..],
            [Out::Heartbeat(proto::Heartbeat { nonce: 42 })]
        ));
        peer.cancel_next = true;
        machine.on_batch(0, batch(2), &mut peer).unwrap();
        assert!(
            peer.take().is_empty(),
            "a Cancel waits behind the batch: it is dropped"
        );
        machine
            .handle(engine(In::Cancel(proto::Cancel::default())), &mut peer)
            .unwrap();
        assert!(matches!(peer.take()[..], [Out::CancelResponse(_)]));
    }
}
