//! Getting messages to people: the sender thread takes messages from the outbox (or, while the
//! state cannot be written, from memory), renders them for each channel and delivers them with
//! deadlines, retries and backoff.

pub mod channel;
pub mod queue;
pub mod sender;
pub mod settings;
