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
mod pdf;
pub mod pii;
pub mod read;
pub mod sanitize;

pub use parse::{
    Attachment, Defect, MailDate, Mailbox, Parsed, decoded_header_text, parse,
    parse_with_header_text,
};
pub use sanitize::sanitize_html;

/// What a caught panic said (`panic!("…")` carries a `&str` or a `String`), if anything.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> Option<String> {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
}
