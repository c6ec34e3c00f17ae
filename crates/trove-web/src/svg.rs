//! Pictures drawn on the server, so that they need no JavaScript: the volume of email per
//! month, for the whole archive or any search.

use std::fmt::Write;

use trove_site::Bucket;

/// Each month from the first to the last of `months` (`YYYY-MM` keys, in order), with
/// its count; months without email are zero.
fn every_month(months: &[Bucket]) -> Vec<(i32, u32, u64)> {
    let parse = |v: &str| -> Option<(i32, u32)> {
        let (y, m) = v.split_once('-')?;
        Some((y.parse().ok()?, m.parse().ok()?))
    };
    let known: Vec<(i32, u32, u64)> = months
        .iter()
        .filter_map(|b| parse(&b.value).map(|(y, m)| (y, m, b.count)))
        .collect();
    let (Some(first), Some(last)) = (known.first(), known.last()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let (mut y, mut m) = (first.0, first.1);
    let mut i = 0;
    // A stray date (year 1970 or 2038) would make thousands of empty months: cap it.
    while (y, m) <= (last.0, last.1) && out.len() < 1200 {
        let count = if i < known.len() && (known[i].0, known[i].1) == (y, m) {
            i += 1;
            known[i - 1].2
        } else {
            0
        };
        out.push((y, m, count));
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    out
}

/// What a query needs escaped inside a URL's query string: controls, space and the
/// characters that end or split it. Letters, digits, `:` and `-` stay as they are, which
/// keeps a hundred month links short.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'\'')
    .add(b'=');

/// An SVG bar chart of email per month. Each bar links to the search narrowed to its
/// month and says its count in a tooltip; the picture's title sums it up for screen
/// readers.
///
/// Coordinates are whole tenths of a unit (the view box is 6,000 wide): integers print
/// far faster than floats, and the picture is drawn for every search page.
pub fn timeline(months: &[Bucket], query: &str) -> String {
    let all = every_month(months);
    if all.is_empty() {
        return String::from(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" viewBox=\"0 0 300 20\" class=\"timeline\"><title>No dated emails</title></svg>",
        );
    }
    let peak = all.iter().map(|m| m.2).max().unwrap_or(1).max(1);
    let (peak_y, peak_m, _) = all
        .iter()
        .find(|m| m.2 == peak)
        .copied()
        .unwrap_or_default();
    // About 6,000 tenths wide whatever the span, so the picture keeps its shape.
    let months_drawn = all.len() as u64;
    let bar = (6000 / months_drawn).clamp(20, 400);
    let (h, label) = (800u64, 140u64);
    let width = (months_drawn * bar).max(600);
    let total: u64 = all.iter().map(|m| m.2).sum();
    let mut svg = String::with_capacity(200 + all.len() * 140);
    let _ = write!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" role=\"img\" viewBox=\"0 0 {width} {}\" aria-labelledby=\"timeline-title\">\
         <title id=\"timeline-title\">{total} emails by month, {:04}-{:02} to {:04}-{:02}; the most, {peak}, in {peak_y:04}-{peak_m:02}</title>\
         <g fill=\"#0b4f9c\">",
        h + label,
        all[0].0,
        all[0].1,
        all[all.len() - 1].0,
        all[all.len() - 1].1,
    );
    let base = percent_encoding::utf8_percent_encode(query.trim(), QUERY_VALUE).to_string();
    let space = if base.is_empty() { "" } else { "%20" };
    let bar_width = (bar * 85 / 100).max(10);
    // The colours and sizes are attributes of two groups, not a <style>: the site's
    // Content-Security-Policy allows no inline style, and the picture must look the
    // same inside a page and on its own.
    let mut years = String::new();
    let mut digits = itoa::Buffer::new();
    let mut month = String::with_capacity(8);
    for (i, (y, m, count)) in all.iter().enumerate() {
        let x = i as u64 * bar;
        // An empty month is drawn as nothing but still gets a hover target; any other
        // at least 1.5 units tall, so that it can be seen.
        let height = if *count == 0 {
            0
        } else {
            (count * h / peak).max(15)
        };
        // Pieces pushed and numbers written by `itoa`: `write!` with eight arguments a
        // bar was most of the picture's cost, drawn for every search page.
        month.clear();
        year_month(&mut month, *y, *m);
        svg.push_str("<a href=\"/search?q=");
        svg.push_str(&base);
        svg.push_str(space);
        svg.push_str("date:");
        svg.push_str(&month);
        svg.push_str("\"><rect class=\"bar\" x=\"");
        svg.push_str(digits.format(x));
        svg.push_str("\" y=\"");
        svg.push_str(digits.format(h - height));
        svg.push_str("\" width=\"");
        svg.push_str(digits.format(bar_width));
        svg.push_str("\" height=\"");
        svg.push_str(digits.format(height));
        svg.push_str("\"><title>");
        svg.push_str(&month);
        svg.push_str(": ");
        svg.push_str(digits.format(*count));
        svg.push_str(" emails</title></rect></a>");
        if *m == 1 || i == 0 {
            let _ = write!(years, "<text x=\"{x}\" y=\"{}\">{y}</text>", h + label - 20);
        }
    }
    let _ = write!(
        svg,
        "</g><g font-size=\"110\" fill=\"#555\" class=\"year\">{years}</g></svg>"
    );
    svg
}

/// `YYYY-MM` as `{y:04}-{m:02}` writes it, without the formatter for the years trove
/// meets (0 to 9999; any other goes through it).
fn year_month(out: &mut String, y: i32, m: u32) {
    match (u16::try_from(y), u8::try_from(m)) {
        (Ok(y @ 0..=9999), Ok(m @ 0..=99)) => {
            for d in [y / 1000, y / 100 % 10, y / 10 % 10, y % 10] {
                out.push(char::from(b'0' + d as u8));
            }
            out.push('-');
            out.push(char::from(b'0' + m / 10));
            out.push(char::from(b'0' + m % 10));
        }
        _ => {
            let _ = write!(out, "{y:04}-{m:02}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(v: &str, c: u64) -> Bucket {
        Bucket {
            value: v.into(),
            count: c,
        }
    }

    #[test]
    fn year_month_writes_what_the_formatter_writes() {
        for y in [-12, 0, 7, 999, 1000, 1970, 2001, 9999, 10000, 123456] {
            for m in [0, 1, 9, 10, 12, 99, 100] {
                let mut ours = String::new();
                year_month(&mut ours, y, m);
                assert_eq!(ours, format!("{y:04}-{m:02}"));
            }
        }
    }

    #[test]
    fn gaps_are_zero_months_and_bars_link_to_their_month() {
        let all = every_month(&[b("2000-11", 3), b("2001-02", 5)]);
        assert_eq!(
            all,
            [(2000, 11, 3), (2000, 12, 0), (2001, 1, 0), (2001, 2, 5)]
        );
        let svg = timeline(&[b("2000-11", 3), b("2001-02", 5)], "gas");
        assert!(svg.contains("8 emails by month, 2000-11 to 2001-02; the most, 5, in 2001-02"));
        assert!(svg.contains("/search?q=gas%20date:2001-02\""), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 4);
        // Colours are attributes: the site's Content-Security-Policy drops inline styles.
        assert!(!svg.contains("<style") && !svg.contains("style="), "{svg}");
        assert!(svg.contains("<g fill=\"#0b4f9c\"><a "), "{svg}");
        // A query's own quotes, ampersands and spaces are escaped in the links.
        let svg = timeline(&[b("2000-11", 3)], "\"a b\" & c");
        assert!(
            svg.contains("/search?q=%22a%20b%22%20%26%20c%20date:2000-11\""),
            "{svg}"
        );
        assert!(timeline(&[], "").contains("No dated emails"));
    }
}
