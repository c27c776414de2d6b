//! The engine's state ([`Engine`]), the contract of a flow ([`Flow`]) and the functions that
//! drive an operation through its plan.

use crate::hw::Cx;
use std::collections::VecDeque;
use std::fmt;

use acpi_model::AcpiValue;
use serde::Serialize;
use sim_core::{SimDuration, SimTime};

use super::{FlowKind, KindName, OpError, OpTarget, Report, StepName, StepRecord};
use crate::cpumask::LogicalCpu;
use crate::event::OsEvent;

/// An event of the engine on its kernel's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpEvent {
    /// Start the flow's next queued operation (if none runs).
    Start(FlowKind),
    /// The flow's running operation `op` acts (or looks at its wait) at transition `epoch`.
    Step {
        /// The flow the operation belongs to (CPU, memory, PCI).
        flow: FlowKind,
        /// The operation.
        op: u32,
        /// The transition.
        epoch: u32,
    },
    /// The hung-op watchdog of the wait `epoch` of the flow's operation `op`.
    Watchdog {
        /// The flow the operation belongs to (CPU, memory, PCI).
        flow: FlowKind,
        /// The operation.
        op: u32,
        /// The wait's transition.
        epoch: u32,
    },
}

/// What the engine needs of the kernel it runs in (the engine never names the kernel).
pub trait Host {
    /// Schedules `ev` at `at` on the kernel's queue.
    fn post_op(&mut self, at: SimTime, ev: OpEvent);
    /// Emits `ev` to the trace and the checkers.
    fn emit(&mut self, t: SimTime, ev: OsEvent);
    /// The bookkeeping time every step ends with.
    fn step_cost(&self) -> SimDuration;
    /// How long a wait may last before the operation is reported hung and abandoned.
    fn hung_timeout(&self) -> SimDuration;
    /// Evaluates ACPI method `path` with `args` as CPU `cpu`; `t` advances by the evaluation.
    fn acpi_eval(
        &mut self,
        t: &mut SimTime,
        cpu: LogicalCpu,
        path: &str,
        args: &[AcpiValue],
        cx: &mut Cx<'_>,
    ) -> Result<AcpiValue, String>;
    /// Operation `id` of `flow` ended (`error`: how it failed): whichever operation waits
    /// for it as a child hears of it.
    fn op_ended(&mut self, flow: FlowKind, id: u32, error: Option<String>);
    /// An operation started by firmware's notification `cause` ended (`failure`: the `_OST`
    /// status of its error) on CPU `cpu`: the notification is answered if nothing else it
    /// started still runs or waits; `t` advances by the `_OST` evaluated.
    fn notification_op_ended(
        &mut self,
        t: &mut SimTime,
        cpu: LogicalCpu,
        cause: acpi_model::NotifyId,
        failure: Option<super::OstStatus>,
        cx: &mut Cx<'_>,
    );
}

/// A flow: how one kind of operation is planned and carried out. The engine calls these;
/// each works on the kernel (`os`) it runs in.
pub trait Flow: Sized + Clone + fmt::Debug + PartialEq + Eq + 'static {
    /// What an operation does (down / up, offline / cell remove, enable / eject …).
    type Kind: KindName + fmt::Debug + PartialEq + Eq + Serialize;
    /// The steps of its plans.
    type Step: StepName + fmt::Debug + PartialEq + Eq + Serialize;
    /// Why a request is refused or an operation fails.
    type Error: OpError + fmt::Debug + PartialEq + Eq + Serialize;
    /// What the report records beyond the common fields.
    type Detail: Clone + fmt::Debug + PartialEq + Eq + Serialize;
    /// Which flow (events, trace tags).
    const KIND: FlowKind;
    /// Whether a failed step gets a record (`failed: …`) before the operation ends.
    const RECORD_FAILED_STEP: bool;
    /// The kernel it runs in.
    type Host: Host;
    /// A request as queued.
    type Request: Clone + fmt::Debug;
    /// What a waiting step waits for.
    type Wait: Clone + fmt::Debug + PartialEq + Eq;
    /// The running operation's working state.
    type State: Clone + fmt::Debug;

    /// This flow's engine in `os`.
    fn engine(os: &Self::Host) -> &Engine<Self>;
    /// This flow's engine in `os`, to change.
    fn engine_mut(os: &mut Self::Host) -> &mut Engine<Self>;

    /// Starts request `id`: its report, plan and working state, or why it cannot run now
    /// (the machine changed since it was queued).
    fn begin(os: &mut Self::Host, now: SimTime, id: u32, req: &Self::Request) -> Begun<Self>;

    /// What the Start event names as the target.
    fn target(op: &Op<Self>) -> OpTarget;

    /// Before each step or look: the flow may move the operation to another controller.
    fn refresh(_os: &mut Self::Host) {}

    /// Carries out `step` of the running operation at `now`.
    fn act(os: &mut Self::Host, now: SimTime, step: Self::Step, cx: &mut Cx<'_>) -> Next<Self>;

    /// The wait `wait` of the running operation is looked at again (an event the step
    /// scheduled, or a signal): what comes next, or `None` to keep waiting for a signal.
    fn resume(
        os: &mut Self::Host,
        now: SimTime,
        wait: Self::Wait,
        cx: &mut Cx<'_>,
    ) -> Option<Next<Self>>;

    /// The hung-op watchdog fired in `step` after `waited`.
    fn hung(op: &Op<Self>, wait: Self::Wait, step: Self::Step, waited: SimDuration) -> Self::Error;

    /// A step failed: gives back what the operation took; returns when that ended.
    fn undo(_os: &mut Self::Host, t: SimTime, _cx: &mut Cx<'_>) -> SimTime {
        t
    }

    /// The operation is ending with `result` (before the End event).
    fn ending(
        _os: &mut Self::Host,
        _now: SimTime,
        _op: &mut Op<Self>,
        _result: &Result<(), Self::Error>,
    ) {
    }

    /// The operation has ended and its report is in the history.
    fn ended(_os: &mut Self::Host, _now: SimTime, _cx: &mut Cx<'_>) {}

    /// The delay before the next queued request starts after one ended.
    fn restart_delay(os: &Self::Host) -> SimDuration;
}

/// What [`Flow::begin`] gives.
pub struct Begun<F: Flow> {
    /// The report, without steps or result.
    pub report: Report<F>,
    /// The steps to run.
    pub plan: Vec<F::Step>,
    /// The working state.
    pub state: F::State,
    /// Why it cannot run (it ends at once with this error).
    pub refused: Option<F::Error>,
}

/// What a step (or a look at a wait) leads to.
pub enum Next<F: Flow> {
    /// The step finished its work at the time; the step ends `step_cost` later.
    Done(SimTime, String),
    /// The wait is over at the time: the step ends then, with the note it had.
    Over(SimTime),
    /// Act again (the same step) at the time.
    Again(SimTime),
    /// Wait, looking again at the time (the note replaces the step's, if not empty).
    Poll(F::Wait, SimTime, String),
    /// Wait for a signal; the hung-op watchdog fires after `hung_timeout`.
    Wait(F::Wait, String),
    /// The step failed at the time.
    Fail(SimTime, F::Error),
}

/// Why the engine is called for the running operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// The event it scheduled (or a signal) arrived.
    Go,
    /// The watchdog of its wait fired.
    Timeout,
}

/// The running operation.
#[derive(Clone, Debug)]
pub struct Op<F: Flow> {
    /// Its report so far.
    pub report: Report<F>,
    /// The request it runs.
    pub req: F::Request,
    plan: Vec<F::Step>,
    idx: usize,
    step_start: SimTime,
    epoch: u32,
    /// The note of the running step.
    pub note: String,
    /// What the running step waits for (`None`: it acts at the next event).
    pub wait: Option<F::Wait>,
    /// The child operations it waits for (a cell removal's CPU downs).
    pub children: Completion,
    /// The flow's working state.
    pub state: F::State,
}

impl<F: Flow> Op<F> {
    /// The step running.
    pub fn step(&self) -> Option<F::Step> {
        self.plan.get(self.idx).copied()
    }
}

/// The hot-plug lock of one flow: the queue, the running operation and the history.
#[derive(Clone, Debug)]
pub struct Engine<F: Flow> {
    queue: VecDeque<(u32, F::Request)>,
    current: Option<Op<F>>,
    done: Vec<Report<F>>,
    next_id: u32,
}

impl<F: Flow> Default for Engine<F> {
    fn default() -> Self {
        Engine {
            queue: VecDeque::new(),
            current: None,
            done: Vec::new(),
            next_id: 0,
        }
    }
}

impl<F: Flow> Engine<F> {
    /// Finished operations, in order.
    pub fn done(&self) -> &[Report<F>] {
        &self.done
    }

    /// The report of the operation in progress.
    pub fn current(&self) -> Option<&Report<F>> {
        self.current.as_ref().map(|c| &c.report)
    }

    /// The operation in progress.
    pub fn running(&self) -> Option<&Op<F>> {
        self.current.as_ref()
    }

    pub(crate) fn running_mut(&mut self) -> Option<&mut Op<F>> {
        self.current.as_mut()
    }

    /// The running operation (if `op`) to change.
    pub(crate) fn running_op(&mut self, op: u32) -> Option<&mut Op<F>> {
        self.current.as_mut().filter(|c| c.report.id == op)
    }

    /// Whether nothing runs or waits.
    pub fn is_idle(&self) -> bool {
        self.current.is_none() && self.queue.is_empty()
    }

    /// The operation running and those queued, in the order they run: number and request.
    pub fn pending(&self) -> impl Iterator<Item = (u32, &F::Request)> {
        self.current
            .as_ref()
            .map(|c| (c.report.id, &c.req))
            .into_iter()
            .chain(self.queue.iter().map(|(id, r)| (*id, r)))
    }

    /// A word for what is queued and running (a refused request must not change it).
    pub(crate) fn state_word(&self) -> u64 {
        let mut h = sim_core::StableHasher::new();
        h.word(u64::from(self.next_id));
        h.word(
            self.current
                .as_ref()
                .map_or(u64::MAX, |c| u64::from(c.report.id)),
        );
        for (id, _) in &self.queue {
            h.word(u64::from(*id));
        }
        h.finish()
    }
}

/// Queues `req` (asked at `at`); the engine starts it when those before it are done.
/// Returns its operation number.
pub(crate) fn enqueue<F: Flow>(os: &mut F::Host, at: SimTime, req: F::Request) -> u32 {
    let e = F::engine_mut(os);
    let id = e.next_id;
    e.next_id += 1;
    e.queue.push_back((id, req));
    if e.current.is_none() {
        os.post_op(at, OpEvent::Start(F::KIND));
    }
    os.emit(
        at,
        OsEvent::OpQueued {
            flow: F::KIND,
            op: id,
        },
    );
    id
}

/// An engine event: `op: None` starts the next queued request (if none runs); otherwise
/// the event belongs to operation `op` at transition `epoch` and is dropped if stale.
pub(crate) fn on_event<F: Flow>(
    os: &mut F::Host,
    now: SimTime,
    op: Option<u32>,
    epoch: u32,
    input: Input,
    cx: &mut Cx<'_>,
) {
    match (F::engine(os).current.as_ref(), op) {
        (None, None) => start_next::<F>(os, now, cx),
        (Some(cur), Some(op)) if cur.report.id == op && cur.epoch == epoch => {
            advance::<F>(os, now, input, cx);
        }
        (None | Some(_), _) => {}
    }
}

fn start_next<F: Flow>(os: &mut F::Host, now: SimTime, cx: &mut Cx<'_>) {
    let Some((id, req)) = F::engine_mut(os).queue.pop_front() else {
        return;
    };
    let Begun {
        report,
        plan,
        state,
        refused,
    } = F::begin(os, now, id, &req);
    let op = Op {
        report,
        req,
        plan,
        idx: 0,
        step_start: now,
        epoch: 0,
        note: String::new(),
        wait: None,
        children: Completion::default(),
        state,
    };
    os.emit(
        now,
        OsEvent::OpStart {
            flow: F::KIND,
            op: id,
            kind: op.report.kind.name(),
            target: F::target(&op),
            trigger: op.report.trigger.name(),
        },
    );
    F::engine_mut(os).current = Some(op);
    match refused {
        Some(e) => end::<F>(os, now, Err(e), cx),
        None => advance::<F>(os, now, Input::Go, cx),
    }
}

/// Moves the running operation on: its next step acts, or its wait is looked at again.
pub(crate) fn advance<F: Flow>(os: &mut F::Host, now: SimTime, input: Input, cx: &mut Cx<'_>) {
    if F::engine(os).current.is_none() {
        return;
    }
    F::refresh(os);
    let Some(cur) = F::engine(os).current.as_ref() else {
        return;
    };
    let next = match (cur.wait.clone(), input) {
        (None, Input::Go) => match cur.step() {
            None => {
                end::<F>(os, now, Ok(()), cx);
                return;
            }
            Some(step) => F::act(os, now, step, cx),
        },
        (None, Input::Timeout) => return,
        (Some(w), Input::Go) => match F::resume(os, now, w, cx) {
            Some(next) => next,
            None => return,
        },
        (Some(w), Input::Timeout) => {
            let Some(step) = cur.step() else {
                return;
            };
            let waited = now - cur.step_start;
            let e = F::hung(cur, w, step, waited);
            finish_step::<F>(os, now, format!("hung: waited {waited}"));
            end::<F>(os, now, Err(e), cx);
            return;
        }
    };
    match next {
        Next::Done(t, note) => {
            let end = t + os.step_cost();
            finish_step::<F>(os, end, note);
            schedule::<F>(os, end);
        }
        Next::Over(t) => {
            finish_step::<F>(os, t, String::new());
            schedule::<F>(os, t);
        }
        Next::Again(t) => {
            if let Some(c) = F::engine_mut(os).current.as_mut() {
                c.wait = None;
            }
            schedule::<F>(os, t);
        }
        Next::Poll(w, at, note) => {
            if let Some(c) = F::engine_mut(os).current.as_mut() {
                c.wait = Some(w);
                if !note.is_empty() {
                    c.note = note;
                }
            }
            schedule::<F>(os, at);
        }
        Next::Wait(w, note) => {
            let timeout = os.hung_timeout();
            if let Some(c) = F::engine_mut(os).current.as_mut() {
                c.note = note;
                c.wait = Some(w);
                c.epoch = c.epoch.wrapping_add(1);
                let (op, epoch) = (c.report.id, c.epoch);
                os.post_op(
                    now + timeout,
                    OpEvent::Watchdog {
                        flow: F::KIND,
                        op,
                        epoch,
                    },
                );
            }
        }
        Next::Fail(t, e) => {
            let t = F::undo(os, t, cx);
            if F::RECORD_FAILED_STEP {
                finish_step::<F>(os, t, format!("failed: {e}"));
            }
            end::<F>(os, t, Err(e), cx);
        }
    }
}

/// Records the running step as finished at `end` (with `note`, or the note the step left)
/// and moves to the next one.
pub(crate) fn finish_step<F: Flow>(os: &mut F::Host, end: SimTime, note: String) {
    let Some(cur) = F::engine_mut(os).current.as_mut() else {
        return;
    };
    let Some(step) = cur.step() else {
        return;
    };
    let note = if note.is_empty() {
        std::mem::take(&mut cur.note)
    } else {
        note
    };
    cur.note.clear();
    let start = cur.step_start;
    let duration = end.saturating_since(start);
    cur.report.steps.push(StepRecord {
        step,
        start,
        duration,
        note: note.clone(),
    });
    cur.idx += 1;
    cur.step_start = end;
    cur.wait = None;
    let op = cur.report.id;
    os.emit(
        end,
        OsEvent::OpStep {
            flow: F::KIND,
            op,
            step: step.index(),
            name: step.name(),
            start,
            duration,
            note,
        },
    );
}

/// Schedules the running operation's next action at `at`.
pub(crate) fn schedule<F: Flow>(os: &mut F::Host, at: SimTime) {
    if let Some(c) = F::engine_mut(os).current.as_mut() {
        c.epoch = c.epoch.wrapping_add(1);
        let (op, epoch) = (c.report.id, c.epoch);
        os.post_op(
            at,
            OpEvent::Step {
                flow: F::KIND,
                op,
                epoch,
            },
        );
    }
}

/// Ends the running operation with `result`: its report goes to the history, firmware
/// gets `_OST` if it asked, and the next queued request is started.
pub(crate) fn end<F: Flow>(
    os: &mut F::Host,
    now: SimTime,
    result: Result<(), F::Error>,
    cx: &mut Cx<'_>,
) {
    let Some(mut cur) = F::engine_mut(os).current.take() else {
        return;
    };
    cur.report.ended = Some(now);
    cur.report.result = Some(result.clone());
    F::ending(os, now, &mut cur, &result);
    os.emit(
        now,
        OsEvent::OpEnd {
            flow: F::KIND,
            op: cur.report.id,
            result: result.clone().map_err(|e| e.to_string()),
        },
    );
    // The controller evaluates _OST after the operation ended: the next one starts after it.
    let mut t = now;
    if let Some(cause) = cur.report.cause {
        let failure = result.as_ref().err().map(OpError::ost);
        os.notification_op_ended(&mut t, cur.report.controller, cause, failure, cx);
    }
    let (id, error) = (cur.report.id, result.err().map(|e| e.to_string()));
    F::engine_mut(os).done.push(cur.report);
    F::ended(os, now, cx);
    os.op_ended(F::KIND, id, error);
    if !F::engine(os).queue.is_empty() {
        let at = t + F::restart_delay(os);
        os.post_op(at, OpEvent::Start(F::KIND));
    }
}

/// The child operations an operation waits for, and how they ended: each child tells its
/// parent when it ends (no parent looks at the children's histories).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Completion {
    waiting: Vec<(FlowKind, u32)>,
    ended: u32,
    failed: Option<(FlowKind, u32, String)>,
}

impl Completion {
    /// Whether every child has ended.
    pub fn is_done(&self) -> bool {
        self.waiting.is_empty()
    }

    /// How many children have ended.
    pub fn ended(&self) -> u32 {
        self.ended
    }

    /// The first child that failed: its flow, number and error.
    pub fn failure(&self) -> Option<&(FlowKind, u32, String)> {
        self.failed.as_ref()
    }
}

/// The running operation of `F` waits for operation `child` (of flow `flow`) to end.
pub(crate) fn adopt<F: Flow>(os: &mut F::Host, flow: FlowKind, child: u32) {
    if let Some(c) = F::engine_mut(os).current.as_mut() {
        c.children.waiting.push((flow, child));
    }
}

/// Operation `child` of flow `flow` ended (`error`: how it failed): the running operation of
/// `F`, if it waits for it, records it.
pub(crate) fn child_ended<F: Flow>(
    os: &mut F::Host,
    flow: FlowKind,
    child: u32,
    error: Option<&str>,
) {
    let Some(c) = F::engine_mut(os).current.as_mut() else {
        return;
    };
    let Some(i) = c.children.waiting.iter().position(|&w| w == (flow, child)) else {
        return;
    };
    c.children.waiting.remove(i);
    c.children.ended += 1;
    if let (Some(e), None) = (error, &c.children.failed) {
        c.children.failed = Some((flow, child, e.to_owned()));
    }
}

/// Queues `req` without starting anything (boot queues every bring-up, then [`kick`]s once).
pub(crate) fn queue_only<F: Flow>(os: &mut F::Host, req: F::Request) -> u32 {
    let e = F::engine_mut(os);
    let id = e.next_id;
    e.next_id += 1;
    e.queue.push_back((id, req));
    id
}

/// Starts the next queued request at `at` (if none runs then).
pub(crate) fn kick<F: Flow>(os: &mut F::Host, at: SimTime) {
    os.post_op(at, OpEvent::Start(F::KIND));
}
