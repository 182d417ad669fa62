//! Where a channel's messages wait: the outbox in the state, or — while the state cannot be
//! written — the memory queue the reader hands them to. Both are a [`Queue`], so the sender has
//! one way to send, retry and give up, whichever a message comes from.

use crate::log;
use crate::render::alert::{AlertKind, Item};
use crate::render::summary::Report;
use crate::store::State;
use crate::store::outbox::{self, MemoryMessage, MemoryQueue, Next};
use std::rc::Rc;

/// The most incidents in one message.
const MAX_BATCH: usize = 100;

/// After a failure to read or write the outbox, it is looked at again this much later.
const OUTBOX_RETRY_MS: i64 = 5_000;

/// A message taken from a queue, to send.
pub struct Message {
    /// Its delivery id (the email `Message-ID`, the webhook's delivery header, …): one id,
    /// one content, however often it is sent.
    pub id: String,
    pub kind: AlertKind,
    pub content: Content,
    /// The incidents it is about.
    pub keys: Vec<String>,
    /// The ids of the messages that opened its incidents (email threading).
    pub references: Vec<String>,
    /// Tries so far, and when its oldest part was made (retries stop after `give_up_after`).
    pub attempts: u32,
    pub oldest: i64,
    from: From,
}

/// What a message says.
pub enum Content {
    Items(Vec<Item>),
    Summary(Box<Report>),
    /// The stored message cannot be read back (fails permanently).
    Unreadable(String),
}

/// Which rows (or memory entry) a message is, for its queue.
enum From {
    Rows(Vec<i64>),
    Memory(Box<MemoryMessage>),
}

/// What a queue has for a channel now.
pub enum Take {
    Send(Message),
    /// Nothing due before this time (Unix ms); `None`: nothing waiting.
    Wait(Option<i64>),
}

/// A channel's queue of messages.
pub trait Queue {
    /// The next message due, in order.
    fn take(&mut self, now: i64) -> Take;
    /// A message taken but not tried (the channel cannot be built yet) goes back first in line.
    fn give_back(&mut self, m: Message);
    /// The receiver accepted it. Err: that could not be recorded (it is recorded later, and
    /// never sent again meanwhile).
    fn sent(&mut self, m: Message, now: i64) -> anyhow::Result<()>;
    /// To be tried again at `at`.
    fn retry(&mut self, m: Message, at: i64, error: &str) -> anyhow::Result<()>;
    /// Given up.
    fn failed(&mut self, m: Message, error: &str, now: i64) -> anyhow::Result<()>;
    /// Messages waiting in all (the outbox's depth, for `/metrics`), if this queue counts them.
    fn depth(&self) -> Option<u64>;
    /// Whether this is the memory queue (its log lines say so).
    fn in_memory(&self) -> bool;
}

/// The outbox in the state, as one channel sees it.
pub struct Outbox {
    db: Rc<State>,
    channel: String,
    group_wait_ms: i64,
    /// Messages delivered whose delivery could not be recorded (disk full): recorded as soon
    /// as it can be, never sent again meanwhile. (rows, message id, when sent)
    unrecorded: Vec<(Vec<i64>, String, i64)>,
}

impl Outbox {
    pub fn new(db: Rc<State>, channel: &str, group_wait_ms: i64) -> Outbox {
        Outbox {
            db,
            channel: channel.to_string(),
            group_wait_ms,
            unrecorded: Vec::new(),
        }
    }

    fn rows(m: &Message) -> &[i64] {
        match &m.from {
            From::Rows(ids) => ids,
            From::Memory(_) => &[],
        }
    }
}

impl Queue for Outbox {
    fn take(&mut self, now: i64) -> Take {
        let conn = self.db.conn();
        self.unrecorded
            .retain(|(ids, id, at)| outbox::sent(conn, ids, id, *at).is_err());
        let rows = match outbox::next(conn, &self.channel, now, self.group_wait_ms, MAX_BATCH) {
            Ok(Next::Idle) => return Take::Wait(None),
            Ok(Next::Wait(t)) => return Take::Wait(Some(t)),
            Ok(Next::Send(rows))
                if rows.iter().any(|r| {
                    self.unrecorded
                        .iter()
                        .any(|(ids, _, _)| ids.contains(&r.id))
                }) =>
            {
                return Take::Wait(Some(now + OUTBOX_RETRY_MS));
            }
            Ok(Next::Send(rows)) => rows,
            Err(e) => {
                log!(
                    Error,
                    "reading the outbox",
                    channel = self.channel,
                    error = e
                );
                return Take::Wait(Some(now + OUTBOX_RETRY_MS));
            }
        };
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let kind = rows[0].kind;
        let id = match &rows[0].message_id {
            Some(m) => m.clone(),
            None => {
                // Its rows are fixed before the first try, so a retry (or a resend after a
                // restart) carries the same content under the same id.
                let id = outbox::message_id(rows[0].id, rows[0].created, &self.channel);
                if let Err(e) = outbox::compose(conn, &ids, &id) {
                    log!(
                        Error,
                        "recording a message's rows",
                        channel = self.channel,
                        error = e
                    );
                    return Take::Wait(Some(now + OUTBOX_RETRY_MS));
                }
                id
            }
        };
        let content = if kind == AlertKind::Summary {
            match serde_json::from_str::<Report>(&rows[0].item) {
                Ok(r) => Content::Summary(Box::new(r)),
                Err(e) => Content::Unreadable(format!("the stored summary cannot be read: {e}")),
            }
        } else {
            match outbox::items(&rows) {
                Ok(items) => Content::Items(items),
                Err(e) => Content::Unreadable(format!("the stored message cannot be read: {e}")),
            }
        };
        let keys: Vec<String> = rows.iter().map(|r| r.incident.clone()).collect();
        let references = if matches!(kind, AlertKind::Opened | AlertKind::Summary) {
            Vec::new()
        } else {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            outbox::opened_message_ids(conn, &self.channel, &keys).unwrap_or_default()
        };
        Take::Send(Message {
            id,
            kind,
            content,
            keys,
            references,
            attempts: rows.iter().map(|r| r.attempts).max().unwrap_or(0),
            oldest: rows.iter().map(|r| r.created).min().unwrap_or(now),
            from: From::Rows(ids),
        })
    }

    fn give_back(&mut self, _: Message) {
        // Its rows are still pending.
    }

    fn sent(&mut self, m: Message, now: i64) -> anyhow::Result<()> {
        let ids = Outbox::rows(&m).to_vec();
        outbox::sent(self.db.conn(), &ids, &m.id, now).map_err(|e| {
            self.unrecorded.push((ids, m.id, now));
            e.into()
        })
    }

    fn retry(&mut self, m: Message, at: i64, error: &str) -> anyhow::Result<()> {
        Ok(outbox::retry(self.db.conn(), Outbox::rows(&m), at, error)?)
    }

    fn failed(&mut self, m: Message, error: &str, now: i64) -> anyhow::Result<()> {
        Ok(outbox::failed(
            self.db.conn(),
            Outbox::rows(&m),
            error,
            now,
        )?)
    }

    fn depth(&self) -> Option<u64> {
        outbox::depth(self.db.conn()).ok()
    }

    fn in_memory(&self) -> bool {
        false
    }
}

/// The messages the reader handed over in memory for one channel (the state could not be
/// written when they were made). Delivered ones are recorded by the reader once the state can
/// be written again; here they are only taken off the queue.
pub struct Memory {
    queue: MemoryQueue,
    channel: String,
}

impl Memory {
    pub fn new(queue: MemoryQueue, channel: &str) -> Memory {
        Memory {
            queue,
            channel: channel.to_string(),
        }
    }

    fn push_front(&self, m: MemoryMessage) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_front(m);
    }
}

impl Queue for Memory {
    fn take(&mut self, now: i64) -> Take {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let m = match q.iter().position(|m| m.channel == self.channel) {
            Some(i) if q[i].next_try <= now => q.remove(i).expect("found"),
            Some(i) => return Take::Wait(Some(q[i].next_try)),
            None => return Take::Wait(None),
        };
        Take::Send(Message {
            id: outbox::memory_message_id(m.created, &self.channel),
            kind: m.kind,
            content: Content::Items(m.items.clone()),
            keys: m.keys.clone(),
            references: Vec::new(),
            attempts: m.attempts,
            oldest: m.created,
            from: From::Memory(Box::new(m)),
        })
    }

    fn give_back(&mut self, m: Message) {
        if let From::Memory(mm) = m.from {
            self.push_front(*mm);
        }
    }

    fn sent(&mut self, _: Message, _: i64) -> anyhow::Result<()> {
        Ok(())
    }

    fn retry(&mut self, m: Message, at: i64, _: &str) -> anyhow::Result<()> {
        if let From::Memory(mut mm) = m.from {
            mm.attempts += 1;
            mm.next_try = at;
            self.push_front(*mm);
        }
        Ok(())
    }

    fn failed(&mut self, _: Message, _: &str, _: i64) -> anyhow::Result<()> {
        Ok(())
    }

    fn depth(&self) -> Option<u64> {
        None
    }

    fn in_memory(&self) -> bool {
        true
    }
}
