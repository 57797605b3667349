//! The recent tasks the monitor keeps: [`TaskTable`], the newest
//! `capacity` [`TaskRecord`]s, oldest evicted first, with what queries
//! compare kept beside them ([`Key`], [`Interner`]).

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::tasks::TaskRecord;

/// What queries compare, per record, kept apart from the records in one
/// contiguous array (no pointer to follow per task): interned strings and
/// times. Rebuilt for the records changed since the last query.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    /// Interned state.
    pub(crate) state: u32,
    /// Interned name ([`NONE`] when unknown).
    pub(crate) name: u32,
    /// Interned worker ([`NONE`] when unknown).
    pub(crate) worker: u32,
    /// First seen (received, else sent, started, finished); NaN when unknown.
    pub(crate) first_seen: f64,
    /// Started; NaN when unknown.
    pub(crate) started: f64,
    /// Finished; NaN when unknown.
    pub(crate) finished: f64,
    /// Runtime (derived for failures); NaN when unknown.
    pub(crate) runtime: f64,
}

/// No interned value.
pub(crate) const NONE: u32 = u32::MAX;

impl Key {
    const EMPTY: Key = Key {
        state: NONE,
        name: NONE,
        worker: NONE,
        first_seen: f64::NAN,
        started: f64::NAN,
        finished: f64::NAN,
        runtime: f64::NAN,
    };
}

/// Distinct names, states and workers, numbered.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    ids: HashMap<String, u32>,
    texts: Vec<String>,
}

impl Interner {
    fn intern(&mut self, text: Option<&str>) -> u32 {
        let Some(text) = text else { return NONE };
        if let Some(id) = self.ids.get(text) {
            return *id;
        }
        let id = u32::try_from(self.texts.len()).unwrap_or(NONE);
        self.ids.insert(text.to_owned(), id);
        self.texts.push(text.to_owned());
        id
    }

    /// The number of `text`, if it was ever seen.
    pub(crate) fn id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// The text of `id` ("" for [`NONE`]).
    pub(crate) fn text(&self, id: u32) -> &str {
        self.texts.get(id as usize).map_or("", String::as_str)
    }

    /// Every text with its number.
    pub(crate) fn all(&self) -> impl Iterator<Item = (u32, &str)> {
        self.texts
            .iter()
            .enumerate()
            .map(|(i, t)| (u32::try_from(i).unwrap_or(NONE), t.as_str()))
    }
}

/// The newest tasks, bounded, in the order they were first seen.
///
/// Records sit in a ring (oldest first) numbered by a sequence; an index
/// maps ids to sequence numbers. Every change goes through
/// [`TaskTable::entry`] or [`TaskTable::get_mut`], which note the record as
/// changed; [`TaskTable::refresh`] then rebuilds its [`Key`], its search
/// text and whether the backend must still be read for it.
#[derive(Debug)]
pub(crate) struct TaskTable {
    records: VecDeque<TaskRecord>,
    keys: VecDeque<Key>,
    index: HashMap<String, u64>,
    /// Sequence number of `records[0]`.
    base: u64,
    capacity: usize,
    /// Records changed since the last refresh (may repeat).
    changed: Vec<u64>,
    /// Too many changes to list: refresh everything.
    all_changed: bool,
    /// Records the backend must still be read for.
    pollable: std::collections::HashSet<u64>,
    /// Search texts, beside `records` (empty: to be rebuilt).
    texts: VecDeque<String>,
    /// Records whose search text is stale (may repeat).
    stale_texts: Vec<u64>,
    /// Too many to list: rebuild every text.
    all_texts_stale: bool,
    pub(crate) interner: Interner,
}

impl TaskTable {
    pub(crate) fn new(capacity: usize) -> Self {
        TaskTable {
            records: VecDeque::new(),
            keys: VecDeque::new(),
            index: HashMap::new(),
            base: 0,
            capacity: capacity.max(1),
            changed: Vec::new(),
            all_changed: false,
            pollable: std::collections::HashSet::new(),
            texts: VecDeque::new(),
            stale_texts: Vec::new(),
            all_texts_stale: false,
            interner: Interner::default(),
        }
    }

    fn slot(&self, id: &str) -> Option<(u64, usize)> {
        let seq = *self.index.get(id)?;
        Some((seq, self.position(seq)?))
    }

    /// Where the record numbered `seq` sits, if it is still held.
    fn position(&self, seq: u64) -> Option<usize> {
        let at = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        (at < self.records.len()).then_some(at)
    }

    /// The numbers of the records held now.
    fn held(&self) -> std::ops::Range<u64> {
        self.base..self.base + self.records.len() as u64
    }

    fn note(&mut self, seq: u64) {
        let most = self.capacity.saturating_mul(4).max(1024);
        if !self.all_changed {
            if self.changed.len() >= most {
                self.all_changed = true;
                self.changed.clear();
            } else {
                self.changed.push(seq);
            }
        }
        if !self.all_texts_stale {
            if self.stale_texts.len() >= most {
                self.all_texts_stale = true;
                self.stale_texts.clear();
            } else {
                self.stale_texts.push(seq);
            }
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&TaskRecord> {
        let (_, at) = self.slot(id)?;
        self.records.get(at)
    }

    /// The record for `id`, to change (its key and search text are rebuilt).
    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut TaskRecord> {
        let (seq, at) = self.slot(id)?;
        self.note(seq);
        self.records.get_mut(at)
    }

    /// How many records it holds.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// The record for `id`, created (and the oldest evicted) if new.
    pub(crate) fn entry(&mut self, id: &str) -> &mut TaskRecord {
        let at = match self.slot(id) {
            Some((seq, at)) => {
                self.note(seq);
                at
            }
            None => {
                while self.records.len() >= self.capacity {
                    if let Some(old) = self.records.pop_front() {
                        self.index.remove(&old.view.id);
                        self.pollable.remove(&self.base);
                    }
                    self.keys.pop_front();
                    self.texts.pop_front();
                    self.base += 1;
                }
                let seq = self.held().end;
                self.records.push_back(TaskRecord::new(id));
                self.keys.push_back(Key::EMPTY);
                self.texts.push_back(String::new());
                self.index.insert(id.to_owned(), seq);
                self.note(seq);
                self.records.len() - 1
            }
        };
        &mut self.records[at]
    }

    /// Rebuild what changed since the last call: keys, search texts (when
    /// `search`), the set of records to poll.
    pub(crate) fn refresh(&mut self, search: bool) {
        let held = self.held();
        let changed = take_marked(&mut self.all_changed, &mut self.changed, held.clone());
        for seq in changed {
            let Some(at) = self.position(seq) else {
                continue;
            };
            let record = &self.records[at];
            let view = &record.view;
            let key = Key {
                state: self.interner.intern(Some(&view.state)),
                name: self.interner.intern(view.name.as_deref()),
                worker: self.interner.intern(view.worker.as_deref()),
                first_seen: view
                    .received_at
                    .or(view.sent_at)
                    .or(view.started_at)
                    .or(view.finished_at)
                    .unwrap_or(f64::NAN),
                started: view.started_at.unwrap_or(f64::NAN),
                finished: view.finished_at.unwrap_or(f64::NAN),
                runtime: record.runtime().unwrap_or(f64::NAN),
            };
            if record.needs_poll() {
                self.pollable.insert(seq);
            } else {
                self.pollable.remove(&seq);
            }
            self.keys[at] = key;
        }
        if search {
            let stale = take_marked(&mut self.all_texts_stale, &mut self.stale_texts, held);
            for seq in stale {
                if let Some(at) = self.position(seq) {
                    self.texts[at] = self.records[at].search_text();
                }
            }
        }
    }

    /// Search texts, beside [`TaskTable::keys`] (call
    /// [`TaskTable::refresh`] with `search` first).
    pub(crate) fn texts(&self) -> &VecDeque<String> {
        &self.texts
    }

    /// Keys, oldest first (call [`TaskTable::refresh`] first).
    pub(crate) fn keys(&self) -> &VecDeque<Key> {
        &self.keys
    }

    /// The record at `at` (an index into [`TaskTable::keys`]).
    pub(crate) fn at(&self, at: usize) -> Option<&TaskRecord> {
        self.records.get(at)
    }

    /// Newest first.
    pub(crate) fn newest(&self) -> impl Iterator<Item = &TaskRecord> {
        self.records.iter().rev()
    }

    /// Ids of tasks to read from the backend: unfinished ones, and
    /// finished ones whose final document was not read yet (those first);
    /// the least recently read first, at most `max`, none read within
    /// `min_age`.
    pub(crate) fn due_for_poll(&mut self, max: usize, min_age: std::time::Duration) -> Vec<String> {
        self.refresh(false);
        let mut due: Vec<(bool, Option<Instant>, &String)> = self
            .pollable
            .iter()
            .filter_map(|seq| self.records.get(usize::try_from(seq - self.base).ok()?))
            .filter(|r| r.needs_poll() && r.polled.is_none_or(|t| t.elapsed() >= min_age))
            .map(|r| (!r.view.ready, r.polled, &r.view.id))
            .collect();
        due.sort_by_key(|(unfinished, polled, _)| (*unfinished, *polled));
        due.into_iter()
            .take(max)
            .map(|(_, _, id)| id.clone())
            .collect()
    }

    /// How many records are in each state.
    pub(crate) fn count_by_state(&mut self) -> std::collections::BTreeMap<String, u64> {
        self.refresh(false);
        let mut counts: HashMap<u32, u64> = HashMap::new();
        for key in &self.keys {
            *counts.entry(key.state).or_insert(0) += 1;
        }
        counts
            .into_iter()
            .map(|(state, n)| (self.interner.text(state).to_owned(), n))
            .collect()
    }
}

/// The records to rebuild and clear the marks of: every one held when `all`
/// is set (the marks outgrew their bound and were dropped), else those
/// marked.
fn take_marked(all: &mut bool, marked: &mut Vec<u64>, held: std::ops::Range<u64>) -> Vec<u64> {
    if std::mem::take(all) {
        held.collect()
    } else {
        std::mem::take(marked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_evicts_the_oldest() {
        let mut table = TaskTable::new(2);
        table.entry("a");
        table.entry("b");
        table.entry("c");
        assert!(table.get("a").is_none());
        let ids: Vec<_> = table.newest().map(|r| r.view.id.clone()).collect();
        assert_eq!(ids, ["c", "b"]);
    }
}
