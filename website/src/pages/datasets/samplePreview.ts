import Papa from "papaparse";

export interface Preview {
  columns: string[];
  rows: string[][];
}

/**
 * The first rows of a CSV from its first bytes. When the text was cut short, its last line may
 * be a fragment, so it is dropped.
 */
export function previewRows(text: string, complete: boolean, limit: number): Preview {
  const lines = complete ? text : text.slice(0, text.lastIndexOf("\n") + 1);
  const parsed = Papa.parse<string[]>(lines, { skipEmptyLines: true });
  const [columns = [], ...rows] = parsed.data;
  return { columns, rows: rows.slice(0, limit) };
}
