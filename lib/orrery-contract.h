/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The constants of the bus contract (the XML files in dbus/) that both sides need in
 * code: error names, pixel formats, the name and path prefixes, and the
 * input codes. The emulator, the client library, the services and the
 * test doubles include this one file instead of defining them again.
 */

/* Evdev key and button codes (Keyboard1.Press, Mouse1.Press): Linux's own numbering. */
#include <linux/input-event-codes.h>

/* Error names and the errno each maps to on the client side. */
#define ORRERY_ERROR_INVALID_ARGUMENT "org.orrery.Error.InvalidArgument" /* EINVAL */
#define ORRERY_ERROR_BUSY "org.orrery.Error.Busy"                        /* EBUSY */
#define ORRERY_ERROR_NOT_SUPPORTED "org.orrery.Error.NotSupported"      /* EOPNOTSUPP */
#define ORRERY_ERROR_UNAVAILABLE "org.orrery.Error.Unavailable"         /* ESHUTDOWN */
#define ORRERY_ERROR_TIMEOUT "org.orrery.Error.Timeout"                 /* ETIMEDOUT */
#define ORRERY_ERROR_NOT_OWNER "org.orrery.Error.NotOwner"              /* EPERM */
#define ORRERY_ERROR_LIMIT_EXCEEDED "org.orrery.Error.LimitExceeded"    /* EFBIG */

/* DRM fourcc codes (Console1.Format). The emulator's framebuffer is XRGB8888. */
#define ORRERY_FORMAT_XRGB8888 0x34325258u /* "XR24" */
#define ORRERY_FORMAT_ARGB8888 0x34325241u /* "AR24" */
#define ORRERY_FORMAT_XBGR8888 0x34324258u /* "XB24" */
#define ORRERY_FORMAT_ABGR8888 0x34324241u /* "AB24" */
#define ORRERY_FORMAT_RGB565 0x36314752u   /* "RG16" */

/* A VM named NAME owns ORRERY_VM_BUS_NAME_PREFIX NAME and serves ORRERY_VM_PATH_PREFIX NAME. */
#define ORRERY_VM_BUS_NAME_PREFIX "org.orrery.VM."
#define ORRERY_VM_PATH_PREFIX "/org/orrery/VM/"
