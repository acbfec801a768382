/* chunked.c - streaming decoder and size-line encoder for the chunked transfer
 * coding (RFC 9112 §7.1).
 *
 * The decoder is a byte-level state machine over the framing (size lines,
 * extensions, CRLFs, trailer section) and hands chunk data back as spans of the
 * caller's input, so data is never copied and any split of the input gives the
 * same result. Choices (see docs/internals/h1.md):
 *   - chunk-size: 1-16 hex digits, value <= 2^62, no sign/"0x"/whitespace;
 *   - chunk-ext: ';' name [ '=' token / quoted-string ], syntax-checked and
 *     ignored; the BWS the RFC allows around ';' and '=' is refused (nothing
 *     legitimate sends it and lenient parsing of it has enabled smuggling);
 *   - a size line (digits + extensions) is at most CHUNKED_MAX_LINE bytes;
 *   - trailer fields follow the header-field rules (no obs-fold, bare LF, NUL,
 *     lone CR, space before ':') and their bytes are bounded by
 *     max_trailer_bytes (the final empty line is not counted).
 */
#include "http/chunked.h"

#include "core/common.h"
#include "http/h1_parse.h"

#define CHUNKED_MAX_LINE 4096
#define CHUNKED_MAX_SIZE (UINT64_C(1) << 62)

enum {
    S_SIZE_FIRST = 0, /* first hex digit of a size line */
    S_SIZE,           /* more hex digits, ';' or CR */
    S_EXT_NAME0,      /* first byte of an extension name */
    S_EXT_NAME,       /* name bytes, '=', ';' or CR */
    S_EXT_VAL0,       /* first byte of a value: token or '"' */
    S_EXT_TOKEN,      /* token value bytes, ';' or CR */
    S_EXT_QS,         /* inside a quoted-string */
    S_EXT_QS_ESC,     /* after a backslash in a quoted-string */
    S_EXT_QS_END,     /* after the closing quote: ';' or CR */
    S_SIZE_LF,        /* LF ending a size line */
    S_DATA,           /* chunk data (remaining > 0) */
    S_DATA_CR,        /* CR after chunk data */
    S_DATA_LF,        /* LF after chunk data */
    S_TRL_START,      /* start of a trailer line, or the final CR */
    S_TRL_NAME,       /* field name bytes or ':' */
    S_TRL_VALUE,      /* field value bytes or CR */
    S_TRL_LF,         /* LF ending a trailer field line */
    S_FINAL_LF,       /* LF of the empty line ending the message */
    S_DONE,
    S_ERROR,
};

#define IS(c, cls) (h1_cclass[(unsigned char)(c)] & (cls))

void chunked_dec_init(struct chunked_dec *d, size_t max_trailer_bytes)
{
    d->state = S_SIZE_FIRST;
    d->remaining = 0;
    d->digits = 0;
    d->line_bytes = 0;
    d->trailer_bytes = 0;
    d->total = 0;
    d->max_trailer_bytes = max_trailer_bytes;
    d->trailers = NULL;
    d->trailers_cap = d->trailers_len = 0;
}

static inline unsigned hexval(unsigned char c)
{
    if (c <= '9')
        return c - '0';
    return (c | 0x20) - 'a' + 10;
}

/* Next state after the end of a size-line element: ';' opens another
 * extension, CR ends the line, anything else is an error. */
static inline int after_elem(unsigned char c)
{
    if (c == ';')
        return S_EXT_NAME0;
    if (c == '\r')
        return S_SIZE_LF;
    return S_ERROR;
}

int chunked_decode(struct chunked_dec *d, const char *in, size_t len, size_t *consumed,
                   size_t *data_off, size_t *data_len)
{
    const unsigned char *b = (const unsigned char *)in;
    size_t i = 0;
    int st = d->state;

    *data_off = 0;
    *data_len = 0;
    if (st == S_ERROR) {
        *consumed = 0;
        return CHUNKED_ERROR;
    }
    while (i < len && st != S_DONE) {
        if (st == S_DATA) {
            /* The one place bytes are not looked at: hand back a span. */
            size_t n = len - i;
            if ((uint64_t)n > d->remaining)
                n = (size_t)d->remaining;
            d->remaining -= n;
            d->total += n;
            *data_off = i;
            *data_len = n;
            i += n;
            if (d->remaining == 0)
                st = S_DATA_CR;
            break;
        }
        unsigned char c = b[i++];
        if (st <= S_SIZE_LF && ++d->line_bytes > CHUNKED_MAX_LINE) {
            st = S_ERROR;
            break;
        }
        if (st >= S_TRL_NAME && st <= S_TRL_LF) {
            if (++d->trailer_bytes > d->max_trailer_bytes) {
                st = S_ERROR;
                break;
            }
        }
        if (d->trailers && ((st >= S_TRL_NAME && st <= S_TRL_LF) || (st == S_TRL_START && c != '\r')) &&
            d->trailers_len < d->trailers_cap)
            d->trailers[d->trailers_len++] = (char)c;
        switch (st) {
        case S_SIZE_FIRST:
        case S_SIZE:
            if (IS(c, H1_C_HEX)) {
                unsigned v = hexval(c);
                if (++d->digits > 16 || d->remaining > (CHUNKED_MAX_SIZE - v) / 16) {
                    st = S_ERROR;
                    break;
                }
                d->remaining = d->remaining * 16 + v;
                st = S_SIZE;
            } else {
                st = st == S_SIZE ? after_elem(c) : S_ERROR;
            }
            break;
        case S_EXT_NAME0:
            st = IS(c, H1_C_TCHAR) ? S_EXT_NAME : S_ERROR;
            break;
        case S_EXT_NAME:
            if (!IS(c, H1_C_TCHAR))
                st = c == '=' ? S_EXT_VAL0 : after_elem(c);
            break;
        case S_EXT_VAL0:
            if (c == '"')
                st = S_EXT_QS;
            else
                st = IS(c, H1_C_TCHAR) ? S_EXT_TOKEN : S_ERROR;
            break;
        case S_EXT_TOKEN:
            if (!IS(c, H1_C_TCHAR))
                st = after_elem(c);
            break;
        case S_EXT_QS:
            if (c == '"')
                st = S_EXT_QS_END;
            else if (c == '\\')
                st = S_EXT_QS_ESC;
            else if (!IS(c, H1_C_QDTEXT))
                st = S_ERROR;
            break;
        case S_EXT_QS_ESC:
            /* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
            st = IS(c, H1_C_FVAL) ? S_EXT_QS : S_ERROR;
            break;
        case S_EXT_QS_END:
            st = after_elem(c);
            break;
        case S_SIZE_LF:
            if (c != '\n') {
                st = S_ERROR;
                break;
            }
            d->digits = 0;
            d->line_bytes = 0;
            st = d->remaining ? S_DATA : S_TRL_START; /* 0 = last-chunk */
            break;
        case S_DATA_CR:
            st = c == '\r' ? S_DATA_LF : S_ERROR;
            break;
        case S_DATA_LF:
            st = c == '\n' ? S_SIZE_FIRST : S_ERROR;
            break;
        case S_TRL_START:
            if (c == '\r') {
                st = S_FINAL_LF;
            } else if (IS(c, H1_C_TCHAR)) {
                /* The first byte of a field line counts towards the bound. */
                if (++d->trailer_bytes > d->max_trailer_bytes)
                    st = S_ERROR;
                else
                    st = S_TRL_NAME;
            } else {
                st = S_ERROR; /* obs-fold, empty name, bare LF, ... */
            }
            break;
        case S_TRL_NAME:
            if (!IS(c, H1_C_TCHAR))
                st = c == ':' ? S_TRL_VALUE : S_ERROR;
            break;
        case S_TRL_VALUE:
            if (!IS(c, H1_C_FVAL))
                st = c == '\r' ? S_TRL_LF : S_ERROR;
            break;
        case S_TRL_LF:
            st = c == '\n' ? S_TRL_START : S_ERROR;
            break;
        case S_FINAL_LF:
            st = c == '\n' ? S_DONE : S_ERROR;
            break;
        default:
            st = S_ERROR;
            break;
        }
        if (st == S_ERROR)
            break;
    }
    d->state = st;
    *consumed = i;
    if (st == S_ERROR) {
        *data_len = 0;
        return CHUNKED_ERROR;
    }
    return st == S_DONE ? CHUNKED_DONE : CHUNKED_MORE;
}

size_t chunked_size_line(char *out, uint64_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t k = 0;

    do {
        tmp[k++] = hex[n & 0xf];
        n >>= 4;
    } while (n);
    for (size_t i = 0; i < k; i++)
        out[i] = tmp[k - 1 - i];
    out[k] = '\r';
    out[k + 1] = '\n';
    return k + 2;
}
