/* chunked.h - streaming decoder for the chunked transfer coding (RFC 9112 §7.1).
 * Incremental: feed any split of the input; the decoder validates every byte,
 * reports data spans (views into the input) and where the message ends. Strict:
 * chunk sizes are 1-16 hex digits without sign, "0x" or whitespace, with
 * overflow checked; chunk extensions are syntax-checked and ignored; trailer
 * fields are syntax-checked like header fields and bounded in size. */
#ifndef PORTICO_HTTP_CHUNKED_H
#define PORTICO_HTTP_CHUNKED_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct chunked_dec {
    int state;
    uint64_t remaining;   /* data bytes left in the current chunk */
    unsigned digits;      /* hex digits seen in the current size line */
    size_t line_bytes;    /* bytes in the current size/ext or trailer line */
    size_t trailer_bytes; /* bytes of trailer section so far */
    uint64_t total;       /* data bytes decoded so far */
    size_t max_trailer_bytes;
    /* Optional: when set, the trailer field lines ("Name: value\r\n"...,
     * without the final empty line) are copied here as they are validated
     * (for re-framing them, e.g. as HTTP/2 trailers). */
    char *trailers;
    size_t trailers_cap, trailers_len;
};

enum chunked_status {
    CHUNKED_MORE = 0, /* consumed everything given, message not finished */
    CHUNKED_DONE = 1, /* the final CRLF after the last chunk/trailers was consumed */
    CHUNKED_ERROR = -1,
};

void chunked_dec_init(struct chunked_dec *d, size_t max_trailer_bytes);

/* Decodes from in[0..len). Stops after at most one data span so the caller can
 * handle it: on return *consumed is how many input bytes were used (framing +
 * data), and if *data_len > 0 then in[*data_off .. *data_off + *data_len) is
 * body data. Returns CHUNKED_DONE when the message ended (bytes after it are not
 * consumed), CHUNKED_ERROR on invalid input, otherwise CHUNKED_MORE (call again
 * with the rest if *consumed < len). */
int chunked_decode(struct chunked_dec *d, const char *in, size_t len, size_t *consumed,
                   size_t *data_off, size_t *data_len);

/* Writes the chunk-size line for n data bytes ("<hex>\r\n") into out (at least
 * 20 bytes); returns its length. */
size_t chunked_size_line(char *out, uint64_t n);

#endif
