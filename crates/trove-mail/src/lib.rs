//! Pure mail handling for trove: bytes in, values out. No database, no async, no network.
//!
//! The principal entry points are [`read::read_path`], which finds the messages in a file
//! or directory tree whatever its format, and [`parse::parse`], which turns one message's
//! bytes into a [`parse::Parsed`] value that records what was wrong with it instead of
//! failing. [`sanitize::sanitize_html`] makes email HTML safe to publish.

pub mod dkim;
pub mod extract;
pub mod mbox;
pub mod parse;
pub mod pii;
pub mod read;
pub mod sanitize;

pub use parse::{Attachment, Defect, MailDate, Mailbox, Parsed, decoded_header_text, parse};
pub use sanitize::sanitize_html;
