#include <stdlib.h>
#include <string.h>

#include "core/core.h"

void *aibox_alloc(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0) bytes = AIBOX_ALIGN;
    /* Round up so vector loops may read whole cache lines. */
    size_t rounded = (bytes + AIBOX_ALIGN - 1) & ~(size_t)(AIBOX_ALIGN - 1);
    if (rounded < bytes) return NULL;
    if (posix_memalign(&p, AIBOX_ALIGN, rounded) != 0) return NULL;
    return p;
}

void aibox_free(void *p) { free(p); }

static aibox_status check_shape(int ndim, const int *shape, size_t *count, aibox_error *err)
{
    if (ndim < 1 || ndim > AIBOX_MAX_DIMS || !shape)
        return aibox_fail(err, AIBOX_E_INVALID, "tensor: %d dimensions (1 to %d allowed)", ndim, AIBOX_MAX_DIMS);
    size_t c = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return aibox_fail(err, AIBOX_E_INVALID, "tensor: dimension %d is negative (%d)", i, shape[i]);
        if (!aibox_mul_ok(c, (size_t)shape[i], &c)) return aibox_fail(err, AIBOX_E_INVALID, "tensor: size overflows");
    }
    if (!aibox_mul_ok(c, sizeof(float), &(size_t){0})) return aibox_fail(err, AIBOX_E_INVALID, "tensor: size overflows");
    *count = c;
    return AIBOX_OK;
}

aibox_status aibox_tensor_create(aibox_tensor *t, int ndim, const int *shape, aibox_error *err)
{
    if (!t) return aibox_fail(err, AIBOX_E_INVALID, "tensor: NULL tensor");
    memset(t, 0, sizeof *t);
    size_t count;
    aibox_status s = check_shape(ndim, shape, &count, err);
    if (s) return s;
    t->data = aibox_alloc(count * sizeof(float));
    if (!t->data) return aibox_fail(err, AIBOX_E_NOMEM, "tensor: cannot allocate %zu floats", count);
    memset(t->data, 0, count * sizeof(float));
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->owns = 1;
    return AIBOX_OK;
}

size_t aibox_tensor_count(const aibox_tensor *t)
{
    if (!t || t->ndim < 1) return 0;
    size_t c = 1;
    for (int i = 0; i < t->ndim; i++) c *= (size_t)t->shape[i];
    return c;
}

aibox_status aibox_tensor_view(aibox_tensor *view, const aibox_tensor *src, int first, int count, aibox_error *err)
{
    if (!view || !src || src->ndim < 1) return aibox_fail(err, AIBOX_E_INVALID, "tensor view: NULL or empty source");
    if (first < 0 || count < 0 || first > src->shape[0] - count)
        return aibox_fail(err, AIBOX_E_SHAPE, "tensor view: rows [%d, %d) outside 0..%d", first, first + count,
                          src->shape[0]);
    size_t row = aibox_tensor_count(src) / (src->shape[0] ? (size_t)src->shape[0] : 1);
    *view = *src;
    view->owns = 0;
    view->shape[0] = count;
    view->data = src->data + (size_t)first * row;
    return AIBOX_OK;
}

aibox_status aibox_tensor_reshape(aibox_tensor *view, const aibox_tensor *src, int ndim, const int *shape,
                                  aibox_error *err)
{
    if (!view || !src) return aibox_fail(err, AIBOX_E_INVALID, "tensor reshape: NULL tensor");
    size_t count;
    aibox_status s = check_shape(ndim, shape, &count, err);
    if (s) return s;
    if (count != aibox_tensor_count(src))
        return aibox_fail(err, AIBOX_E_SHAPE, "tensor reshape: %zu elements cannot become %zu", aibox_tensor_count(src),
                          count);
    memset(view, 0, sizeof *view);
    view->data = src->data;
    view->ndim = ndim;
    for (int i = 0; i < ndim; i++) view->shape[i] = shape[i];
    return AIBOX_OK;
}

void aibox_tensor_free(aibox_tensor *t)
{
    if (!t) return;
    if (t->owns) aibox_free(t->data);
    memset(t, 0, sizeof *t);
}
