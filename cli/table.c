#include "table.h"

#include <stdlib.h>
#include <string.h>

#include "esc.h"
#include "sbuf.h"
#include "xalloc.h"

struct table {
    const struct table_col *cols;
    size_t ncols;
    char **cells;          /* rows * ncols, row-major */
    size_t rows, cap;
};

struct table *table_new(const struct table_col *cols, size_t ncols)
{
    struct table *t = xcalloc(1, sizeof *t);
    t->cols = cols;
    t->ncols = ncols;
    return t;
}

void table_add(struct table *t, const char *const *cells)
{
    if (t->rows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = xrealloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
    }
    for (size_t i = 0; i < t->ncols; i++)
        t->cells[t->rows * t->ncols + i] = xstrdup(cells[i]);
    t->rows++;
}

size_t table_rows(const struct table *t)
{
    return t->rows;
}

/* Display width of escaped text: count UTF-8 lead bytes only, since
 * esc_text has already turned every control and invalid byte into ASCII. */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80)
            w++;
    return w;
}

/* Cut escaped text to at most max display columns, ending with "…". */
static void cut(struct sbuf *b, size_t max)
{
    if (!max || width(sbuf_str(b)) <= max)
        return;
    size_t w = 0, i = 0;
    for (; i < b->len; i++) {
        if (((unsigned char)b->s[i] & 0xC0) != 0x80) {
            if (w == max - 1)
                break;
            w++;
        }
    }
    b->len = i;
    b->s[i] = '\0';
    sbuf_adds(b, "\xE2\x80\xA6");
}

static void print_table(const struct table *t, FILE *f)
{
    size_t n = t->rows * t->ncols;
    char **esc = xcalloc(n ? n : 1, sizeof *esc);
    size_t *wid = xcalloc(t->ncols, sizeof *wid);
    for (size_t c = 0; c < t->ncols; c++)
        wid[c] = width(t->cols[c].name);
    for (size_t i = 0; i < n; i++) {
        struct sbuf b = SBUF_INIT;
        esc_text_s(&b, t->cells[i]);
        cut(&b, t->cols[i % t->ncols].max_width);
        esc[i] = sbuf_take(&b);
        size_t w = width(esc[i]);
        if (w > wid[i % t->ncols])
            wid[i % t->ncols] = w;
    }
    for (size_t c = 0; c < t->ncols; c++)
        fprintf(f, "%s%-*s", c ? "  " : "", c + 1 < t->ncols ? (int)wid[c] : 0,
                t->cols[c].name);
    fputc('\n', f);
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = esc[r * t->ncols + c];
            fputs(c ? "  " : "", f);
            fputs(s, f);
            if (c + 1 < t->ncols)
                for (size_t pad = width(s); pad < wid[c]; pad++)
                    fputc(' ', f);
        }
        fputc('\n', f);
    }
    for (size_t i = 0; i < n; i++)
        free(esc[i]);
    free(esc);
    free(wid);
}

static void print_csv(const struct table *t, FILE *f)
{
    struct sbuf b = SBUF_INIT;
    for (size_t c = 0; c < t->ncols; c++) {
        if (c)
            sbuf_addc(&b, ',');
        esc_csv(&b, t->cols[c].name, strlen(t->cols[c].name));
    }
    sbuf_adds(&b, "\r\n");
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            if (c)
                sbuf_addc(&b, ',');
            if (s)
                esc_csv(&b, s, strlen(s));
        }
        sbuf_adds(&b, "\r\n");
    }
    fputs(sbuf_str(&b), f);
    sbuf_free(&b);
}

static void print_json(const struct table *t, FILE *f)
{
    struct sbuf b = SBUF_INIT;
    for (size_t r = 0; r < t->rows; r++) {
        sbuf_reset(&b);
        sbuf_addc(&b, '{');
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = t->cells[r * t->ncols + c];
            if (c)
                sbuf_addc(&b, ',');
            esc_json_s(&b, t->cols[c].name);
            sbuf_addc(&b, ':');
            if (!s)
                sbuf_adds(&b, "null");
            else if (t->cols[c].type == TABLE_COL_JSON ||
                     (t->cols[c].type == TABLE_COL_INT && *s))
                sbuf_adds(&b, s);   /* produced by our own serialisers */
            else
                esc_json_s(&b, s);
        }
        sbuf_adds(&b, "}\n");
        fputs(sbuf_str(&b), f);
    }
    sbuf_free(&b);
}

void table_print(const struct table *t, enum cli_format fmt, FILE *f)
{
    if (fmt == CLI_FMT_CSV)
        print_csv(t, f);
    else if (fmt == CLI_FMT_JSON)
        print_json(t, f);
    else
        print_table(t, f);
}

void table_free(struct table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->rows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}
