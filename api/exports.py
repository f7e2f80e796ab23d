"""Tables as files a spreadsheet opens, CSV and XLSX, with every cell that a spreadsheet would read
as a formula made inert (OWASP "CSV injection"): a title a citizen typed as `=HYPERLINK(...)` must
open as the text it is, never as a live formula on a supervisor's machine."""

import csv
import io

from fastapi.responses import Response
from openpyxl import Workbook

# A cell starting with one of these is a formula (or becomes one) in Excel, LibreOffice and Sheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value):
    """The value as a spreadsheet should show it: text that would start a formula gets a leading
    apostrophe, which spreadsheets take as "this is text" and do not display. Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_response(rows: list[dict], name: str) -> Response:
    """The rows as a CSV download, every cell inert. UTF-8 with a byte-order mark: without it Excel
    in a Chinese locale reads the file as GBK and mangles every Chinese cell."""
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({key: inert(value) for key, value in row.items()} for row in rows)
    return Response(out.getvalue().encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def xlsx_response(rows: list[dict], name: str) -> Response:
    """The rows as an XLSX workbook of one sheet: headers in bold, text cells inert, numbers as numbers."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(name[:31])
    if rows:
        sheet.append(list(rows[0]))
        for row in rows:
            sheet.append([inert(v) if not isinstance(v, (dict, list)) else str(v) for v in row.values()])
    out = io.BytesIO()
    book.save(out)
    return Response(out.getvalue(), media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'})
