/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The screen clients see while there is no VM framebuffer to show: a plain
 * dark XRGB8888 picture with one short upper-case message in the middle
 * ("VM NOT RUNNING"). It is orrery-vnc's own, writable memory.
 */

#include <stddef.h>
#include <stdint.h>

/* Fills pixels (width x height, stride width * 4) and writes message, scaled to fit. */
void placeholder_draw(uint32_t *pixels, uint32_t width, uint32_t height, const char *message);

#define PLACEHOLDER_BACKGROUND 0x00202428u
#define PLACEHOLDER_FOREGROUND 0x00d0d4d8u
