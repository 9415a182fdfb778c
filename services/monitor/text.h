/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Strings that come from the VM, the guest or the bus are shown with control
 * characters replaced: a hostile peer must not drive the terminal. The
 * result lives until 8 more calls (enough for one printf).
 */
const char *printable(const char *s);

/*
 * The guest's terminal output as plain text, in place: drops carriage
 * returns, escape sequences (CSI "ESC [ ... final", OSC up to BEL or
 * "ESC \\", and two-byte ones) and every other control character but
 * newline and tab. Returns the new size.
 */
size_t text_strip_terminal(char *buf, size_t size);
