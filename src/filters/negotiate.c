/* negotiate.c - Accept-Encoding negotiation (RFC 9110 12.5.3) and the media
 * type allowlists that decide whether a response is worth compressing. Both
 * read untrusted header bytes: every loop is bounded by the view's length,
 * nothing is copied, any byte value is accepted (and simply matches nothing). */
#include "filters/negotiate.h"

#include "core/common.h"
#include "filters/compress.h" /* zalg_lookup */

/* q-values are kept in thousandths: 0..1000, -1 = not listed. */
#define Q_UNSET (-1)
#define Q_MAX 1000

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
 * Returns 0..1000, or -1 when v is not a qvalue. */
static int parse_qvalue(struct str v)
{
    if (v.len == 0 || v.len > 5 || (v.p[0] != '0' && v.p[0] != '1'))
        return -1;
    int q = (v.p[0] - '0') * Q_MAX;
    if (v.len == 1)
        return q;
    if (v.p[1] != '.')
        return -1;
    int scale = 100;
    for (size_t i = 2; i < v.len; i++, scale /= 10) {
        char c = v.p[i];
        if (c < '0' || c > '9')
            return -1;
        q += (c - '0') * scale;
    }
    return q > Q_MAX ? -1 : q; /* "1.5" is not a qvalue */
}

/* Parses one list element "coding *( OWS ";" OWS param )" into its coding
 * and weight. Returns false when the element must be ignored (an empty
 * coding, a q parameter that is not a qvalue). Parameters other than q are
 * not part of the grammar; they are skipped rather than voiding the element,
 * the coding's meaning does not depend on them. */
static bool parse_element(struct str el, struct str *coding, int *q)
{
    struct str rest = el;
    *coding = str_trim_ows(str_split_next(&rest, ';'));
    *q = Q_MAX;
    if (coding->len == 0)
        return false;
    while (rest.p && rest.len) {
        struct str param = str_trim_ows(str_split_next(&rest, ';'));
        const char *eq = memchr(param.p, '=', param.len);
        if (!eq)
            continue;
        struct str name = str_trim_ows(str_make(param.p, (size_t)(eq - param.p)));
        struct str val = str_trim_ows(str_make(eq + 1, param.len - (size_t)(eq + 1 - param.p)));
        if (name.len == 1 && (name.p[0] == 'q' || name.p[0] == 'Q')) {
            *q = parse_qvalue(val);
            if (*q < 0)
                return false;
        }
    }
    return true;
}

/* The q-values a client gave, per coding we know. */
struct ae_weights {
    int q[ZALG__COUNT]; /* Q_UNSET when the coding is not listed */
    int star;           /* Q_UNSET when "*" is not listed */
};

static void ae_parse(struct str ae, struct ae_weights *w)
{
    for (int a = 0; a < ZALG__COUNT; a++)
        w->q[a] = Q_UNSET;
    w->star = Q_UNSET;

    struct str rest = ae;
    while (rest.p && rest.len) {
        struct str coding;
        int q;
        if (!parse_element(str_split_next(&rest, ','), &coding, &q))
            continue;
        int *slot;
        int alg = zalg_lookup(coding.p, coding.len);
        if (alg >= 0)
            slot = &w->q[alg];
        else if (str_eq_lit_ci(coding, "x-gzip")) /* RFC 9110 8.4.1.3 */
            slot = &w->q[ZALG_GZIP];
        else if (str_eq_lit_ci(coding, "identity"))
            slot = &w->q[ZALG_IDENTITY];
        else if (coding.len == 1 && coding.p[0] == '*')
            slot = &w->star;
        else
            continue; /* a coding we do not produce (deflate, compress, ...) */
        /* Listed twice ("gzip;q=0, x-gzip"): the RFC does not say which
         * wins; the higher weight does here, the client did accept it. */
        if (q > *slot)
            *slot = q;
    }
}

/* The weight the client gives to coding alg: its own entry, else "*". */
static int ae_weight(const struct ae_weights *w, int alg)
{
    if (w->q[alg] != Q_UNSET)
        return w->q[alg];
    return w->star != Q_UNSET ? w->star : 0;
}

enum zalg ae_negotiate(struct str ae, const uint8_t *pref, size_t n)
{
    if (!ae.p || ae.len == 0 || n == 0)
        return ZALG_IDENTITY; /* no header, or an empty one: "no coding" */

    struct ae_weights w;
    ae_parse(ae, &w);

    enum zalg best = ZALG_IDENTITY;
    int best_q = 0;
    for (size_t i = 0; i < n; i++) {
        if (pref[i] == ZALG_IDENTITY || pref[i] >= ZALG__COUNT)
            continue;
        int q = ae_weight(&w, pref[i]);
        if (q > best_q) { /* strictly: a tie keeps the earlier preference */
            best = (enum zalg)pref[i];
            best_q = q;
        }
    }
    /* Identity competes only when the client weighed it, itself or through
     * "*": "gzip;q=0.5, identity" asks for the plain body. Unweighed, it is
     * the fallback, and a tie goes to the coding (that is why we are here).
     * identity;q=0 with nothing else acceptable still ends as identity: as
     * nginx does, the caller sends the body unencoded rather than a 406. */
    int id_q = w.q[ZALG_IDENTITY] != Q_UNSET ? w.q[ZALG_IDENTITY] : w.star;
    if (best != ZALG_IDENTITY && id_q > best_q)
        best = ZALG_IDENTITY;
    return best;
}

/* The media type of a Content-Type value: parameters dropped, OWS trimmed;
 * type and subtype are returned apart. False when there is no "type/subtype"
 * with both parts non-empty. */
static bool media_type(struct str ctype, struct str *type, struct str *sub)
{
    if (!ctype.p)
        return false;
    struct str rest = ctype;
    struct str mt = str_trim_ows(str_split_next(&rest, ';'));
    const char *slash = memchr(mt.p, '/', mt.len);
    if (!slash)
        return false;
    *type = str_trim_ows(str_make(mt.p, (size_t)(slash - mt.p)));
    *sub = str_trim_ows(str_make(slash + 1, mt.len - (size_t)(slash + 1 - mt.p)));
    return type->len > 0 && sub->len > 0;
}

bool ctype_allowed(struct str ctype, char *const *types, size_t n)
{
    struct str type, sub;
    if (!media_type(ctype, &type, &sub))
        return false;
    for (size_t i = 0; i < n; i++) {
        struct str t = str_c(types[i]);
        const char *slash = t.p ? memchr(t.p, '/', t.len) : NULL;
        if (!slash)
            continue;
        struct str ttype = str_make(t.p, (size_t)(slash - t.p));
        struct str tsub = str_make(slash + 1, t.len - (size_t)(slash + 1 - t.p));
        bool type_ok = (ttype.len == 1 && ttype.p[0] == '*') || str_eq_ci(ttype, type);
        bool sub_ok = (tsub.len == 1 && tsub.p[0] == '*') || str_eq_ci(tsub, sub);
        if (type_ok && sub_ok)
            return true;
    }
    return false;
}

bool ctype_compressible_default(struct str ctype)
{
    static const char *const app[] = {"json", "javascript", "xml", "wasm"};
    struct str type, sub;
    if (!media_type(ctype, &type, &sub))
        return false;
    if (str_eq_lit_ci(type, "text"))
        return true;
    if (str_eq_lit_ci(type, "image"))
        return str_eq_lit_ci(sub, "svg+xml");
    /* structured syntax suffixes (RFC 6839): application/ld+json,
     * application/atom+xml, ... are JSON or XML underneath whatever the type */
    struct str sfx[] = {STR_LIT("+json"), STR_LIT("+xml")};
    for (size_t i = 0; i < ARRAY_SIZE(sfx); i++) {
        if (sub.len > sfx[i].len && str_has_suffix_ci(sub, sfx[i]))
            return true;
    }
    if (str_eq_lit_ci(type, "application")) {
        for (size_t i = 0; i < ARRAY_SIZE(app); i++) {
            if (str_eq_lit_ci(sub, app[i]))
                return true;
        }
    }
    return false;
}
