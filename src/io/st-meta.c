/* Integer and number metadata of safetensors files, shared by the model kinds' file code
 * (mlp-io.c, unet-io.c): one parser, so every kind accepts and refuses the same spellings. */
#include <stdio.h>
#include <string.h>

#include "core/core-priv.h"
#include "safetensors-priv.h"

int score__st_writer_meta_u64(const char *fn, score__st_writer *w, const char *key, uint64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    return score__st_writer_meta(fn, w, key, tmp);
}

int score__st_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (s == NULL || *s == '\0' || strlen(s) > 20)
        return -1;
    for (; *s; s++) {
        unsigned d;
        if (*s < '0' || *s > '9')
            return -1;
        d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

int score__st_is_json_number(const char *s)
{
    size_t n;
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        s += strspn(s, "0123456789");
    else
        return 0;
    if (*s == '.') {
        if ((n = strspn(++s, "0123456789")) == 0)
            return 0;
        s += n;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if ((n = strspn(s, "0123456789")) == 0)
            return 0;
        s += n;
    }
    return *s == '\0';
}

int score__st_meta_u64(const char *fn, const score__st_reader *r, const char *key, uint64_t min,
                       uint64_t max, uint64_t *out)
{
    const char *s = score__st_meta(r, key);
    if (s == NULL)
        return score__error(SCORE_E_FORMAT, fn, "metadata '%s' is missing", key);
    if (score__st_parse_u64(s, max, out) != 0 || *out < min)
        return score__error(SCORE_E_FORMAT, fn,
                            "metadata '%s' = '%.40s' is not an integer in [%llu, %llu]", key, s,
                            (unsigned long long)min, (unsigned long long)max);
    return SCORE_OK;
}
