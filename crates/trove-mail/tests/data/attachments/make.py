"""Builds the attachment fixtures for the text-extraction and personal-data tests.

Each file holds values planted for the tests (listed in PLANTED.md beside this script),
written by the real producers of such files: Chromium's print-to-PDF, ReportLab,
python-docx, python-pptx, openpyxl and odfpy. The outputs are committed; run this again
only to change them:

    pip install reportlab python-docx python-pptx openpyxl odfpy
    python3 make.py   # needs /usr/bin/chromium
"""
import subprocess, tempfile, os, zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
out = lambda name: os.path.join(HERE, name)

# Chromium: an HTML form printed to PDF (embedded subset TrueType fonts, ToUnicode maps).
html = """<html><body style="font-family: sans-serif">
<h1>Donor intake form</h1>
<p>Donor: Oriane Bellweather</p>
<table border=1><tr><td>Applicant SSN:</td><td>534-27-1986</td></tr>
<tr><td>Card</td><td>4556 7375 8611 2341</td></tr></table>
<p>Not personal: 666-12-3456.</p>
</body></html>"""
with tempfile.TemporaryDirectory() as d:
    src = os.path.join(d, "form.html")
    open(src, "w").write(html)
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={d}/profile", "--no-pdf-header-footer",
                    f"--print-to-pdf={out('chromium.pdf')}", "file://" + src], check=True,
                   stderr=subprocess.DEVNULL)

# ReportLab: the standard Helvetica font, WinAnsi encoding, compressed content streams.
from reportlab.pdfgen import canvas
c = canvas.Canvas(out("reportlab.pdf"), invariant=1)
c.drawString(72, 720, "Wire transfer instructions")
c.drawString(72, 700, "IBAN DE44 5001 0517 5407 3249 31")
c.drawString(72, 680, "Beneficiary SSN 245-61-0937")
c.showPage()
c.save()

# python-docx: body, a table, a header and a footer, and the author property.
import docx
doc = docx.Document()
doc.core_properties.author = "Oriane Bellweather"
doc.add_paragraph("Social Security number: 318-52-6604")
t = doc.add_table(rows=1, cols=2)
t.rows[0].cells[0].text = "Card"
t.rows[0].cells[1].text = "5400 1122 3344 5566"
doc.sections[0].header.paragraphs[0].text = "Portal password: Quill-Harbor-58"
doc.sections[0].footer.paragraphs[0].text = "Passport No. X4729185"
doc.core_properties.created = doc.core_properties.modified = __import__("datetime").datetime(2016, 7, 22)
doc.save(out("form.docx"))

# python-pptx: a slide and its notes.
import pptx
from pptx.util import Inches
deck = pptx.Presentation()
slide = deck.slides.add_slide(deck.slide_layouts[5])
slide.shapes.title.text = "Donor follow-up"
box = slide.shapes.add_textbox(Inches(1), Inches(2), Inches(6), Inches(1))
box.text_frame.text = "SSN on file: 287-39-5514"
slide.notes_slide.notes_text_frame.text = "Call back about card 4556 9876 5432 1015"
deck.save(out("deck.pptx"))

# openpyxl: a sheet of donors, the card typed in as a number.
import openpyxl
wb = openpyxl.Workbook()
ws = wb.active
ws.title = "Donors"
ws.append(["Name", "SSN", "Card", "IBAN"])
ws.append(["Perpetua Ashdown", "401-86-2275", 6011007766554439, "NL91ABNA0417164300"])
wb.properties.created = wb.properties.modified = __import__("datetime").datetime(2016, 7, 22)
wb.save(out("donors.xlsx"))

# odfpy: an OpenDocument text and spreadsheet.
from odf.opendocument import OpenDocumentText, OpenDocumentSpreadsheet
from odf.text import P
from odf.table import Table, TableRow, TableCell
odt = OpenDocumentText()
odt.text.addElement(P(text="Member SSN: 152-84-3307"))
odt.text.addElement(P(text="IBAN FR76 3000 6000 0112 3456 7890 189"))
odt.save(out("letter.odt"))
ods = OpenDocumentSpreadsheet()
table = Table(name="Payroll")
row = TableRow()
for v in ["Employee SSN", "463-20-8851"]:
    cell = TableCell(valuetype="string")
    cell.addElement(P(text=v))
    row.addElement(cell)
table.addElement(row)
ods.spreadsheet.addElement(table)
ods.save(out("payroll.ods"))
