/* table: rows of text cells printed as an aligned table, CSV, or JSON (one
 * object per line). Cells are copied; every cell is escaped for its format
 * at print time, so callers pass raw (untrusted) text. A column marked
 * TABLE_COL_JSON holds JSON text that is embedded as-is in JSON output (and
 * printed escaped elsewhere); TABLE_COL_INT is emitted as a JSON number. */
#ifndef KANJIKI_TABLE_H
#define KANJIKI_TABLE_H
#include <stddef.h>
#include <stdio.h>

#include "cli.h"

enum { TABLE_COL_TEXT = 0, TABLE_COL_JSON = 1, TABLE_COL_INT = 2 };

struct table_col {
    const char *name;
    int type;
    size_t max_width;   /* table format: cut longer cells with "…"; 0 = no cut */
};

struct table;
struct table *table_new(const struct table_col *cols, size_t ncols);
/* cells[ncols]; NULL cells print as empty (JSON null). */
void table_add(struct table *t, const char *const *cells);
size_t table_rows(const struct table *t);
void table_print(const struct table *t, enum cli_format fmt, FILE *f);
void table_free(struct table *t);

#endif
