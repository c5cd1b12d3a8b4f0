/* avx2 kernels (work in progress). */
#include "tensor/kernels.h"

const struct pf_kernels pf_kernels_avx2 = {
    .name = "avx2",
};
