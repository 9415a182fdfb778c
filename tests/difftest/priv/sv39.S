/* SPDX-License-Identifier: MIT */
/* Sv39 walks (see vm.inc). */
#include "vm.inc"
