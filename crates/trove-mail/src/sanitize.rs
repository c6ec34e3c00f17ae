//! Email HTML made safe to show on a public page.
//!
//! ammonia removes scripts, event handlers, forms, frames and styles. On top of its
//! defaults, every resource that would be fetched when the page is shown is removed:
//! remote images are tracking pixels, and a reader on Tor must not be made to reach a
//! third party by opening an email. Links stay, marked `rel="noopener noreferrer nofollow"`.

use std::collections::HashSet;
use std::sync::LazyLock;

static CLEANER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::default();
    b.rm_tags(["img", "picture", "source", "video", "audio", "track"])
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(Some("noopener noreferrer nofollow"));
    b
});

/// Sanitised HTML, safe to embed in a page (no scripts, no styles, nothing fetched).
pub fn sanitize_html(html: &str) -> String {
    // Serialised into a buffer sized for the input, not through `Display`, which
    // serialises into a buffer of its own and copies that into a `String` that grows.
    let mut out = Vec::with_capacity(html.len());
    CLEANER
        .clean(html)
        .write_to(&mut out)
        .expect("writing to a Vec does not fail");
    String::from_utf8(out).expect("html5ever writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_active_and_remote_content() {
        let out = sanitize_html(
            r#"<p onclick="x()">Hi<script>alert(1)</script><img src="https://t.example/p.gif"><a href="javascript:alert(1)">j</a><a href="https://ok.example/">ok</a><iframe src="https://e"></iframe><style>body{}</style></p>"#,
        );
        assert!(!out.contains("script"), "{out}");
        assert!(!out.contains("onclick"), "{out}");
        assert!(!out.contains("t.example"), "{out}");
        assert!(!out.contains("javascript"), "{out}");
        assert!(!out.contains("iframe"), "{out}");
        assert!(out.contains(r#"href="https://ok.example/""#), "{out}");
        assert!(out.contains("noreferrer"), "{out}");
    }
}
