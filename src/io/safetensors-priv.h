/* Internal safetensors reader and writer, shared by model files (model-io.c) and trainer
 * checkpoints. Never installed.
 *
 * File format (the safetensors container, as written by the Python `safetensors` package):
 *
 *     bytes 0..7      N, the header length, unsigned 64-bit little-endian
 *     bytes 8..8+N    a UTF-8 JSON object (the header), right-padded with spaces
 *     bytes 8+N..     the data section: the raw tensor bytes, little-endian, row-major
 *
 * The header maps each tensor name to {"dtype": "F32", "shape": [d0, d1, ...],
 * "data_offsets": [begin, end]} (byte offsets relative to the data section) and may hold one
 * "__metadata__" object whose values are all strings.
 *
 * Writer: create with score__st_writer_new(), add string metadata and tensors (the data is
 * copied and encoded little-endian at once, in the order added), then score__st_writer_finish()
 * serialises everything into one malloc'd buffer (release with score__free()); the writer may
 * then be freed. score__st_save_file() stores a buffer crash-safely (anonymous or temporary file in the
 * same directory, flush + fsync, rename over the destination).
 *
 * Reader: score__st_reader_open() parses and validates a buffer; score__st_reader_open_file()
 * reads a whole file first. Input is treated as hostile; everything below is checked and any
 * violation gives SCORE_E_FORMAT with a message (never a crash or an out-of-bounds read):
 *   - the header length is at most SCORE__ST_MAX_HEADER and fits in the buffer;
 *   - the header begins with '{' (no byte order mark) and is one JSON object followed only by
 *     white space; "__metadata__" (optional, once) is an object of strings; every other member
 *     is a tensor entry with exactly a known dtype, a shape of at most SCORE__ST_MAX_DIMS
 *     integers and two integer data offsets (digits only: no sign, fraction or exponent);
 *     keys are unique at every level; strings are valid UTF-8 without NUL (raw or escaped);
 *   - element count * dtype size (overflow-checked) equals end - begin;
 *   - sorted by offset, the tensors tile the data section exactly: no gap, no overlap, nothing
 *     outside, no trailing bytes;
 *   - at most SCORE__ST_MAX_TENSORS tensors.
 * The typed getters (score__st_get_f32(), ...) additionally check presence, dtype and the
 * expected shape, and optionally that float values are finite.
 *
 * The header is read by a parser of this module (not cJSON; the reasons are at its top in
 * safetensors.c): allocation failures are SCORE_E_NOMEM, never SCORE_E_FORMAT.
 *
 * Functions take `fn` (the public caller's name) for error messages and return a status
 * (SCORE_OK, SCORE_E_FORMAT, SCORE_E_IO, SCORE_E_NOMEM, SCORE_E_INVAL). Objects are
 * single-threaded; different objects may be used on different threads.
 */
#ifndef LIBSCORE_SAFETENSORS_PRIV_H
#define LIBSCORE_SAFETENSORS_PRIV_H

#include <stddef.h>
#include <stdint.h>

#define SCORE__ST_MAX_HEADER ((uint64_t)100 * 1024 * 1024) /* 100 MiB */
#define SCORE__ST_MAX_DIMS 8
#define SCORE__ST_MAX_TENSORS 65536
#define SCORE__ST_MAX_NAME 1024 /* bytes of a tensor name or metadata key */

/* Element types (safetensors dtype strings in comments). */
enum {
    SCORE__ST_U8 = 1,  /* "U8" */
    SCORE__ST_I8,      /* "I8" */
    SCORE__ST_I32,     /* "I32" */
    SCORE__ST_I64,     /* "I64" */
    SCORE__ST_F16,     /* "F16" (readable, no converter) */
    SCORE__ST_BF16,    /* "BF16" (readable, no converter) */
    SCORE__ST_F32,     /* "F32" */
    SCORE__ST_F64      /* "F64" */
};

/* A malloc'd copy of s (free() it), NULL when out of memory; shared by the io sources. */
char *score__st_strdup(const char *s);

/* Name ("F32") and size in bytes of a dtype; NULL / 0 for an unknown one. */
const char *score__st_dtype_name(int dtype);
size_t score__st_dtype_size(int dtype);

/* ---- writer ---------------------------------------------------------------------------- */
typedef struct score__st_writer score__st_writer;

int score__st_writer_new(const char *fn, score__st_writer **out);
void score__st_writer_free(score__st_writer *w);
/* Adds (or replaces) a metadata entry; key and value are copied. */
int score__st_writer_meta(const char *fn, score__st_writer *w, const char *key, const char *value);
/* Adds a tensor; name and data are copied (shape[0..ndim-1], ndim <= SCORE__ST_MAX_DIMS;
 * ndim == 0 is a scalar). Names must be unique and must not be "__metadata__". */
int score__st_writer_add(const char *fn, score__st_writer *w, const char *name, int dtype,
                         size_t ndim, const uint64_t *shape, const void *data);
/* Typed shortcuts (native floats / integers, encoded little-endian). */
int score__st_writer_add_f32(const char *fn, score__st_writer *w, const char *name, size_t ndim,
                             const uint64_t *shape, const float *data);
int score__st_writer_add_i64(const char *fn, score__st_writer *w, const char *name, size_t ndim,
                             const uint64_t *shape, const int64_t *data);
int score__st_writer_add_u8(const char *fn, score__st_writer *w, const char *name, size_t n,
                            const unsigned char *data);
/* Serialises into *buf_out (score__free() it), *len_out bytes. The writer stays valid. */
int score__st_writer_finish(const char *fn, const score__st_writer *w, void **buf_out,
                            size_t *len_out);
/* Crash-safe store of a buffer at path (src/io/file-store.c): SCORE_E_IO on any failure (the
 * destination is then unchanged and the temporary file removed). No temporary file outlives a
 * crash (O_TMPFILE, or removal of dead processes' "<path>.tmp-<pid>-<n>" on the next save);
 * only regular files are replaced (symbolic links are followed to a regular file; devices,
 * FIFOs, sockets, directories and dangling links are refused). */
int score__st_save_file(const char *fn, const char *path, const void *buf, size_t len);

/* ---- reader ---------------------------------------------------------------------------- */
typedef struct score__st_reader score__st_reader;

typedef struct score__st_tensor {
    const char *name;
    int dtype;
    size_t ndim;
    uint64_t shape[SCORE__ST_MAX_DIMS];
    size_t count;               /* number of elements */
    size_t nbytes;              /* count * dtype size */
    const unsigned char *data;  /* inside the reader's buffer; little-endian, unaligned */
} score__st_tensor;

/* Parses buf (len bytes). The reader borrows buf (it must outlive the reader) unless `own` is
 * non-zero, in which case the reader takes ownership and score__free()s it (also on failure). */
int score__st_reader_open(const char *fn, score__st_reader **out, const void *buf, size_t len,
                          int own);
/* Reads the whole file and parses it: SCORE_E_IO when it cannot be read. */
int score__st_reader_open_file(const char *fn, score__st_reader **out, const char *path);
void score__st_reader_free(score__st_reader *r);
/* The shared body of the public load calls: parses the file at path (buf NULL) or the buffer
 * buf of len bytes (path NULL), hands the reader to load(fn, r, ctx), frees it and returns
 * load's status (or the parse error). The caller has validated its own arguments. */
typedef int (*score__st_load_fn)(const char *fn, const score__st_reader *r, void *ctx);
int score__st_load(const char *fn, const char *path, const void *buf, size_t len,
                   score__st_load_fn load, void *ctx);

/* Metadata value or NULL; number of metadata entries and the i-th key/value. */
const char *score__st_meta(const score__st_reader *r, const char *key);
size_t score__st_meta_count(const score__st_reader *r);
int score__st_meta_at(const score__st_reader *r, size_t i, const char **key, const char **value);
/* ---- metadata values (st-meta.c) ------------------------------------------------------ */
/* Writes the decimal form of v as metadata `key`. */
int score__st_writer_meta_u64(const char *fn, score__st_writer *w, const char *key, uint64_t v);
/* A decimal integer in [0, max]: digits only, no sign, no spaces; 0 on success, -1 otherwise. */
int score__st_parse_u64(const char *s, uint64_t max, uint64_t *out);
/* 1 when s is exactly a JSON number -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, else 0. */
int score__st_is_json_number(const char *s);
/* Metadata `key` as an integer in [min, max]: SCORE_E_FORMAT (message naming the key and the
 * range) when missing or not such an integer. */
int score__st_meta_u64(const char *fn, const score__st_reader *r, const char *key, uint64_t min,
                       uint64_t max, uint64_t *out);

/* Tensors, in header order; lookup by name (NULL when absent). */
size_t score__st_count(const score__st_reader *r);
const score__st_tensor *score__st_tensor_at(const score__st_reader *r, size_t i);
const score__st_tensor *score__st_find(const score__st_reader *r, const char *name);

/* Checks that tensor `name` exists with the dtype and exactly the shape given, then decodes it
 * into out (native byte order, count elements of the dtype's size). SCORE_E_FORMAT with a
 * message otherwise. */
int score__st_get(const char *fn, const score__st_reader *r, const char *name, int dtype,
                  size_t ndim, const uint64_t *shape, void *out);
/* F32 into native floats; with require_finite, NaN/Inf -> SCORE_E_FORMAT. */
int score__st_get_f32(const char *fn, const score__st_reader *r, const char *name, size_t ndim,
                      const uint64_t *shape, float *out, int require_finite);
int score__st_get_i64(const char *fn, const score__st_reader *r, const char *name, size_t ndim,
                      const uint64_t *shape, int64_t *out);
int score__st_get_u8(const char *fn, const score__st_reader *r, const char *name, size_t n,
                     unsigned char *out);

#endif /* LIBSCORE_SAFETENSORS_PRIV_H */
