/* The safetensors header JSON parser (st-json.c) and the reader state it fills; shared by
 * safetensors.c and st-json.c only. Never installed. */
#ifndef LIBSCORE_ST_JSON_PRIV_H
#define LIBSCORE_ST_JSON_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors-priv.h"

typedef struct st_rtensor {
    score__st_tensor pub;
    uint64_t begin, end;
} st_rtensor;

struct score__st_reader {
    const unsigned char *buf;
    size_t len;
    int own;
    char *strings; /* decoded keys and string values, NUL-terminated, one after another */
    const char **meta_key, **meta_val;
    size_t n_meta, cap_meta;
    st_rtensor *t;
    size_t n_t, cap_t;
    const st_rtensor **by_name; /* sorted by name, for lookup */
};

/* Grows *p (elements of `size`) to hold at least `need`; 0 on success, -1 when out of memory
 * or when the size would overflow. */
int score__st_grow(void **p, size_t *cap, size_t need, size_t size);
/* The dtype named s ("F32"), or 0 for an unknown name. */
int score__st_dtype_from_name(const char *s);

/* Parses the hlen header bytes at hdr into r (tensors with name, dtype, shape and offsets
 * checked against data_len; metadata keys and values), decoding every string into
 * r->strings, which must hold at least hlen bytes. Uniqueness of names and the tiling of the
 * data section are left to the caller. SCORE_E_FORMAT with a message for any violation,
 * SCORE_E_NOMEM when an allocation fails. */
int score__st_json_parse(const char *fn, score__st_reader *r, const unsigned char *hdr,
                         size_t hlen, uint64_t data_len);

#endif /* LIBSCORE_ST_JSON_PRIV_H */
