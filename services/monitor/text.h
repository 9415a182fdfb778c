/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Strings that come from the VM, the guest or the bus are shown with control
 * characters replaced: a hostile peer must not drive the terminal. The
 * result lives until 8 more calls (enough for one printf).
 */
const char *printable(const char *s);
