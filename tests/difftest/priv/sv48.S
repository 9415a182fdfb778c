/* SPDX-License-Identifier: MIT */
/* Sv48 walks: the Sv39 tables under a fourth level (see vm.inc). */
#define SV48 1
#include "vm.inc"
