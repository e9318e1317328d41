// A simple CSV reader and writer for the Forecast page: a header row, then one row per line, cells
// split at every comma. Quoted cells are not read (so no cell may hold a comma); an empty cell is a gap.

export const MAX_ROWS = 100000; // the API's bound on a forecast request's rows

export class CsvError extends Error {}

/** ``{columns, data}`` of ``text``: the header's names and each row's cells (text, or null when empty). */
export function parseCsv(text) {
  const lines = String(text).replace(/^\uFEFF/, "").split(/\r\n|\n|\r/);
  const rows = [];
  lines.forEach((line, i) => {
    if (!line.trim()) return; // blank lines are skipped
    if (line.includes('"')) throw new CsvError(`line ${i + 1}: quoted cells are not read here; remove the quotes (no cell may hold a comma)`);
    rows.push({ number: i + 1, cells: line.split(",").map((c) => c.trim()) });
  });
  if (!rows.length) throw new CsvError("no CSV: paste or choose one, a header row and then one row per time step");
  const [header, ...body] = rows;
  const columns = header.cells;
  const blank = columns.findIndex((name) => !name);
  if (blank >= 0) throw new CsvError(`the header (line ${header.number}) has an empty name in column ${blank + 1}`);
  const twice = columns.find((name, i) => columns.indexOf(name) !== i);
  if (twice !== undefined) throw new CsvError(`the header names column ${twice} twice`);
  if (!body.length) throw new CsvError("the CSV has a header but no rows");
  if (body.length > MAX_ROWS) throw new CsvError(`the CSV has ${body.length} rows; at most ${MAX_ROWS} are sent`);
  const data = body.map((row) => {
    if (row.cells.length !== columns.length) {
      throw new CsvError(`line ${row.number} has ${row.cells.length} cells, the header has ${columns.length}`);
    }
    return row.cells.map((c) => (c === "" ? null : c));
  });
  return { columns, data };
}

function cell(value) {
  if (value === null || value === undefined) return "";
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** CSV text of ``records`` (objects) with the header ``columns``. */
export function toCsv(columns, records) {
  const lines = [columns.map(cell).join(","), ...records.map((r) => columns.map((c) => cell(r[c])).join(","))];
  return lines.join("\n") + "\n";
}
