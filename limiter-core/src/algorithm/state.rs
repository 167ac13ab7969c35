//! The state a store keeps for one key.

use crate::time::Micros;

/// The state of one key under one algorithm.
///
/// A store persists it and hands it back; only the algorithms read or change it. State left by
/// a different algorithm (after a configuration change) is read as fresh.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum State {
    /// Never used, or indistinguishable from never used.
    #[default]
    Fresh,
    /// GCRA: the theoretical arrival time of the next request.
    Gcra {
        /// Theoretical arrival time.
        tat: Micros,
    },
    /// Sliding-window counter: the counts of the current fixed window and the one before.
    Window {
        /// Start of the current window (a multiple of the period since the epoch).
        start: Micros,
        /// Units admitted in the window before `start`.
        previous: u64,
        /// Units admitted since `start`.
        current: u64,
    },
    /// Sliding log: the time of every admitted unit still in the window, oldest first.
    Log {
        /// Admission times, ascending; one entry per unit of cost.
        entries: Vec<Micros>,
    },
    /// Calendar window: units used in the calendar period that ends at `end`.
    Calendar {
        /// End of the calendar period (next local midnight).
        end: Micros,
        /// Units admitted in the period.
        used: u64,
    },
}

const TAG_FRESH: u8 = 0;
const TAG_GCRA: u8 = 1;
const TAG_WINDOW: u8 = 2;
const TAG_LOG: u8 = 3;
const TAG_CALENDAR: u8 = 4;

impl State {
    /// Encodes the state compactly (a tag byte, then little-endian `u64`s), for stores that
    /// keep bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut put = |v: u64| out.extend_from_slice(&v.to_le_bytes());
        match self {
            State::Fresh => {}
            State::Gcra { tat } => put(*tat),
            State::Window {
                start,
                previous,
                current,
            } => {
                put(*start);
                put(*previous);
                put(*current);
            }
            State::Log { entries } => entries.iter().for_each(|e| put(*e)),
            State::Calendar { end, used } => {
                put(*end);
                put(*used);
            }
        }
        let tag = match self {
            State::Fresh => TAG_FRESH,
            State::Gcra { .. } => TAG_GCRA,
            State::Window { .. } => TAG_WINDOW,
            State::Log { .. } => TAG_LOG,
            State::Calendar { .. } => TAG_CALENDAR,
        };
        out.insert(out.len() - payload_len(self), tag);
    }

    /// Decodes what [`encode`](Self::encode) wrote; `None` for bytes it could not have written.
    pub fn decode(bytes: &[u8]) -> Option<State> {
        let (&tag, rest) = bytes.split_first()?;
        if rest.len() % 8 != 0 {
            return None;
        }
        let mut words = rest
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        let n = rest.len() / 8;
        let state = match (tag, n) {
            (TAG_FRESH, 0) => State::Fresh,
            (TAG_GCRA, 1) => State::Gcra { tat: words.next()? },
            (TAG_WINDOW, 3) => State::Window {
                start: words.next()?,
                previous: words.next()?,
                current: words.next()?,
            },
            (TAG_LOG, _) => {
                let entries: Vec<u64> = words.collect();
                if entries.windows(2).any(|w| w[0] > w[1]) {
                    return None;
                }
                State::Log { entries }
            }
            (TAG_CALENDAR, 2) => State::Calendar {
                end: words.next()?,
                used: words.next()?,
            },
            _ => return None,
        };
        Some(state)
    }
}

fn payload_len(state: &State) -> usize {
    8 * match state {
        State::Fresh => 0,
        State::Gcra { .. } => 1,
        State::Window { .. } => 3,
        State::Log { entries } => entries.len(),
        State::Calendar { .. } => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_rejects_garbage() {
        for s in [
            State::Fresh,
            State::Gcra { tat: 42 },
            State::Window {
                start: 1,
                previous: 2,
                current: 3,
            },
            State::Log {
                entries: vec![1, 1, 5],
            },
            State::Calendar { end: 9, used: 4 },
        ] {
            let mut buf = vec![0xAA];
            s.encode(&mut buf);
            assert_eq!(State::decode(&buf[1..]), Some(s));
        }
        assert_eq!(State::decode(&[]), None);
        assert_eq!(State::decode(&[9]), None);
        assert_eq!(State::decode(&[1, 0, 0]), None);
        let mut unsorted = vec![TAG_LOG];
        unsorted.extend_from_slice(&5u64.to_le_bytes());
        unsorted.extend_from_slice(&1u64.to_le_bytes());
        assert_eq!(State::decode(&unsorted), None);
    }
}
