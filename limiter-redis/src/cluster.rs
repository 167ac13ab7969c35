//! Redis Cluster fan-out: a batch whose keys fall in several hash slots cannot run as one
//! script (a script's keys must share a slot), so it runs as one script call per slot, all at
//! once, and so is not atomic as a whole. [`SlotGroups`] keeps such a decision from ever
//! over-admitting: a slot that denies gets the charges of the others given back.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use fred::util::redis_keyslot;
use limiter_core::{BatchOutcome, Check, Error, EvalOptions, LimitStatus, Micros, State};

use crate::script::{Reply, ScriptMode};

/// The script call over the checks of one slot: all the fan-out needs of the store. A trait,
/// so that this module knows nothing of connections and its rules are tested without a server.
pub(crate) trait Decide: Sync {
    /// One script call over `checks` in `mode`, read.
    fn decide_slot<'a>(
        &'a self,
        mode: ScriptMode,
        checks: &'a [&'a Check],
        options: &'a EvalOptions,
    ) -> impl Future<Output = Result<Reply, Error>> + Send + 'a;

    /// Gives back what a consume round took: for each slot, the time it charged at, and the
    /// checks it charged with the state each read. The refunds must go on if the returned
    /// future is dropped (the caller cancelled), and their failures be recorded; the future
    /// ends when they are done.
    fn give_back(
        &self,
        taken: Vec<Taken>,
        options: &EvalOptions,
    ) -> impl Future<Output = ()> + Send + 'static;
}

/// What one slot's charge took: the time it charged at, and each check it charged with the
/// state that check read.
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    pub(crate) at: Micros,
    pub(crate) charged: Vec<(Check, State)>,
}

/// The checks of a batch grouped by cluster slot, in order of first appearance; evaluates them
/// with one script call per slot, all slots at once, in every mode.
pub(crate) struct SlotGroups<'b> {
    groups: Vec<Group<'b>>,
    /// How many checks the batch holds, over all slots.
    checks: usize,
}

/// The checks of one slot, and the position of each in the batch.
struct Group<'b> {
    indices: Vec<usize>,
    checks: Vec<&'b Check>,
}

impl<'b> SlotGroups<'b> {
    /// `checks` grouped by the slot of their keys.
    pub(crate) fn of(checks: &'b [Check]) -> SlotGroups<'b> {
        let mut slots: Vec<u16> = Vec::new();
        let mut groups: Vec<Group<'b>> = Vec::new();
        for (i, check) in checks.iter().enumerate() {
            let slot = redis_keyslot(check.key.as_str().as_bytes());
            match slots.iter().position(|&s| s == slot) {
                Some(g) => {
                    groups[g].indices.push(i);
                    groups[g].checks.push(check);
                }
                None => {
                    slots.push(slot);
                    groups.push(Group {
                        indices: vec![i],
                        checks: vec![check],
                    });
                }
            }
        }
        SlotGroups {
            groups,
            checks: checks.len(),
        }
    }

    /// How many slots the checks span.
    pub(crate) fn slots(&self) -> usize {
        self.groups.len()
    }

    /// Evaluates the batch in `mode` on `store`.
    pub(crate) async fn evaluate(
        &self,
        store: &impl Decide,
        mode: ScriptMode,
        options: &EvalOptions,
    ) -> Result<BatchOutcome, Error> {
        match mode {
            ScriptMode::Consume => self.consume(store, options).await,
            // A peek charges nothing and a refund only gives back: neither can over-admit, so
            // one round of calls answers them.
            ScriptMode::Peek | ScriptMode::Refund(_) => self.scatter(store, mode, options).await,
        }
    }

    /// Charges the batch if every slot admits.
    ///
    /// Every slot is charged at once, each by one script call that charges only if all its
    /// limits allow: an admitted decision costs one round trip and one call per slot. When a
    /// slot denies, what the other slots took is given back before the answer: each refund
    /// names the charge's own time and the state it read, and puts that state back exactly
    /// where no other request has charged since (elsewhere it refunds the charge alone, never
    /// another request's). So a cross-slot decision never over-admits; while a denied one's
    /// give-back is in flight, its charge can deny a concurrent request (under-admission, for
    /// about a round trip).
    async fn consume(
        &self,
        store: &impl Decide,
        options: &EvalOptions,
    ) -> Result<BatchOutcome, Error> {
        let consumed = join_all(
            self.groups
                .iter()
                .map(|group| store.decide_slot(ScriptMode::Consume, &group.checks, options)),
        )
        .await;
        let admitted = consumed
            .iter()
            .all(|reply| reply.as_ref().is_ok_and(|reply| reply.admitted));
        if !admitted {
            // The store runs the refunds apart from this future, so that a caller that stops
            // waiting does not stop them; it counts those that fail. A failed one leaves those
            // limits charged until they refill: fewer requests admitted for a while, never
            // more. Either way the decision is the denial: an error instead would let a
            // fail-open limiter admit the request.
            let taken = self.taken(&consumed);
            if !taken.is_empty() {
                store.give_back(taken, options).await;
            }
        }
        let replies = consumed.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(self.gather(replies))
    }

    /// What each slot that admitted charged in a consume round: the checks it charged with the
    /// state each read, and the time its script charged them at. Each slot's refund names its
    /// own time, since a refund gives back only a charge made at the instant it names (never
    /// another request's), and on the server's clock every node's script reads a time of its
    /// own.
    fn taken(&self, consumed: &[Result<Reply, Error>]) -> Vec<Taken> {
        self.groups
            .iter()
            .zip(consumed)
            .filter_map(|(group, reply)| {
                let reply = reply.as_ref().ok().filter(|reply| reply.admitted)?;
                let charged: Vec<(Check, State)> = group
                    .checks
                    .iter()
                    .zip(&reply.statuses)
                    .zip(&reply.states)
                    .filter(|((_, status), _)| status.is_allowed())
                    .map(|((&check, _), state)| (check.clone(), state.clone()))
                    .collect();
                (!charged.is_empty()).then_some(Taken {
                    at: reply.at,
                    charged,
                })
            })
            .collect()
    }

    /// One script call per slot in `mode`, all at once, answered as one batch.
    async fn scatter(
        &self,
        store: &impl Decide,
        mode: ScriptMode,
        options: &EvalOptions,
    ) -> Result<BatchOutcome, Error> {
        let replies = join_all(
            self.groups
                .iter()
                .map(|group| store.decide_slot(mode, &group.checks, options)),
        )
        .await;
        let replies = replies.into_iter().collect::<Result<Vec<_>, _>>()?;
        Ok(self.gather(replies))
    }

    /// The batch's outcome from one reply per slot: admitted if every slot admits, at the
    /// latest time a slot decided at, with the statuses back in the batch's order. A batch that
    /// some slot denied charged nothing (or was given back), so the limits that allowed report
    /// what stands, from the states their slot read, as `batch::evaluate` does for one slot.
    fn gather(&self, replies: Vec<Reply>) -> BatchOutcome {
        let allowed = replies.iter().all(|reply| reply.admitted);
        let at = replies.iter().map(|reply| reply.at).max().unwrap_or(0);
        let mut statuses: Vec<Option<LimitStatus>> = vec![None; self.checks];
        for (group, reply) in self.groups.iter().zip(replies) {
            let parts = group.indices.iter().zip(&group.checks);
            for ((&i, check), (status, state)) in
                parts.zip(reply.statuses.into_iter().zip(&reply.states))
            {
                statuses[i] = Some(if allowed || !status.is_allowed() {
                    status
                } else {
                    check.limit.standing(state, reply.at)
                });
            }
        }
        BatchOutcome {
            allowed,
            statuses: statuses.into_iter().flatten().collect(),
            at,
        }
    }
}

/// Runs `futures` concurrently; their outputs in order.
pub(crate) async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use std::future::ready;
    use std::sync::Mutex;

    use limiter_core::{Key, Limit, State, SubjectKind};

    use super::*;

    /// A store that answers each slot by `answer` and records every call: the mode, and the
    /// costs of the checks it was given (each check's cost is its place in the batch, plus 1).
    struct Scripted {
        answer: fn(ScriptMode, &[&Check]) -> Reply,
        calls: Mutex<Vec<(ScriptMode, Vec<u64>)>>,
    }

    impl Scripted {
        fn new(answer: fn(ScriptMode, &[&Check]) -> Reply) -> Scripted {
            Scripted {
                answer,
                calls: Mutex::new(Vec::new()),
            }
        }

        fn calls(&self) -> Vec<(ScriptMode, Vec<u64>)> {
            self.calls.lock().expect("calls").clone()
        }
    }

    impl Decide for Scripted {
        fn decide_slot<'a>(
            &'a self,
            mode: ScriptMode,
            checks: &'a [&'a Check],
            _options: &'a EvalOptions,
        ) -> impl Future<Output = Result<Reply, Error>> + Send + 'a {
            let costs = checks.iter().map(|check| check.cost).collect();
            self.calls.lock().expect("calls").push((mode, costs));
            ready(Ok((self.answer)(mode, checks)))
        }

        fn give_back(
            &self,
            taken: Vec<Taken>,
            options: &EvalOptions,
        ) -> impl Future<Output = ()> + Send + 'static {
            for Taken { at, charged } in &taken {
                let checks: Vec<&Check> = charged.iter().map(|(check, _)| check).collect();
                // Answered at once: recording the call is all there is to it.
                drop(self.decide_slot(ScriptMode::Refund(*at), &checks, options));
            }
            ready(())
        }
    }

    /// Subject `b` is on another slot than subject `a`.
    fn checks() -> Vec<Check> {
        ["a", "b", "a"]
            .iter()
            .zip(1..)
            .map(|(subject, cost)| {
                let key = Key::new("t", "p", SubjectKind::User, subject);
                Check::new(
                    "p",
                    key,
                    Limit::gcra("10/minute".parse().expect("rate")),
                    cost,
                )
            })
            .collect()
    }

    fn on_b(checks: &[&Check]) -> bool {
        checks[0].key.hash_tag() == "u=b"
    }

    /// Every slot admits; slot `b` answers at 20, the other at 10.
    fn admit(_mode: ScriptMode, checks: &[&Check]) -> Reply {
        Reply {
            admitted: true,
            statuses: checks
                .iter()
                .map(|check| LimitStatus::allowed(10, check.cost, 0))
                .collect(),
            at: if on_b(checks) { 20 } else { 10 },
            states: checks.iter().map(|_| State::Fresh).collect(),
        }
    }

    /// As `admit`, except that slot `b` denies a consume.
    fn b_denies_the_charge(mode: ScriptMode, checks: &[&Check]) -> Reply {
        let mut reply = admit(mode, checks);
        if mode == ScriptMode::Consume && on_b(checks) {
            reply.admitted = false;
            reply.statuses = vec![LimitStatus::denied(10, 0, 1, 1)];
        }
        reply
    }

    #[test]
    fn checks_are_grouped_by_slot_in_order_of_appearance() {
        let checks = checks();
        let groups = SlotGroups::of(&checks);
        assert_eq!(groups.slots(), 2);
        assert_eq!(groups.groups[0].indices, [0, 2]);
        assert_eq!(groups.groups[1].indices, [1]);
    }

    #[tokio::test]
    async fn statuses_come_back_in_the_batch_order_at_the_latest_time() {
        let checks = checks();
        let store = Scripted::new(admit);
        let outcome = SlotGroups::of(&checks)
            .evaluate(&store, ScriptMode::Peek, &EvalOptions::at(0))
            .await
            .expect("peek");
        assert!(outcome.allowed);
        let remaining: Vec<u64> = outcome.statuses.iter().map(|s| s.remaining).collect();
        assert_eq!(remaining, [1, 2, 3]);
        assert_eq!(outcome.at, 20);
        assert_eq!(store.calls().len(), 2, "one call per slot");
    }

    #[tokio::test]
    async fn a_slot_denying_the_charge_gets_the_others_given_back_at_their_time() {
        let checks = checks();
        let store = Scripted::new(b_denies_the_charge);
        let outcome = SlotGroups::of(&checks)
            .evaluate(&store, ScriptMode::Consume, &EvalOptions::at(0))
            .await
            .expect("consume");
        assert!(!outcome.allowed);
        assert_eq!(
            store.calls(),
            [
                (ScriptMode::Consume, vec![1, 3]),
                (ScriptMode::Consume, vec![2]),
                // Slot `a` charged at 10: its refund names 10; `b` charged nothing.
                (ScriptMode::Refund(10), vec![1, 3]),
            ]
        );
    }

    #[tokio::test]
    async fn an_admitted_decision_is_one_call_per_slot() {
        let checks = checks();
        let store = Scripted::new(admit);
        let outcome = SlotGroups::of(&checks)
            .evaluate(&store, ScriptMode::Consume, &EvalOptions::at(0))
            .await
            .expect("consume");
        assert!(outcome.allowed);
        assert_eq!(
            store.calls(),
            [
                (ScriptMode::Consume, vec![1, 3]),
                (ScriptMode::Consume, vec![2])
            ]
        );
    }

    #[tokio::test]
    async fn a_denied_decision_reports_what_stands_on_the_slots_that_admitted() {
        let checks = checks();
        let store = Scripted::new(b_denies_the_charge);
        let outcome = SlotGroups::of(&checks)
            .evaluate(&store, ScriptMode::Consume, &EvalOptions::at(0))
            .await
            .expect("consume");
        // Slot `a` read fresh states: what stands is the whole budget, not the charge.
        let standing = checks[0].limit.standing(&State::Fresh, 10);
        assert_eq!(outcome.statuses[0], standing);
        assert_eq!(
            outcome.statuses[2],
            checks[2].limit.standing(&State::Fresh, 10)
        );
        assert!(!outcome.statuses[1].is_allowed());
    }
}
