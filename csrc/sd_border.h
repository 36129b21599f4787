/* Mirrored borders: the frame continues beyond its edges as its mirror image (sd_core.h), so
 * light spread past an edge is folded back onto the cell it mirrors (sd_pyramid.c) and a
 * gather past an edge reads the mirrored cells (sd_gather.c). */
#ifndef SD_BORDER_H
#define SD_BORDER_H

#include <math.h>

/* The cell of a line of n cells that cell i (any integer) mirrors onto. */
static inline int sd_fold_index(int i, int n)
{
    int p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

/* Calls BODY with (pa, pb), 0 <= pa <= pb <= n, for every piece of [a, b] on the mirrored line. */
#define SD_FOR_FOLDED(a_, b_, n_, pa, pb, BODY)                                     \
    do {                                                                            \
        float n__ = (float)(n_), per__ = 2.0f * n__;                                \
        float a__ = (a_), b__ = (b_);                                               \
        if (a__ >= 0.0f && b__ <= n__) {                                            \
            float pa = a__, pb = b__;                                               \
            BODY;                                                                   \
            break;                                                                  \
        }                                                                           \
        float sh__ = floorf(a__ / per__) * per__;                                   \
        a__ -= sh__; b__ -= sh__;                                                   \
        while (a__ < b__) {                                                         \
            if (a__ >= per__) { a__ -= per__; b__ -= per__; continue; }             \
            if (a__ < n__) {                                                        \
                float e__ = b__ < n__ ? b__ : n__;                                  \
                float pa = a__, pb = e__;                                           \
                BODY;                                                               \
                a__ = e__;                                                          \
            } else {                                                                \
                float e__ = b__ < per__ ? b__ : per__;                              \
                float pa = per__ - e__, pb = per__ - a__;                           \
                BODY;                                                               \
                a__ = e__;                                                          \
            }                                                                       \
        }                                                                           \
    } while (0)

#endif
