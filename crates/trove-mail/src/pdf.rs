//! The text of a PDF whose fonts are simple, read without pdf-extract's cost per glyph.
//!
//! pdf-extract decodes every glyph through a `Vec`, a `String` and encoding_rs, looks its
//! width up in a hash map and writes it through `fmt`: on the one-page invoices and
//! letters mail carries, about 480 µs for 1.2 KB of PDF, and a tenth of a 100,000-email
//! ingest's samples (BENCHMARKS.md). Most such PDFs are written by software with the
//! standard fonts (Helvetica, Times, Courier) or simple fonts with their widths given, and
//! for those a glyph is a table lookup. This module reads them, and gives the text
//! pdf-extract's `PlainTextOutput` would: the same operators, the same positions computed
//! with the same arithmetic, the same spaces and line breaks. It is trove's own because
//! the speed is the product's (ingest is measured against notmuch and mu), and its output
//! is checked against pdf-extract's on every generated PDF and on fonts × encodings × all
//! 256 codes (the tests below and in `extract.rs`).
//!
//! It answers `Ok(None)`, and pdf-extract reads the document, whenever a page holds
//! anything it does not read exactly as pdf-extract does: a composite or Type 3 font, a
//! font with a `ToUnicode` map, an embedded Type 1 or CFF program or an encoding with
//! `Differences`, a form or image (`Do`), an extended graphics state (`gs`), a named
//! colour space, or any operand pdf-extract would stop on. It answers `Err` ([`Refused`])
//! for a document pdf-extract would never finish, and [`forms_end`] says the same of the
//! forms of one left to pdf-extract.

mod core14;

use pdf_extract::content::Content;
use pdf_extract::{Dictionary, Document, Object};

/// The text of `doc` as pdf-extract's plain-text output writes it, `Ok(None)` when a
/// page uses something only pdf-extract reads (see the module's documentation), `Err`
/// for a document pdf-extract must not be given.
pub(crate) fn simple_text(doc: &Document) -> Result<Option<String>, Refused> {
    let mut out = Output {
        text: String::new(),
        last_end: 100000.,
        last_y: 0.,
        first_char: false,
        flip: Matrix::IDENTITY,
    };
    let empty = Dictionary::new();
    for page in doc.get_pages().into_values() {
        let Some(dict) = doc.get_object(page).ok().and_then(|o| o.as_dict().ok()) else {
            return Ok(None);
        };
        let Some(resources) = inherited(doc, dict, b"Resources", |o| Some(o.as_dict().ok()))?
        else {
            return Ok(None);
        };
        let Some(media_box) = inherited(doc, dict, b"MediaBox", |o| {
            let array = o.as_array().ok()?;
            Some(Some(
                array.iter().map(number).collect::<Option<Vec<f64>>>()?,
            ))
        })?
        else {
            return Ok(None);
        };
        let resources = resources.unwrap_or(&empty);
        if read_page(doc, page, dict, resources, media_box, &mut out).is_none() {
            return Ok(None);
        }
    }
    Ok(Some(out.text))
}

/// One page's text into `out`; `None` as [`simple_text`].
fn read_page(
    doc: &Document,
    page: pdf_extract::ObjectId,
    dict: &Dictionary,
    resources: &Dictionary,
    media_box: Option<Vec<f64>>,
    out: &mut Output,
) -> Option<()> {
    let [_, lly, _, ury, ..] = media_box?[..] else {
        return None;
    };
    // pdf-extract reads the art box too, and stops on one that is not four numbers.
    if let Some(Object::Array(art)) = get(doc, dict, b"ArtBox")?
        && (art.len() < 4 || !art.iter().all(|o| number(o).is_some()))
    {
        return None;
    }
    out.flip = Matrix([1., 0., 0., -1., 0., ury - lly]);
    // The page's fonts first: one only pdf-extract reads sends the document there
    // before its content is inflated and parsed for nothing.
    let mut fonts = Vec::new();
    if let Some(Object::Dictionary(named)) = get(doc, resources, b"Font")? {
        for (name, font) in named {
            let font = deref(doc, font)?.as_dict().ok()?;
            fonts.push((name.clone(), simple_font(doc, font)?));
        }
    }
    let content = Content::decode(&doc.get_page_content(page).ok()?).ok()?;
    Page { fonts }.run(&content.operations, out)
}

/// `key` of a page or of the first of its ancestors whose `key`, dereferenced, `read`
/// accepts (`Some(None)` from `read`: not this one, ask the parent), as pdf-extract's
/// `get_inherited`. `None`: a reference or a value pdf-extract would stop on.
///
/// `Err` when the ancestors loop before one holds `key`: pdf-extract would follow them
/// round the loop for ever (its lookup is a tail call; no answer in 20 s).
fn inherited<'a, T>(
    doc: &'a Document,
    mut dict: &'a Dictionary,
    key: &[u8],
    read: impl Fn(&'a Object) -> Option<Option<T>>,
) -> Result<Option<Option<T>>, Refused> {
    let mut seen = Vec::new();
    loop {
        if let Ok(o) = dict.get(key) {
            let Some(o) = deref(doc, o) else {
                return Ok(None);
            };
            match read(o) {
                None => return Ok(None),
                Some(Some(found)) => return Ok(Some(Some(found))),
                Some(None) => {}
            }
        }
        let Ok(parent) = dict.get(b"Parent").and_then(Object::as_reference) else {
            return Ok(Some(None));
        };
        if seen.contains(&parent) {
            return Err(Refused("its page tree loops: a page is its own ancestor"));
        }
        seen.push(parent);
        match doc.get_dictionary(parent) {
            Ok(p) => dict = p,
            Err(_) => return Ok(Some(None)),
        }
    }
}

/// Why a PDF is read by neither reader: pdf-extract would end the process on it, or run
/// without end.
#[derive(Debug, PartialEq)]
pub(crate) struct Refused(pub(crate) &'static str);

/// How deep pdf-extract may run forms inside forms, and how many it may run for one
/// document, before trove refuses the document (no real one comes near either).
const FORMS_DEEP: usize = 64;
const FORMS_RUN: usize = 10_000;

/// `Err` when pdf-extract, running `doc`'s pages, would run a form inside itself or run
/// forms without end. Its `Do` runs a form's content with no bound on the depth, so a form
/// that shows itself (or two that show each other) runs until the thread's stack is gone,
/// which ends the process: an ingest, with every other email of the run. Asked only of a
/// document this module leaves to pdf-extract.
pub(crate) fn forms_end(doc: &Document) -> Result<(), Refused> {
    let empty = Dictionary::new();
    let mut run = 0;
    for page in doc.get_pages().into_values() {
        let Ok(dict) = doc.get_dictionary(page) else {
            continue;
        };
        let resources = inherited(doc, dict, b"Resources", |o| Some(o.as_dict().ok()))?;
        let resources = resources.flatten().unwrap_or(&empty);
        if let Ok(content) = doc.get_page_content(page) {
            forms_of(doc, &content, resources, &mut Vec::new(), &mut run)?;
        }
    }
    Ok(())
}

/// [`forms_end`] for one content stream, run with `resources` inside the forms `chain`.
fn forms_of(
    doc: &Document,
    content: &[u8],
    resources: &Dictionary,
    chain: &mut Vec<pdf_extract::ObjectId>,
    run: &mut usize,
) -> Result<(), Refused> {
    if !content.windows(2).any(|w| w == b"Do") {
        return Ok(());
    }
    // Content pdf-extract cannot decode stops it, with a panic it recovers from.
    let Ok(content) = Content::decode(content) else {
        return Ok(());
    };
    let xobjects = match get(doc, resources, b"XObject") {
        Some(Some(Object::Dictionary(x))) => x,
        _ => return Ok(()),
    };
    for op in content.operations.iter().filter(|op| op.operator == "Do") {
        let Some(name) = op.operands.first().and_then(|o| o.as_name().ok()) else {
            continue;
        };
        // A form written in place cannot hold itself; one by reference can.
        let Ok(Object::Reference(id)) = xobjects.get(name) else {
            continue;
        };
        if chain.contains(id) {
            return Err(Refused("a form in it shows itself, without end"));
        }
        *run += 1;
        if chain.len() >= FORMS_DEEP || *run > FORMS_RUN {
            return Err(Refused(
                "its forms run inside each other too deep or too often",
            ));
        }
        let Ok(Object::Stream(form)) = doc.get_object(*id) else {
            continue;
        };
        let inner = match get(doc, &form.dict, b"Resources") {
            Some(Some(Object::Dictionary(r))) => r,
            _ => resources,
        };
        let bytes = form
            .decompressed_content()
            .unwrap_or_else(|_| form.content.clone());
        chain.push(*id);
        let ended = forms_of(doc, &bytes, inner, chain, run);
        chain.pop();
        ended?;
    }
    Ok(())
}

/// The object `o` refers to, or `o`; `None` for a reference to nothing (pdf-extract
/// stops there).
fn deref<'a>(doc: &'a Document, o: &'a Object) -> Option<&'a Object> {
    match o {
        Object::Reference(id) => doc.get_object(*id).ok(),
        _ => Some(o),
    }
}

/// `key` of `dict`, dereferenced: `Some(None)` when absent.
fn get<'a>(doc: &'a Document, dict: &'a Dictionary, key: &[u8]) -> Option<Option<&'a Object>> {
    match dict.get(key) {
        Ok(o) => deref(doc, o).map(Some),
        Err(_) => Some(None),
    }
}

fn number(o: &Object) -> Option<f64> {
    match *o {
        Object::Integer(i) => Some(i as f64),
        Object::Real(r) => Some(r.into()),
        _ => None,
    }
}

/// A 2×3 matrix in PDF's row order `[a b c d e f]`, multiplied as euclid's `Transform2D`
/// (which pdf-extract uses) multiplies, term by term in the same order, so that the
/// positions and the spaces and breaks they decide are the same to the last bit.
#[derive(Clone, Copy)]
struct Matrix([f64; 6]);

impl Matrix {
    const IDENTITY: Matrix = Matrix([1., 0., 0., 1., 0., 0.]);

    fn translation(x: f64, y: f64) -> Matrix {
        Matrix([1., 0., 0., 1., x, y])
    }

    /// `self` then `after` (euclid's `post_transform`; `pre_transform` is the other way).
    fn then(&self, after: &Matrix) -> Matrix {
        let [a, b, c, d, e, f] = self.0;
        let [m11, m12, m21, m22, m31, m32] = after.0;
        Matrix([
            a * m11 + b * m21,
            a * m12 + b * m22,
            c * m11 + d * m21,
            c * m12 + d * m22,
            e * m11 + f * m21 + m31,
            e * m12 + f * m22 + m32,
        ])
    }

    fn of(operands: &[Object]) -> Option<Matrix> {
        let [a, b, c, d, e, f] = operands else {
            return None;
        };
        Some(Matrix([
            number(a)?,
            number(b)?,
            number(c)?,
            number(d)?,
            number(e)?,
            number(f)?,
        ]))
    }
}

/// pdf-extract's `PlainTextOutput`: a glyph that starts a shown string is preceded by a
/// line break or a space when it is far enough from where the last glyph ended.
struct Output {
    text: String,
    last_end: f64,
    last_y: f64,
    first_char: bool,
    flip: Matrix,
}

impl Output {
    fn character(&mut self, trm: &Matrix, width: f64, font_size: f64, c: char) {
        let position = trm.then(&self.flip);
        let [m11, m12, m21, m22, ..] = trm.0;
        let (sx, sy) = (
            font_size * m11 + font_size * m21,
            font_size * m12 + font_size * m22,
        );
        let size = (sx * sy).sqrt();
        let [.., x, y] = position.0;
        if self.first_char {
            if (y - self.last_y).abs() > size * 1.5 {
                self.text.push('\n');
            }
            if x < self.last_end && (y - self.last_y).abs() > size * 0.5 {
                self.text.push('\n');
            }
            if x > self.last_end + size * 0.1 {
                self.text.push(' ');
            }
        }
        self.text.push(c);
        self.first_char = false;
        self.last_y = y;
        self.last_end = x + width * size;
    }
}

/// A simple font as pdf-extract reads it: each code's character and width.
struct Font {
    chars: [char; 256],
    /// In thousandths of the font size; pdf-extract's `MissingWidth` for codes it has none for.
    widths: [f64; 256],
}

/// The graphics state pdf-extract keeps, less what only painting uses.
#[derive(Clone)]
struct State {
    font: Option<usize>,
    size: f64,
    char_spacing: f64,
    word_spacing: f64,
    scale: f64,
    leading: f64,
    rise: f64,
    tm: Matrix,
    ctm: Matrix,
    fill_pattern: bool,
    stroke_pattern: bool,
}

struct Page {
    /// The page's fonts by resource name, made before its content is read.
    fonts: Vec<(Vec<u8>, Font)>,
}

impl Page {
    /// pdf-extract's `process_stream` for one page's content, with `'` and `"` read as the
    /// operators they stand for (`extract::spell_out_next_line_shows`).
    fn run(
        &mut self,
        operations: &[pdf_extract::content::Operation],
        out: &mut Output,
    ) -> Option<()> {
        let mut st = State {
            font: None,
            size: f64::NAN,
            char_spacing: 0.,
            word_spacing: 0.,
            scale: 1.,
            leading: 0.,
            rise: 0.,
            tm: Matrix::IDENTITY,
            ctm: Matrix::IDENTITY,
            fill_pattern: false,
            stroke_pattern: false,
        };
        let mut stack: Vec<State> = Vec::new();
        let mut tlm = Matrix::IDENTITY;
        for op in operations {
            let operands = op.operands.as_slice();
            let first = || operands.first().and_then(number);
            match op.operator.as_str() {
                "BT" | "ET" => {
                    tlm = Matrix::IDENTITY;
                    st.tm = tlm;
                }
                "cm" => st.ctm = Matrix::of(operands)?.then(&st.ctm),
                "CS" | "cs" => {
                    let pattern = match operands.first()?.as_name().ok()? {
                        b"DeviceGray" | b"DeviceRGB" | b"DeviceCMYK" => false,
                        b"Pattern" => true,
                        _ => return None,
                    };
                    if op.operator == "CS" {
                        st.stroke_pattern = pattern;
                    } else {
                        st.fill_pattern = pattern;
                    }
                }
                "SC" | "SCN" | "sc" | "scn" => {
                    let pattern = if op.operator.starts_with('S') {
                        st.stroke_pattern
                    } else {
                        st.fill_pattern
                    };
                    if !pattern && !operands.iter().all(|o| number(o).is_some()) {
                        return None;
                    }
                }
                "TJ" => {
                    if let Object::Array(items) = operands.first()? {
                        for item in items {
                            match item {
                                Object::String(s, _) => self.show(&mut st, s, out)?,
                                Object::Integer(_) | Object::Real(_) => {
                                    let adjust = number(item)?;
                                    let tx = st.scale * ((0. - adjust / 1000.) * st.size);
                                    st.tm = Matrix::translation(tx, 0.).then(&st.tm);
                                }
                                _ => {}
                            }
                        }
                    }
                }
                "Tj" => self.show(&mut st, shown(operands.first()?)?, out)?,
                "Tc" => st.char_spacing = first()?,
                "Tw" => st.word_spacing = first()?,
                "Tz" => st.scale = first()? / 100.,
                "TL" => st.leading = first()?,
                "Ts" => st.rise = first()?,
                "Tf" => {
                    let name = operands.first()?.as_name().ok()?;
                    st.font = Some(self.font(name)?);
                    st.size = number(operands.get(1)?)?;
                }
                "Tm" => {
                    tlm = Matrix::of(operands)?;
                    st.tm = tlm;
                }
                "Td" | "TD" => {
                    let [tx, ty] = operands else { return None };
                    let (tx, ty) = (number(tx)?, number(ty)?);
                    if op.operator == "TD" {
                        st.leading = -ty;
                    }
                    tlm = Matrix::translation(tx, ty).then(&tlm);
                    st.tm = tlm;
                }
                "T*" => next_line(&mut st, &mut tlm),
                "'" => {
                    if let [s] = operands {
                        next_line(&mut st, &mut tlm);
                        self.show(&mut st, shown(s)?, out)?;
                    }
                }
                "\"" => {
                    if let [word, char, s] = operands {
                        st.word_spacing = number(word)?;
                        st.char_spacing = number(char)?;
                        next_line(&mut st, &mut tlm);
                        self.show(&mut st, shown(s)?, out)?;
                    }
                }
                "q" => stack.push(st.clone()),
                "Q" => {
                    if let Some(saved) = stack.pop() {
                        st = saved;
                    }
                }
                "w" => {
                    first()?;
                }
                "m" | "l" => numbers(operands, 2)?,
                "c" => numbers(operands, 6)?,
                "y" | "re" => numbers(operands, 4)?,
                // `v` starts from the current point, `gs` may set a font, `Do` runs a form
                // or reads an image: pdf-extract's ways with them are its own.
                "v" | "gs" | "Do" => return None,
                _ => {}
            }
        }
        Some(())
    }

    /// pdf-extract's `show_text` with the plain-text output's `output_character`.
    fn show(&self, st: &mut State, s: &[u8], out: &mut Output) -> Option<()> {
        let font = &self.fonts[st.font?].1;
        out.first_char = true;
        let last = s.len().saturating_sub(1);
        for (i, &code) in s.iter().enumerate() {
            let w0 = font.widths[code as usize] / 1000.;
            let mut spacing = st.char_spacing;
            if code == 32 {
                spacing += st.word_spacing;
            }
            // Only the string's first glyph is measured against the last one shown, and
            // only its last glyph's end is kept: the ones between are only written.
            if i == 0 || i == last {
                let tsm = Matrix([st.scale, 0., 0., 1., 0., st.rise]);
                let trm = tsm.then(&st.tm.then(&st.ctm));
                out.character(&trm, w0, st.size, font.chars[code as usize]);
            } else {
                out.text.push(font.chars[code as usize]);
            }
            let tx = st.scale * (w0 * st.size + spacing);
            st.tm = Matrix::translation(tx, 0.).then(&st.tm);
        }
        Some(())
    }

    /// The index of the page's font named `name` (one its resources do not hold stops
    /// pdf-extract, and this reader with it).
    fn font(&self, name: &[u8]) -> Option<usize> {
        self.fonts.iter().position(|(n, _)| n == name)
    }
}

fn next_line(st: &mut State, tlm: &mut Matrix) {
    *tlm = Matrix::translation(0., -st.leading).then(tlm);
    st.tm = *tlm;
}

fn shown(o: &Object) -> Option<&[u8]> {
    match o {
        Object::String(s, _) => Some(s),
        _ => None,
    }
}

/// `Some` when `operands` starts with `n` numbers, as pdf-extract reads them.
fn numbers(operands: &[Object], n: usize) -> Option<()> {
    (operands.len() >= n && operands[..n].iter().all(|o| number(o).is_some())).then_some(())
}

/// A Type 1 or TrueType font as pdf-extract's `PdfSimpleFont::new` reads it, when that
/// needs no font program, `ToUnicode` map or encoding dictionary.
fn simple_font(doc: &Document, font: &Dictionary) -> Option<Font> {
    let subtype = get(doc, font, b"Subtype")??.as_name().ok()?;
    let truetype = match subtype {
        b"Type1" => false,
        b"TrueType" => true,
        _ => return None,
    };
    let base = get(doc, font, b"BaseFont")??.as_name().ok()?;
    if font.has(b"ToUnicode") {
        return None;
    }
    if let Some(descriptor) = get(doc, font, b"FontDescriptor")?
        && let Ok(descriptor) = descriptor.as_dict()
    {
        // A program pdf-extract reads for its encoding; the TrueType one it only opens.
        if descriptor.has(b"FontFile3") || (!truetype && descriptor.has(b"FontFile")) {
            return None;
        }
        if truetype {
            get(doc, descriptor, b"FontFile2")?;
        }
        // pdf-extract decodes the character set's name, and stops on bad UTF-16.
        if let Some(Object::String(s, _)) = get(doc, descriptor, b"CharSet")?
            && s.starts_with(&[0xfe, 0xff])
            && s.len() > 2
            && (s.len() % 2 != 0
                || char::decode_utf16(s[2..].chunks(2).map(|p| u16::from_be_bytes([p[0], p[1]])))
                    .any(|c| c.is_err()))
        {
            return None;
        }
    }
    let encoding: Option<&[u16; 256]> = match get(doc, font, b"Encoding")? {
        Some(Object::Name(n)) => match n.as_slice() {
            b"WinAnsiEncoding" => Some(&WIN_ANSI),
            b"MacRomanEncoding" => Some(&MAC_ROMAN),
            _ => return None,
        },
        Some(_) => return None,
        None if truetype => Some(&WIN_ANSI),
        None => None,
    };
    // pdf-extract reads all three before it asks whether it has them, and stops on a
    // width that is not a number even when the other two are missing.
    let integer = |key: &[u8]| {
        get(doc, font, key).map(|o| match o {
            Some(Object::Integer(i)) => Some(*i),
            _ => None,
        })
    };
    let (first, last) = (integer(b"FirstChar")?, integer(b"LastChar")?);
    let given = match get(doc, font, b"Widths")? {
        Some(Object::Array(w)) => Some(w.iter().map(number).collect::<Option<Vec<f64>>>()?),
        _ => None,
    };
    let mut widths: [Option<f64>; 256] = [None; 256];
    let mut table = encoding.copied();
    if let (Some(first), Some(last), Some(given)) = (first, last, given) {
        if first.checked_add(given.len() as i64 - 1)? != last {
            return None;
        }
        for (i, w) in given.into_iter().enumerate() {
            if let Ok(code) = usize::try_from(first.saturating_add(i as i64))
                && code < 256
            {
                widths[code] = Some(w);
            }
        }
    } else if let Some((_, glyphs)) = core14::FONTS
        .iter()
        .find(|(name, _)| name.as_bytes() == base)
    {
        match &table {
            Some(encoding) => {
                let mut by_unicode: Vec<(u16, u8)> = (0..=255u8)
                    .map(|code| (encoding[code as usize], code))
                    .collect();
                by_unicode.sort_unstable();
                for &(_, width, unicode) in *glyphs {
                    let from = by_unicode.partition_point(|&(u, _)| u < unicode);
                    for &(_, code) in by_unicode[from..]
                        .iter()
                        .take_while(|&&(u, _)| u == unicode)
                    {
                        widths[code as usize] = Some(f64::from(width));
                    }
                }
            }
            None => {
                let mut own = [0u16; 256];
                for &(code, width, unicode) in *glyphs {
                    if let Ok(code) = u8::try_from(code) {
                        own[code as usize] = unicode;
                        widths[code as usize] = Some(f64::from(width));
                    }
                }
                table = Some(own);
            }
        }
    } else if matches!(base, b"Symbol" | b"ZapfDingbats") {
        return None;
    }
    // A Type 1 font with no encoding, no program and no metrics of ours is decoded by
    // PDFDocEncoding, which pdf-extract keeps and this module does not.
    let table = table?;
    let missing = match font.get(b"MissingWidth") {
        Ok(o) => number(o).unwrap_or(0.),
        Err(_) => 0.,
    };
    let mut chars = ['\0'; 256];
    for (c, &unit) in chars.iter_mut().zip(table.iter()) {
        *c = char::from_u32(u32::from(unit))?;
    }
    Some(Font {
        chars,
        widths: widths.map(|w| w.unwrap_or(missing)),
    })
}

/// A Latin encoding's table: nothing below 32, ASCII's printable codes as themselves,
/// `del` for 127 and `high` for 128–255 (the tables below differ only there).
const fn latin(del: u16, high: [u16; 128]) -> [u16; 256] {
    let mut table = [0; 256];
    let mut code = 32;
    while code < 127 {
        table[code] = code as u16;
        code += 1;
    }
    table[127] = del;
    let mut i = 0;
    while i < 128 {
        table[128 + i] = high[i];
        i += 1;
    }
    table
}

/// WinAnsiEncoding (PDF 32000-1, annex D.2), as Unicode; 0 where a code has no glyph. As
/// pdf-extract reads it, after the annex's notes: a code it leaves undefined (127 too)
/// shows a bullet, 240 a space and 255 a hyphen (octal).
#[rustfmt::skip]
static WIN_ANSI: [u16; 256] = latin(0x2022, [
    0x20AC, 0x2022, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x2022, 0x017D, 0x2022,
    0x2022, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x2022, 0x017E, 0x0178,
    0x0020, 0x00A1, 0x00A2, 0x00A3, 0x00A4, 0x00A5, 0x00A6, 0x00A7, 0x00A8, 0x00A9, 0x00AA, 0x00AB, 0x00AC, 0x002D, 0x00AE, 0x00AF,
    0x00B0, 0x00B1, 0x00B2, 0x00B3, 0x00B4, 0x00B5, 0x00B6, 0x00B7, 0x00B8, 0x00B9, 0x00BA, 0x00BB, 0x00BC, 0x00BD, 0x00BE, 0x00BF,
    0x00C0, 0x00C1, 0x00C2, 0x00C3, 0x00C4, 0x00C5, 0x00C6, 0x00C7, 0x00C8, 0x00C9, 0x00CA, 0x00CB, 0x00CC, 0x00CD, 0x00CE, 0x00CF,
    0x00D0, 0x00D1, 0x00D2, 0x00D3, 0x00D4, 0x00D5, 0x00D6, 0x00D7, 0x00D8, 0x00D9, 0x00DA, 0x00DB, 0x00DC, 0x00DD, 0x00DE, 0x00DF,
    0x00E0, 0x00E1, 0x00E2, 0x00E3, 0x00E4, 0x00E5, 0x00E6, 0x00E7, 0x00E8, 0x00E9, 0x00EA, 0x00EB, 0x00EC, 0x00ED, 0x00EE, 0x00EF,
    0x00F0, 0x00F1, 0x00F2, 0x00F3, 0x00F4, 0x00F5, 0x00F6, 0x00F7, 0x00F8, 0x00F9, 0x00FA, 0x00FB, 0x00FC, 0x00FD, 0x00FE, 0x00FF,
]);

/// MacRomanEncoding (PDF 32000-1, annex D.2), as Unicode; 0 where a code has no glyph. As
/// the annex has it: 312 is a space and 333 the currency sign (octal), not the euro that
/// Apple later put there.
#[rustfmt::skip]
static MAC_ROMAN: [u16; 256] = latin(0x0000, [
    0x00C4, 0x00C5, 0x00C7, 0x00C9, 0x00D1, 0x00D6, 0x00DC, 0x00E1, 0x00E0, 0x00E2, 0x00E4, 0x00E3, 0x00E5, 0x00E7, 0x00E9, 0x00E8,
    0x00EA, 0x00EB, 0x00ED, 0x00EC, 0x00EE, 0x00EF, 0x00F1, 0x00F3, 0x00F2, 0x00F4, 0x00F6, 0x00F5, 0x00FA, 0x00F9, 0x00FB, 0x00FC,
    0x2020, 0x00B0, 0x00A2, 0x00A3, 0x00A7, 0x2022, 0x00B6, 0x00DF, 0x00AE, 0x00A9, 0x2122, 0x00B4, 0x00A8, 0x2260, 0x00C6, 0x00D8,
    0x221E, 0x00B1, 0x2264, 0x2265, 0x00A5, 0x00B5, 0x2202, 0x2211, 0x220F, 0x03C0, 0x222B, 0x00AA, 0x00BA, 0x2126, 0x00E6, 0x00F8,
    0x00BF, 0x00A1, 0x00AC, 0x221A, 0x0192, 0x2248, 0x2206, 0x00AB, 0x00BB, 0x2026, 0x0020, 0x00C0, 0x00C3, 0x00D5, 0x0152, 0x0153,
    0x2013, 0x2014, 0x201C, 0x201D, 0x2018, 0x2019, 0x00F7, 0x25CA, 0x00FF, 0x0178, 0x2044, 0x00A4, 0x2039, 0x203A, 0xFB01, 0xFB02,
    0x2021, 0x00B7, 0x201A, 0x201E, 0x2030, 0x00C2, 0x00CA, 0x00C1, 0x00CB, 0x00C8, 0x00CD, 0x00CE, 0x00CF, 0x00CC, 0x00D3, 0x00D4,
    0xF8FF, 0x00D2, 0x00DA, 0x00DB, 0x00D9, 0x0131, 0x02C6, 0x02DC, 0x00AF, 0x02D8, 0x02D9, 0x02DA, 0x00B8, 0x02DD, 0x02DB, 0x02C7,
]);

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PDF of one page per content in `pages`, each page's `MediaBox` the one given with
    /// it, with `/F1` … the fonts given (dictionaries written out), uncompressed.
    pub(crate) fn pdf(fonts: &[&str], pages: &[(&str, &str)]) -> Vec<u8> {
        let font_refs: String = (0..fonts.len())
            .map(|i| format!("/F{} {} 0 R ", i + 1, 3 + i))
            .collect();
        let mut objects = vec![
            "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
            String::new(), // the page tree, once the pages' numbers are known
        ];
        objects.extend(fonts.iter().map(|f| f.to_string()));
        let mut kids = Vec::new();
        for (media_box, content) in pages {
            let page = objects.len() + 1;
            kids.push(format!("{page} 0 R"));
            objects.push(format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [{media_box}] /Contents {} 0 R \
                 /Resources << /Font << {font_refs}>> >> >>",
                page + 1
            ));
            objects.push(format!(
                "<< /Length {} >>\nstream\n{content}\nendstream",
                content.len()
            ));
        }
        objects[1] = format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            kids.len()
        );
        pdf_of(&objects)
    }

    /// A PDF of `objects`, numbered from 1, the first the catalogue.
    pub(crate) fn pdf_of(objects: &[String]) -> Vec<u8> {
        let mut out = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend(format!("{} 0 obj\n{o}\nendobj\n", i + 1).bytes());
        }
        let xref = out.len();
        out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
        for o in offsets {
            out.extend(format!("{o:010} 00000 n \n").bytes());
        }
        out.extend(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .bytes(),
        );
        out
    }

    /// trove's text of `bytes` next to pdf-extract's (`None` where trove leaves the
    /// document to pdf-extract, or pdf-extract stops).
    pub(crate) fn both(bytes: &[u8]) -> (Option<String>, Option<String>) {
        let doc = Document::load_mem(bytes).expect("the test's PDF loads");
        let ours = simple_text(&doc).expect("no test PDF loops");
        (ours, by_pdf_extract(doc))
    }

    /// pdf-extract's text of `doc`, `None` where it stops (with an error or a panic).
    fn by_pdf_extract(doc: Document) -> Option<String> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::extract::by_pdf_extract(doc).ok()
        }))
        .ok()
        .flatten()
    }

    /// Reads `bytes` both ways and requires trove to have read it, the same as pdf-extract.
    #[track_caller]
    fn same(bytes: &[u8]) -> String {
        let (ours, theirs) = both(bytes);
        let ours = ours.expect("trove reads this PDF itself");
        let theirs = theirs.expect("pdf-extract reads this PDF");
        if ours != theirs {
            let at = ours
                .chars()
                .zip(theirs.chars())
                .take_while(|(a, b)| a == b)
                .count();
            let tail = |s: &str| {
                s.chars()
                    .skip(at.saturating_sub(3))
                    .take(6)
                    .map(|c| format!("{:04X}", c as u32))
                    .collect::<Vec<_>>()
            };
            panic!(
                "differ at char {at}: ours {:?}, pdf-extract's {:?}",
                tail(&ours),
                tail(&theirs)
            );
        }
        ours
    }

    /// Every code, 0–255, in a layout that uses each operator pdf-extract reads for
    /// text: lines of 16 codes moved with `Td`, `TD`, `T*` and `'`, kerning both ways in
    /// `TJ`, character and word spacing, horizontal scaling, rise, a rotated and scaled text
    /// matrix, a `cm` saved and restored, and a font size change.
    fn all_codes() -> String {
        let hex = |from: u32| -> String { (from..from + 16).map(|c| format!("{c:02X}")).collect() };
        let mut c = String::from("BT /F1 11 Tf 72 740 Td 13 TL ");
        for row in 0..16 {
            let from = row * 16;
            match row % 8 {
                0 => c += &format!("<{}> Tj 0 -13 Td ", hex(from)),
                1 => c += &format!("[<{}> -300 <{}> 120 <20>] TJ T* ", hex(from), hex(from)),
                2 => c += &format!("2 Tc 5 Tw <{}> Tj 0 Tc 0 Tw 0 -20 TD ", hex(from)),
                3 => c += &format!("<{}> ' ", hex(from)),
                4 => c += &format!("3 1 <{}> \" 0 Tw 0 Tc ", hex(from)),
                5 => c += &format!("80 Tz 4 Ts <{}> Tj 100 Tz 0 Ts T* ", hex(from)),
                6 => c += &format!("/F1 7 Tf <{}> Tj /F1 11 Tf T* ", hex(from)),
                _ => c += &format!("[<{}> 2000 <41>] TJ T* ", hex(from)),
            }
        }
        c += "ET q 0.8 0.6 -0.6 0.8 100 50 cm BT /F1 9 Tf 1 0.2 0 1 30 400 Tm (rotated) Tj \
              -40 -11 Td (and moved) Tj ET Q BT /F1 12 Tf 300 100 Td (after Q) Tj ET";
        c
    }

    #[test]
    fn standard_fonts_read_as_pdf_extract_reads_them() {
        for (name, _) in core14::FONTS {
            for encoding in [
                "",
                "/Encoding /WinAnsiEncoding",
                "/Encoding /MacRomanEncoding",
            ] {
                let font =
                    format!("<< /Type /Font /Subtype /Type1 /BaseFont /{name} {encoding} >>");
                let text = same(&pdf(&[&font], &[("0 0 612 792", &all_codes())]));
                assert!(text.contains("after Q"), "{name} {encoding}: {text:?}");
            }
        }
    }

    /// Each code of each standard font shown alone, then a letter ten points to its
    /// right, at font sizes a quarter of a point apart: the letter is written after a
    /// space only when the code's glyph ended more than a tenth of the size before it, so
    /// which sizes get a space tells each glyph's width (to about 15 thousandths of the
    /// size at the widths of text), and they must be pdf-extract's.
    #[test]
    fn standard_fonts_have_pdf_extracts_widths() {
        let sizes: Vec<f64> = (0..=128).map(|i| 8. + f64::from(i) / 4.).collect();
        let mut measured = Vec::new();
        for (name, glyphs) in core14::FONTS {
            // Faces with the same widths (Courier's four, an oblique and its upright) once.
            if measured.contains(&glyphs.as_ptr()) {
                continue;
            }
            measured.push(glyphs.as_ptr());
            let font = format!("<< /Type /Font /Subtype /Type1 /BaseFont /{name} >>");
            let mut content = String::new();
            for code in 32..=255 {
                for size in &sizes {
                    content +=
                        &format!("BT /F1 {size} Tf 0 700 Td <{code:02X}> Tj 10 0 Td (A) Tj ET ");
                }
            }
            same(&pdf(&[&font], &[("0 0 612 792", &content)]));
        }
    }

    #[test]
    fn fonts_with_their_widths_read_as_pdf_extract_reads_them() {
        let widths: String = (32..=255)
            .map(|c| format!("{} ", 250 + (c * 37) % 600))
            .collect();
        for (subtype, base, encoding) in [
            ("TrueType", "Arial", ""),
            ("TrueType", "Arial,Bold", "/Encoding /MacRomanEncoding"),
            ("Type1", "Helvetica", "/Encoding /WinAnsiEncoding"),
            ("Type1", "Frutiger", "/Encoding /WinAnsiEncoding"),
        ] {
            let font = format!(
                "<< /Type /Font /Subtype /{subtype} /BaseFont /{base} {encoding} \
                 /FirstChar 32 /LastChar 255 /Widths [{widths}] /MissingWidth 333 >>"
            );
            same(&pdf(&[&font], &[("0 0 612 792", &all_codes())]));
        }
        // No widths and no metrics of ours: every glyph is MissingWidth wide.
        let font = "<< /Type /Font /Subtype /TrueType /BaseFont /Verdana /MissingWidth 500 >>";
        same(&pdf(&[font], &[("0 0 612 792", &all_codes())]));
    }

    /// Two pages of different sizes and two fonts: the output's state runs on from one
    /// page to the next, and each page names its fonts afresh.
    #[test]
    fn pages_and_fonts_read_as_pdf_extract_reads_them() {
        let helvetica = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold >>";
        let courier =
            "<< /Type /Font /Subtype /Type1 /BaseFont /Courier /Encoding /WinAnsiEncoding >>";
        let text = same(&pdf(
            &[helvetica, courier],
            &[
                (
                    "0 0 612 792",
                    "BT /F1 14 Tf 72 720 Td (Invoice 2024-117) Tj /F2 10 Tf 0 -30 Td (Jane Roe, 12 Main St) Tj ET",
                ),
                (
                    "0 -100 595 742",
                    "BT /F2 10 Tf 72 700 Td (Total due: 1,250.00) Tj 200 0 Td (paid) Tj ET",
                ),
            ],
        ));
        for line in [
            "Invoice 2024-117",
            "Jane Roe, 12 Main St",
            "Total due: 1,250.00",
        ] {
            assert!(text.contains(line), "{line:?} not in {text:?}");
        }
    }

    /// What trove does not read itself goes to pdf-extract.
    #[test]
    fn what_only_pdf_extract_reads_is_left_to_it() {
        let helvetica = "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>";
        let page = "BT /F1 11 Tf 72 740 Td (Jane Roe) Tj ET";
        for (font, content) in [
            (
                "<< /Type /Font /Subtype /Type0 /BaseFont /X /Encoding /Identity-H >>",
                page,
            ),
            ("<< /Type /Font /Subtype /Type3 /BaseFont /X >>", page),
            ("<< /Type /Font /Subtype /Type1 /BaseFont /Symbol >>", page),
            (
                "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 9 0 R >>",
                page,
            ),
            (
                "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica \
                 /Encoding << /Differences [65 /B] >> >>",
                page,
            ),
            (
                "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /StandardEncoding >>",
                page,
            ),
            // Decoded by PDFDocEncoding in pdf-extract.
            (
                "<< /Type /Font /Subtype /Type1 /BaseFont /Frutiger >>",
                page,
            ),
            (helvetica, "BT /F1 11 Tf 72 740 Td /X0 Do (Jane Roe) Tj ET"),
            (helvetica, "/G0 gs BT /F1 11 Tf 72 740 Td (Jane Roe) Tj ET"),
            (helvetica, "/CS0 cs BT /F1 11 Tf 72 740 Td (Jane Roe) Tj ET"),
            (helvetica, "BT (no font yet) Tj ET"),
            (helvetica, "BT /F1 11 Tf 72 740 Td 42 Tj ET"),
            (helvetica, "BT /F1 11 Tf 72 Td (Jane Roe) Tj ET"),
        ] {
            let (ours, _) = both(&pdf(&[font], &[("0 0 612 792", content)]));
            assert_eq!(ours, None, "{font} {content}");
        }
        // The same page with the plain font is read.
        let text = same(&pdf(&[helvetica], &[("0 0 612 792", page)]));
        assert_eq!(text.trim(), "Jane Roe");
    }

    /// A page that is its own parent and has no media box: pdf-extract would look for the
    /// box up that chain until its thread's stack ran out, which ends the process (an
    /// ingest of every other email with it). trove refuses the document instead.
    #[test]
    fn a_page_tree_that_loops_is_refused() {
        let content = "BT /F1 11 Tf 72 740 Td (Jane Roe) Tj ET";
        let objects = [
            "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
            "<< /Type /Page /Parent 3 0 R /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>"
                .to_string(),
            format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
        ];
        let bytes = pdf_of(&objects);
        let doc = Document::load_mem(&bytes).expect("the test's PDF loads");
        assert!(simple_text(&doc).is_err());
        let read = crate::extract::attachment_text("application/pdf", Some("loop.pdf"), &bytes);
        assert!(
            matches!(&read, crate::extract::AttachmentText::Unreadable(why) if why.contains("loops")),
            "{read:?}"
        );
    }

    /// A form that shows itself: pdf-extract would run it inside itself until its
    /// thread's stack ran out. trove refuses the document instead.
    #[test]
    fn a_form_that_shows_itself_is_refused() {
        let with_form = |form: &str| {
            let content = "BT /F1 11 Tf 72 740 Td (Jane Roe) Tj ET /X0 Do";
            pdf_of(&[
                "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
                "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R \
                 /Resources << /Font << /F1 5 0 R >> /XObject << /X0 6 0 R >> >> >>"
                    .to_string(),
                format!(
                    "<< /Length {} >>\nstream\n{content}\nendstream",
                    content.len()
                ),
                "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
                format!(
                    "<< /Type /XObject /Subtype /Form /BBox [0 0 10 10] \
                     /Resources << /XObject << /X0 6 0 R >> >> /Length {} >>\nstream\n{form}\nendstream",
                    form.len()
                ),
            ])
        };
        let bytes = with_form("q /X0 Do Q");
        let doc = Document::load_mem(&bytes).expect("the test's PDF loads");
        assert_eq!(
            simple_text(&doc),
            Ok(None),
            "left to pdf-extract, which must not get it"
        );
        assert!(forms_end(&doc).is_err());
        let read = crate::extract::attachment_text("application/pdf", Some("form.pdf"), &bytes);
        assert!(
            matches!(&read, crate::extract::AttachmentText::Unreadable(why) if why.contains("itself")),
            "{read:?}"
        );
        // The same form, not shown from inside itself, is run by pdf-extract as before.
        let doc = Document::load_mem(&with_form("q 1 0 0 1 0 0 cm Q")).expect("loads");
        assert_eq!(forms_end(&doc), Ok(()));
    }

    /// The repository's PDFs made by other programs: where trove reads one itself, its
    /// text is pdf-extract's.
    #[test]
    fn real_pdfs_read_as_pdf_extract_reads_them() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/attachments");
        for name in ["reportlab.pdf", "chromium.pdf"] {
            let bytes = std::fs::read(format!("{dir}/{name}")).expect("fixture");
            let (ours, theirs) = both(&bytes);
            // reportlab writes Helvetica with WinAnsiEncoding, which trove reads; Chromium
            // writes composite (Type 0) fonts with ToUnicode maps, left to pdf-extract.
            assert_eq!(ours.is_some(), name == "reportlab.pdf", "{name}");
            if let Some(ours) = ours {
                assert_eq!(Some(ours), theirs, "{name}");
            }
        }
    }

    /// `TROVE_PDFS=DIR cargo test -p trove-mail pdfs_in_a_directory -- --ignored --nocapture`
    /// compares the two readers on every `*.pdf` in DIR and prints how many trove read.
    #[test]
    #[ignore = "reads a directory named by TROVE_PDFS"]
    fn pdfs_in_a_directory() {
        let dir = std::env::var("TROVE_PDFS").expect("TROVE_PDFS names a directory");
        let (mut ours_read, mut total, mut differ) = (0, 0, Vec::new());
        for entry in std::fs::read_dir(&dir).expect("a directory") {
            let path = entry.expect("an entry").path();
            if path.extension().is_none_or(|e| e != "pdf") {
                continue;
            }
            let Ok(mut doc) = Document::load_mem(&std::fs::read(&path).expect("readable")) else {
                continue;
            };
            if doc.is_encrypted() && doc.decrypt("").is_err() {
                continue;
            }
            total += 1;
            let Ok(Some(ours)) = simple_text(&doc) else {
                continue;
            };
            ours_read += 1;
            if by_pdf_extract(doc).as_ref() != Some(&ours) {
                differ.push(path.display().to_string());
            }
        }
        println!(
            "{total} PDFs, {ours_read} read by trove, {} differ: {differ:?}",
            differ.len()
        );
        assert!(differ.is_empty());
    }
}
