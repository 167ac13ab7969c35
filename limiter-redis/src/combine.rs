//! Consumes sent together: on one server, at most a few calls of consumes are in flight; the
//! consumes that come meanwhile wait, and go together in one script call when a call comes back
//! (see [`RedisConfig::max_combined`](crate::RedisConfig::max_combined)).
//!
//! The server's single thread is what a fleet of API servers shares. A lone call pays, besides
//! its decision, a fixed cost: reading and answering the request, starting the script, reading
//! the time. Under load, consumes that would queue in the server's socket buffers anyway queue
//! here instead, and a call that decides several of them pays that cost once. Each is still
//! decided on its own, atomically, in the order it came, so no decision differs from the one it
//! would get alone at that instant.
//!
//! [`Combiner`] holds the rules (who sends, who waits, what goes together) and the queue, and
//! knows nothing of connections; the store sends the calls (`RedisStore::call_combined`, which
//! sends a lone consume itself and hands a batch to a task of its own).

use std::collections::VecDeque;
use std::sync::Mutex;

use fred::bytes::Bytes;
use fred::types::{Key as FredKey, Value};
use tokio::sync::oneshot;

/// The mode byte of a call of several consumes (`scripts/decide.lua`, "Several decisions").
const SEVERAL: u8 = 6;

/// The most keys one call of several consumes names: the script reads them with one `MGET`
/// over `unpack(KEYS)`, which Lua refuses past 8000 values.
const MAX_KEYS: usize = 4096;

/// A consume as a lone call would send it: its subjects' keys and its argument.
pub(crate) struct Consume {
    pub(crate) keys: Vec<FredKey>,
    pub(crate) arg: Bytes,
}

/// A consume waiting for a call, and where its answer goes.
pub(crate) struct Waiting {
    pub(crate) consume: Consume,
    answer: oneshot::Sender<Answer>,
}

/// What a call answered for one consume.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Its reply, as a lone call's: the verdict, the time, its subjects' values.
    Reply(Value),
    /// The call did not decide it (a corrupt value, a calendar's days around another time):
    /// it goes alone, whose reply says why. Nothing was written for it.
    Alone,
    /// The call failed: the consume may or may not have been decided, as for a lone call that
    /// fails.
    Failed(fred::error::Error),
}

/// What a consume does when it comes: go at once, alone, on a free slot, or wait for a call.
pub(crate) enum Turn {
    /// A slot is the caller's: it sends its consume alone, and then (done or dropped) calls
    /// [`Combiner::next`].
    Send(Consume),
    /// Its answer comes here. The caller's consume waits in the queue, unless the caller drops
    /// this first.
    Wait(oneshot::Receiver<Answer>),
    /// Consumes were waiting and a slot was free: the caller's joins them, and these go in one
    /// call on that slot; the caller's answer comes to the receiver.
    Lead(Vec<Waiting>, oneshot::Receiver<Answer>),
}

/// The queue of consumes waiting, and the slots in flight.
pub(crate) struct Combiner {
    state: Mutex<State>,
    slots: usize,
    most: usize,
}

struct State {
    waiting: VecDeque<Waiting>,
    in_flight: usize,
}

impl Combiner {
    /// At most `slots` calls in flight, of at most `most` consumes each.
    pub(crate) fn new(slots: usize, most: usize) -> Combiner {
        Combiner {
            state: Mutex::new(State {
                waiting: VecDeque::new(),
                in_flight: 0,
            }),
            slots: slots.max(1),
            most: most.max(1),
        }
    }

    /// Whether consumes ever go together.
    pub(crate) fn combines(&self) -> bool {
        self.most > 1
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is consistent at every await-free step: a panic elsewhere leaves it usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The turn of a consume that comes now.
    pub(crate) fn enter(&self, consume: Consume) -> Turn {
        let mut state = self.lock();
        let free = state.in_flight < self.slots;
        if free && state.waiting.is_empty() {
            state.in_flight += 1;
            return Turn::Send(consume);
        }
        let (answer, receiver) = oneshot::channel();
        state.waiting.push_back(Waiting { consume, answer });
        if !free {
            return Turn::Wait(receiver);
        }
        state.in_flight += 1;
        let batch = self.take(&mut state);
        Turn::Lead(batch, receiver)
    }

    /// The consumes that go next on a slot whose call came back (or whose sender was dropped):
    /// the oldest waiting, up to the most per call; none, and the slot is free, if none waits.
    pub(crate) fn next(&self) -> Vec<Waiting> {
        let mut state = self.lock();
        let batch = self.take(&mut state);
        if batch.is_empty() {
            state.in_flight = state.in_flight.saturating_sub(1);
        }
        batch
    }

    /// Up to the most per call of the waiting consumes whose callers still wait, naming at most
    /// [`MAX_KEYS`] keys in all (a consume of more goes alone).
    fn take(&self, state: &mut State) -> Vec<Waiting> {
        let mut batch = Vec::new();
        let mut keys = 0;
        while batch.len() < self.most {
            let Some(waiting) = state.waiting.pop_front() else {
                break;
            };
            // A caller that stopped waiting (its timeout passed, it was cancelled) is not
            // charged.
            if waiting.answer.is_closed() {
                continue;
            }
            let more = waiting.consume.keys.len();
            if !batch.is_empty() && keys + more > MAX_KEYS {
                state.waiting.push_front(waiting);
                break;
            }
            keys += more;
            batch.push(waiting);
        }
        batch
    }
}

/// The keys and the arguments of one call over `batch` (several consumes: at least two).
pub(crate) fn call_of(batch: &[Waiting]) -> (Vec<FredKey>, Value) {
    let mut header = Vec::with_capacity(1 + 2 * batch.len());
    header.push(SEVERAL);
    let mut keys = Vec::new();
    let mut args = Vec::with_capacity(1 + batch.len());
    for waiting in batch {
        let consume = &waiting.consume;
        // A lone call holds at most u16::MAX checks, so as many subjects.
        let subjects = u16::try_from(consume.keys.len()).unwrap_or(u16::MAX);
        header.extend_from_slice(&subjects.to_le_bytes());
        keys.extend(consume.keys.iter().cloned());
    }
    args.push(Value::Bytes(Bytes::from(header)));
    args.extend(
        batch
            .iter()
            .map(|waiting| Value::Bytes(waiting.consume.arg.clone())),
    );
    (keys, Value::Array(args))
}

/// Sends each consume of `batch` its answer from the `reply` of the call over them.
pub(crate) fn answer(batch: Vec<Waiting>, reply: Result<Value, fred::error::Error>) {
    let parts = reply.and_then(|reply| split(&reply, &batch));
    match parts {
        Ok(parts) => {
            for (waiting, part) in batch.into_iter().zip(parts) {
                // A caller that stopped waiting has no use for its answer.
                let _ = waiting.answer.send(part);
            }
        }
        Err(error) => {
            for waiting in batch {
                let _ = waiting.answer.send(Answer::Failed(error.clone()));
            }
        }
    }
}

/// Sends a lone consume's answer: its call's reply.
pub(crate) fn answer_alone(waiting: Waiting, reply: Result<Value, fred::error::Error>) {
    let answer = match reply {
        Ok(reply) => Answer::Reply(reply),
        Err(error) => Answer::Failed(error),
    };
    let _ = waiting.answer.send(answer);
}

/// The answer of each consume of `batch` in the reply of a call over them: per consume,
/// `'<BI8'` its verdict (2: not decided) and the time, then, if decided, `'<I4c0'` for each of
/// its subjects.
fn split(reply: &Value, batch: &[Waiting]) -> Result<Vec<Answer>, fred::error::Error> {
    let bytes = match reply {
        Value::Bytes(bytes) => bytes.clone(),
        Value::String(text) => text.inner().clone(),
        other => {
            return Err(malformed(format!(
                "expected a binary string, got {other:?}"
            )));
        }
    };
    let mut answers = Vec::with_capacity(batch.len());
    let mut at = 0;
    for (i, waiting) in batch.iter().enumerate() {
        let start = at;
        let code = *bytes
            .get(at)
            .ok_or_else(|| malformed(format!("no verdict for consume {i} at byte {at}")))?;
        at += 9;
        if code == 2 {
            answers.push(Answer::Alone);
            continue;
        }
        if code > 1 {
            return Err(malformed(format!("verdict {code} for consume {i}")));
        }
        for _ in &waiting.consume.keys {
            let len = bytes
                .get(at..at + 4)
                .ok_or_else(|| malformed(format!("no value length for consume {i} at {at}")))?;
            let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
            at += 4 + usize::try_from(len).unwrap_or(usize::MAX);
        }
        if at > bytes.len() {
            return Err(malformed(format!(
                "consume {i} ends at byte {at} of a reply of {}",
                bytes.len()
            )));
        }
        answers.push(Answer::Reply(Value::Bytes(bytes.slice(start..at))));
    }
    if at != bytes.len() {
        return Err(malformed(format!(
            "{} bytes left over after {} consumes",
            bytes.len().saturating_sub(at),
            batch.len()
        )));
    }
    Ok(answers)
}

fn malformed(message: String) -> fred::error::Error {
    fred::error::Error::new(
        fred::error::ErrorKind::Parse,
        format!("malformed reply of several consumes: {message}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consume(subjects: usize) -> Consume {
        Consume {
            keys: (0..subjects)
                .map(|s| FredKey::from(format!("k{s}")))
                .collect(),
            arg: Bytes::from_static(b"arg"),
        }
    }

    #[test]
    fn a_consume_goes_at_once_while_a_slot_is_free_and_nothing_waits() {
        let combiner = Combiner::new(2, 8);
        assert!(matches!(combiner.enter(consume(1)), Turn::Send(_)));
        assert!(matches!(combiner.enter(consume(1)), Turn::Send(_)));
        // Both slots taken: the next ones wait, and go together when a call comes back.
        let Turn::Wait(_a) = combiner.enter(consume(1)) else {
            panic!("expected to wait")
        };
        let Turn::Wait(_b) = combiner.enter(consume(2)) else {
            panic!("expected to wait")
        };
        let batch = combiner.next();
        assert_eq!(batch.len(), 2);
        // The slot stays taken while its batch is out; the other frees.
        assert!(combiner.next().is_empty());
        assert!(combiner.next().is_empty());
        assert!(matches!(combiner.enter(consume(1)), Turn::Send(_)));
    }

    #[test]
    fn a_batch_holds_at_most_the_most_and_skips_callers_gone() {
        let combiner = Combiner::new(1, 3);
        let Turn::Send(_) = combiner.enter(consume(1)) else {
            panic!("expected to send")
        };
        let mut receivers = Vec::new();
        for _ in 0..5 {
            let Turn::Wait(receiver) = combiner.enter(consume(1)) else {
                panic!("expected to wait")
            };
            receivers.push(receiver);
        }
        // The first caller stopped waiting: it is not sent.
        drop(receivers.remove(0));
        assert_eq!(combiner.next().len(), 3);
        assert_eq!(combiner.next().len(), 1);
        assert!(combiner.next().is_empty());
        // The slot is free again.
        assert!(matches!(combiner.enter(consume(1)), Turn::Send(_)));
    }

    #[test]
    fn a_batch_names_at_most_max_keys() {
        let combiner = Combiner::new(1, 1000);
        let Turn::Send(_) = combiner.enter(consume(1)) else {
            panic!("expected to send")
        };
        let mut receivers = Vec::new();
        for subjects in [3000, 1000, 200, 5000] {
            let Turn::Wait(receiver) = combiner.enter(consume(subjects)) else {
                panic!("expected to wait")
            };
            receivers.push(receiver);
        }
        assert_eq!(combiner.next().len(), 2, "3000 + 1000 keys");
        assert_eq!(
            combiner.next().len(),
            1,
            "200, then 5000 would pass the bound"
        );
        assert_eq!(combiner.next().len(), 1, "5000 alone");
        assert!(combiner.next().is_empty());
    }

    #[test]
    fn a_free_slot_with_consumes_waiting_leads_them_with_the_caller() {
        let combiner = Combiner::new(1, 8);
        let Turn::Send(_) = combiner.enter(consume(1)) else {
            panic!("expected to send")
        };
        let Turn::Wait(_first) = combiner.enter(consume(1)) else {
            panic!("expected to wait")
        };
        // The sender was dropped before its call came back: the slot goes to what waits.
        let left = combiner.next();
        assert_eq!(left.len(), 1);
        drop(left);
        // Nothing waits now: the slot is free.
        assert!(combiner.next().is_empty());
        let Turn::Send(_) = combiner.enter(consume(1)) else {
            panic!("expected to send")
        };
        let Turn::Wait(_second) = combiner.enter(consume(1)) else {
            panic!("expected to wait")
        };
        assert!(combiner.next().len() == 1);
        // One slot, taken by that batch: a newcomer waits behind it.
        let Turn::Wait(_third) = combiner.enter(consume(1)) else {
            panic!("expected to wait")
        };
        assert_eq!(combiner.next().len(), 1);
        assert!(combiner.next().is_empty());
    }

    #[test]
    fn a_call_of_several_lists_their_subjects_and_arguments_in_order() {
        let (tx, _rx) = oneshot::channel();
        let (ty, _ry) = oneshot::channel();
        let batch = vec![
            Waiting {
                consume: consume(2),
                answer: tx,
            },
            Waiting {
                consume: consume(1),
                answer: ty,
            },
        ];
        let (keys, args) = call_of(&batch);
        assert_eq!(keys.len(), 3);
        let Value::Array(args) = args else {
            panic!("expected several arguments")
        };
        assert_eq!(args.len(), 3);
        assert_eq!(args[0], Value::Bytes(Bytes::from_static(&[6, 2, 0, 1, 0])));
    }

    /// One consume's part of a reply: verdict, time, values.
    fn part(code: u8, values: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![code];
        out.extend_from_slice(&7_u64.to_le_bytes());
        if code < 2 {
            for value in values {
                out.extend_from_slice(&u32::try_from(value.len()).expect("short").to_le_bytes());
                out.extend_from_slice(value);
            }
        }
        out
    }

    #[test]
    fn a_reply_splits_into_lone_replies_and_consumes_to_send_alone() {
        let mut receivers = Vec::new();
        let batch: Vec<Waiting> = [2, 1, 1]
            .into_iter()
            .map(|subjects| {
                let (answer, receiver) = oneshot::channel();
                receivers.push(receiver);
                Waiting {
                    consume: consume(subjects),
                    answer,
                }
            })
            .collect();
        let mut reply = part(1, &[b"ab", b""]);
        reply.extend(part(2, &[]));
        reply.extend(part(0, &[b"xyz"]));
        let answers = split(&Value::Bytes(Bytes::from(reply)), &batch).expect("well formed");
        assert!(
            matches!(&answers[0], Answer::Reply(Value::Bytes(b)) if b[..] == part(1, &[b"ab", b""])[..])
        );
        assert!(matches!(answers[1], Answer::Alone));
        assert!(
            matches!(&answers[2], Answer::Reply(Value::Bytes(b)) if b[..] == part(0, &[b"xyz"])[..])
        );
        // Cut short, or with bytes left over: every consume fails, none is misread.
        for bad in [
            part(1, &[b"ab", b""]),
            [
                part(1, &[b"ab", b""]),
                part(2, &[]),
                part(0, &[b"xyz"]),
                vec![0],
            ]
            .concat(),
            [part(1, &[b"ab", b""]), part(3, &[])].concat(),
        ] {
            let error = split(&Value::Bytes(Bytes::from(bad)), &batch)
                .map(drop)
                .expect_err("malformed");
            assert!(error.details().contains("malformed reply"), "{error}");
        }
        answer(
            batch,
            Err(fred::error::Error::new(fred::error::ErrorKind::IO, "gone")),
        );
        for mut receiver in receivers {
            assert!(matches!(receiver.try_recv(), Ok(Answer::Failed(_))));
        }
    }
}
