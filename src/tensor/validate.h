/* Checks that tensor data holds only finite numbers (tensor/validate.c says what is checked). */
#ifndef PF_TENSOR_VALIDATE_H
#define PF_TENSOR_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include "tensor/types.h"

/* true when every element (float types) or every block's scales (block types) of nbytes of
 * `type` data are finite; else false with *bad = the index of the first bad element or block.
 * false with *bad = 0 also for an unknown type or nbytes not a whole number of blocks. */
bool pf_validate_data(int type, const void *data, size_t nbytes, size_t *bad);

#endif
