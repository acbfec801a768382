/* admin_path.c - request-path segments for the admin API (admin_path.h). */
#include "admin/admin_path.h"

static int hexval(char h)
{
    if (h >= '0' && h <= '9')
        return h - '0';
    if (h >= 'a' && h <= 'f')
        return h - 'a' + 10;
    if (h >= 'A' && h <= 'F')
        return h - 'A' + 10;
    return -1;
}

int admin_path_split(struct str path, struct str *segs, int max)
{
    int n = 0;
    size_t i = 0;
    while (i < path.len) {
        while (i < path.len && path.p[i] == '/')
            i++;
        if (i >= path.len)
            break;
        size_t j = i;
        while (j < path.len && path.p[j] != '/')
            j++;
        if (n == max)
            return -1;
        segs[n++] = str_make(path.p + i, j - i);
        i = j;
    }
    return n;
}

bool admin_path_decode(struct str seg, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < seg.len; i++) {
        int ch = (unsigned char)seg.p[i];
        if (ch == '%') {
            int hi = i + 2 < seg.len ? hexval(seg.p[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(seg.p[i + 2]) : -1;
            if (lo < 0)
                return false;
            ch = hi << 4 | lo;
            i += 2;
        }
        if (ch == 0 || o + 1 >= cap)
            return false;
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return true;
}
